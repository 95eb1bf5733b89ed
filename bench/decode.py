"""Speed of `SynthesizerTrn.decode` at the official v2 size on the CPU: real-time factor, the
fraction of the machine's fp32 matmul throughput it reaches, and (with `--official PATH`) the
ratio to the official classes themselves on the same weights.

    .venv/bin/python bench/decode.py [--official PATH] [--codes 250] [--repeats 5] [--threads 2]

Builds the official-size v2 SynthesizerTrn (configs/s2.json) with the deterministic rule weights
of the fixtures (tests/fixtures/sovits_v2/weight_rule.py; the numbers do not depend on the
weight values) and times `decode` of `--codes` semantic tokens (250 tokens = 500 frames = 10 s
of 32 kHz audio) with a 6 s reference spectrogram and 100 phonemes. Every model is in eval mode
without `enc_q` (as the official inference UI and `load_sovits` prepare it). The rows:

- `official (weight norm kept)` — only with `--official PATH`: the official `SynthesizerTrn`
  imported from a checkout of RVC-Boss/GPT-SoVITS (bench/official.py), the rule weights loaded
  into it; the official inference never removes the weight norm, so every forward recomputes
  g·v/‖v‖ (torch's legacy `weight_norm` hook). This is the baseline of the ratios when given.
- `ours, weight norm kept` — gsv_edu's model in eval mode only (the baseline without
  `--official`);
- `ours, folded` — weight norm folded (`fold_weight_norm`);
- `ours, folded + channels-last dec` — also `use_channels_last_convs(model.dec)`
  (gsv_edu/sovits/channels_last.py);
- `ours, folded + channels-last + DFT dec` — also `use_dft_convs(model.dec)`
  (gsv_edu/sovits/dft_conv.py: the wide convolutions by block DFT, overlap-save): what
  `load_sovits` / `infer` prepare on the CPU.

The rows are timed in alternating rounds (the order rotates every round), keeping the best of
`--repeats` rounds, by wall time and by the process's CPU time; the CPU time is the steadier
measure on a shared machine. The prior noise is drawn by each model itself after the same
`torch.manual_seed`, so all rows decode the same noise; their outputs are compared with the
baseline (max |diff|). The FLOPs of one decode are counted on the baseline with
torch.utils.flop_counter.FlopCounterMode (every conv, transposed conv, linear, matmul); each
row's time turns them into GFLOP/s, and ÷ the best 2048×2048 fp32 matmul throughput measured in
the same run (between the rounds) into the fraction of the machine's matmul throughput. The DFT
row does less arithmetic than it is credited with (its own count is printed too), so its
fraction is an effective one and can exceed 100 %.
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
from gsv_edu.sovits.dft_conv import use_dft_convs  # noqa: E402
from gsv_edu.sovits.weight_norm import fold_weight_norm  # noqa: E402
import weight_rule  # noqa: E402
from common import matmul_gflops, official_v2, official_v2_generator, timed  # noqa: E402
from official import load_official  # noqa: E402

OFFICIAL = "official (weight norm kept)"
KEPT = "ours, weight norm kept"
FOLDED = "ours, folded"
CHANNELS_LAST = "ours, folded + channels-last dec"
DFT = "ours, folded + channels-last + DFT dec"
NOISE_SEED = 1234


def prepared(model: torch.nn.Module) -> torch.nn.Module:
    """Rule weights, enc_q dropped (the official inference UI deletes it; load_sovits too), eval mode."""
    weight_rule.fill_module(model)
    model.enc_q = None
    return model.eval()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", metavar="PATH", default=None,
                    help="root of a checkout of RVC-Boss/GPT-SoVITS: also time its SynthesizerTrn (the baseline)")
    ap.add_argument("--codes", type=int, default=250, help="semantic tokens (25 Hz); 250 = 10 s")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = official_v2()

    models = {}
    if args.official:
        models[OFFICIAL] = prepared(load_official(args.official).generator(cfg))
    models[KEPT] = prepared(official_v2_generator(cfg))
    # Weight norm cannot be un-folded, so the folded preparations use a second model.
    models[FOLDED] = fold_weight_norm(prepared(official_v2_generator(cfg)))
    models[CHANNELS_LAST] = models[FOLDED]
    # The block-DFT convolutions cache their frequency-domain weights: a model of their own.
    models[DFT] = fold_weight_norm(prepared(official_v2_generator(cfg)))
    use_dft_convs(use_channels_last_convs(models[DFT].dec))
    baseline = OFFICIAL if args.official else KEPT

    gen = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 1024, (1, 1, args.codes), generator=gen)  # [n_q, B, T_c]
    text = torch.randint(1, 732, (1, 100), generator=gen)  # [B, L]
    refer = torch.randn(1, 1025, 300, generator=gen).abs()  # [B, 1025, T_r], 6 s
    seconds = 2 * args.codes * 640 / 32000

    @torch.inference_mode()
    def decode_with(name):
        model = models[name]
        if name in (FOLDED, CHANNELS_LAST):
            use_channels_last_convs(model.dec, enabled=(name == CHANNELS_LAST))
        torch.manual_seed(NOISE_SEED)  # the same prior noise (randn_like(m_p)) in every row
        return model.decode(codes, text, refer, noise_scale=0.5)

    names = list(models)
    gflop = {}
    for name in (baseline, DFT):
        with FlopCounterMode(display=False) as counter:
            decode_with(name)
        gflop[name] = counter.get_total_flops() / 1e9
    flop = gflop[baseline]  # the same arithmetic in every row (checked: printed below)

    outputs = {name: decode_with(name) for name in names}  # also a warm-up
    times = {name: [] for name in names}
    mm = []
    for r in range(args.repeats):
        mm.append(matmul_gflops(repeats=3))
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate the order each round
            times[name].append(timed(lambda: decode_with(name)))
    peak = max(m[0] for m in mm)
    peak_cpu = max(m[1] for m in mm)

    load = os.getloadavg()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (after the run), best of {args.repeats} alternating rounds")
    print(f"decode of {args.codes} codes = {2 * args.codes} frames = {seconds:.1f} s of audio; "
          f"{flop:.1f} GFLOP per decode, counted on the baseline (the direct convolutions: the DFT path does "
          f"less arithmetic, but 'of matmul' relates every row to this same work; {gflop[DFT]:.1f} counted on "
          "the DFT row, where the counter sees only its matrix products)")
    print(f"2048x2048 fp32 matmul: best {peak:.1f} GFLOP/s by wall time, {peak_cpu:.1f} GFLOP per CPU-second")
    print(f"ratios: against `{baseline}`")
    ref = outputs[baseline]
    best = {name: min(t[0] for t in times[name]) for name in names}
    best_cpu = {name: min(t[1] for t in times[name]) for name in names}
    print(f"{'row':<38} {'wall s':>7} {'RTF':>6} {'of matmul':>9} {'/ base':>7} "
          f"{'CPU s':>7} {'of matmul':>9} {'/ base':>7} {'max |diff|':>11}")
    for name in names:
        diff = (outputs[name] - ref).abs().max().item()
        print(f"{name:<38} {best[name]:7.2f} {best[name] / seconds:6.3f} {flop / best[name] / peak:9.0%} "
              f"{best[name] / best[baseline]:7.3f} {best_cpu[name]:7.2f} {flop / best_cpu[name] / peak_cpu:9.0%} "
              f"{best_cpu[name] / best_cpu[baseline]:7.3f} {diff:11.2e}")
    print("all rounds (wall s): " + "; ".join(f"{n}: " + " ".join(f"{t[0]:.2f}" for t in times[n]) for n in names))


if __name__ == "__main__":
    main()
