"""Train the GPT stage (s1): `GPTTrainingRun`, the loop that `python -m gsv_edu.train_gpt` runs.

Mirrors `GPT_SoVITS/s1_train.py · main` and `GPT_SoVITS/AR/models/t2s_lightning_module.py ·
Text2SemanticLightningModule` @48b1a01 (which run under PyTorch Lightning; we write the loop
out). Per batch of the prepared folder (`gsv_edu.gpt.dataset`, `gsv_edu.gpt.sampler`):

1. `loss, acc = model.forward_old(phones, phone_lens, codes, code_lens, bert)` — the summed
   cross-entropy of teacher forcing (with `train.if_dpo`: `model.forward`, + the DPO term);
2. `loss.backward()` — gradients accumulate;
3. after batch number b of the epoch (0-based), if b > 0 and b % 4 == 0: an optimizer step,
   `zero_grad`, a scheduler step. So the first step of a run sums 5 batches, later ones 4, and
   the batches after an epoch's last step carry over into the next epoch's first step
   (`accumulate_grad_batches` generalises the 4 with the same rule).

The optimizer is ScaledAdam with the official schedule (`gsv_edu.gpt.optim.official_optimizer`):
the first step runs at lr 0.01, every later one at 0.002. `train.optimizer=adamw` trains with
plain AdamW instead (`train.adamw_lr`, betas (0.9, 0.95), `train.weight_decay`, constant lr), and
`train.lr_schedule=warmup_cosine` gives ScaledAdam the warm-up/cosine curve that the official
schedule computes and discards (from `optimizer.lr_init` to `optimizer.lr` over `warmup_steps`,
down to `lr_end` at `decay_steps`).
The text mask is the correct one by default; `train.pr2537_text_mask=true` reproduces the
upstream mask (see `gsv_edu.gpt.t2s_model`).

The run folder (`RUN`), laid out like the official `logs_s1_{version}` folder:

    RUN/config.yaml                       the run's config (the official s1 YAML layout)
    RUN/ckpt/epoch={e}-step={s}.ckpt      Lightning-format checkpoints (e: 0-based epoch, s: optimizer steps)
    RUN/weights/{name}-e{E}.ckpt          exports in the official s1 format ({"weight", "config", "info"};
                                          E: epochs done; "-s{s}" added for a save inside an epoch)
    RUN/train.log, RUN/events.out.tfevents.*, RUN/metrics.jsonl   logs (gsv_edu.train.logs)

A checkpoint holds Lightning's keys (`epoch`, `global_step`, `pytorch-lightning_version`,
`state_dict` with the `model.` prefix, `loops`, `callbacks`, `optimizer_states`, `lr_schedulers`,
`hparams_name`, `hyper_parameters`), and gsv_edu's key `gsv_edu` for an exact resume: the
position (next epoch and batch), the gradients accumulated since the last step, the RNG states
of every rank, the GradScaler. Official checkpoints (no `gsv_edu` key) are resumed at the start
of the next epoch with the optimizer and schedule restored (the carried-over gradients are not
in the file), in the data order of that epoch: the numbers of an uninterrupted official run.

Measured with pytorch-lightning 2.6.6 and torch 2.13 (tests/fixtures/gpt/train_epoch0.ckpt):
the official `trainer.fit(ckpt_path=...)` resumes from our end-of-epoch checkpoint at the right
epoch and step, with the same losses as from its own file; both its resumes replay the data
order of epoch 0 in the first resumed epoch (the sampler's epoch is not restored), so they
differ from the uninterrupted run, and it cannot open its own file at all without allow-listing
`pathlib.PosixPath` (torch ≥ 2.6 loads with weights_only); ours stores `output_dir` as a string.

What the official trainer does not do and this one does: exact resume (above); atomic
checkpoint and export writes; checkpoints every `train.save_every_steps` optimizer steps and a
stop at `train.max_steps` (with a checkpoint); `train.keep_last`; a non-finite loss skips the
batch on every rank (and `train.max_nonfinite_batches` in a row stop the run); several processes
with `torchrun` (gloo on the CPU, nccl on GPUs; official: Lightning's DDP on GPUs only).
"""
from __future__ import annotations

import contextlib
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gsv_edu.atomic import atomic_save, atomic_write_text
from gsv_edu.config import parse_value
from gsv_edu.data.loader import EpochBatches
from gsv_edu.gpt.config import GPTConfig, GPTConfigError
from gsv_edu.gpt.dataset import Text2SemanticDataset, official_batch_size
from gsv_edu.gpt.optim import OFFICIAL_LOCKED_LR, official_optimizer
from gsv_edu.gpt.sampler import BucketBatchSampler
from gsv_edu.gpt.t2s_model import Text2SemanticDecoder
from gsv_edu.train.distributed import (DistributedContext, all_true, barrier, check_ranks_agree,
                                       gather_objects, init_distributed)
