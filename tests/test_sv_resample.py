"""The windowed-sinc resampler (gsv_edu.sv.resample) against torchaudio's Resample (tests/fixtures/v2pro)."""
import math
import pathlib

import pytest
import torch

from conftest import assert_fixture_close
from gsv_edu.sv.resample import Resample, ResampleError, resample, sinc_resample_kernel

V2PRO = pathlib.Path(__file__).parent / "fixtures" / "v2pro"


@pytest.fixture(scope="module")
def fx():
    return torch.load(V2PRO / "resample.pt", map_location="cpu", weights_only=True)


def test_kernel_equals_torchaudio(fx):
    kernel, width = sinc_resample_kernel(32000, 16000)
    assert width == fx["width"] == 13
    assert kernel.shape == fx["kernel"].shape == (1, 1, 28)
    assert torch.equal(kernel, fx["kernel"])  # float64 arithmetic, then float32: bit-identical


@pytest.mark.parametrize("n", [1, 2, 3, 27, 28, 29, 800, 801, 32003])
def test_32k_to_16k_matches_torchaudio(fx, n):
    x, expected = fx["inputs"][n], fx["outputs"][n]
    ours = resample(x, 32000, 16000)
    assert ours.shape[-1] == math.ceil(n / 2) == expected.shape[-1]
    assert_fixture_close(ours, expected, f"length {n}")
    assert torch.equal(Resample(32000, 16000)(x), ours)


def test_batched_and_other_rates(fx):
    assert_fixture_close(resample(fx["batch_input"], 32000, 16000), fx["batch_output"])
    assert resample(fx["batch_input"], 32000, 16000).shape == (2, 3, 500)
    for key, case in fx["other_rates"].items():
        orig, new = (int(v) for v in key.split("_"))
        assert_fixture_close(resample(case["input"], orig, new), case["output"], key)


def test_lowpass_removes_what_16k_cannot_hold():
    t = torch.arange(32000) / 32000.0
    low, high = torch.sin(2 * math.pi * 1000 * t), torch.sin(2 * math.pi * 12000 * t)
    # 6 zero crossings make a short filter: 12 kHz (aliasing to 4 kHz) is attenuated ~48 dB, not removed
    assert 1e-3 < resample(high, 32000, 16000)[100:-100].abs().max() < 1e-2
    kept = resample(low, 32000, 16000)[100:-100]
    reference = torch.sin(2 * math.pi * 1000 * torch.arange(16000) / 16000.0)[100:-100]
    assert (kept - reference).abs().max() < 2e-3  # 1 kHz passes


def test_equal_rates_and_errors():
    x = torch.randn(5)
    assert resample(x, 16000, 16000) is x
    with pytest.raises(ResampleError, match="integers"):
        resample(x, 44100.5, 16000)
    with pytest.raises(ResampleError, match="positive"):
        resample(x, 0, 16000)
    with pytest.raises(ResampleError, match="floating-point"):
        resample(torch.ones(10, dtype=torch.int32), 32000, 16000)
    assert "kernel" not in Resample(32000, 16000).state_dict()
