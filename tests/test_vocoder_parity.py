"""Parity with parallel_wavegan: a vocoder saved in its layout (checkpoint, config.yml, stats) gives, through
emonb's ParallelWaveGANVocoder, the waveform that parallel_wavegan's own loader and inference give (ESPnet2's path),
to 1e-5; and parallel_wavegan's log10 features are emonb's natural-log features divided by ln 10.

parallel_wavegan is an optional extra: these tests are skipped unless it is importable. To run them:
    pip install --no-deps parallel-wavegan h5py kaldiio && pytest tests/test_vocoder_parity.py -s
(kaldiio only because parallel_wavegan's feature extraction, `bin/preprocess.py`, imports it.)
"""
import math, warnings

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("parallel_wavegan", reason="parallel_wavegan not installed (see the module docstring)")
pytest.importorskip("kaldiio", reason="kaldiio not installed: parallel_wavegan's bin/preprocess.py needs it")
from emonb.core import data_samples_dir
from emonb.data.corpus import read_data_dir
from emonb.feats.mel import LogMelFbank
from emonb.vocoder import ParallelWaveGANVocoder, import_parallel_wavegan, save_vocoder

pwg = import_parallel_wavegan()
from parallel_wavegan.utils import load_model
from parallel_wavegan.bin.preprocess import logmelfilterbank

TOL = 1e-5
FRONT_END = dict(sampling_rate=22050, fft_size=1024, hop_size=256, win_length=None, window="hann", num_mels=80,
                 fmin=80, fmax=7600)
CONFIGS = {
    "hifigan": dict(FRONT_END, format="npy", generator_type="HiFiGANGenerator",
                    generator_params=dict(in_channels=80, out_channels=1, channels=32, kernel_size=7,
                                          upsample_scales=[8, 8, 4], upsample_kernel_sizes=[16, 16, 8],
                                          resblock_kernel_sizes=[3, 7], resblock_dilations=[[1, 3], [1, 3]])),
    "multiband_melgan": dict(FRONT_END, format="hdf5", generator_type="MelGANGenerator",
                             generator_params=dict(in_channels=80, out_channels=4, channels=64, kernel_size=7,
                                                   upsample_scales=[4, 4, 4], stack_kernel_size=3, stacks=2),
                             pqmf_params=dict(taps=62, cutoff_ratio=0.142, beta=9.0)),
}


@pytest.fixture(scope="module")
def wavs():
    recs = list(read_data_dir(data_samples_dir()/"dev").values())[:3]
    return [sf.read(r["wav"], dtype="float32")[0] for r in recs]


def pwg_log10_mel(y):
    c = FRONT_END
    return logmelfilterbank(y, c["sampling_rate"], c["fft_size"], c["hop_size"], c["win_length"], c["window"],
                            c["num_mels"], c["fmin"], c["fmax"]).astype(np.float32)


def saved_vocoder(tmp_path, name, wavs, seed=0):
    "A tiny untrained generator of CONFIGS[name] made by parallel_wavegan, saved with real log10 statistics."
    config = CONFIGS[name]
    torch.manual_seed(seed)
    g = getattr(pwg.models, config["generator_type"])(**config["generator_params"])
    feats = np.concatenate([pwg_log10_mel(y) for y in wavs])
    out = tmp_path/name
    save_vocoder(out, g, config, feats.mean(0), feats.std(0), steps=100)
    return out


def test_features_are_log10_of_ours(wavs):
    "parallel_wavegan's log10 mel = emonb's natural-log mel / ln 10 (same STFT, Slaney filters, floor)."
    fe = LogMelFbank()
    for y in wavs:
        ours = fe(torch.from_numpy(y))[0][0].numpy() / math.log(10)
        theirs = pwg_log10_mel(y)
        assert ours.shape == theirs.shape
        loud = theirs > theirs.max() - 6                       # within 60 dB of the loudest bin
        assert np.abs(ours - theirs)[loud].max() < 1e-4, np.abs(ours - theirs)[loud].max()
        assert np.abs(ours - theirs).max() < 1e-2               # quiet bins: float32 vs float64 STFT


