"""The relative-position attention, the FFN and the post-norm Encoder (gsv_edu.sovits.attention).

The windowed relative attention is checked against a direct, loop-based evaluation of its
definition (no skewing tricks): the relation-aware self-attention of Shaw et al. 2018 (section
"Relation-aware Self-Attention": a relative key term in the logits, a relative value term in
the output), except that pairs farther apart than the window get no relative term where Shaw
et al. clip the distance to the edge embedding, since
`GPT_SoVITS/module/attentions.py · MultiHeadAttention._get_relative_embeddings @48b1a01` pads
the 2w+1 embeddings with zeros. The encoder is checked against its padding invariants.
Fixture parity of the encoders inside enc_p is in test_prior.py.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from gsv_edu.sovits.attention import FFN, Encoder, MultiHeadAttention, absolute_to_relative, relative_to_absolute


@pytest.mark.parametrize("t", [1, 3, 5, 6, 11])
def test_relative_to_absolute_places_each_offset(t):
    w = 4
    rel = torch.randn(2, 3, t, 2 * w + 1)
    out = relative_to_absolute(rel, w)
    expected = torch.zeros(2, 3, t, t)
    for i in range(t):
        for j in range(t):
            if abs(j - i) <= w:
                expected[..., i, j] = rel[..., i, j - i + w]
    assert torch.equal(out, expected)


@pytest.mark.parametrize("t", [1, 3, 5, 6, 11])
def test_absolute_to_relative_gathers_each_offset(t):
    w = 4
    absolute = torch.randn(2, 3, t, t)
    out = absolute_to_relative(absolute, w)
    expected = torch.zeros(2, 3, t, 2 * w + 1)
    for i in range(t):
        for r in range(2 * w + 1):
            j = i + r - w
            if 0 <= j < t:
                expected[..., i, r] = absolute[..., i, j]
    assert torch.equal(out, expected)


def _attention_by_definition(mha: MultiHeadAttention, x, c, mask):
    """`GPT_SoVITS/module/attentions.py · MultiHeadAttention.attention @48b1a01` evaluated pair by
    pair, in float64: logits q_i·(k_j + E_k[j − i + w])/√d and outputs
    Σ_j p_ij (v_j + E_v[j − i + w]), the relative terms only for |j − i| ≤ w."""
    x, c, mask = x.double(), c.double(), mask.double()
    conv = lambda layer, inp: F.conv1d(inp, layer.weight.double(), layer.bias.double())  # noqa: E731
    q, k, v = conv(mha.conv_q, x), conv(mha.conv_k, c), conv(mha.conv_v, c)
    b, ch, t_q = q.shape
    t_k = k.size(2)
    h, d, w = mha.n_heads, mha.k_channels, mha.window_size
    out = torch.zeros(b, ch, t_q, dtype=torch.float64)
    for bi in range(b):
        for hi in range(h):
            qh, kh, vh = (z[bi, hi * d:(hi + 1) * d] for z in (q, k, v))  # [d, T]
            ek = mha.emb_rel_k[0 if mha.heads_share else hi].double() if w is not None else None
            ev = mha.emb_rel_v[0 if mha.heads_share else hi].double() if w is not None else None
            scores = torch.zeros(t_q, t_k, dtype=torch.float64)
            for i in range(t_q):
                for j in range(t_k):
                    s = qh[:, i] @ kh[:, j] / math.sqrt(d)
                    if w is not None and abs(j - i) <= w:
                        s = s + qh[:, i] @ ek[j - i + w] / math.sqrt(d)
                    scores[i, j] = s if mask[bi, 0, i, j] != 0 else -1e4
            p = torch.softmax(scores, dim=-1)
            for i in range(t_q):
                acc = vh @ p[i]  # [d]
                if w is not None:
                    for j in range(t_k):
                        if abs(j - i) <= w:
                            acc = acc + p[i, j] * ev[j - i + w]
                out[bi, hi * d:(hi + 1) * d, i] = acc
    return F.conv1d(out, mha.conv_o.weight.double(), mha.conv_o.bias.double())


@pytest.mark.parametrize("heads_share", [True, False])
def test_relative_self_attention_matches_definition(heads_share):
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 6, n_heads=2, p_dropout=0.0, window_size=2, heads_share=heads_share).eval()
    assert mha.emb_rel_k.shape == (1 if heads_share else 2, 5, 4)
    x = torch.randn(2, 8, 7)
    x_mask = torch.ones(2, 1, 7)
    x_mask[1, :, 5:] = 0
    attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)  # [B, 1, T, T]
    out = mha(x, x, attn_mask)
    expected = _attention_by_definition(mha, x, x, attn_mask)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


def test_cross_attention_without_window_matches_definition():
    torch.manual_seed(1)
    mha = MultiHeadAttention(8, 8, n_heads=4).eval()
    assert not hasattr(mha, "emb_rel_k")
    x, c = torch.randn(2, 8, 6), torch.randn(2, 8, 4)
    q_mask, k_mask = torch.ones(2, 1, 6), torch.ones(2, 1, 4)
    k_mask[0, :, 3:] = 0
    attn_mask = k_mask.unsqueeze(2) * q_mask.unsqueeze(-1)  # [B, 1, T_q, T_k]
    out = mha(x, c, attn_mask)
    torch.testing.assert_close(out.double(), _attention_by_definition(mha, x, c, attn_mask), rtol=1e-5, atol=1e-5)


def test_relative_attention_refuses_cross_attention():
    mha = MultiHeadAttention(8, 8, n_heads=2, window_size=4)
    with pytest.raises(ValueError, match="T_q == T_k"):
        mha(torch.randn(1, 8, 5), torch.randn(1, 8, 3))


@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4])
def test_ffn_same_padding_and_masking(kernel_size):
    torch.manual_seed(2)
    ffn = FFN(4, 5, 7, kernel_size).eval()
    x = torch.randn(1, 4, 9)
    mask = torch.ones(1, 1, 9)
    mask[..., 7:] = 0
    pad = ((kernel_size - 1) // 2, kernel_size // 2)
    h = torch.relu(F.conv1d(F.pad(x * mask, pad), ffn.conv_1.weight, ffn.conv_1.bias))
    expected = F.conv1d(F.pad(h * mask, pad), ffn.conv_2.weight, ffn.conv_2.bias) * mask
    out = ffn(x, mask)
    assert out.shape == (1, 5, 9)
    torch.testing.assert_close(out, expected)


def test_encoder_keys_follow_the_official_layout():
    enc = Encoder(16, 32, n_heads=2, n_layers=2, kernel_size=3)
    keys = list(enc.state_dict())
    assert keys[:4] == ["attn_layers.0.emb_rel_k", "attn_layers.0.emb_rel_v",
                        "attn_layers.0.conv_q.weight", "attn_layers.0.conv_q.bias"]
    assert "norm_layers_1.1.gamma" in keys and "norm_layers_2.1.beta" in keys
    assert enc.state_dict()["attn_layers.1.emb_rel_v"].shape == (1, 9, 8)  # window 4, d = 16/2
    assert enc.state_dict()["ffn_layers.0.conv_1.weight"].shape == (32, 16, 3)
    # order inside a layer group: all attn_layers, then norm_layers_1, ffn_layers, norm_layers_2
    first = [next(i for i, k in enumerate(keys) if k.startswith(p))
             for p in ("attn_layers", "norm_layers_1", "ffn_layers", "norm_layers_2")]
    assert first == sorted(first)


def test_encoder_ignores_padded_frames():
    """Valid outputs do not depend on what lies beyond the length; padded outputs are zero."""
    torch.manual_seed(3)
    enc = Encoder(16, 32, n_heads=2, n_layers=2, kernel_size=3).eval()
    x = torch.randn(2, 16, 12)
    mask = torch.ones(2, 1, 12)
    mask[1, :, 7:] = 0
    out = enc(x, mask)
    x_junk = x.clone()
    x_junk[1, :, 7:] = 100 * torch.randn(16, 5)
    out_junk = enc(x_junk, mask)
    torch.testing.assert_close(out, out_junk, rtol=0, atol=1e-6)
    assert torch.all(out[1, :, 7:] == 0)
    # the short item alone gives the same numbers as inside the padded batch
    alone = enc(x[1:, :, :7], torch.ones(1, 1, 7))
    torch.testing.assert_close(alone, out[1:, :, :7], rtol=1e-5, atol=1e-5)


def test_encoder_is_not_translation_invariant_beyond_the_window():
    """Relative positions inside the window matter: permuting time changes the outputs."""
    torch.manual_seed(4)
    enc = Encoder(8, 16, n_heads=2, n_layers=1, kernel_size=1).eval()
    x = torch.randn(1, 8, 6)
    mask = torch.ones(1, 1, 6)
    out = enc(x, mask)
    out_perm = enc(x[..., [1, 0, 2, 3, 4, 5]], mask)
    assert not torch.allclose(out[..., 2:], out_perm[..., 2:], atol=1e-4)
