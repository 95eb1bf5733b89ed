"""Inference: source codes + reference timbre + text phones → 32 kHz audio, from an exported weight file.

Uses a shrunken model exported with `save_sovits` and the fixtures' tiny random HuBERT
(64-dim content) as the content encoder.
"""
from __future__ import annotations

import json
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


def test_synthesize_gives_the_official_decode_of_an_official_export(tiny_io, monkeypatch):
    """An export written by the official exporter (README §8), loaded by `load_model` with the config
    stored in it, and the reference audio of the official fixtures (README §5): `synthesize` turns the
    32 kHz references into the official spectrograms and decodes exactly as the official
    `SynthesizerTrn.decode` (noise_scale 0; one reference, two averaged, speed 1.25). The codes and
    phones are the fixture's (the codes' own path is checked against the official HuBERT below)."""
    from conftest import assert_fixture_close

    model = infer.load_model(FIXTURES / "export" / "tiny_v2_e4_s8.pth")
    det, inputs = tiny_io["deterministic"], tiny_io["inputs"]
    item0 = inputs["wav"][0, 0, : int(inputs["wav_lengths"][0])].numpy()  # 25600 samples at 32 kHz
    item1 = inputs["wav"][1, 0, : int(inputs["wav_lengths"][1])].numpy()  # 19200
    config = infer.config_of(model)
    assert_fixture_close(infer.reference_spectrogram((item1, 32000), config), det["decode_refer"])
    assert_fixture_close(infer.reference_spectrogram((item0, 32000), config), det["decode_refer_list_0"])
    monkeypatch.setattr(infer, "source_codes", lambda *args, **kwargs: det["decode_codes"])  # [1, 1, 20]
    monkeypatch.setattr(infer, "text_to_ids", lambda *args, **kwargs: det["decode_text"])    # [1, 12]
    kw = dict(source="(the fixture's codes)", text="(the fixture's phones)", lang="en", encoder=object(),
              noise_scale=0.0)
    for ref, speed, expected in (((item1, 32000), 1.0, det["decode_o"]),
                                 ([(item0, 32000), (item1, 32000)], 1.0, det["decode_o_refer_list"]),
                                 ((item1, 32000), 1.25, det["decode_o_speed_1_25"])):
        wav = infer.synthesize(model, ref=ref, speed=speed, **kw)
        assert wav.dtype == np.float32 and wav.shape == (expected.shape[-1],)  # 40·640, 40·640, 33·640
        assert_fixture_close(torch.from_numpy(wav), expected[0, 0])


def test_source_codes_follow_the_official_reference_path(model, encoder, monkeypatch):
    """The source goes to HuBERT as the official inference feeds its reference (unscaled, 9600 zeros
    appended; `GPT_SoVITS/inference_webui.py · get_tts_wav @48b1a01`): the features that reach
    `extract_latent` are the official HubertModel's output on that padded wave (README §9, `raw`), and
    the codes of the padding are dropped: 10400 samples → 32 HuBERT frames of their own → 16 codes."""
    from conftest import assert_fixture_close, load_fixture

    io = load_fixture("hubert_tiny_io.pt")
    wav16k = io["wav16k"]  # [20000]: 10400 samples of signal, then the 9600 zeros of the official padding
    assert torch.count_nonzero(wav16k[10400:]) == 0
    official = io["raw"]["last_hidden_state"].transpose(1, 2)  # [1, 64, 62]
    seen = []
    real = model.extract_latent
    monkeypatch.setattr(model, "extract_latent", lambda ssl: seen.append(ssl) or real(ssl))
    codes = infer.source_codes(model, encoder, (wav16k[:10400].numpy(), 16000))
    (ssl,) = seen
    assert_fixture_close(ssl, official)
    assert codes.shape == (1, 1, 16)
    assert torch.equal(codes, real(official)[:, :, :16].transpose(0, 1))


