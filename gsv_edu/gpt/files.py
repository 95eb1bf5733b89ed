"""Reading and writing GPT (s1) weight files in the official formats, safely.

| kind | official writer | content |
|---|---|---|
| export (`GPT_weights_v2/name-e15.ckpt`) | `s1_train.py · my_model_ckpt.on_train_epoch_end` | `weight` {"model." + key: fp16}, `config` (the YAML dict), `info` "GPT-e15" |
| pretrained s1 (`s1bert25hz-…ckpt`) | — | the same three keys |
| Lightning checkpoint (`logs_s1_v2/ckpt/epoch=14-step=300.ckpt`) | pytorch_lightning | `state_dict` {"model." + key: fp32}, `optimizer_states`, `lr_schedulers`, `epoch`, `global_step`, `hyper_parameters` {"config", "output_dir", "is_train"}, `loops`, `callbacks` |

Every read uses `torch.load(..., weights_only=True)`: only tensors and plain containers are
rebuilt. The one foreign class in Lightning checkpoints, the `pathlib.PosixPath` (or
`WindowsPath`) of `hyper_parameters["output_dir"]`, is rebuilt as the matching *pure* path
(`PurePosixPath` / `PureWindowsPath`: no file-system access, and a Windows path unpickles on
Linux too). Writes go through `gsv_edu.atomic` (a temporary file, then a rename).

    model = load_gpt("GPT_weights_v2/voice-e15.ckpt")          # Text2SemanticDecoder, eval mode
    save_gpt(model, "out/voice-e16.ckpt", model.config, epoch=16)
"""
from __future__ import annotations

import os
import pathlib
import pickle
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch

from gsv_edu.atomic import atomic_save
from gsv_edu.gpt.config import GPTConfig, GPTConfigError
from gsv_edu.gpt.t2s_model import Text2SemanticDecoder

__all__ = ["GPTFileError", "GPTFile", "read_gpt_file", "load_gpt", "save_gpt", "gpt_export_dict"]

PREFIX = "model."  # the Lightning module holds the decoder as `self.model`
# pickled name -> the inert class rebuilt in its place
PATH_GLOBALS = [(pathlib.PurePosixPath, "pathlib.PosixPath"), (pathlib.PureWindowsPath, "pathlib.WindowsPath"),
                pathlib.PurePosixPath, pathlib.PureWindowsPath]


class GPTFileError(ValueError):
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


def _safe_load(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError as e:
        raise GPTFileError(f"{path}: cannot open ({e.strerror or e})") from None
    if head != b"PK" and head[:1] != b"\x80":
        raise GPTFileError(f"{path}: not a torch checkpoint (starts with {head!r}, expected a zip archive b'PK')")
    try:
        with torch.serialization.safe_globals(PATH_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
        reason = lines[0].split(" was not an allowed global")[0] if lines else type(e).__name__
        raise GPTFileError(f"{path}: refused to unpickle it: it holds more than tensors, plain containers "
                           f"and paths ({reason})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GPTFileError(f"{path}: not a readable torch checkpoint (truncated?): {first}") from None


def _strip_prefix(weights: dict, path: str) -> "OrderedDict[str, torch.Tensor]":
    if not isinstance(weights, dict) or not weights:
        raise GPTFileError(f"{path}: the weights are empty or not a mapping of tensors")
    bad = [k for k, v in weights.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise GPTFileError(f"{path}: weight entries that are not tensors: {bad[:5]}")
    prefixed = [k.startswith(PREFIX) for k in weights]
    if all(prefixed):
        return OrderedDict((k[len(PREFIX):], v) for k, v in weights.items())
    if any(prefixed):
        raise GPTFileError(f"{path}: some weight keys start with {PREFIX!r} and some do not "
                           f"(e.g. {next(k for k in weights if not k.startswith(PREFIX))!r})")
    return OrderedDict(weights)


def _config(raw: Any, path: str) -> GPTConfig:
    try:
        return GPTConfig.from_dict(raw, source=f"{path}: config")
    except GPTConfigError as e:
        raise GPTFileError(str(e)) from None


def read_gpt_file(path: str | os.PathLike) -> GPTFile:
    """Read an export, a pretrained s1 file or a Lightning checkpoint (format told by its keys)."""
    path = os.fspath(path)
    data = _safe_load(path)
    if not isinstance(data, dict):
        raise GPTFileError(f"{path}: expected a dict with 'weight' (export) or 'state_dict' (Lightning), "
                           f"got {type(data).__name__}")
    if "weight" in data:
        raw = data.get("config")
        return GPTFile(path=path, kind="export", weights=_strip_prefix(data["weight"], path),
                       config=None if raw is None else _config(raw, path), raw_config=raw,
                       info=data.get("info") if isinstance(data.get("info"), str) else None)
    if "state_dict" in data:
        hyper = data.get("hyper_parameters") or {}
        raw = hyper.get("config") if isinstance(hyper, dict) else None
        return GPTFile(path=path, kind="lightning", weights=_strip_prefix(data["state_dict"], path),
                       config=None if raw is None else _config(raw, path), raw_config=raw,
                       epoch=data.get("epoch"), global_step=data.get("global_step"),
                       optimizer_states=list(data.get("optimizer_states") or []),
                       lr_schedulers=list(data.get("lr_schedulers") or []))
    raise GPTFileError(f"{path}: not a GPT file: no 'weight' (export / pretrained s1) or 'state_dict' "
                       f"(Lightning checkpoint) key; found {sorted(map(str, data))[:8]}")


def _check_keys(model: Text2SemanticDecoder, weights: dict, path: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    shapes = [f"{k}: file {tuple(weights[k].shape)}, model {tuple(v.shape)}" for k, v in expected.items()
              if k in weights and weights[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s), e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es), e.g. {shapes[:2]}")
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
    _check_keys(model, record.weights, record.path)
    model.load_state_dict(record.weights, strict=True)
    model = model.to(device=device, dtype=dtype).eval()
    record.weights = OrderedDict()
    model.loaded_from = record
    return model


def gpt_export_dict(model: torch.nn.Module, config: Any = None, *, epoch: int | None = None,
                    info: str | None = None) -> dict:
    """The official export: {"weight": {"model." + key: fp16}, "config": dict, "info": "GPT-e{epoch}"}."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    cfg = config if config is not None else getattr(model, "config", None)
    if cfg is None:
        raise GPTFileError("save_gpt: no config given and the model has none")
    raw = cfg.to_dict() if isinstance(cfg, GPTConfig) else GPTConfig.from_dict(cfg).to_dict()
    weight = OrderedDict((PREFIX + k, v.detach().to("cpu", torch.float16)) for k, v in model.state_dict().items())
    if info is None:
        info = f"GPT-e{epoch}" if epoch is not None else "GPT"
    return {"weight": weight, "config": raw, "info": info}


def save_gpt(model: torch.nn.Module, path: str | os.PathLike, config: Any = None, *, epoch: int | None = None,
             info: str | None = None) -> str:
    """Write `model` as an official GPT export (what the official inference UI loads); returns the path."""
    path = os.fspath(path)
    atomic_save(gpt_export_dict(model, config, epoch=epoch, info=info), path)
    return path
