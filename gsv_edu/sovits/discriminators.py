"""The GAN discriminators of SoVITS training: one scale discriminator and five period discriminators.

Mirrors `GPT_SoVITS/module/models.py · DiscriminatorS, DiscriminatorP, MultiPeriodDiscriminator
@48b1a01`. They come from HiFi-GAN (Kong et al. 2020): the multi-period discriminator looks at
the waveform folded into a 2-D [T/p, p] grid for periods p = 2, 3, 5, 7, 11 (each sees every
p-th sample, i.e. periodic structure); as in VITS, the set is completed by a single
MelGAN-style scale discriminator (Kumar et al. 2019) on the raw waveform.

Every conv is weight-normed (keys `weight_g`/`weight_v`), or spectrally normed when
`use_spectral_norm` (torch's `spectral_norm`, as the official code). Each discriminator returns
its flattened score map and the list of its feature maps (for the feature-matching loss).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from gsv_edu.sovits.commons import get_padding
from gsv_edu.sovits.hifigan import LRELU_SLOPE
from gsv_edu.sovits.weight_norm import weight_norm


def _norm_f(use_spectral_norm: bool):
    return torch.nn.utils.spectral_norm if use_spectral_norm else weight_norm


class DiscriminatorP(nn.Module):
    """Period discriminator: the waveform [B, 1, T] viewed as [B, 1, T/p, p], then 2-D convs along T/p.

    Kernels (k, 1) never mix the p columns, so each column (the samples at one phase of the
    period) is judged separately with shared weights.
    """

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3, use_spectral_norm: bool = False,
                 channel_divisor: int = 1):
        super().__init__()
        self.period = period
        self.use_spectral_norm = use_spectral_norm
        norm_f = _norm_f(use_spectral_norm)
        pad = (get_padding(kernel_size, 1), 0)
        c = [1] + [w // channel_divisor for w in (32, 128, 512, 1024, 1024)]  # official widths when divisor 1
        self.convs = nn.ModuleList([
            norm_f(nn.Conv2d(c[0], c[1], (kernel_size, 1), (stride, 1), padding=pad)),
            norm_f(nn.Conv2d(c[1], c[2], (kernel_size, 1), (stride, 1), padding=pad)),
            norm_f(nn.Conv2d(c[2], c[3], (kernel_size, 1), (stride, 1), padding=pad)),
            norm_f(nn.Conv2d(c[3], c[4], (kernel_size, 1), (stride, 1), padding=pad)),
            norm_f(nn.Conv2d(c[4], c[5], (kernel_size, 1), 1, padding=pad)),
        ])
        self.conv_post = norm_f(nn.Conv2d(c[5], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x [B, 1, T] → (scores [B, N], feature maps: 5 conv outputs after lrelu + conv_post output)."""
        fmap = []
        b, c, t = x.shape
        if t % self.period != 0:
            # Reflect-pad on the right up to a multiple of the period.
            n_pad = self.period - (t % self.period)
            x = F.pad(x, (0, n_pad), "reflect")  # [B, 1, T + n_pad]
            t = t + n_pad
        x = x.view(b, c, t // self.period, self.period)  # [B, 1, T/p, p]

        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)  # [B, C_l, T_l, p]
            fmap.append(x)
        x = self.conv_post(x)  # [B, 1, T_L, p]
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap  # [B, T_L·p]


