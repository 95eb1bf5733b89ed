"""The coupling flow: tiny fixtures, exact invertibility, identity at init, official keys."""
import torch

from conftest import assert_fixture_close
from gsv_edu.sovits.flows import Flip, ResidualCouplingBlock, ResidualCouplingLayer
from model_helpers import (OFFICIAL_V2_MODEL, build_flow, keys_and_shapes, load_slice, reference_keys,
                           tiny_model_config)


def test_flow_matches_tiny_fixture(tiny_state_dict, tiny_io):
    flow = load_slice(build_flow(tiny_model_config()), tiny_state_dict, "flow.")
    d = tiny_io["deterministic"]
    with torch.no_grad():
        z_p = flow(d["z"], d["y_mask"], g=d["ge"])
        back = flow(d["flow_forward"], d["y_mask"], g=d["ge"], reverse=True)
    assert_fixture_close(z_p, d["flow_forward"])
    assert_fixture_close(back, d["flow_reverse_of_forward"])


def test_reverse_inverts_forward_with_random_weights():
    torch.manual_seed(0)
    flow = ResidualCouplingBlock(6, 8, 5, 1, 2, n_flows=3, gin_channels=4).eval()
    with torch.no_grad():
        for layer in flow.flows[::2]:  # make the zero-initialised post convs non-trivial
            layer.post.weight.normal_(0, 0.5)
            layer.post.bias.normal_(0, 0.5)
    x, g = torch.randn(2, 6, 11), torch.randn(2, 4, 1)
    mask = torch.ones(2, 1, 11)
    mask[1, :, 7:] = 0
    x = x * mask
    with torch.no_grad():
        y = flow(x, mask, g=g)
        back = flow(y, mask, g=g, reverse=True)
    assert (y - x).abs().max() > 0.1  # the flow does something
    torch.testing.assert_close(back, x, rtol=1e-5, atol=1e-5)


def test_fresh_flow_is_identity_up_to_flips():
    """post is zero-initialised, so each coupling is the identity; 4 flips cancel out."""
    torch.manual_seed(0)
    flow = ResidualCouplingBlock(4, 8, 5, 1, 2, n_flows=4)
    x = torch.randn(1, 4, 5)
    assert torch.equal(flow(x, torch.ones(1, 1, 5)), x)
    layer = ResidualCouplingLayer(4, 8, 5, 1, 2)
    assert torch.all(layer.post.weight == 0) and torch.all(layer.post.bias == 0)
    assert torch.equal(Flip()(x), x.flip(1))


def test_official_size_flow_keys_and_shapes():
    flow = build_flow(OFFICIAL_V2_MODEL)
    assert keys_and_shapes(flow) == reference_keys("sovits_v2_state_dict.txt", "flow.")
