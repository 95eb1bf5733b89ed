"""Speaker verification for SoVITS v2Pro / v2ProPlus: the speaker vector that joins the style vector.

GPT-SoVITS v2Pro adds to SoVITS a 20480-value description of the reference speaker, computed by a
pretrained speaker-verification network (ERes2NetV2, 3D-Speaker) from 80-bin Kaldi filterbanks of
16 kHz audio. This package holds that path, written without torchaudio:

- `kaldi.py`: `kaldi_fbank`, Kaldi's log mel filterbank (as `GPT_SoVITS/eres2net/kaldi.py`);
- `resample.py`: `resample` / `Resample`, torchaudio's windowed-sinc resampler (32 kHz → 16 kHz for
  the training data);
- `eres2net.py`: `ERes2NetV2` (official keys; `forward3` = the pooled feature map v2Pro uses),
  presets `official` (53.5 M parameters) and `tiny`;
- `pooling.py`: the statistics-pooling layers of the embedding path;
- `speaker_vector.py`: `speaker_vector(model, wav16k)` and `SpeakerVector` (as `GPT_SoVITS/sv.py`);
- the weight files (`pretrained_eres2netv2w24s4ep4.ckpt`-style) are read and written by
  `gsv_edu.weights.load_sv_model` / `save_sv_model`, with every other weight file.

The `tiny` preset is randomly initialised and stays so: a speaker-verification model cannot be
trained meaningfully on the five speakers of the sample corpus; it only exercises the code path.
"""
from __future__ import annotations

from .eres2net import (AFF, OFFICIAL_SV_ARGS, SV_PRESETS, TINY_SV_ARGS, TINY_SV_SEED, BasicBlockERes2NetV2,
                       BasicBlockERes2NetV2AFF, ERes2NetV2, build_preset, sv_args_from_state_dict, sv_vector_dim)
from .kaldi import KaldiFbankError, kaldi_fbank, mel_banks
from .resample import Resample, ResampleError, resample, sinc_resample_kernel
from .speaker_vector import SpeakerVector, speaker_vector, sv_features

__all__ = ["ERes2NetV2", "AFF", "BasicBlockERes2NetV2", "BasicBlockERes2NetV2AFF", "OFFICIAL_SV_ARGS",
           "TINY_SV_ARGS", "TINY_SV_SEED", "SV_PRESETS", "build_preset", "sv_vector_dim", "kaldi_fbank", "mel_banks",
           "KaldiFbankError", "Resample", "resample", "ResampleError", "sinc_resample_kernel", "SpeakerVector", "speaker_vector",
           "sv_features", "sv_args_from_state_dict"]
