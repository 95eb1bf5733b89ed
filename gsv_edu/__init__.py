"""gsv_edu: the SoVITS module (stage s2) of GPT-SoVITS, written to be read, checked and trained.

The library mirrors the official implementation of RVC-Boss/GPT-SoVITS (module names, state-dict
keys, numerics) so that official v1/v2 SoVITS weights load into it unchanged. Its packages read
as the pipeline (gsv_edu/README.md draws them): `data` (list file → prepared folder), `hubert`
and `text` (the content and phone inputs), `sovits` (the network), `train`, `weights` (every
weight file in and out), `infer`.

The main entry points are importable from the package itself; they are loaded on first use, so
`import gsv_edu` stays cheap (no torch import until you ask for a model):

    from gsv_edu import SynthesizerTrn, load_sovits, save_sovits
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name → module that defines it (imported lazily by __getattr__ below)
_LAZY_EXPORTS = {
    "SynthesizerTrn": "gsv_edu.sovits.models",
    "MultiPeriodDiscriminator": "gsv_edu.sovits.models",
    "HParams": "gsv_edu.weights",
    "CheckpointError": "gsv_edu.weights",
    "UnsupportedVersionError": "gsv_edu.weights",
    "read_sovits_file": "gsv_edu.weights",
    "load_sovits": "gsv_edu.weights",
    "save_sovits": "gsv_edu.weights",
    "load_training_checkpoint": "gsv_edu.weights",
    "save_training_checkpoint": "gsv_edu.weights",
}

__all__ = ["__version__", *_LAZY_EXPORTS]


def __getattr__(name: str):
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gsv_edu' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY_EXPORTS))
