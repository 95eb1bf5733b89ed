"""Length-bucketed batches, split across processes: `DistributedBucketSampler`.

Mirrors `GPT_SoVITS/module/data_utils.py · DistributedBucketSampler @48b1a01` (from VITS).
Utterances of similar length go into the same batch, so little padding is wasted:

1. every item's length (in frames; `dataset.lengths`) picks a bucket (b_i, b_{i+1}] among the
   `boundaries`; items ≤ boundaries[0] or > boundaries[-1] are **dropped**; empty buckets are
   removed;
2. each bucket is padded, by repeating its own items, to a multiple of batch_size·num_replicas;
3. every epoch, a `torch.Generator` seeded with the epoch (+ `seed`) shuffles the items inside
   each bucket (one `randperm` per bucket, in bucket order), process r takes every
   num_replicas-th item starting at r, cuts its share into batches, and the same generator
   then shuffles the order of all batches.

It is a *batch* sampler: iterating yields lists of dataset indices, so use it as
`DataLoader(dataset, batch_sampler=sampler, collate_fn=TextAudioSpeakerCollate())`, and call
`sampler.set_epoch(epoch)` before each epoch. With `seed=0` and the same `lengths` the batches
are exactly the official ones (same random calls in the same order).

The lowest boundary: the official 32 frames = segment_size / hop = 20480 / 640, the decoder's
training window. `rand_slice_segments` needs every item to have at least that many frames
(`GPT_SoVITS/module/commons.py · rand_slice_segments @48b1a01` would draw a negative start
otherwise); lengths are file size // 1280, which can exceed the real frame count by one
(the 44-byte WAV header), hence the strict "> boundaries[0]". For another window (the tiny
preset trains on 8 frames) use `bucket_boundaries(config.segment_frames)`.

Differences from the official class (no effect on the batches):
- the caller's `boundaries` list is copied, not mutated (official bug in
  `GPT_SoVITS/module/data_utils.py · DistributedBucketSampler._create_buckets @48b1a01`: it
  pops the upper boundary of every empty bucket from the caller's list);
- `seed` is added to the epoch for the generator seed (official: the epoch alone, i.e. seed=0);
- not a subclass of `torch.utils.data.DistributedSampler` (which needs an initialised process
  group when num_replicas/rank are not given): they default to the process group's world
  size and rank when one is initialised, else to 1 and 0;
- a dataset with no item inside the boundaries is a clear error, not an empty sampler.
"""
from __future__ import annotations

import bisect
from typing import Iterator, Sequence

import torch
import torch.distributed as dist

__all__ = ["DistributedBucketSampler", "OFFICIAL_BOUNDARIES", "bucket_boundaries"]

# s2_train.py: bucket edges in spectrogram frames (20 ms each): 0.64 s ... 38 s.
OFFICIAL_BOUNDARIES = [32, 300, 400, 500, 600, 700, 800, 900, 1000,
                       1100, 1200, 1300, 1400, 1500, 1600, 1700, 1800, 1900]


def bucket_boundaries(min_frames: int = 32) -> list[int]:
    """The official boundaries with the lowest one replaced by `min_frames` (the segment frames).

    Items must be longer than the decoder's training window: `min_frames` =
    `config.segment_frames` (32 officially, 8 for the tiny preset).
    """
    if not 0 <= min_frames < OFFICIAL_BOUNDARIES[1]:
        raise ValueError(f"min_frames must be in [0, {OFFICIAL_BOUNDARIES[1]}), got {min_frames}")
    return [int(min_frames)] + OFFICIAL_BOUNDARIES[1:]


def _default_world() -> tuple[int, int]:
    """(world size, rank) of the initialised process group, else (1, 0)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class DistributedBucketSampler:
    """Batches of indices of items of similar length; this process's share of each epoch.

    `dataset` needs a `lengths` sequence (frames per item). `len(sampler)` is the number of
    batches this process gets per epoch; every process gets the same number.
    """

    def __init__(self, dataset, batch_size: int, boundaries: Sequence[int], num_replicas: int | None = None,
                 rank: int | None = None, shuffle: bool = True, seed: int = 0):
        world, this_rank = _default_world()
        self.num_replicas = world if num_replicas is None else int(num_replicas)
        self.rank = this_rank if rank is None else int(rank)
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"need num_replicas ≥ 1 and 0 ≤ rank < num_replicas, got {self.num_replicas}, {self.rank}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        edges = [int(b) for b in boundaries]  # our own copy: the caller's list is never touched
        if len(edges) < 2 or any(a >= b for a, b in zip(edges, edges[1:])):
            raise ValueError(f"boundaries must be at least two strictly increasing numbers, got {list(boundaries)}")
        self.lengths = list(dataset.lengths)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0
        self.buckets, self.boundaries = self._create_buckets(self.lengths, edges)
        if not self.buckets:
            raise ValueError(f"no item has a length in ({edges[0]}, {edges[-1]}] frames "
                             f"({len(self.lengths)} items; lengths {min(self.lengths, default=0)}-"
                             f"{max(self.lengths, default=0)}); nothing to train on")
        per_step = self.batch_size * self.num_replicas
        # each bucket padded up to a multiple of batch_size · num_replicas
        self.num_samples_per_bucket = [len(b) + (-len(b)) % per_step for b in self.buckets]
        self.total_size = sum(self.num_samples_per_bucket)
        self.num_samples = self.total_size // self.num_replicas  # items per process per epoch

    @staticmethod
    def _create_buckets(lengths: list[int], edges: list[int]) -> tuple[list[list[int]], list[int]]:
        """Indices per bucket (b_i, b_{i+1}] in index order, without the empty buckets.

        Returns the buckets and the boundaries that remain once the upper edge of each empty
        bucket is removed (what the official code leaves in its — the caller's — list).
        """
        buckets: list[list[int]] = [[] for _ in range(len(edges) - 1)]
        for index, length in enumerate(lengths):
            if edges[0] < length <= edges[-1]:
                buckets[bisect.bisect_left(edges, length) - 1].append(index)  # edges[k] < length ≤ edges[k+1]
        kept = [k for k, b in enumerate(buckets) if b]
        remaining_edges = [edges[0]] + [edges[k + 1] for k in kept]
        return [buckets[k] for k in kept], remaining_edges

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffle `__iter__` produces (call it before every epoch)."""
        self.epoch = int(epoch)

    def batches(self) -> list[list[int]]:
        """This process's batches for the current epoch, in order (what iterating yields)."""
        generator = torch.Generator()
        generator.manual_seed(self.epoch + self.seed)
        if self.shuffle:  # one randperm per bucket first, in bucket order (the official call order)
            orders = [torch.randperm(len(b), generator=generator).tolist() for b in self.buckets]
        else:
            orders = [list(range(len(b))) for b in self.buckets]
        batches: list[list[int]] = []
        for bucket, order, padded_size in zip(self.buckets, orders, self.num_samples_per_bucket):
            # pad to padded_size by repeating the shuffled order: whole copies, then a prefix
            extra = padded_size - len(order)
            order = order + order * (extra // len(order)) + order[: extra % len(order)]
            mine = order[self.rank:: self.num_replicas]  # this process's share
            for start in range(0, len(mine) - self.batch_size + 1, self.batch_size):
                batches.append([bucket[k] for k in mine[start: start + self.batch_size]])
        if self.shuffle:
            permutation = torch.randperm(len(batches), generator=generator).tolist()
            batches = [batches[k] for k in permutation]
        assert len(batches) * self.batch_size == self.num_samples
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return self.num_samples // self.batch_size
