"""Audio in and out: loading, resampling, the official loudness mix, and the two spectrograms
SoVITS uses.

Mirrors `GPT_SoVITS/module/mel_processing.py · spectrogram_torch, spec_to_mel_torch,
mel_spectrogram_torch @48b1a01`, `tools/my_utils.py · load_audio @48b1a01` (at the root of the
official repository, not under GPT_SoVITS/) and the loudness mix of
`GPT_SoVITS/prepare_datasets/2-get-hubert-wav32k.py · name2go @48b1a01`.

- The *linear* magnitude spectrogram [B, 1025, T] (n_fft 2048, hop 640 = 20 ms at 32 kHz) is what
  the posterior encoder and the style encoder read.
- The *log-mel* spectrogram [B, 128, T] is only used by the mel reconstruction loss.
"""
from __future__ import annotations

import functools
import os
import warnings

import numpy as np
import soundfile as sf
import soxr
import torch

# Official training data are resampled to these two rates: 32 kHz for SoVITS, 16 kHz for HuBERT.
SOVITS_SR = 32000
HUBERT_SR = 16000
SILENCE_PEAK = 1e-4  # a file whose peak |x| is below this (-80 dBFS) is treated as silent


class AudioError(ValueError):
    """An audio file could not be used; the message names the file and says why."""


# ----------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------

