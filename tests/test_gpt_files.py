"""GPT (s1) weight files: official exports and Lightning checkpoints in, official exports out, safely.

tests/fixtures/gpt/lightning/ (tools/official_fixtures/gpt.py): a micro model (2 layers, 32-d)
trained for two epochs by the official `Text2SemanticLightningModule` and `s1_train.my_model_ckpt`
callback under pytorch_lightning: `micro_lightning.ckpt` (the Lightning checkpoint: fp32
state_dict, ScaledAdam state, scheduler, a pathlib path in its hyper-parameters),
`micro-e2.ckpt` (the fp16 export the callback wrote) and `micro_expected.pt` (the module's
final state dict and config).
"""
from __future__ import annotations

import os
import pathlib
import zipfile

import pytest
import torch

from conftest import FIXTURES
from gsv_edu.gpt.config import GPTConfig
from gsv_edu.weights import CheckpointError, GPTFileError, load_gpt, read_gpt_file, save_gpt
from gsv_edu.gpt.t2s_model import Text2SemanticDecoder

LIGHTNING = FIXTURES.parent / "gpt" / "lightning"
EXPECTED = torch.load(LIGHTNING / "micro_expected.pt", map_location="cpu", weights_only=True)
STATE = {k[len("model."):]: v for k, v in EXPECTED["state_dict"].items()}


def _official_export():
    return torch.load(LIGHTNING / "micro-e2.ckpt", map_location="cpu", weights_only=True)


def test_reads_the_official_lightning_checkpoint():
    record = read_gpt_file(LIGHTNING / "micro_lightning.ckpt")
    assert record.kind == "lightning"
    assert (record.epoch, record.global_step) == (1, 2)
    assert list(record.weights) == list(STATE)
    assert all(torch.equal(record.weights[k], v) for k, v in STATE.items())
    assert record.raw_config == EXPECTED["config"]
    assert record.config.model.hidden_dim == 32 and record.config.train.exp_name == "micro"
    assert len(record.optimizer_states) == 1 and "state" in record.optimizer_states[0]
    assert record.lr_schedulers[0]["_last_lr"] == [0.002]


def test_reads_the_official_export():
    record = read_gpt_file(LIGHTNING / "micro-e2.ckpt")
    assert record.kind == "export" and record.info == "GPT-e2"
    assert all(v.dtype == torch.float16 for v in record.weights.values())
    assert all(torch.equal(record.weights[k], v.half()) for k, v in STATE.items())
    assert record.raw_config == EXPECTED["config"]


@pytest.mark.parametrize("name, exact", [("micro_lightning.ckpt", True), ("micro-e2.ckpt", False)])
def test_load_gpt_builds_the_model_strictly(name, exact):
    model = load_gpt(LIGHTNING / name)
    assert isinstance(model, Text2SemanticDecoder) and not model.training
    assert model.loaded_from.path.endswith(name) and not model.loaded_from.weights
    for k, v in model.state_dict().items():
        want = STATE[k] if exact else STATE[k].half().float()
        assert torch.equal(v, want), k
    assert model.config.to_dict() == EXPECTED["config"]


def test_save_gpt_writes_what_the_official_callback_writes(tmp_path):
    """Our export of the Lightning weights = the official export of the same epoch: keys, order,
    fp16 tensors, config and info."""
    model = load_gpt(LIGHTNING / "micro_lightning.ckpt")
    path = save_gpt(model, tmp_path / "micro-e2.ckpt", model.config, epoch=2)
    ours = torch.load(path, map_location="cpu", weights_only=True)
    official = _official_export()
    assert list(ours) == list(official) == ["weight", "config", "info"]
    assert list(ours["weight"]) == list(official["weight"])
    for k, v in official["weight"].items():
        assert ours["weight"][k].dtype == torch.float16 and torch.equal(ours["weight"][k], v), k
    assert ours["config"] == official["config"] and ours["info"] == official["info"] == "GPT-e2"
    assert [p.name for p in tmp_path.iterdir()] == ["micro-e2.ckpt"]  # no temporary file left


