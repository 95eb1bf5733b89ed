"""The residual vector quantizer: official eval and training fixtures (five training steps with
dead codes at every step), k-means, the EMA-then-expiry order with its random draws, the
single-process path without a process group, and 2 gloo ranks that all-reduce the EMA statistics
and end with identical codebooks (`GPT_SoVITS/module/core_vq.py · EuclideanCodebook.forward @48b1a01`)."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn import functional as F

from conftest import assert_fixture_close, load_fixture
from gsv_edu.sovits.quantize import EuclideanCodebook, ResidualVectorQuantizer, kmeans


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
    (`GPT_SoVITS/module/core_vq.py · EuclideanCodebook.init_embed_ @48b1a01` calls `dist.get_rank()`
    and fails without a process group)."""
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
    """Two samples, three clusters: the start means are drawn with replacement (randint), so two
    start equal; the tie goes to the first, the second stays empty and keeps its start mean."""
    samples = torch.tensor([[0.0], [10.0]])
    torch.manual_seed(5)
    assert torch.randint(0, 2, (3,)).tolist() == [1, 0, 1]  # the start means kmeans will draw: 10, 0, 10
    torch.manual_seed(5)
    means, bins = kmeans(samples, 3, num_iters=5)
    assert bins.tolist() == [1, 1, 0]
    assert means.flatten().tolist() == [10.0, 0.0, 10.0]


def test_kmeans_counts_and_means_of_two_clear_clusters():
    """Counts of the last assignment and the exact cluster means (randperm start, N ≥ K)."""
    samples = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [20.0, 20.0], [22.0, 20.0]])
    torch.manual_seed(0)
    means, bins = kmeans(samples, 2, num_iters=4)
    order = means[:, 0].argsort()
    torch.testing.assert_close(means[order], torch.tensor([[1 / 3, 1 / 3], [21.0, 20.0]]))
    assert bins[order].tolist() == [3, 2]


# --- the official training order: EMA update, then dead-code expiry ------------------------------

def _toy_codebook(threshold=2):
    """4 codes in 2-D; codes 1 and 3 have EMA counts that stay below the threshold of 2."""
    cb = EuclideanCodebook(dim=2, codebook_size=4, kmeans_init=False, decay=0.99, epsilon=1e-5,
                           threshold_ema_dead_code=threshold)
    embed = torch.tensor([[0.0, 0.0], [5.0, 5.0], [10.0, 0.0], [-5.0, 5.0]])
    counts = torch.tensor([5.0, 1.0, 5.0, 0.5])
    cb.embed.copy_(embed)
    cb.embed_avg.copy_(embed * counts[:, None])
    cb.cluster_size.copy_(counts)
    return cb.train()


TOY_FRAMES = torch.tensor([[[0.1, 0.0], [0.0, 0.2], [9.9, 0.0], [10.0, 0.1], [0.2, 0.1], [10.1, 0.0]]])  # [1, 6, 2]


def _toy_ema(cb):
    """The EMA update of _toy_codebook on TOY_FRAMES, written out: frames 0, 1, 4 → code 0; 2, 3, 5 → code 2."""
    flat = TOY_FRAMES[0]  # [6, 2]
    codes = torch.tensor([0, 0, 2, 2, 0, 2])
    onehot = F.one_hot(codes, 4).float()  # [6, 4]
    cluster_size = 0.99 * cb.cluster_size + 0.01 * onehot.sum(0)  # [4]
    embed_avg = 0.99 * cb.embed_avg + 0.01 * (onehot.t() @ flat)  # [4, 2]
    n = cluster_size.sum()
    smoothed = (cluster_size + 1e-5) / (n + 4 * 1e-5) * n
    return codes, cluster_size, embed_avg, embed_avg / smoothed[:, None]


