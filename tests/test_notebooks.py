"""Run every notebook under nbs/ as one pytest test, with nbdev's own runner.

Cells carrying a flag listed in settings.ini's `tst_flags` (e.g. `#| slow`, `#| cuda`)
are skipped, exactly as `nbdev_test` does; set EMONB_TEST_FLAGS="slow" to run them too.
"""
import os
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook

ROOT = Path(__file__).resolve().parent.parent
NBS = sorted(p for p in (ROOT/"nbs").rglob("*.ipynb")
             if not any(part.startswith(("_", ".")) for part in p.relative_to(ROOT/"nbs").parts))


@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_notebook(nb):
    cfg = get_config(path=ROOT)
    skip = cfg.tst_flags.split()
    force = os.environ.get("EMONB_TEST_FLAGS", "").split()
    ok, _ = run_notebook(nb, skip_flags=skip, force_flags=force, basepath=ROOT)
    assert ok, f"{nb.name} failed; the traceback is in the captured stderr above"
