"""Fixture group `v2pro`: the speaker-verification path and the v2Pro / v2ProPlus SoVITS, from the official code.

    python tools/make_official_fixtures.py --official /path/to/GPT-SoVITS v2pro

Runs, on the CPU in float32 with one thread and fixed inputs:
- `GPT_SoVITS/eres2net/kaldi.py · fbank` (several waveforms, edge lengths, a few options);
- `torchaudio.transforms.Resample(32000, 16000)` as `prepare_datasets/2-get-sv.py` builds it
  (torchaudio must be importable; its pure-Python resampler is enough: set GSV_TORCHAUDIO_PATH to
  a folder holding an unpacked torchaudio wheel if the installed torch has no matching torchaudio);
- `GPT_SoVITS/eres2net/ERes2NetV2.py · ERes2NetV2` `forward3` and `forward`, official size and tiny,
  weights from tests/fixtures/v2pro/sv_weight_rule.py;
- `GPT_SoVITS/module/models.py · SynthesizerTrn(version="v2Pro" | "v2ProPlus")` `decode` at the
  official size (rule weights) and `forward` / `decode` at a tiny size;
- `MultiPeriodDiscriminator(version="v2Pro")` (7 periods) and the losses of `module/losses.py`;
- `GPT_SoVITS/process_ckpt.py · savee` exports with the "05" / "06" headers and what
  `get_sovits_version_from_path_fast` / `load_sovits_new` make of them.
Writes tests/fixtures/v2pro/*.pt, export/*.pth and numerics.json (float32 vs float64 re-runs).
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import pathlib
import sys
import types

import numpy as np
import torch

REPO = pathlib.Path(__file__).resolve().parents[2]
RULES = REPO / "tests" / "fixtures" / "v2pro"
SEED = 1234

# The tiny SynthesizerTrn: configs/s2v2Pro.json (s2v2ProPlus.json) with these model sizes.
TINY_MODEL = {"inter_channels": 16, "hidden_channels": 32, "filter_channels": 64, "n_layers": 4,
              "gin_channels": 64}
TINY_UPSAMPLE_INITIAL = {"v2Pro": 128, "v2ProPlus": 192}   # official 512 / 768 (ratio kept)
TINY_SEGMENT_SIZE = 5120                                    # samples (8 frames)
VERSIONS = ("v2Pro", "v2ProPlus")


def _save(obj, path: pathlib.Path) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def test_wave(n: int, sr: int, seed: int) -> torch.Tensor:
    """A deterministic speech-like test signal [n] in (-1, 1): two partials, a chirp, noise, an envelope."""
    t = np.arange(n) / sr
    rs = np.random.RandomState(seed)
    f0 = 110.0 + 40.0 * seed
    x = (0.30 * np.sin(2 * np.pi * f0 * t) + 0.15 * np.sin(2 * np.pi * 2.5 * f0 * t + 0.3)
         + 0.10 * np.sin(2 * np.pi * (300.0 * t + 1500.0 * t * t))
         + 0.02 * rs.standard_normal(n))
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t + seed)
    return torch.from_numpy(x.astype(np.float32))


@contextlib.contextmanager
def _official_imports(official: pathlib.Path):
    """Official GPT_SoVITS/ and eres2net/ on sys.path (models.py's v3 DiT import stubbed), cwd = root."""
    code = official / "GPT_SoVITS"
    saved_path, saved_cwd = list(sys.path), os.getcwd()
    if "f5_tts.model" not in sys.modules:
        stub = types.ModuleType("f5_tts.model")
        stub.DiT = None  # the v3/v4 DiT; v2Pro never builds it
        sys.modules["f5_tts"] = types.ModuleType("f5_tts")
        sys.modules["f5_tts.model"] = stub
    sys.path[:0] = [str(code / "eres2net"), str(code), str(official)]
    os.chdir(official)  # tools/i18n (imported by process_ckpt) finds its locale files relative to cwd
    try:
        yield
    finally:
        sys.path[:] = saved_path
        os.chdir(saved_cwd)


def _rules():
    sys.path.insert(0, str(RULES))
    sys.path.insert(0, str(REPO / "tests" / "fixtures" / "sovits_v2"))
    import sv_weight_rule  # noqa: E402
    import weight_rule  # noqa: E402
    return weight_rule, sv_weight_rule


def _maxabs(a, b) -> float:
    return float((a.double() - b.double()).abs().max())


# ---------------------------------------------------------------------------------------- fbank
def make_kaldi(out: pathlib.Path, report: dict) -> list[pathlib.Path]:
    kaldi = importlib.import_module("kaldi")
    waves = {
        "one_frame_400": test_wave(400, 16000, 1),
        "odd_401": test_wave(401, 16000, 2),
        "almost_two_frames_559": test_wave(559, 16000, 3),
        "two_frames_560": test_wave(560, 16000, 4),
        "odd_16037": test_wave(16037, 16000, 5),
    }
    silent = test_wave(4801, 16000, 6)
    silent[1600:3200] = 0.0  # 100 ms of digital silence: whole frames at the log floor
    waves["silence_inside_4801"] = silent
    fbank = {name: kaldi.fbank(w[None], num_mel_bins=80, sample_frequency=16000, dither=0) for name, w in waves.items()}
    options = {
        "snip_edges_false": {"snip_edges": False},
        "use_energy": {"use_energy": True},
        "energy_after_window_htk": {"use_energy": True, "raw_energy": False, "htk_compat": True},
        "hamming_subtract_mean": {"window_type": "hamming", "subtract_mean": True},
        "magnitude_linear": {"use_power": False, "use_log_fbank": False},
        "bins23_band_100_7600": {"num_mel_bins": 23, "low_freq": 100.0, "high_freq": -400.0},
    }
    base = waves["silence_inside_4801"]
    with_options = {}
    for name, kw in options.items():
        kw = {"num_mel_bins": 80, "sample_frequency": 16000, "dither": 0, **kw}
        with_options[name] = {"kwargs": {k: v for k, v in kw.items()}, "fbank": kaldi.fbank(base[None], **kw)}
    too_short = {}
    for n in (1, 200, 399):
        try:
            kaldi.fbank(test_wave(n, 16000, 8)[None], num_mel_bins=80, sample_frequency=16000, dither=0)
            too_short[str(n)] = "no error"
        except Exception as error:  # noqa: BLE001 - we record what the official code raises
            too_short[str(n)] = type(error).__name__
    banks = kaldi.get_mel_banks(80, 512, 16000.0, 20.0, 0.0, 100.0, -500.0, 1.0)
    window = torch.hann_window(400, periodic=False).pow(0.85)
    report["kaldi_f32_vs_f64_maxabs"], report["kaldi_f32_vs_f64_max_error_over_tolerance"] = {}, {}
    for name, w in waves.items():
        f64 = kaldi.fbank(w[None].double(), num_mel_bins=80, sample_frequency=16000, dither=0)
        report["kaldi_f32_vs_f64_maxabs"][name] = _maxabs(fbank[name], f64)
        report["kaldi_f32_vs_f64_max_error_over_tolerance"][name] = float(
            ((fbank[name].double() - f64).abs() / (1e-5 + 1e-4 * f64.abs())).max())
    obj = {"waves": waves, "fbank": fbank, "options": with_options, "too_short_official_error": too_short,
           "mel_banks": banks, "povey_window": window, "call": "fbank(wav[None], num_mel_bins=80, "
           "sample_frequency=16000, dither=0)"}
    return [_save(obj, out / "kaldi_fbank.pt")]


# ------------------------------------------------------------------------------------- resample
def make_resample(out: pathlib.Path, report: dict) -> list[pathlib.Path]:
    extra = os.environ.get("GSV_TORCHAUDIO_PATH")
    if extra:
        sys.path.insert(0, extra)
    try:
        import torchaudio
    except Exception as error:  # noqa: BLE001
        raise SystemExit(f"v2pro: torchaudio is needed for the resampler fixture and does not import ({error}); "
                         "set GSV_TORCHAUDIO_PATH to an unpacked torchaudio wheel") from None
    resampler = torchaudio.transforms.Resample(32000, 16000)
    lengths = (1, 2, 3, 27, 28, 29, 800, 801, 32003)
    inputs = {n: test_wave(n, 32000, 10 + i)[None] for i, n in enumerate(lengths)}
    outputs = {n: resampler(x) for n, x in inputs.items()}
    batch = torch.stack([test_wave(1000, 32000, 30 + i) for i in range(6)]).reshape(2, 3, 1000)
    others = {}
    for orig, new in ((16000, 32000), (44100, 16000), (48000, 16000)):
        x = test_wave(1001, orig, 40)[None]
        others[f"{orig}_{new}"] = {"input": x, "output": torchaudio.transforms.Resample(orig, new)(x)}
    obj = {"torchaudio_version": torchaudio.__version__, "kernel": resampler.kernel.clone(),
           "width": resampler.width, "inputs": inputs, "outputs": outputs, "batch_input": batch,
           "batch_output": resampler(batch), "other_rates": others,
           "call": "torchaudio.transforms.Resample(32000, 16000)"}
    report["torchaudio_version"] = torchaudio.__version__
    return [_save(obj, out / "resample.pt")]


# ----------------------------------------------------------------------------------- ERes2NetV2
TINY_SV = {"num_blocks": [1, 1, 2, 1], "m_channels": 8, "baseWidth": 32, "scale": 2, "expansion": 2,
           "embedding_size": 32}
ASTP_SV = {"num_blocks": [1, 1, 1, 1], "m_channels": 8, "baseWidth": 26, "scale": 3, "expansion": 2,
           "embedding_size": 16, "pooling_func": "ASTP", "two_emb_layer": True}
OFFICIAL_SV = {"baseWidth": 24, "scale": 4, "expansion": 4}


def _sv_model(args, sv_rule):
    net = importlib.import_module("ERes2NetV2")
    return sv_rule.fill_module(net.ERes2NetV2(**args)).eval()


def _shapes(model) -> list:
    return [[k, list(v.shape)] for k, v in model.state_dict().items()]


def make_eres2net(out: pathlib.Path, report: dict, resampler) -> tuple[list[pathlib.Path], dict]:
    _, sv_rule = _rules()
    kaldi = importlib.import_module("kaldi")
    fb = functools.partial(kaldi.fbank, num_mel_bins=80, sample_frequency=16000, dither=0)
    written = []
    # tiny: two utterances of 8640 samples (53 frames: not a multiple of 8)
    feats = torch.stack([fb(test_wave(8640, 16000, 50 + i)[None]) for i in range(2)])  # [2, 53, 80]
    tiny = {"feats": feats}
    for name, args in (("tiny", TINY_SV), ("astp_two_emb", ASTP_SV)):
        model = _sv_model(args, sv_rule)
        with torch.no_grad():
            f3 = model.forward3(feats.clone())
            emb = model(feats.clone())
            model64 = _sv_model(args, sv_rule).double()
            report.setdefault("eres2net_f32_vs_f64_maxabs", {})[name] = {
                "forward3": _maxabs(f3, model64.forward3(feats.double().clone())),
                "embedding": _maxabs(emb, model64(feats.double().clone()))}
        tiny[name] = {"args": args, "forward3": f3, "embedding": emb, "state_dict_shapes": _shapes(model),
                      "num_parameters": sum(p.numel() for p in model.parameters())}
    written.append(_save(tiny, out / "eres2net_tiny.pt"))

    # official size: the training-data path of 2-get-sv.py on a 0.75 s 32 kHz wav, and 16 kHz refs
    model = _sv_model(OFFICIAL_SV, sv_rule)
    wav32k = test_wave(24000, 32000, 60)[None]                          # [1, 24000]
    wav16k = resampler(wav32k)                                          # [1, 12000]
    feats32 = torch.stack([fb(w[None]) for w in wav16k])                # [1, 73, 80]
    refs16k = [test_wave(n, 16000, 61 + i)[None] for i, n in enumerate((14400, 11200))]
    with torch.no_grad():
        sv_train = model.forward3(feats32.clone())                      # [1, 20480]
        emb = model(feats32.clone())                                    # [1, 192]
        sv_refs = [model.forward3(torch.stack([fb(r)]).clone()) for r in refs16k]
        model64 = _sv_model(OFFICIAL_SV, sv_rule).double()
        report.setdefault("eres2net_f32_vs_f64_maxabs", {})["official"] = {
            "forward3": _maxabs(sv_train, model64.forward3(feats32.double().clone())),
            "embedding": _maxabs(emb, model64(feats32.double().clone()))}
    official = {"args": OFFICIAL_SV, "wav32k": wav32k, "wav16k": wav16k, "feats": feats32,
                "forward3": sv_train, "embedding": emb, "refs16k": refs16k, "refs_forward3": sv_refs,
                "state_dict_shapes": _shapes(model), "num_parameters": sum(p.numel() for p in model.parameters())}
    written.append(_save(official, out / "eres2net_official.pt"))
    return written, {"sv_train": sv_train, "sv_refs": sv_refs}


# ------------------------------------------------------------------------------- SynthesizerTrn
def _official_config(official: pathlib.Path, version: str) -> dict:
    name = "s2v2Pro.json" if version == "v2Pro" else "s2v2ProPlus.json"
    return json.loads((official / "GPT_SoVITS" / "configs" / name).read_text())


def _build_official_size(official, version, rule):
    models = importlib.import_module("module.models")
    cfg = _official_config(official, version)
    g = models.SynthesizerTrn(cfg["data"]["filter_length"] // 2 + 1,
                              cfg["train"]["segment_size"] // cfg["data"]["hop_length"],
                              n_speakers=cfg["data"]["n_speakers"], **cfg["model"], version=version)
    return rule.fill_module(g).eval(), cfg


def _tiny_model_kwargs(official, version) -> dict:
    cfg = _official_config(official, version)
    model = {**cfg["model"], **TINY_MODEL, "upsample_initial_channel": TINY_UPSAMPLE_INITIAL[version]}
    return model


def _build_tiny(official, version, rule):
    """The official class at tiny sizes; its MRTE() (hard-coded 192/512/192) swapped for content/out =
    hidden_channels, width 512 (= the ge_to512 output that feeds it), at construction time only.
    Weights: `sv_weight_rule.fill_tiny_sovits` (the sovits_v2 rule, enc_q.proj x 0.1)."""
    _, sv_rule = _rules()
    models = importlib.import_module("module.models")
    mrte_model = importlib.import_module("module.mrte_model")
    kwargs = _tiny_model_kwargs(official, version)
    original = models.MRTE
    models.MRTE = functools.partial(mrte_model.MRTE, content_enc_channels=kwargs["hidden_channels"],
                                    hidden_size=512, out_channels=kwargs["hidden_channels"])
    try:
        g = models.SynthesizerTrn(1025, TINY_SEGMENT_SIZE // 640, n_speakers=300, **kwargs, version=version)
    finally:
        models.MRTE = original
    return sv_rule.fill_tiny_sovits(g).eval(), kwargs


@contextlib.contextmanager
def _replayed_draws(eps: torch.Tensor, uniform: torch.Tensor):
    """torch.randn_like / torch.rand return the recorded draws (in the caller's dtype): lets the
    float64 re-run of the official forward see the same noise as the float32 run."""
    randn_like, rand = torch.randn_like, torch.rand
    torch.randn_like = lambda t, *a, **k: eps.to(t.dtype)
    torch.rand = lambda *a, **k: uniform.to(k.get("dtype") or torch.float32)
    try:
        yield
    finally:
        torch.randn_like, torch.rand = randn_like, rand


def _ge_parts(g, refer, sv):
    """ref_enc + sv_emb → prelu (ge, [B, 1024|gin, 1]) and ge_to512 (ge512) as decode/forward compute them."""
    mask = torch.ones(refer.shape[0], 1, refer.shape[2])
    ge = g.ref_enc(refer[:, :704] * mask, mask) + g.sv_emb(sv).unsqueeze(-1)
    ge = g.prelu(ge)
    return ge, g.ge_to512(ge.transpose(2, 1)).transpose(2, 1)


def _code_margin(g, ssl) -> float:
    x = g.ssl_proj(ssl).transpose(1, 2).reshape(-1, 768)
    embed = g.quantizer.vq.layers[0]._codebook.embed
    d = torch.cdist(x.double(), embed.double()) ** 2
    top2 = d.topk(2, largest=False).values
    return float((top2[:, 1] - top2[:, 0]).min())


def make_synth_official(official, out, report, svs) -> list[pathlib.Path]:
    rule, _ = _rules()
    mel = importlib.import_module("module.mel_processing")
    torch.manual_seed(SEED)
    ssl = 0.5 * torch.randn(1, 768, 24)
    text = torch.randint(1, 732, (1, 10))
    refer = mel.spectrogram_torch(test_wave(19200, 32000, 70)[None], 2048, 32000, 640, 2048, center=False)
    refer2 = mel.spectrogram_torch(test_wave(23040, 32000, 71)[None], 2048, 32000, 640, 2048, center=False)
    sv, sv2 = svs["sv_refs"]
    obj = {"inputs": {"ssl": ssl, "text": text, "refer": refer, "refer2": refer2, "sv": sv, "sv2": sv2}}
    for version in VERSIONS:
        g, cfg = _build_official_size(official, version, rule)
        with torch.no_grad():
            codes = g.extract_latent(ssl)                                        # [1, 1, 12]
            ge, ge512 = _ge_parts(g, refer, sv)
            quantized = torch.nn.functional.interpolate(g.quantizer.decode(codes.transpose(0, 1)),
                                                        scale_factor=2, mode="nearest")
            _, m_p, logs_p, y_mask, _, _ = g.enc_p(quantized, torch.LongTensor([24]), text,
                                                   torch.LongTensor([10]), ge512)
            wav = g.decode(codes.transpose(0, 1), text, refer, noise_scale=0.0, sv_emb=sv)
            wav_list = g.decode(codes.transpose(0, 1), text, [refer, refer2], noise_scale=0.0, sv_emb=[sv, sv2])
            margin = _code_margin(g, ssl)
            g64 = _build_official_size(official, version, rule)[0].double()
            wav64 = g64.decode(codes.transpose(0, 1), text, refer.double(), noise_scale=0.0, sv_emb=sv.double())
        report.setdefault("synth_official", {})[version] = {
            "decode_f32_vs_f64_maxabs": _maxabs(wav, wav64), "code_margin_min_sq_gap": margin,
            "num_parameters": sum(p.numel() for p in g.parameters()), "num_keys": len(g.state_dict())}
        obj[version] = {"config": cfg, "codes": codes, "ge": ge, "ge512": ge512, "m_p": m_p, "logs_p": logs_p,
                        "wav": wav, "wav_refer_list": wav_list, "state_dict_shapes": _shapes(g)}
        del g, g64
    return [_save(obj, out / "synth_official.pt")]


def make_synth_tiny(official, out, report) -> tuple[list[pathlib.Path], dict]:
    rule, _ = _rules()
    mel = importlib.import_module("module.mel_processing")
    torch.manual_seed(SEED)
    lengths = torch.LongTensor([40, 30])
    waves = [test_wave(25600, 32000, 80), test_wave(19200, 32000, 81)]
    spec = torch.zeros(2, 1025, 42)
    for i, w in enumerate(waves):
        s = mel.spectrogram_torch(w[None], 2048, 32000, 640, 2048, center=False)[0]
        spec[i, :, : s.shape[-1]] = s
    ssl = 0.5 * torch.randn(2, 768, 42)
    ssl[1, :, 30:] = 0
    text = torch.randint(1, 732, (2, 12))
    text[1, 9:] = 0
    text_lengths = torch.LongTensor([12, 9])
    sv = 0.3 * torch.rand(2, 20480)
    inputs = {"spec": spec, "spec_lengths": lengths, "ssl": ssl, "text": text, "text_lengths": text_lengths,
              "sv": sv}
    obj = {"inputs": inputs, "segment_size": TINY_SEGMENT_SIZE, "mrte": {"hidden_size": 512}}
    for version in VERSIONS:
        g, kwargs = _build_tiny(official, version, rule)
        with torch.no_grad():
            mask = (torch.arange(42)[None] < lengths[:, None]).float()[:, None]  # [2, 1, 42]
            ge = g.ref_enc(spec[:, :704] * mask, mask) + g.sv_emb(sv).unsqueeze(-1)
            ge = g.prelu(ge)
            ge512 = g.ge_to512(ge.transpose(2, 1)).transpose(2, 1)
            torch.manual_seed(SEED)
            o, commit_loss, ids_slice, y_mask, _, (z, z_p, m_p, logs_p, m_q, logs_q), quantized = g(
                ssl, spec, lengths, text, text_lengths, sv_emb=sv)
            torch.manual_seed(SEED)
            eps = torch.randn_like(m_q)
            slice_uniform = torch.rand([2])
            assert torch.allclose(z, (m_q + eps * torch.exp(logs_q)) * y_mask), "RNG order changed"
            codes = g.extract_latent(ssl[0:1, :, :40])                          # [1, 1, 20]
            decode = g.decode(codes.transpose(0, 1), text[0:1], spec[1:2, :, :30], noise_scale=0.0,
                              sv_emb=sv[1:2])
            decode_list = g.decode(codes.transpose(0, 1), text[0:1], [spec[0:1, :, :40], spec[1:2, :, :30]],
                                   noise_scale=0.0, sv_emb=[sv[0:1], sv[1:2]])
            decode_speed = g.decode(codes.transpose(0, 1), text[0:1], spec[1:2, :, :30], noise_scale=0.0,
                                    speed=1.25, sv_emb=sv[1:2])
            try:
                g.infer(ssl, spec, lengths, text, text_lengths, noise_scale=0.0)
                infer_error = "no error"
            except Exception as error:  # noqa: BLE001 - official infer() was never updated for v2Pro
                infer_error = f"{type(error).__name__}: {str(error).splitlines()[0]}"
            g64 = _build_tiny(official, version, rule)[0].double()
            decode64 = g64.decode(codes.transpose(0, 1), text[0:1], spec[1:2, :, :30].double(), noise_scale=0.0,
                                  sv_emb=sv[1:2].double())
            with _replayed_draws(eps, slice_uniform):
                out64 = g64(ssl.double(), spec.double(), lengths, text, text_lengths, sv_emb=sv.double())
        ratio = {}
        for name, a, b in [("o", o, out64[0])] + [(n, a, b) for n, a, b in zip(
                ("z", "z_p", "m_p", "logs_p", "m_q", "logs_q"), (z, z_p, m_p, logs_p, m_q, logs_q), out64[5])]:
            ratio[name] = float(((a.double() - b).abs() / (1e-5 + 1e-4 * b.abs())).max())
        report.setdefault("synth_tiny", {})[version] = {
            "decode_f32_vs_f64_maxabs": _maxabs(decode, decode64),
            "forward_f32_vs_f64_max_error_over_tolerance": ratio, "code_margin_min_sq_gap": _code_margin(g, ssl),
            "num_parameters": sum(p.numel() for p in g.parameters()), "num_keys": len(g.state_dict())}
        obj[version] = {
            "model_kwargs": kwargs, "ge": ge, "ge512": ge512,
            "forward": {"o": o, "commit_loss": commit_loss, "ids_slice": ids_slice, "y_mask": y_mask, "z": z,
                        "z_p": z_p, "m_p": m_p, "logs_p": logs_p, "m_q": m_q, "logs_q": logs_q,
                        "quantized_sum": quantized.sum(), "rng_enc_q_eps": eps, "rng_slice_uniform": slice_uniform},
            "decode_codes": codes, "decode": decode, "decode_refer_list": decode_list,
            "decode_speed_1_25": decode_speed, "infer_official_error": infer_error,
            "state_dict_shapes": _shapes(g)}
    return [_save(obj, out / "synth_tiny.pt")], {}


# ------------------------------------------------------------------------------ discriminator
def make_mpd(out, report) -> list[pathlib.Path]:
    rule, _ = _rules()
    models = importlib.import_module("module.models")
    losses = importlib.import_module("module.losses")
    d = rule.fill_module(models.MultiPeriodDiscriminator(False, version="v2Pro")).eval()
    torch.manual_seed(SEED)
    y = 0.3 * torch.randn(1, 1, 400)        # 400: divisible by 2 and 5, padded for 3, 7, 11, 17, 23
    y_hat = 0.3 * torch.randn(1, 1, 400)
    with torch.no_grad():
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = d(y, y_hat)
        loss_disc, r_list, g_list = losses.discriminator_loss(y_d_rs, y_d_gs)
        loss_gen, gen_list = losses.generator_loss(y_d_gs)
        loss_fm = losses.feature_loss(fmap_rs, fmap_gs)
    periods = [getattr(disc, "period", None) for disc in d.discriminators]
    obj = {"y": y, "y_hat": y_hat, "periods": periods, "y_d_rs": y_d_rs, "y_d_gs": y_d_gs,
           # feature maps only for the two periods v2Pro adds (17, 23) and the first map of each disc
           "fmap_rs_new": [fmap_rs[6], fmap_rs[7]], "fmap_gs_new": [fmap_gs[6], fmap_gs[7]],
           "fmap_rs_first": [f[0] for f in fmap_rs], "fmap_gs_first": [f[0] for f in fmap_gs],
           "loss_disc": loss_disc, "loss_disc_r_list": [torch.tensor(v) for v in r_list],
           "loss_disc_g_list": [torch.tensor(v) for v in g_list], "loss_gen": loss_gen,
           "loss_gen_list": gen_list, "loss_fm": loss_fm, "state_dict_shapes": _shapes(d),
           "num_parameters": sum(p.numel() for p in d.parameters())}
    report["mpd7"] = {"num_parameters": obj["num_parameters"], "num_keys": len(obj["state_dict_shapes"]),
                      "periods": periods}
    return [_save(obj, out / "mpd7.pt")]


# ------------------------------------------------------------------------------------- exports
EXPORT_MAX_NUMEL = 2048  # the exported subset: every key this small (keeps each file < 0.5 MB)


def make_exports(official, out, report) -> list[pathlib.Path]:
    rule, _ = _rules()
    utils = importlib.import_module("utils")
    process_ckpt = importlib.import_module("process_ckpt")
    written, meta = [], {}
    export_dir = out / "export"
    export_dir.mkdir(parents=True, exist_ok=True)
    for version in VERSIONS:
        g, kwargs = _build_tiny(official, version, rule)
        full = g.state_dict()
        subset = {k: v for k, v in full.items() if v.numel() <= EXPORT_MAX_NUMEL}
        cfg = _official_config(official, version)
        cfg["model"].update(kwargs)
        cfg["model"]["version"] = version
        cfg.update({"name": f"tiny_{version}", "version": version, "save_weight_dir": str(export_dir)})
        cfg["data"]["exp_dir"] = f"logs/tiny_{version}"
        cfg["train"]["segment_size"] = TINY_SEGMENT_SIZE
        hps = utils.HParams(**cfg)
        name = f"tiny_{version}_e3_s7"
        result = process_ckpt.savee(subset, name, 3, 7, hps, model_version=version)
        assert result == "Success.", result
        path = export_dir / f"{name}.pth"
        loaded = process_ckpt.load_sovits_new(str(path))
        meta[path.name] = {
            "first_two_bytes": path.read_bytes()[:2].decode("latin-1"),
            "get_sovits_version_from_path_fast": list(process_ckpt.get_sovits_version_from_path_fast(str(path))),
            "top_level_keys": list(loaded.keys()), "info": loaded["info"],
            "exported_keys": list(loaded["weight"].keys()),
            "exported_dtypes": sorted({str(v.dtype) for v in loaded["weight"].values()}),
            "keys_given": len(subset), "enc_q_keys_given": sum(k.startswith("enc_q") for k in subset),
            "full_model_keys": list(full.keys()), "max_numel": EXPORT_MAX_NUMEL,
            "size_bytes": path.stat().st_size}
        written.append(path)
    report["exports"] = {k: {kk: v[kk] for kk in ("first_two_bytes", "get_sovits_version_from_path_fast",
                                                  "info", "size_bytes")} for k, v in meta.items()}
    written.append(_save(meta, out / "export_meta.pt"))
    return written


def make(official: pathlib.Path, out: pathlib.Path) -> list[pathlib.Path]:
    torch.set_num_threads(1)
    out = out / "v2pro"
    out.mkdir(parents=True, exist_ok=True)
    report = {"reference_commit": "48b1a0169a28582a8984402f82cf438d3bfa6aca", "torch": torch.__version__,
              "numpy": np.__version__}
    written = []
    with _official_imports(official):
        written += make_kaldi(out, report)
        written += make_resample(out, report)
        import torchaudio  # made importable by make_resample
        files, svs = make_eres2net(out, report, torchaudio.transforms.Resample(32000, 16000))
        written += files
        written += make_synth_official(official, out, report, svs)
        written += make_synth_tiny(official, out, report)[0]
        written += make_mpd(out, report)
        written += make_exports(official, out, report)
    path = out / "numerics.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    written.append(path)
    return written