from gsv_edu.train.logs import RunLogger, log_above_bar, read_metrics, setup_logging
from gsv_edu.train.rng import capture_rng_state, restore_rng_state
from gsv_edu.train.run import TrainingDiverged
from gsv_edu.weights import GPTFileError, load_gpt, read_gpt_raw, save_gpt

__all__ = ["train_gpt", "GPTTrainingRun", "GPTRunOptions", "GPTTrainResult", "TrainingDiverged", "gpt_config",
           "list_gpt_checkpoints", "read_gpt_checkpoint", "lightning_loops", "CKPT_DIR", "WEIGHTS_DIR", "CONFIG_FILE",
           "LIGHTNING_VERSION"]

CKPT_DIR = "ckpt"
WEIGHTS_DIR = "weights"
CONFIG_FILE = "config.yaml"
CKPT_RE = re.compile(r"^epoch=(\d+)-step=(\d+)\.ckpt$")
LIGHTNING_VERSION = "2.6.6"  # the Lightning checkpoint layout written here (checked against 2.6.6)
TOP_K = 3  # the Lightning module's accuracy k (top_3_acc)


# ------------------------------------------------------------------------------------------------
# options and config
# ------------------------------------------------------------------------------------------------

@dataclass
class GPTRunOptions:
    """gsv_edu's own `train.*` keys of the s1 config (absent from the official YAML; defaults = official behaviour)."""

    optimizer: str = "scaled_adam"        # or "adamw"
    adamw_lr: float = 1e-3                # AdamW only
    weight_decay: float = 0.01            # AdamW only
    lr_schedule: str = "official"         # ScaledAdam: "official" (locked at 0.002) or "warmup_cosine"
    accumulate_grad_batches: int = 4      # the Lightning module's `batch_idx % 4`
    pr2537_text_mask: bool = False        # True: the upstream text mask (see gsv_edu.gpt.t2s_model)
    max_steps: int | None = None          # stop after this many optimizer steps in total
    save_every_steps: int = 0             # also checkpoint every N optimizer steps (0: epoch ends only)
    keep_last: int = 0                    # keep the newest N checkpoints (0: all, as the official)
    log_interval: int = 1                 # optimizer steps between log lines
    max_nonfinite_batches: int = 8        # consecutive non-finite losses before the run stops

    TYPES = {"optimizer": str, "adamw_lr": float, "weight_decay": float, "lr_schedule": str,
             "accumulate_grad_batches": int, "pr2537_text_mask": bool, "max_steps": (int, type(None)),
             "save_every_steps": int, "keep_last": int, "log_interval": int, "max_nonfinite_batches": int}

    @classmethod
    def from_config(cls, cfg: GPTConfig) -> "GPTRunOptions":
        opts = cls()
        for key, kinds in cls.TYPES.items():
            if key not in cfg.train.extra:
                continue
            value = cfg.train.extra[key]
            kinds = kinds if isinstance(kinds, tuple) else (kinds,)
            if isinstance(value, int) and not isinstance(value, bool) and float in kinds:
                value = float(value)
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise GPTConfigError(f"train.{key}: expected {' or '.join(k.__name__ for k in kinds)}, got {value!r}")
            setattr(opts, key, value)
        if opts.optimizer not in ("scaled_adam", "adamw"):
            raise GPTConfigError(f"train.optimizer: 'scaled_adam' (official) or 'adamw', got {opts.optimizer!r}")
        if opts.lr_schedule not in ("official", "warmup_cosine"):
            raise GPTConfigError(f"train.lr_schedule: 'official' or 'warmup_cosine', got {opts.lr_schedule!r}")
        for key in ("accumulate_grad_batches", "log_interval", "max_nonfinite_batches"):
            if getattr(opts, key) < 1:
                raise GPTConfigError(f"train.{key} must be ≥ 1, got {getattr(opts, key)}")
        if opts.max_steps is not None and opts.max_steps < 1:
            raise GPTConfigError(f"train.max_steps must be ≥ 1 (or null), got {opts.max_steps}")
        return opts


