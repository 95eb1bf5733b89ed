"""Token and sine-position embeddings of the GPT stage (s1).

Mirrors `GPT_SoVITS/AR/modules/embedding.py @48b1a01` (itself from VALL-E): the state-dict keys
are `word_embeddings.weight` for a token table and `alpha` for a position table, and the
position code is the sinusoid of "Attention Is All You Need" (Vaswani et al. 2017, §3.5):

    pe[t, 2i]   = sin(t / 10000^(2i/d))
    pe[t, 2i+1] = cos(t / 10000^(2i/d))

added as `x * x_scale + alpha * pe[:T]`, where `alpha` is a learnable scalar (one per table:
the text and the audio positions learn their own weight against the token embedding) and
`x_scale` is 1 (the s1 model builds both tables with `scale=False`).
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["TokenEmbedding", "SinePositionalEmbedding", "sine_table"]


class TokenEmbedding(nn.Module):
    """A lookup table of `vocab_size` vectors, then dropout (key: `word_embeddings.weight`)."""

    def __init__(self, embedding_dim: int, vocab_size: int, dropout: float = 0.0):
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.dropout = nn.Dropout(p=dropout)
        self.word_embeddings = nn.Embedding(vocab_size, embedding_dim)

    @property
    def weight(self) -> torch.Tensor:
        return self.word_embeddings.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.word_embeddings(x))  # [B, T] -> [B, T, D]


def sine_table(length: int, dim: int) -> torch.Tensor:
    """The [1, length, dim] float32 sinusoid table, computed in the same order as upstream
    (float32 positions times float32 `exp(-2i·ln(10000)/d)`), so the numbers are bit-identical."""
    position = torch.arange(0, length, dtype=torch.float32).unsqueeze(1)  # [L, 1]
    inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))  # [D/2]
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq)
    return table.unsqueeze(0)  # [1, L, D]


class SinePositionalEmbedding(nn.Module):
    """`x * x_scale + alpha * pe[:T]` then dropout; `alpha` is a learnable scalar (if `alpha=True`).

    The table starts at 4000 positions (160 s of 25 Hz tokens, as upstream) and grows on demand.
    It is a non-persistent buffer: it follows `.to()` but is not in the state dict (upstream keeps
    it as a plain attribute, so official files have no `pe` key either).
    """

    INITIAL_LENGTH = 4000

    def __init__(self, embedding_dim: int, dropout: float = 0.0, scale: bool = False, alpha: bool = False):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.x_scale = math.sqrt(embedding_dim) if scale else 1.0
        self.alpha = nn.Parameter(torch.ones(1), requires_grad=alpha)
        self.dropout = nn.Dropout(p=dropout)
        self.register_buffer("pe", sine_table(self.INITIAL_LENGTH, embedding_dim), persistent=False)

    def extend_pe(self, length: int) -> None:
        """Make the table hold at least `length` positions."""
        if self.pe.size(1) < length:
            self.pe = sine_table(length, self.embedding_dim).to(device=self.pe.device, dtype=self.pe.dtype)

    def position(self, index: int) -> torch.Tensor:
        """The row of one position, [1, D] (what the decoder adds to the newest token)."""
        self.extend_pe(index + 1)
        return self.pe[:, index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.extend_pe(x.size(1))
        out = x * self.x_scale + self.alpha * self.pe[:, : x.size(1)].to(x.dtype)  # [B, T, D]
        return self.dropout(out)
