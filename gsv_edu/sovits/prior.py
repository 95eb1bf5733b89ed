"""The prior encoder `enc_p`: content (quantized HuBERT) + phonemes + style → N(m_p, exp(logs_p)).

Mirrors `GPT_SoVITS/module/models.py · TextEncoder @48b1a01`. It replaces the text
encoder of VITS: the content branch (`ssl_proj`, `encoder_ssl`) fixes the time axis (one
output frame per spectrogram frame, no duration model), the text branch (`text_embedding`,
`encoder_text`) is mixed in by MRTE cross-attention together with the style vector ge,
`encoder2` refines, and `proj` gives the mean and log-std of the prior.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from gsv_edu.sovits.attention import Encoder
from gsv_edu.sovits.commons import sequence_mask
from gsv_edu.sovits.mrte import MRTE

# Size of the phoneme table per symbol version: v1 GPT_SoVITS/text/symbols.py · symbols has 322
# symbols, v2 GPT_SoVITS/text/symbols2.py · symbols the same 322 plus 410 more (@48b1a01).
N_SYMBOLS = {"v1": 322, "v2": 732}


def n_symbols(version: str) -> int:
    """Rows of `enc_p.text_embedding` for a model version: 322 for v1, 732 otherwise (as officially)."""
    return N_SYMBOLS["v1"] if version == "v1" else N_SYMBOLS["v2"]


class TextEncoder(nn.Module):
    """The SoVITS prior encoder (`enc_p`).

    Keys in official order: `ssl_proj` (ssl_dim → H, 1×1), `encoder_ssl` (n_layers//2 layers),
    `encoder_text` (n_layers layers), `text_embedding` (322 or 732 rows × H), `mrte`,
    `encoder2` (n_layers//2 layers), `proj` (H → 2·out_channels, 1×1).

    `ssl_dim` (768 officially, hard-coded there) and `gin_channels` (the MRTE width, 512
    officially, hard-coded there via `MRTE()`'s defaults) are parameters here; see `gsv_edu.sovits.mrte`.
    `latent_channels` is accepted for signature parity and unused, as officially.
    """

    def __init__(self, out_channels: int, hidden_channels: int, filter_channels: int, n_heads: int,
                 n_layers: int, kernel_size: int, p_dropout: float, latent_channels: int = 192,
                 version: str = "v2", *, ssl_dim: int = 768, gin_channels: int = 512, mrte_heads: int = 4):
        super().__init__()
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.filter_channels = filter_channels
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.kernel_size = kernel_size
        self.p_dropout = p_dropout
        self.latent_channels = latent_channels
        self.version = version

        self.ssl_proj = nn.Conv1d(ssl_dim, hidden_channels, 1)
        self.encoder_ssl = Encoder(hidden_channels, filter_channels, n_heads, n_layers // 2, kernel_size, p_dropout)
        self.encoder_text = Encoder(hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout)
        # Official quirk (GPT_SoVITS/module/models.py · TextEncoder.forward @48b1a01): the
        # embedding is not scaled by √H as in VITS.
        self.text_embedding = nn.Embedding(n_symbols(version), hidden_channels)
        self.mrte = MRTE(content_enc_channels=hidden_channels, hidden_size=gin_channels,
                         out_channels=hidden_channels, n_heads=mrte_heads)
        self.encoder2 = Encoder(hidden_channels, filter_channels, n_heads, n_layers // 2, kernel_size, p_dropout)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(self, y: torch.Tensor, y_lengths: torch.Tensor, text: torch.Tensor, text_lengths: torch.Tensor,
                ge: torch.Tensor | None, speed: float = 1, test: int | None = None):
        """y [B, ssl_dim, T] quantized content at the spectrogram frame rate, y_lengths [B],
        text [B, L] phoneme ids, text_lengths [B], ge [B, G, 1].

        Returns (x, m_p, logs_p, y_mask, x_before_speed, y_mask_before_speed) with x [B, H, T'],
        m_p, logs_p [B, out, T'], y_mask [B, 1, T']; T' = T, or int(T/speed) + 1 when speed ≠ 1
        (linear interpolation of x, nearest of the mask).

        `test == 1` replaces every phoneme id by 0 (an "empty text" diagnostic). The official code
        writes those zeros into the caller's tensor in place (`text[:, :] = 0` in
        `GPT_SoVITS/module/models.py · TextEncoder.forward @48b1a01`); we use a zero copy
        instead, which gives the same outputs without touching the caller's data.
        """
        y_mask = sequence_mask(y_lengths, y.size(2)).unsqueeze(1).to(y.dtype)  # [B, 1, T]
        y = self.ssl_proj(y * y_mask) * y_mask  # [B, H, T]
        y = self.encoder_ssl(y * y_mask, y_mask)  # [B, H, T]

        text_mask = sequence_mask(text_lengths, text.size(1)).unsqueeze(1).to(y.dtype)  # [B, 1, L]
        if test == 1:
            text = torch.zeros_like(text)  # deliberate difference: the official zeroes `text` in place
        t = self.text_embedding(text).transpose(1, 2)  # [B, H, L]
        t = self.encoder_text(t * text_mask, text_mask)  # [B, H, L]

        # As officially, `test` is not forwarded to MRTE (its own `test` switch stays at None).
        y = self.mrte(y, y_mask, t, text_mask, ge)  # [B, H, T]
        y = self.encoder2(y * y_mask, y_mask)  # [B, H, T]

        y_before, y_mask_before = y, y_mask
        if speed != 1:
            new_length = int(y.shape[-1] / speed) + 1
            y = F.interpolate(y, size=new_length, mode="linear")  # [B, H, T']
            y_mask = F.interpolate(y_mask, size=new_length, mode="nearest")  # [B, 1, T']
        stats = self.proj(y) * y_mask  # [B, 2·out, T']
        m_p, logs_p = torch.split(stats, self.out_channels, dim=1)  # [B, out, T'] each
        return y, m_p, logs_p, y_mask, y_before, y_mask_before
