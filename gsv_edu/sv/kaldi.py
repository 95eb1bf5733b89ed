"""Kaldi's log mel filterbank ("fbank"), the input features of the v2Pro speaker-verification model.

Mirrors `GPT_SoVITS/eres2net/kaldi.py · fbank @48b1a01`, which is torchaudio's
`compliance.kaldi.fbank` (itself a port of Kaldi's `compute-fbank-feats`). GPT-SoVITS calls it as
`fbank(wav[None], num_mel_bins=80, sample_frequency=16000, dither=0)` on a 16 kHz reference, so
every other option keeps Kaldi's default. Written here from the algorithm, without torchaudio.

Per frame (25 ms = 400 samples, every 10 ms = 160 samples, only frames that fit: "snip edges"):

1. remove the DC offset (subtract the frame's mean);
2. pre-emphasis: x[j] - 0.97 x[j-1], with x[-1] taken as x[0];
3. multiply by the Povey window, a Hann window raised to the power 0.85 (zero at both ends);
4. zero-pad to the next power of two (512) and take the power spectrum |FFT|^2 (257 bins);
5. sum the bins with 80 triangular filters equally spaced on the mel scale
   mel(f) = 1127 ln(1 + f/700) between 20 Hz and Nyquist (Kaldi's filters: triangles in mel,
   evaluated at each FFT bin's mel value, no area normalisation; the Nyquist bin gets weight 0);
6. natural log, with the float32 machine epsilon (1.19e-7) as floor.

No mean normalisation (GPT-SoVITS feeds the raw log energies to ERes2NetV2). Shapes: a
waveform [N] or [1, N] gives features [frames, num_mel_bins], frames = 1 + (N - 400) // 160.
The spectral-domain steps follow Davis & Mermelstein (1980) and the HTK book's filterbank; the
exact conventions (Povey window, bins, epsilon) are Kaldi's (feature-window.cc, mel-computations.cc).
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import torch

__all__ = ["kaldi_fbank", "mel_banks", "feature_window", "frame_signal", "KaldiFbankError",
           "FLOAT_EPSILON", "mel_scale", "inverse_mel_scale"]

# Kaldi floors energies at std::numeric_limits<float>::epsilon() (also in float64 / float16 runs).
FLOAT_EPSILON = torch.finfo(torch.float32).eps  # 1.1920928955078125e-07
WINDOW_TYPES = ("povey", "hanning", "hamming", "rectangular", "blackman")


class KaldiFbankError(ValueError):
    """The waveform or an option cannot give Kaldi fbank features (too short, bad shape, bad option)."""


def mel_scale(freq_hz):
    """Kaldi's (and HTK's) mel scale: 1127 ln(1 + f / 700). Works on floats and tensors."""
    if isinstance(freq_hz, torch.Tensor):
        return 1127.0 * torch.log(1.0 + freq_hz / 700.0)
    return 1127.0 * math.log(1.0 + freq_hz / 700.0)


def inverse_mel_scale(mel):
    """The inverse of `mel_scale`: 700 (exp(mel / 1127) - 1)."""
    if isinstance(mel, torch.Tensor):
        return 700.0 * (torch.exp(mel / 1127.0) - 1.0)
    return 700.0 * (math.exp(mel / 1127.0) - 1.0)


def _next_power_of_two(n: int) -> int:
    return 1 if n == 0 else 1 << (n - 1).bit_length()


@functools.lru_cache(maxsize=16)
def _mel_banks_cached(num_bins: int, padded_window_size: int, sample_frequency: float,
                      low_freq: float, high_freq: float) -> torch.Tensor:
    nyquist = 0.5 * sample_frequency
    if high_freq <= 0.0:
        high_freq += nyquist  # Kaldi: a non-positive high_freq is an offset from Nyquist
    if num_bins <= 3:
        raise KaldiFbankError(f"num_mel_bins must be at least 4, got {num_bins}")
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise KaldiFbankError(f"need 0 <= low_freq < high_freq <= Nyquist ({nyquist} Hz), "
                              f"got low_freq {low_freq}, high_freq {high_freq}")
    num_fft_bins = padded_window_size // 2  # the Nyquist bin is left out (weight 0 below)
    fft_bin_width = sample_frequency / padded_window_size
    mel_low, mel_high = mel_scale(low_freq), mel_scale(high_freq)
    # num_bins + 1 intervals: the outermost triangles reach half an interval beyond the edges
    mel_delta = (mel_high - mel_low) / (num_bins + 1)
    # float32 like Kaldi (BaseFloat) and the official code; the edges in Python floats
    index = torch.arange(num_bins).unsqueeze(1)                        # [num_bins, 1]
    left = mel_low + index * mel_delta                                 # [num_bins, 1]
    center = mel_low + (index + 1.0) * mel_delta                       # [num_bins, 1]
    right = mel_low + (index + 2.0) * mel_delta                        # [num_bins, 1]
    bin_mel = mel_scale(fft_bin_width * torch.arange(float(num_fft_bins))).unsqueeze(0)  # [1, num_fft_bins]
    rising = (bin_mel - left) / (center - left)                        # [num_bins, num_fft_bins]
    falling = (right - bin_mel) / (right - center)                     # [num_bins, num_fft_bins]
    banks = torch.clamp(torch.minimum(rising, falling), min=0.0)       # triangles, 0 outside
    return torch.nn.functional.pad(banks, (0, 1))                      # [num_bins, num_fft_bins + 1]


def mel_banks(num_bins: int = 80, padded_window_size: int = 512, sample_frequency: float = 16000.0,
              low_freq: float = 20.0, high_freq: float = 0.0, dtype: torch.dtype = torch.float32,
              device: Optional[torch.device] = None) -> torch.Tensor:
    """Kaldi's triangular mel filters [num_bins, padded_window_size // 2 + 1] over the power spectrum.

    `high_freq <= 0` counts back from Nyquist (Kaldi's convention; the default 0 means Nyquist).
    The last column (the Nyquist bin) is all zeros, as in Kaldi, where the filters only span
    bins 0 .. N/2 - 1.
    """
    banks = _mel_banks_cached(int(num_bins), int(padded_window_size), float(sample_frequency),
                              float(low_freq), float(high_freq))
    return banks.to(device=device, dtype=dtype, copy=True)  # a copy: the cached table stays intact


def feature_window(window_type: str, size: int, blackman_coeff: float = 0.42,
                   dtype: torch.dtype = torch.float32, device: Optional[torch.device] = None) -> torch.Tensor:
    """Kaldi's analysis windows [size] (feature-window.cc). "povey" = symmetric Hann ** 0.85."""
    if window_type == "povey":
        return torch.hann_window(size, periodic=False, dtype=dtype, device=device).pow(0.85)
    if window_type == "hanning":
        return torch.hann_window(size, periodic=False, dtype=dtype, device=device)
    if window_type == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46, dtype=dtype, device=device)
    if window_type == "rectangular":
        return torch.ones(size, dtype=dtype, device=device)
    if window_type == "blackman":
        n = torch.arange(size, dtype=dtype, device=device)
        a = 2 * math.pi / (size - 1)
        return blackman_coeff - 0.5 * torch.cos(a * n) + (0.5 - blackman_coeff) * torch.cos(2 * a * n)
    raise KaldiFbankError(f"window_type must be one of {WINDOW_TYPES}, got {window_type!r}")


