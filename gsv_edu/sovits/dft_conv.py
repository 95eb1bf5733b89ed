"""A CPU speed helper for inference: the decoder's wide 1-D convolutions by block DFT (overlap-save).

Why. A direct convolution with C_in input channels, C_out output channels and k taps costs
2·C_in·C_out·k FLOPs per output sample. The HiFi-GAN decoder spends most of its time in such
convolutions with k = 7 and 11 on 64–256 channels, and oneDNN already runs them close to the
CPU's matmul throughput (bench/decode.py), so no memory layout can make them much faster: only
less arithmetic can. Overlap-save convolution (Oppenheim & Schafer, "Discrete-Time Signal
Processing", 3rd ed., §8.7.3; for CNN layers Mathieu, Henaff & LeCun 2014, "Fast Training of
Convolutional Networks through FFTs") cuts the signal into blocks of L samples overlapping by
k − 1, transforms each block with a DFT, and turns the convolution into one complex C_in → C_out
matrix product per frequency bin, then transforms back. With L = 64 and k = 11 that is about 3×
less arithmetic; with k = 7 about 2×.

How it is computed here: everything is a matrix product, so that it runs at the CPU's matmul
speed. The real DFT of the blocks is a product with the [2·(L/2+1), L] matrix of cosines and
sines (an FFT of only 32 or 64 points gains nothing at these channel counts), the per-bin complex
products are one batched real product with [[Re H, −Im H], [Im H, Re H]] blocks, and the inverse
DFT of the first L − k + 1 samples of every block is again a product, which also adds the bias.
A dilated kernel (dilation d) is an ordinary kernel applied to each of the d interleaved phases
x[p::d] of the signal, so the blocks are cut along the phases and the DFT size does not grow
with the dilation.

How to use. `use_dft_convs(module)` switches every `nn.Conv1d` of the tree where this pays off
(`dft_pays_off`: measured on the official-size decoder) to `DFTConv1d`, a subclass, by changing
the object's class only — parameters, state-dict keys and hooks stay as they are, as with
`gsv_edu.sovits.channels_last`. `DFTConv1d` takes the block path only where it is exact and
meant to be used: float32 CPU tensors, no gradient being recorded, stride 1, one group, "same"
zero padding, a signal of at least `MIN_BLOCKS` blocks; otherwise (training, GPU, other dtypes) it is the channels-last convolution of
`ChannelsLastConv1d`. Its output has the time-major strides of the channels-last convolutions,
so the two kinds chain without copies. Outputs equal the direct convolution up to float
rounding (relative error about 4e-7 per layer). Cost: the frequency-domain weights of a folded
conv are kept (cached) while its weight is unchanged, 4·(L/2 + 1)/k times the size of the
weight (6–12×; about 0.3 GB for the official-size decoder); a weight
recomputed at every call (weight norm kept) is transformed at every call.
"""
from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torch.nn import functional as F

from gsv_edu.sovits.channels_last import ChannelsLastConv1d


MIN_BLOCKS = 32  # shorter signals (e.g. the decoder's conv_pre on the latent frames) stay direct


def dft_pays_off(conv: nn.Conv1d) -> bool:
    """True for the convolutions where the block-DFT path measured faster than oneDNN on the CPU."""
    k, c = conv.kernel_size[0], conv.in_channels
    return (conv.groups == 1 and conv.stride[0] == 1 and conv.padding_mode == "zeros"
            and ((k >= 7 and c >= 128) or (k >= 11 and c >= 64)))


def block_length(kernel_size: int, in_channels: int) -> int:
    """Samples per block: 64 for k > 7 below 256 channels (54 outputs of k = 11 per block), else 32
    (as fast there, and half the frequency-domain weights)."""
    return 64 if kernel_size > 7 and in_channels < 256 else 32


