"""The random-number states of a training process, saved into a checkpoint and restored on resume.

gsv_edu's addition to the official checkpoint (`rng` in `G_*.pth`, see `gsv_edu.weights`): with
the step, the data position, the optimizers, schedulers and GradScaler, these states let a
resumed run continue exactly as if it had never stopped (the official trainer restarts the
random streams at the start of the next epoch).
"""
from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state"]


def capture_rng_state(device: torch.device | None = None) -> dict:
    """The RNG states of python `random`, numpy's global generator, torch (CPU) and this CUDA device.

    Stored as tensors and plain containers (numpy's state array becomes an int64 tensor) so the
    checkpoint stays loadable with `weights_only=True`.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": None,
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict, device: torch.device | None = None) -> None:
    """Undo `capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if device is not None and device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