class DiscriminatorS(nn.Module):
    """Scale discriminator on the raw waveform: strided grouped 1-D convs, no pooling."""

    def __init__(self, use_spectral_norm: bool = False, channel_divisor: int = 1):
        super().__init__()
        norm_f = _norm_f(use_spectral_norm)
        c = [1] + [w // channel_divisor for w in (16, 64, 256, 1024, 1024, 1024)]  # official widths when divisor 1

        def groups(c_in: int) -> int:  # official: 4 input channels per group (16/4, 64/16, 256/64, 1024/256)
            return max(1, c_in // 4)

        self.convs = nn.ModuleList([
            norm_f(nn.Conv1d(c[0], c[1], 15, 1, padding=7)),
            norm_f(nn.Conv1d(c[1], c[2], 41, 4, groups=groups(c[1]), padding=20)),
            norm_f(nn.Conv1d(c[2], c[3], 41, 4, groups=groups(c[2]), padding=20)),
            norm_f(nn.Conv1d(c[3], c[4], 41, 4, groups=groups(c[3]), padding=20)),
            norm_f(nn.Conv1d(c[4], c[5], 41, 4, groups=groups(c[4]), padding=20)),
            norm_f(nn.Conv1d(c[5], c[6], 5, 1, padding=2)),
        ])
        self.conv_post = norm_f(nn.Conv1d(c[6], 1, 3, 1, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x [B, 1, T] → (scores [B, N], feature maps: 6 conv outputs after lrelu + conv_post output)."""
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)  # [B, C_l, T_l]
            fmap.append(x)
        x = self.conv_post(x)  # [B, 1, T_L]
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap  # [B, T_L]


def discriminator_periods(version: str | None) -> list[int]:
    """The periods of the DiscriminatorP's: 2, 3, 5, 7, 11 (v1/v2); v2Pro/v2ProPlus add 17 and 23."""
    periods = [2, 3, 5, 7, 11]
    if version in ("v2Pro", "v2ProPlus"):
        periods += [17, 23]
    return periods


class MultiPeriodDiscriminator(nn.Module):
    """`discriminators.0` = DiscriminatorS, then one DiscriminatorP per period
    (`GPT_SoVITS/module/models.py · MultiPeriodDiscriminator.__init__ @48b1a01`).

    `channel_divisor` (gsv_edu addition, default 1 = the official widths and state dict): divides
    every hidden width (groups keep 4 input channels each, at least one group). The official
    discriminator has 46.7 M parameters whatever the generator size; the tiny preset uses
    divisor 8 (0.78 M) so that CPU training is not dominated by the discriminator.
    """

    def __init__(self, use_spectral_norm: bool = False, version: str | None = None, channel_divisor: int = 1):
        super().__init__()
        if channel_divisor < 1 or 16 % channel_divisor:
            raise ValueError(f"channel_divisor must divide 16 (1, 2, 4, 8 or 16), got {channel_divisor}")
        self.periods = discriminator_periods(version)
        self.use_spectral_norm = use_spectral_norm
        discs = [DiscriminatorS(use_spectral_norm=use_spectral_norm, channel_divisor=channel_divisor)]
        discs += [DiscriminatorP(p, use_spectral_norm=use_spectral_norm, channel_divisor=channel_divisor)
                  for p in self.periods]
        self.discriminators = nn.ModuleList(discs)

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor):
        """y, y_hat [B, 1, T] (real, generated) → (y_d_rs, y_d_gs, fmap_rs, fmap_gs).

        One entry per discriminator: scores [B, N_k] and lists of feature maps.

        The official code calls each discriminator on y, then on y_hat. When both inputs need the
        same from autograd (as in the D step, y and y_hat.detach()) and the convs are weight-normed,
        each discriminator judges the two as one batch [2B, 1, T] instead: the same values up to
        float rounding, one weight-norm recomputation and one larger convolution per layer
        instead of two. Otherwise (the G step: only y_hat needs a gradient; or spectral norm,
        whose power iteration runs once per call) the two calls stay separate.
        """
        if y.dim() != 3 or y.size(1) != 1 or y_hat.shape != y.shape:
            raise ValueError(f"MultiPeriodDiscriminator: expected y and y_hat of the same shape "
                             f"[B, 1, T], got {tuple(y.shape)} and {tuple(y_hat.shape)}")
        b = y.size(0)
        batched = not self.use_spectral_norm and y.requires_grad == y_hat.requires_grad
        both = torch.cat([y, y_hat], 0) if batched else None  # [2B, 1, T]
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = [], [], [], []
        for d in self.discriminators:
            if batched:
                score, fmap = d(both)  # [2B, N_k], maps [2B, ...]
                (y_d_r, y_d_g), fmap_r, fmap_g = score.split(b), [f[:b] for f in fmap], [f[b:] for f in fmap]
            else:
                y_d_r, fmap_r = d(y)
                y_d_g, fmap_g = d(y_hat)
            y_d_rs.append(y_d_r)
            y_d_gs.append(y_d_g)
            fmap_rs.append(fmap_r)
            fmap_gs.append(fmap_g)
        return y_d_rs, y_d_gs, fmap_rs, fmap_gs
