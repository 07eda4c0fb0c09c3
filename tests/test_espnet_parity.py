"""Parity with ESPnet2: emonb's Tacotron2Controllable with conditioning off, loaded with an ESPnet2
Tacotron2's weights, gives ESPnet2's losses, gradients and inference outputs (float32 rounding apart),
single- and multi-speaker (speaker ids `sids`, speaker embeddings `spembs` added or concatenated).

ESPnet2 is not an emonb dependency: this test is skipped unless it is importable. To run it:
    pip install --no-deps espnet typeguard && pytest tests/test_espnet_parity.py -s
"""
import logging, warnings

import pytest
import torch

pytest.importorskip("espnet2.tts.tacotron2.tacotron2", reason="espnet2 not installed (pip install --no-deps espnet typeguard)")
from espnet2.tts.tacotron2.tacotron2 import Tacotron2
from emonb.models.tacotron2 import Tacotron2Controllable

TOL = 1e-5
idim, odim = 20, 10
small = dict(embed_dim=32, eunits=32, econv_chans=32, adim=24, aconv_chans=8, aconv_filts=7, dunits=48,
             prenet_units=24, postnet_chans=24)

def batch():
    g = torch.Generator().manual_seed(0)
    tl = torch.tensor([9, 7, 4])                       # sorted: ESPnet packs without enforce_sorted=False
    text = torch.randint(1, idim - 1, (3, 9), generator=g) * (torch.arange(9)[None] < tl[:, None])
    fl = torch.tensor([23, 17, 12])
    feats = torch.randn(3, 23, odim, generator=g) * (torch.arange(23)[None, :, None] < fl[:, None, None])
    return text, tl, feats, fl

def maxdiff(a, b): return (a - b).abs().max().item()

def speakers(conf):
    "The speaker inputs of `batch()` for a configuration: ids as ESPnet2 batches them (B, 1), embeddings (B, D)."
    g = torch.Generator().manual_seed(1)
    out = {"sids": torch.tensor([[2], [0], [1]])} if (conf.get("spks") or 0) > 1 else {}
    if conf.get("spk_embed_dim"): out["spembs"] = torch.randn(3, conf["spk_embed_dim"], generator=g)
    return out

def first(spk):
    "The speaker inputs of the first utterance, as ESPnet2's inference takes them: sids (1,), spembs (D,)."
    return {k: v[0] for k, v in spk.items()}

def build(conf, seed=0):
    torch.manual_seed(seed)
    esp = Tacotron2(idim, odim, **conf)
    ours = Tacotron2Controllable(idim, odim, **conf)
    missing = ours.load_espnet_state_dict(esp.state_dict())
    assert missing == [], missing
    return esp, ours

def compare(conf, label):
    res = {}
    text, tl, feats, fl = batch()
    spk = speakers(conf)
    # 1) eval mode, no dropout: losses and decoder outputs
    esp, ours = build({**conf, "dropout_rate": 0.0})
    esp.eval(); ours.eval()
    with torch.no_grad():
        le, se, _ = esp(text, tl, feats, fl, **spk); lo, so, _ = ours(text, tl, feats, fl, **spk)
        res["eval_loss"] = abs(le.item() - lo.item())
        res["eval_stats"] = max(abs(se[k].item() - so[k].item()) for k in se if k != "loss")
        xs, il = ours._add_eos(text, tl)
        sids, spembs = ours._check_speaker(3, spk.get("sids"), spk.get("spembs"))
        oe = esp._forward(xs, il, feats, fl, spk.get("spembs"), spk.get("sids"), None)
        oo = ours._forward(xs, il, feats, sids=sids, spembs=spembs)
        res["eval_outputs"] = max(maxdiff(a, b) for a, b in zip(oe, oo))
    # 2) train mode (batch-norm batch statistics), no dropout / zoneout: loss and gradients
    esp, ours = build({**conf, "dropout_rate": 0.0, "zoneout_rate": 0.0})
    le, _, _ = esp(text, tl, feats, fl, **spk); lo, _, _ = ours(text, tl, feats, fl, **spk)
    le.backward(); lo.backward()
    go = dict(ours.named_parameters())
    res["train_loss"] = abs(le.item() - lo.item())
    res["train_grads"] = max(maxdiff(p.grad, go[n].grad) for n, p in esp.named_parameters() if p.grad is not None)
    # 3) inference, eval mode: no dropout, then the default always-on prenet dropout with the same seed
    for dr in (0.0, 0.5):
        esp, ours = build({**conf, "dropout_rate": dr})
        esp.eval(); ours.eval()
        for cons, thr in ((False, 0.5), (True, 0.5), (False, 2.0), (True, 2.0)):   # threshold 2: never stops early
            kw = dict(threshold=thr, maxlenratio=4.0, use_att_constraint=cons)
            torch.manual_seed(1); ie = esp.inference(text[0, :9], **first(spk), **kw)
            torch.manual_seed(1); io = ours.inference(text[0, :9], **first(spk), **kw)
            key = f"infer_dropout{dr}_constraint{int(cons)}_thr{thr}"
            if ie["feat_gen"].shape != io["feat_gen"].shape:
                res[key] = f"length {tuple(ie['feat_gen'].shape)} vs {tuple(io['feat_gen'].shape)}"
            else:
                res[key] = max(maxdiff(ie[k], io[k]) for k in ("feat_gen", "prob", "att_w"))
                res[key + "_len"] = ie["feat_gen"].size(0)
    print(label, {k: (f"{v:.2e}" if isinstance(v, float) else v) for k, v in res.items()})
    return res

