"""What the benchmark scripts share: timing one call, the machine's matmul throughput, the official-size models.

Imported by bench/decode.py, bench/hubert.py and bench/train_step.py (run as scripts, so this
folder is on sys.path). The models come from `Config.preset("official-v2")`, the released s2.json.
"""
from __future__ import annotations

import os
import sys
import time

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from gsv_edu.config import Config  # noqa: E402
from gsv_edu.sovits.models import MultiPeriodDiscriminator, SynthesizerTrn  # noqa: E402


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def matmul_gflops(n: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """Best n×n fp32 matmul throughput in GFLOP/s: (by wall time, by process CPU time)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    runs = [timed(lambda: a @ b) for _ in range(repeats)]
    flop = 2 * n ** 3
    return flop / min(r[0] for r in runs) / 1e9, flop / min(r[1] for r in runs) / 1e9


def official_v2() -> Config:
    return Config.preset("official-v2")


def official_v2_generator(cfg: Config | None = None) -> SynthesizerTrn:
    """SynthesizerTrn of the official v2 size, built as the trainer builds it (default init)."""
    cfg = cfg or official_v2()
    return SynthesizerTrn(cfg.spec_channels, cfg.segment_frames, n_speakers=cfg.data.n_speakers, **cfg.model_kwargs())


def official_v2_discriminator(cfg: Config | None = None) -> MultiPeriodDiscriminator:
    cfg = cfg or official_v2()
    return MultiPeriodDiscriminator(cfg.model.use_spectral_norm, version=cfg.version)
