"""HuBERT pretraining pieces: MFCC frames, k-means targets, span masks, resumable training, content score."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gsv_edu.hubert import HuBERT
from gsv_edu.hubert import pretrain as P
from gsv_edu.hubert import targets as T
from gsv_edu.hubert.content_score import content_score, dtw, dtw_distance


def chirps(n: int, seconds: float = 1.0, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        freq = rng.uniform(0.02, 0.3, size=int(16000 * seconds))  # random instantaneous frequency (rad/sample)
        out.append((0.3 * np.sin(np.cumsum(freq))).astype(np.float32))
    return out


def tiny_cfg(**kw) -> P.PretrainConfig:
    base = dict(conv_dim=(16, 16, 16, 16, 32, 32, 32), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, num_conv_pos_embeddings=16, num_clusters=8, final_dim=16, steps=4,
                batch_size=2, crop_frames=20, warmup_steps=2, checkpoint_every=3)
    base.update(kw)
    return P.PretrainConfig(**base)


def test_mfcc_frames_follow_the_hubert_grid():
    model = HuBERT(tiny_cfg().hubert_config())
    for n in (400, 719, 720, 16000, 16123):
        y = np.random.default_rng(n).standard_normal(n).astype(np.float32)
        assert T.mfcc(y).shape == (model.num_frames(n), 39)
        assert T.log_mel(y).shape == (model.num_frames(n), 80)
    with pytest.raises(ValueError, match="at least 400 samples"):
        T.mfcc(np.zeros(399, dtype=np.float32))


def test_utterance_normalisation_removes_a_gain():
    y = chirps(1)[0]
    a, b = T.mfcc(y, normalize="utterance"), T.mfcc(4 * y, normalize="utterance")
    assert np.abs(a - b).max() < 1e-3  # a gain only shifts c0, which CMVN removes
    assert np.abs(T.mfcc(y) - T.mfcc(4 * y)).max() > 1.0


def test_kmeans_targets_recover_separated_clusters():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((4, 5)) * 10
    truth = [rng.integers(0, 4, size=50) for _ in range(3)]
    frames = [(centers[t] + 0.1 * rng.standard_normal((50, 5))).astype(np.float32) for t in truth]
    labels, centroids = T.cluster_targets(frames, num_clusters=4, num_iters=20, seed=0)
    assert centroids.shape == (4, 5)
    ours, ref = np.concatenate(labels), np.concatenate(truth)
    mapping = {r: ours[ref == r][0] for r in range(4)}  # cluster ids are arbitrary: check the partition
    assert len(set(mapping.values())) == 4
    assert all(ours[i] == mapping[ref[i]] for i in range(len(ref)))


def test_span_mask_masks_about_half_in_spans():
    gen = torch.Generator().manual_seed(0)
    mask = P.compute_mask(64, 100, mask_prob=0.8, mask_length=10, generator=gen)
    assert mask.shape == (64, 100) and mask.dtype == torch.bool
    assert 0.4 < mask.float().mean() < 0.7
    runs = torch.diff(mask.int(), dim=1).ne(0).sum(1)  # boundaries: spans, not scattered frames
    assert runs.float().mean() < 20
    assert mask.any(dim=1).all()  # at least one span per row


def test_learning_rate_schedule():
    cfg = tiny_cfg(steps=10, warmup_steps=2, lr=1.0)
    assert [round(P.lr_at(s, cfg), 3) for s in range(10)] == [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375,
                                                               0.25, 0.125]


def test_masked_frames_are_replaced_by_the_mask_embedding():
    model = HuBERT(tiny_cfg().hubert_config()).eval()
    wav = torch.from_numpy(chirps(1)[0][: 319 * 20 + 400]).unsqueeze(0)  # 20 frames
    mask = torch.zeros(1, 20, dtype=torch.bool)
    mask[0, 5:10] = True
    with torch.no_grad():
        plain = model.encode(wav)
        masked = model.encode(wav, mask)
        model.masked_spec_embed.add_(1.0)
        masked2 = model.encode(wav, mask)
    assert (plain - masked).abs().max() > 1e-3
    assert (masked - masked2).abs().max() > 1e-3  # the masked frames now read masked_spec_embed


def test_pretraining_learns_and_resumes_bit_exactly(tmp_path):
    torch.set_num_threads(1)
    wavs = chirps(4, seconds=0.5)
    cfg = tiny_cfg(steps=6, lr=3e-3)
    labels, _ = P.make_targets(wavs, cfg)
    straight = P.pretrain(wavs, labels, cfg, tmp_path / "a", progress=False)
    assert [h["step"] for h in straight.history] == list(range(1, 7))
    assert all(np.isfinite(h["loss"]) for h in straight.history)
    # interrupted after 2 steps (checkpoint), then resumed by a second call on the same folder
    P.pretrain(wavs, labels, cfg, tmp_path / "b", progress=False, until_step=2)
    assert torch.load(tmp_path / "b" / P.CHECKPOINT, weights_only=True)["step"] == 2
    resumed = P.pretrain(wavs, labels, cfg, tmp_path / "b", progress=False)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="different config"):
        P.pretrain(wavs, labels, tiny_cfg(steps=6, lr=1e-3), tmp_path / "b", progress=False)


def test_pretraining_reduces_the_loss():
    torch.set_num_threads(1)
    wavs = chirps(4, seconds=0.5)
    cfg = tiny_cfg(steps=40, lr=3e-3, warmup_steps=5, mask_prob=0.5)
    labels, _ = P.make_targets(wavs, cfg)
    hist = P.pretrain(wavs, labels, cfg, progress=False).history
    first, last = np.mean([h["loss"] for h in hist[:5]]), np.mean([h["loss"] for h in hist[-5:]])
    assert last < first - 0.2, (first, last)


def test_inputs_are_checked():
    wavs = chirps(2, seconds=0.5)
    cfg = tiny_cfg()
    labels, _ = P.make_targets(wavs, cfg)
    with pytest.raises(ValueError, match="frames but"):
        P.pretrain(wavs, [labels[0][:-1], labels[1]], cfg, progress=False)


def test_truncate_keeps_a_middle_layer_as_output():
    model = HuBERT(tiny_cfg(num_hidden_layers=3).hubert_config()).eval()
    wav = torch.from_numpy(chirps(1)[0]).unsqueeze(0)
    short = P.truncate(model, 2)
    assert short.config.num_hidden_layers == 2
    with torch.no_grad():
        assert torch.equal(short(wav), model.encode(wav, num_layers=2))


def test_dtw_matches_a_direct_recursion():
    rng = np.random.default_rng(0)
    cost = rng.random((6, 9))
    acc = np.full((7, 10), np.inf)
    steps = np.zeros((7, 10))
    acc[0, 0] = 0
    for i in range(1, 7):
        for j in range(1, 10):
            prev = [(acc[i - 1, j - 1], steps[i - 1, j - 1]), (acc[i - 1, j], steps[i - 1, j]),
                    (acc[i, j - 1], steps[i, j - 1])]
            best = min(prev, key=lambda p: p[0])
            acc[i, j], steps[i, j] = cost[i - 1, j - 1] + best[0], best[1] + 1
    assert dtw(cost) == pytest.approx(acc[6, 9] / steps[6, 9])
    a = rng.standard_normal((5, 3))
    assert dtw_distance(a, np.repeat(a, 2, axis=0)) == pytest.approx(0.0, abs=1e-6)  # a slower copy: distance 0


def test_content_score_prefers_content_over_voice():
    rng = np.random.default_rng(0)
    words = {p: rng.standard_normal((12, 8)) for p in "abcd"}
    voices = {s: rng.standard_normal(8) for s in ("s1", "s2", "s3")}

    def feats(voice_weight):
        return {(p, s): words[p] + voice_weight * voices[s] for p in words for s in voices}

    good = content_score(feats(0.1))
    bad = content_score(feats(10.0))
    assert good.triplets == 4 * 6 * 3
    assert good.accuracy == 1.0 and bad.accuracy < 0.5
