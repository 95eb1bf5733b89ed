"""Windowed-sinc resampling, equal to torchaudio's `Resample` kernel (the v2Pro 32 kHz → 16 kHz step).

The official data preparation (`GPT_SoVITS/prepare_datasets/2-get-sv.py · SV.compute_embedding3
@48b1a01`) turns the 32 kHz training wav into 16 kHz with `torchaudio.transforms.Resample(32000,
16000)` before the speaker-verification features. The features depend on that filter, so we
reproduce it here (without torchaudio): soxr, which gsv_edu uses elsewhere, is a different filter.

The method (J. O. Smith, "Digital Audio Resampling Home Page", bandlimited interpolation): with
orig = 32000 / g and new = 16000 / g (g the gcd, here orig = 2, new = 1), output sample j is

    y[j] = sum_i x[i] h(i / orig - j / new),
    h(t) = c sinc(pi c' t) w(t),   c' = min(orig, new) * rolloff (the cut-off, in units of orig),
    w(t) = cos^2(pi t c' / (2 L))  for |t c'| <= L (a Hann window of L zero crossings), else 0,

with L = lowpass_filter_width = 6, rolloff = 0.99, c = c' / orig. Because the pattern repeats
every `new` output samples, this is one strided convolution with `new` filters of
2 * width + orig taps, width = ceil(L * orig / c'), over the signal zero-padded by `width` on the
left and `width + orig` on the right; the output keeps ceil(N * new / orig) samples.
The kernel is computed in float64 and stored in float32 (torchaudio's default).
"""
from __future__ import annotations

import functools
import math

import torch
from torch import nn

__all__ = ["sinc_resample_kernel", "resample", "Resample", "ResampleError"]


class ResampleError(ValueError):
    """Rates or options that this resampler cannot use (non-integer or non-positive rates, ...)."""


def _reduced_rates(orig_freq: int, new_freq: int) -> tuple[int, int]:
    if int(orig_freq) != orig_freq or int(new_freq) != new_freq:
        raise ResampleError(f"sample rates must be integers, got {orig_freq} and {new_freq}")
    if orig_freq <= 0 or new_freq <= 0:
        raise ResampleError(f"sample rates must be positive, got {orig_freq} and {new_freq}")
    g = math.gcd(int(orig_freq), int(new_freq))
    return int(orig_freq) // g, int(new_freq) // g


@functools.lru_cache(maxsize=8)
def _kernel_cached(orig: int, new: int, lowpass_filter_width: int, rolloff: float) -> tuple[torch.Tensor, int]:
    cutoff = min(orig, new) * rolloff                        # c', in units of the reduced orig rate
    width = math.ceil(lowpass_filter_width * orig / cutoff)  # taps each side, in input samples
    taps = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig  # [1, 1, K]
    # torchaudio divides the integer phases in the default float32, then adds them in float64
    phase = (torch.arange(0, -new, -1)[:, None, None] / new).to(torch.float32)          # [new, 1, 1]
    t = (phase + taps) * cutoff                              # [new, 1, K], in zero crossings
    t = t.clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    kernel = sinc * (window * (cutoff / orig))               # [new, 1, K], torchaudio's order of products
    return kernel.to(torch.float32), width


def sinc_resample_kernel(orig_freq: int, new_freq: int, lowpass_filter_width: int = 6,
                         rolloff: float = 0.99) -> tuple[torch.Tensor, int]:
    """The conv1d filters [new, 1, 2 * width + orig] (float32) and `width` for orig_freq → new_freq.

    `orig`/`new` are the rates divided by their gcd (32000 → 16000: 2 and 1, 28 taps, width 13).
    """
    if lowpass_filter_width <= 0:
        raise ResampleError(f"lowpass_filter_width must be positive, got {lowpass_filter_width}")
    orig, new = _reduced_rates(orig_freq, new_freq)
    kernel, width = _kernel_cached(orig, new, int(lowpass_filter_width), float(rolloff))
    return kernel.clone(), width


def _apply(wav: torch.Tensor, orig: int, new: int, kernel: torch.Tensor, width: int) -> torch.Tensor:
    if not wav.is_floating_point():
        raise ResampleError(f"the waveform must be a floating-point tensor, got {wav.dtype}")
    shape = wav.shape
    flat = wav.reshape(-1, shape[-1])                                   # [B, N]
    length = flat.shape[-1]
    padded = nn.functional.pad(flat, (width, width + orig))             # [B, width + N + width + orig]
    out = nn.functional.conv1d(padded[:, None], kernel.to(flat), stride=orig)  # [B, new, N / orig + 1]
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)                # [B, new * (N / orig + 1)], interleaved
    target = math.ceil(new * length / orig)
    return out[:, :target].reshape(*shape[:-1], -1)                     # [..., ceil(N * new / orig)]


def resample(wav: torch.Tensor, orig_freq: int, new_freq: int, lowpass_filter_width: int = 6,
             rolloff: float = 0.99) -> torch.Tensor:
    """Resample [..., N] → [..., ceil(N * new_freq / orig_freq)] with the Hann-windowed sinc filter.

    Equal to `torchaudio.transforms.Resample(orig_freq, new_freq)(wav)` for float32 input (same
    float32 kernel); the input is returned unchanged when the rates are equal.
    """
    if orig_freq == new_freq:
        _reduced_rates(orig_freq, new_freq)
        return wav
    orig, new = _reduced_rates(orig_freq, new_freq)
    kernel, width = sinc_resample_kernel(orig_freq, new_freq, lowpass_filter_width, rolloff)
    return _apply(wav, orig, new, kernel, width)


class Resample(nn.Module):
    """`resample` as a module with the kernel precomputed (a buffer, so `.to(device)` moves it).

    Argument names and defaults as `torchaudio.transforms.Resample` (Hann-windowed sinc only).
    """

    def __init__(self, orig_freq: int = 16000, new_freq: int = 16000, lowpass_filter_width: int = 6,
                 rolloff: float = 0.99) -> None:
        super().__init__()
        self.orig_freq, self.new_freq = orig_freq, new_freq
        self.orig, self.new = _reduced_rates(orig_freq, new_freq)
        self.lowpass_filter_width, self.rolloff = lowpass_filter_width, rolloff
        kernel, self.width = sinc_resample_kernel(orig_freq, new_freq, lowpass_filter_width, rolloff)
        # not part of any state dict (torchaudio's is persistent, but nothing official saves it)
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if self.orig_freq == self.new_freq:
            return wav
        return _apply(wav, self.orig, self.new, self.kernel, self.width)
