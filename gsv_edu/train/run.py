"""One training run: set up or resume, loop over epochs and batches, checkpoint, export, log.

Mirrors `GPT_SoVITS/s2_train.py · run` (set-up, resume or pretrained initialisation,
schedulers, the epoch loop) and `train_and_evaluate` (one epoch: steps, logging, checkpoints)
@48b1a01; the step itself is `gsv_edu.train.step.Trainer.train_step`. `train()` is the
function behind `python -m gsv_edu.train` (`gsv_edu.train.cli`).

The run folder (`RUN`) is laid out like the official experiment folder:

    RUN/config.json                      the config (s2.json layout) of the run
    RUN/logs_s2_{version}/G_{step}.pth   training checkpoints (+ D_{step}.pth), see gsv_edu.weights
    RUN/weights/{name}_e{epoch}_s{step}.pth   exported fp16 weights (the official UI loads these)
    RUN/train.log, RUN/events.out.tfevents.*, RUN/metrics.jsonl   logs, see gsv_edu.train.logs

Order of events, as the official: before the first epoch the schedulers are stepped once
(quirk of `GPT_SoVITS/s2_train.py · run @48b1a01`); after each batch: log every
`log_interval` steps; at the end of an epoch: checkpoint (+ export) every `save_every_epoch`
epochs, then a scheduler step. gsv_edu adds
checkpoints every `save_every_steps` steps, the stop at `max_steps` (with a checkpoint), and
an export at the end.

Position bookkeeping: `trainer.epoch` / `trainer.batch_in_epoch` always name the next batch to
train on, so a checkpoint taken anywhere (mid-epoch, or after the last batch of an epoch but
before its scheduler step) resumes exactly.

Deliberate difference: the official resume recomputes `global_step = (epoch - 1) · len(loader)`,
starts the next epoch from its first batch, and re-creates the schedulers, stepping them
`epoch` times (`GPT_SoVITS/s2_train.py · run @48b1a01`). Since the optimizer state it
restores already carries the decayed learning rate, the decay is, by our reading, applied a
second time on each resume (base·γ^(2e+1) instead of base·γ^(e+1) in epoch e+1; with
γ = 0.999875 a small effect). We
restore the step, the data position, the scheduler and the RNG states instead (the gsv_edu
keys of the checkpoint, `gsv_edu.weights`; `gsv_edu.train.rng`), so a resumed run continues
exactly where it stopped. An official checkpoint without our keys is resumed the official way
(start of the next epoch), but with the learning rate base·γ^epoch of an uninterrupted run.
"""
from __future__ import annotations

import copy
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from gsv_edu.config import Config, ConfigError
from gsv_edu.data.dataset import TextAudioSpeakerDataset
from gsv_edu.data.layout import check_prepared
from gsv_edu.data.loader import EpochBatches, make_loader
from gsv_edu.data.sampler import DistributedBucketSampler
from gsv_edu.train.codebook import fit_codebook_on_corpus
from gsv_edu.train.distributed import (DistributedContext, barrier, check_ranks_agree, gather_objects,
                                       init_distributed)
from gsv_edu.train.logs import RunLogger, log_above_bar, read_metrics, setup_logging
from gsv_edu.train.rng import capture_rng_state, restore_rng_state
from gsv_edu.train.step import StepResult, Trainer
from gsv_edu.weights import (checkpoint_dir, latest_checkpoint, load_pair, prune_checkpoints, save_pair, save_sovits)

__all__ = ["train", "TrainingRun", "TrainResult", "TrainingDiverged", "CONFIG_FILE", "WEIGHTS_DIR", "mel_summary"]

CONFIG_FILE = "config.json"
WEIGHTS_DIR = "weights"


