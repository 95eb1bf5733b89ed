"""The reference encoder `ref_enc`: one global style/timbre vector ge from a spectrogram.

Mirrors `GPT_SoVITS/module/modules.py · MelStyleEncoder @48b1a01` and its helpers
(`LinearNorm`, `Mish`, `Conv1dGLU`, `ConvNorm`, the StyleSpeech `MultiHeadAttention` of the same
file).
The design is the Mel-Style Encoder of Meta-StyleSpeech (Min et al. 2021): spectral MLP →
two gated temporal convolutions → self-attention → linear → masked average over time.

Official quirks reproduced here (they change numbers or checkpoint keys):
- Despite the name, SoVITS feeds the **linear magnitude** spectrogram (first 704 of 1025 bins
  for v2, all 1025 for v1), not a mel spectrogram (`GPT_SoVITS/module/models.py ·
  SynthesizerTrn.__init__ @48b1a01` builds `MelStyleEncoder(704, ...)` for v2, and
  `SynthesizerTrn.forward` passes `y[:, :704]`).
- The attention temperature is √d_model = √128, not √d_k = √64
  (`GPT_SoVITS/module/modules.py · MultiHeadAttention.__init__ @48b1a01`).
- Padded frames are zeroed on input but then pass through the spectral MLP (Mish(bias) ≠ 0)
  before the kernel-5 temporal convolutions, so the last valid frames "see" the padding:
  ge of a padded batch item differs slightly from ge of the same item alone.
- The `spectral` Sequential interleaves parameter-free Mish/Dropout modules, so its linear
  layers sit at indices 0 and 3 (`spectral.0.fc`, `spectral.3.fc`).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class Mish(nn.Module):
    """Mish activation x·tanh(softplus(x)) (Misra 2019), written as the official does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tanh(F.softplus(x))


class LinearNorm(nn.Module):
    """A Linear layer wrapped in a module whose only child is named `fc` (hence `….fc.weight`)."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True):
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class ConvNorm(nn.Module):
    """A "same"-padded Conv1d wrapped in a module whose only child is named `conv`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 dilation: int = 1, bias: bool = True):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              dilation=dilation, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Conv1dGLU(nn.Module):
    """Residual gated convolution: x + dropout(a·sigmoid(b)), with a, b the halves of conv1(x)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dropout: float):
        super().__init__()
        self.out_channels = out_channels
        self.conv1 = ConvNorm(in_channels, 2 * out_channels, kernel_size=kernel_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(self.conv1(x), self.out_channels, dim=1)  # [B, out, T] each
        return x + self.dropout(a * torch.sigmoid(b))


class StyleAttention(nn.Module):
    """Multi-head self-attention on [B, T, C] with Linear projections `w_qs`, `w_ks`, `w_vs`, `fc`.

    Mirrors the StyleSpeech `MultiHeadAttention` inside modules.py (the class has the same
    name there; we rename it to keep it apart from the relative-position attention of
    `gsv_edu.sovits.attention`). Official quirk: scores are divided by √d_model, not √d_k.
    Output = dropout(fc(attention)) + x.
    """

    def __init__(self, n_head: int, d_model: int, d_k: int, d_v: int, dropout: float = 0.0):
        super().__init__()
        self.n_head = n_head
        self.d_k = d_k
        self.d_v = d_v
        self.w_qs = nn.Linear(d_model, n_head * d_k)
        self.w_ks = nn.Linear(d_model, n_head * d_k)
        self.w_vs = nn.Linear(d_model, n_head * d_v)
        # official quirk (GPT_SoVITS/module/modules.py · MultiHeadAttention.__init__ @48b1a01)
        self.temperature = math.sqrt(d_model)  # √d_model, not √d_k
        self.attn_dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(n_head * d_v, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, C]; mask [B, T] bool, True on padded frames (masked as keys)."""
        b, t, _ = x.shape
        q = self.w_qs(x).view(b, t, self.n_head, self.d_k).transpose(1, 2)  # [B, h, T, d_k]
        k = self.w_ks(x).view(b, t, self.n_head, self.d_k).transpose(1, 2)  # [B, h, T, d_k]
        v = self.w_vs(x).view(b, t, self.n_head, self.d_v).transpose(1, 2)  # [B, h, T, d_v]
        scores = torch.matmul(q, k.transpose(-2, -1)) / self.temperature  # [B, h, T, T]
        if mask is not None:
            scores = scores.masked_fill(mask[:, None, None, :], float("-inf"))
        # The official code lays the heads out head-major ([h·B, T, T]), and a dropout mask is
        # drawn in memory order: drop on that layout so that a seeded training step with B > 1
        # draws the official mask (GPT_SoVITS/module/modules.py · MultiHeadAttention.forward @48b1a01).
        p_attn = F.softmax(scores, dim=-1).transpose(0, 1).contiguous()  # [h, B, T, T]
        p_attn = self.attn_dropout(p_attn).transpose(0, 1)  # [B, h, T, T]
        out = torch.matmul(p_attn, v)  # [B, h, T, d_v]
        out = out.transpose(1, 2).reshape(b, t, self.n_head * self.d_v)  # [B, T, h·d_v]
        return self.dropout(self.fc(out)) + x