def test_training_step_is_ema_then_expiry_with_one_fresh_vector_per_dead_code():
    cb = _toy_codebook()
    old_embed = cb.embed.clone()
    codes, cluster_size, embed_avg, embed = _toy_ema(cb)
    assert (cluster_size < 2).tolist() == [False, True, False, True]  # codes 1 and 3 are dead after the EMA
    torch.manual_seed(7)
    picks = torch.randperm(6)[:2]  # 6 frames ≥ 2 dead codes: without replacement
    after = torch.rand(3)  # what the global stream gives next
    embed[[1, 3]] = TOY_FRAMES[0][picks]

    torch.manual_seed(7)
    quantized, got_codes = cb(TOY_FRAMES)
    assert got_codes.flatten().tolist() == codes.tolist()
    torch.testing.assert_close(quantized, old_embed[codes].unsqueeze(0))  # the codebook before the step
    torch.testing.assert_close(cb.cluster_size, cluster_size)  # the expiry leaves the EMA state alone
    torch.testing.assert_close(cb.embed_avg, embed_avg)
    torch.testing.assert_close(cb.embed, embed)  # EMA codewords + the two fresh batch vectors
    assert torch.equal(torch.rand(3), after)  # exactly one randperm(6) was drawn

    # The fresh vectors survive until the next step: frames equal to them now take codes 1 and 3.
    cb.eval()
    assert cb.encode(TOY_FRAMES[0][picks].unsqueeze(0)).flatten().tolist() == [1, 3]


def test_expiry_draws_with_replacement_when_the_batch_has_fewer_frames_than_dead_codes():
    cb = _toy_codebook()
    frame = torch.tensor([[[0.1, 0.0]]])  # [1, 1, 2]: one frame, two dead codes → randint
    torch.manual_seed(3)
    torch.randint(0, 1, (2,))
    after = torch.rand(3)
    torch.manual_seed(3)
    cb(frame)
    assert torch.equal(cb.embed[1], frame[0, 0]) and torch.equal(cb.embed[3], frame[0, 0])
    assert torch.equal(torch.rand(3), after)


def test_threshold_zero_expires_nothing_and_draws_nothing():
    cb = _toy_codebook(threshold=0)
    _, cluster_size, embed_avg, embed = _toy_ema(cb)
    torch.manual_seed(7)
    after = torch.rand(3)
    torch.manual_seed(7)
    cb(TOY_FRAMES)
    torch.testing.assert_close(cb.embed, embed)
    torch.testing.assert_close(cb.cluster_size, cluster_size)
    torch.testing.assert_close(cb.embed_avg, embed_avg)
    assert torch.equal(torch.rand(3), after)


# --- five official training steps with dead codes (rvq_train_expiry.pt) -------------------------

@pytest.fixture(scope="module")
def expiry_ref():
    return load_fixture("rvq_train_expiry.pt")


def _run_expiry_steps(ref):
    """The fixture's five training steps on a fresh quantizer → per-step outputs and buffers."""
    rvq = ResidualVectorQuantizer(**ref["kwargs"]).train()
    out = []
    for step in ref["steps"]:
        dead = [int((layer._codebook.cluster_size < ref["kwargs"]["threshold_ema_dead_code"]).sum())
                for layer in rvq.vq.layers]
        torch.manual_seed(step["seed"])
        quantized, codes, commit_loss, _ = rvq(step["x"])
        out.append({"dead": dead, "quantized": quantized.detach(), "codes": codes,
                    "commit_loss": commit_loss.detach(),
                    "state": {k: v.clone() for k, v in rvq.state_dict().items()}})
    return out


def test_five_training_steps_with_dead_codes_match_official(expiry_ref):
    assert expiry_ref["commit"].startswith("48b1a01")
    got = _run_expiry_steps(expiry_ref)
    for i, (step, ours) in enumerate(zip(expiry_ref["steps"], got)):
        assert ours["dead"] == step["dead_codes_before"], i
        assert_fixture_close(ours["codes"], step["codes"], f"step {i} codes")
        assert_fixture_close(ours["quantized"], step["quantized"], f"step {i} quantized")
        assert_fixture_close(ours["commit_loss"], step["commit_loss"], f"step {i} commit_loss")
        assert list(ours["state"]) == list(step["state"])
        for k, v in step["state"].items():
            assert_fixture_close(ours["state"][k], v, f"step {i} {k}")
    assert all(s["dead_codes_before"][0] > 0 for s in expiry_ref["steps"])  # codes expire at every step


