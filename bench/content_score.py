"""Does it hear content? ABX-style content score of our small HuBERT against baselines.

    .venv/bin/python bench/content_score.py [--model gsv_edu/assets/hubert_small] [--layers] [--split heldout]

On the parallel English voices of the sample corpus (en_awb, en_rms, en_slt read the same
prompts), for sentence p read by speakers s ≠ s' and another sentence q: is the DTW distance
between the features of (p, s) and (p, s') smaller than between (p, s) and (q, s)? Accuracy
over all triplets, chance 0.5 (see gsv_edu/hubert/content_score.py). The held-out prompts
(data/sample/prompts.tsv) were never seen in pretraining; `--split train` scores the prompts
that were (more triplets, but seen).

Encoders compared:
- our pretrained small HuBERT (last hidden state, the features SoVITS reads);
- the same architecture randomly initialised (seed 0): what the architecture alone gives;
- MFCC: 13 coefficients + Δ + ΔΔ (39 dims), no normalisation, 25 ms / 20 ms;
- log-mel: 80 bands, 25 ms / 20 ms, log(max(mel, 1e-5)).
Each with two frame distances: cosine (the usual choice for learned features) and Euclidean.
HuBERT features are computed on the official input (32 kHz file → loudness mix × 1145.14 →
16 kHz, `gsv_edu.hubert.features.hubert_input`); MFCC and log-mel on the 16 kHz file.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from gsv_edu.hubert import DEFAULT_MODEL_DIR, HuBERT  # noqa: E402
from gsv_edu.hubert import targets as T  # noqa: E402
from gsv_edu.hubert.content_score import hubert_encoder, parallel_utterances, score_encoders  # noqa: E402
from gsv_edu.hubert.pretrain import load_corpus  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL_DIR), help="HuBERT folder (default: the shipped model)")
    ap.add_argument("--list", default=os.path.join(ROOT, "data", "sample", "sample.list"))
    ap.add_argument("--split", default="heldout", choices=["heldout", "train"])
    ap.add_argument("--layers", action="store_true", help="also score every layer of the model")
    ap.add_argument("--metrics", nargs="+", default=["cosine", "euclidean"])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    model = HuBERT.from_pretrained(args.model)
    torch.manual_seed(0)
    random_model = HuBERT(model.config).eval()
    utts = parallel_utterances(load_corpus(args.list), args.split)
    encoders = {
        f"small HuBERT, pretrained ({os.path.basename(os.path.normpath(args.model))})": hubert_encoder(model),
        "small HuBERT, random init": hubert_encoder(random_model),
        "MFCC 13+Δ+ΔΔ": lambda u: T.mfcc(u.wav16k),
        "log-mel 80": lambda u: T.log_mel(u.wav16k),
    }
    if args.layers:
        for n in range(model.config.num_hidden_layers + 1):
            encoders[f"  pretrained, after layer {n}"] = hubert_encoder(model, n)
    print(f"content score on the {args.split} prompts: {len(utts)} utterances, "
          f"load avg {os.getloadavg()[0]:.1f}")
    header = f"| {'encoder':<44} | {'dim':>4} | " + " | ".join(f"{m:>9}" for m in args.metrics) + " |"
    print(header)
    print("|" + "-" * 46 + "|------|" + "|".join("-" * 11 for _ in args.metrics) + "|")
    t0 = time.perf_counter()
    for name, encode in encoders.items():
        feats_cache = {}

        def cached(u, encode=encode):
            if u.name not in feats_cache:
                feats_cache[u.name] = encode(u)
            return feats_cache[u.name]

        scores = {m: score_encoders(utts, {name: cached}, m)[name] for m in args.metrics}
        dim = next(iter(feats_cache.values())).shape[1]
        first = next(iter(scores.values()))
        print(f"| {name:<44} | {dim:>4} | " + " | ".join(f"{100 * s.accuracy:8.1f}%" for s in scores.values())
              + " |", flush=True)
    print(f"({first.triplets} triplets per cell: {first.prompts} sentences × {first.speakers} voices; "
          f"chance 50%; {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
