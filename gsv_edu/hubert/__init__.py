"""HuBERT: the self-supervised speech model whose features tell SoVITS *what* is said.

- `HuBERT` (model.py): the HuBERT-base architecture, loadable from a Hugging Face folder
  (`HuBERT.from_pretrained`, e.g. chinese-hubert-base) — see loading.py.
- `features.py`: the content features [B, D, T] exactly as the official data preparation makes them.
- `targets.py`, `pretrain.py`: HuBERT's first pretraining iteration (MFCC k-means targets,
  masked prediction) for a small model trained on our own corpus; `python -m gsv_edu.hubert pretrain`.
- `content_score.py`: an ABX-style test of whether features carry content rather than voice.
- `load_default()`: the shipped small model (`gsv_edu/assets/hubert_small/`), the default
  content encoder; D = `DEFAULT_SSL_DIM`.
"""
from __future__ import annotations

from pathlib import Path

from .config import HuBERTConfig, HuBERTConfigError
from .loading import HuBERTLoadError
from .model import HuBERT

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "hubert_small"
DEFAULT_SSL_DIM = 256  # feature width D of the shipped model (chinese-hubert-base: 768)


def load_default() -> HuBERT:
    """The shipped small HuBERT (eval mode): our default content encoder, features [B, 256, T]."""
    return HuBERT.from_pretrained(DEFAULT_MODEL_DIR)


__all__ = ["HuBERT", "HuBERTConfig", "HuBERTConfigError", "HuBERTLoadError", "load_default",
           "DEFAULT_MODEL_DIR", "DEFAULT_SSL_DIM"]
