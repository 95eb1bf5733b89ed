"""Command line of SoVITS training: `python -m gsv_edu.train --data DIR --out RUN`.

    python -m gsv_edu.train                       # the sample corpus, tiny preset, CPU, ~10 min
    python -m gsv_edu.train --preset tiny-v2pro   # the same as v2Pro (speaker vectors of the tiny SV model)
    python -m gsv_edu.train --data DIR --out RUN --preset official-v2 \\
        --pretrained-g s2G2333k.pth --pretrained-d s2D2333k.pth --set train.batch_size=8
    torchrun --nproc_per_node 2 -m gsv_edu.train --data DIR --out RUN   # several processes/GPUs

Without --data, the sample corpus is prepared first (`gsv_edu.data.prepare`, once) and the tiny
preset trained on it; with `--preset tiny-v2pro` it is prepared as v2Pro with the randomly
initialised tiny speaker-verification model (`--sv tiny`: a speaker-verification model cannot be
trained meaningfully on the five speakers of the sample corpus). The training itself is `gsv_edu.train.run.train` (see the package
docstring, `gsv_edu.train`).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from gsv_edu import config as config_module
from gsv_edu.config import ConfigError
from gsv_edu.data.layout import TEXT_FILE
from gsv_edu.data.prepare import prepare
from gsv_edu.train.run import TrainingDiverged, train

__all__ = ["main", "build_parser", "DEFAULT_LIST", "DEFAULT_PREPARED", "DEFAULT_RUN"]

DEFAULT_LIST = Path("data") / "sample" / "sample.list"
DEFAULT_PREPARED = Path("runs") / "sample_prepared"
DEFAULT_RUN = Path("runs") / "sample_tiny"
DEFAULT_PREPARED_V2PRO = Path("runs") / "sample_prepared_v2pro"  # with 7-sv_cn/ of the tiny SV model
DEFAULT_RUN_V2PRO = Path("runs") / "sample_tiny_v2pro"
TINY_SV_DIM = 1280  # forward3 width of gsv_edu.sv's tiny ERes2NetV2


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------

def _find_sample_list() -> Path:
    for candidate in (DEFAULT_LIST, config_module.PACKAGE_DIR.parent / DEFAULT_LIST):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{DEFAULT_LIST}: the sample corpus list was not found (run from the repository "
                            f"root, or give --data DIR --out RUN)")


def _prepare_sample(prepared: Path, quiet: bool, progress: bool, version: str = "v2", sv: str | None = None) -> None:
    list_path = _find_sample_list()
    print(f"preparing {list_path} into {prepared} (done once; later runs reuse it)", file=sys.stderr)
    report = prepare(list_path, prepared, version=version, sv=sv, progress=progress and not quiet)
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
    """The command line (`python -m gsv_edu.train`, `gsv-train`); returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.threads < 1:
        print(f"error: --threads must be ≥ 1, got {args.threads}", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    try:
        cfg = config_module.config_from_arguments(args)
        if args.data is None:
            pro = cfg.version in ("v2Pro", "v2ProPlus")
            if pro and cfg.model.sv_dim != TINY_SV_DIM:
                raise ConfigError(f"without --data the sample corpus is prepared with the tiny speaker-verification "
                                  f"model ({TINY_SV_DIM}-dim vectors), but model.sv_dim is {cfg.model.sv_dim}: use "
                                  f"--preset tiny-v2pro, or prepare your data with --version {cfg.version} --sv "
                                  f"pretrained_eres2netv2w24s4ep4.ckpt and give --data")
            data_dir = DEFAULT_PREPARED_V2PRO if pro else DEFAULT_PREPARED
            run_dir = Path(args.out) if args.out else (DEFAULT_RUN_V2PRO if pro else DEFAULT_RUN)
            if int(os.environ.get("RANK", "0")) == 0:
                _prepare_sample(data_dir, args.quiet, not args.no_progress, *((cfg.version, "tiny") if pro else ()))
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
    except KeyboardInterrupt:
        return 130
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0 and args.quiet and result.first_mel and result.last_mel:
        print(f"loss_mel {result.first_mel[1]:.3f} (step {result.first_mel[0]}) → {result.last_mel[1]:.3f} "
              f"(step {result.last_mel[0]}); weights: {result.export_path}", file=sys.stderr)
    return 0


def _wait_for_prepared(folder: Path, timeout: float = 3600.0, name: str = TEXT_FILE) -> None:
    """Other ranks of a torchrun launch wait until rank 0 has prepared the sample data (until `name` exists)."""
    deadline = time.time() + timeout
    while not (folder / name).is_file():
        if time.time() > deadline:
            raise RuntimeError(f"{folder}: rank 0 did not finish preparing the data")
        time.sleep(2)

