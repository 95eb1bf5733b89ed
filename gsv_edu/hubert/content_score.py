"""Does a feature hear *content*? An ABX-style test on parallel speech.

On a parallel corpus (several speakers reading the same sentences), for every sentence p, every
ordered pair of speakers s ≠ s' and every other sentence q, ask whether

    DTW(X(p, s), X(p, s'))  <  DTW(X(p, s), X(q, s))

i.e. whether the same words from another voice are closer than other words from the same
voice. A feature that carries content and little speaker identity answers yes; the accuracy
over all such triplets is the score (ties count one half; chance = 0.5). This is the ABX idea
of the ZeroSpeech challenges (Schatz et al. 2013, Dunbar et al. 2017) applied to whole
utterances with dynamic time warping (DTW) instead of aligned phone triplets.

DTW distance: per-frame distance (cosine by default), summed along the cheapest monotonic path
(steps (1,0), (0,1), (1,1)) and divided by the path's length, so that long and short
utterances are comparable.
"""
from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from gsv_edu import audio
from gsv_edu.hubert.features import hubert_input


def frame_distances(a: np.ndarray, b: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Distance matrix [T1, T2] between the frames of a [T1, D] and b [T2, D]."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if metric == "cosine":
        a = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-8)
        b = b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-8)
        return np.clip(1.0 - a @ b.T, 0.0, 2.0)  # [T1, T2]
    if metric == "euclidean":
        sq = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]  # [T1, T2]
        return np.sqrt(np.maximum(sq, 0.0))
    raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")


def dtw(cost: np.ndarray) -> float:
    """Cost of the cheapest monotonic alignment through cost [T1, T2], divided by its length.

    D[i, j] = cost[i, j] + min(D[i−1, j−1], D[i−1, j], D[i, j−1]); the path length is carried
    along with the cost of the chosen predecessor. Computed one anti-diagonal at a time (all
    cells of a diagonal depend only on the two previous diagonals), so it is vectorised.
    """
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)  # accumulated cost, 1-based with a border
    length = np.zeros((n + 1, m + 1), dtype=np.int64)
    acc[0, 0] = 0.0
    for d in range(2, n + m + 1):  # anti-diagonal i + j = d (1-based)
        i = np.arange(max(1, d - m), min(n, d - 1) + 1)  # [k]
        j = d - i  # [k]
        prev = np.stack([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]])  # [3, k]
        prev_len = np.stack([length[i - 1, j - 1], length[i - 1, j], length[i, j - 1]])  # [3, k]
        best = prev.argmin(axis=0)  # [k]
        cols = np.arange(len(i))
        acc[i, j] = cost[i - 1, j - 1] + prev[best, cols]
        length[i, j] = prev_len[best, cols] + 1
    return float(acc[n, m] / length[n, m])


def dtw_distance(a: np.ndarray, b: np.ndarray, metric: str = "cosine") -> float:
    """Length-normalised DTW distance between two feature sequences [T1, D] and [T2, D]."""
    return dtw(frame_distances(a, b, metric))


@dataclass
class ContentScore:
    accuracy: float  # fraction of triplets where the same sentence (other voice) is closer; chance 0.5
    triplets: int
    prompts: int
    speakers: int

    def __str__(self) -> str:
        return f"{100 * self.accuracy:.1f}% of {self.triplets} triplets ({self.prompts} sentences × {self.speakers} voices)"


def content_score(features: dict[tuple[str, str], np.ndarray], metric: str = "cosine") -> ContentScore:
    """ABX-style content score of features keyed by (sentence, speaker), each [T, D].

    Uses every sentence p read by at least two speakers, every ordered speaker pair (s, s') that
    both read p, and every other sentence q that s also read.
    """
    prompts = sorted({p for p, _ in features})
    speakers = sorted({s for _, s in features})
    cache: dict[tuple, float] = {}

    def dist(x, y) -> float:
        key = (x, y) if x <= y else (y, x)
        if key not in cache:
            cache[key] = dtw_distance(features[x], features[y], metric)
        return cache[key]

    correct, total = 0.0, 0
    for p in prompts:
        for s, s2 in itertools.permutations(speakers, 2):
            if (p, s) not in features or (p, s2) not in features:
                continue
            d_same_content = dist((p, s), (p, s2))
            for q in prompts:
                if q == p or (q, s) not in features:
                    continue
                d_same_voice = dist((p, s), (q, s))
                correct += 1.0 if d_same_content < d_same_voice else 0.5 if d_same_content == d_same_voice else 0.0
                total += 1
    if total == 0:
        raise ValueError("content_score: no triplet (need ≥ 2 sentences read by ≥ 2 speakers)")
    return ContentScore(correct / total, total, len(prompts), len(speakers))


# ------------------------------------------------------------------------------------------------
# scoring encoders on a parallel corpus
# ------------------------------------------------------------------------------------------------

def parallel_utterances(corpus, split: str | None = "heldout") -> list:
    """Utterances (`pretrain.Utterance`) of sentences read by ≥ 2 speakers, optionally of one split."""
    readers = Counter(u.prompt_id for u in corpus if u.prompt_id is not None)
    return [u for u in corpus if u.prompt_id is not None and readers[u.prompt_id] >= 2
            and (split is None or u.split == split)]


def hubert_encoder(model, num_layers: int | None = None):
    """Feature function for `score_encoders`: a HuBERT's hidden state [T, H] after `num_layers`
    layers (None = the last hidden state), on the official training input (`features.hubert_input`:
    the 32 kHz file, loudness mix × 1145.14, resampled to 16 kHz)."""
    def encode(u) -> np.ndarray:
        x = torch.from_numpy(hubert_input(audio.load_audio(u.wav_path, audio.SOVITS_SR), u.wav_path))  # [N₁₆]
        with torch.no_grad():
            return model.encode(x.unsqueeze(0), num_layers=num_layers)[0].numpy()  # [T, H]

    return encode


def score_encoders(utterances, encoders: dict, metric: str = "cosine") -> dict[str, ContentScore]:
    """Content score of each encoder (name → function(utterance) → [T, D]) on parallel utterances."""
    out = {}
    for name, encode in encoders.items():
        feats = {(u.prompt_id, u.speaker): encode(u) for u in utterances}
        out[name] = content_score(feats, metric)
    return out
