"""The residual vector quantizer: official eval/train fixtures, k-means init without a process
group, the dead-code quirk, and codebooks kept identical across 2 gloo ranks."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import assert_fixture_close, load_fixture
from gsv_edu.sovits.quantize import ResidualVectorQuantizer, kmeans


def small_rvq(**overrides):
    cfg = load_fixture("rvq_small.pt")["config"]
    kwargs = dict(dimension=cfg["dimension"], n_q=cfg["n_q"], bins=cfg["bins"], decay=cfg["decay"],
                  kmeans_init=cfg["kmeans_init"], kmeans_iters=cfg["kmeans_iters"],
                  threshold_ema_dead_code=cfg["threshold_ema_dead_code"])
    kwargs.update(overrides)
    return ResidualVectorQuantizer(**kwargs)


@pytest.fixture(scope="module")
def ref():
    return load_fixture("rvq_small.pt")


def test_keys_are_buffers_with_official_names(ref):
    rvq = small_rvq()
    assert list(rvq.state_dict()) == list(ref["state_dict_before"])
    assert list(rvq.parameters()) == []


def test_eval_matches_official(ref):
    rvq = small_rvq()
    rvq.load_state_dict(ref["state_dict_before"])
    rvq.eval()
    x, e = ref["x"], ref["eval"]
    quantized, codes, commit_loss, quantized_list = rvq(x, layers=[0, 1])
    assert_fixture_close(quantized, e["quantized"])
    assert_fixture_close(codes, e["codes"])
    assert_fixture_close(commit_loss, e["commit_loss"])
    assert len(quantized_list) == 2
    for a, b in zip(quantized_list, e["quantized_list"]):
        assert_fixture_close(a, b)
    assert_fixture_close(rvq.encode(x), e["encode_codes"])
    assert_fixture_close(rvq.decode(rvq.encode(x)), e["decode"])
    q1, c1, _, _ = rvq(x, n_q=1)
    assert_fixture_close(q1, e["quantized_n_q1"])
    assert_fixture_close(c1, e["codes_n_q1"])
    for k, v in ref["state_dict_before"].items():  # eval mode leaves the buffers untouched
        assert torch.equal(rvq.state_dict()[k], v)
    with pytest.raises(ValueError, match="layers"):
        rvq(x, n_q=1, layers=[1])


def test_one_ema_training_step_matches_official(ref):
    rvq = small_rvq()
    rvq.load_state_dict(ref["state_dict_before"])
    rvq.train()
    x = ref["x"].clone().requires_grad_(True)
    t = ref["train_step"]
    quantized, codes, commit_loss, _ = rvq(x)
    assert_fixture_close(quantized, t["quantized"])
    assert_fixture_close(codes, t["codes"])
    assert_fixture_close(commit_loss, t["commit_loss"])
    for k, v in t["state_dict_after"].items():
        assert_fixture_close(rvq.state_dict()[k], v, k)
    # Straight-through: the gradient of the quantized output reaches x unchanged.
    quantized.sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))


def test_kmeans_init_works_without_a_process_group():
    """A fresh quantizer initialises itself by k-means on the first batch, even in eval mode
    (the official code crashes here without torch.distributed, reference §13.3)."""
    torch.manual_seed(0)
    rvq = small_rvq(n_q=1, bins=4).eval()
    centers = torch.tensor([[5.0] * 16, [-5.0] * 16, [0.0] * 8 + [5.0] * 8, [0.0] * 16])
    x = (centers[torch.arange(40) % 4] + 0.1 * torch.randn(40, 16)).T.reshape(16, 2, 20).transpose(0, 1)
    _, codes, _, _ = rvq(x)  # x [2, 16, 20]
    cb = rvq.vq.layers[0]._codebook
    assert cb.inited.item() == 1
    assert torch.equal(cb.embed, cb.embed_avg)
    assert cb.cluster_size.sum().item() == 40 and torch.all(cb.cluster_size == 10)
    assert torch.allclose(torch.sort(cb.embed.sum(1)).values, torch.sort(centers.sum(1)).values, atol=0.5)
    assert len(set(codes.flatten().tolist())) == 4


def test_kmeans_keeps_the_mean_of_an_empty_cluster():
    samples = torch.tensor([[0.0], [0.1], [10.0]])
    torch.manual_seed(0)
    means, bins = kmeans(samples, 3, num_iters=5)
    assert bins.sum().item() == 3 and means.shape == (3, 1)


def test_dead_code_expiry_is_overwritten_by_the_ema_update(ref):
    """Official quirk: expiry happens before the EMA update, which recomputes every codeword from
    embed_avg, so the replacement leaves no trace in the buffers; it only draws random numbers."""
    x = ref["x"]
    results = []
    for threshold in (0, 6):  # cluster_size is 5 everywhere: 6 expires every code
        rvq = small_rvq(threshold_ema_dead_code=threshold)
        rvq.load_state_dict(ref["state_dict_before"])
        rvq.train()
        torch.manual_seed(0)
        rvq(x)
        results.append((rvq.state_dict(), torch.rand(1)))
    (sd_plain, rng_plain), (sd_expired, rng_expired) = results
    for k in sd_plain:
        assert torch.equal(sd_plain[k], sd_expired[k]), k
    assert not torch.equal(rng_plain, rng_expired)  # the expiry consumed random numbers


# --- two processes, gloo, CPU ------------------------------------------------------------------

def _rank_data(seed, dim=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, dim, 10, generator=g) * 1.5


def _distributed_worker(rank, world_size, store_path, out_dir, state_dict):
    torch.set_num_threads(1)
    store = dist.FileStore(store_path, world_size)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size)
    try:
        results = {}
        # Scenario "ema": the fixture's initialised codebooks, one training step on different data.
        rvq = small_rvq()
        rvq.load_state_dict(state_dict)
        rvq.train()
        torch.manual_seed(100 + rank)  # different random streams on purpose
        _, codes, commit_loss, _ = rvq(_rank_data(rank))
        results["ema"] = {"state_dict": rvq.state_dict(), "codes": codes, "commit_loss": commit_loss.detach()}
        # Scenario "kmeans": a fresh codebook, initialised by k-means during the training step.
        rvq = small_rvq(n_q=1, bins=8).train()
        torch.manual_seed(100 + rank)
        rvq(_rank_data(rank))
        results["kmeans"] = {"state_dict": rvq.state_dict()}
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, ref):
    """Run both scenarios in 2 processes (gloo backend, CPU, a FileStore) and load their results."""
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo not available")
    tmp = tmp_path_factory.mktemp("rvq_dist")
    # fork: the children need not re-import torch and the tests (much faster than spawn).
    mp.start_processes(_distributed_worker, args=(2, str(tmp / "store"), str(tmp), ref["state_dict_before"]),
                       nprocs=2, join=True, start_method="fork")
    return [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_two_ranks_keep_identical_codebooks_equal_to_one_process_on_the_whole_batch(two_ranks, ref):
    ranks = [r["ema"] for r in two_ranks]
    for k, v in ranks[0]["state_dict"].items():
        assert torch.equal(v, ranks[1]["state_dict"][k]), k

    # One process on the concatenated batch: codes per item and the EMA update of the whole batch.
    single = small_rvq()
    single.load_state_dict(ref["state_dict_before"])
    single.train()
    _, codes, commit_loss, _ = single(torch.cat([_rank_data(0), _rank_data(1)]))
    assert torch.equal(torch.cat([ranks[0]["codes"], ranks[1]["codes"]], dim=1), codes)
    for k, v in single.state_dict().items():
        torch.testing.assert_close(ranks[0]["state_dict"][k], v, rtol=1e-6, atol=1e-6, msg=k)
    embed_key = "vq.layers.0._codebook.embed"
    assert not torch.equal(single.state_dict()[embed_key], ref["state_dict_before"][embed_key])
    # The commitment loss stays local: equal item counts, so the mean of the ranks' losses.
    torch.testing.assert_close((ranks[0]["commit_loss"] + ranks[1]["commit_loss"]) / 2, commit_loss.detach())


def test_two_ranks_share_the_kmeans_init_of_rank0(two_ranks):
    ranks = [r["kmeans"] for r in two_ranks]
    for k, v in ranks[0]["state_dict"].items():
        assert torch.equal(v, ranks[1]["state_dict"][k]), k

    # Expected: k-means on rank 0's frames with rank 0's random stream, then the EMA update on
    # the whole batch (dead-code expiry leaves no trace, see the quirk test above).
    expected = small_rvq(n_q=1, bins=8)
    expected.train()
    torch.manual_seed(100)
    x0 = _rank_data(0)
    expected.vq.layers[0]._codebook.init_embed_(x0.transpose(1, 2).reshape(-1, 16))
    expected(torch.cat([x0, _rank_data(1)]))
    for k, v in expected.state_dict().items():
        torch.testing.assert_close(ranks[0]["state_dict"][k], v, rtol=1e-6, atol=1e-6, msg=k)


def test_decode_with_codes_in_the_wrong_axis_order_says_so():
    """extract_latent gives [B, n_q, T]; decode wants [n_q, B, T]: a clear error, not an IndexError."""
    rvq = ResidualVectorQuantizer(dimension=8, n_q=1, bins=4)
    with pytest.raises(ValueError, match=r"quantizer layer first.*transpose\(0, 1\)"):
        rvq.decode(torch.zeros(2, 1, 5, dtype=torch.long))
