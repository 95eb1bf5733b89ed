import pytest
import torch

from gsv_edu.sovits import commons
from conftest import assert_fixture_close, load_fixture


def test_sequence_mask_marks_valid_frames():
    m = commons.sequence_mask(torch.tensor([3, 1]), 4)
    assert m.tolist() == [[True, True, True, False], [True, False, False, False]]


def test_get_padding_keeps_length():
    for k, d in [(3, 1), (5, 3), (11, 5)]:
        conv = torch.nn.Conv1d(1, 1, k, dilation=d, padding=commons.get_padding(k, d))
        assert conv(torch.zeros(1, 1, 37)).shape[-1] == 37


def test_slice_segments_takes_the_right_window():
    x = torch.arange(2 * 3 * 10, dtype=torch.float32).view(2, 3, 10)
    out = commons.slice_segments(x, torch.tensor([2, 5]), 4)
    assert out.shape == (2, 3, 4)
    assert torch.equal(out[0], x[0, :, 2:6]) and torch.equal(out[1], x[1, :, 5:9])
    with pytest.raises(ValueError, match="does not fit"):
        commons.slice_segments(x, torch.tensor([0, 7]), 4)


def test_rand_slice_segments_matches_official_rng_and_slices():
    """After manual_seed the official forward draws randn_like(m_q) then rand([B]) (fixture §5.3)."""
    io = load_fixture("tiny_io.pt")
    f = io["forward"]
    torch.manual_seed(1234)
    eps = torch.randn_like(f["m_q"])
    assert_fixture_close(eps, f["rng_enc_q_eps"])
    _, ids = commons.rand_slice_segments(f["z"], io["inputs"]["spec_lengths"], 8)
    assert ids.tolist() == f["ids_slice"].tolist() == [18, 22]


def test_rand_slice_rejects_items_shorter_than_the_segment():
    with pytest.raises(ValueError, match="shorter than the segment"):
        commons.rand_slice_segments(torch.zeros(1, 2, 40), torch.tensor([5]), 8)


def test_gated_activation_and_layernorm():
    a, b = torch.randn(2, 6, 5), torch.randn(2, 6, 5)
    s = a + b
    expected = torch.tanh(s[:, :3]) * torch.sigmoid(s[:, 3:])
    torch.testing.assert_close(commons.fused_add_tanh_sigmoid_multiply(a, b, 3), expected)
    ln = commons.LayerNorm(6)
    assert set(ln.state_dict()) == {"gamma", "beta"}
    y = ln(torch.randn(2, 6, 5) * 3 + 1)
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 5), atol=1e-5, rtol=0)
