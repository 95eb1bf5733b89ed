"""The posterior encoder q(z | spectrogram): the "encoder" of the SoVITS variational autoencoder.

Mirrors `GPT_SoVITS/module/models.py · PosteriorEncoder @48b1a01`, as in VITS (Kim et
al. 2021): during training it reads the linear spectrogram of the target audio and produces
the latent z that the HiFi-GAN decoder learns to turn back into the waveform, and that the
flow maps onto the prior predicted from content and text.
"""
from __future__ import annotations

import torch
from torch import nn

from gsv_edu.sovits.commons import sequence_mask
from gsv_edu.sovits.wavenet import WN


class PosteriorEncoder(nn.Module):
    """Spectrogram [B, in, T] → z, m, logs [B, out, T] with z = m + ε·exp(logs), masked.

    `pre` Conv1d(in → H, 1) → WaveNet stack `enc` (conditioned on g) → `proj` Conv1d(H → 2·out, 1)
    split into mean m and log-std logs.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int, kernel_size: int,
                 dilation_rate: int, n_layers: int, gin_channels: int = 0):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.dilation_rate = dilation_rate
        self.n_layers = n_layers
        self.gin_channels = gin_channels

        self.pre = nn.Conv1d(in_channels, hidden_channels, 1)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(self, x: torch.Tensor, x_lengths: torch.Tensor, g: torch.Tensor | None = None,
                eps: torch.Tensor | None = None):
        """x [B, in, T], x_lengths [B], g [B, G, 1] → (z, m, logs, x_mask).

        z, m, logs: [B, out, T]; x_mask: [B, 1, T] float. `eps` [B, out, T] is the standard
        normal noise of the reparametrisation; by default it is drawn with exactly one
        `torch.randn_like(m)` call, as in the official code (so a fixed seed gives the
        official z).
        """
        if x.dim() != 3 or x.size(1) != self.in_channels:
            raise ValueError(f"PosteriorEncoder: expected x of shape [B, {self.in_channels}, T], "
                             f"got {tuple(x.shape)}")
        if g is not None:
            # Official: the posterior does not train the reference encoder through g.
            g = g.detach()
        x_mask = sequence_mask(x_lengths, x.size(2)).unsqueeze(1).to(x.dtype)  # [B, 1, T]
        h = self.pre(x) * x_mask  # [B, H, T]
        h = self.enc(h, x_mask, g=g)  # [B, H, T]
        stats = self.proj(h) * x_mask  # [B, 2·out, T]
        m, logs = torch.split(stats, self.out_channels, dim=1)  # [B, out, T] each
        if eps is None:
            eps = torch.randn_like(m)
        z = (m + eps * torch.exp(logs)) * x_mask  # [B, out, T]
        return z, m, logs, x_mask