# --- process groups: world 1 (gloo) and two ranks -------------------------------------------------

def _init_group(rank, world_size, store_path):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", store=dist.FileStore(store_path, world_size), rank=rank,
                            world_size=world_size)


def _world1_worker(rank, store_path, out_path, ref):
    _init_group(rank, 1, store_path)
    try:
        torch.save(_run_expiry_steps(ref), out_path)
    finally:
        dist.destroy_process_group()


def _start(worker, nprocs, args):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo not available")
    # fork: the children need not re-import torch and the tests (much faster than spawn).
    mp.start_processes(worker, args=args, nprocs=nprocs, join=True, start_method="fork")


def test_without_a_process_group_equals_a_single_process_gloo_group(tmp_path, expiry_ref):
    _start(_world1_worker, 1, (str(tmp_path / "store"), str(tmp_path / "world1.pt"), expiry_ref))
    in_group = torch.load(tmp_path / "world1.pt", weights_only=True)
    alone = _run_expiry_steps(expiry_ref)
    for i, (a, b) in enumerate(zip(alone, in_group)):
        assert torch.equal(a["codes"], b["codes"]) and torch.equal(a["quantized"], b["quantized"]), i
        for k in a["state"]:
            assert torch.equal(a["state"][k], b["state"][k]), (i, k)


EXPIRY_KWARGS = dict(dimension=16, n_q=2, bins=32, decay=0.99, kmeans_init=True, kmeans_iters=5,
                     threshold_ema_dead_code=2)


def _rank_data(rank, step, items=2, frames=12, dim=16):
    g = torch.Generator().manual_seed(1000 * step + rank)
    return torch.randn(items, dim, frames, generator=g) * 1.5


