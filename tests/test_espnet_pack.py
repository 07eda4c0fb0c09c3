"""Warm start from a model pack that ESPnet2 wrote itself: an ESPnet2 Tacotron2 (with ESPnet2's GlobalMVN beside it,
as its ESPnetTTSModel names them), saved as a recipe saves `valid.loss.ave.pth` and zipped by ESPnet2's own
`espnet2.main_funcs.pack_funcs.pack`, then loaded by emonb's `init_param` into conditioned models whose token list
differs (other tokens, another order). Every weight the two share must be ESPnet2's, bit for bit.

ESPnet2 is not an emonb dependency: this test is skipped unless it is importable. To run it:
    pip install --no-deps espnet typeguard && pytest tests/test_espnet_pack.py
"""
import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("espnet2.tts.tacotron2.tacotron2",
                    reason="espnet2 not installed (pip install --no-deps espnet typeguard)")
from espnet2.tts.tacotron2.tacotron2 import Tacotron2
from espnet2.layers.global_mvn import GlobalMVN
from espnet2.main_funcs.pack_funcs import pack
from emonb.models.tacotron2 import Tacotron2Controllable
from emonb.task import init_source, load_init_param

SIZES = dict(embed_dim=32, eunits=32, econv_chans=32, adim=24, aconv_chans=8, aconv_filts=7, dunits=48,
             prenet_units=24, postnet_chans=24, postnet_layers=2, reduction_factor=2)
LETTERS = list("abcdefghijklmnopqrstuvwxyz")
ESP_TOKENS = ["<blank>", "<unk>", "<space>", *LETTERS[::-1], "'", "<sos/eos>"]        # its own order
OURS = ["<blank>", "<unk>", "<space>", *LETTERS[:20], ".", ",", "?", "<sos/eos>"]        # 6 letters fewer, 3 new


def espnet2_pack(root):
    "An ESPnet2 Tacotron2 model written and packed as an ESPnet2 recipe does (`exp/...`, meta.yaml); its tts module."
    torch.manual_seed(0)
    tts = Tacotron2(len(ESP_TOKENS), 80, **SIZES)
    stats = root/"exp/tts_stats_raw_char/train/feats_stats.npz"
    stats.parent.mkdir(parents=True)
    np.savez(stats, count=np.array(100), sum=np.full(80, -300.0), sum_square=np.full(80, 1000.0))
    sd = {**{f"tts.{k}": v for k, v in tts.state_dict().items()},
          **{f"normalize.{k}": v for k, v in GlobalMVN(str(stats)).state_dict().items()}}
    run = root/"exp/tts_train_tacotron2_raw_char"
    run.mkdir(parents=True)
    torch.save(sd, run/"valid.loss.ave.pth")
    (run/"config.yaml").write_text(yaml.safe_dump(dict(token_list=ESP_TOKENS, token_type="char", tts="tacotron2",
                                                       tts_conf=SIZES, normalize="global_mvn",
                                                       normalize_conf=dict(stats_file=str(stats.relative_to(root))))))
    pack(files=dict(model_file=str((run/"valid.loss.ave.pth").relative_to(root))),
         yaml_files=dict(train_config=str((run/"config.yaml").relative_to(root))),
         option=[str(stats.relative_to(root))], outpath=str(root/"packed/tts_model.zip"))
    return root/"packed/tts_model.zip", tts


class Holder(torch.nn.Module):
    "The part of EmoTTSModel that init_param's `tts:tts` addresses."
    def __init__(self, tts): super().__init__(); self.tts = tts


@pytest.mark.parametrize("fusion", [dict(fusion="attention"), dict(fusion="attention", attention_fusion="add"),
                                    dict(fusion="decoder")])
def test_warm_start_from_espnet2_pack(tmp_path, monkeypatch, fusion):
    monkeypatch.setenv("EMONB_CACHE", str(tmp_path/"cache"))
    monkeypatch.chdir(tmp_path)                       # ESPnet2's pack stores paths relative to the working directory
    zip_path, esp = espnet2_pack(tmp_path)
    sd, tokens, kind = init_source(zip_path)
    assert (kind, tokens) == ("espnet2 pack", ESP_TOKENS)
    torch.manual_seed(1)
    ours = Tacotron2Controllable(len(OURS), 80, **SIZES, n_emotions=4, prosody_dim=9, cond_dim=16, **fusion)
    init_rows = ours.enc.embed.weight.detach().clone()
    rep = load_init_param(Holder(ours), str(zip_path), token_list=OURS)
    common = [t for t in OURS if t in ESP_TOKENS]
    assert rep["tokens"] == dict(kept=len(common), new=[".", ",", "?"], unused=LETTERS[20:][::-1] + ["'"])
    assert rep["unexpected"] == [] and all(k.startswith(("tts.emo", "tts.prosody", "tts.cond")) for k in rep["missing"])
    rows = ours.enc.embed.weight.detach()
    for i, t in enumerate(OURS):                      # each token's row: ESPnet2's where it has one, else our init
        want = esp.enc.embed.weight.detach()[ESP_TOKENS.index(t)] if t in ESP_TOKENS else init_rows[i]
        assert torch.equal(rows[i], want), t
    C, cols, mine = ours.cond_total, ours._cond_columns(), ours.state_dict()
    for k, v in esp.state_dict().items():            # everything else, bit for bit (widened layers: their columns)
        if k == "enc.embed.weight": continue
        w = mine[k]
        if k in cols and w.shape != v.shape: w = torch.cat([w[:, :cols[k]], w[:, cols[k] + C:]], 1)
        assert torch.equal(w, v), k


def test_warm_start_normalises_with_the_pack_statistics(tmp_path, monkeypatch):
    "A warm start without stats_file of its own normalises with the statistics ESPnet2's GlobalMVN was built from."
    from emonb.feats.mel import GlobalMVN as OurMVN
    from emonb.task import init_feats_stats
    monkeypatch.setenv("EMONB_CACHE", str(tmp_path/"cache"))
    monkeypatch.chdir(tmp_path)
    zip_path, _ = espnet2_pack(tmp_path)
    path = init_feats_stats([str(zip_path)], tmp_path/"run/stats/train/feats_stats.npz")
    ours, theirs = OurMVN(path), GlobalMVN(str(tmp_path/"exp/tts_stats_raw_char/train/feats_stats.npz"))
    assert torch.equal(ours.mean, theirs.mean.float()) and torch.equal(ours.std, theirs.std.float())
