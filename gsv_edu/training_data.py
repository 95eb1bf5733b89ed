"""The data side of training: the prepared folder checked against the config, and the DataLoader.

Mirrors the data part of `run()` in `GPT_SoVITS/s2_train.py` (reference §8, §9.4):
`TextAudioSpeakerLoader` + `DistributedBucketSampler` (length buckets, this process's share) +
`TextAudioSpeakerCollate`. The bucket sampler's lowest edge is the decoder window in frames
(32 officially, 8 for the tiny preset): shorter items are dropped, since a training window
must fit inside every item.

gsv_edu additions: `EpochBatches` lets a resumed run skip the batches of the current epoch it
already trained on without loading their audio; the DataLoader gets its own random generator
so that creating it does not consume the global torch RNG (exact resume); the content width of
the prepared folder is checked against `model.ssl_dim` before anything is built.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .config import Config, ConfigError
from .distributed import DistributedContext

__all__ = ["EpochBatches", "make_loader", "check_prepared", "content_width"]


class EpochBatches:
    """The bucket sampler's batches of one epoch, optionally without the first `skip` ones.

    Used as the DataLoader's `batch_sampler` (the official passes the sampler itself).
    """

    def __init__(self, sampler):
        self.sampler = sampler
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.sampler.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        return iter(self.sampler.batches()[self.skip:])

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


def content_width(data_dir: Path) -> tuple[int | None, str]:
    """(content-feature width D, what made it) of a prepared folder: prepare_info.json, else one .pt file."""
    from .prepare import read_prepare_info

    info = read_prepare_info(data_dir)
    if info and info.get("ssl_dim"):
        return int(info["ssl_dim"]), str(info.get("content_encoder", "?"))
    ssl_dir = data_dir / "4-cnhubert"
    for name in sorted(os.listdir(ssl_dir)) if ssl_dir.is_dir() else []:
        if name.endswith(".pt"):
            t = torch.load(ssl_dir / name, map_location="cpu", weights_only=True)  # [1, D, T]
            return int(t.shape[-2]), f"{ssl_dir / name}"
    return None, ""


def check_prepared(cfg: Config, data_dir: Path) -> None:
    """Fail early (naming the folder and the fix) if `data_dir` cannot feed this config's model."""
    if not data_dir.is_dir():
        raise FileNotFoundError(f"--data {data_dir}: no such folder (prepare one with: python -m gsv_edu.prepare "
                                f"--list LIST --out {data_dir})")
    width, source = content_width(data_dir)
    if width is not None and width != cfg.model.ssl_dim:
        raise ConfigError(f"{data_dir} holds {width}-dim content features (from {source}) but model.ssl_dim is "
                          f"{cfg.model.ssl_dim}: add --set model.ssl_dim={width}, or prepare the data with the "
                          f"content encoder this config expects (chinese-hubert-base: 768; gsv_edu's small HuBERT: 256)")


def make_loader(cfg: Config, data_dir: Path, ctx: DistributedContext):
    """(dataset, sampler, epoch batches, DataLoader) for this process."""
    from .dataset import TextAudioSpeakerCollate, TextAudioSpeakerDataset
    from .sampler import DistributedBucketSampler, bucket_boundaries

    dataset = TextAudioSpeakerDataset(data_dir, cfg, version=cfg.version)
    # the lowest bucket edge is the decoder window: items of ≤ segment_frames frames are dropped
    sampler = DistributedBucketSampler(dataset, cfg.train.batch_size, bucket_boundaries(cfg.segment_frames),
                                       num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True)
    batches = EpochBatches(sampler)
    workers = cfg.train.num_workers
    generator = torch.Generator().manual_seed(cfg.train.seed + ctx.rank)  # keeps the global RNG untouched
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=batches, collate_fn=TextAudioSpeakerCollate(), num_workers=workers,
        pin_memory=ctx.device.type == "cuda", persistent_workers=workers > 0,
        prefetch_factor=3 if workers > 0 else None, generator=generator)  # official: 5 workers, prefetch 3
    return dataset, sampler, batches, loader
