"""Pretraining targets for HuBERT: frame features → k-means cluster ids ("hidden units").

HuBERT (Hsu et al. 2021, arXiv:2106.07447, §III-B) learns by predicting, for masked frames,
the cluster id of an *offline* clustering of the audio. Iteration 1 clusters MFCCs (13
coefficients with first and second derivatives: 39 dims); iteration 2 clusters the hidden
states of the iteration-1 model (`model_features`). The targets only need to be consistent,
not good: the model learns what is predictable across speakers from the context.

Frames are aligned with HuBERT's: a window of 400 samples every 320 samples at 16 kHz without
padding (`center=False`), so an utterance of N samples gets floor((N − 400)/320) + 1 frames,
exactly the number of HuBERT output frames.

The k-means is `gsv_edu.quantize.kmeans` (Lloyd's algorithm, the one that initialises the
SoVITS codebook), run on a random subset of frames; every frame is then assigned to its nearest
centroid.
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
    import librosa

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
    import librosa

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


def fit_kmeans(frames: list[np.ndarray], num_clusters: int, num_iters: int = 30,
               seed: int = 0) -> torch.Tensor:
    """Centroids [K, D] of the frames of all utterances (list of [T_i, D]), Lloyd's k-means."""
    from ..quantize import kmeans

    x = torch.from_numpy(np.concatenate(frames, axis=0))  # [ΣT, D]
    if x.shape[0] < num_clusters:
        raise ValueError(f"k-means: {x.shape[0]} frames are fewer than {num_clusters} clusters")
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # quantize.kmeans samples with the global generator
    try:
        centroids, _ = kmeans(x, num_clusters, num_iters)  # [K, D]
    finally:
        torch.random.set_rng_state(state)
    return centroids


def assign(frames: np.ndarray, centroids: torch.Tensor) -> np.ndarray:
    """Nearest centroid id for every frame: [T, D] → [T] int64."""
    x = torch.from_numpy(frames)  # [T, D]
    return torch.cdist(x, centroids).argmin(dim=1).numpy()  # [T]


def cluster_targets(frames: list[np.ndarray], num_clusters: int, num_iters: int = 30,
                    seed: int = 0) -> tuple[list[np.ndarray], torch.Tensor]:
    """k-means on all frames, then per-utterance label sequences ([T_i] int64) and centroids [K, D]."""
    centroids = fit_kmeans(frames, num_clusters, num_iters, seed)
    return [assign(f, centroids) for f in frames], centroids