def test_round_trip_and_config_argument(tmp_path):
    model = load_gpt(LIGHTNING / "micro-e2.ckpt")
    cfg = GPTConfig.from_dict(EXPECTED["config"])
    save_gpt(model, tmp_path / "a.ckpt", cfg.to_dict(), info="mine")  # a plain dict is accepted too
    again = load_gpt(tmp_path / "a.ckpt")
    assert again.loaded_from.info == "mine"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    # an official-size file read with an explicit config, in half precision
    big = Text2SemanticDecoder(GPTConfig.preset("official-v1"))
    save_gpt(big, tmp_path / "big.ckpt", epoch=0)
    half = load_gpt(tmp_path / "big.ckpt", dtype=torch.float16)
    assert half.bert_proj.weight.dtype == torch.float16
    assert torch.equal(half.bert_proj.weight, big.bert_proj.weight.half())


def test_unprefixed_weights_and_missing_config(tmp_path):
    torch.save({"weight": dict(STATE)}, tmp_path / "bare.ckpt")
    with pytest.raises(GPTFileError, match="holds no config; pass config="):
        load_gpt(tmp_path / "bare.ckpt")
    model = load_gpt(tmp_path / "bare.ckpt", config=EXPECTED["config"])
    assert torch.equal(model.bert_proj.bias, STATE["bert_proj.bias"])


def test_wrong_sizes_are_named(tmp_path):
    cfg = dict(EXPECTED["config"])
    cfg["model"] = dict(cfg["model"], phoneme_vocab_size=40)
    with pytest.raises(GPTFileError, match=r"shape mismatch.*ar_text_embedding.word_embeddings.weight: file \(48, 32\)"):
        load_gpt(LIGHTNING / "micro-e2.ckpt", config=cfg)
    weights = {("model." + k): v for k, v in STATE.items() if not k.startswith("h.layers.1.")}
    torch.save({"weight": weights, "config": EXPECTED["config"]}, tmp_path / "short.ckpt")
    with pytest.raises(GPTFileError, match=r"12 missing key\(s\), e.g. \['h.layers.1.self_attn.in_proj_weight'"):
        load_gpt(tmp_path / "short.ckpt")


class _Payload:
    """Pickles as a call to os.system: what a malicious checkpoint would contain."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_refuses_code_in_the_pickle(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"weight": {"model.x": torch.zeros(1)}, "config": _Payload(marker)}, tmp_path / "evil.ckpt")
    with pytest.raises(GPTFileError, match="refused to unpickle"):
        read_gpt_file(tmp_path / "evil.ckpt")
    assert not marker.exists()


class _WindowsPath:
    def __reduce__(self):
        return pathlib.WindowsPath, ("C:\\logs", "logs_s1_v2")


def test_lightning_paths_become_pure_paths(tmp_path):
    """Lightning stores `output_dir` as a pathlib path; one written on Windows unpickles on Linux as well."""
    data = torch.load(LIGHTNING / "micro_lightning.ckpt", map_location="cpu", weights_only=False)
    data["hyper_parameters"]["output_dir"] = _WindowsPath()
    torch.save(data, tmp_path / "win.ckpt")
    with zipfile.ZipFile(tmp_path / "win.ckpt") as z:
        pkl = next(z.read(n) for n in z.namelist() if n.endswith("data.pkl"))
    assert b"WindowsPath" in pkl
    model = load_gpt(tmp_path / "win.ckpt")
    assert model.config.model.n_layer == 2
    with torch.serialization.safe_globals([(pathlib.PureWindowsPath, "pathlib.WindowsPath")]):
        out = torch.load(tmp_path / "win.ckpt", weights_only=True)["hyper_parameters"]["output_dir"]
    assert out == pathlib.PureWindowsPath("C:\\logs\\logs_s1_v2")


@pytest.mark.parametrize("content, message", [
    (b"", "empty or truncated file"),
    (b"hello world", "not a torch checkpoint"),
    ("truncated", "not a readable torch checkpoint"),
    ("list", "expected a dict"),
    ("other", "not a GPT file"),
    ("not-tensors", "not tensors"),
])
def test_bad_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.ckpt"
    if content == "truncated":
        path.write_bytes((LIGHTNING / "micro-e2.ckpt").read_bytes()[:5000])
    elif content == "list":
        torch.save([1, 2], path)
    elif content == "other":
        torch.save({"model": {}}, path)
    elif content == "not-tensors":
        torch.save({"weight": {"model.a": 1.0}}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(GPTFileError, match=message) as e:
        load_gpt(path)
    assert str(path) in str(e.value)
    with pytest.raises(GPTFileError, match="cannot open"):
        load_gpt(tmp_path / "absent.ckpt")
    assert issubclass(GPTFileError, CheckpointError)  # one family of errors for every weight file