def _two_rank_worker(rank, store_path, out_dir):
    _init_group(rank, 2, store_path)
    try:
        results = {}
        # "train": a fresh quantizer (k-means on the first batch), three steps with dead codes;
        # each rank seeds its own, different stream: only rank 0's may be used.
        rvq = ResidualVectorQuantizer(**EXPIRY_KWARGS).train()
        steps = []
        for step in range(3):
            torch.manual_seed(100 + 10 * step + rank)
            _, codes, commit_loss, _ = rvq(_rank_data(rank, step))
            steps.append({"codes": codes, "commit_loss": commit_loss.detach(),
                          "state": {k: v.clone() for k, v in rvq.state_dict().items()}})
        results["train"] = steps
        # "uneven": rank 0 has 2 items, rank 1 has 1; k-means and the expiry see 12 frames of each.
        rvq = ResidualVectorQuantizer(**{**EXPIRY_KWARGS, "n_q": 1, "bins": 8}).train()
        torch.manual_seed(200 + rank)
        rvq(_rank_data(rank, 7, items=2 - rank))
        results["uneven"] = rvq.state_dict()
        # "no_gather": both ranks hold the same 30 frames (a whole corpus); each seeds differently
        cb = EuclideanCodebook(16, 8, kmeans_init=True, kmeans_iters=5, decay=0.99, threshold_ema_dead_code=2)
        torch.manual_seed(300 + rank)
        cb.init_embed_(_rank_data(0, 9, items=1, frames=30)[0].T, gather=False)
        results["no_gather"] = cb.state_dict()
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Both scenarios in 2 processes (gloo backend, CPU, a FileStore); their saved results."""
    tmp = tmp_path_factory.mktemp("rvq_dist")
    _start(_two_rank_worker, 2, (str(tmp / "store"), str(tmp)))
    return [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_two_ranks_all_reduce_the_ema_and_equal_one_process_on_the_whole_batch(two_ranks):
    r0, r1 = (r["train"] for r in two_ranks)
    # Identical buffers on both ranks after every step.
    for step0, step1 in zip(r0, r1):
        for k, v in step0["state"].items():
            assert torch.equal(v, step1["state"][k]), k
    # The EMA counts are those of the global batch: k-means counts all 48 frames of the two ranks,
    # and each EMA step adds 1 % of 48 again (24 frames per rank), in every layer.
    for layer in range(2):
        total = r0[0]["state"][f"vq.layers.{layer}._codebook.cluster_size"].sum()
        torch.testing.assert_close(total, torch.tensor(48.0))

    # One process on the concatenated batch with rank 0's random stream: the same codes per item,
    # the same buffers (k-means, EMA and expiry all saw the frames of both ranks, in rank order).
    single = ResidualVectorQuantizer(**EXPIRY_KWARGS).train()
    for step in range(3):
        torch.manual_seed(100 + 10 * step)
        _, codes, commit_loss, _ = single(torch.cat([_rank_data(0, step), _rank_data(1, step)]))
        assert torch.equal(torch.cat([r0[step]["codes"], r1[step]["codes"]], dim=1), codes), step
        for k, v in single.state_dict().items():
            torch.testing.assert_close(r0[step]["state"][k], v, rtol=1e-6, atol=1e-6, msg=f"step {step} {k}")
        # The commitment loss stays local: equal item counts, so the mean of the ranks' losses.
        torch.testing.assert_close((r0[step]["commit_loss"] + r1[step]["commit_loss"]) / 2, commit_loss.detach())


def test_two_uneven_ranks_gather_as_many_frames_from_each_rank_as_the_smallest_has(two_ranks):
    s0, s1 = (r["uneven"] for r in two_ranks)
    for k, v in s0.items():
        assert torch.equal(v, s1[k]), k
    x0 = _rank_data(0, 7, items=2).transpose(1, 2).reshape(-1, 16)  # [24, 16]
    x1 = _rank_data(1, 7, items=1).transpose(1, 2).reshape(-1, 16)  # [12, 16]
    gathered = torch.cat([x0[:12], x1])  # 12 frames of each rank
    everything = torch.cat([x0, x1])  # the EMA statistics are all-reduced over all 36 frames
    cb = EuclideanCodebook(16, 8, kmeans_init=True, kmeans_iters=5, decay=0.99, threshold_ema_dead_code=2)
    torch.manual_seed(200)  # rank 0's stream
    cb.init_embed_(gathered)
    codes = cb.quantize(everything)
    cb._ema_update(everything, codes)
    cb.expire_codes_(gathered)
    for k, v in cb.state_dict().items():
        torch.testing.assert_close(s0[f"vq.layers.0._codebook.{k}"], v, rtol=1e-6, atol=1e-6, msg=k)


def test_two_ranks_without_gather_fit_rank_0s_frames_untrimmed(two_ranks):
    """init_embed_(gather=False) (the corpus codebook of gsv_edu.train.codebook): every rank holds the
    same frames, rank 0's k-means on all of them is broadcast; nothing is gathered or trimmed."""
    s0, s1 = (r["no_gather"] for r in two_ranks)
    for k, v in s0.items():
        assert torch.equal(v, s1[k]), k
    cb = EuclideanCodebook(16, 8, kmeans_init=True, kmeans_iters=5, decay=0.99, threshold_ema_dead_code=2)
    torch.manual_seed(300)  # rank 0's stream
    cb.init_embed_(_rank_data(0, 9, items=1, frames=30)[0].T)  # one process: the same 30 frames
    for k, v in cb.state_dict().items():
        assert torch.equal(s0[k], v), k
    assert s0["cluster_size"].sum() == 30  # every frame counted once (gathering would give 60)


def test_decode_with_codes_in_the_wrong_axis_order_says_so():
    """extract_latent gives [B, n_q, T]; decode wants [n_q, B, T]: a clear error, not an IndexError."""
    rvq = ResidualVectorQuantizer(dimension=8, n_q=1, bins=4)
    with pytest.raises(ValueError, match=r"quantizer layer first.*transpose\(0, 1\)"):
        rvq.decode(torch.zeros(2, 1, 5, dtype=torch.long))
