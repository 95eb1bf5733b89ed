"""Command line of GPT (s1) training: `python -m gsv_edu.train_gpt --data PREPARED --out RUN`.

    python -m gsv_edu.train_gpt                   # the sample corpus, tiny preset, CPU
    python -m gsv_edu.train_gpt --data DIR --out RUN --preset official-v2 \\
        --pretrained-s1 s1v3.ckpt --set train.epochs=15
    python -m gsv_edu.train_gpt --data DIR --out RUN --set train.optimizer=adamw --set train.adamw_lr=3e-4
    torchrun --nproc_per_node 2 -m gsv_edu.train_gpt --data DIR --out RUN   # several processes/GPUs

The prepared folder needs semantic codes (`python -m gsv_edu.prepare --list LIST --out DIR
--sovits SOVITS.pth`). Without --data, the sample corpus is prepared with the shipped tiny
SoVITS's codebook first (once) and the tiny GPT preset trained on it. Resumes automatically from
the newest checkpoint in --out. The training itself is `gsv_edu.train.gpt` (what is mirrored,
the run folder, the checkpoints).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from gsv_edu.data.layout import SEMANTIC_FILE
from gsv_edu.data.prepare import prepare
from gsv_edu.gpt.config import PRESETS, GPTConfigError
from gsv_edu.pretrained import TINY_SOVITS_PATH
from gsv_edu.train.cli import DEFAULT_PREPARED, _find_sample_list, _wait_for_prepared
from gsv_edu.train.gpt import TrainingDiverged, gpt_config, train_gpt

__all__ = ["main", "build_parser", "DEFAULT_RUN"]

DEFAULT_RUN = Path("runs") / "sample_gpt_tiny"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gsv_edu.train_gpt",
        description="Train the GPT stage (s1) of GPT-SoVITS on a prepared folder with semantic codes. Without "
                    f"--data: prepares the sample corpus into {DEFAULT_PREPARED} (with the shipped tiny SoVITS's "
                    f"codes) and trains the tiny preset into {DEFAULT_RUN}. Resumes automatically from the newest "
                    f"checkpoint in --out.")
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="prepared folder with 6-name2semantic.tsv (python -m gsv_edu.prepare ... --sovits CKPT)")
    parser.add_argument("--out", default=None, metavar="RUN",
                        help=f"run folder: checkpoints, weights, logs (default with the sample data: {DEFAULT_RUN})")
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS),
                        help="model and training preset (default: tiny, or the file given with --config)")
    parser.add_argument("--config", default=None, metavar="YAML", help="an official s1 YAML (e.g. s1longer-v2.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one value, e.g. --set train.batch_size=4, --set train.optimizer=adamw, "
                             "--set train.max_steps=100 (repeatable)")
    parser.add_argument("--pretrained-s1", default=None, metavar="FILE",
                        help="initial weights: an official s1 export / pretrained s1 (ignored when resuming)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA if available, else CPU), cpu, cuda, cuda:N (under torchrun: cuda:LOCAL_RANK)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process (default 1)")
    parser.add_argument("--workers", type=int, default=0,
                        help="data-loading processes (default 0: the items are small and in memory; official: 4)")
    parser.add_argument("--no-tensorboard", action="store_true", help="write metrics.jsonl and the log only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--quiet", action="store_true", help="warnings and the final summary only")
    return parser


def _prepare_sample(prepared: Path, quiet: bool, progress: bool) -> None:
    """The sample corpus with the semantic codes of the shipped tiny SoVITS (resumable, so done once)."""
    list_path = _find_sample_list()
    if not quiet:
        print(f"preparing {list_path} into {prepared} with the codes of {TINY_SOVITS_PATH.name} (done once)",
              file=sys.stderr)
    report = prepare(list_path, prepared, sovits=TINY_SOVITS_PATH, progress=progress and not quiet)
    if not quiet:
        print(report.summary(), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads < 1 or args.workers < 0:
        print("error: --threads must be ≥ 1 and --workers ≥ 0", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    try:
        preset = None if args.config else (args.preset or "tiny")
        cfg = gpt_config(preset, args.config, args.overrides)
        if args.data is None:
            data_dir, run_dir = DEFAULT_PREPARED, Path(args.out) if args.out else DEFAULT_RUN
            if int(os.environ.get("RANK", "0")) == 0:
                _prepare_sample(data_dir, args.quiet, not args.no_progress)
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                _wait_for_prepared(data_dir, name=SEMANTIC_FILE)
        else:
            if args.out is None:
                raise GPTConfigError("--out RUN is required with --data (the folder for checkpoints, weights and logs)")
            data_dir, run_dir = Path(args.data), Path(args.out)
        result = train_gpt(cfg, data_dir, run_dir, pretrained_s1=args.pretrained_s1, device=args.device,
                           progress=not args.no_progress, quiet=args.quiet, tensorboard=not args.no_tensorboard,
                           num_workers=args.workers)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except (GPTConfigError, FileNotFoundError, ValueError, RuntimeError) as e:  # GPTFileError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0 and args.quiet and result.first_loss and result.last_loss:
        print(f"total_loss {result.first_loss[1]:.1f} (step {result.first_loss[0]}) → {result.last_loss[1]:.1f} "
              f"(step {result.last_loss[0]}); weights: {result.export_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