def gpt_config(preset: str | None = "tiny", config_file: str | os.PathLike | None = None,
               overrides: list[str] | None = None) -> GPTConfig:
    """The run's config: a preset (or an official s1 YAML), then `section.key=value` overrides.

    Values are JSON (`4`, `1e-4`, `true`, `null`) or plain strings. Keys the official sections do
    not know go into the section as extra keys (gsv_edu's `train.*` options, `GPTRunOptions`).
    """
    if config_file is not None and preset is not None:
        raise GPTConfigError("give either --preset or --config, not both")
    cfg = GPTConfig.from_yaml(config_file) if config_file is not None else GPTConfig.preset(preset or "tiny")
    d = cfg.to_dict()
    for item in overrides or []:
        if "=" not in item:
            raise GPTConfigError(f"--set {item!r}: expected section.key=value, e.g. train.batch_size=4")
        key, text = (s.strip() for s in item.split("=", 1))
        parts = key.split(".")
        if len(parts) == 1:
            d[parts[0]] = parse_value(text)
            continue
        if len(parts) != 2 or parts[0] not in ("train", "optimizer", "data", "model", "inference"):
            raise GPTConfigError(f"--set {item!r}: the key must be section.name with section one of train, "
                                 f"optimizer, data, model, inference")
        d[parts[0]][parts[1]] = parse_value(text)
    cfg = GPTConfig.from_dict(d, source="config")
    GPTRunOptions.from_config(cfg)  # type-check our keys now, not at the first save
    return cfg


# ------------------------------------------------------------------------------------------------
# checkpoint files
# ------------------------------------------------------------------------------------------------

def list_gpt_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, int, Path]]:
    """(epoch, step, path) of RUN/ckpt/epoch=E-step=S.ckpt, oldest first (official `get_newest_ckpt` order)."""
    folder = Path(run_dir) / CKPT_DIR
    found = []
    for name in os.listdir(folder) if folder.is_dir() else []:
        m = CKPT_RE.match(name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), folder / name))
    return sorted(found)


def read_gpt_checkpoint(path: str | os.PathLike) -> dict:
    """The whole dict of a Lightning-format checkpoint (ours or official), read safely (`gsv_edu.weights.read_gpt_raw`).

    Unlike `read_gpt_file` (which keeps the weights, config and optimizer states), this keeps every
    key: the resume needs `loops` and gsv_edu's `gsv_edu` entry too.
    """
    path = os.fspath(path)
    data = read_gpt_raw(path)
    needed = ("state_dict", "optimizer_states", "global_step", "epoch")
    if not isinstance(data, dict) or any(k not in data for k in needed):
        found = sorted(map(str, data))[:8] if isinstance(data, dict) else type(data).__name__
        raise GPTFileError(f"{path}: not a Lightning training checkpoint (needs {', '.join(needed)}; found {found})")
    return data


def _progress(done: int, total: int | None = None) -> dict:
    total = done if total is None else total
    return {"total": {"ready": total, "started": total, "processed": total, "completed": total},
            "current": {"ready": done, "started": done, "processed": done, "completed": done}}


def lightning_loops(epoch: int, batches_done: int, total_batches: int, steps: int, epochs_done: int) -> dict:
    """The `loops` entry of a Lightning 2.x checkpoint for a manual-optimization fit at this point.

    `epoch`: the 0-based epoch the checkpoint is taken in; `batches_done`: its batches trained;
    `epochs_done`: epochs completed before it. Lightning restores the epoch and step counters
    from here when the official `s1_train.py` resumes our checkpoint.
    """
    zero2 = {"total": {"ready": 0, "completed": 0}, "current": {"ready": 0, "completed": 0}}
    zero4 = {"total": {"ready": 0, "started": 0, "processed": 0, "completed": 0},
             "current": {"ready": 0, "started": 0, "processed": 0, "completed": 0}}
    batch_progress = {**_progress(batches_done, total_batches), "is_last_batch": False}
    epoch_progress = _progress(epoch + 1)
    for part in ("total", "current"):
        epoch_progress[part]["completed"] = epochs_done
    return {
        "fit_loop": {
            "state_dict": {},
            "epoch_loop.state_dict": {"_batches_that_stepped": total_batches},
            "epoch_loop.batch_progress": batch_progress,
            "epoch_loop.scheduler_progress": zero2,
            "epoch_loop.automatic_optimization.state_dict": {},
            "epoch_loop.automatic_optimization.optim_progress": {
                "optimizer": {"step": zero2, "zero_grad": zero4}},
            "epoch_loop.manual_optimization.state_dict": {},
            "epoch_loop.manual_optimization.optim_step_progress": {
                "total": {"ready": steps, "completed": steps}, "current": {"ready": steps, "completed": steps}},
            "epoch_loop.val_loop.state_dict": {},
            "epoch_loop.val_loop.batch_progress": {**zero4, "is_last_batch": False},
            "epoch_progress": epoch_progress,
        },
        "validate_loop": {"state_dict": {}, "batch_progress": {**zero4, "is_last_batch": False}},
        "test_loop": {"state_dict": {}, "batch_progress": {**zero4, "is_last_batch": False}},
        "predict_loop": {"state_dict": {}, "batch_progress": zero4},
    }


