"""HuBERT: parity with transformers' HubertModel (tiny fixture), loading, errors, content features."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from conftest import FIXTURES, assert_fixture_close, load_fixture
from gsv_edu.hubert import HuBERT, HuBERTConfig, HuBERTConfigError, HuBERTLoadError
from gsv_edu.data.layout import align_to_spec, spec_frames
from gsv_edu.hubert import features as F
from gsv_edu.hubert.loading import load_state_dict_into

TINY = FIXTURES / "hubert_tiny"


@pytest.fixture(scope="module")
def io():
    return load_fixture("hubert_tiny_io.pt")


@pytest.fixture(scope="module")
def tiny():
    return HuBERT.from_pretrained(TINY)


def tiny_config() -> HuBERTConfig:
    return HuBERTConfig.from_json(TINY / "config.json")


# ------------------------------------------------------------------------------------------------
# parity with the fixture (produced by transformers 5.23 HubertModel)
# ------------------------------------------------------------------------------------------------

def test_config_reads_the_fields_that_matter():
    cfg = tiny_config()
    assert cfg.conv_dim == (32,) * 7 and cfg.hidden_size == 64 and cfg.num_hidden_layers == 2
    assert cfg.num_attention_heads == 4 and cfg.intermediate_size == 128
    assert cfg.downsampling == 320 and cfg.receptive_field == 400
    assert [cfg.num_frames(n) for n in (399, 400, 719, 720, 20000)] == [0, 1, 1, 2, 62]


def test_raw_path_matches_fixture(tiny, io):
    wav = io["wav16k"].unsqueeze(0)  # [1, 20000], fed unnormalised like GPT-SoVITS
    with torch.no_grad():
        assert_fixture_close(tiny.extract_features(wav), io["raw"]["conv_features"])
        hidden = tiny.hidden_states(wav)
        assert len(hidden) == 3
        for ours, ref in zip(hidden, io["raw"]["hidden_states"]):
            assert_fixture_close(ours, ref)
        assert_fixture_close(tiny(wav), io["raw"]["last_hidden_state"])
        assert_fixture_close(tiny(wav * 1145.14), io["raw_times_1145_14_last_hidden_state"])


def test_normalized_path_matches_fixture(tiny, io):
    wav = io["wav16k"].unsqueeze(0)
    normalized = F.wav2vec2_normalize(wav)
    assert_fixture_close(normalized, io["feature_extractor_input_values"])
    with torch.no_grad():
        assert_fixture_close(tiny(normalized), io["normalized"]["last_hidden_state"])
        for ours, ref in zip(tiny.hidden_states(normalized), io["normalized"]["hidden_states"]):
            assert_fixture_close(ours, ref)
    # the two paths really differ: a test that could not tell them apart would prove nothing
    assert (io["normalized"]["last_hidden_state"] - io["raw"]["last_hidden_state"]).abs().max() > 1e-3


def test_content_features_are_channels_first(tiny, io):
    feats = F.content_features(tiny, io["wav16k"])
    assert feats.shape == (1, 64, 62)
    assert_fixture_close(feats, io["raw"]["last_hidden_state"].transpose(1, 2))


@pytest.mark.parametrize("key", ["state_dict_hf", "state_dict_legacy_keys"])
def test_both_weight_norm_spellings_load(io, key):
    model = HuBERT(tiny_config()).eval()
    load_state_dict_into(model, io[key])
    with torch.no_grad():
        assert_fixture_close(model(io["wav16k"].unsqueeze(0)), io["raw"]["last_hidden_state"])


def test_legacy_pytorch_model_bin_folder(tmp_path, io):
    shutil.copy(TINY / "config.json", tmp_path / "config.json")
    torch.save(io["state_dict_legacy_keys"], tmp_path / "pytorch_model.bin")  # as chinese-hubert-base publishes it
    model = HuBERT.from_pretrained(tmp_path)
    with torch.no_grad():
        assert_fixture_close(model(io["wav16k"].unsqueeze(0)), io["raw"]["last_hidden_state"])


def test_head_model_prefix_is_stripped(io):
    model = HuBERT(tiny_config()).eval()
    load_state_dict_into(model, {"hubert." + k: v for k, v in io["state_dict_hf"].items()})
    with torch.no_grad():
        assert_fixture_close(model(io["wav16k"].unsqueeze(0)), io["raw"]["last_hidden_state"])


def test_save_pretrained_round_trip(tmp_path, tiny, io):
    tiny.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "hubert" and saved["hidden_size"] == 64
    from safetensors.torch import load_file

    keys = load_file(str(tmp_path / "model.safetensors")).keys()
    assert "encoder.pos_conv_embed.conv.parametrizations.weight.original0" in keys  # transformers-5 spelling
    again = HuBERT.from_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.equal(again(io["wav16k"].unsqueeze(0)), tiny(io["wav16k"].unsqueeze(0)))


def test_weight_norm_cache_follows_weight_changes(io):
    model = HuBERT(tiny_config()).eval()
    load_state_dict_into(model, io["state_dict_hf"])
    wav = io["wav16k"].unsqueeze(0)
    with torch.inference_mode():
        first = model(wav)
    with torch.no_grad():
        model.encoder.pos_conv_embed.conv.weight_g.mul_(2.0)  # in place: the cached kernel must be dropped
    with torch.inference_mode():
        assert (model(wav) - first).abs().max() > 1e-3
    load_state_dict_into(model, io["state_dict_hf"])
    with torch.no_grad():
        assert_fixture_close(model(wav), io["raw"]["last_hidden_state"])


def test_gradients_reach_the_weight_norm_parameters(io):
    model = HuBERT(tiny_config()).train()
    load_state_dict_into(model, io["state_dict_hf"])
    model(io["wav16k"].unsqueeze(0)).square().mean().backward()
    conv = model.encoder.pos_conv_embed.conv
    assert conv.weight_g.grad is not None and conv.weight_g.grad.abs().sum() > 0
    assert conv.weight_v.grad is not None and conv.weight_v.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------
# clear errors for broken folders and inputs
# ------------------------------------------------------------------------------------------------

def _broken_folder(tmp_path, io, edit):
    shutil.copy(TINY / "config.json", tmp_path / "config.json")
    sd = dict(io["state_dict_hf"])
    edit(sd)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "model.safetensors"))
    return tmp_path


def test_missing_key_is_named(tmp_path, io):
    folder = _broken_folder(tmp_path, io, lambda sd: sd.pop("encoder.layers.1.final_layer_norm.bias"))
    with pytest.raises(HuBERTLoadError, match=r"1 missing key\(s\): encoder\.layers\.1\.final_layer_norm\.bias"):
        HuBERT.from_pretrained(folder)


def test_extra_key_is_named(tmp_path, io):
    folder = _broken_folder(tmp_path, io, lambda sd: sd.__setitem__("lm_head.weight", torch.zeros(3, 64)))
    with pytest.raises(HuBERTLoadError, match=r"unexpected key\(s\): lm_head\.weight"):
        HuBERT.from_pretrained(folder)


def test_wrong_shape_is_named(tmp_path, io):
    folder = _broken_folder(tmp_path, io, lambda sd: sd.__setitem__(
        "feature_projection.projection.weight", torch.zeros(64, 16)))
    with pytest.raises(HuBERTLoadError, match=r"feature_projection\.projection\.weight: file \(64, 16\), model \(64, 32\)"):
        HuBERT.from_pretrained(folder)


def test_config_that_does_not_match_the_weights(tmp_path, io):
    folder = _broken_folder(tmp_path, io, lambda sd: None)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["num_hidden_layers"] = 3
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(HuBERTLoadError, match=r"missing key\(s\): encoder\.layers\.2\."):
        HuBERT.from_pretrained(folder)


def test_missing_files_and_garbage(tmp_path, io):
    with pytest.raises(HuBERTLoadError, match="not a folder"):
        HuBERT.from_pretrained(tmp_path / "nope")
    with pytest.raises(HuBERTConfigError, match="config.json: no such file"):
        HuBERT.from_pretrained(tmp_path)
    shutil.copy(TINY / "config.json", tmp_path / "config.json")
    with pytest.raises(HuBERTLoadError, match="no weights found"):
        HuBERT.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(HuBERTLoadError, match=r"model\.safetensors: cannot read the weights"):
        HuBERT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(HuBERTConfigError, match="config.json: not valid JSON"):
        HuBERT.from_pretrained(tmp_path)


def test_unsupported_architecture_variant_is_refused(tmp_path):
    cfg = json.loads((TINY / "config.json").read_text())
    cfg["do_stable_layer_norm"] = True  # hubert-large's pre-norm variant
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(HuBERTConfigError, match="do_stable_layer_norm=True is not supported"):
        HuBERTConfig.from_json(tmp_path / "config.json")


def test_bad_inputs(tiny):
    with pytest.raises(ValueError, match="at least 400 samples"):
        tiny(torch.zeros(1, 399))
    with pytest.raises(ValueError, match=r"waveform \[B, N\]"):
        tiny(torch.zeros(1, 1, 1000))


# ------------------------------------------------------------------------------------------------
# the official content-feature path
# ------------------------------------------------------------------------------------------------

def test_hubert_input_is_the_official_mix_gain_and_resampling():
    from gsv_edu import audio

    rng = np.random.default_rng(0)
    y = (0.3 * rng.standard_normal(32000)).astype(np.float32)
    x = F.hubert_input(y)
    mix = 0.95 * 0.5 * y / np.abs(y).max() + 0.5 * y
    expected = audio.resample((mix * 1145.14).astype(np.float32), 32000, 16000)
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-3)
    assert x.shape == (16000,)
    with pytest.raises(audio.AudioError, match="peak 2.50 > 2.2"):
        F.hubert_input(np.full(100, 2.5, dtype=np.float32), "loud.wav")


def test_frame_alignment_with_the_spectrogram(tiny):
    for seconds in (1.0, 3.7, 10.0):
        n32 = int(seconds * 32000)
        y = np.sin(np.arange(n32, dtype=np.float32) * 0.05) * 0.5
        feats = F.training_features(tiny, y)
        n16 = len(F.hubert_input(y))
        assert feats.shape[-1] == F.hubert_frames(n16) == (n16 - 400) // 320 + 1
        assert spec_frames(n32) - feats.shape[-1] == 1  # the usual one-frame difference
        aligned = align_to_spec(feats, spec_frames(n32))
        assert aligned.shape[-1] == spec_frames(n32)
        assert torch.equal(aligned[..., -1], aligned[..., -2])  # the last frame repeated


def test_reference_features_append_0_6_s_of_silence_at_16k(tiny):
    y = np.sin(np.arange(16000, dtype=np.float32) * 0.05) * 0.5
    feats = F.reference_features(tiny, y)
    assert feats.shape == (1, 64, (16000 + 9600 - 400) // 320 + 1)
    padded = np.concatenate([y, np.zeros(9600, dtype=np.float32)])
    assert torch.equal(feats, F.content_features(tiny, torch.from_numpy(padded).unsqueeze(0)))


# ------------------------------------------------------------------------------------------------
# the shipped small model
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds", [1.0, 3.7, 10.0])
def test_shipped_model_gives_finite_features_of_the_documented_shape(seconds):
    from gsv_edu.hubert import DEFAULT_SSL_DIM, load_default

    model = load_default()
    assert model.config.hidden_size == DEFAULT_SSL_DIM == 256
    n32 = int(seconds * 32000)
    t = np.arange(n32, dtype=np.float32) / 32000
    y = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2  # a warbling tone
    feats = F.training_features(model, y.astype(np.float32))
    n16 = n32 // 2
    assert feats.shape == (1, 256, (n16 - 400) // 320 + 1)
    assert feats.shape[-1] in (spec_frames(n32), spec_frames(n32) - 1)
    assert torch.isfinite(feats).all() and feats.std() > 0.1


# ------------------------------------------------------------------------------------------------
# optional: transformers on the same weights (skipped when transformers is not installed)
# ------------------------------------------------------------------------------------------------

def test_transformers_reads_our_folders_and_agrees(tmp_path, io):
    transformers = pytest.importorskip("transformers")
    from gsv_edu.hubert import load_default

    ours = load_default()
    ours.save_pretrained(tmp_path)  # float32
    theirs = transformers.HubertModel.from_pretrained(tmp_path).eval()
    wav = io["wav16k"].unsqueeze(0) * 1145.14
    with torch.no_grad():
        torch.testing.assert_close(ours(wav), theirs(wav).last_hidden_state, rtol=1e-4, atol=1e-4)