def train(config: Config, data_dir: str | os.PathLike, run_dir: str | os.PathLike, *,
          pretrained_g: str | None = None, pretrained_d: str | None = None, device: str = "auto",
          progress: bool = True, quiet: bool = False, tensorboard: bool = True) -> TrainResult:
    """Train (or resume training) into `run_dir` on the prepared folder `data_dir`.

    Runs as one process, or as one rank of a `torchrun` launch (the process group is set up
    from the environment and torn down at the end). Raises `TrainingDiverged` when
    `train.max_nonfinite_steps` consecutive steps had a non-finite loss. `tensorboard=False`
    writes only metrics.jsonl and the log (no images or audio, which take time to render).
    `config` is not modified: the run works on a copy (RUN/config.json is that copy).
    """
    ctx = init_distributed(device)
    try:
        run = TrainingRun(config, Path(data_dir), Path(run_dir), ctx, progress=progress, quiet=quiet,
                          tensorboard=tensorboard)
        run.setup(pretrained_g, pretrained_d)
        return run.run()
    finally:
        ctx.close()


class TrainingDiverged(RuntimeError):
    """Too many consecutive steps had a non-finite loss; the run stopped (checkpoints untouched)."""


@dataclass
class TrainResult:
    """What a run did. Mel losses are the logged `loss/g/mel` (= c_mel · L1) values."""

    run_dir: Path
    step: int
    epoch: int
    stop_reason: str                 # "max_steps", "epochs" or "already done"
    resumed_from: int | None = None  # the checkpoint step the run continued from
    export_path: str | None = None
    first_mel: tuple[int, float] | None = None  # (step, value) of the first logged mel loss of the run folder
    last_mel: tuple[int, float] | None = None   # (last step, mean of the last three logged values)
    seconds: float = 0.0


