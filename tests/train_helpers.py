"""Shared helpers of the training/inference tests: a synthetic prepared folder and a shrunken config.

The synthetic folder has the official prepared layout (`2-name2text.txt`, `4-cnhubert/*.pt`,
`5-wav32k/*`, `prepare_info.json`) with short synthetic audio and random content features, so
training tests need neither a content encoder nor the text front-end.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from scipy.io import wavfile

from gsv_edu.config import Config
from gsv_edu.data.layout import INFO_FILE, SSL_DIR, TEXT_FILE, WAV_DIR

SSL_DIM = 16
# The tiny preset shrunk further so that a training step takes a fraction of a second.
SMALL_OVERRIDES = [
    f"model.ssl_dim={SSL_DIM}", "model.hidden_channels=16", "model.filter_channels=32", "model.inter_channels=8",
    "model.n_layers=2", "model.gin_channels=16", "model.upsample_initial_channel=32",
    "model.resblock_kernel_sizes=[3]", "model.resblock_dilation_sizes=[[1,3]]",
    "train.segment_size=2560", "train.batch_size=2", "train.disc_channel_divisor=16", "train.log_interval=1",
    "train.save_every_steps=2", "train.keep_last=10",
]
PHONES = ["HH AH0 L OW1 .", "W ER1 L D .", "HH AH0 L OW1 W ER1 L D .", "G UH1 D M AO1 R N IH0 NG ."]


def small_config(*extra: str):
    """The tiny preset with SMALL_OVERRIDES and `extra` key=value overrides applied."""
    return Config.preset("tiny").apply_overrides(SMALL_OVERRIDES + list(extra)).validate()


def make_prepared(folder: Path, n_items: int = 4, seconds: float = 1.0, ssl_dim: int = SSL_DIM, seed: int = 0) -> Path:
    """Write a prepared folder of `n_items` synthetic utterances; returns it."""
    folder = Path(folder)
    (folder / SSL_DIR).mkdir(parents=True, exist_ok=True)
    (folder / WAV_DIR).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    lines = []
    for i in range(n_items):
        name = f"utt_{i:03d}.wav"
        n = int(32000 * (seconds + 0.1 * i))
        t = np.arange(n) / 32000.0
        f0 = 110.0 + 30.0 * i
        y = 0.3 * np.sin(2 * math.pi * f0 * t * (1 + 0.2 * t)) + 0.1 * np.sin(2 * math.pi * 3 * f0 * t)
        y = y * (0.6 + 0.4 * np.sin(2 * math.pi * 2 * t)) + 0.01 * rng.standard_normal(n)
        wavfile.write(folder / WAV_DIR / name, 32000, (y * 32767).astype(np.int16))
        frames = n // 640
        torch.save(torch.randn(1, ssl_dim, frames - 1, generator=gen), folder / SSL_DIR / f"{name}.pt")
        phones = PHONES[i % len(PHONES)]
        lines.append(f"{name}\t{phones}\tNone\tsynthetic {i}")
    (folder / TEXT_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / INFO_FILE).write_text(json.dumps({"content_encoder": "synthetic", "ssl_dim": ssl_dim}))
    return folder

