"""Train SoVITS (GPT-SoVITS stage s2): `python -m gsv_edu.train --data DIR --out RUN`.

Mirrors `GPT_SoVITS/s2_train.py` (reference §8): the loop over epochs and batches around the
step of `gsv_edu.trainer.Trainer`, the checkpoints (`RUN/logs_s2_{version}/G_*.pth`,
`D_*.pth`), the exported weights (`RUN/weights/{name}_e{epoch}_s{step}.pth`, the format the
official inference UI loads) and the logs (`RUN/train.log`, TensorBoard in RUN,
`RUN/metrics.jsonl`).

    python -m gsv_edu.train                       # the sample corpus, tiny preset, CPU, ~10 min
    python -m gsv_edu.train --data DIR --out RUN --preset official-v2 \\
        --pretrained-g s2G2333k.pth --pretrained-d s2D2333k.pth --set train.batch_size=8
    torchrun --nproc_per_node 2 -m gsv_edu.train --data DIR --out RUN   # several processes/GPUs

What the official trainer does not do and this one does:
- resumes automatically from the newest checkpoint in RUN, exactly (step, data position,
  optimizers, schedulers, GradScaler, RNG states), and says so;
- `train.max_steps` stops after that many optimizer steps in total, with a checkpoint;
  `train.save_every_steps` checkpoints and exports every N steps; `train.keep_last` keeps the
  newest N checkpoints (official: all, or one fixed "latest" name with if_save_latest — ignored);
- atomic writes; a non-finite loss skips the step with a warning, and
  `train.max_nonfinite_steps` of them in a row stop the run without touching the checkpoints;
- one process on the CPU by default, `torchrun` for several (official: its own spawn).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import config as config_module
from .config import Config, ConfigError
from .distributed import DistributedContext, barrier, gather_objects, init_distributed
from .logging_utils import RunLogger, read_metrics, setup_logging
from .trainer import Trainer, weights_fingerprint
from .training_checkpoints import (capture_rng_state, checkpoint_dir, latest_checkpoint, load_pair,
                                   prune_checkpoints, restore_rng_state, save_pair)

__all__ = ["train", "TrainResult", "TrainingDiverged", "main", "DEFAULT_LIST", "DEFAULT_PREPARED", "DEFAULT_RUN"]

DEFAULT_LIST = Path("data") / "sample" / "sample.list"
DEFAULT_PREPARED = Path("runs") / "sample_prepared"
DEFAULT_RUN = Path("runs") / "sample_tiny"
CONFIG_FILE = "config.json"
WEIGHTS_DIR = "weights"


class TrainingDiverged(RuntimeError):
    """Too many consecutive steps had a non-finite loss; the run stopped (checkpoints untouched)."""


@dataclass
class TrainResult:
    """What `train` did. Mel losses are the logged `loss/g/mel` (= c_mel · L1) values."""

    run_dir: Path
    step: int
    epoch: int
    stop_reason: str                 # "max_steps", "epochs" or "already done"
    resumed_from: int | None = None  # the checkpoint step the run continued from
    export_path: str | None = None
    first_mel: tuple[int, float] | None = None  # (step, value) of the first logged mel loss of the run folder
    last_mel: tuple[int, float] | None = None   # (last step, mean of the last three logged values)
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------

class EpochBatches:
    """The bucket sampler's batches of one epoch, optionally without the first `skip` ones.

    Used as the DataLoader's `batch_sampler`; skipping happens on the index lists, so a resumed
    run does not load the audio of the batches it already trained on.
    """

    def __init__(self, sampler):
        self.sampler = sampler
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.sampler.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        return iter(self.sampler.batches()[self.skip:])

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


def _content_width(data_dir: Path) -> tuple[int | None, str]:
    """(content-feature width D, what made it) of a prepared folder: prepare_info.json, else one .pt file."""
    from .prepare import read_prepare_info

    info = read_prepare_info(data_dir)
    if info and info.get("ssl_dim"):
        return int(info["ssl_dim"]), str(info.get("content_encoder", "?"))
    ssl_dir = data_dir / "4-cnhubert"
    for name in sorted(os.listdir(ssl_dir)) if ssl_dir.is_dir() else []:
        if name.endswith(".pt"):
            t = torch.load(ssl_dir / name, map_location="cpu", weights_only=True)
            return int(t.shape[-2]), f"{ssl_dir / name}"
    return None, ""


def _check_data(cfg: Config, data_dir: Path) -> None:
    if not data_dir.is_dir():
        raise FileNotFoundError(f"--data {data_dir}: no such folder (prepare one with: python -m gsv_edu.prepare "
                                f"--list LIST --out {data_dir})")
    width, source = _content_width(data_dir)
    if width is not None and width != cfg.model.ssl_dim:
        raise ConfigError(f"{data_dir} holds {width}-dim content features (from {source}) but model.ssl_dim is "
                          f"{cfg.model.ssl_dim}: add --set model.ssl_dim={width}, or prepare the data with the "
                          f"content encoder this config expects (chinese-hubert-base: 768; gsv_edu's small HuBERT: 256)")


def _make_loader(cfg: Config, data_dir: Path, ctx: DistributedContext):
    from .dataset import TextAudioSpeakerCollate, TextAudioSpeakerDataset
    from .sampler import DistributedBucketSampler, bucket_boundaries

    dataset = TextAudioSpeakerDataset(data_dir, cfg, version=cfg.version)
    # the lowest bucket edge is the decoder window: items of ≤ segment_frames frames are dropped
    sampler = DistributedBucketSampler(dataset, cfg.train.batch_size, bucket_boundaries(cfg.segment_frames),
                                       num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True)
    batches = EpochBatches(sampler)
    workers = cfg.train.num_workers
    generator = torch.Generator().manual_seed(cfg.train.seed + ctx.rank)  # keeps the global RNG untouched
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=batches, collate_fn=TextAudioSpeakerCollate(), num_workers=workers,
        pin_memory=ctx.device.type == "cuda", persistent_workers=workers > 0,
        prefetch_factor=3 if workers > 0 else None, generator=generator)
    return dataset, sampler, batches, loader


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------

def _check_run_config(cfg: Config, run_dir: Path) -> None:
    """A run folder keeps its model: refuse to resume it with other model/data settings."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return
    try:
        old = Config.load(path)
    except ConfigError:
        return
    for section in ("model", "data"):
        a, b = getattr(old, section), getattr(cfg, section)
        diffs = [k for k in vars(a) if k != "exp_dir" and getattr(a, k) != getattr(b, k)]
        if diffs:
            k = diffs[0]
            raise ConfigError(f"{run_dir} was trained with {section}.{k} = {getattr(a, k)!r}, this run has "
                              f"{getattr(b, k)!r}: use another --out folder (or the same settings) to continue it")
    if old.train.disc_channel_divisor != cfg.train.disc_channel_divisor:
        raise ConfigError(f"{run_dir} was trained with train.disc_channel_divisor = {old.train.disc_channel_divisor}; "
                          f"this run has {cfg.train.disc_channel_divisor}: use another --out folder")


