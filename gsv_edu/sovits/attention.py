"""The attention encoder of the SoVITS prior: multi-head attention with windowed relative
positions, the convolutional feed-forward block, and the post-norm Transformer `Encoder`.

Mirrors `GPT_SoVITS/module/attentions.py · MultiHeadAttention, FFN, Encoder @48b1a01`, which
itself comes from VITS (Kim et al. 2021, "Conditional Variational Autoencoder with
Adversarial Learning for End-to-End Text-to-Speech"). The relative-position scheme is the one of
Shaw et al. 2018 ("Self-Attention with Relative Position Representations"): a query at time i
and a key at time j with |j − i| ≤ w get an extra logit q_i·E_k[j − i + w] and an extra value
term E_v[j − i + w]; pairs farther apart get nothing.

Tensors are channel-first, like the convolutions around them: x [B, C, T], masks [B, 1, T].
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from gsv_edu.sovits.commons import LayerNorm


def relative_to_absolute(rel: torch.Tensor, window_size: int) -> torch.Tensor:
    """Spread per-offset scores onto the time axis: out[..., i, j] = rel[..., i, j − i + w].

    rel [..., T, 2w+1] (one column per offset −w..w) → [..., T, T], zero where |j − i| > w.
    The "skewing" trick: pad each row with T zeros, lay the rows end to end, and re-read the
    flat buffer with rows one element shorter; row i is then shifted right by i, so the
    offset column r lands at column i + r, i.e. at key j = i + r − w after dropping w columns.
    """
    t = rel.size(-2)
    width = 2 * window_size + 1
    lead = rel.shape[:-2]
    padded = F.pad(rel, (0, t))  # [..., T, T + 2w + 1]
    flat = padded.reshape(*lead, t * (t + width))  # [..., T·(T + 2w + 1)]
    skewed = flat[..., : t * (t + width - 1)].reshape(*lead, t, t + width - 1)  # [..., T, T + 2w]
    return skewed[..., window_size: window_size + t]  # [..., T, T]


def absolute_to_relative(absolute: torch.Tensor, window_size: int) -> torch.Tensor:
    """The inverse gather: out[..., i, r] = absolute[..., i, i + r − w] (0 outside the sequence).

    absolute [..., T, T] → [..., T, 2w+1]. Pad w zeros on both sides of each row (so key j
    sits at column j + w), then re-read the flat buffer with rows one element longer, which
    shifts row i left by i: column r of row i is the old column i + r.
    """
    t = absolute.size(-1)
    width = 2 * window_size + 1
    lead = absolute.shape[:-2]
    padded = F.pad(absolute, (window_size, window_size))  # [..., T, T + 2w]
    flat = F.pad(padded.reshape(*lead, t * (t + width - 1)), (0, t))  # [..., T·(T + 2w + 1)]
    return flat.reshape(*lead, t, t + width)[..., :width]  # [..., T, 2w+1]


class MultiHeadAttention(nn.Module):
    """Multi-head attention on [B, C, T] tensors with 1×1 convolutions as projections.

    Mirrors `GPT_SoVITS/module/attentions.py · MultiHeadAttention @48b1a01`: `conv_q`, `conv_k`,
    `conv_v` (C → C), `conv_o` (C → out_channels); per-head width d = C / n_heads; scores
    (q/√d)·kᵀ; masked pairs (mask == 0) get −1e4 before the softmax; dropout on the
    probabilities. With `window_size` w the learnable `emb_rel_k`, `emb_rel_v`
    [1 (shared by the heads) or n_heads, 2w+1, d] add the relative-position terms.
    The official `proximal_bias` / `block_length` options are unused by SoVITS and left out.
    """

    def __init__(self, channels: int, out_channels: int, n_heads: int, p_dropout: float = 0.0,
                 window_size: int | None = None, heads_share: bool = True):
        super().__init__()
        if channels % n_heads != 0:
            raise ValueError(f"MultiHeadAttention: channels ({channels}) must be divisible by n_heads ({n_heads})")
        self.channels = channels
        self.out_channels = out_channels
        self.n_heads = n_heads
        self.p_dropout = p_dropout
        self.window_size = window_size
        self.heads_share = heads_share
        self.k_channels = channels // n_heads

        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        self.drop = nn.Dropout(p_dropout)
        if window_size is not None:
            n_heads_rel = 1 if heads_share else n_heads
            rel_stddev = self.k_channels ** -0.5
            self.emb_rel_k = nn.Parameter(torch.randn(n_heads_rel, 2 * window_size + 1, self.k_channels) * rel_stddev)
            self.emb_rel_v = nn.Parameter(torch.randn(n_heads_rel, 2 * window_size + 1, self.k_channels) * rel_stddev)
        nn.init.xavier_uniform_(self.conv_q.weight)
        nn.init.xavier_uniform_(self.conv_k.weight)
        nn.init.xavier_uniform_(self.conv_v.weight)
        self.attn = None  # the last attention probabilities [B, h, T_q, T_k], kept for inspection

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t = x.shape
        return x.view(b, self.n_heads, self.k_channels, t).transpose(2, 3)  # [B, h, T, d]

    def forward(self, x: torch.Tensor, c: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Queries from x [B, C, T_q], keys and values from c [B, C, T_k]; attn_mask
        [B, 1, T_q, T_k] (1 = may attend). Returns [B, out_channels, T_q]."""
        q = self._split_heads(self.conv_q(x))  # [B, h, T_q, d]
        k = self._split_heads(self.conv_k(c))  # [B, h, T_k, d]
        v = self._split_heads(self.conv_v(c))  # [B, h, T_k, d]
        out, self.attn = self.attention(q, k, v, attn_mask)  # [B, h, T_q, d]
        b, _, t_q, _ = out.shape
        out = out.transpose(2, 3).reshape(b, self.channels, t_q)  # [B, C, T_q]
        return self.conv_o(out)  # [B, out, T_q]

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                  mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled dot-product attention per head, plus the windowed relative terms."""
        q = q / math.sqrt(self.k_channels)  # the official scales the query, not the scores
        scores = torch.matmul(q, k.transpose(-2, -1))  # [B, h, T_q, T_k]
        if self.window_size is not None:
            if q.size(2) != k.size(2):
                raise ValueError("relative attention is only defined for self-attention (T_q == T_k)")
            rel_logits = torch.matmul(q, self.emb_rel_k.unsqueeze(0).transpose(-2, -1))  # [B, h, T, 2w+1]
            scores = scores + relative_to_absolute(rel_logits, self.window_size)  # [B, h, T, T]
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e4)
        p_attn = F.softmax(scores, dim=-1)  # [B, h, T_q, T_k]
        p_attn = self.drop(p_attn)
        out = torch.matmul(p_attn, v)  # [B, h, T_q, d]
        if self.window_size is not None:
            rel_weights = absolute_to_relative(p_attn, self.window_size)  # [B, h, T, 2w+1]
            out = out + torch.matmul(rel_weights, self.emb_rel_v.unsqueeze(0))  # [B, h, T, d]
        return out, p_attn


class FFN(nn.Module):
    """Position-wise feed-forward block made of two convolutions ("same" padding, ReLU).

    Mirrors `GPT_SoVITS/module/attentions.py · FFN @48b1a01`: conv_1 (in → filter, k) → ReLU
    → dropout → conv_2 (filter → out, k); each convolution sees its input multiplied by the
    mask and padded with ((k − 1)//2, k//2) zeros; the output is masked.
    """

    def __init__(self, in_channels: int, out_channels: int, filter_channels: int, kernel_size: int,
                 p_dropout: float = 0.0):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv_1 = nn.Conv1d(in_channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, out_channels, kernel_size)
        self.drop = nn.Dropout(p_dropout)
        self._padding = ((kernel_size - 1) // 2, kernel_size // 2)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = self.conv_1(F.pad(x * x_mask, self._padding))  # [B, filter, T]
        x = self.drop(torch.relu(x))
        x = self.conv_2(F.pad(x * x_mask, self._padding))  # [B, out, T]
        return x * x_mask


class Encoder(nn.Module):
    """Post-norm Transformer encoder with relative positions (window 4).

    Mirrors `GPT_SoVITS/module/attentions.py · Encoder @48b1a01`. Per layer i: `attn_layers.i`,
    `norm_layers_1.i`, `ffn_layers.i`, `norm_layers_2.i`;
    x ← LN1(x + dropout(attn(x, x))); x ← LN2(x + dropout(FFN(x))). The input and the output
    are multiplied by the mask.
    """

    def __init__(self, hidden_channels: int, filter_channels: int, n_heads: int, n_layers: int,
                 kernel_size: int = 1, p_dropout: float = 0.0, window_size: int = 4):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.filter_channels = filter_channels
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.kernel_size = kernel_size
        self.p_dropout = p_dropout
        self.window_size = window_size

        self.drop = nn.Dropout(p_dropout)
        self.attn_layers = nn.ModuleList()
        self.norm_layers_1 = nn.ModuleList()
        self.ffn_layers = nn.ModuleList()
        self.norm_layers_2 = nn.ModuleList()
        for _ in range(n_layers):
            self.attn_layers.append(MultiHeadAttention(hidden_channels, hidden_channels, n_heads,
                                                       p_dropout=p_dropout, window_size=window_size))
            self.norm_layers_1.append(LayerNorm(hidden_channels))
            self.ffn_layers.append(FFN(hidden_channels, hidden_channels, filter_channels, kernel_size,
                                       p_dropout=p_dropout))
            self.norm_layers_2.append(LayerNorm(hidden_channels))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        """x [B, H, T], x_mask [B, 1, T] (float) → [B, H, T]."""
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)  # [B, 1, T, T]
        x = x * x_mask
        for attn, norm_1, ffn, norm_2 in zip(self.attn_layers, self.norm_layers_1,
                                             self.ffn_layers, self.norm_layers_2):
            y = self.drop(attn(x, x, attn_mask))  # [B, H, T]
            x = norm_1(x + y)
            y = self.drop(ffn(x, x_mask))  # [B, H, T]
            x = norm_2(x + y)
        return x * x_mask
