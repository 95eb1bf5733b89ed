"""DistributedBucketSampler: official bucketing, padding, per-epoch shuffling, ranks."""
from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from gsv_edu.data.sampler import OFFICIAL_BOUNDARIES, DistributedBucketSampler, bucket_boundaries


def lengths_dataset(lengths):
    return SimpleNamespace(lengths=list(lengths))


# bucket (32, 300]: indices 1, 2, 5 ; (300, 400]: none ; (400, 500]: 3, 6, 7, 8, 9 ;
# dropped: 0 (≤ 32), 4 (> 1900), 10 (= 32 exactly: the lower edge is exclusive)
LENGTHS = [10, 33, 300, 450, 5000, 100, 401, 500, 420, 480, 32, 1900]
#          0   1   2    3    4     5    6    7    8    9   10  11   (11: last bucket (1800, 1900])


def test_buckets_follow_official_edges_and_drop_out_of_range():
    s = DistributedBucketSampler(lengths_dataset(LENGTHS), batch_size=2, boundaries=OFFICIAL_BOUNDARIES,
                                 num_replicas=1, rank=0, shuffle=False)
    assert s.buckets == [[1, 2, 5], [3, 6, 7, 8, 9], [11]]
    # upper edges of the empty buckets removed (what the official leaves in its list)
    assert s.boundaries == [32, 300, 500, 1900]
    # padded by repetition to a multiple of batch · world = 2
    assert s.num_samples_per_bucket == [4, 6, 2]
    assert len(s) == 6
    # no shuffle: bucket order, padding repeats the bucket from its start
    assert s.batches() == [[1, 2], [5, 1], [3, 6], [7, 8], [9, 3], [11, 11]]


def test_boundaries_argument_is_not_mutated():
    edges = list(OFFICIAL_BOUNDARIES)
    DistributedBucketSampler(lengths_dataset(LENGTHS), 2, edges, num_replicas=1, rank=0)
    assert edges == OFFICIAL_BOUNDARIES


def test_padding_to_multiple_of_batch_times_world_and_every_batch_in_one_bucket():
    torch.manual_seed(0)
    lengths = torch.randint(20, 700, (157,)).tolist()
    s = DistributedBucketSampler(lengths_dataset(lengths), batch_size=4, boundaries=OFFICIAL_BOUNDARIES,
                                 num_replicas=3, rank=1)
    assert all(n % 12 == 0 for n in s.num_samples_per_bucket)
    assert all(0 <= n - len(b) < 12 for n, b in zip(s.num_samples_per_bucket, s.buckets))
    bucket_of = {i: k for k, b in enumerate(s.buckets) for i in b}
    for batch in s:
        assert len(batch) == 4
        assert len({bucket_of[i] for i in batch}) == 1


def test_same_seed_and_epoch_same_batches_other_epoch_or_seed_differs():
    lengths = [40 + (7 * i) % 500 for i in range(200)]
    make = lambda seed=0: DistributedBucketSampler(lengths_dataset(lengths), 4, OFFICIAL_BOUNDARIES,  # noqa: E731
                                                   num_replicas=1, rank=0, seed=seed)
    a, b = make(), make()
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)
    b.set_epoch(4)
    assert list(a) != list(b)
    c = make(seed=5)
    c.set_epoch(3)
    assert list(c) != list(a)
    a.set_epoch(8)  # seed 5, epoch 3 == seed 0, epoch 8: the generator is seeded with epoch + seed
    assert list(c) == list(a)


def test_shuffle_uses_the_official_random_calls():
    """Generator seeded with the epoch; one randperm per bucket, then one over the batches."""
    lengths = [50, 60, 70, 350, 360, 370, 380, 55]
    s = DistributedBucketSampler(lengths_dataset(lengths), 2, OFFICIAL_BOUNDARIES, num_replicas=1, rank=0)
    s.set_epoch(7)
    g = torch.Generator()
    g.manual_seed(7)
    buckets = [[0, 1, 2, 7], [3, 4, 5, 6]]
    perms = [torch.randperm(4, generator=g).tolist() for _ in buckets]
    batches = [[b[p[0]], b[p[1]]] for b, p in zip(buckets, perms)] + [[b[p[2]], b[p[3]]] for b, p in zip(buckets, perms)]
    batches = [batches[0], batches[2], batches[1], batches[3]]  # bucket order: bucket 0's two batches first
    order = torch.randperm(4, generator=g).tolist()
    assert s.batches() == [batches[i] for i in order]


def test_two_ranks_are_disjoint_and_cover_every_kept_item():
    lengths = [40 + (13 * i) % 900 for i in range(101)] + [5, 3000]  # last two dropped
    samplers = [DistributedBucketSampler(lengths_dataset(lengths), 3, OFFICIAL_BOUNDARIES,
                                         num_replicas=2, rank=r, seed=1) for r in range(2)]
    for s in samplers:
        s.set_epoch(2)
    per_rank = [Counter(i for batch in s for i in batch) for s in samplers]
    assert len(samplers[0]) == len(samplers[1])
    total = per_rank[0] + per_rank[1]
    assert set(total) == set(range(101))  # complete; 101, 102 dropped
    assert sum(total.values()) == samplers[0].total_size
    # disjoint apart from the padding repeats: the padded copies per bucket are fewer than batch · world
    padding = samplers[0].total_size - 101
    assert padding == sum(n - len(b) for n, b in zip(samplers[0].num_samples_per_bucket, samplers[0].buckets))
    assert sum((per_rank[0] & per_rank[1]).values()) <= padding
    # without padding (every bucket a multiple of 6), the two ranks share nothing
    even = [50] * 12 + [350] * 6
    a, b = (DistributedBucketSampler(lengths_dataset(even), 3, OFFICIAL_BOUNDARIES, num_replicas=2, rank=r)
            for r in range(2))
    ia, ib = [i for batch in a for i in batch], [i for batch in b for i in batch]
    assert not set(ia) & set(ib) and sorted(ia + ib) == list(range(18))


def test_defaults_to_single_process_without_process_group():
    s = DistributedBucketSampler(lengths_dataset([100, 200]), 1, OFFICIAL_BOUNDARIES)
    assert (s.num_replicas, s.rank) == (1, 0)


def test_errors_are_clear():
    with pytest.raises(ValueError, match="no item has a length"):
        DistributedBucketSampler(lengths_dataset([1, 2, 3]), 2, OFFICIAL_BOUNDARIES, num_replicas=1, rank=0)
    with pytest.raises(ValueError, match="rank"):
        DistributedBucketSampler(lengths_dataset([100]), 2, OFFICIAL_BOUNDARIES, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="increasing"):
        DistributedBucketSampler(lengths_dataset([100]), 2, [300, 32], num_replicas=1, rank=0)


def test_bucket_boundaries_lowest_edge_follows_segment_frames():
    assert bucket_boundaries(32) == OFFICIAL_BOUNDARIES
    tiny = bucket_boundaries(8)
    assert tiny[0] == 8 and tiny[1:] == OFFICIAL_BOUNDARIES[1:]
    s = DistributedBucketSampler(lengths_dataset([8, 9, 20, 40]), 1, tiny, num_replicas=1, rank=0, shuffle=False)
    assert sorted(i for b in s for i in b) == [1, 2, 3]