def _mel_summary(run_dir: Path) -> tuple[tuple[int, float] | None, tuple[int, float] | None]:
    """((step, mel) of the first logged step, (last step, mean mel of the last three log intervals))."""
    rows = [r for r in read_metrics(run_dir) if r.get("loss/g/mel") is not None]
    if not rows:
        return None, None
    last = rows[-3:] if len(rows) > 3 else rows[-1:]
    return (rows[0]["step"], rows[0]["loss/g/mel"]), (rows[-1]["step"], sum(r["loss/g/mel"] for r in last) / len(last))


def train(config: Config, data_dir: str | os.PathLike, run_dir: str | os.PathLike, *,
          pretrained_g: str | None = None, pretrained_d: str | None = None, device: str = "auto",
          progress: bool = True, quiet: bool = False, tensorboard: bool = True) -> TrainResult:
    """Train (or resume training) into `run_dir` on the prepared folder `data_dir`.

    Runs as one process, or as one rank of a `torchrun` launch (the process group is set up
    from the environment and torn down at the end). Raises `TrainingDiverged` when
    `train.max_nonfinite_steps` consecutive steps had a non-finite loss. `tensorboard=False`
    writes only metrics.jsonl and the log (no images or audio, which take time to render).
    """
    ctx = init_distributed(device)
    try:
        return _train(config, Path(data_dir), Path(run_dir), ctx, pretrained_g, pretrained_d, progress, quiet,
                      tensorboard)
    finally:
        ctx.close()


