"""Training checkpoints of a run folder: `G_{step}.pth` / `D_{step}.pth`, finding the latest, resuming.

Mirrors `utils.save_checkpoint` / `utils.load_checkpoint` / `utils.latest_checkpoint_path` of
GPT-SoVITS (reference §6.1). The files live in `RUN/logs_s2_{version}/` as in the official
experiment folder, and hold the official keys

    model          full fp32 state dict (G: with enc_q)
    iteration      the epoch (official quirk: not a step count)
    optimizer      the AdamW state dict
    learning_rate  the base learning rate of the config

so the official trainer can resume from them, plus gsv_edu's keys for an exact resume
(the official trainer ignores them):

    scheduler      ExponentialLR state            (G and D files)
    step           optimizer steps done so far    (G and D files)
    epoch, batch_in_epoch   where in the data the run stopped: the next batch is number
                   `batch_in_epoch` of epoch `epoch`
    scaler         GradScaler state (or None)     (G file)
    rng            RNG states (python, numpy, torch, cuda) of every rank   (G file)
    world_size     number of processes that wrote it                       (G file)
    config         the run's config (s2.json layout)                       (G file)

Every value is a tensor or a plain container, so `torch.load(..., weights_only=True)` reads
them. Writes are atomic (`gsv_edu.atomic`), D before G: a G file exists only when its D file is
complete, and the latest checkpoint is the highest step with both files.

Deliberate difference: the official resume recomputes `global_step = (epoch - 1) · len(loader)`,
starts the next epoch from its first batch, and re-creates the schedulers, stepping them
`epoch` times (reference §8). Since the optimizer state it restores already carries the
decayed learning rate, the decay is, by our reading, applied a second time on each resume
(base·γ^(2e+1) instead of base·γ^(e+1) in epoch e+1; with γ = 0.999875 a small effect). We
restore the step, the data position, the scheduler and the RNG states instead, so a resumed run
continues exactly where it stopped. An official checkpoint without our keys is resumed the
official way (start of the next epoch), but with the learning rate base·γ^epoch of an
uninterrupted run.
"""
from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_save

__all__ = ["CHECKPOINT_RE", "checkpoint_dir", "list_checkpoints", "latest_checkpoint", "save_pair",
           "load_pair", "prune_checkpoints", "capture_rng_state", "restore_rng_state", "CheckpointPair"]

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
    """The two files of one checkpoint, as read back."""

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


def _load(path: Path) -> dict:
    """Read one G_/D_ file with every key (safe unpickling; truncated or foreign files are a
    `CheckpointError` naming the file)."""
    from .checkpoints import CheckpointError, _load_raw

    obj = _load_raw(os.fspath(path))
    if not isinstance(obj, dict) or "model" not in obj:
        raise CheckpointError(f"{path}: not a training checkpoint (no 'model' key)")
    return obj


def load_pair(folder: str | os.PathLike, step: int) -> CheckpointPair:
    folder = Path(folder)
    g_path, d_path = folder / f"G_{step}.pth", folder / f"D_{step}.pth"
    return CheckpointPair(step=step, g=_load(g_path), d=_load(d_path), g_path=g_path, d_path=d_path)


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


# ----------------------------------------------------------------------------------------- RNG

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
