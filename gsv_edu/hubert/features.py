"""Content features for SoVITS: HuBERT's last hidden state, [B, D, T] at 50 Hz, the official way.

Mirrors the HuBERT part of `GPT_SoVITS/prepare_datasets/2-get-hubert-wav32k.py · name2go
@48b1a01` (training data) and the reference-audio path of the official inference
(`GPT_SoVITS/inference_webui.py · get_tts_wav @48b1a01`):

training data (`training_features`)
    32 kHz float audio in [-1, 1] (as `gsv_edu.audio.load_audio` returns it)
    → skipped by the official script if its peak exceeds 2.2 (we raise `AudioError`)
    → loudness mix y_mix = 0.95·0.5·y/peak + 0.5·y             (`audio.loudness_normalize`)
    → × 1145.14 (the official gain; the 32 kHz training wav gets × 32768 instead)
    → resampled 32 k → 16 k with librosa (soxr_hq)              (`audio.resample`)
    → HuBERT, **without** the Wav2Vec2FeatureExtractor normalisation (official quirk: name2go
      calls `model.model`, the bare HubertModel, not `CNHubert.forward`)
    → last_hidden_state [1, T, D] transposed to [1, D, T]

reference audio at inference (`reference_features`)
    16 kHz audio in [-1, 1], × 1 (no mix, no gain), with int(32000·0.3) = 9600 zeros appended at
    16 kHz (official quirk of `get_tts_wav`: the 0.3 s pause length is computed at the 32 kHz
    rate, so it lasts 0.6 s) → HuBERT → [1, D, T].

Frame counts: `hubert_frames` below; how they line up with the 32 kHz spectrogram (one frame
fewer about one time in four, closed by repeating the last frame) is part of the prepared
folder's layout: `gsv_edu.data.layout` (`spec_frames`, `content_frames_fit`, `align_to_spec`).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gsv_edu import audio
from gsv_edu.hubert.model import HuBERT

HUBERT_GAIN = 1145.14  # gain of the HuBERT input in data preparation (official name2go)
MAX_PEAK = 2.2  # the official preparation skips files louder than this
INFERENCE_PAD_16K = int(32000 * 0.3)  # 9600 zeros appended to the 16 kHz reference (get_tts_wav)


@torch.no_grad()
def content_features(model: HuBERT, wav16k: torch.Tensor) -> torch.Tensor:
    """HuBERT last hidden state as channels-first content features: [B, N] (or [N]) → [B, D, T].

    The waveform goes in unchanged (no mean/variance normalisation), as in GPT-SoVITS. The model
    is used in whatever mode it is in; call `model.eval()` first (from_pretrained already does).
    """
    wav16k = torch.as_tensor(wav16k, dtype=torch.float32)
    return model(wav16k).transpose(1, 2)  # [B, D, T]


def wav2vec2_normalize(wav: torch.Tensor) -> torch.Tensor:
    """Zero-mean unit-variance per utterance, (x − mean)/sqrt(var + 1e-7): [B, N] → [B, N].

    What transformers' `Wav2Vec2FeatureExtractor(do_normalize=True)` does and what
    `feature_extractor/cnhubert.py` CNHubert.forward would apply — but GPT-SoVITS never calls
    that forward (`GPT_SoVITS/prepare_datasets/2-get-hubert-wav32k.py · name2go` and
    `GPT_SoVITS/inference_webui.py · get_tts_wav` @48b1a01 call `.model` directly), so the
    official features are *not* normalised. Kept for comparison (tests/fixtures: the "normalized"
    path).
    """
    mean = wav.mean(dim=-1, keepdim=True)  # [B, 1]
    var = wav.var(dim=-1, keepdim=True, unbiased=False)  # [B, 1]
    return (wav - mean) / torch.sqrt(var + 1e-7)


def hubert_input(y32k: np.ndarray, name: str = "audio") -> np.ndarray:
    """The 16 kHz HuBERT input of the official data preparation, from 32 kHz float audio [N₃₂] → [N₁₆]."""
    y32k = np.asarray(y32k, dtype=np.float32)
    peak = float(np.abs(y32k).max()) if y32k.size else 0.0
    if peak > MAX_PEAK:
        raise audio.AudioError(f"{name}: peak {peak:.2f} > {MAX_PEAK}; the official preparation skips such files")
    mix = audio.loudness_normalize(y32k, gain=HUBERT_GAIN)  # [N₃₂], half peak-normalised to 0.95, half original
    return audio.resample(mix, audio.SOVITS_SR, audio.HUBERT_SR)  # [N₁₆]


def training_features(model: HuBERT, y32k: np.ndarray, name: str = "audio") -> torch.Tensor:
    """Content features [1, D, T] of one training utterance, as `4-cnhubert/{name}.pt` stores them.

    `y32k`: mono float32 at 32 kHz in [-1, 1] (`audio.load_audio(path, 32000)`).
    """
    x = torch.from_numpy(hubert_input(y32k, name))  # [N₁₆]
    return content_features(model, x.unsqueeze(0))  # [1, D, T]


def reference_features(model: HuBERT, y16k) -> torch.Tensor:
    """Content features [1, D, T] of a reference clip at inference: 16 kHz audio + 9600 zeros, ×1."""
    x = torch.as_tensor(np.asarray(y16k, dtype=np.float32)).reshape(1, -1)  # [1, N₁₆]
    x = F.pad(x, (0, INFERENCE_PAD_16K))  # [1, N₁₆ + 9600]
    return content_features(model, x)  # [1, D, T]


def hubert_frames(num_samples_16k: int, model: HuBERT | None = None) -> int:
    """Frames HuBERT makes from N₁₆ samples: floor((N₁₆ − 400)/320) + 1 for the base conv stack."""
    if model is not None:
        return model.num_frames(num_samples_16k)
    return max(0, (int(num_samples_16k) - 400) // 320 + 1)
