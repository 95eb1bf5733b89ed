"""Inference: source codes + reference timbre + text phones → 32 kHz audio, from an exported weight file.

Uses a shrunken model exported with `save_sovits` and the fixtures' tiny random HuBERT
(64-dim content) as the content encoder.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import FIXTURES
from train_helpers import small_config
from gsv_edu import infer
from gsv_edu.hubert import HuBERT, features

HUBERT_TINY = FIXTURES / "hubert_tiny"


def _tone(seconds: float, sr: int, f0: float) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * math.pi * f0 * t) * (0.6 + 0.4 * np.sin(2 * math.pi * 3 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from gsv_edu.weights import save_sovits
    from gsv_edu.sovits.models import SynthesizerTrn

    folder = tmp_path_factory.mktemp("infer")
    cfg = small_config("model.ssl_dim=64")
    torch.manual_seed(0)
    model = SynthesizerTrn(cfg.spec_channels, cfg.segment_frames, **cfg.model_kwargs()).eval()
    encoder = HuBERT.from_pretrained(HUBERT_TINY).eval()
    with torch.no_grad():  # initialise the codebook (k-means) on some content, as training would
        model.extract_latent(features.content_features(encoder, torch.from_numpy(_tone(3.0, 16000, 150.0))[None]))
    weights = save_sovits(model, folder / "small_e1_s1.pth", cfg, 1, 1)
    paths = {"weights": weights, "dir": folder}
    for name, seconds, f0 in (("ref_a", 1.5, 120.0), ("ref_b", 1.2, 220.0), ("source", 1.0, 170.0)):
        paths[name] = folder / f"{name}.wav"
        sf.write(paths[name], _tone(seconds, 32000, f0), 32000)
    return paths


@pytest.fixture(scope="module")
def model(files):
    return infer.load_model(files["weights"])


@pytest.fixture(scope="module")
def encoder():
    return HuBERT.from_pretrained(HUBERT_TINY).eval()


def test_output_length_follows_the_source_and_speed(model, encoder, files):
    kw = dict(ref=files["ref_a"], source=files["source"], text="Hello world", lang="en", encoder=encoder,
              noise_scale=0.0)
    wav = infer.synthesize(model, **kw)
    # 1.0 s at 16 kHz → 49 HuBERT frames → 24 codes (the appended zeros' codes dropped) → 48 frames · 640
    assert wav.dtype == np.float32 and wav.shape == (48 * 640,)
    assert np.isfinite(wav).all()
    fast = infer.synthesize(model, speed=1.5, **kw)
    assert fast.shape == ((int(48 / 1.5) + 1) * 640,)  # decode stretches the prior to int(2·T_c/speed)+1


def test_source_codes_use_the_official_reference_path(model, encoder, files):
    """16 kHz source, unscaled, + 9600 zeros (official quirk of `GPT_SoVITS/inference_webui.py ·
    get_tts_wav @48b1a01`) → codes, then the padding's codes dropped."""
    from gsv_edu import audio

    y16 = audio.load_audio(files["source"], 16000)
    padded = features.reference_features(encoder, y16)  # [1, 64, T] of source + 9600 zeros
    assert padded.shape[-1] == features.hubert_frames(len(y16) + 9600)
    expected = model.extract_latent(padded)[:, :, :24].transpose(0, 1)  # [1, 1, 24]
    codes = infer.source_codes(model, encoder, files["source"])
    assert codes.shape == (1, 1, 24)
    assert torch.equal(codes, expected)


def test_several_references_average_their_style(model, encoder, files):
    codes = infer.source_codes(model, encoder, files["source"])
    phones = infer.text_to_ids("Hello world", "en", "v2")
    cfg = infer._config_of(model)
    specs = [infer.reference_spectrogram(files[k], cfg) for k in ("ref_a", "ref_b")]
    both = infer.synthesize(model, ref=[files["ref_a"], files["ref_b"]], source=files["source"], text="Hello world",
                            lang="en", encoder=encoder, noise_scale=0.0)
    expected = model.decode(codes, phones, specs, noise_scale=0.0)[0, 0].numpy()
    only_a = model.decode(codes, phones, specs[0], noise_scale=0.0)[0, 0].numpy()
    np.testing.assert_allclose(both, expected, rtol=0, atol=1e-6)
    assert np.abs(both - only_a).max() > 1e-4  # the second reference does change the voice


def test_arrays_with_their_rate_equal_files(model, encoder, files):
    src32, _ = sf.read(files["source"], dtype="float32")
    from_file = infer.synthesize(model, ref=files["ref_a"], source=files["source"], text="Hi.", lang="en",
                                 encoder=encoder, noise_scale=0.0)
    from_array = infer.synthesize(model, ref=files["ref_a"], source=(src32, 32000), text="Hi.", lang="en",
                                  encoder=encoder, noise_scale=0.0)
    np.testing.assert_allclose(from_array, from_file, rtol=0, atol=1e-6)


def test_cli_writes_32k_audio(files, tmp_path, capsys):
    out = tmp_path / "out.wav"
    code = infer.main(["--sovits", str(files["weights"]), "--ref", str(files["ref_a"]), "--source", str(files["source"]),
                       "--text", "你好", "--lang", "zh", "--out", str(out), "--hubert", str(HUBERT_TINY),
                       "--seed", "1"])
    assert code == 0, capsys.readouterr().err
    y, sr = sf.read(out)
    assert sr == 32000 and len(y) == 48 * 640


@pytest.mark.parametrize("change, message", [
    ({"--ref": "missing.wav"}, "--ref {dir}/missing.wav: no such file"),
    ({"--source": "missing.wav"}, "--source {dir}/missing.wav: no such file"),
    ({"--sovits": "missing.pth"}, "--sovits {dir}/missing.pth: no such file"),
    ({"--text": "  "}, "--text: empty text"),
    ({"--speed": "0"}, "--speed must be positive"),
    ({"--hubert": None}, "expects 64"),  # the shipped 256-dim encoder does not fit this 64-dim model
])
def test_cli_errors_name_the_bad_input(files, tmp_path, capsys, change, message):
    args = {"--sovits": str(files["weights"]), "--ref": str(files["ref_a"]), "--source": str(files["source"]),
            "--text": "Hello", "--lang": "en", "--out": str(tmp_path / "o.wav"), "--hubert": str(HUBERT_TINY)}
    for key, value in change.items():
        if value is None:
            args.pop(key)
        elif value.endswith((".wav", ".pth")):
            args[key] = str(files["dir"] / value)
        else:
            args[key] = value
    argv = [x for kv in args.items() for x in kv]
    if "--hubert" not in args and not (infer.__file__ and _shipped_encoder_exists()):
        pytest.skip("the shipped content encoder (gsv_edu/assets/hubert_small) is not there yet")
    assert infer.main(argv) == 1
    err = capsys.readouterr().err
    assert message.format(dir=files["dir"]) in err
    assert not (tmp_path / "o.wav").exists()


def _shipped_encoder_exists() -> bool:
    from gsv_edu.config import PACKAGE_DIR

    return (PACKAGE_DIR / "assets" / "hubert_small").is_dir()
