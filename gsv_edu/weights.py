"""Every official weight file (SoVITS, speaker verification, GPT), in and out, read safely: one reader per kind of file.

| kind | official writer | content | reader here | writer here |
|---|---|---|---|---|
| exported weights (`SoVITS_weights*/name_e4_s8.pth`) | `process_ckpt.savee` | `weight` (fp16, no `enc_q`), `config` (a pickled `utils.HParams`), `info` "4epoch_8iteration" | `read_sovits_file` (`load_sovits` builds the model) | `save_sovits` |
| pretrained s2G (`s2G2333k.pth`, `s2G488k.pth`) | — | `weight` (fp16, **with** `enc_q`), for v2 also `config`/`info` | `read_sovits_file` | `save_sovits(enc_q=True)` |
| pretrained s2D (`s2D2333k.pth`) | — | `weight` (the discriminator) | `read_discriminator_file` | — |
| speaker verification (`pretrained_eres2netv2w24s4ep4.ckpt`, v2Pro) | — | a plain ERes2NetV2 state dict | `load_sv_model` | `save_sv_model` |
| training checkpoints (`logs_s2_v2/G_1234.pth`, `D_1234.pth`) | `utils.save_checkpoint` | `model` (fp32 state dict), `iteration` (the epoch), `optimizer`, `learning_rate` | `load_training_checkpoint` (`load_pair` for both files) | `save_training_checkpoint`, `save_pair` |
| GPT (s1) export / pretrained s1 (`GPT_weights_v2/name-e15.ckpt`, `s1bert25hz-…ckpt`) | `s1_train.py · my_model_ckpt` | `weight` {"model." + key: fp16}, `config` (the s1 YAML dict), `info` "GPT-e15" | `read_gpt_file` (`load_gpt` builds the model) | `save_gpt` |
| GPT Lightning checkpoint (`logs_s1_v2/ckpt/epoch=14-step=300.ckpt`) | pytorch_lightning | `state_dict` {"model." + key: fp32}, `optimizer_states`, `lr_schedulers`, `epoch`, `global_step`, `hyper_parameters` {"config", "output_dir" (a pathlib path), "is_train"}, `loops`, `callbacks` | `read_gpt_file`, `read_gpt_raw` (the whole dict) | — (gsv_edu.train.gpt) |

A `G_*.pth` is also a generator file: `read_sovits_file` takes its `model` weights (for
inference or as the start of a new run), `load_training_checkpoint` its whole training state
(to resume). `read_discriminator_file` takes the `weight` of an s2D or the `model` of a `D_*.pth`.
All of them go through one safe unpickler (`_load_raw`).

Safety: a `.pth` file is a pickle, and unpickling runs whatever the file names. Every read here
uses `torch.load(..., weights_only=True)`, which only rebuilds tensors and plain containers;
the one foreign class of official exports, `utils.HParams`, is mapped to our own inert
`HParams` below (`torch.serialization.safe_globals`), and the `pathlib.PosixPath` /
`WindowsPath` that Lightning checkpoints hold are rebuilt as the matching *pure* paths (no
file-system access; a Windows path unpickles on Linux too). The official code is never imported.

Version tags (`GPT_SoVITS/process_ckpt.py · my_save2, get_sovits_version_from_path_fast,
load_sovits_new @48b1a01`): v1/v2 files are plain zip archives (first bytes "PK").
Later versions overwrite the first two bytes with a tag ("05" v2Pro, "06" v2ProPlus, "03"/"04"
v3/v4 LoRA; "00"/"01"/"02" are old v1/v2/v3 tags). v1 and v2 are told apart by the rows of
`enc_p.text_embedding.weight` (322 → v1, 732 → v2: the sizes of the two symbol tables), as the
official inference UI does (`GPT_SoVITS/inference_webui.py · change_sovits_weights
@48b1a01`). v2Pro/v2ProPlus weights have `sv_emb`/`ge_to512`/`prelu` keys; the version comes
from the tag ("05"/"06", `process_ckpt.my_save2`), else from the stored config,
else from the shapes (v2ProPlus: first HiFi-GAN upsampling kernel 20, s2v2ProPlus.json). The
official pretrained s2Gv2Pro/s2Gv2ProPlus are plain zip archives that the official code
recognises by the MD5 of their first 8192 bytes (`process_ckpt.hash_pretrained_dict`); their
keys and shapes say the same here. `save_sovits` writes the tag of a v2Pro/v2ProPlus export, as
`process_ckpt.savee` does.

Training checkpoints (mirrors `GPT_SoVITS/utils.py · save_checkpoint, load_checkpoint,
latest_checkpoint_path @48b1a01`) live in `RUN/logs_s2_{version}/` as in the
official experiment folder, and hold the official keys above, so the official trainer can
resume from them, plus gsv_edu's keys for an exact resume (the official trainer ignores them):

    scheduler      ExponentialLR state            (G and D files)
    step           optimizer steps done so far    (G and D files)
    epoch, batch_in_epoch   where in the data the run stopped: the next batch is number
                   `batch_in_epoch` of epoch `epoch`
    scaler         GradScaler state (or None)     (G file)
    rng            RNG states (python, numpy, torch, cuda) of every rank   (G file)
    world_size     number of processes that wrote it                       (G file)
    config         the run's config (s2.json layout)                       (G file)

Every value is a tensor or a plain container, so `torch.load(..., weights_only=True)` reads
them. D is written before G: a G file exists only when its D file is complete, and the latest
checkpoint is the highest step with both files.

Writing: every file is written through a temporary file and `os.replace` (`gsv_edu.atomic`;
the official writes in place, so an interrupted run of ours never leaves a half-written file).
`save_sovits` produces the official export format, so the official UI loads our weights.

Also here, because every weight reader needs them: `compare_state_dict` (which keys of a file
fit a model) and `weights_fingerprint` (a short hash telling whether two models are the same).
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import pathlib
import pickle
import re
import types
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gsv_edu.atomic import atomic_save, atomic_write
from gsv_edu.config import OFFICIAL_CONFIGS, OFFICIAL_S2_JSON
from gsv_edu.gpt.config import GPTConfig, GPTConfigError
from gsv_edu.gpt.t2s_model import Text2SemanticDecoder
from gsv_edu.sovits.channels_last import use_channels_last_convs
from gsv_edu.sovits.dft_conv import use_dft_convs
from gsv_edu.sovits.models import SynthesizerTrn
from gsv_edu.sovits.weight_norm import fold_weight_norm, is_weight_normed
from gsv_edu.sv.eres2net import ERes2NetV2, sv_args_from_state_dict
from gsv_edu.text.symbols import EXPECTED_COUNTS

__all__ = [
    "HParams", "CheckpointError", "UnsupportedVersionError", "SovitsFile", "LoadedSovits",
    "TrainingCheckpoint", "read_sovits_file", "read_discriminator_file", "load_sovits", "save_sovits",
    "load_training_checkpoint", "save_training_checkpoint", "OFFICIAL_HPARAMS_NAME",
    "as_hparams", "build_model", "detect_version", "StateDictDiff", "compare_state_dict", "weights_fingerprint",
    "CHECKPOINT_RE", "CheckpointPair", "checkpoint_dir", "list_checkpoints", "latest_checkpoint", "save_pair",
    "load_pair", "prune_checkpoints", "load_sv_model", "save_sv_model",
    "GPTFileError", "GPTFile", "read_gpt_raw", "read_gpt_file", "load_gpt", "save_gpt", "gpt_export_dict",
]

OFFICIAL_HPARAMS_NAME = "utils.HParams"  # module.qualname of the official config class (GPT_SoVITS/utils.py)
# pickled name -> the inert class rebuilt in its place (Lightning stores its output_dir as a pathlib path)
PATH_GLOBALS = [(pathlib.PurePosixPath, "pathlib.PosixPath"), (pathlib.PureWindowsPath, "pathlib.WindowsPath"),
                pathlib.PurePosixPath, pathlib.PureWindowsPath]

# First two bytes of a weight file → what the official reader makes of them
# (GPT_SoVITS/process_ckpt.py · head2version @48b1a01, used by get_sovits_version_from_path_fast).
HEADER_TAGS = {b"00": "v1", b"01": "v2", b"02": "v3", b"03": "v3 (LoRA)", b"04": "v4 (LoRA)",
               b"05": "v2Pro", b"06": "v2ProPlus"}
SUPPORTED_TAGS = {b"00", b"01", b"05", b"06"}
VERSION_TAGS = {"v2Pro": b"05", "v2ProPlus": b"06"}  # what save_sovits writes in place of "PK"
PRO_VERSIONS = ("v2Pro", "v2ProPlus")
# MD5 of the first 8192 bytes of the official pretrained files → version (process_ckpt.py @48b1a01)
OFFICIAL_PRETRAINED_MD5 = {"c7e9fce2223f3db685cdfa1e6368728a": "v2Pro",       # s2Gv2Pro.pth
                           "66b313e39455b57ab1b0bc0b239c9d0a": "v2ProPlus"}   # s2Gv2ProPlus.pth

# Keys that only later model versions have (GPT_SoVITS/module/models.py @48b1a01:
# SynthesizerTrnV3.__init__ makes bridge, wns1, cfm; SynthesizerTrn.__init__ makes sv_emb,
# ge_to512, prelu for v2Pro/v2ProPlus).
LATER_VERSION_KEYS = {"bridge.": "v3/v4", "wns1.": "v3/v4", "cfm.": "v3/v4"}
PRO_KEYS = ("sv_emb.", "ge_to512.", "prelu.")
TEXT_TABLE_ROWS = {rows: version for version, rows in EXPECTED_COUNTS.items()}  # {322: "v1", 732: "v2"}


class CheckpointError(ValueError):
    """A weight file cannot be read or does not contain what it should (the message names the file)."""


class UnsupportedVersionError(CheckpointError):
    """The file belongs to a SoVITS version this library does not implement yet (v3, v4)."""


# ---------------------------------------------------------------------------------------- HParams

class HParams:
    """Our stand-in for the official `utils.HParams`: a dict whose keys are also attributes.

    Official exports pickle their training config as a tree of `utils.HParams` objects; loading
    maps that name to this class, and `save_sovits` writes this class *under* that name, so the
    official UI (which has `utils.HParams` on its path) reads our exports unchanged. It holds
    data only and runs no code when unpickled (the state is just its attribute dict).
    """

    def __init__(self, **kwargs: Any):
        for key, value in kwargs.items():
            self[key] = HParams(**value) if isinstance(value, dict) else value

    def keys(self):
        return self.__dict__.keys()

    def items(self):
        return self.__dict__.items()

    def values(self):
        return self.__dict__.values()

    def get(self, key: str, default: Any = None) -> Any:
        return self.__dict__.get(key, default)

    def __len__(self) -> int:
        return len(self.__dict__)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __contains__(self, key: str) -> bool:
        return key in self.__dict__

    def __repr__(self) -> str:
        return repr(self.__dict__)

    def __setstate__(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"utils.HParams: expected a dict state, got {type(state).__name__}")
        self.__dict__.update(state)

    def to_dict(self) -> dict:
        """A plain nested dict (e.g. to build a `gsv_edu.config.Config` or to write JSON)."""
        return {k: v.to_dict() if isinstance(v, HParams) else copy.deepcopy(v) for k, v in self.items()}


def as_hparams(config: Any) -> HParams:
    """An independent `HParams` copy of a config given as HParams, dict, `gsv_edu.config.Config`,
    an official-layout JSON file path, or any HParams-like object (e.g. the official class)."""
    if isinstance(config, (str, os.PathLike)):
        path = pathlib.Path(config)
        try:
            return HParams(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path}: cannot read the config ({e})") from None
    if isinstance(config, HParams):
        return HParams(**config.to_dict())
    if isinstance(config, dict):
        return HParams(**copy.deepcopy(config))
    if hasattr(config, "to_dict") and callable(config.to_dict):  # gsv_edu.config.Config
        return HParams(**config.to_dict())
    if hasattr(config, "__dict__"):  # another HParams-like object
        def plain(o):
            return {k: plain(v) for k, v in vars(o).items()} if hasattr(o, "__dict__") else copy.deepcopy(o)
        return HParams(**plain(config))
    raise TypeError(f"cannot use a {type(config).__name__} as a SoVITS config")


# ---------------------------------------------------------------------------------------- reading

def _safe_torch_load(source, path: str):
    """torch.load with weights_only=True; `utils.HParams` is the only extra class allowed."""
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    if (major, minor) < (2, 6):  # pragma: no cover - pyproject.toml asks for torch >= 2.6
        # torch 2.5 has safe_globals but not (class, name) pairs: it would fail inside torch.load
        raise CheckpointError(f"{path}: reading official weight files safely needs torch >= 2.6 "
                              f"(torch.serialization.safe_globals with a (class, name) pair), "
                              f"found {torch.__version__}")
    # our class under the official name, and under its own (files pickled with plain torch.save);
    # pathlib paths (Lightning's hyper_parameters) as pure paths
    context = torch.serialization.safe_globals([(HParams, OFFICIAL_HPARAMS_NAME), HParams, *PATH_GLOBALS])
    try:
        with context:
            return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
        reason = lines[0].split(" was not an allowed global")[0] if lines else type(e).__name__
        raise CheckpointError(f"{path}: refused to unpickle it: the file contains more than tensors, "
                              f"plain containers, paths and {OFFICIAL_HPARAMS_NAME} ({reason})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable torch checkpoint (truncated or not a .pth file?): "
                              f"{first_line}") from None


def _load_raw(path: str):
    """Read a weight file: check its first bytes, undo a version tag, unpickle safely."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot open ({e.strerror or e})") from None
    if len(head) < 2:
        raise CheckpointError(f"{path}: empty or truncated file ({len(head)} bytes)")
    if head == b"PK" or head[:1] == b"\x80":  # zip archive, or torch's legacy pickle format
        return _safe_torch_load(path, path)
    if head in HEADER_TAGS:
        if head not in SUPPORTED_TAGS:
            raise UnsupportedVersionError(f"{path}: not supported yet: {HEADER_TAGS[head]} weights "
                                          f"(version tag {head.decode()!r}; this library reads SoVITS v1, v2, "
                                          f"v2Pro and v2ProPlus)")
        with open(path, "rb") as f:
            data = bytearray(f.read())
        data[:2] = b"PK"  # the official reader also puts the zip magic back before torch.load
        return _safe_torch_load(io.BytesIO(bytes(data)), path)
    raise CheckpointError(f"{path}: not a torch checkpoint (starts with {head!r}, expected b'PK' "
                          f"or a version tag {sorted(t.decode() for t in HEADER_TAGS)})")


