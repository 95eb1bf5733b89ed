"""Reading and writing SoVITS weight files (gsv_edu.weights).

The three official export files of the fixtures (README §8), our own exports (readable by us
and, through a stand-in `utils` module, by a plain unrestricted torch.load as the official UI
does), official-layout training checkpoints and pretrained-style files, and the refusals:
later versions, truncated and foreign files, pickles that would run code.
"""
from __future__ import annotations

import json
import os
import pathlib
import pickletools
import sys
import types
import zipfile

import pytest
import torch

from conftest import FIXTURES, assert_fixture_close
from gsv_edu.weights import (CheckpointError, HParams, UnsupportedVersionError, load_pair, load_sovits,
                             load_training_checkpoint, read_discriminator_file, read_sovits_file, save_pair,
                             save_sovits, save_training_checkpoint, weights_fingerprint)
from gsv_edu.sovits.models import SynthesizerTrn

EXPORTS = FIXTURES / "export"
TINY_CONFIG = json.loads((FIXTURES / "tiny_config.json").read_text())
ALLOWED_GLOBALS = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch.HalfStorage",
                   "torch.FloatStorage", "torch.LongStorage", "utils.HParams"}


def _tiny_hps() -> HParams:
    return HParams(**{k: v for k, v in TINY_CONFIG.items() if k != "_derived"})


def _tiny_model(state_dict) -> SynthesizerTrn:
    model = SynthesizerTrn(1025, 8, n_speakers=300, **TINY_CONFIG["model"])
    model.load_state_dict(state_dict)
    return model


def _pickle_globals(path) -> set[str]:
    """Every GLOBAL a torch zip file's data.pkl references (without unpickling it)."""
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))
    found = set()
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            found.add(arg.replace(" ", "."))
        assert op.name != "STACK_GLOBAL", "unexpected protocol-4 global"
    return found


def _decode_fixture(model, tiny_io):
    det = tiny_io["deterministic"]
    return model.decode(det["decode_codes"], det["decode_text"], det["decode_refer"], noise_scale=0)


# ---------------------------------------------------------------------------------- official files

def test_official_tiny_export_loads_and_decodes(tiny_io):
    loaded = load_sovits(EXPORTS / "tiny_v2_e4_s8.pth")
    assert (loaded.kind, loaded.version, loaded.info) == ("export", "v2", "4epoch_8iteration")
    model = loaded.model
    assert model.enc_q is None and not model.training
    assert "dec.ups.0.weight" in model.state_dict() and "dec.ups.0.weight_g" not in model.state_dict()  # folded
    assert isinstance(loaded.hps, HParams) and loaded.hps.model.hidden_channels == 32
    assert loaded.hps.data.exp_dir == "logs/tiny" and loaded.hps["train"]["segment_size"] == 5120
    assert_fixture_close(_decode_fixture(model, tiny_io), tiny_io["deterministic"]["decode_o"])


def test_official_tiny_export_weights_are_the_fixture_weights(tiny_state_dict):
    sovits = read_sovits_file(EXPORTS / "tiny_v2_e4_s8.pth")
    assert sovits.kind == "export" and not sovits.has_enc_q and len(sovits.weight) == 601
    for k, v in sovits.weight.items():
        assert v.dtype == torch.float16, k  # every tensor, buffers included (official .half())
        assert torch.equal(v, tiny_state_dict[k]), k


def test_format_v1_file_is_detected_as_v1():
    sovits = read_sovits_file(EXPORTS / "format_v1_e1_s1.pth")
    assert sovits.version == "v1" and sovits.info == "1epoch_1iteration"
    assert tuple(sovits.weight["enc_p.text_embedding.weight"].shape) == (322, 32)
    with pytest.raises(CheckpointError, match="format_v1_e1_s1.pth.*missing keys"):
        load_sovits(EXPORTS / "format_v1_e1_s1.pth")  # format-only: one tensor, no model in it


