"""HuBERT: the self-supervised speech model whose features tell SoVITS *what* is said.

- `HuBERT` (model.py): the HuBERT-base architecture, loadable from a Hugging Face folder
  (`HuBERT.from_pretrained`, e.g. chinese-hubert-base) — see loading.py.
- `features.py`: the content features [B, D, T] exactly as the official data preparation makes them.
- `targets.py`, `pretrain.py`: HuBERT's first pretraining iteration (MFCC k-means targets,
  masked prediction) for a small model trained on our own corpus; `python -m gsv_edu.hubert pretrain`.
- `assets/hubert_small/`: the shipped small model (`load_default()`), the default content encoder.
"""
from __future__ import annotations

from .config import HuBERTConfig, HuBERTConfigError
from .loading import HuBERTLoadError
from .model import HuBERT

__all__ = ["HuBERT", "HuBERTConfig", "HuBERTConfigError", "HuBERTLoadError"]
