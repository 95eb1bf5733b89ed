"""HuBERT: the self-supervised speech model whose features tell SoVITS *what* is said.

- `HuBERT` (model.py): the HuBERT-base architecture, loadable from a Hugging Face folder
  (`HuBERT.from_pretrained`, e.g. chinese-hubert-base) — see loading.py.
- `features.py`: the content features [B, D, T] exactly as the official data preparation makes them.
- `targets.py`, `pretrain.py`: HuBERT's first pretraining iteration (MFCC k-means targets,
  masked prediction) for a small model trained on our own corpus; `python -m gsv_edu.hubert pretrain`.
- `content_score.py`: an ABX-style test of whether features carry content rather than voice.
- `load_default()`: the shipped small model (`gsv_edu/assets/hubert_small/`), the default
  content encoder; D = `DEFAULT_SSL_DIM`.
- `load_content_encoder(folder)`: the content encoder of data preparation and inference, with
  the name recorded in prepare_info.json: the default one, or a Hugging Face folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from gsv_edu.hubert.config import HuBERTConfig, HuBERTConfigError
from gsv_edu.hubert.loading import HuBERTLoadError
from gsv_edu.hubert.model import HuBERT

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "hubert_small"
DEFAULT_SSL_DIM = 256  # feature width D of the shipped model (chinese-hubert-base: 768)
DEFAULT_ENCODER_NAME = "gsv_edu/hubert_small"  # its name in prepare_info.json


def load_default() -> HuBERT:
    """The shipped small HuBERT (eval mode): our default content encoder, features [B, 256, T]."""
    return HuBERT.from_pretrained(DEFAULT_MODEL_DIR)


def load_content_encoder(folder: str | os.PathLike | None = None) -> tuple[HuBERT, str]:
    """(HuBERT in eval mode, its name) from a Hugging Face folder (e.g. chinese-hubert-base), or the
    shipped default (`load_default`, named `DEFAULT_ENCODER_NAME`) when `folder` is None."""
    if folder is None:
        return load_default().eval(), DEFAULT_ENCODER_NAME
    return HuBERT.from_pretrained(folder).eval(), Path(folder).resolve().name


__all__ = ["HuBERT", "HuBERTConfig", "HuBERTConfigError", "HuBERTLoadError", "load_default", "load_content_encoder",
           "DEFAULT_MODEL_DIR", "DEFAULT_SSL_DIM", "DEFAULT_ENCODER_NAME"]
