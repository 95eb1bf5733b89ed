"""Shared test helpers: paths and loaders for the golden fixtures in tests/fixtures/.

The fixtures were produced by the official GPT-SoVITS code (see tests/fixtures/sovits_v2/README.md).
Tolerance for every float tensor: rtol=1e-4, atol=1e-5 (`assert_fixture_close`); integer tensors
must be equal.
"""
from __future__ import annotations

import functools
import pathlib

import pytest
import torch

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "sovits_v2"

# A single thread makes CPU float32 results reproducible to the last bits: float32 sums split over
# several threads round differently (tests/fixtures/sovits_v2/README.md: 2 threads instead of 1
# move the official outputs by < 5e-6).
torch.set_num_threads(1)


def load_fixture(name: str):
    """Load a plain tensor container from tests/fixtures/sovits_v2 (weights_only, safe)."""
    return torch.load(FIXTURES / name, map_location="cpu", weights_only=True)


def assert_fixture_close(actual, expected, msg: str = ""):
    """The fixtures' tolerance: integers equal, floats within rtol=1e-4, atol=1e-5."""
    if not expected.is_floating_point():
        assert torch.equal(actual.to(expected.dtype), expected), msg
        return
    torch.testing.assert_close(actual.to(expected.dtype), expected, rtol=1e-4, atol=1e-5, msg=msg or None)


@functools.lru_cache(maxsize=1)
def _tiny_state_dict_cached():
    """The tiny SynthesizerTrn weights (704 fp16 tensors, official key order).

    Rebuilt losslessly from the official export (every key but enc_q) plus tiny_enc_q.pt,
    so the 10 MB state dict is not stored twice. See tests/fixtures/README.md.
    """
    from torch.serialization import safe_globals

    class HParams:  # stand-in for the official utils.HParams, only to read the export
        def __setstate__(self, state):
            self.__dict__.update(state)

    with safe_globals([(HParams, "utils.HParams")]):
        export = torch.load(FIXTURES / "export" / "tiny_v2_e4_s8.pth", map_location="cpu", weights_only=True)
    extra = load_fixture("tiny_enc_q.pt")
    merged = {**export["weight"], **extra["enc_q"]}
    return {k: merged[k] for k in extra["keys_in_order"]}


@pytest.fixture
def tiny_state_dict():
    return dict(_tiny_state_dict_cached())


@pytest.fixture(scope="session")
def tiny_io():
    return load_fixture("tiny_io.pt")
