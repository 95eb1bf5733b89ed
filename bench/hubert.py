"""Speed of our HuBERT-base against transformers' HubertModel on the same weights (CPU).

    .venv/bin/python bench/hubert.py [--seconds 3.7 10] [--repeats 7] [--threads 2]

Builds HuBERT-base (the chinese-hubert-base shape: 7×512 convs, 768 hidden, 12 layers) with random
weights, writes it in Hugging Face format, loads the same folder with
`transformers.HubertModel.from_pretrained` (transformers is a bench-only dependency), checks the
outputs agree, then times both on the same waveforms, interleaved, keeping the best of
`--repeats` runs of each (the machine is shared and noisy). Reports ours / transformers for the
best wall time and for the best CPU time of this process (less sensitive to other processes on
a shared machine; with --threads 1 it is the work done).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from gsv_edu.hubert import HuBERT, HuBERTConfig  # noqa: E402
from common import timed  # noqa: E402


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
    print(f"{'audio':>7} {'frames':>6} {'ours ms':>9} {'tf ms':>9} {'wall ours/tf':>13} "
          f"{'ours cpu ms':>12} {'tf cpu ms':>10} {'cpu ours/tf':>12} {'max |diff|':>11}")
    for sec in args.seconds:
        wav = 0.1 * torch.randn(1, int(sec * 16000), generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            a = ours(wav)
            b = theirs(wav).last_hidden_state
            diff = (a - b).abs().max().item()
            t_ours, t_tf = [], []
            for _ in range(args.repeats):  # interleave so that load changes hit both alike
                t_ours.append(timed(lambda: ours(wav)))
                t_tf.append(timed(lambda: theirs(wav)))
        ow, tw = min(t[0] for t in t_ours), min(t[0] for t in t_tf)
        oc, tc = min(t[1] for t in t_ours), min(t[1] for t in t_tf)
        print(f"{sec:6.1f}s {a.shape[1]:6d} {ow * 1e3:9.1f} {tw * 1e3:9.1f} {ow / tw:13.3f} "
              f"{oc * 1e3:12.1f} {tc * 1e3:10.1f} {oc / tc:12.3f} {diff:11.2e}")
    print(f"load avg after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
