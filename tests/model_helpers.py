"""Helpers for the model tests: the official key listings, the tiny config, loading a slice of the
tiny state dict, and builders of the generator-side modules at tiny and official size."""
from __future__ import annotations

import json
import pathlib

from conftest import FIXTURES
from gsv_edu.sovits.flows import ResidualCouplingBlock
from gsv_edu.sovits.hifigan import Generator
from gsv_edu.sovits.posterior import PosteriorEncoder

# Key listings of the official SynthesizerTrn v2 and MultiPeriodDiscriminator at 48b1a01
# (sovits_v2_state_dict.txt, sovits_v2_disc_state_dict.txt; see tests/fixtures/README.md).
REFERENCE = pathlib.Path(__file__).parent / "fixtures" / "reference"

OFFICIAL_V2_MODEL = dict(inter_channels=192, hidden_channels=192, gin_channels=512, resblock="1",
                         resblock_kernel_sizes=[3, 7, 11], resblock_dilation_sizes=[[1, 3, 5]] * 3,
                         upsample_rates=[10, 8, 2, 2, 2], upsample_initial_channel=512,
                         upsample_kernel_sizes=[16, 16, 8, 2, 2])


def reference_keys(listing: str, prefix: str = "") -> list[tuple[str, tuple[int, ...]]]:
    """[(key without `prefix`, shape)] of an official listing, in the official order."""
    rows = []
    for line in (REFERENCE / listing).read_text().splitlines():
        if line.startswith("#") or not line.startswith(prefix):
            continue
        key, shape = line.split("\t")[:2]
        rows.append((key[len(prefix):], tuple(json.loads(shape))))
    return rows


def keys_and_shapes(module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


def tiny_model_config() -> dict:
    return json.loads((FIXTURES / "tiny_config.json").read_text())["model"]


def load_slice(module, state_dict, prefix: str):
    """Load the entries `prefix*` of a full SynthesizerTrn state dict (keys and order must match)."""
    sub = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    assert list(sub) == list(module.state_dict()), f"{prefix}: keys or key order differ from the official ones"
    module.load_state_dict(sub)
    return module.eval()


def build_enc_q(cfg: dict) -> PosteriorEncoder:
    return PosteriorEncoder(1025, cfg["inter_channels"], cfg["hidden_channels"], 5, 1, 16,
                            gin_channels=cfg["gin_channels"])


def build_flow(cfg: dict) -> ResidualCouplingBlock:
    return ResidualCouplingBlock(cfg["inter_channels"], cfg["hidden_channels"], 5, 1, 4,
                                 gin_channels=cfg["gin_channels"])


def build_dec(cfg: dict) -> Generator:
    return Generator(cfg["inter_channels"], cfg["resblock"], cfg["resblock_kernel_sizes"],
                     cfg["resblock_dilation_sizes"], cfg["upsample_rates"], cfg["upsample_initial_channel"],
                     cfg["upsample_kernel_sizes"], gin_channels=cfg["gin_channels"])
