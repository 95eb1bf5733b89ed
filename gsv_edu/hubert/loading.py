"""Reading and writing HuBERT weights in the Hugging Face folder format.

A folder such as TencentGameMate/chinese-hubert-base holds `config.json` and either
`model.safetensors` or `pytorch_model.bin` (a pickled state dict of `HubertModel`). Two spellings
of the positional conv's weight norm exist in the wild:

- `encoder.pos_conv_embed.conv.weight_g` / `weight_v`: `torch.nn.utils.weight_norm`, used by the
  published chinese-hubert-base and transformers 4;
- `encoder.pos_conv_embed.conv.parametrizations.weight.original0` / `original1`:
  `torch.nn.utils.parametrizations.weight_norm`, written by transformers 5.

Both are accepted; `HuBERT` itself names them `weight_g` / `weight_v`. A checkpoint of a head model
(`HubertForCTC`, ...) stores the body under `hubert.`; that prefix is removed when every key has
it. Anything else that does not match (missing, unexpected or mis-shaped keys) is an error that
lists the offending keys.
"""
from __future__ import annotations

import json
import os
import pathlib

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from gsv_edu.atomic import atomic_write_bytes, atomic_write_text
from gsv_edu.hubert.config import HuBERTConfig
from gsv_edu.weights import compare_state_dict

WEIGHT_NORM_SPELLINGS = {
    "parametrizations.weight.original0": "weight_g",
    "parametrizations.weight.original1": "weight_v",
}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class HuBERTLoadError(ValueError):
    """A HuBERT folder or state dict cannot be loaded; the message says which file/keys and why."""


def normalize_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the transformers-5 weight-norm spelling to ours and strip a common `hubert.` prefix."""
    if state_dict and all(k.startswith("hubert.") for k in state_dict):
        state_dict = {k[len("hubert."):]: v for k, v in state_dict.items()}
    out = {}
    for key, value in state_dict.items():
        for new_suffix, old_suffix in WEIGHT_NORM_SPELLINGS.items():
            if key.endswith(new_suffix):
                key = key[: -len(new_suffix)] + old_suffix
                break
        if key in out:
            raise HuBERTLoadError(f"key {key!r} appears twice (in both weight-norm spellings)")
        out[key] = value
    return out


def _list(keys, limit: int = 8) -> str:
    keys = sorted(keys)
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_state_dict_into(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Copy a HubertModel state dict (either spelling) into `model`, strictly; errors name `source`."""
    sd = normalize_keys(state_dict)
    diff = compare_state_dict(sd, model.state_dict())
    missing, unexpected, wrong_shape = diff.missing, diff.unexpected, diff.mismatched
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_list(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_list(unexpected)}")
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} key(s) with a wrong shape (does config.json match the weights?): "
                        f"{_list(wrong_shape)}")
    if problems:
        raise HuBERTLoadError(f"{source}: cannot load into HuBERT(hidden_size={model.config.hidden_size}, "
                              f"num_hidden_layers={model.config.num_hidden_layers}): " + "; ".join(problems))
    non_float = [k for k, v in sd.items() if not v.is_floating_point()]
    if non_float:
        raise HuBERTLoadError(f"{source}: expected floating-point tensors, got integers for {_list(non_float)}")
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)


def read_weights(folder: pathlib.Path, map_location="cpu") -> tuple[dict[str, torch.Tensor], pathlib.Path]:
    """The state dict stored in `folder` (model.safetensors preferred over pytorch_model.bin)."""
    for name in WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            if name.endswith(".safetensors"):
                sd = load_file(str(path), device=str(map_location))
            else:
                sd = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:  # truncated / corrupt file: say which one
            raise HuBERTLoadError(f"{path}: cannot read the weights ({type(e).__name__}: {e})") from None
        if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise HuBERTLoadError(f"{path}: expected a flat dict of tensors (a HubertModel state dict)")
        return sd, path
    raise HuBERTLoadError(f"{folder}: no weights found (expected one of {', '.join(WEIGHT_FILES)})")


def load_pretrained(folder: str | os.PathLike, cls, map_location="cpu"):
    """Build a `cls` (HuBERT) from a Hugging Face-format folder and load its weights; returned in eval mode."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise HuBERTLoadError(f"{folder}: not a folder (expected a Hugging Face model folder with "
                              f"config.json and {' or '.join(WEIGHT_FILES)})")
    cfg = HuBERTConfig.from_json(folder / "config.json")
    sd, path = read_weights(folder, map_location)
    model = cls(cfg)
    load_state_dict_into(model, sd, source=str(path))
    return model.eval()


def hf_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with the transformers-5 weight-norm spelling (what it would save)."""
    out = {}
    for key, value in model.state_dict().items():
        for new_suffix, old_suffix in WEIGHT_NORM_SPELLINGS.items():
            if key.endswith("pos_conv_embed.conv." + old_suffix):
                key = key[: -len(old_suffix)] + new_suffix
        out[key] = value.detach().contiguous()
    return out


def save_pretrained(model: torch.nn.Module, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> None:
    """Write `config.json` + `model.safetensors` (transformers-5 key spelling) into `folder`.

    `dtype`: store the tensors in this type (e.g. torch.float16 to halve the file; `from_pretrained`
    computes in float32 whatever the stored type). Each file is written atomically
    (`gsv_edu.atomic`), so an interrupted save never leaves a half-written file.
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = hf_state_dict(model)
    if dtype is not None:
        sd = {k: v.to(dtype) for k, v in sd.items()}
    cfg = model.config.to_dict()
    cfg["dtype"] = str(next(iter(sd.values())).dtype).replace("torch.", "")
    atomic_write_bytes(folder / "model.safetensors", safetensors_bytes(sd, metadata={"format": "pt"}))
    atomic_write_text(folder / "config.json", json.dumps(cfg, indent=2, sort_keys=True) + "\n")