def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a 1-D float signal as the official pipeline does (`librosa.resample`, whose
    default `soxr_hq` is libsoxr's HQ mode).

    Calls soxr directly: bit-identical to librosa's result (checked in tests/test_audio.py) and
    without importing librosa, which costs seconds on first use.
    """
    if orig_sr == target_sr:
        return y
    return soxr.resample(np.asarray(y, dtype=np.float32), orig_sr, target_sr, quality="HQ").astype(np.float32)


def _read(path: str) -> tuple[np.ndarray, int]:
    """Decode any file soundfile reads (wav, flac, ogg, ...); fall back to librosa (audioread)."""
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)  # [N, channels]
        return data.mean(axis=1), int(sr)
    except Exception as sf_error:  # not a format libsndfile knows: try librosa/audioread (mp3, m4a...)
        try:
            import librosa  # deferred: importing librosa takes seconds; only needed for mp3/m4a

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data, sr = librosa.load(path, sr=None, mono=True)
            return data.astype(np.float32), int(sr)
        except Exception:
            raise AudioError(f"{path}: cannot read audio ({sf_error})") from None


def load_audio(path: str | os.PathLike, sampling_rate: int = SOVITS_SR, *, allow_silent: bool = False) -> np.ndarray:
    """Load an audio file as mono float32 in [-1, 1] at `sampling_rate` ([N]).

    Raises `AudioError` naming the file when it is missing, unreadable, empty, or (unless
    `allow_silent`) all silent.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioError(f"{path}: no such file")
    y, sr = _read(path)
    if y.size == 0:
        raise AudioError(f"{path}: the file holds no samples")
    if not np.isfinite(y).all():
        raise AudioError(f"{path}: the file holds NaN or infinite samples")
    if not allow_silent and np.abs(y).max() < SILENCE_PEAK:
        raise AudioError(f"{path}: the audio is silent (peak below {SILENCE_PEAK})")
    return resample(y, sr, sampling_rate)


def save_audio(path: str | os.PathLike, y, sampling_rate: int = SOVITS_SR) -> None:
    """Write a mono signal ([N] or [1, N], numpy or torch) as 16-bit PCM WAV (or FLAC by suffix)."""
    if isinstance(y, torch.Tensor):
        y = y.detach().float().cpu().numpy()
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    sf.write(os.fspath(path), np.clip(y, -1.0, 1.0), sampling_rate, subtype="PCM_16")


def loudness_normalize(y: np.ndarray, peak_target: float = 0.95, alpha: float = 0.5,
                       gain: float = 1.0) -> np.ndarray:
    """The official loudness mix: half peak-normalised to 0.95, half the original signal, × gain.

        y_mix = gain · (peak_target · alpha · y / max|y| + (1 − alpha) · y)

    The official preparation (`GPT_SoVITS/prepare_datasets/2-get-hubert-wav32k.py · name2go
    @48b1a01`) writes the mix with gain 32768 as the 32 kHz training audio (int16) and feeds the
    mix with gain 1145.14 (resampled to 16 kHz) to HuBERT. It is computed in the official order,
    y / max|y| · (peak_target·alpha·gain) + ((1 − alpha)·gain) · y, so that float32 input gives
    the official float32 values bit for bit (multiplying by the gain afterwards differs by one
    rounding: 1 int16 step in about 1 sample in 14 000 of the sample corpus).
    """
    peak = float(np.abs(y).max())
    if peak == 0.0:
        raise AudioError("loudness_normalize: the signal is all zeros")
    return (y / peak * (peak_target * alpha * gain) + ((1.0 - alpha) * gain) * y).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# spectrograms
# ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=16)
def _hann_window(win_length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.hann_window(win_length, dtype=dtype, device=device)  # periodic Hann [win]


@functools.lru_cache(maxsize=16)
def mel_basis(sampling_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None,
              dtype: torch.dtype = torch.float32, device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """librosa's mel filterbank [n_mels, n_fft/2+1] (Slaney scale and area normalisation)."""
    import librosa  # deferred: importing librosa takes seconds

    m = librosa.filters.mel(sr=sampling_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return torch.from_numpy(m).to(dtype=dtype, device=device)


def spectrogram(y: torch.Tensor, n_fft: int = 2048, hop_length: int = 640, win_length: int = 2048) -> torch.Tensor:
    """Linear magnitude spectrogram [B, n_fft/2+1, T], T = floor(N / hop) for N ≥ hop.

    Same numbers as the official `spectrogram_torch(y, n_fft, sr, hop, win, center=False)`:
    reflect-pad (n_fft − hop)/2 samples on each side, STFT with a periodic Hann window,
    magnitude sqrt(re² + im² + 1e-8). Uses the complex STFT output: the real-view output that
    `GPT_SoVITS/module/mel_processing.py · spectrogram_torch @48b1a01` asks for
    (`return_complex=False`) is deprecated by PyTorch. Accepts [B, N] or [N].
    """
    if y.dim() == 1:
        y = y.unsqueeze(0)  # [1, N]
    peak_lo, peak_hi = float(y.detach().min()), float(y.detach().max())  # detach: y_hat in training needs grad
    if peak_lo < -1.2 or peak_hi > 1.2:  # the official only prints this too
        warnings.warn(f"spectrogram: waveform outside [-1.2, 1.2] (min {peak_lo:.2f}, max {peak_hi:.2f})")
    pad = (n_fft - hop_length) // 2
    y = torch.nn.functional.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)  # [B, N + 2·pad]
    window = _hann_window(win_length, y.dtype, y.device)
    stft = torch.stft(y, n_fft, hop_length=hop_length, win_length=win_length, window=window,
                      center=False, normalized=False, onesided=True, return_complex=True)  # [B, F, T] complex
    return torch.sqrt(stft.real.square() + stft.imag.square() + 1e-8)  # [B, F, T]


def spec_to_mel(spec: torch.Tensor, n_fft: int = 2048, n_mels: int = 128, sampling_rate: int = SOVITS_SR,
                fmin: float = 0.0, fmax: float | None = None) -> torch.Tensor:
    """Log-mel [B, n_mels, T] from a linear magnitude spectrogram: log(clamp(M · spec, 1e-5))."""
    m = mel_basis(sampling_rate, n_fft, n_mels, fmin, fmax, spec.dtype, spec.device)  # [n_mels, F]
    mel = torch.matmul(m, spec)  # [B, n_mels, T]
    return torch.log(torch.clamp(mel, min=1e-5))


def mel_spectrogram(y: torch.Tensor, n_fft: int = 2048, n_mels: int = 128, sampling_rate: int = SOVITS_SR,
                    hop_length: int = 640, win_length: int = 2048, fmin: float = 0.0,
                    fmax: float | None = None) -> torch.Tensor:
    """Log-mel spectrogram [B, n_mels, T] of a waveform; equals spec_to_mel(spectrogram(y))."""
    return spec_to_mel(spectrogram(y, n_fft, hop_length, win_length), n_fft, n_mels, sampling_rate, fmin, fmax)