def _train(cfg: Config, data_dir: Path, run_dir: Path, ctx: DistributedContext, pretrained_g, pretrained_d,
           progress: bool, quiet: bool, tensorboard: bool) -> TrainResult:
    started = time.perf_counter()
    cfg.validate()
    tc = cfg.train
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    barrier(ctx)
    log = setup_logging(run_dir, ctx.is_main, quiet)
    _check_data(cfg, data_dir)
    _check_run_config(cfg, run_dir)
    name = cfg.top.get("name") or run_dir.resolve().name
    cfg.top["name"] = name
    cfg.top.setdefault("version", cfg.version)
    cfg.top["s2_ckpt_dir"] = str(run_dir)
    cfg.top["save_weight_dir"] = str(run_dir / WEIGHTS_DIR)
    cfg.data.exp_dir = str(data_dir)
    cfg.train.pretrained_s2G = pretrained_g or tc.pretrained_s2G
    cfg.train.pretrained_s2D = pretrained_d or tc.pretrained_s2D
    if ctx.device.type == "cuda":  # official: TF32 allowed, medium matmul precision, no cudnn benchmark
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = False
        torch.set_float32_matmul_precision("medium")
    elif tc.fp16_run:
        log.info("note: train.fp16_run is ignored on the CPU (float32)")

    torch.manual_seed(tc.seed)  # official: the same seed on every rank
    trainer = Trainer(cfg, ctx)
    ckpt_dir = checkpoint_dir(run_dir, cfg.version)
    latest = latest_checkpoint(ckpt_dir)
    dataset, sampler, batches, loader = _make_loader(cfg, data_dir, ctx)
    steps_per_epoch = len(sampler)
    rng_states = None
    if latest is not None:
        pair = load_pair(ckpt_dir, latest)
        trainer.load_checkpoint_states(pair.g, pair.d, pair.g_path, pair.d_path)
        if pair.is_official_only:
            trainer.step = (trainer.epoch - 1) * steps_per_epoch  # official: global_step from the epoch
            log.info(f"resuming from the official checkpoint {pair.g_path} (epoch {trainer.epoch - 1} done): "
                     f"starting epoch {trainer.epoch} at step {trainer.step}")
        else:
            rng = pair.g.get("rng") or []
            rng_states = rng[ctx.rank] if ctx.rank < len(rng) else (rng[0] if rng else None)
            if rng and len(rng) != ctx.world_size:
                log.warning(f"the checkpoint was written by {len(rng)} process(es), this run has {ctx.world_size}: "
                            f"the data order and random numbers will differ from an uninterrupted run")
            log.info(f"resuming from {pair.g_path}: step {trainer.step}, epoch {trainer.epoch}, "
                     f"batch {trainer.batch_in_epoch} of {steps_per_epoch}")
    else:
        for line in trainer.load_pretrained(cfg.train.pretrained_s2G or None, cfg.train.pretrained_s2D or None):
            log.info(line)
        log.info(f"starting a new run in {run_dir}")
    resumed_exact = latest is not None and not pair.is_official_only
    resumed_from = latest
    if ctx.is_main:
        cfg.save(run_dir / CONFIG_FILE)
    trainer.wrap_ddp()
    if not resumed_exact:
        trainer.step_schedulers()  # official quirk (reference §13.9): before the first epoch too
    if rng_states is not None:
        restore_rng_state(rng_states, ctx.device)

    n_g = sum(p.numel() for p in trainer.net_g.parameters())
    n_d = sum(p.numel() for p in trainer.net_d.parameters())
    log.info(f"{cfg.version} SoVITS: G {n_g / 1e6:.2f} M, D {n_d / 1e6:.2f} M parameters; {len(dataset)} items, "
             f"{steps_per_epoch} batches of {tc.batch_size} per epoch and process, {ctx.world_size} process(es) on "
             f"{ctx.device}" + (f", autocast {trainer.autocast_dtype}" if trainer.autocast_enabled else ", float32"))

    run_logger = RunLogger(run_dir, enabled=ctx.is_main, start_step=max(trainer.step, 0), tensorboard=tensorboard)
    media_wanted = run_logger.writer is not None
    total_steps = tc.max_steps if tc.max_steps is not None else tc.epochs * steps_per_epoch
    bar = None
    if ctx.is_main and progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=min(trainer.step, total_steps), unit="step", dynamic_ncols=True,
                   desc="train", file=sys.stderr)

    state = {"last_saved": trainer.step if latest is not None else None, "export": None}
    sums: dict[str, float] = {}
    count = 0
    nonfinite = 0
    last_batch, last_media = None, None
    step_time = time.perf_counter()

    def save(reason: str, media_batch=None, media: dict | None = None) -> None:
        """Checkpoint (and export) at the current step, on every rank together."""
        if not all(gather_objects(trainer.weights_finite(), ctx)):
            log.error(f"step {trainer.step}: the weights are not finite; NOT saving (the last good checkpoint is kept)")
            return
        rng = gather_objects(capture_rng_state(ctx.device), ctx)
        g_state, d_state = trainer.checkpoint_states(rng)
        if ctx.is_main:
            g_path, _ = save_pair(ckpt_dir, trainer.step, g_state, d_state)
            pruned = prune_checkpoints(ckpt_dir, tc.keep_last)
            msg = f"saved {g_path} and D_{trainer.step}.pth ({reason})"
            if tc.if_save_every_weights or reason == "end":
                state["export"] = _export(trainer, cfg, run_dir, name)
                msg += f"; exported {state['export']}"
            if pruned:
                msg += f"; removed checkpoints of step(s) {', '.join(map(str, pruned))}"
            _log(log, bar, msg)
            clips = {k: v for k, v in (media or {}).items() if k.startswith("audio/")}
            if media_batch is not None and media_wanted:
                clips["audio/gen_full"] = trainer.synthesize_item(media_batch)
            run_logger.audio(trainer.step, clips, cfg.data.sampling_rate)
            run_logger.flush()
        state["last_saved"] = trainer.step
        barrier(ctx)

    stop_reason = "epochs"
    if tc.max_steps is not None and trainer.step >= tc.max_steps:
        stop_reason = "already done"
        log.info(f"{run_dir} is already at step {trainer.step} ≥ train.max_steps = {tc.max_steps}: nothing to train "
                 f"(raise it with --set train.max_steps=N to continue, or use another --out)")
    else:
        first_epoch, skip = trainer.epoch, trainer.batch_in_epoch
        done = False
        for epoch in range(first_epoch, tc.epochs + 1):
            batches.set_epoch(epoch, skip if epoch == first_epoch else 0)
            trainer.epoch, trainer.batch_in_epoch = epoch, batches.skip
            for batch in loader:
                next_step = trainer.step + 1
                want_media = media_wanted and (next_step == 1 or next_step % tc.log_interval == 0
                                              or bool(tc.save_every_steps and next_step % tc.save_every_steps == 0)
                                              or next_step == tc.max_steps)
                result = trainer.train_step(batch, media=want_media)
                trainer.batch_in_epoch += 1
                if not result.ok:
                    nonfinite += 1
                    log.warning(f"step {next_step}: {result.reason}; update skipped "
                                f"({nonfinite} in a row, the limit is train.max_nonfinite_steps = {tc.max_nonfinite_steps})")
                    if nonfinite >= tc.max_nonfinite_steps:
                        raise TrainingDiverged(
                            f"training stopped: {nonfinite} consecutive steps with a non-finite loss or gradient "
                            f"(last: {result.reason}). No checkpoint was written since; the last good one is "
                            f"{_latest_path(ckpt_dir)}. Try a lower train.learning_rate, train.fp16_run=false or "
                            f"train.amp_dtype=bfloat16, and check the data.")
                    continue
                nonfinite = 0
                trainer.step += 1
                last_batch, last_media = batch, result.media
                for k, v in result.scalars.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(mel=f"{result.scalars['loss/g/mel']:.2f}", d=f"{result.scalars['loss/d/total']:.2f}",
                                    refresh=False)
                if ctx.is_main and (trainer.step == 1 or trainer.step % tc.log_interval == 0):
                    now = time.perf_counter()
                    means = {k: v / count for k, v in sums.items()}
                    means["learning_rate"] = trainer.learning_rate
                    seconds_per_step = (now - step_time) / count
                    run_logger.scalars(trainer.step, means, extra={"epoch": epoch, "s_per_step": round(seconds_per_step, 4)})
                    if result.media:
                        run_logger.images(trainer.step, {k: v for k, v in result.media.items() if k.startswith(("slice/", "all/"))})
                    _log(log, bar, _log_line(trainer, epoch, steps_per_epoch, means, seconds_per_step))
                    sums, count, step_time = {}, 0, now
                if tc.save_every_steps and trainer.step % tc.save_every_steps == 0:
                    save(f"every {tc.save_every_steps} steps", media_batch=batch, media=result.media)
                if tc.max_steps is not None and trainer.step >= tc.max_steps:
                    done = True
                    stop_reason = "max_steps"
                    break
            if done:
                break
            # end of the epoch (official order: save, then step the schedulers)
            if epoch % tc.save_every_epoch == 0 and state["last_saved"] != trainer.step:
                save(f"every {tc.save_every_epoch} epochs")
            trainer.step_schedulers()
            trainer.epoch, trainer.batch_in_epoch = epoch + 1, 0
        if stop_reason == "epochs":
            trainer.epoch, trainer.batch_in_epoch = tc.epochs, steps_per_epoch
        if state["last_saved"] != trainer.step:
            save("end", media_batch=last_batch, media=last_media)
        elif ctx.is_main and state["export"] is None:
            state["export"] = _export(trainer, cfg, run_dir, name)
            _log(log, bar, f"exported {state['export']}")
    if bar is not None:
        bar.close()
    run_logger.close()
    if ctx.is_distributed:  # a cheap end-of-run check that DDP kept every rank's weights identical
        prints = gather_objects((weights_fingerprint(trainer.net_g), weights_fingerprint(trainer.net_d)), ctx)
        g_prints, d_prints = [p[0] for p in prints], [p[1] for p in prints]
        agree = len(set(g_prints)) == 1 and len(set(d_prints)) == 1
        (log.info if agree else log.error)(
            f"weights of the {ctx.world_size} ranks: G {g_prints} D {d_prints} "
            f"({'identical' if agree else 'DIFFERENT: the processes went out of sync'})")

    result = TrainResult(run_dir=run_dir, step=trainer.step, epoch=trainer.epoch, stop_reason=stop_reason,
                         resumed_from=resumed_from, export_path=state["export"] or _latest_export(run_dir),
                         seconds=time.perf_counter() - started)
    if ctx.is_main:
        result.first_mel, result.last_mel = _mel_summary(run_dir)
        if result.first_mel and result.last_mel:
            log.info(f"loss_mel (c_mel · L1 of the log-mel): {result.first_mel[1]:.2f} at step {result.first_mel[0]} "
                     f"→ {result.last_mel[1]:.2f} at step {result.last_mel[0]} (mean of the last 3 log lines)")
        log.info(f"done: step {trainer.step}, epoch {trainer.epoch} ({stop_reason}) in {result.seconds:.0f} s; "
                 f"weights: {result.export_path}")
    return result