class TrainingRun:
    """Everything one call of `train` does, in the order of the official `run()`."""

    def __init__(self, cfg: Config, data_dir: Path, run_dir: Path, ctx: DistributedContext, *,
                 progress: bool = True, quiet: bool = False, tensorboard: bool = True):
        # The run writes its own fields (name, folders, pretrained paths; `_record_run_fields`) into
        # its config: a copy, so the caller's object stays as it was (and can start another run).
        self.cfg, self.data_dir, self.run_dir, self.ctx = copy.deepcopy(cfg), data_dir, run_dir, ctx
        self.progress, self.quiet, self.tensorboard = progress, quiet, tensorboard
        self.started = time.perf_counter()
        # made by setup():
        self.log: logging.Logger | None = None
        self.trainer: Trainer | None = None
        self.ckpt_dir: Path = checkpoint_dir(run_dir, cfg.version)  # RUN/logs_s2_{version}
        self.dataset: TextAudioSpeakerDataset | None = None
        self.sampler: DistributedBucketSampler | None = None
        self.batches: EpochBatches | None = None
        self.loader: torch.utils.data.DataLoader | None = None
        self.steps_per_epoch = 0             # batches per epoch of this process
        self.bar = None                      # tqdm progress bar (rank 0, progress=True)
        self.run_logger: RunLogger | None = None
        self.media_wanted = False            # TensorBoard is on: log images and audio
        # where the run stands:
        self.resumed_from: int | None = None
        self.last_saved: int | None = None   # step of the newest checkpoint of this run folder
        self.export_path: str | None = None
        self.nonfinite = 0                   # consecutive skipped steps
        self._sums: dict[str, float] = {}    # scalars summed since the last log line
        self._count = 0
        self._interval_start = time.perf_counter()
        self._last = (None, None)            # (batch, media) of the last good step, for the final audio

    # ------------------------------------------------------------------ set-up
    def setup(self, pretrained_g: str | None = None, pretrained_d: str | None = None) -> None:
        cfg, ctx, run_dir = self.cfg, self.ctx, self.run_dir
        cfg.validate()
        check_prepared(cfg, self.data_dir)
        self._check_run_config()
        if ctx.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
        barrier(ctx)
        self.log = setup_logging(run_dir, ctx.is_main, self.quiet)
        self._record_run_fields(pretrained_g, pretrained_d)
        if ctx.device.type == "cuda":  # official: TF32 allowed, medium matmul precision, no cudnn benchmark
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = False
            torch.set_float32_matmul_precision("medium")
        elif cfg.train.fp16_run:
            self.log.info("note: train.fp16_run is ignored on the CPU (float32)")

        torch.manual_seed(cfg.train.seed)  # official: the same seed on every rank
        self.trainer = Trainer(cfg, ctx)
        self.dataset, self.sampler, self.batches, self.loader = make_loader(cfg, self.data_dir, ctx)
        self.steps_per_epoch = len(self.sampler)
        rng_state, exact = self._resume_or_initialise()
        if ctx.is_main:
            cfg.save(run_dir / CONFIG_FILE)
        self.trainer.wrap_ddp()
        if not exact:
            self.trainer.step_schedulers()  # official quirk (s2_train.py · run): before epoch 1 too
        if rng_state is not None:
            restore_rng_state(rng_state, ctx.device)

        t = self.trainer
        n_g = sum(p.numel() for p in t.net_g.parameters())
        n_d = sum(p.numel() for p in t.net_d.parameters())
        self.log.info(f"{cfg.version} SoVITS: G {n_g / 1e6:.2f} M, D {n_d / 1e6:.2f} M parameters; {len(self.dataset)} "
                      f"items, {self.steps_per_epoch} batches of {cfg.train.batch_size} per epoch and process, "
                      f"{ctx.world_size} process(es) on {ctx.device}"
                      + (f", autocast {t.autocast_dtype}" if t.autocast_enabled else ", float32"))
        self.run_logger = RunLogger(run_dir, enabled=ctx.is_main, start_step=max(t.step, 0),
                                    tensorboard=self.tensorboard)
        self.media_wanted = self.run_logger.writer is not None
        if ctx.is_main and self.progress:
            tc = cfg.train
            total = tc.max_steps if tc.max_steps is not None else tc.epochs * self.steps_per_epoch
            self.bar = tqdm(total=total, initial=min(t.step, total), unit="step", dynamic_ncols=True, desc="train",
                            file=sys.stderr)

    def _check_run_config(self) -> None:
        """A run folder keeps its model: refuse to resume it with other model/data settings."""
        path = self.run_dir / CONFIG_FILE
        if not path.is_file():
            return
        try:
            old = Config.load(path)
        except ConfigError:
            return
        for section in ("model", "data"):
            a, b = getattr(old, section), getattr(self.cfg, section)
            diffs = [k for k in vars(a) if k != "exp_dir" and getattr(a, k) != getattr(b, k)]
            if diffs:
                k = diffs[0]
                raise ConfigError(f"{self.run_dir} was trained with {section}.{k} = {getattr(a, k)!r}, this run has "
                                  f"{getattr(b, k)!r}: use another --out folder (or the same settings) to continue it")
        old_div, new_div = old.train.disc_channel_divisor, self.cfg.train.disc_channel_divisor
        if old_div != new_div:
            raise ConfigError(f"{self.run_dir} was trained with train.disc_channel_divisor = {old_div}; this run has "
                              f"{new_div}: use another --out folder")

    def _record_run_fields(self, pretrained_g, pretrained_d) -> None:
        """The fields the official web UI writes into the training config (exported with the weights)."""
        cfg = self.cfg
        cfg.top["name"] = cfg.top.get("name") or self.run_dir.resolve().name
        cfg.top.setdefault("version", cfg.version)
        cfg.top["s2_ckpt_dir"] = str(self.run_dir)
        cfg.top["save_weight_dir"] = str(self.run_dir / WEIGHTS_DIR)
        cfg.data.exp_dir = str(self.data_dir)
        cfg.train.pretrained_s2G = pretrained_g or cfg.train.pretrained_s2G
        cfg.train.pretrained_s2D = pretrained_d or cfg.train.pretrained_s2D

    def _resume_or_initialise(self) -> tuple[dict | None, bool]:
        """Resume from the newest checkpoint, or start fresh (from pretrained weights if given).

        Returns (this rank's saved RNG state or None, whether the resume is exact).
        """
        t, log, ctx = self.trainer, self.log, self.ctx
        latest = latest_checkpoint(self.ckpt_dir)
        if latest is None:
            for line in t.load_pretrained(self.cfg.train.pretrained_s2G or None, self.cfg.train.pretrained_s2D or None):
                log.info(line)
            if self.cfg.train.codebook_init == "corpus":
                fit = fit_codebook_on_corpus(t.net_g, self.dataset)
                log.info("codebook: k-means of the whole corpus, " + (
                    f"{fit['frames']} frames, {fit['codes_used']} of {fit['codebook_size']} codes used"
                    if fit["fitted"] else fit["reason"]))
            log.info(f"starting a new run in {self.run_dir}")
            return None, False
        pair = load_pair(self.ckpt_dir, latest)
        t.load_checkpoint_states(pair.g, pair.d, pair.g_path, pair.d_path)
        self.resumed_from = self.last_saved = latest
        if pair.is_official_only:
            t.step = (t.epoch - 1) * self.steps_per_epoch  # official: global_step from the epoch
            self.last_saved = t.step
            log.info(f"resuming from the official checkpoint {pair.g_path} (epoch {t.epoch - 1} done): "
                     f"starting epoch {t.epoch} at step {t.step}")
            return None, False
        rng = pair.g.get("rng") or []
        if rng and len(rng) != ctx.world_size:
            log.warning(f"the checkpoint was written by {len(rng)} process(es), this run has {ctx.world_size}: "
                        f"the data order and random numbers will differ from an uninterrupted run")
        log.info(f"resuming from {pair.g_path}: step {t.step}, epoch {t.epoch}, "
                 f"batch {t.batch_in_epoch} of {self.steps_per_epoch}")
        state = rng[ctx.rank] if ctx.rank < len(rng) else (rng[0] if rng else None)
        return state, True

    # ------------------------------------------------------------------ the loop
    def run(self) -> TrainResult:
        tc, t = self.cfg.train, self.trainer
        try:
            if tc.max_steps is not None and t.step >= tc.max_steps:
                stop_reason = "already done"
                self.log.info(f"{self.run_dir} is already at step {t.step} ≥ train.max_steps = {tc.max_steps}: nothing "
                              f"to train (raise it with --set train.max_steps=N to continue, or use another --out)")
            else:
                stop_reason = "epochs"
                first_epoch, skip = t.epoch, t.batch_in_epoch
                for epoch in range(first_epoch, tc.epochs + 1):
                    if self.train_epoch(epoch, skip if epoch == first_epoch else 0):
                        stop_reason = "max_steps"
                        break
                    # end of the epoch (official order: checkpoint, then the scheduler step)
                    if epoch % tc.save_every_epoch == 0 and self.last_saved != t.step:
                        self.save(f"every {tc.save_every_epoch} epochs")
                    t.step_schedulers()
                    t.epoch, t.batch_in_epoch = epoch + 1, 0
                if self.last_saved != t.step:
                    self.save("end", *self._last)
                elif self.ctx.is_main and self.export_path is None:
                    self._message(f"exported {self._export()}")
        except KeyboardInterrupt:
            latest = latest_checkpoint(self.ckpt_dir)
            self.log.warning(f"interrupted at step {t.step}; the newest checkpoint is step {latest} — run the same "
                             f"command again to resume from it" if latest is not None else
                             f"interrupted at step {t.step}, before the first checkpoint")
            raise
        finally:
            if self.bar is not None:
                self.bar.close()
            if self.run_logger is not None:
                self.run_logger.close()
        self._check_ranks_agree()
        return self._result(stop_reason)

    def train_epoch(self, epoch: int, skip: int) -> bool:
        """Train on the batches of `epoch` from number `skip` on; True when max_steps was reached."""
        tc, t = self.cfg.train, self.trainer
        self.batches.set_epoch(epoch, skip)
        t.epoch, t.batch_in_epoch = epoch, skip
        for batch in self.loader:
            next_step = t.step + 1
            want_media = self.media_wanted and (
                next_step == 1 or next_step % tc.log_interval == 0 or next_step == tc.max_steps
                or bool(tc.save_every_steps and next_step % tc.save_every_steps == 0))
            result = t.train_step(batch, media=want_media)
            t.batch_in_epoch += 1
            if not result.ok:
                self._skipped(next_step, result)
                continue
            self.nonfinite = 0
            t.step += 1
            self._last = (batch, result.media)
            self._after_step(epoch, result)
            if tc.save_every_steps and t.step % tc.save_every_steps == 0:
                self.save(f"every {tc.save_every_steps} steps", batch, result.media)
            if tc.max_steps is not None and t.step >= tc.max_steps:
                return True
        return False

    def _skipped(self, step: int, result: StepResult) -> None:
        tc = self.cfg.train
        self.nonfinite += 1
        self.log.warning(f"step {step}: {result.reason}; update skipped ({self.nonfinite} in a row, the limit is "
                         f"train.max_nonfinite_steps = {tc.max_nonfinite_steps})")
        if self.nonfinite >= tc.max_nonfinite_steps:
            latest = latest_checkpoint(self.ckpt_dir)
            last_good = self.ckpt_dir / f"G_{latest}.pth" if latest is not None else "(none yet)"
            raise TrainingDiverged(
                f"training stopped: {self.nonfinite} consecutive steps with a non-finite loss or gradient "
                f"(last: {result.reason}). No checkpoint was written since; the last good one is {last_good}. "
                f"Try a lower train.learning_rate, train.fp16_run=false or train.amp_dtype=bfloat16, and check the data.")

    def _after_step(self, epoch: int, result: StepResult) -> None:
        """Progress bar, and every `log_interval` steps (and at step 1): the log line, scalars, images."""
        t, tc = self.trainer, self.cfg.train
        for k, v in result.scalars.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        self._count += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(mel=f"{result.scalars['loss/g/mel']:.2f}", d=f"{result.scalars['loss/d/total']:.2f}",
                                 refresh=False)
        if not self.ctx.is_main or not (t.step == 1 or t.step % tc.log_interval == 0):
            return
        now = time.perf_counter()
        means = {k: v / self._count for k, v in self._sums.items()}
        means["learning_rate"] = t.learning_rate
        seconds_per_step = (now - self._interval_start) / self._count
        self.run_logger.scalars(t.step, means, extra={"epoch": epoch, "s_per_step": round(seconds_per_step, 4)})
        if result.media:
            self.run_logger.images(t.step, {k: v for k, v in result.media.items() if k.startswith(("slice/", "all/"))})
        pct = 100.0 * t.batch_in_epoch / max(1, self.steps_per_epoch)
        self._message(
            f"step {t.step} | epoch {epoch} [{pct:.0f}%] | d {means['loss/d/total']:.3f} | gen {means['loss/g/gen']:.3f} "
            f"| fm {means['loss/g/fm']:.3f} | mel {means['loss/g/mel']:.3f} | kl_ssl {means['loss/g/kl_ssl']:.3f} | "
            f"kl {means['loss/g/kl']:.3f} | lr {means['learning_rate']:.3e} | grad norm d {means['grad_norm_d']:.2f} "
            f"g {means['grad_norm_g']:.2f} | {seconds_per_step:.2f} s/step")
        self._sums, self._count, self._interval_start = {}, 0, now

    # ------------------------------------------------------------------ saving
    def save(self, reason: str, media_batch=None, media: dict | None = None) -> None:
        """Checkpoint (and export) at the current step; every rank calls it at the same step."""
        t, ctx = self.trainer, self.ctx
        if not all(gather_objects(t.weights_finite(), ctx)):
            self.log.error(f"step {t.step}: the weights are not finite; NOT saving (the last good checkpoint is kept)")
            return
        rng = gather_objects(capture_rng_state(ctx.device), ctx)
        g_state, d_state = t.checkpoint_states(rng)
        if ctx.is_main:
            g_path, _ = save_pair(self.ckpt_dir, t.step, g_state, d_state)
            pruned = prune_checkpoints(self.ckpt_dir, self.cfg.train.keep_last)
            message = f"saved {g_path} and D_{t.step}.pth ({reason})"
            if self.cfg.train.if_save_every_weights or reason == "end":
                message += f"; exported {self._export()}"
            if pruned:
                message += f"; removed the checkpoints of step(s) {', '.join(map(str, pruned))}"
            self._message(message)
            clips = {k: v for k, v in (media or {}).items() if k.startswith("audio/")}
            if media_batch is not None and self.media_wanted:
                clips["audio/gen_full"] = t.synthesize_item(media_batch)
            self.run_logger.audio(t.step, clips, self.cfg.data.sampling_rate)
            self.run_logger.flush()
        self.last_saved = t.step
        barrier(ctx)

    def _export(self) -> str:
        """Official-format fp16 weights (process_ckpt.savee layout) in RUN/weights/."""
        t = self.trainer
        path = self.run_dir / WEIGHTS_DIR / f"{self.cfg.top['name']}_e{t.iteration}_s{t.step}.pth"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.export_path = save_sovits(t.net_g, path, self.cfg, t.iteration, t.step)
        return self.export_path

    # ------------------------------------------------------------------ the end
    def _message(self, text: str) -> None:
        log_above_bar(self.log, self.bar, text)

    def _check_ranks_agree(self) -> None:
        check_ranks_agree({"G": self.trainer.net_g, "D": self.trainer.net_d}, self.ctx, self.log)

    def _result(self, stop_reason: str) -> TrainResult:
        t = self.trainer
        result = TrainResult(run_dir=self.run_dir, step=t.step, epoch=t.iteration, stop_reason=stop_reason,
                             resumed_from=self.resumed_from, export_path=self.export_path or self._latest_export(),
                             seconds=time.perf_counter() - self.started)
        if self.ctx.is_main:
            result.first_mel, result.last_mel = mel_summary(self.run_dir)
            if result.first_mel and result.last_mel:
                self.log.info(f"loss_mel (c_mel · L1 of the log-mel): {result.first_mel[1]:.2f} at step "
                              f"{result.first_mel[0]} → {result.last_mel[1]:.2f} at step {result.last_mel[0]} "
                              f"(mean of the last 3 log lines)")
            self.log.info(f"done: step {t.step}, epoch {t.iteration} ({stop_reason}) in {result.seconds:.0f} s; "
                          f"weights: {result.export_path}")
        return result

    def _latest_export(self) -> str | None:
        folder = self.run_dir / WEIGHTS_DIR
        files = sorted(folder.glob("*.pth"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
        return str(files[-1]) if files else None


def mel_summary(run_dir: Path) -> tuple[tuple[int, float] | None, tuple[int, float] | None]:
    """((step, mel) of the first logged step, (last step, mean mel of the last three log lines)).

    Log lines without a mel value (a NaN is written as null) are left out; with fewer than three
    lines, the mean of those there are.
    """
    rows = [r for r in read_metrics(run_dir) if r.get("loss/g/mel") is not None]
    if not rows:
        return None, None
    last = rows[-3:]
    return (rows[0]["step"], rows[0]["loss/g/mel"]), (rows[-1]["step"], sum(r["loss/g/mel"] for r in last) / len(last))
