"""WN (WaveNet stack) and the PosteriorEncoder: tiny-model fixtures, official-size keys, folding."""
import torch

from conftest import assert_fixture_close
from gsv_edu.sovits.posterior import PosteriorEncoder
from gsv_edu.sovits.wavenet import WN
from model_helpers import (OFFICIAL_V2_MODEL, build_enc_q, keys_and_shapes, load_slice, reference_keys,
                           tiny_model_config)


def tiny_enc_q(state_dict):
    return load_slice(build_enc_q(tiny_model_config()), state_dict, "enc_q.")


def test_posterior_encoder_matches_tiny_fixture(tiny_state_dict, tiny_io):
    enc_q = tiny_enc_q(tiny_state_dict)
    d, inputs = tiny_io["deterministic"], tiny_io["inputs"]
    with torch.no_grad():
        z, m, logs, mask = enc_q(inputs["spec"], inputs["spec_lengths"], g=d["ge"], eps=d["enc_q_eps"])
    assert_fixture_close(m, d["m_q"])
    assert_fixture_close(logs, d["logs_q"])
    assert_fixture_close(z, d["z"])
    assert_fixture_close(mask, d["y_mask"])


def test_posterior_noise_is_one_randn_like_call(tiny_state_dict, tiny_io):
    """Without eps, exactly one torch.randn_like(m) is drawn (the official RNG stream)."""
    enc_q = tiny_enc_q(tiny_state_dict)
    spec, lengths = tiny_io["inputs"]["spec"], tiny_io["inputs"]["spec_lengths"]
    ge = tiny_io["deterministic"]["ge"]
    torch.manual_seed(7)
    with torch.no_grad():
        z, m, logs, mask = enc_q(spec, lengths, g=ge)
    after = torch.rand(1)
    torch.manual_seed(7)
    eps = torch.randn_like(m)
    assert torch.equal(torch.rand(1), after)
    torch.testing.assert_close(z, (m + eps * torch.exp(logs)) * mask)


def test_posterior_detaches_g():
    torch.manual_seed(0)
    enc_q = PosteriorEncoder(10, 4, 8, 5, 1, 2, gin_channels=3)
    g = torch.randn(2, 3, 1, requires_grad=True)
    z, m, logs, _ = enc_q(torch.randn(2, 10, 6), torch.tensor([6, 4]), g=g)
    (z.sum() + m.sum() + logs.sum()).backward()
    assert g.grad is None
    assert enc_q.enc.cond_layer.weight_v.grad is not None


def test_wn_folding_keeps_output_and_uses_conditioning():
    torch.manual_seed(0)
    wn = WN(8, 5, 2, 3, gin_channels=4).eval()
    with torch.no_grad():
        for p in wn.parameters():  # non-trivial g and biases
            p.add_(0.1 * torch.randn_like(p))
    x, g = torch.randn(2, 8, 20), torch.randn(2, 4, 1)
    mask = torch.ones(2, 1, 20)
    mask[1, :, 15:] = 0
    with torch.no_grad():
        before = wn(x, mask, g=g)
        unconditioned = wn(x, mask)
        wn.remove_weight_norm()
        after = wn(x, mask, g=g)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)
    assert (before - unconditioned).abs().max() > 1e-3  # g matters
    assert torch.all(before[1, :, 15:] == 0)  # masked output
    assert "in_layers.0.weight" in wn.state_dict()


def test_wn_layer_uses_its_own_slice_of_the_conditioning():
    """Layer 0 adds cond channels [0, 2H): shifting them equals shifting in_layers.0's bias."""
    torch.manual_seed(0)
    wn = WN(4, 3, 1, 2, gin_channels=2).eval()
    x, g, mask = torch.randn(1, 4, 9), torch.randn(1, 2, 1), torch.ones(1, 1, 9)
    with torch.no_grad():
        base = wn(x, mask, g=g)
        wn.in_layers[0].bias[:] += 1.0
        shifted = wn(x, mask, g=g)
        wn.in_layers[0].bias[:] -= 1.0
        wn.cond_layer.bias[:8] += 1.0
        via_cond = wn(x, mask, g=g)
    torch.testing.assert_close(via_cond, shifted)
    assert (shifted - base).abs().max() > 1e-3


def test_official_size_enc_q_keys_and_shapes():
    enc_q = build_enc_q(OFFICIAL_V2_MODEL)
    assert keys_and_shapes(enc_q) == reference_keys("sovits_v2_state_dict.txt", "enc_q.")