def _log(log, bar, message: str) -> None:
    if bar is not None:
        bar.clear()
    log.info(message)
    if bar is not None:
        bar.refresh()


def _log_line(trainer: Trainer, epoch: int, steps_per_epoch: int, means: dict, seconds_per_step: float) -> str:
    pct = 100.0 * trainer.batch_in_epoch / max(1, steps_per_epoch)
    return (f"step {trainer.step} | epoch {epoch} [{pct:.0f}%] | d {means['loss/d/total']:.3f} | "
            f"gen {means['loss/g/gen']:.3f} | fm {means['loss/g/fm']:.3f} | mel {means['loss/g/mel']:.3f} | "
            f"kl_ssl {means['loss/g/kl_ssl']:.3f} | kl {means['loss/g/kl']:.3f} | lr {means['learning_rate']:.3e} | "
            f"grad norm d {means['grad_norm_d']:.2f} g {means['grad_norm_g']:.2f} | {seconds_per_step:.2f} s/step")


def _export(trainer: Trainer, cfg: Config, run_dir: Path, name: str) -> str:
    """Official-format fp16 weights (process_ckpt.savee layout) in RUN/weights/."""
    from .checkpoints import save_sovits

    path = run_dir / WEIGHTS_DIR / f"{name}_e{trainer.epoch}_s{trainer.step}.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_sovits(trainer.net_g, path, cfg, trainer.epoch, trainer.step)