def test_v2pro_file_is_known_by_its_tag_or_its_keys(tmp_path):
    assert read_sovits_file(EXPORTS / "format_v2Pro_e1_s1.pth").version == "v2Pro"
    with pytest.raises(CheckpointError, match="format_v2Pro_e1_s1.pth.*missing keys"):
        load_sovits(EXPORTS / "format_v2Pro_e1_s1.pth")  # format-only (tests/test_v2pro_weights.py: full files)
    # without its "05" tag, the sv_emb.* keys still give it away
    untagged = tmp_path / "v2pro_untagged.pth"
    data = bytearray((EXPORTS / "format_v2Pro_e1_s1.pth").read_bytes())
    data[:2] = b"PK"
    untagged.write_bytes(bytes(data))
    assert read_sovits_file(untagged).version == "v2Pro"


@pytest.mark.parametrize("tag, name", [(b"03", "v3"), (b"04", "v4")])
def test_other_version_tags_are_refused(tmp_path, tag, name):
    path = tmp_path / "tagged.pth"
    path.write_bytes(tag + (EXPORTS / "format_v1_e1_s1.pth").read_bytes()[2:])
    with pytest.raises(UnsupportedVersionError, match=f"not supported yet: {name}"):
        read_sovits_file(path)


def test_old_v2_tag_is_read(tmp_path):
    """Tags "00"/"01" (old v1/v2 writers) are understood: the zip magic is put back in memory."""
    path = tmp_path / "tagged_v1.pth"
    path.write_bytes(b"01" + (EXPORTS / "format_v1_e1_s1.pth").read_bytes()[2:])
    assert read_sovits_file(path).version == "v1"  # the weights decide, not the tag


# ---------------------------------------------------------------------------------- bad files

def test_truncated_file_is_a_clear_error(tmp_path):
    data = (EXPORTS / "tiny_v2_e4_s8.pth").read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pth: not a readable torch checkpoint"):
        load_sovits(path)


@pytest.mark.parametrize("content, message", [
    (b"", "empty or truncated"),
    (b"hello, I am not a checkpoint\n", "not a torch checkpoint"),
])
def test_foreign_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "foreign.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"foreign.pth: {message}"):
        read_sovits_file(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="nothing.pth: cannot open"):
        read_sovits_file(tmp_path / "nothing.pth")


_EXPLOIT_RAN = []


def _exploit():
    _EXPLOIT_RAN.append(True)
    return {}


class _Malicious:
    def __reduce__(self):
        return (_exploit, ())


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"weight": {}, "config": _Malicious(), "info": "x"}, path)
    with pytest.raises(CheckpointError, match=r"evil.pth: refused to unpickle.*GLOBAL test_checkpoints._exploit\)$"):
        read_sovits_file(path)
    assert not _EXPLOIT_RAN


def test_discriminator_file_is_named_as_such(tmp_path):
    path = tmp_path / "D_1.pth"
    torch.save({"model": {"discriminators.0.conv_post.bias": torch.zeros(1)}, "iteration": 1,
                "optimizer": None, "learning_rate": 1e-4}, path)
    with pytest.raises(CheckpointError, match="discriminator checkpoint"):
        read_sovits_file(path)


def test_discriminator_reader_takes_s2d_and_d_files_and_refuses_the_rest(tmp_path):
    d = {"discriminators.0.conv_post.bias": torch.arange(3.0)}
    torch.save({"weight": {k: v.half() for k, v in d.items()}}, tmp_path / "s2D.pth")  # pretrained s2D
    torch.save({"model": d, "iteration": 2, "optimizer": None, "learning_rate": 1e-4}, tmp_path / "D_9.pth")
    s2d, d9 = read_discriminator_file(tmp_path / "s2D.pth"), read_discriminator_file(tmp_path / "D_9.pth")
    assert s2d["discriminators.0.conv_post.bias"].dtype == torch.float16
    assert torch.equal(s2d["discriminators.0.conv_post.bias"].float(), d9["discriminators.0.conv_post.bias"])
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match=r"list.pth: expected a dict with 'weight' \(s2D\) or 'model'"):
        read_discriminator_file(tmp_path / "list.pth")
    torch.save({"weight": {"a": 1}}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="bad.pth: the weights are not a mapping of names to tensors"):
        read_discriminator_file(tmp_path / "bad.pth")


