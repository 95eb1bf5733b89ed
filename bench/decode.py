"""Speed of `SynthesizerTrn.decode` at the official v2 size on the CPU: real-time factor and the
fraction of the machine's fp32 matmul throughput it reaches.

    .venv/bin/python bench/decode.py [--codes 250] [--repeats 5] [--threads N]

Builds the official-size v2 SynthesizerTrn (configs/s2.json) with the deterministic rule weights
of the fixtures (tests/fixtures/sovits_v2/weight_rule.py; the numbers do not depend on the
weight values), prepares it the way `load_sovits` does for inference (eval mode, `enc_q`
dropped, weight norm folded), and times `decode` of `--codes` semantic tokens (250 tokens =
500 frames = 10 s of 32 kHz audio) with a 6 s reference spectrogram and 100 phonemes. Three
preparations are timed, interleaved, keeping the best of `--repeats` runs of each (the machine
is shared and noisy):

- `weight norm kept`  — eval mode only: every forward recomputes g·v/‖v‖ (what the official
                        inference does, it never removes the weight norm);
- `folded`            — weight norm folded (`fold_weight_norm`);
- `folded + channels-last dec` — also `use_channels_last_convs(model.dec)` (gsv_edu/sovits/channels_last.py).

The FLOPs of one decode are counted with torch.utils.flop_counter.FlopCounterMode (every conv,
transposed conv, linear, matmul); GFLOP/s ÷ the best 2048×2048 fp32 matmul throughput measured in
the same run gives the fraction of the machine's matmul throughput. The outputs of the three
preparations are compared (max |diff|). Wall time gives the real-time factor; the process CPU
time (decode and matmul measured the same way) is the steadier measure on a shared machine,
especially with `--threads 1`.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "sovits_v2"))
from gsv_edu.sovits.channels_last import use_channels_last_convs  # noqa: E402
from gsv_edu.sovits.weight_norm import fold_weight_norm  # noqa: E402
import weight_rule  # noqa: E402
from common import matmul_gflops, official_v2_generator, timed  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codes", type=int, default=250, help="semantic tokens (25 Hz); 250 = 10 s")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="default: torch.get_num_threads()")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    torch.manual_seed(0)
    kept = official_v2_generator()
    weight_rule.fill_module(kept)
    kept.enc_q = None  # load_sovits(inference=True) drops it
    kept.eval()
    # Weight norm cannot be un-folded, so the folded preparations use a second model.
    folded = official_v2_generator()
    folded.enc_q = None
    folded.load_state_dict(kept.state_dict())
    folded.eval()
    fold_weight_norm(folded)

    gen = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 1024, (1, 1, args.codes), generator=gen)  # [n_q, B, T_c]
    text = torch.randint(1, 732, (1, 100), generator=gen)  # [B, L]
    refer = torch.randn(1, 1025, 300, generator=gen).abs()  # [B, 1025, T_r], 6 s
    eps = torch.randn(1, 192, 2 * args.codes, generator=gen)  # the prior noise, fixed
    seconds = 2 * args.codes * 640 / 32000

    names = ["weight norm kept", "folded", "folded + channels-last dec"]

    def decode_with(name):
        model = kept if name == "weight norm kept" else folded
        use_channels_last_convs(model.dec, enabled=(name == "folded + channels-last dec"))
        return model.decode(codes, text, refer, noise_scale=0.5, eps=eps)

    with FlopCounterMode(display=False) as counter:
        decode_with("folded")
    gflop = counter.get_total_flops() / 1e9

    outputs = {name: decode_with(name) for name in names}  # also a warm-up
    times = {name: [] for name in names}
    mm = []
    for _ in range(args.repeats):
        mm.append(matmul_gflops(repeats=3))
        for name in names:
            times[name].append(timed(lambda: decode_with(name)))
    peak = max(m[0] for m in mm)
    peak_cpu = max(m[1] for m in mm)

    print(f"torch {torch.__version__}, threads {threads} (torch.get_num_threads()), "
          f"load avg {os.getloadavg()[0]:.2f}, best of {args.repeats}")
    print(f"decode of {args.codes} codes = {2 * args.codes} frames = {seconds:.1f} s of audio; "
          f"{gflop:.1f} GFLOP per decode")
    print(f"2048x2048 fp32 matmul: best {peak:.1f} GFLOP/s by wall time, {peak_cpu:.1f} GFLOP per CPU-second")
    ref = outputs["weight norm kept"]
    print(f"{'preparation':<28} {'wall s':>7} {'RTF':>6} {'GFLOP/s':>8} {'of matmul':>9} "
          f"{'CPU s':>7} {'of matmul (CPU time)':>21} {'max |diff|':>11}")
    for name in names:
        best = min(t[0] for t in times[name])
        best_cpu = min(t[1] for t in times[name])
        diff = (outputs[name] - ref).abs().max().item()
        print(f"{name:<28} {best:7.2f} {best / seconds:6.3f} {gflop / best:8.1f} {gflop / best / peak:9.0%} "
              f"{best_cpu:7.2f} {gflop / best_cpu / peak_cpu:21.0%} {diff:11.2e}")


if __name__ == "__main__":
    main()
