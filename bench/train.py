"""Training speed and peak memory of `gsv_edu.train.step.Trainer.train_step` for the presets.

    .venv/bin/python bench/train.py                         # tiny and official-v2 on the CPU
    .venv/bin/python bench/train.py --device cuda           # on a GPU: fp32, fp16 (+GradScaler), bf16
    .venv/bin/python bench/train.py --presets tiny --batch 8 --steps 5 --repeats 3

Each configuration runs in a fresh subprocess (so the CPU peak memory, the process's maximum
resident set size, belongs to that configuration alone): build the models and optimizers of
the preset, make one synthetic batch (noise waveforms of `--seconds` s, their spectrograms,
random content features and phoneme ids, collated by `TextAudioSpeakerCollate`), run one
warm-up step, then time `--steps` steps, `--repeats` times; the best repeat is reported (the
machine may be shared). On CUDA the peak is `torch.cuda.max_memory_allocated`.

The numbers are whole optimizer steps (G forward, D step, G step), the same code as
`python -m gsv_edu.train`, without data loading.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

DEFAULT_BATCH = {"tiny": 8, "official-v2": 2, "official-v1": 2}


def one(args) -> dict:
    """Run one configuration in this process and return its measurements."""
    import resource

    import torch

    torch.set_num_threads(args.threads)
    from gsv_edu import audio
    from gsv_edu.config import Config
    from gsv_edu.data.dataset import TextAudioSpeakerCollate
    from gsv_edu.train.distributed import DistributedContext
    from gsv_edu.train.step import Trainer

    cfg = Config.preset(args.preset)
    cfg.train.batch_size = args.batch
    cfg.train.fp16_run = args.precision in ("fp16", "bf16")
    cfg.train.amp_dtype = "bfloat16" if args.precision == "bf16" else "float16"
    device = torch.device(args.device)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    items = []
    for i in range(args.batch):
        n = int(args.seconds * 32000) - 640 * i  # slightly different lengths, as in a real batch
        wav = 0.1 * torch.randn(1, n, generator=gen)  # [1, N]
        spec = audio.spectrogram(wav)[0]  # [1025, T]
        ssl = torch.randn(cfg.model.ssl_dim, spec.shape[-1], generator=gen)  # [D, T]
        text = torch.randint(1, 700, (50,), generator=gen)  # [L]
        items.append((ssl, spec, wav, text))
    batch = TextAudioSpeakerCollate()(items)

    trainer = Trainer(cfg, DistributedContext(device=device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    result = trainer.train_step(batch)  # warm-up (and the codebook's k-means initialisation)
    sync()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            result = trainer.train_step(batch)
        sync()
        times.append((time.perf_counter() - start) / args.steps)
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {
        "preset": args.preset, "device": str(device), "precision": args.precision, "batch": args.batch,
        "frames": int(batch[3].max()), "g_params": sum(p.numel() for p in trainer.net_g.parameters()),
        "d_params": sum(p.numel() for p in trainer.net_d.parameters()), "s_per_step": min(times),
        "all_s_per_step": times, "peak_bytes": peak, "ok": result.ok, "loss_mel": result.scalars.get("loss/g/mel"),
        "threads": args.threads,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "official-v2"])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, or all (cpu and, if present, cuda)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: tiny 8, official 2)")
    parser.add_argument("--seconds", type=float, default=4.0, help="utterance length in the batch")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    parser.add_argument("--precision", default=None,
                        help="fp32, fp16, bf16 (default: fp32 on the CPU; fp32, fp16 and bf16 on CUDA)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # internal: run one configuration
    parser.add_argument("--preset", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args)))
        return 0

    import torch

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if not d.startswith("cuda") or torch.cuda.is_available()]
    if not devices:
        print("no CUDA device here", file=sys.stderr)
        return 1
    rows = []
    for device in devices:
        precisions = [args.precision] if args.precision else (["fp32"] if device == "cpu" else ["fp32", "fp16", "bf16"])
        for preset in args.presets:
            for precision in precisions:
                batch = args.batch or DEFAULT_BATCH.get(preset, 2)
                cmd = [sys.executable, __file__, "--one", "--preset", preset, "--device", device, "--batch", str(batch),
                       "--seconds", str(args.seconds), "--steps", str(args.steps), "--repeats", str(args.repeats),
                       "--threads", str(args.threads), "--precision", precision]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(f"{preset} {device} {precision}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                    continue
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(f"  measured {preset} {device} {precision}: {row['s_per_step']:.3f} s/step", file=sys.stderr)
    header = (f"| preset | device | precision | batch × frames | G params | D params | s/step (best) | steps/s "
              f"| peak memory |")
    print(header)
    print("|" + "---|" * 9)
    for r in rows:
        print(f"| {r['preset']} | {r['device']} | {r['precision']} | {r['batch']} × {r['frames']} | "
              f"{r['g_params'] / 1e6:.2f} M | {r['d_params'] / 1e6:.2f} M | {r['s_per_step']:.3f} | "
              f"{1 / r['s_per_step']:.2f} | {r['peak_bytes'] / 2**20:.0f} MiB |")
    print(f"(threads {rows[0]['threads'] if rows else '-'}, {args.steps} steps × best of {args.repeats}; "
          f"torch {torch.__version__}; CPU peak = max RSS of the process, CUDA peak = max allocated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