def test_weights_fingerprint_is_bitwise_and_the_same_for_a_module_and_its_state_dict():
    torch.manual_seed(0)
    a = torch.nn.Linear(3, 2)
    b = torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    assert weights_fingerprint(a) == weights_fingerprint(b) == weights_fingerprint(a.state_dict())
    assert len(weights_fingerprint(a)) == 16 and weights_fingerprint(a, 12) == weights_fingerprint(a)[:12]
    with torch.no_grad():
        b.bias[0] = torch.nextafter(b.bias[0], torch.tensor(1.0))  # one ulp
    assert weights_fingerprint(a) != weights_fingerprint(b)


def test_checkpoint_pair_reads_back_every_key(tmp_path):
    g = {"model": {"w": torch.ones(2)}, "iteration": 3, "optimizer": None, "learning_rate": 1e-4, "step": 12,
         "rng": [{"torch": torch.zeros(4, dtype=torch.uint8)}]}
    d = {"model": {"v": torch.zeros(1)}, "iteration": 3, "optimizer": None, "learning_rate": 1e-4, "step": 12}
    save_pair(tmp_path, 12, g, d)
    pair = load_pair(tmp_path, 12)
    assert not pair.is_official_only and pair.g["step"] == 12 and torch.equal(pair.g["rng"][0]["torch"], g["rng"][0]["torch"])
    assert sorted(pair.d) == sorted(d) and load_training_checkpoint(pair.g_path).iteration == 3


# ---------------------------------------------------------------------------------- our exports

def test_export_roundtrip(tmp_path, tiny_state_dict, tiny_io):
    model = _tiny_model(tiny_state_dict)
    path = save_sovits(model, tmp_path / "tiny_e4_s8.pth", _tiny_hps(), epoch=4, step=8)
    raw = pathlib.Path(path).read_bytes()
    assert raw[:2] == b"PK"  # plain zip, no version tag (v1/v2)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())

    sovits = read_sovits_file(path)
    assert sovits.kind == "export" and sovits.info == "4epoch_8iteration" and sovits.version == "v2"
    expected = {k: v for k, v in tiny_state_dict.items() if "enc_q" not in k}
    assert list(sovits.weight) == list(expected)  # official order, enc_q dropped
    for k, v in expected.items():
        assert sovits.weight[k].dtype == (torch.float16 if v.is_floating_point() else v.dtype)
        assert torch.equal(sovits.weight[k], v), k  # the fixture weights are fp16 already: lossless
    assert sovits.hps.model.version == "v2" and sovits.hps.model.hidden_channels == 32

    loaded = load_sovits(path)
    assert_fixture_close(_decode_fixture(loaded.model, tiny_io), tiny_io["deterministic"]["decode_o"])


def test_export_file_layout_matches_the_official_one(tmp_path, tiny_state_dict):
    path = save_sovits(_tiny_model(tiny_state_dict), tmp_path / "e.pth", _tiny_hps(), 1, 2)
    ours = _pickle_globals(path)
    assert ours <= ALLOWED_GLOBALS and "utils.HParams" in ours
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == ["utils.HParams"]
    assert _pickle_globals(EXPORTS / "tiny_v2_e4_s8.pth") <= ALLOWED_GLOBALS  # the official writer's
    with zipfile.ZipFile(path) as z:
        assert all(n.startswith("archive/") for n in z.namelist())


