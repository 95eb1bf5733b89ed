"""Compare a file's tensors with a model's state dict: which keys fit, which are missing, extra or mis-shaped.

One comparison serves every loader: `load_sovits` (checkpoints.py; strict, with the `enc_q` of an
export allowed to be missing), `--pretrained-g/-d` in the trainer (loads what fits, reports the
rest, as the official `load_state_dict(strict=False)` does) and `HuBERT.from_pretrained`
(hubert/loading.py; strict). Each caller words its own error.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["StateDictDiff", "compare_state_dict"]


@dataclass
class StateDictDiff:
    """Keys of `weights` against a model's `expected` state dict, each list in the order it was met."""

    fitting: dict[str, torch.Tensor] = field(default_factory=dict)  # same name, same shape
    missing: list[str] = field(default_factory=list)     # in the model, not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model
    mismatched: list[str] = field(default_factory=list)  # "key: file (shape), model (shape)"


def compare_state_dict(weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> StateDictDiff:
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