def test_several_references_average_their_style(model, encoder, files):
    codes = infer.source_codes(model, encoder, files["source"])
    phones = infer.text_to_ids("Hello world", "en", "v2")
    cfg = infer.config_of(model)
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


def test_cli_writes_what_synthesize_gives(model, files, tmp_path, capsys):
    """The command line writes, as 16-bit 32 kHz PCM, the samples `synthesize` gives for the same
    arguments (default noise scale 0.5, the seeded prior noise): 1.0 s of source → 24 codes → 48
    frames of 640 samples."""
    out = tmp_path / "out.wav"
    code = infer.main(["--sovits", str(files["weights"]), "--ref", str(files["ref_a"]), "--source", str(files["source"]),
                       "--text", "你好", "--lang", "zh", "--out", str(out), "--hubert", str(HUBERT_TINY),
                       "--seed", "1"])
    assert code == 0, capsys.readouterr().err
    expected = infer.synthesize(model, ref=files["ref_a"], source=files["source"], text="你好", lang="zh",
                                hubert=HUBERT_TINY, noise_scale=0.5, seed=1)
    y, sr = sf.read(out, dtype="float32")
    assert sr == 32000 and sf.info(out).subtype == "PCM_16" and y.shape == expected.shape == (48 * 640,)
    assert np.abs(expected).max() > 0.01  # not silence
    np.testing.assert_allclose(y, np.clip(expected, -1, 1), rtol=0, atol=1.5 / 32768)  # 16-bit rounding


def test_a_bad_or_foreign_config_is_an_error_naming_its_file(files, tmp_path, capsys):
    """The config a weight file comes with is used as it is: one that is not a SoVITS s2 config is a
    clear error naming the file it came from (the export itself, or the config.json beside a
    training checkpoint), never replaced by the official-v2 settings."""
    from gsv_edu.weights import load_sovits, read_sovits_file, save_sovits

    model = load_sovits(files["weights"], inference=False).model  # weight norm kept: re-exportable
    good = small_config("model.ssl_dim=64").to_dict()
    bad_key = {**good, "train": {**good["train"], "warmup_steps": 100}}   # a key of another trainer
    bad_type = {**good, "data": {**good["data"], "sampling_rate": "32k"}}
    for name, hps, message in (("bad_key.pth", bad_key, "train.warmup_steps: unknown key"),
                               ("bad_type.pth", bad_type, "data.sampling_rate: expected int, got '32k'")):
        path = save_sovits(model, tmp_path / name, hps, 1, 1)
        with pytest.raises(infer.InferenceError, match=f"{name} \\(the config stored in it\\): {message}"):
            infer.load_model(path)
        assert infer.main(["--sovits", path, "--ref", str(files["ref_a"]), "--source", str(files["source"]),
                           "--text", "Hi", "--lang", "en", "--out", str(tmp_path / "o.wav")]) == 1
        assert f"error: --sovits {path} (the config stored in it): {message}" in capsys.readouterr().err
    # a training checkpoint carries no config: the one beside it is read, and named when it is foreign
    run = tmp_path / "run" / "logs_s2_v2"
    run.mkdir(parents=True)
    weights = {k: v.float() for k, v in read_sovits_file(files["weights"]).weight.items()}
    torch.save({"model": weights, "iteration": 1, "optimizer": None, "learning_rate": 1e-4}, run / "G_2.pth")
    (run.parent / "config.json").write_text(json.dumps({**good, "optimizer": {"lr": 0.01}}))
    with pytest.raises(infer.InferenceError, match=f"{run.parent / 'config.json'}: optimizer: unknown top-level key"):
        infer.load_model(run / "G_2.pth")
    # a model built in code has no file: the official data settings, if its spectrogram fits them
    kwargs = small_config("model.ssl_dim=64").model_kwargs()
    assert infer.config_of(model.__class__(1025, 8, **kwargs)).data.hop_length == 640
    with pytest.raises(infer.InferenceError, match="513-bin spectrograms but has no config"):
        infer.config_of(model.__class__(513, 8, **kwargs))


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