class _Objective(torch.nn.Module):
    """The module DDP wraps (as Lightning wraps its LightningModule): `forward(batch)` = the training loss.

    Holding the decoder as `.model` gives the state-dict keys of the Lightning module
    (`model.ar_text_embedding...`), which is what checkpoints store.
    """

    def __init__(self, model: Text2SemanticDecoder, dpo: bool):
        super().__init__()
        self.model = model
        self.dpo = dpo

    def forward(self, batch: dict) -> tuple[torch.Tensor, float]:
        objective = self.model.forward if self.dpo else self.model.forward_old
        return objective(batch["phoneme_ids"], batch["phoneme_ids_len"], batch["semantic_ids"],
                         batch["semantic_ids_len"], batch["bert_feature"])


@dataclass
class GPTTrainResult:
    """What a run did. Losses are the logged `total_loss` (summed cross-entropy per batch)."""

    run_dir: Path
    step: int
    epoch: int                        # epochs completed
    stop_reason: str                  # "max_steps", "epochs" or "already done"
    resumed_from: str | None = None   # the checkpoint the run continued from
    export_path: str | None = None
    first_loss: tuple[int, float] | None = None  # (step, total_loss) of the first logged step of the run folder
    last_loss: tuple[int, float] | None = None   # (step, mean of the last three logged values)
    losses: list[float] = field(default_factory=list)  # this process's per-batch losses in this call
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------

