"""The multi-period discriminator at official size (rule weights), keys, padding, folding."""
import sys

import pytest
import torch

from conftest import FIXTURES, assert_fixture_close, load_fixture
from gsv_edu.sovits.discriminators import DiscriminatorP, MultiPeriodDiscriminator
from gsv_edu.sovits.weight_norm import fold_weight_norm
from model_helpers import keys_and_shapes, reference_keys

sys.path.insert(0, str(FIXTURES))
import weight_rule  # noqa: E402  (tests/fixtures/sovits_v2/weight_rule.py)


@pytest.fixture(scope="module")
def official_mpd():
    return weight_rule.fill_module(MultiPeriodDiscriminator(False, version="v2")).eval()


def test_official_size_keys_and_shapes(official_mpd):
    assert keys_and_shapes(official_mpd) == reference_keys("sovits_v2_disc_state_dict.txt")


def test_matches_official_io_with_rule_weights(official_mpd):
    io = load_fixture("mpd_official_io.pt")
    assert official_mpd.periods == io["periods"]
    with torch.no_grad():
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = official_mpd(io["y"], io["y_hat"])
    for ours, ref in [(y_d_rs, io["y_d_rs"]), (y_d_gs, io["y_d_gs"])]:
        assert len(ours) == len(ref) == 6
        for a, b in zip(ours, ref):
            assert_fixture_close(a, b)
    for ours, ref in [(fmap_rs, io["fmap_rs"]), (fmap_gs, io["fmap_gs"])]:
        assert [len(f) for f in ours] == [len(f) for f in ref] == [7, 6, 6, 6, 6, 6]
        for fa, fb in zip(ours, ref):
            for a, b in zip(fa, fb):
                assert_fixture_close(a, b)


def test_period_discriminator_reflect_pads_to_a_multiple_of_the_period():
    torch.manual_seed(0)
    d = DiscriminatorP(5).eval()
    x = torch.randn(1, 1, 23)
    padded = torch.cat([x, x[..., [21, 20]]], dim=-1)  # reflect pad by 2
    with torch.no_grad():
        assert torch.equal(d(x)[0], d(padded)[0])
        assert d(x)[1][0].shape[-1] == 5  # [B, C, T/p, p]


def test_folding_weight_norm_keeps_scores():
    torch.manual_seed(0)
    mpd = MultiPeriodDiscriminator().eval()
    with torch.no_grad():
        for name, p in mpd.named_parameters():
            if name.endswith("weight_g"):
                p.mul_(1 + 0.2 * torch.rand_like(p))
    y, y_hat = torch.randn(1, 1, 300), torch.randn(1, 1, 300)
    with torch.no_grad():
        before = mpd(y, y_hat)
        fold_weight_norm(mpd)
        after = mpd(y, y_hat)
    for a, b in zip(before[0] + before[1], after[0] + after[1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_spectral_norm_and_v2pro_variants():
    mpd = MultiPeriodDiscriminator(use_spectral_norm=True, version="v2Pro")
    assert mpd.periods == [2, 3, 5, 7, 11, 17, 23] and len(mpd.discriminators) == 8
    assert "discriminators.0.convs.0.weight_orig" in mpd.state_dict()
    with pytest.raises(ValueError, match="same shape"):
        mpd(torch.zeros(1, 1, 64), torch.zeros(1, 1, 63))
