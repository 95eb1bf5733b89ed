"""Speed of the v2Pro additions on the CPU: `decode` of the official-size v2, v2Pro and v2ProPlus
generators (real-time factor, fraction of matmul throughput, channels-last decoder vs not), and
the cost of the speaker vector per second of reference (resample + Kaldi fbank + ERes2NetV2
forward3, 53.5 M parameters).

    .venv/bin/python bench/v2pro.py [--codes 250] [--repeats 3] [--threads 2] [--ref-seconds 6]

Every generator: `Config.preset(...)` at the official size, the rule weights of the fixtures
(numbers do not depend on the weights), eval mode, `enc_q` dropped, weight norm folded; rows
`folded` and `folded + channels-last dec` (what `load_sovits` prepares on the CPU), timed in
alternating rounds, best of `--repeats`. FLOPs counted with torch.utils.flop_counter. The speaker
vector is timed on a `--ref-seconds` test signal at 32 kHz, split into its three steps.
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
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "v2pro"))
from gsv_edu.config import Config  # noqa: E402
from gsv_edu.sovits.channels_last import use_channels_last_convs  # noqa: E402
from gsv_edu.sovits.models import SynthesizerTrn  # noqa: E402
from gsv_edu.sovits.weight_norm import fold_weight_norm  # noqa: E402
from gsv_edu.sv import OFFICIAL_SV_ARGS, ERes2NetV2, kaldi_fbank, resample  # noqa: E402
import sv_weight_rule  # noqa: E402
import weight_rule  # noqa: E402
from common import matmul_gflops, timed  # noqa: E402

PRESETS = {"v2": "official-v2", "v2Pro": "official-v2pro", "v2ProPlus": "official-v2proplus"}


def generator(version: str) -> SynthesizerTrn:
    cfg = Config.preset(PRESETS[version])
    model = SynthesizerTrn(cfg.spec_channels, cfg.segment_frames, n_speakers=cfg.data.n_speakers, **cfg.model_kwargs())
    weight_rule.fill_module(model)
    model.enc_q = None
    return fold_weight_norm(model.eval())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codes", type=int, default=250, help="semantic tokens (25 Hz); 250 = 10 s")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ref-seconds", type=float, default=6.0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 1024, (1, 1, args.codes), generator=gen)  # [n_q, B, T_c]
    text = torch.randint(1, 732, (1, 100), generator=gen)  # [B, L]
    refer = torch.randn(1, 1025, 300, generator=gen).abs()  # [B, 1025, T_r], 6 s
    sv = 0.2 * torch.rand(1, 20480, generator=gen)  # [B, 20480]
    seconds = 2 * args.codes * 640 / 32000

    rows = {}
    for version in PRESETS:
        model = generator(version)
        for layout in ("folded", "folded + channels-last dec"):
            rows[(version, layout)] = (model, layout)

    @torch.inference_mode()
    def decode(key):
        model, layout = rows[key]
        use_channels_last_convs(model.dec, enabled=layout.endswith("dec"))
        torch.manual_seed(1234)
        return model.decode(codes, text, refer, noise_scale=0.5, sv_emb=sv if model.is_v2pro else None)

    flops = {}
    for key in rows:
        if key[1] == "folded":
            with FlopCounterMode(display=False) as counter:
                decode(key)
            flops[key[0]] = counter.get_total_flops() / 1e9
    outputs = {key: decode(key) for key in rows}
    names = list(rows)
    times = {key: [] for key in names}
    mm = []
    for r in range(args.repeats):
        mm.append(matmul_gflops(repeats=3))
        for key in names[r % len(names):] + names[:r % len(names)]:
            times[key].append(timed(lambda: decode(key)))
    peak, peak_cpu = max(m[0] for m in mm), max(m[1] for m in mm)

    load = os.getloadavg()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}; decode of {args.codes} codes = {seconds:.1f} s; matmul {peak:.1f} GFLOP/s "
          f"(wall), {peak_cpu:.1f} per CPU-s; best of {args.repeats} alternating rounds")
    print(f"{'version':<10} {'decoder':<27} {'GFLOP':>6} {'wall s':>7} {'RTF':>6} {'of mm':>6} {'CPU s':>7} "
          f"{'of mm':>6} {'CL gain':>8} {'max|diff|':>10}")
    for key in names:
        version, layout = key
        wall = min(t[0] for t in times[key])
        cpu = min(t[1] for t in times[key])
        base = (version, "folded")
        gain = min(t[1] for t in times[base]) / cpu
        diff = (outputs[key] - outputs[base]).abs().max().item()
        print(f"{version:<10} {layout:<27} {flops[version]:6.1f} {wall:7.2f} {wall / seconds:6.3f} "
              f"{flops[version] / wall / peak:6.0%} {cpu:7.2f} {flops[version] / cpu / peak_cpu:6.0%} "
              f"{gain:8.2f} {diff:10.2e}")

    # the speaker vector of a reference: resample, fbank, forward3
    sv_model = sv_weight_rule.fill_module(ERes2NetV2(**OFFICIAL_SV_ARGS)).eval()
    n = int(args.ref_seconds * 32000)
    t = torch.arange(n) / 32000.0
    wav32k = 0.3 * torch.sin(2 * torch.pi * 180 * t * (1 + 0.1 * t)) + 0.01 * torch.randn(n, generator=gen)
    steps = {}
    with torch.inference_mode():
        wav16k = resample(wav32k, 32000, 16000)
        feats = kaldi_fbank(wav16k)[None]
        sv_model.forward3(feats)  # warm-up
        for _ in range(args.repeats):
            for name, fn in (("resample 32k->16k", lambda: resample(wav32k, 32000, 16000)),
                             ("Kaldi fbank", lambda: kaldi_fbank(wav16k)),
                             ("ERes2NetV2 forward3", lambda: sv_model.forward3(feats))):
                steps.setdefault(name, []).append(timed(fn))
        with FlopCounterMode(display=False) as counter:
            sv_model.forward3(feats)
    sv_gflop = counter.get_total_flops() / 1e9
    print(f"speaker vector of a {args.ref_seconds:g} s reference ({feats.shape[1]} fbank frames): "
          f"{sv_gflop:.1f} GFLOP in forward3")
    for name, runs in steps.items():
        wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
        print(f"  {name:<22} {wall:7.3f} s wall ({wall / args.ref_seconds:.3f} s per second of reference), "
              f"{cpu:7.3f} CPU s")


if __name__ == "__main__":
    main()
