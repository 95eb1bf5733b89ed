"""One process or several: the process group of a `torchrun` launch, and the device of this process.

The official trainer starts one process per GPU itself (`torch.multiprocessing.spawn`) and
always initialises a process group (nccl; gloo on Windows/CPU; `GPT_SoVITS/s2_train.py · main,
run @48b1a01`). We leave the
launching to `torchrun` (`python -m torch.distributed.run --nproc_per_node N -m gsv_edu.train`),
which sets `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT` for each process; a
plain `python -m gsv_edu.train` is a single process without a process group.

- backend: nccl when training on CUDA, gloo on the CPU;
- device: `cuda:LOCAL_RANK` when CUDA is used (one GPU per process), else the CPU;
- only rank 0 logs and writes files; `all_true` makes every rank take the same decision (a
  step skipped on one rank must be skipped on all, or the gradient all-reduce would hang).
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from gsv_edu.weights import weights_fingerprint

__all__ = ["DistributedContext", "init_distributed", "resolve_device", "all_true", "gather_objects", "barrier",
           "check_ranks_agree"]


@dataclass
class DistributedContext:
    """Who this process is: rank among world_size processes, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None     # "gloo" / "nccl" when a process group was initialised

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs, saves checkpoints and exports weights."""
        return self.rank == 0

    def close(self) -> None:
        """Destroy the process group if this context created one."""
        if self.backend is not None and dist.is_initialized():
            dist.destroy_process_group()
            self.backend = None


def resolve_device(name: str | None, local_rank: int = 0) -> torch.device:
    """"auto" → cuda:LOCAL_RANK when CUDA is available, else cpu; "cuda" → cuda:LOCAL_RANK; else as given."""
    name = (name or "auto").strip()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {name}: this torch has no CUDA or no GPU is visible "
                               f"(torch {torch.__version__}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) visible")
    return device


def init_distributed(device: str | None = "auto") -> DistributedContext:
    """Read the torchrun environment; initialise the process group when WORLD_SIZE > 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    ctx = DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)
    if world_size > 1:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                                    timeout=datetime.timedelta(minutes=30))
        ctx.backend = backend
    return ctx


def all_true(flag: bool, ctx: DistributedContext) -> bool:
    """True only if `flag` is True on every rank (one tiny all-reduce; no-op for one process)."""
    if not ctx.is_distributed:
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def gather_objects(obj, ctx: DistributedContext) -> list:
    """Every rank's `obj`, in rank order, on every rank ([obj] for one process)."""
    if not ctx.is_distributed:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistributedContext) -> None:
    if ctx.is_distributed:
        dist.barrier()


def check_ranks_agree(models: dict[str, torch.nn.Module], ctx: DistributedContext, log) -> bool:
    """With several processes: compare every rank's weights of each model (DDP must keep them identical).

    Logs one line, e.g. `weights of the 2 ranks: G ['…', '…'] D ['…', '…'] (identical)` (a model
    named "" is listed without a label); an error line if they differ. True with one process.
    """
    if not ctx.is_distributed:
        return True
    prints = gather_objects(tuple(weights_fingerprint(m) for m in models.values()), ctx)  # per rank
    per_model = {name: [p[i] for p in prints] for i, name in enumerate(models)}
    agree = all(len(set(v)) == 1 for v in per_model.values())
    listing = " ".join(f"{name} {v}".strip() for name, v in per_model.items())
    (log.info if agree else log.error)(f"weights of the {ctx.world_size} ranks: {listing} "
                                       f"({'identical' if agree else 'DIFFERENT: the processes went out of sync'})")
    return agree