class MelStyleEncoder(nn.Module):
    """Spectrogram [B, n_mel_channels, T] → style vector ge [B, style_vector_dim, 1].

    Keys: `spectral.0.fc`, `spectral.3.fc`, `temporal.{0,1}.conv1.conv`, `slf_attn.{w_qs,w_ks,w_vs,fc}`,
    `fc.fc` (`GPT_SoVITS/module/modules.py · MelStyleEncoder.__init__ @48b1a01`). SoVITS
    (`SynthesizerTrn.__init__`) builds it with n_mel_channels 704 (v2) or 1025 (v1) and
    style_vector_dim = gin_channels; hidden 128, kernel 5, 2 heads, dropout 0.1 are fixed.
    """

    def __init__(self, n_mel_channels: int = 80, style_hidden: int = 128, style_vector_dim: int = 256,
                 style_kernel_size: int = 5, style_head: int = 2, dropout: float = 0.1):
        super().__init__()
        self.in_dim = n_mel_channels
        self.hidden_dim = style_hidden
        self.out_dim = style_vector_dim
        self.kernel_size = style_kernel_size
        self.n_head = style_head
        self.dropout = dropout

        self.spectral = nn.Sequential(
            LinearNorm(n_mel_channels, style_hidden), Mish(), nn.Dropout(dropout),   # indices 0, 1, 2
            LinearNorm(style_hidden, style_hidden), Mish(), nn.Dropout(dropout),     # indices 3, 4, 5
        )
        self.temporal = nn.Sequential(
            Conv1dGLU(style_hidden, style_hidden, style_kernel_size, dropout),
            Conv1dGLU(style_hidden, style_hidden, style_kernel_size, dropout),
        )
        head_dim = style_hidden // style_head
        self.slf_attn = StyleAttention(style_head, style_hidden, head_dim, head_dim, dropout)
        self.fc = LinearNorm(style_hidden, style_vector_dim)

    @staticmethod
    def temporal_avg_pool(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over the valid frames: x [B, T, C], mask [B, T] True on padding → [B, C]."""
        if mask is None:
            return torch.mean(x, dim=1)
        lengths = (~mask).sum(dim=1).unsqueeze(1)  # [B, 1]
        x = x.masked_fill(mask.unsqueeze(-1), 0)
        return x.sum(dim=1) / lengths  # [B, C]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, C_in, T] (already multiplied by the mask by the caller), mask [B, 1, T] with 1 on
        valid frames, or None → [B, style_vector_dim, 1]."""
        if x.size(1) != self.in_dim:
            raise ValueError(f"MelStyleEncoder expects {self.in_dim} frequency bins, got {x.size(1)}")
        x = x.transpose(1, 2)  # [B, T, C_in]
        pad = (mask.int() == 0).squeeze(1) if mask is not None else None  # [B, T] True on padding
        x = self.spectral(x)  # [B, T, 128]
        x = self.temporal(x.transpose(1, 2)).transpose(1, 2)  # [B, T, 128]
        if pad is not None:
            x = x.masked_fill(pad.unsqueeze(-1), 0)
        x = self.slf_attn(x, mask=pad)  # [B, T, 128]
        x = self.fc(x)  # [B, T, style_vector_dim]
        return self.temporal_avg_pool(x, mask=pad).unsqueeze(-1)  # [B, style_vector_dim, 1]