def frame_signal(wave: torch.Tensor, window_size: int, window_shift: int, snip_edges: bool = True) -> torch.Tensor:
    """Cut a 1-D signal [N] into overlapping frames [m, window_size] (a strided view when possible).

    snip_edges=True (Kaldi's default): only frames that fit, m = 1 + (N - window_size) // shift.
    snip_edges=False: m = (N + shift // 2) // shift frames centred on multiples of the shift, the
    signal mirrored at both ends (Kaldi's mirroring repeats the edge sample: ... x1 x0 | x0 x1 ...).
    """
    n = wave.shape[0]
    if snip_edges:
        if n < window_size:
            raise KaldiFbankError(f"the waveform has {n} samples, fewer than one frame ({window_size})")
        m = 1 + (n - window_size) // window_shift
    else:
        m = (n + window_shift // 2) // window_shift
        pad = window_size // 2 - window_shift // 2
        reversed_wave = torch.flip(wave, [0])
        if pad > 0:
            if pad > n:
                raise KaldiFbankError(f"the waveform has {n} samples, too few to mirror {pad} at its start")
            wave = torch.cat((reversed_wave[-pad:], wave, reversed_wave))
        else:
            wave = torch.cat((wave[-pad:], reversed_wave))
    wave = wave.contiguous()
    return wave.as_strided((m, window_size), (window_shift * wave.stride(0), wave.stride(0)))


def kaldi_fbank(wav: torch.Tensor, num_mel_bins: int = 80, sample_frequency: float = 16000.0,
                dither: float = 0.0, *, frame_length: float = 25.0, frame_shift: float = 10.0,
                preemphasis_coefficient: float = 0.97, remove_dc_offset: bool = True,
                window_type: str = "povey", blackman_coeff: float = 0.42,
                round_to_power_of_two: bool = True, snip_edges: bool = True,
                low_freq: float = 20.0, high_freq: float = 0.0,
                use_energy: bool = False, raw_energy: bool = True, energy_floor: float = 1.0,
                htk_compat: bool = False, use_log_fbank: bool = True, use_power: bool = True,
                subtract_mean: bool = False, channel: int = -1,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Kaldi fbank features [frames, num_mel_bins (+1 with use_energy)] of one waveform.

    `wav`: [N] or [C, N] in the waveform's own scale (GPT-SoVITS passes floats in [-1, 1]);
    `channel=-1` expects mono (C = 1), otherwise picks that row. Defaults are Kaldi's except
    `num_mel_bins=80` (GPT-SoVITS' value; Kaldi's is 23). `dither` adds `dither * N(0, 1)` noise
    per sample (from `generator` when given); GPT-SoVITS uses 0. VTLN warping is not provided.
    Mirrors `GPT_SoVITS/eres2net/kaldi.py · fbank @48b1a01`; see the module docstring.
    """
    if not isinstance(wav, torch.Tensor) or not wav.is_floating_point():
        raise KaldiFbankError(f"wav must be a floating-point tensor, got "
                              f"{type(wav).__name__ if not isinstance(wav, torch.Tensor) else wav.dtype}")
    if wav.dim() == 1:
        wave = wav
    elif wav.dim() == 2:
        if channel < 0 and wav.shape[0] != 1:
            raise KaldiFbankError(f"wav has {wav.shape[0]} channels; pass channel=<index> to pick one "
                                  "(channel=-1 expects mono)")
        index = max(channel, 0)
        if index >= wav.shape[0]:
            raise KaldiFbankError(f"channel {channel} does not exist in a wav of {wav.shape[0]} channels")
        wave = wav[index]
    else:
        raise KaldiFbankError(f"wav must be [N] or [channels, N], got shape {tuple(wav.shape)}")
    if sample_frequency <= 0:
        raise KaldiFbankError(f"sample_frequency must be positive, got {sample_frequency}")
    if not 0.0 <= preemphasis_coefficient <= 1.0:
        raise KaldiFbankError(f"preemphasis_coefficient must be in [0, 1], got {preemphasis_coefficient}")
    window_shift = int(sample_frequency * frame_shift * 0.001)   # samples (160 at 16 kHz)
    window_size = int(sample_frequency * frame_length * 0.001)   # samples (400 at 16 kHz)
    padded_size = _next_power_of_two(window_size) if round_to_power_of_two else window_size  # 512
    if window_shift <= 0:
        raise KaldiFbankError(f"frame_shift {frame_shift} ms is less than one sample at {sample_frequency} Hz")
    if window_size < 2:
        raise KaldiFbankError(f"frame_length {frame_length} ms gives a window of {window_size} samples (need 2)")
    if padded_size % 2:
        raise KaldiFbankError(f"the FFT size {padded_size} is odd; use round_to_power_of_two=True "
                              "or an even frame_length")
    if wave.shape[0] < window_size:
        raise KaldiFbankError(
            f"the waveform has {wave.shape[0]} samples; Kaldi fbank needs at least one frame of "
            f"{window_size} samples ({frame_length:g} ms at {sample_frequency:g} Hz)")
    dtype, device = wave.dtype, wave.device

    frames = frame_signal(wave, window_size, window_shift, snip_edges)          # [m, window_size]
    if dither != 0.0:
        noise = torch.randn(frames.shape, dtype=dtype, device=device, generator=generator)
        frames = frames + dither * noise
    if remove_dc_offset:
        frames = frames - frames.mean(dim=1, keepdim=True)                      # [m, window_size]
    epsilon = torch.tensor(FLOAT_EPSILON, dtype=dtype, device=device)
    if use_energy and raw_energy:
        log_energy = _log_energy(frames, epsilon, energy_floor)               # [m]
    if preemphasis_coefficient != 0.0:
        previous = torch.cat((frames[:, :1], frames[:, :-1]), dim=1)           # x[j-1], x[-1] := x[0]
        frames = frames - preemphasis_coefficient * previous
    frames = frames * feature_window(window_type, window_size, blackman_coeff, dtype, device)  # [m, window_size]
    if padded_size != window_size:
        frames = torch.nn.functional.pad(frames, (0, padded_size - window_size))  # [m, padded_size]
    if use_energy and not raw_energy:
        log_energy = _log_energy(frames, epsilon, energy_floor)

    spectrum = torch.fft.rfft(frames).abs()                                    # [m, padded_size // 2 + 1]
    if use_power:
        spectrum = spectrum.pow(2.0)
    banks = mel_banks(num_mel_bins, padded_size, sample_frequency, low_freq, high_freq, dtype, device)
    features = spectrum @ banks.T                                              # [m, num_mel_bins]
    if use_log_fbank:
        features = torch.maximum(features, epsilon).log()
    if use_energy:
        column = log_energy.unsqueeze(1)                                       # [m, 1]
        features = torch.cat((features, column) if htk_compat else (column, features), dim=1)
    if subtract_mean:
        features = features - features.mean(dim=0, keepdim=True)
    return features


def _log_energy(frames: torch.Tensor, epsilon: torch.Tensor, energy_floor: float) -> torch.Tensor:
    """log(sum of squares) per frame [m], floored at log(energy_floor) unless energy_floor is 0."""
    log_energy = torch.maximum(frames.pow(2).sum(1), epsilon).log()
    if energy_floor == 0.0:
        return log_energy
    return torch.clamp(log_energy, min=math.log(energy_floor))
