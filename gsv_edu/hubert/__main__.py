"""Command line: `python -m gsv_edu.hubert pretrain ...` and `python -m gsv_edu.hubert features ...`.

    python -m gsv_edu.hubert pretrain --list data/sample/sample.list --out runs/hubert_small
    python -m gsv_edu.hubert pretrain --list ... --out runs/hubert_it2 --teacher runs/hubert_small/model --teacher-layer 2
    python -m gsv_edu.hubert features --model runs/hubert_small/model some.wav --out some.pt
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

from gsv_edu import audio
from gsv_edu.hubert import HuBERT, load_default
from gsv_edu.hubert.features import training_features
from gsv_edu.hubert.pretrain import PretrainConfig, run


def _pretrain_parser(sub) -> None:
    p = sub.add_parser("pretrain", help="HuBERT pretraining (masked prediction of k-means targets)",
                       description="Pretrain a small HuBERT on a list file (wav_path|speaker|language|text). "
                                   "Held-out prompts (prompts.tsv beside the list) are left out. Re-running with "
                                   "the same --out resumes.")
    p.add_argument("--list", required=True, help="list file, e.g. data/sample/sample.list")
    p.add_argument("--out", required=True, help="output folder (targets, checkpoint, model/, loss.png)")
    p.add_argument("--prompts", help="prompts.tsv with train/heldout splits (default: beside the list file)")
    p.add_argument("--teacher", help="iteration 2: a HuBERT folder whose hidden states are clustered for the targets")
    p.add_argument("--teacher-layer", type=int, help="teacher layer to cluster (default: last)")
    p.add_argument("--export-layers", type=int, help="keep only this many transformer layers in model/")
    p.add_argument("--fp16", action="store_true", help="store model/ weights as float16 (half the size)")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    for f in dataclasses.fields(PretrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "conv_dim":
            p.add_argument(flag, type=int, nargs=7, default=None, help=f"7 conv widths (default {f.default})")
        else:
            p.add_argument(flag, type=type(f.default), default=None, help=f"(default {f.default})")


def _features_parser(sub) -> None:
    p = sub.add_parser("features", help="content features [1, D, T] of audio files, as the official data preparation")
    p.add_argument("audio", nargs="+", help="audio files (any rate; loaded at 32 kHz)")
    p.add_argument("--model", help="HuBERT folder (default: the shipped small model)")
    p.add_argument("--out", help="save the features here (.pt; only with one audio file)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gsv_edu.hubert", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    _pretrain_parser(sub)
    _features_parser(sub)
    args = ap.parse_args(argv)

    if args.command == "pretrain":
        if args.threads:
            torch.set_num_threads(args.threads)
        overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainConfig)
                     if getattr(args, f.name) is not None}
        if "conv_dim" in overrides:
            overrides["conv_dim"] = tuple(overrides["conv_dim"])
        cfg = PretrainConfig(**overrides)
        result = run(args.list, args.out, cfg, prompts_path=args.prompts, teacher=args.teacher,
                     teacher_layer=args.teacher_layer, export_layers=args.export_layers,
                     resume=not args.no_resume, dtype=torch.float16 if args.fp16 else torch.float32)
        last = result.history[-1]
        print(f"done: step {last['step']}, loss {last['loss']:.3f}, masked accuracy {last['acc']:.2f}, "
              f"{result.seconds:.0f} s of training in this run; model in {args.out}/model")
        return 0

    if args.command == "features":
        if args.out and len(args.audio) != 1:
            ap.error("--out needs exactly one audio file")
        model = HuBERT.from_pretrained(args.model) if args.model else load_default()
        for path in args.audio:
            feats = training_features(model, audio.load_audio(path, audio.SOVITS_SR), path)  # [1, D, T]
            print(f"{path}: features {tuple(feats.shape)} (D = {feats.shape[1]}, {feats.shape[2]} frames at 50 Hz)")
            if args.out:
                torch.save(feats, args.out)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
