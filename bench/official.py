"""The official GPT-SoVITS classes, imported from a checkout given on the command line, for
side-by-side speed measurements (`--official PATH` of bench/decode.py and bench/train_step.py).

The project never depends on the official code: this module only measures. It puts
`PATH/GPT_SoVITS` on sys.path and imports `module.models` (SynthesizerTrn,
MultiPeriodDiscriminator), `module.losses`, `module.mel_processing` and `module.commons` as they
are at the pinned commit (48b1a01). `module/models.py` also imports the v3/v4 DiT from
`f5_tts.model`, which the v1/v2/v2Pro classes never use; a stand-in module is registered under that
name so the import needs none of f5_tts' own dependencies.
"""
from __future__ import annotations

import importlib
import pathlib
import sys
import types
from dataclasses import dataclass

from gsv_edu.config import Config


@dataclass
class Official:
    """The official modules a benchmark uses."""

    path: pathlib.Path
    models: types.ModuleType
    losses: types.ModuleType
    mel_processing: types.ModuleType
    commons: types.ModuleType

    def generator(self, cfg: Config):
        """Official SynthesizerTrn built from the same config as ours (the trainer's arguments)."""
        return self.models.SynthesizerTrn(cfg.spec_channels, cfg.segment_frames,
                                          n_speakers=cfg.data.n_speakers, **cfg.model_kwargs())

    def discriminator(self, cfg: Config):
        return self.models.MultiPeriodDiscriminator(cfg.model.use_spectral_norm, version=cfg.version)


def load_official(path: str | pathlib.Path) -> Official:
    """Import the official s2 modules from a checkout of RVC-Boss/GPT-SoVITS (the folder holding GPT_SoVITS/)."""
    root = pathlib.Path(path).expanduser().resolve()
    code = root / "GPT_SoVITS"
    if not (code / "module" / "models.py").is_file():
        raise SystemExit(f"--official {path}: no GPT_SoVITS/module/models.py there; give the root of a "
                         "checkout of RVC-Boss/GPT-SoVITS")
    # models.py imports the v3/v4 DiT at module level; v1/v2/v2Pro never build it.
    if "f5_tts.model" not in sys.modules:
        stub = types.ModuleType("f5_tts.model")
        stub.DiT = None
        sys.modules["f5_tts"] = types.ModuleType("f5_tts")
        sys.modules["f5_tts.model"] = stub
    sys.path.insert(0, str(code))
    return Official(
        path=root,
        models=importlib.import_module("module.models"),
        losses=importlib.import_module("module.losses"),
        mel_processing=importlib.import_module("module.mel_processing"),
        commons=importlib.import_module("module.commons"),
    )