def _config_version(hps: HParams | None) -> str | None:
    if hps is None:
        return None
    model = hps.get("model")
    version = model.get("version") if isinstance(model, HParams) else None
    return version or hps.get("version")


def _file_tag(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(2)


def _official_pretrained_version(path: str) -> str | None:
    """The version of an official pretrained s2Gv2Pro/s2Gv2ProPlus, known by the MD5 of its head."""
    with open(path, "rb") as f:
        digest = hashlib.md5(f.read(8192)).hexdigest()
    return OFFICIAL_PRETRAINED_MD5.get(digest)


def _first_upsample_kernel(weight: dict) -> int | None:
    for key in ("dec.ups.0.weight_v", "dec.ups.0.weight", "dec.ups.0.parametrizations.weight.original1"):
        if key in weight:
            return int(weight[key].shape[-1])
    return None


def detect_version(weight: dict, hps: HParams | None = None, path: str = "weights", tag: bytes | None = None) -> str:
    """"v1", "v2", "v2Pro" or "v2ProPlus" from a generator state dict (its config, its tag); v3/v4 raise.

    As the official inference UI: `enc_p.text_embedding.weight` with 322 rows → v1, 732 → v2.
    `sv_emb`/`ge_to512`/`prelu` keys → v2Pro or v2ProPlus: the "05"/"06" tag decides, else the
    config's version, else the first HiFi-GAN upsampling kernel (20 → v2ProPlus, as
    s2v2ProPlus.json; 16 → v2Pro).
    """
    for prefix, version in LATER_VERSION_KEYS.items():
        if any(k.startswith(prefix) for k in weight):
            raise UnsupportedVersionError(f"{path}: not supported yet: {version} weights "
                                          f"(it has '{prefix}*' keys; this library reads SoVITS v1, v2, v2Pro "
                                          f"and v2ProPlus)")
    configured = _config_version(hps)
    if configured in ("v3", "v4"):
        raise UnsupportedVersionError(f"{path}: not supported yet: {configured} weights (its config says so)")
    tagged = HEADER_TAGS.get(tag) if tag is not None else None
    if any(k.startswith(PRO_KEYS) for k in weight):
        if tagged in PRO_VERSIONS:
            return tagged
        if configured in PRO_VERSIONS:
            return configured
        return "v2ProPlus" if _first_upsample_kernel(weight) == 20 else "v2Pro"
    if tagged in PRO_VERSIONS or configured in PRO_VERSIONS:
        raise CheckpointError(f"{path}: marked {tagged or configured} (by its "
                              f"{'version tag' if tagged in PRO_VERSIONS else 'config'}) but it has no "
                              f"sv_emb/ge_to512/prelu weights")
    table = weight.get("enc_p.text_embedding.weight")
    if table is None:
        raise CheckpointError(f"{path}: no 'enc_p.text_embedding.weight': not a SoVITS v1/v2 generator")
    rows = int(table.shape[0])
    if rows not in TEXT_TABLE_ROWS:
        raise CheckpointError(f"{path}: enc_p.text_embedding.weight has {rows} rows; expected 322 (v1) or 732 (v2)")
    return TEXT_TABLE_ROWS[rows]


@dataclass
class SovitsFile:
    """What a generator weight file holds, read and checked but not yet turned into a model."""

    path: str
    kind: str                   # "export", "pretrained" or "training"
    version: str                # "v1", "v2", "v2Pro" or "v2ProPlus"
    weight: dict[str, torch.Tensor]
    hps: HParams | None = None  # the stored config (exports, v2 pretrained), else None
    info: str | None = None     # "{epoch}epoch_{step}iteration" for exports
    training: dict[str, Any] | None = None  # iteration / learning_rate / optimizer of G_*.pth

    @property
    def has_enc_q(self) -> bool:
        return any(k.startswith("enc_q.") for k in self.weight)


def read_sovits_file(path: str | os.PathLike) -> SovitsFile:
    """Read any official (or our) SoVITS generator file safely and tell what it is."""
    path = os.fspath(path)
    obj = _load_raw(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict at the top level, found {type(obj).__name__}")
    hps = obj.get("config")
    if hps is not None and not isinstance(hps, HParams):
        hps = as_hparams(hps) if isinstance(hps, dict) else None
    if "lora_rank" in obj:
        raise UnsupportedVersionError(f"{path}: not supported yet: a v3/v4 LoRA export ('lora_rank' key)")
    weight = _weights_of(obj, path)
    training = {k: obj.get(k) for k in ("iteration", "learning_rate", "optimizer")} if "weight" not in obj else None
    if any(k.startswith("discriminators.") for k in weight):
        raise CheckpointError(f"{path}: this is a discriminator checkpoint (D_*.pth / s2D); "
                              f"read_sovits_file reads generator files")
    tag = _file_tag(path)
    version = _official_pretrained_version(path) if tag == b"PK" else None
    version = version or detect_version(weight, hps, path, tag=tag)
    has_enc_q = any(k.startswith("enc_q.") for k in weight)
    kind = "training" if training is not None else ("pretrained" if has_enc_q else "export")
    info = obj.get("info")
    return SovitsFile(path=path, kind=kind, version=version, weight=dict(weight), hps=hps,
                      info=info if isinstance(info, str) else None, training=training)


def _weights_of(obj: dict, path: str) -> dict[str, torch.Tensor]:
    """The state dict of a weight file: `weight` (exports, pretrained s2G/s2D) or `model` (G_/D_*.pth)."""
    if "weight" in obj:
        weight = obj["weight"]
    elif "model" in obj:
        weight = obj["model"]
    else:
        raise CheckpointError(f"{path}: neither 'weight' (exported/pretrained weights) nor 'model' "
                              f"(training checkpoint) at the top level; found {sorted(obj)}")
    if not isinstance(weight, dict) or not all(torch.is_tensor(v) for v in weight.values()):
        raise CheckpointError(f"{path}: the weights are not a mapping of names to tensors")
    return weight


def read_discriminator_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The discriminator weights of an official pretrained s2D (`weight`) or a `D_*.pth` (`model`), read safely."""
    path = os.fspath(path)
    obj = _load_raw(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"pretrained D {path}: expected a dict with 'weight' (s2D) or 'model' (D_*.pth), "
                              f"found {type(obj).__name__}")
    return dict(_weights_of(obj, path))



# ---------------------------------------------------------------------------------------- comparing

@dataclass
class StateDictDiff:
    """Keys of `weights` against a model's `expected` state dict, each list in the order it was met."""

    fitting: dict[str, torch.Tensor] = field(default_factory=dict)  # same name, same shape
    missing: list[str] = field(default_factory=list)     # in the model, not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model
    mismatched: list[str] = field(default_factory=list)  # "key: file (shape), model (shape)"


def compare_state_dict(weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> StateDictDiff:
    """Which keys of a file fit a model's state dict, which are missing, extra or mis-shaped.

    One comparison serves every loader: `load_sovits` (strict, with the `enc_q` of an export
    allowed to be missing), `--pretrained-g/-d` in the trainer (loads what fits, reports the rest,
    as the official `load_state_dict(strict=False)` does) and `HuBERT.from_pretrained`
    (gsv_edu.hubert.loading; strict). Each caller words its own error.
    """
    diff = StateDictDiff()
    for key, value in weights.items():
        if key not in expected:
            diff.unexpected.append(key)
        elif tuple(value.shape) != tuple(expected[key].shape):
            diff.mismatched.append(f"{key}: file {tuple(value.shape)}, model {tuple(expected[key].shape)}")
        else:
            diff.fitting[key] = value
    diff.missing = [key for key in expected if key not in weights]
    return diff


def weights_fingerprint(weights: torch.nn.Module | dict[str, torch.Tensor], digits: int = 16) -> str:
    """A short sha1 of a module's state dict, or of a state dict (bitwise: equal iff every key and
    tensor is identical).

    The trainer compares the ranks' models with it, the tests compare runs; the data preparation
    records its 12-digit form (`digits=12`) in prepare_info.json and in the folder name of cached
    semantic codes.
    """
    state = weights.state_dict() if isinstance(weights, torch.nn.Module) else weights
    h = hashlib.sha1()
    for key, value in state.items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:digits]

# ---------------------------------------------------------------------------------------- loading

@dataclass
class LoadedSovits:
    """The result of `load_sovits`: the model and what came with it."""

    model: Any                  # gsv_edu.sovits.models.SynthesizerTrn
    hps: HParams                # the config the model was built from
    version: str                # "v1", "v2", "v2Pro" or "v2ProPlus"
    kind: str                   # "export", "pretrained" or "training"
    info: str | None = None
    path: str = ""
    missing_keys: list[str] = field(default_factory=list)  # keys left at their fresh initial values
    config_source: str = ""     # where `hps` came from, for error messages (gsv_edu.infer)


def _find_config(path: str, version: str = "v2") -> pathlib.Path:
    """The config file for a weight file that carries none: config.json beside it or one folder up
    (the official trainer keeps it in the experiment folder), else the version's official config
    (s2.json, s2v2Pro.json, s2v2ProPlus.json)."""
    here = pathlib.Path(path).resolve().parent
    for candidate in (here / "config.json", here.parent / "config.json"):
        if candidate.is_file():
            return candidate
    return OFFICIAL_CONFIGS.get(version, OFFICIAL_S2_JSON)


def build_model(hps: HParams, version: str, ssl_dim: int | None = None, sv_dim: int | None = None):
    """`SynthesizerTrn` from an official-layout config, the way the official scripts build it.

    `ssl_dim` / `sv_dim` (read off the weights by `load_sovits`) override the config's."""
    try:
        data, train, model_cfg = hps["data"], hps["train"], dict(hps["model"].items())
    except AttributeError as e:
        raise CheckpointError(f"config lacks a section: {e}") from None
    model_cfg["version"] = version
    if ssl_dim is not None:
        model_cfg["ssl_dim"] = ssl_dim
    if sv_dim is not None:
        model_cfg["sv_dim"] = sv_dim
    return SynthesizerTrn(data["filter_length"] // 2 + 1, train["segment_size"] // data["hop_length"],
                          n_speakers=data.get("n_speakers", 0), **model_cfg)


def load_sovits(path: str | os.PathLike, device: str | torch.device = "cpu", *, config: Any = None,
                inference: bool = True) -> LoadedSovits:
    """Load an official or gsv_edu SoVITS v1/v2/v2Pro/v2ProPlus generator file into a `SynthesizerTrn`.

    Reads exported weights, pretrained s2G files and training checkpoints (G_*.pth) safely
    (see the module docstring). The config comes from `config` if given, else from the file,
    else from a config.json beside the file (or one folder up), else the official s2.json.
    The version comes from the file (its tag, config and weights: 322 text rows → v1; sv_emb keys
    → v2Pro/v2ProPlus); `.version` of the result says which.

    inference=True (default): a model ready for `decode`: eval mode, `enc_q` dropped (it is only
    needed for training), weight norm folded into plain weights. inference=False: a model to
    train from: train mode, weight norm kept; a file without `enc_q` (an export) leaves the
    posterior encoder at its fresh initial values (listed in `missing_keys`), as the official
    trainer does when it starts from such a file. The returned record is also attached to the
    model as `model.loaded_from`, so the file's config and version stay at hand (gsv_edu.infer).
    """
    path = os.fspath(path)
    sovits = read_sovits_file(path)
    if config is not None:
        hps, config_source = as_hparams(config), "the config= argument"
    elif sovits.hps is not None:
        hps, config_source = sovits.hps, f"{path} (the config stored in it)"
    else:
        found = _find_config(path, sovits.version)
        hps, config_source = as_hparams(found), str(found)
    ssl_proj = sovits.weight.get("ssl_proj.weight")
    sv_emb = sovits.weight.get("sv_emb.weight")
    try:
        model = build_model(hps, sovits.version, ssl_dim=int(ssl_proj.shape[0]) if ssl_proj is not None else None,
                            sv_dim=int(sv_emb.shape[1]) if sv_emb is not None else None)
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: cannot build a SynthesizerTrn from its config: {e}") from None

    weight = sovits.weight
    if inference:
        model.enc_q = None
        weight = {k: v for k, v in weight.items() if not k.startswith("enc_q.")}
    diff = compare_state_dict(weight, model.state_dict())
    missing, unexpected, mismatched = diff.missing, diff.unexpected, diff.mismatched
    if unexpected or mismatched or any(not k.startswith("enc_q.") for k in missing):
        problems = []
        if mismatched:
            problems.append(f"{len(mismatched)} shape mismatches (e.g. {'; '.join(mismatched[:3])})")
        if missing:
            problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        hint = (" Pass config=... with the sizes the weights were trained with." if mismatched or unexpected
                else " The file is incomplete (a format-only or partial export?).")
        raise CheckpointError(f"{path}: the weights do not fit a {sovits.version} SynthesizerTrn built from "
                              f"its config: {'; '.join(problems)}.{hint}")
    model.load_state_dict(weight, strict=not missing)  # fp16 tensors are upcast by the copy
    model.to(device)
    if inference:
        model.eval()
        fold_weight_norm(model)
        if torch.device(device).type == "cpu":
            # oneDNN runs these narrow, long 1-D convolutions faster in the channels-last layout,
            # and the wide ones (k = 7, 11) take less arithmetic by block DFT: together about 0.73×
            # the official decode time at the official size (bench/decode.py, README "Speed"). Same
            # weights, same keys, outputs equal to float rounding. Only the decoder: enc_p's
            # attention reshapes its conv outputs with .view, which needs the default layout.
            use_dft_convs(use_channels_last_convs(model.dec))
    loaded = LoadedSovits(model=model, hps=hps, version=sovits.version, kind=sovits.kind, info=sovits.info,
                          path=path, missing_keys=missing, config_source=config_source)
    model.loaded_from = loaded  # the file's config and version travel with the model (gsv_edu.infer reads them)
    return loaded


# ---------------------------------------------------------------------------------------- writing

class _ExportPickler(pickle._Pickler):
    """A pickler that writes our `HParams` class under the official name `utils.HParams`.

    The standard pickler refuses to name a class after a module that cannot be imported
    (`utils` is the official code's module). Our exports must nevertheless say
    `utils.HParams`, because that is what the official loader expects; so this pickler emits
    the reference itself (the GLOBAL opcode, as pickle protocol 2 does) for that one class.
    Everything else is pickled normally; tensors go through torch's persistent ids.
    """

    def save_global(self, obj, name=None):
        if obj is HParams:
            module, qualname = OFFICIAL_HPARAMS_NAME.rsplit(".", 1)
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode("ascii"))
            self.memoize(obj)
            return
        super().save_global(obj, name)


# torch.save takes a "pickle module": it only needs `Pickler` (and a `__name__`).
_EXPORT_PICKLE_MODULE = types.SimpleNamespace(__name__="gsv_edu_export_pickle", Pickler=_ExportPickler)


def _unwrap(model):
    return model.module if hasattr(model, "module") and isinstance(model.module, torch.nn.Module) else model


def save_sovits(model, path: str | os.PathLike, hps: Any, epoch: int, step: int, *, enc_q: bool = False) -> str:
    """Write the official export format of `GPT_SoVITS/process_ckpt.py · savee @48b1a01`; returns
    the path.

    An OrderedDict with `weight` (every state-dict entry whose key does not contain "enc_q", as
    float16), `config` (the training config as a `utils.HParams`), `info`
    ("{epoch}epoch_{step}iteration"). The file is a plain torch zip archive ("PK"), readable by
    `load_sovits` and by the official UI. `hps` may be an HParams, a dict, a
    `gsv_edu.config.Config` or a JSON path; `model.version` (and a non-default `ssl_dim`) is
    written into its `model` section so the file alone is enough to rebuild the model.
    Written atomically (temporary file, then `os.replace`).

    enc_q=True keeps the posterior encoder's tensors too, in their state-dict place: the format of
    an official *pretrained* s2G (`s2G2333k.pth` of `config.py · pretrained_sovits_name @48b1a01`;
    that it holds `enc_q` is inferred from its published size, no official code states it), which
    `load_sovits` also reads.

    v2Pro / v2ProPlus exports start with "05" / "06" instead of "PK" (`process_ckpt.my_save2`: the
    official UI reads the version from these two bytes and puts "PK" back before torch.load); with
    enc_q=True the file stays a plain zip, as the official pretrained s2Gv2Pro files are.
    """
    model = _unwrap(model)
    if hasattr(model, "dec") and not is_weight_normed(model.dec.ups[0]):
        raise ValueError("save_sovits: this model's weight norm was folded (load_sovits(inference=True)); "
                         "the official format stores weight_g/weight_v: load it with inference=False to re-export")
    hps = as_hparams(hps)
    if "model" not in hps:
        hps["model"] = HParams()
    if getattr(model, "version", None):
        hps["model"]["version"] = model.version
    if getattr(model, "ssl_dim", 768) != 768:
        hps["model"]["ssl_dim"] = model.ssl_dim
    if getattr(model, "sv_dim", None) not in (None, 20480):
        hps["model"]["sv_dim"] = model.sv_dim
    weight = {k: v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()
              for k, v in model.state_dict().items() if enc_q or "enc_q" not in k}
    export = OrderedDict(weight=weight, config=hps, info=f"{epoch}epoch_{step}iteration")
    path = os.fspath(path)
    tag = VERSION_TAGS.get(getattr(model, "version", None)) if not enc_q else None
    buffer = io.BytesIO()
    torch.save(export, buffer, pickle_module=_EXPORT_PICKLE_MODULE)
    data = buffer.getvalue()
    with atomic_write(path, "wb") as f:
        f.write(tag + data[2:] if tag else data)  # "05"/"06" replace the zip magic "PK"
    return path



# ---------------------------------------------------------------------------------------- speaker verification

def load_sv_model(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """The v2Pro speaker-verification network (`gsv_edu.sv.ERes2NetV2`, eval mode) from a plain
    state-dict file such as the official `pretrained_eres2netv2w24s4ep4.ckpt`.

    Mirrors `GPT_SoVITS/sv.py · SV.__init__ @48b1a01` (a bare `torch.save(state_dict)`), read with
    `weights_only=True`. The network's arguments are read off the file's keys and shapes
    (`sv_args_from_state_dict`), so our tiny model's files load the same way; the load is strict.
    The model's `.loaded_from` is the path and `.sv_args` the constructor arguments.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file (expected an ERes2NetV2 state dict such as "
                              "pretrained_eres2netv2w24s4ep4.ckpt)")
    weights = _safe_torch_load(path, path)
    if not isinstance(weights, dict) or not all(torch.is_tensor(v) for v in weights.values()):
        found = list(weights)[:5] if isinstance(weights, dict) else type(weights).__name__
        raise CheckpointError(f"{path}: expected a plain state dict (key -> tensor) like the official "
                              f"pretrained_eres2netv2w24s4ep4.ckpt, found {found}")
    try:
        args = sv_args_from_state_dict(weights)
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: not an ERes2NetV2 state dict: {e}") from None
    model = ERes2NetV2(**args)
    diff = compare_state_dict(weights, model.state_dict())
    if diff.missing or diff.unexpected or diff.mismatched:
        problems = [f"{len(items)} {label} (e.g. {', '.join(items[:3])})"
                    for label, items in (("missing", diff.missing), ("unexpected", diff.unexpected),
                                         ("wrong shape", diff.mismatched)) if items]
        arguments = ", ".join(f"{k}={v!r}" for k, v in args.items())
        raise CheckpointError(f"{path}: does not match ERes2NetV2({arguments}): " + "; ".join(problems))
    model.load_state_dict(weights, strict=True)
    model.to(map_location).eval()
    model.loaded_from = path
    model.sv_args = args
    return model


def save_sv_model(model, path: str | os.PathLike) -> str:
    """Write an ERes2NetV2 in the official format (a plain state dict), atomically; returns the path."""
    path = os.fspath(path)
    atomic_save({k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}, path)
    return path

# ---------------------------------------------------------------------------------------- training checkpoints

@dataclass
class TrainingCheckpoint:
    """An official training checkpoint (`G_*.pth` / `D_*.pth`, utils.save_checkpoint layout)."""

    model: dict[str, torch.Tensor]   # full fp32 state dict (G: with enc_q)
    iteration: int                   # official quirk: this is the epoch number, not a step
    learning_rate: float             # the base learning rate from the config
    optimizer: dict | None = None    # AdamW state dict
    state: dict = field(default_factory=dict, repr=False)  # the whole file: also gsv_edu's resume keys


def load_training_checkpoint(path: str | os.PathLike) -> TrainingCheckpoint:
    """Read a `G_*.pth` or `D_*.pth` file safely (no optimizer objects are rebuilt, only their state)."""
    path = os.fspath(path)
    obj = _load_raw(path)
    if not isinstance(obj, dict) or "model" not in obj:
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path}: not a training checkpoint (expected 'model', 'iteration', "
                              f"'optimizer', 'learning_rate'; found {keys})")
    return TrainingCheckpoint(model=obj["model"], iteration=int(obj.get("iteration", 0)),
                              learning_rate=float(obj.get("learning_rate", 0.0)), optimizer=obj.get("optimizer"),
                              state=obj)


def save_training_checkpoint(model, optimizer, learning_rate: float, iteration: int,
                             path: str | os.PathLike) -> str:
    """Write the official training-checkpoint layout atomically; returns the path.

    Mirrors `utils.save_checkpoint`: {"model": state dict (of `model.module` under DDP),
    "iteration": iteration (the epoch, officially), "optimizer": optimizer state dict,
    "learning_rate": learning_rate}.
    """
    state = {"model": _unwrap(model).state_dict(), "iteration": iteration,
             "optimizer": optimizer.state_dict() if optimizer is not None else None,
             "learning_rate": learning_rate}
    path = os.fspath(path)
    with atomic_write(path, "wb") as f:
        torch.save(state, f)
    return path


# ---------------------------------------------------------------------------------------- a run's checkpoint folder

CHECKPOINT_RE = re.compile(r"^([GD])_(\d+)\.pth$")


def checkpoint_dir(run_dir: str | os.PathLike, version: str) -> Path:
    """RUN/logs_s2_{version}: where the official trainer keeps G_*.pth / D_*.pth."""
    return Path(run_dir) / f"logs_s2_{version}"


def list_checkpoints(folder: str | os.PathLike) -> list[int]:
    """Steps that have both G_{step}.pth and D_{step}.pth in `folder`, ascending."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found: dict[int, set[str]] = {}
    for name in os.listdir(folder):
        m = CHECKPOINT_RE.match(name)
        if m:
            found.setdefault(int(m.group(2)), set()).add(m.group(1))
    return sorted(step for step, kinds in found.items() if kinds == {"G", "D"})


def latest_checkpoint(folder: str | os.PathLike) -> int | None:
    steps = list_checkpoints(folder)
    return steps[-1] if steps else None


@dataclass
class CheckpointPair:
    """The two files of one checkpoint, as read back (every key of each file)."""

    step: int
    g: dict
    d: dict
    g_path: Path
    d_path: Path

    @property
    def is_official_only(self) -> bool:
        """True for a checkpoint written by the official trainer (no gsv_edu resume keys)."""
        return "step" not in self.g


def save_pair(folder: str | os.PathLike, step: int, g_state: dict, d_state: dict) -> tuple[Path, Path]:
    """Write D_{step}.pth then G_{step}.pth atomically; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    d_path, g_path = folder / f"D_{step}.pth", folder / f"G_{step}.pth"
    atomic_save(d_state, d_path)
    atomic_save(g_state, g_path)
    return g_path, d_path


def load_pair(folder: str | os.PathLike, step: int) -> CheckpointPair:
    """Read G_{step}.pth and D_{step}.pth with every key (`load_training_checkpoint`)."""
    folder = Path(folder)
    g_path, d_path = folder / f"G_{step}.pth", folder / f"D_{step}.pth"
    return CheckpointPair(step=step, g=load_training_checkpoint(g_path).state,
                          d=load_training_checkpoint(d_path).state, g_path=g_path, d_path=d_path)


def prune_checkpoints(folder: str | os.PathLike, keep_last: int) -> list[int]:
    """Delete all but the `keep_last` newest checkpoint pairs (keep_last ≤ 0 keeps all); returns deleted steps."""
    if keep_last <= 0:
        return []
    steps = list_checkpoints(folder)
    doomed = steps[:-keep_last]
    for step in doomed:
        for kind in ("G", "D"):
            try:
                os.unlink(Path(folder) / f"{kind}_{step}.pth")
            except FileNotFoundError:
                pass
    return doomed


# ---------------------------------------------------------------------------------------- GPT (s1) files

GPT_PREFIX = "model."  # the Lightning module holds the decoder as `self.model`


class GPTFileError(CheckpointError):
    """A GPT weight file cannot be read or does not hold what it should (the message names the file)."""


@dataclass
class GPTFile:
    """What a GPT file holds. `weights` are keyed as the decoder's state dict (no "model." prefix),
    in the file's dtype; `config` is None only when the file has none."""

    path: str
    kind: str  # "export" (official export or pretrained s1) or "lightning"
    weights: "OrderedDict[str, torch.Tensor]"
    config: GPTConfig | None
    raw_config: dict | None
    info: str | None = None
    epoch: int | None = None
    global_step: int | None = None
    optimizer_states: list = field(default_factory=list)
    lr_schedulers: list = field(default_factory=list)


def read_gpt_raw(path: str | os.PathLike) -> Any:
    """The whole content of a GPT file (export or Lightning checkpoint), read safely (`_load_raw`)."""
    path = os.fspath(path)
    try:
        return _load_raw(path)
    except GPTFileError:
        raise
    except CheckpointError as e:
        raise GPTFileError(str(e)) from None


def _strip_gpt_prefix(weights: dict, path: str) -> "OrderedDict[str, torch.Tensor]":
    if not isinstance(weights, dict) or not weights:
        raise GPTFileError(f"{path}: the weights are empty or not a mapping of tensors")
    bad = [k for k, v in weights.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise GPTFileError(f"{path}: weight entries that are not tensors: {bad[:5]}")
    prefixed = [k.startswith(GPT_PREFIX) for k in weights]
    if all(prefixed):
        return OrderedDict((k[len(GPT_PREFIX):], v) for k, v in weights.items())
    if any(prefixed):
        raise GPTFileError(f"{path}: some weight keys start with {GPT_PREFIX!r} and some do not "
                           f"(e.g. {next(k for k in weights if not k.startswith(GPT_PREFIX))!r})")
    return OrderedDict(weights)


def _gpt_config(raw: Any, path: str) -> GPTConfig:
    try:
        return GPTConfig.from_dict(raw, source=f"{path}: config")
    except GPTConfigError as e:
        raise GPTFileError(str(e)) from None


def read_gpt_file(path: str | os.PathLike) -> GPTFile:
    """Read an export, a pretrained s1 file or a Lightning checkpoint (format told by its keys)."""
    path = os.fspath(path)
    data = read_gpt_raw(path)
    if not isinstance(data, dict):
        raise GPTFileError(f"{path}: expected a dict with 'weight' (export) or 'state_dict' (Lightning), "
                           f"got {type(data).__name__}")
    if "weight" in data:
        raw = data.get("config")
        return GPTFile(path=path, kind="export", weights=_strip_gpt_prefix(data["weight"], path),
                       config=None if raw is None else _gpt_config(raw, path), raw_config=raw,
                       info=data.get("info") if isinstance(data.get("info"), str) else None)
    if "state_dict" in data:
        hyper = data.get("hyper_parameters") or {}
        raw = hyper.get("config") if isinstance(hyper, dict) else None
        return GPTFile(path=path, kind="lightning", weights=_strip_gpt_prefix(data["state_dict"], path),
                       config=None if raw is None else _gpt_config(raw, path), raw_config=raw,
                       epoch=data.get("epoch"), global_step=data.get("global_step"),
                       optimizer_states=list(data.get("optimizer_states") or []),
                       lr_schedulers=list(data.get("lr_schedulers") or []))
    raise GPTFileError(f"{path}: not a GPT file: no 'weight' (export / pretrained s1) or 'state_dict' "
                       f"(Lightning checkpoint) key; found {sorted(map(str, data))[:8]}")


def _check_gpt_keys(model: Text2SemanticDecoder, weights: dict, path: str) -> None:
    diff = compare_state_dict(weights, model.state_dict())
    problems = []
    if diff.missing:
        problems.append(f"{len(diff.missing)} missing key(s), e.g. {diff.missing[:3]}")
    if diff.unexpected:
        problems.append(f"{len(diff.unexpected)} unexpected key(s), e.g. {diff.unexpected[:3]}")
    if diff.mismatched:
        problems.append(f"{len(diff.mismatched)} shape mismatch(es), e.g. {diff.mismatched[:2]}")
    if problems:
        raise GPTFileError(f"{path}: the weights do not fit the config's Text2SemanticDecoder: " + "; ".join(problems))


def load_gpt(path: str | os.PathLike, device: str | torch.device = "cpu", *, config: Any = None,
             dtype: torch.dtype = torch.float32, pr2537_text_mask: bool = False) -> Text2SemanticDecoder:
    """A Text2SemanticDecoder built from the file's config (or `config`), weights loaded strictly, eval mode.

    The model's `loaded_from` attribute is the file's `GPTFile` record without the weights.
    """
    record = read_gpt_file(path)
    cfg = GPTConfig.from_dict(config) if config is not None else record.config
    if cfg is None:
        raise GPTFileError(f"{record.path}: the file holds no config; pass config= (e.g. GPTConfig.preset('official-v2'))")
    model = Text2SemanticDecoder(cfg, pr2537_text_mask=pr2537_text_mask)
    _check_gpt_keys(model, record.weights, record.path)
    model.load_state_dict(record.weights, strict=True)
    model = model.to(device=device, dtype=dtype).eval()
    record.weights = OrderedDict()
    model.loaded_from = record
    return model


def gpt_export_dict(model: torch.nn.Module, config: Any = None, *, epoch: int | None = None,
                    info: str | None = None) -> dict:
    """The official export: {"weight": {"model." + key: fp16}, "config": dict, "info": "GPT-e{epoch}"}."""
    model = _unwrap(model)
    cfg = config if config is not None else getattr(model, "config", None)
    if cfg is None:
        raise GPTFileError("save_gpt: no config given and the model has none")
    raw = cfg.to_dict() if isinstance(cfg, GPTConfig) else GPTConfig.from_dict(cfg).to_dict()
    weight = OrderedDict((GPT_PREFIX + k, v.detach().to("cpu", torch.float16)) for k, v in model.state_dict().items())
    if info is None:
        info = f"GPT-e{epoch}" if epoch is not None else "GPT"
    return {"weight": weight, "config": raw, "info": info}


def save_gpt(model: torch.nn.Module, path: str | os.PathLike, config: Any = None, *, epoch: int | None = None,
             info: str | None = None) -> str:
    """Write `model` as an official GPT export (what the official inference UI loads); returns the path."""
    path = os.fspath(path)
    atomic_save(gpt_export_dict(model, config, epoch=epoch, info=info), path)
    return path