@functools.lru_cache(maxsize=8)
def dft_matrices(block: int, kernel_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(forward [2F, L], inverse [L − k + 1, 2F]) real DFT matrices, F = L/2 + 1 bins, rows/cols (bin, re/im).

    forward @ x gives (Re X_f, Im X_f) = (Σ x_l cos(2πfl/L), −Σ x_l sin(2πfl/L)); inverse @ Y gives
    the first L − k + 1 samples of the real signal whose half spectrum is Y (bins 0 and L/2
    counted once, the others twice, all over L). Computed in float64, stored in float32.
    """
    bins, hop = block // 2 + 1, block - kernel_size + 1
    f = torch.arange(bins, dtype=torch.float64)
    angle = 2 * math.pi * torch.outer(f, torch.arange(block, dtype=torch.float64)) / block  # [F, L]
    forward = torch.stack([torch.cos(angle), -torch.sin(angle)], 1).reshape(2 * bins, block)
    weight = torch.full((bins,), 2.0, dtype=torch.float64)
    weight[0] = weight[-1] = 1.0  # the DC and Nyquist bins appear once in the full spectrum
    angle = 2 * math.pi * torch.outer(torch.arange(hop, dtype=torch.float64), f) / block  # [hop, F]
    inverse = torch.stack([weight * torch.cos(angle), -weight * torch.sin(angle)], 2).reshape(hop, 2 * bins) / block
    return forward.float(), inverse.float()


def frequency_weights(weight: torch.Tensor, block: int) -> torch.Tensor:
    """The weight [C_out, C_in, k] as the real matrices of the per-bin complex products, [F, 2·C_in, 2·C_out].

    A convolution layer is a cross-correlation, y[t] = Σ_j w_j·x[t + j], so per bin Y = X·conj(H)
    with H the DFT of the kernel zero-padded to L: with X = Xr + i·Xi and H = Hr + i·Hi,
    Y = (Xr·Hr + Xi·Hi) + i·(Xi·Hr − Xr·Hi), i.e. the row [Xr | Xi] of the input channels times
    [[Hr, −Hi], [Hi, Hr]] gives the row [Yr | Yi] of the output channels. (A complex matrix
    product would need half the memory, but the reordering copies it needs made it slower.)
    """
    c_out, c_in, k = weight.shape
    h = torch.zeros(c_out, c_in, block, dtype=torch.float64, device=weight.device)
    h[:, :, :k] = weight.detach()
    spectrum = torch.fft.rfft(h, dim=-1)  # [C_out, C_in, F]
    hr = spectrum.real.permute(2, 1, 0)  # [F, C_in, C_out]
    hi = spectrum.imag.permute(2, 1, 0)
    top = torch.cat([hr, -hi], 2)  # rows Re X: [F, C_in, 2·C_out]
    bottom = torch.cat([hi, hr], 2)  # rows Im X
    return torch.cat([top, bottom], 1).to(weight.dtype)  # [F, 2·C_in, 2·C_out]


def dft_conv1d(x: torch.Tensor, weight_spectra: torch.Tensor, bias: torch.Tensor | None, kernel_size: int,
               dilation: int, block: int) -> torch.Tensor:
    """"Same"-padded convolution of x [B, C_in, T] by overlap-save → [B, C_out, T], time-major strides."""
    b, c_in, t = x.shape
    bins, c_out = weight_spectra.size(0), weight_spectra.size(-1) // 2
    forward, inverse = dft_matrices(block, kernel_size)
    hop, half, d = block - kernel_size + 1, (kernel_size - 1) // 2, dilation
    n = -(-(-(-t // d)) // hop)  # blocks per phase: ceil(ceil(T / d) / hop)
    rows = (n - 1) * hop + block  # padded length of each phase
    xp = F.pad(x.transpose(1, 2), (0, 0, half * d, rows * d - t - half * d))  # [B, rows·d, C_in], time-major
    # block i of phase p, sample l = xp[(i·hop + l)·d + p]: the d phases side by side as columns (p, c)
    tiles = xp.as_strided((b, n, block, d * c_in), (rows * d * c_in, hop * d * c_in, d * c_in, 1))
    spectra = torch.matmul(forward, tiles)  # [B, n, 2F, d·C_in], rows (bin, re/im)
    if d == 1:
        rows_in = spectra.view(b * n, bins, 2 * c_in).transpose(0, 1)  # [F, B·n, 2·C_in], a view
    else:
        rows_in = (spectra.view(b * n, bins, 2, d, c_in).permute(1, 0, 3, 2, 4)
                   .reshape(bins, b * n * d, 2 * c_in))  # [F, B·n·d, 2·C_in], rows (block, phase)
    products = torch.matmul(rows_in, weight_spectra)  # [F, B·n·d, 2·C_out], cols (re/im, C_out)
    products = (products.view(bins, b * n, d, 2, c_out).permute(1, 0, 3, 2, 4)
                .reshape(b * n, 2 * bins, d * c_out))  # [B·n, 2F, d·C_out], rows (bin, re/im)
    inverse = inverse.expand(b * n, hop, 2 * bins)
    if bias is None:
        out = torch.bmm(inverse, products)  # [B·n, hop, d·C_out]
    else:
        out = torch.baddbmm(bias.repeat(d).expand(b * n, hop, d * c_out), inverse, products)
    # out[b·n + i, m, p·C_out + o] is output sample (i·hop + m)·d + p of item b
    out = out.view(b, n * hop * d, c_out)[:, :t]  # [B, T, C_out]
    if b > 1 and n * hop * d != t:
        out = out.contiguous()  # dense, so that element-wise ops keep the time-major layout
    return out.transpose(1, 2)  # [B, C_out, T], time-major strides


class DFTConv1d(ChannelsLastConv1d):
    """nn.Conv1d computed by block-DFT (overlap-save) convolution in CPU inference; same parameters.

    Falls back to the channels-last direct convolution wherever the block path does not apply
    (module docstring).
    """

    def _dft_applies(self, input: torch.Tensor, weight: torch.Tensor) -> bool:
        k, d = self.kernel_size[0], self.dilation[0]
        hop = block_length(k, self.in_channels) - k + 1
        return (input.size(-1) >= MIN_BLOCKS * hop and input.device.type == "cpu" and input.dtype == torch.float32 and input.dim() == 3
                and weight.dtype == torch.float32
                and not (torch.is_grad_enabled() and (input.requires_grad or weight.requires_grad))
                and self.groups == 1 and self.stride[0] == 1 and self.padding_mode == "zeros"
                and not isinstance(self.padding, str) and k % 2 == 1 and self.padding[0] == d * (k - 1) // 2
                and k < block_length(k, self.in_channels))

    def _weight_spectra(self, weight: torch.Tensor, block: int) -> torch.Tensor:
        """Frequency-domain weights, cached while `weight` is the same Parameter, unchanged.

        "Unchanged" is its version counter: any in-place change through autograd-visible ops
        (an optimizer step, `load_state_dict`, `copy_` under no_grad) renews the cache; a write
        through `.data` is not seen, nor one into a Parameter created under `torch.inference_mode`
        (inference tensors have no version counter).
        """
        if not isinstance(weight, nn.Parameter):  # recomputed at every call (weight norm kept): no cache
            return frequency_weights(weight, block)
        version = None if weight.is_inference() else weight._version
        cache = self.__dict__.get("_dft_cache")
        if cache is None or cache[0] is not weight or cache[1] != (version, block):
            cache = self.__dict__["_dft_cache"] = (weight, (version, block), frequency_weights(weight, block))
        return cache[2]

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if not self._dft_applies(input, weight):
            return super()._conv_forward(input, weight, bias)
        k = self.kernel_size[0]
        block = block_length(k, self.in_channels)
        return dft_conv1d(input, self._weight_spectra(weight, block), bias, k, self.dilation[0], block)


def use_dft_convs(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch the convolutions of the tree where `dft_pays_off` to `DFTConv1d` (in place); returns the module.

    Meant for the decoder, after `use_channels_last_convs` (the other convolutions stay
    channels-last). `enabled=False` switches them back to the class they had before.
    """
    for sub in module.modules():
        if enabled and type(sub) in (nn.Conv1d, ChannelsLastConv1d) and dft_pays_off(sub):
            sub.__dict__["_class_before_dft"] = type(sub)
            sub.__class__ = DFTConv1d
        elif not enabled and type(sub) is DFTConv1d:
            sub.__class__ = sub.__dict__.pop("_class_before_dft", nn.Conv1d)
            sub.__dict__.pop("_dft_cache", None)
    return module
