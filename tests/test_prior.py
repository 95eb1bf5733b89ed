"""The prior side of SoVITS: MelStyleEncoder (ref_enc), MRTE and TextEncoder (enc_p).

Each module is loaded alone with the tiny fixture's weights and compared with the official
outputs (tests/fixtures/sovits_v2, tolerance rtol 1e-4 / atol 1e-5), then checked on the
invariants of the official code at 48b1a01 (`GPT_SoVITS/module/models.py · TextEncoder.forward`,
`GPT_SoVITS/module/modules.py · MelStyleEncoder.forward, MultiHeadAttention.__init__`,
`GPT_SoVITS/module/mrte_model.py · MRTE.forward`).
"""
from __future__ import annotations

import math

import pytest
import torch

from conftest import assert_fixture_close
from gsv_edu.sovits.mrte import MRTE
from gsv_edu.sovits.prior import TextEncoder
from gsv_edu.sovits.style import MelStyleEncoder, StyleAttention

TINY = dict(out_channels=16, hidden_channels=32, filter_channels=64, n_heads=2, n_layers=4,
            kernel_size=3, p_dropout=0.1)


def _sub(state_dict, prefix):
    return {k[len(prefix):]: v.float() for k, v in state_dict.items() if k.startswith(prefix)}


@pytest.fixture
def tiny_ref_enc(tiny_state_dict):
    ref_enc = MelStyleEncoder(704, style_vector_dim=64).eval()
    ref_enc.load_state_dict(_sub(tiny_state_dict, "ref_enc."))
    return ref_enc


@pytest.fixture
def tiny_enc_p(tiny_state_dict):
    enc_p = TextEncoder(**TINY, gin_channels=64).eval()
    sub = _sub(tiny_state_dict, "enc_p.")
    assert list(enc_p.state_dict()) == list(sub)  # official key order
    enc_p.load_state_dict(sub)
    return enc_p


# ---------------------------------------------------------------------------- MelStyleEncoder

def test_ref_enc_matches_fixture(tiny_ref_enc, tiny_io):
    inp, det = tiny_io["inputs"], tiny_io["deterministic"]
    y_mask = det["y_mask"]
    with torch.no_grad():
        ge = tiny_ref_enc(inp["spec"][:, :704] * y_mask, y_mask)
        decode_ge = tiny_ref_enc(det["decode_refer"][:, :704], torch.ones(1, 1, 30))
    assert ge.shape == (2, 64, 1)
    assert_fixture_close(ge, det["ge"])
    assert_fixture_close(decode_ge, det["decode_ge"])


def test_ref_enc_ignores_padded_values_but_not_the_padding_itself(tiny_ref_enc, tiny_io):
    """What lies in the padded frames does not matter (they are multiplied by the mask) ...

    ... but the amount of padding does: official quirk, the masked frames pass through the
    spectral MLP (becoming Mish(bias) ≠ 0) before the kernel-5 temporal convolutions, so the
    last valid frames see them. An item alone gets a (slightly) different ge than padded.
    """
    inp, det = tiny_io["inputs"], tiny_io["deterministic"]
    y_mask, n = det["y_mask"], int(inp["spec_lengths"][1])
    spec = inp["spec"][:, :704].clone()
    spec[1, :, n:] = 7.0
    with torch.no_grad():
        ge = tiny_ref_enc(spec * y_mask, y_mask)
        alone = tiny_ref_enc(inp["spec"][1:, :704, :n], torch.ones(1, 1, n))
    assert_fixture_close(ge, det["ge"])
    assert not torch.allclose(alone, det["ge"][1:], atol=1e-4)


def test_style_attention_temperature_is_sqrt_d_model():
    """Official quirk (`GPT_SoVITS/module/modules.py · MultiHeadAttention.__init__ @48b1a01`):
    scores / √128, not / √64."""
    attn = StyleAttention(n_head=2, d_model=128, d_k=64, d_v=64).eval()
    assert attn.temperature == pytest.approx(math.sqrt(128))
    torch.manual_seed(0)
    x = torch.randn(1, 5, 128)
    q = attn.w_qs(x).view(1, 5, 2, 64).transpose(1, 2)
    k = attn.w_ks(x).view(1, 5, 2, 64).transpose(1, 2)
    v = attn.w_vs(x).view(1, 5, 2, 64).transpose(1, 2)
    p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(128), dim=-1)
    expected = attn.fc((p @ v).transpose(1, 2).reshape(1, 5, 128)) + x
    torch.testing.assert_close(attn(x), expected)


