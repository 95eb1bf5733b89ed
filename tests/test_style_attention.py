"""The style encoder's attention in training mode draws the official dropout mask.

The official `GPT_SoVITS/module/modules.py · MultiHeadAttention.forward @48b1a01` computes the
attention weights as a head-major [n_head·B, T, T] tensor and applies dropout to it; a dropout
mask is drawn in memory order, so with B > 1 a batch-major [B, n_head, T, T] layout would drop
different weights from the same seed (a seeded training step would then differ from the
official one). Expected values below are computed head-major from the definition.
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from gsv_edu.sovits.style import StyleAttention


def test_training_dropout_mask_is_drawn_head_major():
    torch.manual_seed(0)
    n_head, d_model, b, t = 2, 8, 3, 5
    attn = StyleAttention(n_head, d_model, d_model // n_head, d_model // n_head, dropout=0.5).train()
    x = torch.randn(b, t, d_model)
    torch.manual_seed(7)
    out = attn(x)

    d_k = d_model // n_head
    with torch.no_grad():
        def heads(y):  # [B, T, h·d] -> [h·B, T, d], head-major as the official code
            return y.view(b, t, n_head, d_k).permute(2, 0, 1, 3).reshape(n_head * b, t, d_k)
        q, k, v = heads(attn.w_qs(x)), heads(attn.w_ks(x)), heads(attn.w_vs(x))
        p = F.softmax(q @ k.transpose(1, 2) / math.sqrt(d_model), dim=-1)  # [h·B, T, T]
        torch.manual_seed(7)
        p = F.dropout(p, 0.5, training=True)  # the mask drawn on the head-major layout
        o = (p @ v).view(n_head, b, t, d_k).permute(1, 2, 0, 3).reshape(b, t, n_head * d_k)  # [B, T, h·d]
        fc = attn.fc(o)
        # The output dropout is drawn next from the same stream: same mask on our side.
        expected = F.dropout(fc, 0.5, training=True) + x
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
