"""The pretrained-s2G file format (save_sovits(enc_q=True): the export plus enc_q) and the shipped tiny model."""
import pytest
import torch

import gsv_edu
from gsv_edu.config import Config
from gsv_edu.sovits.models import SynthesizerTrn
from gsv_edu.pretrained import TINY_SOVITS_PATH, load_tiny_sovits, tiny_sovits_metrics


def _tiny_model(seed=0):
    cfg = Config.preset("tiny")
    torch.manual_seed(seed)
    return cfg, SynthesizerTrn(cfg.spec_channels, cfg.segment_frames, **cfg.model_kwargs())


def test_pretrained_format_keeps_enc_q_and_loads_back(tmp_path):
    cfg, model = _tiny_model()
    path = gsv_edu.save_sovits(model, tmp_path / "g.pth", cfg, epoch=3, step=42, enc_q=True)
    raw = gsv_edu.read_sovits_file(path)
    assert raw.kind == "pretrained" and raw.version == "v2" and raw.info == "3epoch_42iteration"
    expected = model.state_dict()
    assert list(raw.weight) == list(expected)  # official key order, enc_q included
    assert all(v.dtype == torch.float16 for v in raw.weight.values() if v.is_floating_point())
    with open(path, "rb") as f:
        assert f.read(2) == b"PK"  # a plain torch zip, as official v1/v2 files

    loaded = gsv_edu.load_sovits(path, inference=False)
    for k, v in loaded.model.state_dict().items():
        torch.testing.assert_close(v, expected[k].half().to(v.dtype), rtol=0, atol=0, msg=k)
    assert loaded.missing_keys == [] and loaded.model.ssl_dim == cfg.model.ssl_dim

    for_inference = gsv_edu.load_sovits(path)  # as the export would load: enc_q dropped, weight norm folded
    assert for_inference.model.enc_q is None


@pytest.mark.skipif(not TINY_SOVITS_PATH.is_file(), reason="the shipped tiny SoVITS is not present")
def test_shipped_tiny_model_is_the_file_ready_for_decode():
    """`load_tiny_sovits` gives the shipped file's tensors (inference=False: every one, enc_q
    included, upcast from fp16 bit for bit) and, for inference, a model that decodes as a
    SynthesizerTrn built by hand from the file's config and tensors (weight norm folded and the
    channels-last decoder change only float rounding); `tiny_sovits_metrics` is its metrics.jsonl."""
    import json

    raw = gsv_edu.read_sovits_file(TINY_SOVITS_PATH)
    full = load_tiny_sovits(inference=False)
    assert full.training and full.enc_q is not None
    state = full.state_dict()
    assert list(state) == list(raw.weight)
    for k, v in raw.weight.items():
        assert torch.equal(state[k], v.to(state[k].dtype)), k

    model = load_tiny_sovits()
    assert model.enc_q is None and not model.training and model.loaded_from.version == "v2"
    assert not any(k.endswith(("weight_g", "weight_v")) for k in model.state_dict())  # weight norm folded
    cfg = Config.from_hparams(raw.hps)
    by_hand = SynthesizerTrn(cfg.spec_channels, cfg.segment_frames, n_speakers=cfg.data.n_speakers,
                             **cfg.model_kwargs())
    by_hand.load_state_dict({k: v.float() for k, v in raw.weight.items()})
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 1024, (1, 1, 5), generator=gen)
    text = torch.randint(1, 100, (1, 7), generator=gen)
    spec = torch.rand(1, 1025, 40, generator=gen)
    with torch.no_grad():
        wav = model.decode(codes, text, spec, noise_scale=0.0)
        expected = by_hand.eval().decode(codes, text, spec, noise_scale=0.0)
    assert wav.shape == (1, 1, 640 * 10) and expected.abs().max() > 1e-3
    torch.testing.assert_close(wav, expected, rtol=0, atol=1e-5)

    rows = tiny_sovits_metrics()
    lines = (TINY_SOVITS_PATH.parent / "metrics.jsonl").read_text().splitlines()
    assert rows == [json.loads(line) for line in lines if line.strip()]
    mel = [r["loss/g/mel"] for r in rows if r.get("loss/g/mel") is not None]
    assert len(mel) > 10 and sum(mel[-5:]) / 5 < 0.6 * mel[0]  # the model card's claim: a falling mel loss


def test_shipped_small_gpt_is_an_official_export_of_the_small_preset():
    from gsv_edu.gpt.config import PRESETS, GPTConfig
    from gsv_edu.pretrained import TINY_GPT_PATH, load_tiny_gpt

    from gsv_edu.weights import read_gpt_file

    record = read_gpt_file(TINY_GPT_PATH)
    assert record.kind == "export" and record.info  # {"weight": {"model." + key: fp16}, "config", "info"}
    assert all(v.dtype == torch.float16 for v in record.weights.values() if v.is_floating_point())
    raw = torch.load(TINY_GPT_PATH, map_location="cpu", weights_only=True)
    assert set(raw) == {"weight", "config", "info"} and all(k.startswith("model.") for k in raw["weight"])
    gpt = load_tiny_gpt()
    assert not gpt.training
    small = GPTConfig.from_dict(PRESETS["small"]).model
    assert gpt.config.model.to_dict() == small.to_dict()


def test_shipped_pair_speaks_a_training_sentence_out_of_the_box():
    """`load_tts()` with no paths is the shipped GPT + SoVITS; on a sentence the GPT was trained on, with
    another training recording of the voice as the prompt, its tokens are the recording's own tokens
    (computed with the shipped SoVITS's codebook, as `prepare --sovits` does) to a small error: the two
    models are a pair on one codebook. Two different real sentences of one voice score about 0.99
    (the GPT's evaluation.json), so a small error means the right sentence in the right codes."""
    from gsv_edu import book
    from gsv_edu.gpt.metrics import token_error_rate
    from gsv_edu.hubert.features import training_features
    from gsv_edu.tts import load_tts

    engine = load_tts()
    ref, target = book.utterance("en_slt_001"), book.utterance("en_slt_004")  # ref 3.38 s
    with torch.no_grad():
        ssl = training_features(engine.encoder, target.load())  # [1, D, T] at 50 Hz
        real = engine.sovits.extract_latent(ssl)[0, 0]  # [T/2]
    result = engine.synthesize(ref.path, ref.text, "en", target.text, "en", seed=0)
    tokens = torch.cat(result.tokens)
    assert token_error_rate(tokens, real) < 0.2
    assert abs(len(result.wav) - len(target.load())) < 0.25 * 32000 + result.pause_samples
