"""Batches of similar duration for the GPT stage: `BucketBatchSampler`.

Mirrors `GPT_SoVITS/AR/data/bucket_sampler.py · DistributedBucketSampler @48b1a01` together with
the `DataLoader(batch_size=..., sampler=...)` of `AR/data/data_module.py · train_dataloader`,
which cuts the sampler's index stream into consecutive batches:

1. items are sorted by duration (semantic tokens / 25 Hz; a stable sort) and cut into buckets:
   walking up the sorted list, an item goes into the current bucket while its duration is
   below the bucket's edge, else it opens a new bucket and the edge grows by 2 s (once,
   however far the item is above it: an official quirk, so after a gap buckets can be wider);
2. every epoch, Python's `random` seeded with `seed + epoch` shuffles the items inside each
   bucket (in bucket order), the chained list is cut into groups of batch_size·num_replicas
   items, and the same generator shuffles the groups;
3. the list is padded to a multiple of num_replicas by repeating its start; process r takes
   every num_replicas-th item from r, and its share is cut into batches of batch_size (the
   last one may be smaller).

With `seed=0` (official), one process and the dataset's order, the batches are those of the
official loader in every epoch (the official reseeds the global `random`; we use a private
`random.Random`, which draws the same numbers).

Differences: this is a *batch* sampler (`len()` counts batches, iteration yields lists of
indices, `batches()` gives the epoch's list so that a resumed run can skip the ones it already
trained on, see `gsv_edu.data.loader.EpochBatches`); `num_replicas` and `rank` are given by the
caller (official: the process group's only when CUDA is available, else 1 and 0 — so on the CPU
every process of a multi-process run would see all the data).
"""
from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Sequence

__all__ = ["BucketBatchSampler", "duration_buckets", "BUCKET_WIDTH"]

BUCKET_WIDTH = 2.0  # seconds (official make_buckets(bucket_width=2.0))


def duration_buckets(durations: Sequence[float], width: float = BUCKET_WIDTH) -> list[list[int]]:
    """Indices sorted by duration and cut into buckets (official `_get_sample_lengths` + `make_buckets`)."""
    order = sorted(range(len(durations)), key=lambda i: durations[i])  # stable: ties keep dataset order
    buckets: list[list[int]] = []
    current: list[int] = []
    edge = width
    for i in order:
        if durations[i] < edge:
            current.append(i)
        else:
            buckets.append(current)  # official: may append an empty bucket (harmless)
            current = [i]
            edge += width
    if current:
        buckets.append(current)
    return buckets


class BucketBatchSampler:
    """Duration-bucketed, shuffled batches of this process's share of a dataset (see the module docstring).

    `durations`: seconds per item (`Text2SemanticDataset.durations`). Call `set_epoch(epoch)`
    before each epoch (0-based, as Lightning's current_epoch).
    """

    def __init__(self, durations: Sequence[float], batch_size: int, num_replicas: int = 1, rank: int = 0,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas - 1}]")
        if len(durations) == 0:
            raise ValueError("BucketBatchSampler: the dataset is empty")
        self.durations = list(durations)
        self.batch_size, self.num_replicas, self.rank = batch_size, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0
        n = len(self.durations)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.buckets = duration_buckets(self.durations)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> list[int]:
        """This process's item indices for the current epoch, in order (the official sampler's stream)."""
        if self.shuffle:
            rng = random.Random(self.seed + self.epoch)
            shuffled = []
            for bucket in self.buckets:
                bucket = list(bucket)
                rng.shuffle(bucket)
                shuffled.extend(bucket)
            group = self.batch_size * self.num_replicas
            groups = [shuffled[k:k + group] for k in range(0, len(shuffled), group)]
            rng.shuffle(groups)
            order = list(itertools.chain.from_iterable(groups))
        else:
            order = list(range(len(self.durations)))
        if self.drop_last:
            order = order[:self.total_size]
        else:
            missing = self.total_size - len(order)
            order += (order * math.ceil(missing / len(order)))[:missing] if missing > len(order) else order[:missing]
        return order[self.rank:self.total_size:self.num_replicas]

    def batches(self) -> list[list[int]]:
        """The current epoch's batches for this process (consecutive cuts of `indices()`)."""
        share = self.indices()
        return [share[k:k + self.batch_size] for k in range(0, len(share), self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        """Batches per epoch for this process."""
        return math.ceil(self.num_samples / self.batch_size)
