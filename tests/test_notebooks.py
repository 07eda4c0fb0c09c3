"""Run every notebook under nbs/ as one pytest test, with nbdev's own runner.

Cells carrying a flag listed in settings.ini's `tst_flags` (e.g. `#| slow`, `#| cuda`) are
skipped, exactly as `nbdev_test` does; set EMONB_TEST_FLAGS="slow" to run them too. Each
notebook runs in a fresh Python process, so global state one notebook sets (torch's grad mode,
thread count, warning filters...) cannot leak into the next.
"""
import os, subprocess, sys
from pathlib import Path

import pytest
from nbdev.config import get_config

ROOT = Path(__file__).resolve().parent.parent
NBS = sorted(p for p in (ROOT/"nbs").rglob("*.ipynb")
             if not any(part.startswith(("_", ".")) for part in p.relative_to(ROOT/"nbs").parts))
RUNNER = """
import sys
from pathlib import Path
from nbdev.test import test_nb
nb, skip, force, root = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4]
ok, _ = test_nb(Path(nb), skip_flags=skip, force_flags=force, basepath=root)
sys.exit(0 if ok else 1)
"""


@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_notebook(nb):
    skip = get_config(path=ROOT).tst_flags
    force = os.environ.get("EMONB_TEST_FLAGS", "")
    r = subprocess.run([sys.executable, "-c", RUNNER, str(nb), skip, force, str(ROOT)],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"})
    assert r.returncode == 0, f"{nb.name} failed:\n{r.stderr[-8000:]}"