def test_export_is_readable_by_a_plain_torch_load_with_the_official_class(tmp_path, tiny_state_dict, monkeypatch):
    """The official UI runs torch.load (no weights_only) with GPT_SoVITS/utils.py importable."""
    path = save_sovits(_tiny_model(tiny_state_dict), tmp_path / "e.pth", _tiny_hps(), 3, 9)

    class OfficialLikeHParams:  # behaves like utils.HParams: attributes filled by the unpickler
        def __getitem__(self, key):
            return getattr(self, key)

    fake_utils = types.ModuleType("utils")
    fake_utils.HParams = OfficialLikeHParams
    OfficialLikeHParams.__module__ = "utils"
    monkeypatch.setitem(sys.modules, "utils", fake_utils)
    obj = torch.load(path, map_location="cpu", weights_only=False)
    assert list(obj) == ["weight", "config", "info"] and obj["info"] == "3epoch_9iteration"
    assert type(obj["config"]) is OfficialLikeHParams
    assert obj["config"].model.gin_channels == 64 and obj["config"]["data"].hop_length == 640
    assert type(obj["config"].model) is OfficialLikeHParams


def test_export_refuses_a_folded_model(tmp_path):
    loaded = load_sovits(EXPORTS / "tiny_v2_e4_s8.pth")  # inference: weight norm folded
    with pytest.raises(ValueError, match="folded"):
        save_sovits(loaded.model, tmp_path / "x.pth", loaded.hps, 1, 1)
    assert not list(tmp_path.iterdir())


def test_export_is_atomic(tmp_path, tiny_state_dict, monkeypatch):
    path = tmp_path / "e.pth"
    path.write_bytes(b"previous export")

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_sovits(_tiny_model(tiny_state_dict), path, _tiny_hps(), 1, 1)
    assert path.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["e.pth"]


def test_export_of_a_retrained_model_keeps_training_weights(tmp_path, tiny_state_dict):
    """load(inference=False) → export → load gives back the same (fp16) tensors."""
    first = load_sovits(EXPORTS / "tiny_v2_e4_s8.pth", inference=False)
    assert first.model.training and first.model.enc_q is not None
    assert first.missing_keys and all(k.startswith("enc_q.") for k in first.missing_keys)
    path = save_sovits(first.model, tmp_path / "again.pth", first.hps, 5, 10)
    again = read_sovits_file(path)
    for k, v in read_sovits_file(EXPORTS / "tiny_v2_e4_s8.pth").weight.items():
        assert torch.equal(again.weight[k], v), k


# ---------------------------------------------------------------------------------- training files

def test_training_checkpoint_roundtrip_is_exact(tmp_path, tiny_state_dict):
    """The official layout (`GPT_SoVITS/utils.py · save_checkpoint @48b1a01`: model, iteration,
    optimizer, learning_rate) with a real AdamW state (two steps taken): read back bit for bit, and a
    model + optimizer restored from it take the same next step, bit for bit, as the originals."""
    def adamw(model):
        return torch.optim.AdamW(model.parameters(), 1e-4, betas=(0.8, 0.99), eps=1e-9)

    def step(model, optimizer):  # a deterministic loss that gives every parameter a gradient
        optimizer.zero_grad()
        sum((p * p).mean() for p in model.parameters()).backward()
        optimizer.step()

    model = _tiny_model(tiny_state_dict)
    optimizer = adamw(model)
    step(model, optimizer)
    step(model, optimizer)
    path = save_training_checkpoint(model, optimizer, 1e-4, 7, tmp_path / "logs_s2_v2" / "G_56.pth")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw) == {"model", "iteration", "optimizer", "learning_rate"}
    ckpt = load_training_checkpoint(path)
    assert ckpt.iteration == 7 and ckpt.learning_rate == 1e-4
    sd = model.state_dict()
    assert list(ckpt.model) == list(sd)
    for k, v in sd.items():
        assert ckpt.model[k].dtype == v.dtype and torch.equal(ckpt.model[k], v), k
    live = optimizer.state_dict()
    assert ckpt.optimizer["param_groups"] == live["param_groups"]
    assert ckpt.optimizer["state"].keys() == live["state"].keys() and len(live["state"]) == len(sd) - sum(
        1 for _ in model.buffers())
    for i, state in live["state"].items():
        assert float(state["step"]) == 2.0
        for key, value in state.items():
            assert torch.equal(ckpt.optimizer["state"][i][key], value), (i, key)

    restored = _tiny_model(tiny_state_dict)
    restored.load_state_dict(ckpt.model)
    restored_optimizer = adamw(restored)
    restored_optimizer.load_state_dict(ckpt.optimizer)
    step(model, optimizer)
    step(restored, restored_optimizer)
    assert weights_fingerprint(restored) == weights_fingerprint(model)


