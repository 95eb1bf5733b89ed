"""The HiFi-GAN generator: tiny fixtures, folding weight norm, hop length, official keys."""
import math

import pytest
import torch

from conftest import assert_fixture_close
from gsv_edu.hifigan import Generator, ResBlock2
from model_helpers import (OFFICIAL_V2_MODEL, build_dec, keys_and_shapes, load_slice, reference_keys,
                           tiny_model_config)


@pytest.fixture
def tiny_dec(tiny_state_dict):
    return load_slice(build_dec(tiny_model_config()), tiny_state_dict, "dec.")


def test_generator_matches_tiny_fixture(tiny_dec, tiny_io):
    d = tiny_io["deterministic"]
    with torch.no_grad():
        out = tiny_dec(d["dec_input"], g=d["ge"])
        full = tiny_dec(d["z"] * d["y_mask"], g=d["ge"])
    assert_fixture_close(out, d["dec_output"])
    assert_fixture_close(full, d["dec_output_full"])


def test_folding_weight_norm_keeps_the_output(tiny_dec, tiny_io):
    d = tiny_io["deterministic"]
    with torch.no_grad():
        before = tiny_dec(d["dec_input"], g=d["ge"])
        tiny_dec.remove_weight_norm()
        after = tiny_dec(d["dec_input"], g=d["ge"])
    assert not any(k.endswith("weight_g") for k in tiny_dec.state_dict())
    assert_fixture_close(after, before)
    assert_fixture_close(after, d["dec_output"])


def test_upsampling_is_the_hop_length():
    cfg = OFFICIAL_V2_MODEL
    assert math.prod(cfg["upsample_rates"]) == 640
    tiny = build_dec(tiny_model_config()).eval()
    assert tiny.upsample_factor == 640
    with torch.no_grad():
        assert tiny(torch.randn(1, 16, 3), g=torch.randn(1, 64, 1)).shape == (1, 1, 3 * 640)


def test_official_size_generator_keys_and_shapes():
    dec = build_dec(OFFICIAL_V2_MODEL)
    assert keys_and_shapes(dec) == reference_keys("sovits_v2_state_dict.txt", "dec.")
    assert dec.conv_post.bias is None


def test_resblock2_generator_runs_and_rejects_bad_config():
    torch.manual_seed(0)
    gen = Generator(4, "2", [3, 5], [[1, 3], [1, 3]], [4, 2], 16, [8, 4]).eval()
    assert isinstance(gen.resblocks[0], ResBlock2)
    with torch.no_grad():
        assert gen(torch.randn(2, 4, 5)).shape == (2, 1, 40)
    with pytest.raises(ValueError, match="does not upsample"):
        Generator(4, "1", [3], [[1, 3, 5]], [4], 16, [5])
