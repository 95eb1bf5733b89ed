"""The v2Pro speaker vector of a waveform: 16 kHz wav → Kaldi fbank → `ERes2NetV2.forward3`.

Mirrors `GPT_SoVITS/sv.py · SV.compute_embedding3 @48b1a01` (inference: the reference wav is
already at 16 kHz) and `GPT_SoVITS/prepare_datasets/2-get-sv.py · SV.compute_embedding3`
(training data: the 32 kHz wav is first resampled with torchaudio's `Resample(32000, 16000)`,
here `resample.Resample`). Per waveform: `kaldi_fbank(wav, num_mel_bins=80,
sample_frequency=16000, dither=0)` [T, 80], stacked to [B, T, 80], then `forward3` → [B, D]
(D = 20480 for the official model). Gradients are off, as in the official code.
"""
from __future__ import annotations

import torch
from torch import nn

from .eres2net import ERes2NetV2
from .kaldi import kaldi_fbank
from .resample import Resample

__all__ = ["SpeakerVector", "speaker_vector", "sv_features", "SV_SAMPLE_RATE", "MIN_SAMPLES_16K"]

SV_SAMPLE_RATE = 16000
MIN_SAMPLES_16K = 400  # one 25 ms Kaldi frame at 16 kHz


def sv_features(wav16k: torch.Tensor) -> torch.Tensor:
    """Kaldi fbank [B, T, 80] of each row of a 16 kHz batch [B, N] (or of one wav [N])."""
    if wav16k.dim() == 1:
        wav16k = wav16k.unsqueeze(0)
    if wav16k.dim() != 2:
        raise ValueError(f"expected a 16 kHz waveform [N] or a batch [B, N], got shape {tuple(wav16k.shape)}")
    if wav16k.shape[-1] < MIN_SAMPLES_16K:
        raise ValueError(f"the reference has {wav16k.shape[-1]} samples at 16 kHz; the speaker vector needs "
                         f"at least {MIN_SAMPLES_16K} (one 25 ms fbank frame)")
    return torch.stack([kaldi_fbank(row, num_mel_bins=80, sample_frequency=SV_SAMPLE_RATE, dither=0.0)
                        for row in wav16k])                                  # [B, T, 80]


@torch.no_grad()
def speaker_vector(model: ERes2NetV2, wav16k: torch.Tensor) -> torch.Tensor:
    """`model.forward3` of the fbank of 16 kHz audio [B, N] (or [N]) → [B, D], in the model's dtype."""
    param = next(model.parameters())
    feats = sv_features(wav16k.to(device=param.device, dtype=param.dtype))
    return model.forward3(feats)


class SpeakerVector(nn.Module):
    """The official `SV` helper as a module: an ERes2NetV2 plus the 32k → 16k resampler.

    `sv(wav16k)` gives the vector of 16 kHz audio (inference, sv.py); `sv.from_32k(wav32k)` first
    resamples 32 kHz audio exactly as the training-data preparation does (2-get-sv.py).
    """

    def __init__(self, model: ERes2NetV2) -> None:
        super().__init__()
        self.model = model.eval()
        self.resample_32k = Resample(32000, SV_SAMPLE_RATE)

    @property
    def vector_dim(self) -> int:
        return self.model.vector_dim

    def forward(self, wav16k: torch.Tensor) -> torch.Tensor:
        return speaker_vector(self.model, wav16k)

    @torch.no_grad()
    def from_32k(self, wav32k: torch.Tensor) -> torch.Tensor:
        """Vector of 32 kHz audio [B, N] (or [N]): resampled to 16 kHz first → [B, D]."""
        return speaker_vector(self.model, self.resample_32k(wav32k.float()))
