"""gsv_edu/sovits/dft_conv.py: the block-DFT (overlap-save) convolutions give the direct convolution's
values, fall back where they do not apply, see weight changes, and leave the official-size decode
equal to the official fixture (tests/fixtures/sovits_v2/official_v2_io.pt)."""
from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from conftest import FIXTURES, assert_fixture_close, load_fixture
from gsv_edu.config import Config
from gsv_edu.sovits.channels_last import ChannelsLastConv1d, use_channels_last_convs
from gsv_edu.sovits.dft_conv import MIN_BLOCKS, DFTConv1d, dft_pays_off, use_dft_convs
from gsv_edu.sovits.models import SynthesizerTrn
from gsv_edu.sovits.weight_norm import fold_weight_norm, weight_norm

sys.path.insert(0, str(FIXTURES))
import weight_rule  # noqa: E402  (the fixtures' own helper, imported from the fixtures folder)


def _conv(c_in, c_out, k, d, bias=True, seed=0):
    torch.manual_seed(seed)
    return nn.Conv1d(c_in, c_out, k, dilation=d, padding=d * (k - 1) // 2, bias=bias)


@pytest.mark.parametrize("c_in, c_out, k, d, t, batch, bias", [
    (128, 128, 11, 1, 2000, 1, True),
    (128, 64, 11, 5, 1777, 1, True),  # T not a multiple of the dilation or the block
    (64, 96, 7, 3, 1000, 3, False),   # a batch, no bias
    (16, 16, 3, 1, 1000, 2, True),    # a small conv (forced)
])
def test_block_dft_equals_the_direct_convolution(c_in, c_out, k, d, t, batch, bias):
    conv = _conv(c_in, c_out, k, d, bias)
    x = torch.randn(batch, c_in, t)
    with torch.no_grad():
        want = conv(x)
        use_dft_convs(conv)
        if not dft_pays_off(conv):  # small convs are left alone by use_dft_convs; force the class here
            conv.__class__ = DFTConv1d
        got = conv(x)
        got_time_major = conv(x.transpose(1, 2).contiguous().transpose(1, 2))
    assert type(conv) is DFTConv1d and "_dft_cache" in conv.__dict__  # the block path ran
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())
    torch.testing.assert_close(got_time_major, got)
    assert got.stride(1) == 1  # time-major, as the channels-last convolutions


def test_only_wide_convs_are_switched_and_switching_back_restores_the_class():
    module = nn.Sequential(_conv(128, 128, 11, 1), _conv(128, 128, 3, 1), _conv(64, 64, 7, 1), _conv(256, 256, 7, 5))
    use_channels_last_convs(module)
    use_dft_convs(module)
    assert [type(m) for m in module] == [DFTConv1d, ChannelsLastConv1d, ChannelsLastConv1d, DFTConv1d]
    use_dft_convs(module, enabled=False)
    assert [type(m) for m in module] == [ChannelsLastConv1d] * 4
    assert not any("_dft_cache" in m.__dict__ for m in module)


def test_training_falls_back_to_the_direct_convolution_with_gradients():
    conv = _conv(128, 128, 11, 3)
    x = torch.randn(1, 128, 2000, requires_grad=True)
    want = conv(x)
    (gw,) = torch.autograd.grad(want.square().sum(), [conv.weight])
    use_dft_convs(conv)
    got = conv(x)
    (gw2,) = torch.autograd.grad(got.square().sum(), [conv.weight])
    # the fallback is the channels-last direct convolution: another summation order than nn.Conv1d's
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw2, gw, rtol=1e-4, atol=1e-4 * gw.abs().max().item())


def test_the_cached_spectra_follow_weight_changes():
    conv = use_dft_convs(_conv(128, 128, 11, 1))
    x = torch.randn(1, 128, 2000)
    with torch.no_grad():
        first = conv(x)
        assert "_dft_cache" in conv.__dict__
        conv.weight.mul_(2)  # in place: a new version of the same Parameter
        doubled = conv(x)
        conv.weight = nn.Parameter(conv.weight.detach() / 2)  # a new Parameter
        again = conv(x)
    bias = conv.bias.view(1, -1, 1)
    torch.testing.assert_close(doubled - bias, 2 * (first - bias), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(again, first, rtol=1e-5, atol=1e-5)


def test_weight_normed_convs_work_without_a_cache():
    conv = weight_norm(_conv(128, 128, 7, 1))
    x = torch.randn(1, 128, 2000)
    with torch.no_grad():
        want = conv(x)
        use_dft_convs(conv)
        got = conv(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert "_dft_cache" not in conv.__dict__


def test_a_conv_built_under_inference_mode_works():
    with torch.inference_mode():  # its Parameters are inference tensors, without a version counter
        conv = _conv(128, 128, 11, 3)
        x = torch.randn(1, 128, 2000)
        want = conv(x)
        use_dft_convs(conv)
        got, again = conv(x), conv(x)
    assert "_dft_cache" in conv.__dict__
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert torch.equal(again, got)


def test_short_signals_stay_direct():
    conv = use_dft_convs(_conv(128, 128, 11, 1))
    with torch.no_grad():
        conv(torch.randn(1, 128, MIN_BLOCKS * 54 - 1))  # one sample short of MIN_BLOCKS blocks of 54 outputs
        assert "_dft_cache" not in conv.__dict__
        conv(torch.randn(1, 128, MIN_BLOCKS * 54))
        assert "_dft_cache" in conv.__dict__


def test_official_size_decode_with_dft_convs_matches_fixture():
    """As load_sovits prepares it for the CPU: weight norm folded, channels-last + block-DFT decoder."""
    cfg = Config.preset("official-v2")
    model = SynthesizerTrn(1025, 32, n_speakers=300, **cfg.model_kwargs())
    weight_rule.fill_module(model)
    model.eval()
    fold_weight_norm(model)
    use_dft_convs(use_channels_last_convs(model.dec))
    assert sum(type(m) is DFTConv1d for m in model.dec.modules()) == 31
    io = load_fixture("official_v2_io.pt")
    inp, out = io["inputs"], io["outputs"]
    with torch.no_grad():
        codes = model.extract_latent(inp["ssl"])
        wav = model.decode(codes.transpose(0, 1), inp["text"], inp["refer"], noise_scale=0)
    assert_fixture_close(wav, out["wav"])
