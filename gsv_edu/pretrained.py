"""The small models that ship with gsv_edu, trained on the sample corpus: a SoVITS
(`gsv_edu/assets/sovits_tiny/`) and a GPT (`gsv_edu/assets/gpt_tiny/`), a pair on one codebook.

The book's chapters on the decoder, training and inference listen to the SoVITS; `python -m
gsv_edu.tts` speaks with the pair when no model is given. How each was trained, on what, for how
long, and what was measured on it (no human listened to them) is in its model card
(`gsv_edu/assets/sovits_tiny/MODEL_CARD.md`, `gsv_edu/assets/gpt_tiny/MODEL_CARD.md`); the GPT can
say the sentences it was trained on, and nothing else.

Why a module of its own and not part of `gsv_edu.weights`: it reads no file format of its own
(it is `load_sovits` on a file that ships with the package, as `gsv_edu.hubert.load_default`
is `from_pretrained` on the shipped HuBERT); it names a shipped asset and its training log.

The weight file is in the format of an official *pretrained* s2G (`s2G2333k.pth`, named in
`config.py · pretrained_sovits_name @48b1a01`): an OrderedDict with `weight` (every generator
tensor in fp16, **including** the posterior encoder `enc_q`), `config` (the training config as a
`utils.HParams`) and `info`. No official code states that the pretrained file holds `enc_q`:
`GPT_SoVITS/s2_train.py · run` loads its `weight` with strict=False and
`GPT_SoVITS/inference_webui.py · change_sovits_weights` keeps `enc_q` only for paths containing
"pretrained"; that `enc_q` is in the file we infer from the published file's size. An official
*export* (`GPT_SoVITS/process_ckpt.py · savee @48b1a01`, what the trainer writes into
RUN/weights/) is the same minus `enc_q`; we keep `enc_q` so that the book can resynthesise real
audio through the posterior. Both are written
by `gsv_edu.save_sovits` (`enc_q=True` for this one) and read by `load_sovits`.

    from gsv_edu.pretrained import load_tiny_sovits
    model = load_tiny_sovits()                      # ready for decode / gsv_edu.infer.synthesize
    model = load_tiny_sovits(inference=False)       # the whole generator with enc_q, weight norm kept
"""
from __future__ import annotations

from pathlib import Path

import torch

from gsv_edu.train.logs import read_metrics
from gsv_edu.weights import load_gpt, load_sovits

__all__ = ["TINY_SOVITS_DIR", "TINY_SOVITS_PATH", "load_tiny_sovits", "tiny_sovits_metrics", "TINY_GPT_DIR",
           "TINY_GPT_PATH", "load_tiny_gpt"]

TINY_SOVITS_DIR = Path(__file__).resolve().parent / "assets" / "sovits_tiny"
TINY_SOVITS_PATH = TINY_SOVITS_DIR / "sovits_tiny.pth"
TINY_GPT_DIR = Path(__file__).resolve().parent / "assets" / "gpt_tiny"
TINY_GPT_PATH = TINY_GPT_DIR / "gpt_tiny.ckpt"  # an official-format GPT export (the `small` preset)
METRICS_FILE = "metrics.jsonl"


def load_tiny_sovits(device: str | torch.device = "cpu", *, inference: bool = True):
    """The shipped tiny SoVITS generator (`SynthesizerTrn`), loaded with `gsv_edu.load_sovits`.

    inference=True: eval mode, `enc_q` dropped, weight norm folded: what `decode` and
    `gsv_edu.infer.synthesize` need (same as `gsv_edu.infer.load_model` on the file).
    inference=False: every tensor including `enc_q`, weight norm kept, in train mode (call
    `.eval()` for deterministic use, e.g. resynthesis through the posterior).
    The `LoadedSovits` record (config, version, info) is at `model.loaded_from`, as after any `load_sovits`.
    """
    if not TINY_SOVITS_PATH.is_file():
        raise FileNotFoundError(f"{TINY_SOVITS_PATH}: the shipped tiny SoVITS is missing (a partial install? "
                                f"reinstall gsv_edu or use a clone of its repository)")
    return load_sovits(TINY_SOVITS_PATH, device, inference=inference).model


def tiny_sovits_metrics() -> list[dict]:
    """The training log of the shipped model: the rows of its metrics.jsonl ({step, loss/g/mel, ...})."""
    return read_metrics(TINY_SOVITS_DIR)


def load_tiny_gpt(device: str | torch.device = "cpu"):
    """The shipped small GPT (`Text2SemanticDecoder`, eval mode), loaded with `gsv_edu.load_gpt`.

    Its tokens are those of the shipped tiny SoVITS's codebook: use the two together.
    """
    if not TINY_GPT_PATH.is_file():
        raise FileNotFoundError(f"{TINY_GPT_PATH}: the shipped small GPT is missing (a partial install? "
                                f"reinstall gsv_edu or use a clone of its repository)")
    return load_gpt(TINY_GPT_PATH, device)