@pytest.mark.parametrize("name", list(CONFIGS))
def test_waveform_parity(tmp_path, wavs, name):
    "The same mel through emonb and through parallel_wavegan (load_model + inference) gives the same waveform."
    out = saved_vocoder(tmp_path, name, wavs)
    ckpt = next(out.glob("checkpoint-*steps.pkl"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = load_model(str(ckpt))
        ref.remove_weight_norm()
        ref.eval()
        ours = ParallelWaveGANVocoder.from_feats_extract(LogMelFbank(), out)
    diffs = []
    for y in wavs:
        log10_mel = pwg_log10_mel(y)
        with torch.no_grad(): want = ref.inference(torch.from_numpy(log10_mel), normalize_before=True).view(-1)
        got = ours(torch.from_numpy(log10_mel) * math.log(10))          # emonb's natural-log mel
        assert got.shape == want.shape == (len(log10_mel) * 256,)
        diffs.append((got - want).abs().max().item())
        unconverted = ours(torch.from_numpy(log10_mel) * math.log(10) / ours.to_vocoder_log)  # log10 taken as ln
        assert (unconverted - want).abs().max().item() > 100 * TOL                            # the test can tell
    print(f"{name}: max abs difference {max(diffs):.2e} (waveform peak {want.abs().max():.3f})")
    assert max(diffs) <= TOL


def test_end_to_end_from_audio(tmp_path, wavs):
    "From the recording: emonb's own features through emonb's vocoder vs parallel_wavegan's features and model."
    out = saved_vocoder(tmp_path, "hifigan", wavs)
    ref = load_model(str(next(out.glob("checkpoint-*steps.pkl"))))
    ref.remove_weight_norm()
    ours, fe = ParallelWaveGANVocoder.from_feats_extract(LogMelFbank(), out), LogMelFbank()
    for y in wavs:
        with torch.no_grad():
            want = ref.eval().inference(torch.from_numpy(pwg_log10_mel(y)), normalize_before=True).view(-1)
        got = ours(fe(torch.from_numpy(y))[0][0])
        d = (got - want).abs().max().item()
        print(f"end to end: max abs difference {d:.2e}")
        assert d < 1e-3


def test_batch_and_parallel_wavegan_generator(tmp_path, wavs):
    "A padded batch one at a time equals single calls; a Parallel WaveGAN generator runs with seeded noise."
    config = dict(FRONT_END, format="npy", generator_type="ParallelWaveGANGenerator",
                  generator_params=dict(in_channels=1, out_channels=1, kernel_size=3, layers=4, stacks=2,
                                        residual_channels=8, gate_channels=16, skip_channels=8, aux_channels=80,
                                        aux_context_window=2, upsample_net="ConvInUpsampleNetwork",
                                        upsample_params=dict(upsample_scales=[4, 4, 4, 4])))
    torch.manual_seed(0)
    g = pwg.models.ParallelWaveGANGenerator(**config["generator_params"])
    out = tmp_path/"pwg"
    save_vocoder(out, g, config)
    ref = load_model(str(next(out.glob("checkpoint-*steps.pkl"))))
    ref.remove_weight_norm()
    ours = ParallelWaveGANVocoder.from_feats_extract(LogMelFbank(), out)
    mel = torch.from_numpy(pwg_log10_mel(wavs[0]))
    torch.manual_seed(3)
    with torch.no_grad(): want = ref.eval().inference(mel).view(-1)
    torch.manual_seed(3)
    got = ours(mel * math.log(10))
    assert (got - want).abs().max().item() <= TOL
    lens = torch.tensor([len(mel), len(mel) - 7])
    batch = torch.stack([mel, mel]) * math.log(10)
    torch.manual_seed(4)
    outs = ours(batch, lens)
    assert [len(o) for o in outs] == [n * 256 for n in lens.tolist()]