def _latest_path(folder: Path) -> str:
    step = latest_checkpoint(folder)
    return str(folder / f"G_{step}.pth") if step is not None else "(none yet)"


def _latest_export(run_dir: Path) -> str | None:
    folder = run_dir / WEIGHTS_DIR
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("*.pth"), key=lambda p: p.stat().st_mtime)
    return str(files[-1]) if files else None


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------

def _find_sample_list() -> Path:
    for candidate in (DEFAULT_LIST, config_module.PACKAGE_DIR.parent / DEFAULT_LIST):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{DEFAULT_LIST}: the sample corpus list was not found (run from the repository "
                            f"root, or give --data DIR --out RUN)")


def _prepare_sample(prepared: Path, quiet: bool, progress: bool) -> None:
    from .prepare import prepare

    list_path = _find_sample_list()
    print(f"preparing {list_path} into {prepared} (done once; later runs reuse it)", file=sys.stderr)
    report = prepare(list_path, prepared, progress=progress and not quiet)
    if not quiet:
        print(report.summary(), file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gsv_edu.train",
        description="Train SoVITS (GPT-SoVITS stage s2) on a prepared folder. Without --data: prepares the "
                    f"sample corpus ({DEFAULT_LIST}) into {DEFAULT_PREPARED} and trains the tiny preset into "
                    f"{DEFAULT_RUN}. Resumes automatically from the newest checkpoint in --out.")
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="prepared folder (python -m gsv_edu.prepare); default: the prepared sample corpus")
    parser.add_argument("--out", default=None, metavar="RUN",
                        help=f"run folder: checkpoints, weights, logs (default with the sample data: {DEFAULT_RUN})")
    config_module.add_config_arguments(parser)
    parser.add_argument("--pretrained-g", default=None, metavar="FILE", help="initial generator weights (official s2G)")
    parser.add_argument("--pretrained-d", default=None, metavar="FILE", help="initial discriminator weights (official s2D)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA if available, else CPU), cpu, cuda, cuda:N (under torchrun: cuda:LOCAL_RANK)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads per process (default 1: fastest on small or shared machines, where "
                             "more threads wait on each other; try more on an idle many-core machine)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--quiet", action="store_true", help="warnings and the final summary only")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads < 1:
        print(f"error: --threads must be ≥ 1, got {args.threads}", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    try:
        cfg = config_module.config_from_arguments(args)
        if args.data is None:
            data_dir = DEFAULT_PREPARED
            run_dir = Path(args.out) if args.out else DEFAULT_RUN
            if int(os.environ.get("RANK", "0")) == 0:
                _prepare_sample(data_dir, args.quiet, not args.no_progress)
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                _wait_for_prepared(data_dir)
        else:
            if args.out is None:
                raise ConfigError("--out RUN is required with --data (the folder for checkpoints, weights and logs)")
            data_dir, run_dir = Path(args.data), Path(args.out)
        result = train(cfg, data_dir, run_dir, pretrained_g=args.pretrained_g, pretrained_d=args.pretrained_d,
                       device=args.device, progress=not args.no_progress, quiet=args.quiet)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0 and args.quiet and result.first_mel and result.last_mel:
        print(f"loss_mel {result.first_mel[1]:.3f} (step {result.first_mel[0]}) → {result.last_mel[1]:.3f} "
              f"(step {result.last_mel[0]}); weights: {result.export_path}", file=sys.stderr)
    return 0


def _wait_for_prepared(folder: Path, timeout: float = 3600.0) -> None:
    """Other ranks of a torchrun launch wait until rank 0 has prepared the sample data."""
    deadline = time.time() + timeout
    while not (folder / "2-name2text.txt").is_file():
        if time.time() > deadline:
            raise RuntimeError(f"{folder}: rank 0 did not finish preparing the data")
        time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
