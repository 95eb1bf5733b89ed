"""Pretraining targets for HuBERT: frame features → k-means cluster ids ("hidden units").

HuBERT (Hsu et al. 2021, arXiv:2106.07447, §III-B) learns by predicting, for masked frames,
the cluster id of an *offline* clustering of the audio. Iteration 1 clusters MFCCs (13
coefficients with first and second derivatives: 39 dims); iteration 2 clusters the hidden
states of the iteration-1 model (`model_features`). The targets only need to be consistent,
not good: the model learns what is predictable across speakers from the context.

Frames are aligned with HuBERT's: a window of 400 samples every 320 samples at 16 kHz without
padding (`center=False`), so an utterance of N samples gets floor((N − 400)/320) + 1 frames,
exactly the number of HuBERT output frames.

The k-means is Lloyd's algorithm with k-means++ seeding (Arthur & Vassilvitskii 2007), as in
the scikit-learn k-means HuBERT's recipe uses. We do not reuse `gsv_edu.sovits.quantize.kmeans` (the
SoVITS codebook initialisation): it mirrors the official code, which starts from random frames
and works on at most 10 000 of them, and random starts can leave two true clusters merged under
one centroid (tests/test_hubert_pretrain.py has such a case).
"""
from __future__ import annotations

import numpy as np
import torch

SAMPLE_RATE = 16000
WIN, HOP = 400, 320  # 25 ms windows every 20 ms: HuBERT's frame grid


def mfcc(y16k: np.ndarray, n_mfcc: int = 13, deltas: bool = True, normalize: str = "none",
         n_mels: int = 40) -> np.ndarray:
    """MFCCs [T, n_mfcc·(3 if deltas else 1)] on HuBERT's 50 Hz frame grid.

    `normalize`: "none" (raw), or "utterance" (cepstral mean and variance normalisation per
    utterance: removes a fixed channel/voice colouring, a classic speaker-normalisation step).
    """
    import librosa  # deferred: importing librosa takes seconds

    y16k = np.asarray(y16k, dtype=np.float32)
    if y16k.size < WIN:
        raise ValueError(f"mfcc: need at least {WIN} samples (25 ms at 16 kHz), got {y16k.size}")
    c = librosa.feature.mfcc(y=y16k, sr=SAMPLE_RATE, n_mfcc=n_mfcc, n_fft=WIN, hop_length=HOP,
                             win_length=WIN, n_mels=n_mels, center=False)  # [n_mfcc, T]
    if deltas:
        d1 = librosa.feature.delta(c, order=1, mode="nearest")  # [n_mfcc, T]
        d2 = librosa.feature.delta(c, order=2, mode="nearest")  # [n_mfcc, T]
        c = np.concatenate([c, d1, d2], axis=0)  # [3·n_mfcc, T]
    if normalize == "utterance":
        c = (c - c.mean(axis=1, keepdims=True)) / (c.std(axis=1, keepdims=True) + 1e-5)
    elif normalize != "none":
        raise ValueError(f"mfcc: normalize must be 'none' or 'utterance', got {normalize!r}")
    return c.T.astype(np.float32)  # [T, D]


def log_mel(y16k: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """Log-mel spectrogram [T, n_mels] on the same 50 Hz grid (a content-score baseline)."""
    import librosa  # deferred: importing librosa takes seconds

    m = librosa.feature.melspectrogram(y=np.asarray(y16k, dtype=np.float32), sr=SAMPLE_RATE, n_fft=WIN,
                                       hop_length=HOP, win_length=WIN, n_mels=n_mels, center=False)  # [M, T]
    return np.log(np.maximum(m, 1e-5)).T.astype(np.float32)  # [T, M]


@torch.no_grad()
def model_features(model, y16k: np.ndarray, layer: int | None = None) -> np.ndarray:
    """Hidden states [T, H] of a HuBERT after `layer` transformer layers (None = last)."""
    x = torch.from_numpy(np.asarray(y16k, dtype=np.float32)).unsqueeze(0)  # [1, N]
    was_training = model.training
    model.eval()
    h = model.encode(x, num_layers=layer)[0]  # [T, H]
    model.train(was_training)
    return h.numpy()


def kmeans_pp(x: torch.Tensor, num_clusters: int, num_iters: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding then Lloyd iterations on x [N, D] → centroids [K, D].

    Seeding: the first centroid is a random frame; each next one is a frame drawn with
    probability proportional to its squared distance to the nearest centroid so far, which
    spreads the starts over all clusters.
    """
    n = x.shape[0]
    centroids = x[torch.randint(n, (1,), generator=generator)]  # [1, D]
    nearest = (x - centroids).square().sum(1)  # [N], squared distance to the nearest centroid so far
    for _ in range(1, num_clusters):
        pick = torch.multinomial(nearest + 1e-12, 1, generator=generator)  # [1]
        centroids = torch.cat([centroids, x[pick]])  # [k+1, D]
        nearest = torch.minimum(nearest, (x - x[pick]).square().sum(1))  # [N]
    x_sq = x.square().sum(1, keepdim=True)  # [N, 1]
    for _ in range(num_iters):  # Lloyd: assign every frame, move every centroid to its frames' mean
        ids = (x_sq - 2 * x @ centroids.t() + centroids.square().sum(1)).argmin(dim=1)  # [N], nearest centroid
        counts = torch.bincount(ids, minlength=num_clusters)  # [K]
        sums = torch.zeros_like(centroids).index_add_(0, ids, x)  # [K, D]
        centroids = torch.where(counts.unsqueeze(1) > 0, sums / counts.clamp(min=1).unsqueeze(1), centroids)
    return centroids


def fit_kmeans(frames: list[np.ndarray], num_clusters: int, num_iters: int = 30,
               seed: int = 0) -> torch.Tensor:
    """Centroids [K, D] of the frames of all utterances (list of [T_i, D])."""
    x = torch.from_numpy(np.concatenate(frames, axis=0)).float()  # [ΣT, D]
    if x.shape[0] < num_clusters:
        raise ValueError(f"k-means: {x.shape[0]} frames are fewer than {num_clusters} clusters")
    return kmeans_pp(x, num_clusters, num_iters, torch.Generator().manual_seed(seed))


def assign(frames: np.ndarray, centroids: torch.Tensor) -> np.ndarray:
    """Nearest centroid id for every frame: [T, D] → [T] int64."""
    x = torch.from_numpy(frames)  # [T, D]
    return torch.cdist(x, centroids).argmin(dim=1).numpy()  # [T]


def cluster_targets(frames: list[np.ndarray], num_clusters: int, num_iters: int = 30,
                    seed: int = 0) -> tuple[list[np.ndarray], torch.Tensor]:
    """k-means on all frames, then per-utterance label sequences ([T_i] int64) and centroids [K, D]."""
    centroids = fit_kmeans(frames, num_clusters, num_iters, seed)
    return [assign(f, centroids) for f in frames], centroids
