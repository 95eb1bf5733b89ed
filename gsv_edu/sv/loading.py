"""Read and write ERes2NetV2 weight files in the official format (a plain state dict).

The official speaker-verification checkpoint `pretrained_eres2netv2w24s4ep4.ckpt` (loaded by
`GPT_SoVITS/sv.py · SV.__init__ @48b1a01`) is a bare `torch.save(model.state_dict())`. We read it
with `torch.load(weights_only=True)` (tensors only, no pickled code), build the network from the
file's own key names and shapes (so our tiny model's files load the same way), and load it
strictly; anything else is an `SVLoadError` that names the file and says what did not fit.
"""
from __future__ import annotations

import os
import re
from typing import Any

import torch

from ..atomic import atomic_save
from .eres2net import ERes2NetV2

__all__ = ["SVLoadError", "load_sv_model", "save_sv_model", "sv_args_from_state_dict"]


class SVLoadError(ValueError):
    """A file is not an ERes2NetV2 state dict this implementation can load."""


_LAYER_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")


def sv_args_from_state_dict(weights: dict[str, torch.Tensor]) -> dict[str, Any]:
    """ERes2NetV2 constructor arguments that give exactly these keys and shapes (ValueError if none).

    Read off: m_channels (stem width), num_blocks (blocks per stage), scale (groups per block),
    expansion (stage-1 output / m_channels), baseWidth (the smallest value whose group widths
    floor(planes * baseWidth / 64) match every stage), embedding_size and the pooling (seg_1,
    pool.linear*, seg_2). feat_dim is taken as 8 x the frequency bands seg_1 implies (80 for
    GPT-SoVITS' model).
    """
    if "conv1.weight" not in weights or "layer1.0.conv3.weight" not in weights or "seg_1.weight" not in weights:
        raise ValueError("it has no conv1.weight / layer1.0.conv3.weight / seg_1.weight, "
                         "the keys of every ERes2NetV2")
    m = int(weights["conv1.weight"].shape[0])
    blocks = [0, 0, 0, 0]
    for key in weights:
        match = _LAYER_KEY.match(key)
        if match:
            stage, index = int(match.group(1)) - 1, int(match.group(2))
            blocks[stage] = max(blocks[stage], index + 1)
    if 0 in blocks:
        raise ValueError(f"a stage has no blocks (blocks per stage found: {blocks})")
    scale = sum(1 for key in weights if re.fullmatch(r"layer1\.0\.convs\.\d+\.weight", key))
    expansion = int(weights["layer1.0.conv3.weight"].shape[0]) // m
    widths = [int(weights[f"layer{s}.0.convs.0.weight"].shape[0]) for s in (1, 2, 3, 4)]
    base_width = next((bw for bw in range(1, 4097)
                       if all(int(m * 2**i * bw / 64.0) == w for i, w in enumerate(widths))), None)
    if base_width is None or scale == 0 or expansion == 0:
        raise ValueError(f"no baseWidth/scale/expansion fits the block widths {widths}")
    per_band = m * 8 * expansion  # channels of the fused map
    seg_in = int(weights["seg_1.weight"].shape[1])
    # mean+std pooling of 80 bins (10 bands) and mean-only pooling of 160 bins give the same
    # shapes: prefer the 80 bins GPT-SoVITS always uses
    if "pool.linear1.weight" in weights:
        pooling, n_stats = "ASTP", 2
    elif seg_in == per_band * 10:
        pooling, n_stats = "TAP", 1  # TSDP has the same shapes; neither is used by forward3
    else:
        pooling, n_stats = "TSTP", 2
    if seg_in % (n_stats * per_band):
        raise ValueError(f"seg_1 takes {seg_in} inputs, not a multiple of {n_stats} x {per_band}")
    args = {"num_blocks": tuple(blocks), "m_channels": m, "feat_dim": 8 * (seg_in // (n_stats * per_band)),
            "embedding_size": int(weights["seg_1.weight"].shape[0]), "baseWidth": base_width,
            "scale": scale, "expansion": expansion, "pooling_func": pooling,
            "two_emb_layer": "seg_2.weight" in weights}
    return args


def load_sv_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> ERes2NetV2:
    """An ERes2NetV2 (eval mode) from a plain state-dict file, e.g. pretrained_eres2netv2w24s4ep4.ckpt.

    The model's `.loaded_from` is the path and `.sv_args` the constructor arguments read off the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SVLoadError(f"{path}: no such file (expected an ERes2NetV2 state dict such as "
                          "pretrained_eres2netv2w24s4ep4.ckpt)")
    try:
        weights = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch.load fails in many ways (KeyError on a text file ...)
        raise SVLoadError(f"{path}: not a readable tensor file for torch.load(weights_only=True) "
                          f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})") from None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        keys = list(weights)[:5] if isinstance(weights, dict) else type(weights).__name__
        raise SVLoadError(f"{path}: expected a plain state dict (key -> tensor) like the official "
                          f"pretrained_eres2netv2w24s4ep4.ckpt, found {keys}")
    try:
        args = sv_args_from_state_dict(weights)
    except (ValueError, KeyError) as error:
        raise SVLoadError(f"{path}: not an ERes2NetV2 state dict: {error}") from None
    model = ERes2NetV2(**args)
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    mismatched = [f"{k}: file {tuple(v.shape)}, model {tuple(expected[k].shape)}" for k, v in weights.items()
                  if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if missing or unexpected or mismatched:
        problems = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if items:
                problems.append(f"{len(items)} {label} (e.g. {', '.join(items[:3])})")
        raise SVLoadError(f"{path}: does not match ERes2NetV2({_format_args(args)}): " + "; ".join(problems))
    model.load_state_dict(weights, strict=True)
    model.eval()
    model.loaded_from = path
    model.sv_args = args
    return model


def save_sv_model(model: ERes2NetV2, path: str | os.PathLike) -> None:
    """Write the model in the official format: a plain state dict, float tensors as they are."""
    atomic_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)


def _format_args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())
