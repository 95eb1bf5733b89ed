"""The HiFi-GAN generator that turns the latent z [B, I, T] into the 32 kHz waveform [B, 1, 640·T].

Mirrors `GPT_SoVITS/module/models.py · Generator @48b1a01` and
`GPT_SoVITS/module/modules.py · ResBlock1, ResBlock2 @48b1a01`, i.e. the V1 generator of
HiFi-GAN (Kong et al. 2020, "HiFi-GAN: Generative Adversarial Networks for Efficient and High
Fidelity Speech Synthesis") with a global conditioning input as in VITS.

Structure: conv_pre (+ cond(g)) → per upsampling stage: leaky ReLU → transposed conv (×u_i in
time, half the channels) → average of `len(resblock_kernel_sizes)` multi-receptive-field
ResBlocks → leaky ReLU (slope 0.01) → conv_post → tanh.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from gsv_edu.sovits.commons import get_padding
from gsv_edu.sovits.weight_norm import fold_weight_norm, weight_norm

LRELU_SLOPE = 0.1  # slope of every leaky ReLU in the generator and discriminators (but see Generator)


def init_weights(module: nn.Module, mean: float = 0.0, std: float = 0.01) -> None:
    """The official `commons.init_weights`: N(mean, std) into the `.weight` of every conv.

    Official quirk (`GPT_SoVITS/module/commons.py · init_weights @48b1a01`, applied by
    `GPT_SoVITS/module/models.py · Generator.__init__` and `GPT_SoVITS/module/modules.py ·
    ResBlock1.__init__`): it is applied only to weight-normed convs, where it
    writes into the derived `weight` that weight norm recomputes from g and v before the next
    forward — so it changes no value. We keep the call because it draws random numbers: with
    a fixed seed, the following modules then get the same initial weights as in the official
    code.
    """
    if "Conv" in type(module).__name__:
        module.weight.data.normal_(mean, std)


class ResBlock1(nn.Module):
    """HiFi-GAN ResBlock type 1: for each dilation d, x ← x + conv2(lrelu(conv1_d(lrelu(x)))).

    `convs1.n` has dilation `dilation[n]`, `convs2.n` dilation 1; all keep the length ("same"
    padding) and all are weight-normed.
    """

    def __init__(self, channels: int, kernel_size: int = 3, dilation: tuple[int, ...] = (1, 3, 5)):
        super().__init__()
        self.convs1 = nn.ModuleList([
            weight_norm(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d,
                                  padding=get_padding(kernel_size, d)))
            for d in dilation])
        self.convs1.apply(init_weights)
        self.convs2 = nn.ModuleList([
            weight_norm(nn.Conv1d(channels, channels, kernel_size, 1, dilation=1,
                                  padding=get_padding(kernel_size, 1)))
            for _ in dilation])
        self.convs2.apply(init_weights)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, C, T] → [B, C, T]."""
        # The in-place ops (leaky_relu_, add_) write into fresh conv outputs that nothing else
        # uses (autograd does not need a conv's output), saving memory passes over long signals.
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = F.leaky_relu(x, LRELU_SLOPE)  # [B, C, T]; x itself is still needed below
            if x_mask is not None:
                xt = xt * x_mask
            xt = c1(xt)
            xt = F.leaky_relu_(xt, LRELU_SLOPE)
            if x_mask is not None:
                xt = xt * x_mask
            xt = c2(xt)
            x = xt.add_(x)  # residual: x + block(x)
        if x_mask is not None:
            x = x * x_mask
        return x

    def remove_weight_norm(self) -> None:
        fold_weight_norm(self)


class ResBlock2(nn.Module):
    """HiFi-GAN ResBlock type 2 (config resblock "2"): for each dilation d, x ← x + conv_d(lrelu(x))."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: tuple[int, ...] = (1, 3)):
        super().__init__()
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d,
                                  padding=get_padding(kernel_size, d)))
            for d in dilation])
        self.convs.apply(init_weights)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, C, T] → [B, C, T]."""
        for c in self.convs:
            xt = F.leaky_relu(x, LRELU_SLOPE)
            if x_mask is not None:
                xt = xt * x_mask
            xt = c(xt)
            x = xt.add_(x)  # residual, in place into the fresh conv output
        if x_mask is not None:
            x = x * x_mask
        return x

    def remove_weight_norm(self) -> None:
        fold_weight_norm(self)


