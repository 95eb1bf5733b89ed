"""The transformer layers of the GPT stage (s1): post-LN blocks with a packed QKV projection.

Mirrors `GPT_SoVITS/AR/modules/transformer.py @48b1a01` (TransformerEncoder,
TransformerEncoderLayer, LayerNorm) and `GPT_SoVITS/AR/modules/activation.py @48b1a01`
(MultiheadAttention, run through the patched `multi_head_attention_forward` with
`need_weights=False`). The state-dict keys are the official ones:

    layers.{i}.self_attn.in_proj_weight   [3D, D]   (q, k, v rows stacked in that order)
    layers.{i}.self_attn.in_proj_bias     [3D]
    layers.{i}.self_attn.out_proj.weight/bias
    layers.{i}.linear1.weight/bias        [4D, D]   (ReLU feed-forward)
    layers.{i}.linear2.weight/bias        [D, 4D]
    layers.{i}.norm1.weight/bias, norm2.weight/bias
    norm.weight/bias                      (only with norm_first=True)

One block, post-LN (norm_first=False, as every s1 checkpoint is trained; Vaswani et al. 2017):

    x = norm1(x + Dropout(SelfAttention(x)))
    x = norm2(x + Dropout(W2 · Dropout(ReLU(W1 · x))))

Dropout is 0.1 everywhere in the layers (attention weights included), whatever the config's
`dropout` says (that one is the token-embedding dropout). The masks follow the upstream
convention: boolean True = "may not attend", or an additive float mask (0 / -inf).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder", "as_additive_mask"]


def as_additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A boolean mask (True = blocked) as 0/-inf floats; a float mask unchanged."""
    if mask is None or mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(mask, float("-inf"))


class MultiheadAttention(nn.Module):
    """Self-attention with one packed input projection (`in_proj_weight` [3D, D]) and `out_proj`.

    `forward(x, attn_mask)` takes batch-first x [B, T, D]; the mask is [T, T], [B·H, T, T] or
    [B, H, T, T], boolean or additive. The attention itself is `F.scaled_dot_product_attention`
    with the mask added to the scores, as the upstream patched forward does.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # upstream: Xavier-uniform packed projection, zero biases, out_proj keeps nn.Linear's init
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, D = x.shape
        H = self.num_heads
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)  # 3 × [B, T, D]
        q = q.view(B, T, H, self.head_dim).transpose(1, 2)  # [B, H, T, Dh]
        k = k.view(B, T, H, self.head_dim).transpose(1, 2)
        v = v.view(B, T, H, self.head_dim).transpose(1, 2)
        mask = as_additive_mask(attn_mask, x.dtype)
        if mask is not None and mask.dim() == 3 and mask.size(0) == B * H:
            mask = mask.view(B, H, T, T)  # [B·H, T, T] -> [B, H, T, T]
        dropout_p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, mask, dropout_p)  # [B, H, T, Dh]
        out = out.transpose(1, 2).reshape(B, T, D)
        return self.out_proj(out)


class TransformerEncoderLayer(nn.Module):
    """One post-LN (or pre-LN with norm_first=True) block: self-attention, then a ReLU feed-forward."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 norm_first: bool = False, layer_norm_eps: float = 1e-5):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def _sa_block(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        return self.dropout1(self.self_attn(x, attn_mask))

    def _ff_block(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(x)))))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), attn_mask)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, attn_mask))
        return self.norm2(x + self._ff_block(x))


class TransformerEncoder(nn.Module):
    """`num_layers` copies of a layer (key prefix `layers.{i}.`), then an optional final `norm`."""

    def __init__(self, layer: TransformerEncoderLayer, num_layers: int, norm: nn.Module | None = None):
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = as_additive_mask(mask, x.dtype)  # converted once, not once per layer
        for layer in self.layers:
            x = layer(x, mask)
        if self.norm is not None:
            x = self.norm(x)
        return x