class GPTTrainingRun:
    """Everything one `train_gpt` call does: set-up or resume, the loop, checkpoints, exports, logs.

    Position bookkeeping: `epoch` / `batch_in_epoch` name the next batch to train on (0-based
    epoch as Lightning's current_epoch), `step` counts optimizer steps.
    """

    def __init__(self, cfg: GPTConfig, data_dir: Path, run_dir: Path, ctx: DistributedContext, *,
                 pretrained_s1: str | None = None, progress: bool = True, quiet: bool = False,
                 tensorboard: bool = True, num_workers: int | None = None):
        self.cfg, self.data_dir, self.run_dir, self.ctx = cfg, Path(data_dir), Path(run_dir), ctx
        self.opts = GPTRunOptions.from_config(cfg)
        self.pretrained_s1 = pretrained_s1 or cfg.pretrained_s1
        self.progress, self.quiet, self.tensorboard = progress, quiet, tensorboard
        self.num_workers = cfg.data.num_workers if num_workers is None else num_workers
        self.started = time.perf_counter()
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.resumed_from: str | None = None
        self.last_saved: tuple[int, int] | None = None  # (epoch, batch) of the newest checkpoint
        self.export_path: str | None = None
        self.losses: list[float] = []
        self.nonfinite = 0
        self.bar = None
        self._sums: dict[str, float] = {}
        self._count = 0
        self._interval_start = time.perf_counter()

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        self._check_run_config()
        # the data first: a folder that cannot be trained on is an error before anything is written
        self.dataset = Text2SemanticDataset(self.data_dir, version=self._version(), max_sec=cfg.data.max_sec,
                                            pad_val=cfg.data.pad_val)
        if ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        barrier(ctx)
        self.log = setup_logging(self.run_dir, ctx.is_main, self.quiet)
        seed = cfg.train.seed  # official seed_everything(seed): python, numpy and torch, same on every rank
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self.batch_size = official_batch_size(cfg.train.batch_size, len(self.dataset), bool(cfg.train.if_dpo))
        self.sampler = BucketBatchSampler(self.dataset.durations, self.batch_size, num_replicas=ctx.world_size,
                                          rank=ctx.rank)
        self.batches = EpochBatches(self.sampler)
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=self.batches, collate_fn=self.dataset.collate, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, pin_memory=ctx.device.type == "cuda",
            generator=torch.Generator().manual_seed(seed + ctx.rank))  # keeps the global RNG untouched
        # right after the seed, as the official: the same initial weights as s1_train.py for the same seed
        self.model = Text2SemanticDecoder(cfg, top_k=TOP_K, pr2537_text_mask=self.opts.pr2537_text_mask)
        self.model.to(ctx.device)
        self.objective = _Objective(self.model, bool(cfg.train.if_dpo))
        self.optimizer, self.scheduler = self._make_optimizer()
        self._setup_precision()
        rng = self._resume_or_initialise()
        if ctx.is_main:
            atomic_write_text(self.run_dir / CONFIG_FILE, cfg.to_yaml())
        self.ddp = self.objective
        if ctx.is_distributed:
            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.objective, device_ids=ids)
        if rng is not None:
            restore_rng_state(rng, ctx.device)
        n = sum(p.numel() for p in self.model.parameters())
        self.log.info(f"GPT (s1): {n / 1e6:.2f} M parameters, {cfg.model.n_layer} layers of {cfg.model.hidden_dim}; "
                      f"{len(self.dataset)} items ({self.dataset.unique} distinct), {len(self.sampler)} batches of "
                      f"{self.batch_size} per epoch and process, {ctx.world_size} process(es) on {ctx.device}, "
                      f"{self.opts.optimizer}, {self.precision_name}")
        self.run_logger = RunLogger(self.run_dir, enabled=ctx.is_main, start_step=self.step,
                                    tensorboard=self.tensorboard)
        if ctx.is_main and self.progress:
            from tqdm.auto import tqdm  # deferred: only for the progress bar

            total = len(self.sampler) * cfg.train.epochs
            done = self.epoch * len(self.sampler) + self.batch_in_epoch
            self.bar = tqdm(total=total, initial=min(done, total), unit="batch", dynamic_ncols=True, desc="train s1",
                            file=sys.stderr)

    def _version(self) -> str:
        return "v1" if self.cfg.model.phoneme_vocab_size == 512 else "v2"

    def _check_run_config(self) -> None:
        """A run folder keeps its model: refuse to continue it with another model section or optimizer."""
        path = self.run_dir / CONFIG_FILE
        if not path.is_file():
            return
        try:
            old = GPTConfig.from_yaml(path)
        except GPTConfigError:
            return
        if old.model.to_dict() != self.cfg.model.to_dict():
            diff = sorted(k for k, v in old.model.to_dict().items() if self.cfg.model.to_dict().get(k) != v)
            raise GPTConfigError(f"{self.run_dir} was trained with other model settings ({', '.join(diff)}): use "
                                 f"another --out folder, or the same preset/--set to continue it")
        old_opt = old.train.extra.get("optimizer", "scaled_adam")
        if old_opt != self.opts.optimizer:
            raise GPTConfigError(f"{self.run_dir} was trained with train.optimizer={old_opt}; this run has "
                                 f"{self.opts.optimizer}: use another --out folder")

    def _make_optimizer(self):
        opts = self.opts
        if opts.optimizer == "adamw":
            opt = torch.optim.AdamW(self.model.parameters(), lr=opts.adamw_lr, betas=(0.9, 0.95),
                                    weight_decay=opts.weight_decay)
            return opt, None
        if opts.lr_schedule == "official":  # the first step at the constructor's 0.01, then 0.002
            return official_optimizer(self.model, self.cfg.optimizer.to_dict(), lock_lr=OFFICIAL_LOCKED_LR)
        optimizer, scheduler = official_optimizer(self.model, self.cfg.optimizer.to_dict(), lock_lr=None)
        scheduler.step()  # as torch's schedulers do on creation: step 1 at lr(0), step k at lr(k-1), not at 0.01
        return optimizer, scheduler

    def _setup_precision(self) -> None:
        """train.precision as Lightning reads it; mixed precision only on CUDA (the CPU trains in float32)."""
        p = str(self.cfg.train.precision)
        cuda = self.ctx.device.type == "cuda"
        self.autocast_dtype = None
        if cuda and p in ("16", "16-mixed"):
            self.autocast_dtype = torch.float16
        elif cuda and p in ("bf16", "bf16-mixed"):
            self.autocast_dtype = torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16) if cuda else None
        self.precision_name = f"autocast {self.autocast_dtype}" if self.autocast_dtype else "float32"
        if not cuda and p not in ("32", "32-true"):
            self.precision_name += f" (train.precision={p} applies on CUDA only)"

    def _resume_or_initialise(self) -> dict | None:
        """Resume from the newest checkpoint in RUN/ckpt, or start (from --pretrained-s1 if given).

        Returns this rank's RNG state to restore (exact resume) or None.
        """
        found = list_gpt_checkpoints(self.run_dir)
        if not found:
            if self.pretrained_s1:  # official: strict load of the file's "weight" into the Lightning module
                pretrained = load_gpt(self.pretrained_s1, config=self.cfg)  # checks every key and shape
                self.model.load_state_dict(pretrained.state_dict(), strict=True)
                self.log.info(f"initial weights: {self.pretrained_s1} ({getattr(pretrained.loaded_from, 'info', '')})")
            self.log.info(f"starting a new run in {self.run_dir}")
            return None
        _, _, path = found[-1]
        ckpt = read_gpt_checkpoint(path)
        state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
        self.model.load_state_dict(state, strict=True)
        self.optimizer.load_state_dict(ckpt["optimizer_states"][0])
        if self.scheduler is not None and ckpt.get("lr_schedulers"):
            self.scheduler.load_state_dict(ckpt["lr_schedulers"][0])
        self.step = int(ckpt["global_step"])
        self.resumed_from = str(path)
        ours = ckpt.get("gsv_edu")
        if ours is None:  # an official checkpoint: Lightning continues with the next epoch
            self.epoch, self.batch_in_epoch = int(ckpt["epoch"]) + 1, 0
            self.last_saved = (self.epoch, 0)
            self.log.info(f"resuming from the official checkpoint {path}: epoch {self.epoch}, step {self.step} "
                          f"(gradients carried over from epoch {self.epoch - 1}, if any, are not in the file)")
            return None
        self.epoch, self.batch_in_epoch = int(ours["epoch"]), int(ours["batch_in_epoch"])
        self.last_saved = (self.epoch, self.batch_in_epoch)
        for name, p in self.objective.named_parameters():
            grad = (ours.get("pending_grads") or {}).get(name)
            p.grad = None if grad is None else grad.to(p.device, p.dtype)
        if self.scaler is not None and ours.get("scaler"):
            self.scaler.load_state_dict(ours["scaler"])
        rng = ours.get("rng") or []
        if rng and len(rng) != self.ctx.world_size:
            self.log.warning(f"{path} was written by {len(rng)} process(es), this run has {self.ctx.world_size}: the "
                             f"random numbers will differ from an uninterrupted run")
        self.log.info(f"resuming from {path}: step {self.step}, epoch {self.epoch}, batch {self.batch_in_epoch}")
        return rng[self.ctx.rank] if self.ctx.rank < len(rng) else None

    # ------------------------------------------------------------------ the loop
    def run(self) -> GPTTrainResult:
        cfg, opts = self.cfg, self.opts
        try:
            if opts.max_steps is not None and self.step >= opts.max_steps:
                stop_reason = "already done"
                self.log.info(f"{self.run_dir} is already at step {self.step} ≥ train.max_steps = {opts.max_steps}: "
                              f"nothing to train (raise it with --set train.max_steps=N, or use another --out)")
            elif self.epoch >= cfg.train.epochs:
                stop_reason = "already done"
                self.log.info(f"{self.run_dir} has trained its {cfg.train.epochs} epochs: nothing to train (raise "
                              f"them with --set train.epochs=N, or use another --out)")
            else:
                stop_reason = "epochs"
                while self.epoch < cfg.train.epochs:
                    if self.train_epoch():
                        stop_reason = "max_steps"
                        break
                    epoch_done = self.epoch  # official: a checkpoint at the end of every save_every_n_epoch-th epoch
                    self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                    if (epoch_done + 1) % cfg.train.save_every_n_epoch == 0:
                        self.save(f"end of epoch {epoch_done}", epoch_of_file=epoch_done)
                if self.last_saved != (self.epoch, self.batch_in_epoch):
                    self.save("end", epoch_of_file=max(self.epoch - (self.batch_in_epoch == 0), 0))
        except KeyboardInterrupt:
            found = list_gpt_checkpoints(self.run_dir)
            self.log.warning(f"interrupted at step {self.step}; the newest checkpoint is {found[-1][2]} — run the "
                             f"same command again to resume from it" if found else
                             f"interrupted at step {self.step}, before the first checkpoint")
            raise
        finally:
            if self.bar is not None:
                self.bar.close()
            self.run_logger.close()
        self._check_ranks_agree()
        return self._result(stop_reason)

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.ctx.device.type, dtype=self.autocast_dtype)

    def train_epoch(self) -> bool:
        """Train the current epoch from `batch_in_epoch` on; True when train.max_steps was reached."""
        self.model.train()
        self.batches.set_epoch(self.epoch, self.batch_in_epoch)
        for batch in self.loader:
            index = self.batch_in_epoch  # the batch's number in the epoch (Lightning's batch_idx)
            batch = {k: (v.to(self.ctx.device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
                     for k, v in batch.items()}
            self.train_batch(batch)
            self.batch_in_epoch += 1
            if self.bar is not None:
                self.bar.update(1)
            if index > 0 and index % self.opts.accumulate_grad_batches == 0:
                self.optimizer_step()
                if self.opts.save_every_steps and self.step % self.opts.save_every_steps == 0:
                    self.save(f"every {self.opts.save_every_steps} steps")
                if self.opts.max_steps is not None and self.step >= self.opts.max_steps:
                    return True
        return False

    def train_batch(self, batch: dict) -> float:
        """Forward and backward of one batch (gradients accumulate); returns its loss."""
        with self._autocast():
            loss, acc = self.ddp(batch)
        finite = all_true(bool(torch.isfinite(loss).item()), self.ctx)
        if not finite:
            self.nonfinite += 1
            self.log.warning(f"epoch {self.epoch} batch {self.batch_in_epoch}: non-finite loss {loss.item()}; batch "
                             f"skipped ({self.nonfinite} in a row, the limit is train.max_nonfinite_batches = "
                             f"{self.opts.max_nonfinite_batches})")
            if self.nonfinite >= self.opts.max_nonfinite_batches:
                raise TrainingDiverged(f"training stopped: {self.nonfinite} consecutive batches with a non-finite "
                                       f"loss; the last checkpoint is {self._newest_checkpoint()}. Try "
                                       f"train.precision=32 or a lower learning rate, and check the data.")
            return float("nan")
        self.nonfinite = 0
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        value = loss.item()
        self.losses.append(value)
        tokens = int(batch["semantic_ids_len"].sum()) + len(batch["semantic_ids_len"])  # targets incl. EOS
        for key, v in (("total_loss", value), (f"top_{TOP_K}_acc", acc), ("loss_per_token", value / tokens)):
            self._sums[key] = self._sums.get(key, 0.0) + v
        self._count += 1
        return value

    def optimizer_step(self) -> None:
        """The optimizer step, zero_grad and scheduler step of the Lightning module; log every log_interval."""
        lr = self.optimizer.param_groups[0]["lr"]
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        if self.ctx.is_main and (self.step == 1 or self.step % self.opts.log_interval == 0) and self._count:
            now = time.perf_counter()
            means = {k: v / self._count for k, v in self._sums.items()}
            means["lr"] = lr
            seconds = (now - self._interval_start) / max(1, self._count)
            self.run_logger.scalars(self.step, means, extra={"epoch": self.epoch, "s_per_batch": round(seconds, 4)})
            self._message(f"step {self.step} | epoch {self.epoch} batch {self.batch_in_epoch}/{len(self.sampler)} | "
                          f"loss {means['total_loss']:.1f} ({means['loss_per_token']:.3f}/token) | "
                          f"top-{TOP_K} acc {means[f'top_{TOP_K}_acc']:.3f} | lr {lr:.3g} | {seconds:.2f} s/batch")
            self._sums, self._count, self._interval_start = {}, 0, now

    # ------------------------------------------------------------------ saving
    def checkpoint(self, epoch_of_file: int) -> dict:
        """The Lightning-format checkpoint of this moment (rank 0's view; RNG states of every rank)."""
        rng = gather_objects(capture_rng_state(self.ctx.device), self.ctx)
        pending = {name: p.grad.detach().cpu().clone() for name, p in self.objective.named_parameters()
                   if p.grad is not None}
        n_batches = len(self.sampler)
        at_end = self.batch_in_epoch == 0 and self.epoch > epoch_of_file
        done_in_epoch = n_batches if at_end else self.batch_in_epoch
        loops = lightning_loops(epoch_of_file, done_in_epoch, epoch_of_file * n_batches + done_in_epoch, self.step,
                                epochs_done=epoch_of_file)
        loops["fit_loop"]["epoch_loop.batch_progress"]["is_last_batch"] = at_end
        return {
            "epoch": epoch_of_file,
            "global_step": self.step,
            "pytorch-lightning_version": LIGHTNING_VERSION,
            "state_dict": {k: v.detach().cpu().clone() for k, v in self.objective.state_dict().items()},
            "loops": loops,
            "callbacks": {},
            "optimizer_states": [self.optimizer.state_dict()],
            "lr_schedulers": [self.scheduler.state_dict()] if self.scheduler is not None else [],
            "hparams_name": "kwargs",
            "hyper_parameters": {"config": self.cfg.to_dict(), "output_dir": str(self.run_dir), "is_train": True},
            "gsv_edu": {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                        "pending_grads": pending or None, "rng": rng, "world_size": self.ctx.world_size,
                        "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                        "optimizer": self.opts.optimizer},
        }

    def save(self, reason: str, epoch_of_file: int | None = None) -> None:
        """Checkpoint (and export) now; every rank calls it at the same point."""
        epoch_of_file = self.epoch if epoch_of_file is None else epoch_of_file
        finite = all(gather_objects(all(bool(torch.isfinite(p).all()) for p in self.model.parameters()), self.ctx))
        if not finite:
            self.log.error(f"step {self.step}: the weights are not finite; NOT saving (the last checkpoint is kept)")
            return
        ckpt = self.checkpoint(epoch_of_file)
        if self.ctx.is_main:
            path = self.run_dir / CKPT_DIR / f"epoch={epoch_of_file}-step={self.step}.ckpt"
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_save(ckpt, path)
            message = f"saved {path} ({reason})"
            if self.cfg.train.if_save_every_weights is not False or reason == "end":
                message += f"; exported {self._export()}"
            pruned = self._prune()
            if pruned:
                message += f"; removed {', '.join(p.name for p in pruned)}"
            self._message(message)
            self.run_logger.flush()
        self.last_saved = (self.epoch, self.batch_in_epoch)
        barrier(self.ctx)

    def _export(self) -> str:
        """Official s1 export: {"weight": {"model." + key: fp16}, "config", "info": "GPT-e{epochs done}"}."""
        name = self.cfg.train.exp_name or self.run_dir.resolve().name
        epochs_done = self.epoch
        suffix = "" if self.batch_in_epoch == 0 else f"-s{self.step}"
        path = self.run_dir / WEIGHTS_DIR / f"{name}-e{epochs_done}{suffix}.ckpt"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.export_path = save_gpt(self.model, path, self.cfg, epoch=epochs_done)
        return self.export_path

    def _prune(self) -> list[Path]:
        keep = self.opts.keep_last
        if keep <= 0:
            return []
        doomed = [p for _, _, p in list_gpt_checkpoints(self.run_dir)[:-keep]]
        for p in doomed:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        return doomed

    def _newest_checkpoint(self) -> str:
        found = list_gpt_checkpoints(self.run_dir)
        return str(found[-1][2]) if found else "(none yet)"

    # ------------------------------------------------------------------ the end
    def _message(self, text: str) -> None:
        log_above_bar(self.log, self.bar, text)

    def _check_ranks_agree(self) -> None:
        check_ranks_agree({"": self.model}, self.ctx, self.log)

    def _result(self, stop_reason: str) -> GPTTrainResult:
        result = GPTTrainResult(run_dir=self.run_dir, step=self.step, epoch=self.epoch, stop_reason=stop_reason,
                                resumed_from=self.resumed_from, export_path=self.export_path, losses=list(self.losses),
                                seconds=time.perf_counter() - self.started)
        if self.ctx.is_main:
            rows = [r for r in read_metrics(self.run_dir) if r.get("total_loss") is not None]
            if rows:
                last = rows[-3:]
                result.first_loss = (rows[0]["step"], rows[0]["total_loss"])
                result.last_loss = (rows[-1]["step"], sum(r["total_loss"] for r in last) / len(last))
                self.log.info(f"total_loss (summed cross-entropy per batch): {result.first_loss[1]:.1f} at step "
                              f"{result.first_loss[0]} → {result.last_loss[1]:.1f} at step {result.last_loss[0]} "
                              f"(mean of the last {len(last)} log lines)")
            self.log.info(f"done: step {self.step}, {self.epoch} epoch(s) ({stop_reason}) in {result.seconds:.0f} s; "
                          f"weights: {result.export_path}")
        return result


def train_gpt(config: GPTConfig, data_dir: str | os.PathLike, run_dir: str | os.PathLike, *,
              pretrained_s1: str | None = None, device: str = "auto", progress: bool = True, quiet: bool = False,
              tensorboard: bool = True, num_workers: int | None = None) -> GPTTrainResult:
    """Train (or resume training) the GPT into `run_dir` on the prepared folder `data_dir`.

    One process, or one rank of a `torchrun` launch (process group from the environment).
    `num_workers` overrides `data.num_workers` (data-loading processes; 0 = in this process).
    """
    ctx = init_distributed(device)
    try:
        run = GPTTrainingRun(config, Path(data_dir), Path(run_dir), ctx, pretrained_s1=pretrained_s1,
                             progress=progress, quiet=quiet, tensorboard=tensorboard, num_workers=num_workers)
        run.setup()
        return run.run()
    finally:
        ctx.close()