class Generator(nn.Module):
    """HiFi-GAN V1 generator with global conditioning: z [B, I, T] (+ g [B, G, 1]) → wav [B, 1, T·Πu].

    Stage i (i = 0 … len(upsample_rates) − 1): leaky ReLU(0.1) → `ups.i`, a weight-normed
    ConvTranspose1d (C/2^i → C/2^(i+1) channels, kernel k_i, stride u_i, padding (k_i − u_i)/2,
    so exactly ×u_i in time) → mean of the ResBlocks `resblocks.{K·i + j}` (j over the kernel
    sizes, K = number of kernel sizes).
    """

    def __init__(self, initial_channel: int, resblock: str, resblock_kernel_sizes: list[int],
                 resblock_dilation_sizes: list[list[int]], upsample_rates: list[int],
                 upsample_initial_channel: int, upsample_kernel_sizes: list[int], gin_channels: int = 0):
        super().__init__()
        if len(upsample_rates) != len(upsample_kernel_sizes):
            raise ValueError(f"Generator: {len(upsample_rates)} upsample_rates but "
                             f"{len(upsample_kernel_sizes)} upsample_kernel_sizes")
        for u, k in zip(upsample_rates, upsample_kernel_sizes):
            if (k - u) % 2 != 0 or k < u:
                raise ValueError(f"Generator: upsample kernel {k} with stride {u} does not upsample "
                                 f"exactly ×{u} (need k ≥ u and k − u even)")
        if str(resblock) not in ("1", "2"):
            raise ValueError(f"Generator: resblock must be '1' or '2', got {resblock!r}")
        self.num_kernels = len(resblock_kernel_sizes)
        self.num_upsamples = len(upsample_rates)
        self.upsample_factor = math.prod(upsample_rates)  # samples per latent frame (640 = hop)

        self.conv_pre = nn.Conv1d(initial_channel, upsample_initial_channel, 7, 1, padding=3)
        block = ResBlock1 if str(resblock) == "1" else ResBlock2

        self.ups = nn.ModuleList()
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
            self.ups.append(weight_norm(nn.ConvTranspose1d(
                upsample_initial_channel // (2 ** i), upsample_initial_channel // (2 ** (i + 1)),
                k, u, padding=(k - u) // 2)))

        self.resblocks = nn.ModuleList()
        ch = upsample_initial_channel
        for i in range(len(self.ups)):
            ch = upsample_initial_channel // (2 ** (i + 1))
            for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(block(ch, k, tuple(d)))

        # Official quirk (GPT_SoVITS/module/models.py · Generator.__init__ @48b1a01, bias=is_bias,
        # default False): the output conv has no bias.
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=False)
        self.ups.apply(init_weights)  # no effect on values, see init_weights

        if gin_channels != 0:
            self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, I, T], g [B, G, 1] or None → waveform [B, 1, T·upsample_factor] in (−1, 1)."""
        x = self.conv_pre(x)  # [B, C, T]
        if g is not None:
            x = x + self.cond(g)  # [B, C, T] + [B, C, 1]

        for i in range(self.num_upsamples):
            # In place from the second stage on: x is then the fresh mean computed below.
            x = F.leaky_relu(x, LRELU_SLOPE) if i == 0 else F.leaky_relu_(x, LRELU_SLOPE)
            x = self.ups[i](x)  # [B, C/2^(i+1), T·u_0·…·u_i]
            xs = self.resblocks[i * self.num_kernels](x)
            for j in range(1, self.num_kernels):
                xs = xs.add_(self.resblocks[i * self.num_kernels + j](x))
            x = xs.div_(self.num_kernels)  # mean of the multi-receptive-field blocks

        # Official quirk (GPT_SoVITS/module/models.py · Generator.forward @48b1a01): the last
        # leaky ReLU uses torch's default slope 0.01, not LRELU_SLOPE.
        x = F.leaky_relu_(x)
        x = self.conv_post(x)  # [B, 1, T·upsample_factor]
        return torch.tanh(x)

    def remove_weight_norm(self) -> None:
        """Fold the weight norm of the upsamplers and ResBlocks into plain weights (inference)."""
        fold_weight_norm(self)
