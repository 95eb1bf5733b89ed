"""Command line of the data preparation: `python -m gsv_edu.prepare --list LIST --out DIR`.

    python -m gsv_edu.prepare --list data/sample/sample.list --out runs/sample/data

A list file (`wav_path|speaker|language|text`) → the official prepared-data folder that SoVITS
training reads. The work is done by `gsv_edu.data.prepare.prepare` (what is made, and how it
mirrors the official scripts); the folder's layout is `gsv_edu.data.layout`.
"""
from __future__ import annotations

import argparse
import logging
import sys

from gsv_edu.config import SUPPORTED_VERSIONS
from gsv_edu.data.prepare import PrepareError, prepare

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gsv_edu.prepare",
        description="Prepare a GPT-SoVITS list file (wav_path|speaker|language|text) for SoVITS training, "
                    "in the official layout: 2-name2text.txt, 4-cnhubert/, 5-wav32k/ "
                    "(7-sv_cn/ for v2Pro, 6-name2semantic.tsv with --sovits).")
    parser.add_argument("--list", required=True, help="the list file (UTF-8, one utterance per line)")
    parser.add_argument("--out", required=True, help="output folder (created; an earlier run there is resumed)")
    parser.add_argument("--hubert", default=None, metavar="FOLDER",
                        help="content encoder: a Hugging Face HuBERT folder such as chinese-hubert-base "
                             "(default: gsv_edu's small pretrained HuBERT)")
    parser.add_argument("--sovits", default=None, metavar="CKPT",
                        help="a SoVITS export or checkpoint: also write the semantic codes (6-name2semantic.tsv)")
    parser.add_argument("--version", default="v2", choices=list(SUPPORTED_VERSIONS),
                        help="model version: text front-end / symbol table; v2Pro/v2ProPlus also write 7-sv_cn/ "
                             "(needs --sv)")
    parser.add_argument("--sv", default=None, metavar="CKPT|tiny",
                        help="v2Pro/v2ProPlus speaker-verification model for 7-sv_cn/: the official "
                             "pretrained_eres2netv2w24s4ep4.ckpt (20480-dim vectors), or 'tiny' (a randomly "
                             "initialised tiny ERes2NetV2, 1280-dim, for the tiny-v2pro preset and tests only: a "
                             "speaker-verification model cannot be trained meaningfully on five speakers)")
    parser.add_argument("--device", default="cpu", help="torch device for the models (default: cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = prepare(args.list, args.out, hubert=args.hubert, sovits=args.sovits, version=args.version,
                         sv=args.sv, device=args.device, progress=not args.no_progress)
    except PrepareError as e:
        if e.report is not None:
            print(e.report.summary())
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (FileNotFoundError, IsADirectoryError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