def test_ref_enc_key_layout_and_input_check():
    ref_enc = MelStyleEncoder(1025, style_vector_dim=512)  # v1: every bin
    shapes = {k: tuple(v.shape) for k, v in ref_enc.state_dict().items()}
    assert list(shapes)[:4] == ["spectral.0.fc.weight", "spectral.0.fc.bias", "spectral.3.fc.weight",
                                "spectral.3.fc.bias"]
    assert shapes["spectral.0.fc.weight"] == (128, 1025)
    assert shapes["temporal.1.conv1.conv.weight"] == (256, 128, 5)
    assert shapes["fc.fc.weight"] == (512, 128)
    with pytest.raises(ValueError, match="1025 frequency bins"):
        ref_enc(torch.zeros(1, 704, 10), torch.ones(1, 1, 10))


# ---------------------------------------------------------------------------- TextEncoder

def test_enc_p_matches_fixture(tiny_enc_p, tiny_io):
    inp, det = tiny_io["inputs"], tiny_io["deterministic"]
    with torch.no_grad():
        x, m_p, logs_p, y_mask, x0, mask0 = tiny_enc_p(det["quantized_upsampled"], inp["spec_lengths"],
                                                       inp["text"], inp["text_lengths"], det["ge"])
    assert_fixture_close(x, det["enc_p_x"])
    assert_fixture_close(m_p, det["m_p"])
    assert_fixture_close(logs_p, det["logs_p"])
    assert_fixture_close(y_mask, det["y_mask"])
    assert x0 is x and mask0 is y_mask  # speed 1: nothing stretched


def test_enc_p_speed_stretches_to_int_t_over_speed_plus_one(tiny_enc_p, tiny_io):
    inp, det = tiny_io["inputs"], tiny_io["deterministic"]
    with torch.no_grad():
        x, m_p, logs_p, y_mask, x0, mask0 = tiny_enc_p(det["quantized_upsampled"], inp["spec_lengths"],
                                                       inp["text"], inp["text_lengths"], det["ge"], speed=1.25)
    assert x.shape[-1] == m_p.shape[-1] == y_mask.shape[-1] == int(42 / 1.25) + 1 == 34
    assert x0.shape[-1] == mask0.shape[-1] == 42
    assert_fixture_close(x0, det["enc_p_x"])
    # item 1 (30 valid frames of 42): nearest-interpolated mask (frame i ← floor(i·42/34)), masked stats
    assert int(y_mask[1].sum()) == 25 and torch.all(m_p[1, :, 25:] == 0) and int(y_mask[0].sum()) == 33


def test_enc_p_test_1_uses_zero_text_without_touching_the_callers_tensor(tiny_enc_p, tiny_io):
    """The official zeroes `text` in place (`GPT_SoVITS/module/models.py · TextEncoder.forward
    @48b1a01`); ours leaves it alone."""
    inp, det = tiny_io["inputs"], tiny_io["deterministic"]
    text = inp["text"].clone()
    args = (det["quantized_upsampled"], inp["spec_lengths"])
    with torch.no_grad():
        _, m_test, _, _, _, _ = tiny_enc_p(*args, text, inp["text_lengths"], det["ge"], test=1)
        _, m_zero, _, _, _, _ = tiny_enc_p(*args, torch.zeros_like(text), inp["text_lengths"], det["ge"])
    assert torch.equal(text, inp["text"])
    torch.testing.assert_close(m_test, m_zero, rtol=0, atol=0)
    assert not torch.allclose(m_test, det["m_p"], atol=1e-3)  # the text does matter


def test_enc_p_text_enters_only_through_valid_phonemes(tiny_enc_p, tiny_io):
    inp, det = tiny_io["inputs"], tiny_io["deterministic"]
    text = inp["text"].clone()
    text[1, 9:] = 700  # item 1 has 9 phonemes: the padding ids must not matter
    with torch.no_grad():
        _, m_p, _, _, _, _ = tiny_enc_p(det["quantized_upsampled"], inp["spec_lengths"], text,
                                        inp["text_lengths"], det["ge"])
    torch.testing.assert_close(m_p, det["m_p"], rtol=1e-4, atol=1e-5)


