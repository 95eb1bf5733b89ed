"""The DataLoader of training: the items of a prepared folder in length-bucketed batches, this process's share.

Mirrors the data part of `GPT_SoVITS/s2_train.py · run @48b1a01`: `TextAudioSpeakerLoader` +
`DistributedBucketSampler` (length buckets, this process's share) + `TextAudioSpeakerCollate`
(all three in `GPT_SoVITS/module/data_utils.py`). The bucket sampler's lowest edge is the
decoder window in frames (32 officially, 8 for the tiny preset): shorter items are dropped,
since a training window must fit inside every item.

gsv_edu additions: `EpochBatches` lets a resumed run skip the batches of the current epoch it
already trained on without loading their audio; the DataLoader gets its own random generator
so that creating it does not consume the global torch RNG (exact resume). (The content width
of the prepared folder is checked against `model.ssl_dim` before anything is built:
`gsv_edu.data.layout.check_prepared`.)
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from gsv_edu.config import Config
from gsv_edu.data.dataset import TextAudioSpeakerCollate, TextAudioSpeakerDataset
from gsv_edu.data.sampler import DistributedBucketSampler, bucket_boundaries

if TYPE_CHECKING:  # for the annotation only: gsv_edu.train imports this module
    from gsv_edu.train.distributed import DistributedContext

__all__ = ["EpochBatches", "make_loader"]


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


def make_loader(cfg: Config, data_dir: Path, ctx: DistributedContext):
    """(dataset, sampler, epoch batches, DataLoader) for this process (`ctx`: its rank, world size, device)."""
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