CASES = [(dict(atype=a, reduction_factor=r), f"{a} r={r}") for a in ("location", "forward", "forward_ta") for r in (1, 2, 3)]
CASES += [(dict(use_concate=False, output_activation="tanh", use_residual=True, elayers=2, dlayers=1), "no concate, tanh, residual"),
          (dict(use_masking=False, use_weighted_masking=True, loss_type="L1", prenet_layers=0, postnet_layers=0), "weighted masking, L1, bare"),
          (dict(use_guided_attn_loss=False, loss_type="L2", use_batch_norm=False, cumulate_att_w=False), "no guided attn, L2, no BN")]
SPEAKER_CASES = [(dict(spks=3), "spks=3"),
                 (dict(spk_embed_dim=6, spk_embed_integration_type="add"), "spembs add"),
                 (dict(spk_embed_dim=6, spk_embed_integration_type="concat"), "spembs concat"),
                 (dict(spks=3, spk_embed_dim=6, spk_embed_integration_type="concat"), "spks + spembs concat"),
                 (dict(spks=3, spk_embed_dim=6, spk_embed_integration_type="add", atype="forward_ta", reduction_factor=2),
                  "spks + spembs add, forward_ta r=2")]
CASES += SPEAKER_CASES


@pytest.mark.parametrize("conf,label", CASES, ids=[c[1] for c in CASES])
def test_parity(conf, label):
    logging.disable(logging.WARNING); warnings.filterwarnings("ignore")
    res = compare({**small, **conf}, label)
    for k, v in res.items():
        if k.endswith("_len"): continue
        assert isinstance(v, float), f"{label}: {k}: {v}"
        assert v < TOL, f"{label}: {k} differs by {v:.2e}"


FUSIONS = [dict(fusion="attention"), dict(fusion="attention", attention_fusion="add"), dict(fusion="decoder")]
SPEAKERS = [dict(), dict(spks=3, spk_embed_dim=6, spk_embed_integration_type="concat"),
            dict(spks=3, spk_embed_dim=6, spk_embed_integration_type="add")]

@pytest.mark.parametrize("spk_conf", SPEAKERS, ids=["single-speaker", "spks + spembs concat", "spks + spembs add"])
@pytest.mark.parametrize("fus", FUSIONS, ids=["attention concat", "attention add", "decoder"])
def test_conditioned_model_starts_as_espnet2(fus, spk_conf):
    "A conditioned model warm-started from ESPnet2 weights reproduces ESPnet2's output for any label (and speaker)."
    logging.disable(logging.WARNING)
    text, tl, feats, fl = batch()
    torch.manual_seed(0)
    esp = Tacotron2(idim, odim, **small, **spk_conf, dropout_rate=0.0).eval()
    ours = Tacotron2Controllable(idim, odim, **small, **spk_conf, dropout_rate=0.0, n_emotions=4, prosody_dim=9, **fus).eval()
    ours.load_espnet_state_dict({"tts." + k: v for k, v in esp.state_dict().items()})
    spk = speakers(spk_conf)
    for i in range(3 if spk else 1):                    # each speaker of the batch
        one = {k: v[i] for k, v in spk.items()}
        ie = esp.inference(text[i, :int(tl[i])], **one, threshold=2.0, maxlenratio=3.0)
        diffs = []
        for lab in (torch.tensor([1., 0, 0, 0]), torch.tensor([0., 0.3, 0.7, 0])):
            io = ours.inference(text[i, :int(tl[i])], emo_labs=lab, emo_feats=ours.predict_prosody(lab[None])[0], **one,
                                threshold=2.0, maxlenratio=3.0)
            diffs.append(maxdiff(ie["feat_gen"], io["feat_gen"]))
        print(fus, spk_conf, f"speaker {i}: {max(diffs):.2e}")
        assert max(diffs) < TOL
