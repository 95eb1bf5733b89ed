"""Speed of our HuBERT-base against transformers' HubertModel on the same weights (CPU).

    .venv/bin/python bench/hubert.py [--seconds 3.7 10] [--repeats 7] [--threads 2]

Builds HuBERT-base (the chinese-hubert-base shape: 7×512 convs, 768 hidden, 12 layers) with random
weights, writes it in Hugging Face format, loads the same folder with
`transformers.HubertModel.from_pretrained` (transformers is a bench-only dependency), checks the
outputs agree, then times both on the same waveforms, interleaved, keeping the best of
`--repeats` runs of each (the machine is shared and noisy). Reports ours / transformers time.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from gsv_edu.hubert import HuBERT, HuBERTConfig  # noqa: E402


def best_time(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, nargs="+", default=[3.7, 10.0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        from transformers import HubertModel
    except ImportError:
        sys.exit("bench/hubert.py needs transformers (pip install transformers==5.23.0)")
    import transformers

    torch.manual_seed(0)
    ours = HuBERT(HuBERTConfig()).eval()
    with tempfile.TemporaryDirectory() as tmp:
        ours.save_pretrained(tmp)
        theirs = HubertModel.from_pretrained(tmp).eval()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads {args.threads}, "
          f"attention: {theirs.config._attn_implementation}, load avg {os.getloadavg()[0]:.2f}")
    print(f"{'audio':>7} {'frames':>6} {'ours ms':>9} {'transformers ms':>16} {'ratio ours/tf':>14} {'max |diff|':>11}")
    for sec in args.seconds:
        wav = 0.1 * torch.randn(1, int(sec * 16000), generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            a = ours(wav)
            b = theirs(wav).last_hidden_state
            diff = (a - b).abs().max().item()
            t_ours, t_tf = [], []
            for _ in range(args.repeats):  # interleave so that load changes hit both alike
                t_ours += best_time(lambda: ours(wav), 1)
                t_tf += best_time(lambda: theirs(wav), 1)
        o, t = min(t_ours), min(t_tf)
        print(f"{sec:6.1f}s {a.shape[1]:6d} {o * 1e3:9.1f} {t * 1e3:16.1f} {o / t:14.3f} {diff:11.2e}")
    print(f"load avg after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