def test_text_table_rows_per_version():
    assert TextEncoder(**TINY, version="v1").text_embedding.num_embeddings == 322
    assert TextEncoder(**TINY, version="v2").text_embedding.num_embeddings == 732


def test_enc_p_official_sizes():
    enc_p = TextEncoder(192, 192, 768, 2, 6, 3, 0.1)  # official defaults: ssl 768, MRTE 512 wide
    shapes = {k: tuple(v.shape) for k, v in enc_p.state_dict().items()}
    assert shapes["ssl_proj.weight"] == (192, 768, 1)
    assert shapes["mrte.cross_attention.conv_q.weight"] == (512, 512, 1)
    assert shapes["mrte.c_pre.weight"] == (512, 192, 1)
    assert shapes["mrte.c_post.weight"] == (192, 512, 1)
    assert shapes["proj.weight"] == (384, 192, 1)
    assert len(enc_p.encoder_ssl.attn_layers) == 3 and len(enc_p.encoder_text.attn_layers) == 6
    assert sum(v.numel() for k, v in enc_p.state_dict().items() if k.startswith("mrte.")) == 1_346_752


# ---------------------------------------------------------------------------- MRTE

def _mrte_inputs():
    torch.manual_seed(5)
    ssl, text, ge = torch.randn(2, 8, 7), torch.randn(2, 8, 4), torch.randn(2, 12, 1)
    ssl_mask, text_mask = torch.ones(2, 1, 7), torch.ones(2, 1, 4)
    ssl_mask[1, :, 5:] = 0
    text_mask[1, :, 3:] = 0
    return ssl, ssl_mask, text, text_mask, ge


def test_mrte_widths_are_parameters():
    mrte = MRTE(content_enc_channels=8, hidden_size=12, out_channels=6, n_heads=4)
    assert mrte.cross_attention.n_heads == 4 and mrte.cross_attention.window_size is None
    assert tuple(mrte.c_pre.weight.shape) == (12, 8, 1) and tuple(mrte.c_post.weight.shape) == (6, 12, 1)


def test_mrte_variants():
    """test None: attention + content + ge; 1: content + ge; 2: attention of a zero query + ge."""
    mrte = MRTE(8, 12, 8, n_heads=4).eval()
    ssl, ssl_mask, text, text_mask, ge = _mrte_inputs()
    attn_mask = text_mask.unsqueeze(2) * ssl_mask.unsqueeze(-1)
    s = mrte.c_pre(ssl * ssl_mask)
    u = mrte.text_pre(text * text_mask)
    with torch.no_grad():
        full = mrte(ssl, ssl_mask, text, text_mask, ge)
        torch.testing.assert_close(full, mrte.c_post((mrte.cross_attention(s * ssl_mask, u * text_mask, attn_mask)
                                                      + s + ge) * ssl_mask))
        torch.testing.assert_close(mrte(ssl, ssl_mask, text, text_mask, ge, test=1),
                                   mrte.c_post((s + ge) * ssl_mask))
        zero_query = mrte.cross_attention(torch.zeros_like(s), u * text_mask, attn_mask)
        torch.testing.assert_close(mrte(ssl, ssl_mask, text, text_mask, ge, test=2),
                                   mrte.c_post((zero_query + ge) * ssl_mask))
        # not re-masked after c_post: padded frames hold the c_post bias
        torch.testing.assert_close(full[1, :, 5:], mrte.c_post.bias[:, None].expand(8, 2))
    with pytest.raises(ValueError, match="test must be"):
        mrte(ssl, ssl_mask, text, text_mask, ge, test=3)


def test_mrte_ignores_padded_phonemes():
    mrte = MRTE(8, 12, 8, n_heads=4).eval()
    ssl, ssl_mask, text, text_mask, ge = _mrte_inputs()
    junk = text.clone()
    junk[1, :, 3:] = 50.0
    with torch.no_grad():
        torch.testing.assert_close(mrte(ssl, ssl_mask, text, text_mask, ge),
                                   mrte(ssl, ssl_mask, junk, text_mask, ge))