def test_official_training_checkpoint_loads_with_the_config_beside_it(tmp_path, tiny_state_dict, tiny_io):
    """G_*.pth has no config: the official trainer keeps config.json in the experiment folder."""
    exp = tmp_path / "logs" / "tiny"
    (exp / "logs_s2_v2").mkdir(parents=True)
    (exp / "config.json").write_text(json.dumps({k: v for k, v in TINY_CONFIG.items() if k != "_derived"}))
    model = _tiny_model(tiny_state_dict)
    path = exp / "logs_s2_v2" / "G_233333333333.pth"
    torch.save({"model": {k: v.float() for k, v in model.state_dict().items()}, "iteration": 3,
                "optimizer": torch.optim.AdamW(model.parameters()).state_dict(), "learning_rate": 1e-4}, path)
    for_training = load_sovits(path, inference=False)
    assert for_training.kind == "training" and for_training.missing_keys == []
    assert for_training.model.enc_q is not None
    loaded = load_sovits(path)
    assert_fixture_close(_decode_fixture(loaded.model, tiny_io), tiny_io["deterministic"]["decode_o"])


def test_pretrained_style_file_keeps_enc_q_for_training(tmp_path, tiny_state_dict, tiny_io):
    """Pretrained s2G files (`config.py · pretrained_sovits_name @48b1a01`): fp16 `weight` with
    enc_q (inferred from the published files' size; no official code states it)."""
    path = tmp_path / "s2G_tiny.pth"
    torch.save({"weight": dict(tiny_state_dict), "config": _tiny_hps(), "info": "pretrained"}, path)
    loaded = load_sovits(path, inference=False)
    assert loaded.kind == "pretrained" and loaded.missing_keys == []
    inp, fw = tiny_io["inputs"], tiny_io["forward"]
    with torch.no_grad():
        out = loaded.model.eval()(inp["ssl"], inp["spec"], inp["spec_lengths"], inp["text"], inp["text_lengths"],
                                  eps=fw["rng_enc_q_eps"], slice_uniform=fw["rng_slice_uniform"])
    assert_fixture_close(out[0], fw["o"])


def test_wrong_sizes_in_the_config_are_reported(tmp_path, tiny_state_dict):
    hps = _tiny_hps()
    hps.model.hidden_channels = 48
    path = save_sovits(_tiny_model(tiny_state_dict), tmp_path / "e.pth", hps, 1, 1)
    with pytest.raises(CheckpointError, match="e.pth: .*shape mismatches.*Pass config"):
        load_sovits(path)
    assert load_sovits(path, config=_tiny_hps()).version == "v2"  # the right config fixes it


def test_package_exports_are_lazy():
    import subprocess
    import gsv_edu
    subprocess.run([sys.executable, "-c", "import sys, gsv_edu; assert 'torch' not in sys.modules, 'eager import'"],
                   check=True)
    assert gsv_edu.load_sovits is load_sovits and gsv_edu.SynthesizerTrn is SynthesizerTrn
    assert "save_sovits" in dir(gsv_edu)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        gsv_edu.nonexistent
