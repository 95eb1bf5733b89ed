"""ERes2NetV2 (gsv_edu.sv) against the official class with rule weights (tests/fixtures/v2pro), and its loader."""
import pathlib
import sys

import pytest
import torch

from conftest import assert_fixture_close
from gsv_edu.sv import (OFFICIAL_SV_ARGS, TINY_SV_ARGS, ERes2NetV2, SpeakerVector, build_preset, kaldi_fbank,
                        speaker_vector, sv_args_from_state_dict, sv_vector_dim)
from gsv_edu.weights import CheckpointError, load_sv_model, save_sv_model

V2PRO = pathlib.Path(__file__).parent / "fixtures" / "v2pro"
sys.path.insert(0, str(V2PRO))
import sv_weight_rule  # noqa: E402  (tests/fixtures/v2pro/sv_weight_rule.py)


def load(name):
    return torch.load(V2PRO / name, map_location="cpu", weights_only=True)


def keys_and_shapes(model):
    return [[k, list(v.shape)] for k, v in model.state_dict().items()]


@pytest.fixture(scope="module")
def tiny_fx():
    return load("eres2net_tiny.pt")


@pytest.fixture(scope="module")
def official_fx():
    return load("eres2net_official.pt")


@pytest.fixture(scope="module")
def official_model():
    return sv_weight_rule.fill_module(ERes2NetV2(**OFFICIAL_SV_ARGS)).eval()


@pytest.mark.parametrize("variant", ["tiny", "astp_two_emb"])
def test_small_models_match_official(tiny_fx, variant):
    case = tiny_fx[variant]
    model = sv_weight_rule.fill_module(ERes2NetV2(**case["args"])).eval()
    assert keys_and_shapes(model) == case["state_dict_shapes"]  # names, shapes and order
    assert sum(p.numel() for p in model.parameters()) == case["num_parameters"]
    feats = tiny_fx["feats"]
    with torch.no_grad():
        assert_fixture_close(model.forward3(feats), case["forward3"], "forward3")
        assert_fixture_close(model(feats), case["embedding"], "embedding")
    assert case["forward3"].shape[1] == model.vector_dim == sv_vector_dim(case["args"])


def test_tiny_preset_is_the_fixture_model(tiny_fx):
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in TINY_SV_ARGS.items()} == tiny_fx["tiny"]["args"]
    model = build_preset("tiny", seed=0)
    assert not model.training and model.vector_dim == 1280
    assert torch.equal(build_preset("tiny", seed=0).conv1.weight, model.conv1.weight)  # seeded init


def test_official_size_keys_and_forward3(official_fx, official_model):
    assert keys_and_shapes(official_model) == official_fx["state_dict_shapes"]
    assert len(official_fx["state_dict_shapes"]) == 1001
    assert sum(p.numel() for p in official_model.parameters()) == official_fx["num_parameters"] == 53_513_632
    feats = official_fx["feats"]
    assert feats.shape == (1, 73, 80)
    with torch.no_grad():
        vector = official_model.forward3(feats)
        assert vector.shape == (1, 20480)
        assert_fixture_close(vector, official_fx["forward3"], "forward3")
        assert_fixture_close(official_model(feats), official_fx["embedding"], "embedding")


def test_official_training_data_path(official_fx, official_model):
    """2-get-sv.py: 32 kHz wav → Resample(32000, 16000) → fbank → forward3, all ours."""
    sv = SpeakerVector(official_model)
    assert_fixture_close(sv.resample_32k(official_fx["wav32k"]), official_fx["wav16k"])
    assert_fixture_close(kaldi_fbank(official_fx["wav16k"][0]), official_fx["feats"][0])
    assert_fixture_close(sv.from_32k(official_fx["wav32k"]), official_fx["forward3"])
    for ref, expected in zip(official_fx["refs16k"], official_fx["refs_forward3"]):
        assert_fixture_close(sv(ref), expected)  # sv.py: 16 kHz reference straight to fbank


def test_forward3_is_the_time_mean_of_the_fused_map(tiny_fx):
    model = build_preset("tiny", seed=3)
    feats = tiny_fx["feats"]
    with torch.no_grad():
        fused = model.feature_map(feats)                       # [2, 128, 10, 7]
        assert fused.shape == (2, 128, 10, 7)
        vector = model.forward3(feats)
        assert torch.allclose(vector, fused.mean(-1).reshape(2, -1))      # index c * 10 + band
        assert torch.allclose(vector[:, 10 * 5 + 3], fused[:, 5, 3].mean(-1))
        assert model(feats).shape == (2, 32)                                # the embedding is another thing


def test_loader_round_trip_and_args(tmp_path, tiny_fx):
    model = sv_weight_rule.fill_module(ERes2NetV2(**TINY_SV_ARGS)).eval()
    path = tmp_path / "sv_tiny.ckpt"
    save_sv_model(model, path)
    loaded = load_sv_model(path)
    assert loaded.sv_args["baseWidth"] == 32 and loaded.sv_args["num_blocks"] == (1, 1, 2, 1)
    assert loaded.loaded_from == str(path) and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded.forward3(tiny_fx["feats"]), model.forward3(tiny_fx["feats"]))
    # plain state dict, as the official file
    assert set(torch.load(path, weights_only=True)) == set(model.state_dict())


def test_args_of_the_official_checkpoint(official_fx):
    shapes = {k: torch.empty(s) for k, s in official_fx["state_dict_shapes"]}
    args = sv_args_from_state_dict(shapes)
    assert args == {"num_blocks": (3, 4, 6, 3), "m_channels": 64, "feat_dim": 80, "embedding_size": 192,
                    "baseWidth": 24, "scale": 4, "expansion": 4, "pooling_func": "TSTP", "two_emb_layer": False}


def test_loader_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="no_such.ckpt: no such file"):
        load_sv_model(tmp_path / "no_such.ckpt")
    model = build_preset("tiny", seed=0)
    sd = model.state_dict()
    broken = dict(sd)
    broken["layer2.0.conv3.weight"] = torch.zeros(5, 3, 1, 1)
    del broken["layer1.0.bn3.bias"]
    path = tmp_path / "broken.ckpt"
    torch.save(broken, path)
    with pytest.raises(CheckpointError, match=r"broken.ckpt: does not match ERes2NetV2\(.*1 missing \(e.g. "
                                          r"layer1.0.bn3.bias\).*1 wrong shape"):
        load_sv_model(path)
    wrapped = tmp_path / "wrapped.ckpt"
    torch.save({"model": sd, "epoch": 3}, wrapped)
    with pytest.raises(CheckpointError, match="wrapped.ckpt: expected a plain state dict"):
        load_sv_model(wrapped)
    other = tmp_path / "other.ckpt"
    torch.save({"enc_p.proj.weight": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="other.ckpt: not an ERes2NetV2 state dict"):
        load_sv_model(other)
    text = tmp_path / "text.ckpt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="text.ckpt: not a readable torch checkpoint"):
        load_sv_model(text)


def test_speaker_vector_input_checks():
    model = build_preset("tiny", seed=0)
    with pytest.raises(ValueError, match="399 samples at 16 kHz; the speaker vector needs at least 400"):
        speaker_vector(model, torch.zeros(1, 399))
    with pytest.raises(ValueError, match="fbank features"):
        model.forward3(torch.zeros(1, 20, 40))
    vectors = speaker_vector(model, torch.randn(3, 1600) * 0.1)
    assert vectors.shape == (3, 1280) and not vectors.requires_grad
