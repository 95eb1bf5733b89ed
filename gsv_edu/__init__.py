"""gsv_edu: GPT-SoVITS written to be read, checked and trained — the SoVITS stage (s2), the GPT
stage (s1) and text-to-speech end to end.

The library mirrors the official implementation of RVC-Boss/GPT-SoVITS (module names, state-dict
keys, numerics) so that official v1/v2/v2Pro/v2ProPlus SoVITS weights and s1 GPT weights load into
it unchanged. Its packages read as the pipeline (gsv_edu/README.md draws them): `data` (list file →
prepared folder), `hubert` and `text` (the content and phone inputs), `sv` (the v2Pro speaker
vector), `sovits` (the s2 network), `gpt` (the s1 network), `train` (both stages), `weights` (every
weight file in and out), `infer` (voice conversion) and `tts` (text to speech).

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
    # v2Pro: the speaker-verification branch
    "ERes2NetV2": "gsv_edu.sv",
    "kaldi_fbank": "gsv_edu.sv",
    "SpeakerVector": "gsv_edu.sv",
    "speaker_vector": "gsv_edu.sv",
    "load_sv_model": "gsv_edu.weights",
    "save_sv_model": "gsv_edu.weights",
    # the GPT stage (s1)
    "Text2SemanticDecoder": "gsv_edu.gpt.t2s_model",
    "load_gpt": "gsv_edu.weights",
    "save_gpt": "gsv_edu.weights",
    "ScaledAdam": "gsv_edu.gpt.optim",
    "WarmupCosineLRSchedule": "gsv_edu.gpt.optim",
    "Text2SemanticDataset": "gsv_edu.gpt.dataset",
    # (the s1 training function is gsv_edu.train.gpt.train_gpt: `gsv_edu.train_gpt` is the command-line module)
    # text to speech
    "TTS": "gsv_edu.tts",
    "load_tts": "gsv_edu.tts",
    "load_bert": "gsv_edu.text.bert",
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
