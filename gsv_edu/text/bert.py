"""Phone-level BERT features: what the GPT stage (s1) reads of a text besides its phones.

The s1 model adds `bert_proj(features)` to its phone embeddings (`gsv_edu.gpt.t2s_model`), so each
phone carries a 1024-d vector from a Chinese RoBERTa (chinese-roberta-wwm-ext-large; Cui et al.
2021, "Pre-Training with Whole Word Masking for Chinese BERT"). Mirrors
`GPT_SoVITS/inference_webui.py · get_bert_feature, get_bert_inf @48b1a01` and
`GPT_SoVITS/prepare_datasets/1-get-text.py · get_bert_feature @48b1a01`:

1. the normalised text (`norm_text` of `clean_text`) is tokenised — one token per Chinese
   character or mark, between [CLS] and [SEP];
2. the model runs with all hidden states; the features are the **third-last** hidden state
   (`hidden_states[-3]`, i.e. the output of layer L−2 of L), without the [CLS] and [SEP] rows:
   [n_chars, 1024];
3. row i is repeated `word2ph[i]` times (the phones of character i): [n_phones, 1024], returned
   transposed, [1024, n_phones].

Only Chinese gets them. Every other language gets zeros [1024, n_phones] (`phone_features`), as
the official code does — so an English-only model needs no BERT at all. The model is loaded as
the official code loads it, with `AutoModelForMaskedLM` (the released folder holds a
BertForMaskedLM; only the encoder's hidden states are read).

`transformers` is an optional dependency (`pip install gsv_edu[bert]`); the folder is a local
copy of chinese-roberta-wwm-ext-large (config.json, the weights, vocab.txt/tokenizer files).
Nothing is downloaded.

    bert = load_bert("pretrained_models/chinese-roberta-wwm-ext-large")
    phones, word2ph, norm_text = clean_text("你好。", "zh")
    feats = bert.features(norm_text, word2ph)      # [1024, len(phones)]
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["BERT_DIM", "BertError", "ChineseBert", "load_bert", "repeat_per_phone", "phone_features"]

BERT_DIM = 1024  # hidden size of chinese-roberta-wwm-ext-large; what the s1 model's bert_proj reads
HIDDEN_LAYER = -3  # the third-last hidden state (official: hidden_states[-3:-2])


class BertError(ValueError):
    """The BERT folder cannot be used, or a text does not tokenise one token per character."""


def repeat_per_phone(char_features: torch.Tensor, word2ph: list[int]) -> torch.Tensor:
    """Character features [n_chars, H] → phone features [H, sum(word2ph)]: row i repeated word2ph[i] times."""
    if char_features.size(0) != len(word2ph):
        raise BertError(f"{char_features.size(0)} character features for {len(word2ph)} word2ph entries")
    counts = torch.as_tensor(word2ph, dtype=torch.long, device=char_features.device)  # [n_chars]
    return char_features.repeat_interleave(counts, dim=0).T  # [H, n_phones]


class ChineseBert:
    """A tokenizer and a BERT encoder giving phone-level features of Chinese text."""

    def __init__(self, tokenizer, model, name: str = "bert"):
        self.tokenizer = tokenizer
        self.model = model.eval()
        self.name = name

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> "ChineseBert":
        self.model.to(device)
        return self

    @torch.no_grad()
    def character_features(self, text: str) -> torch.Tensor:
        """The third-last hidden state of each character of `text`: [len(text), H] (float32, CPU)."""
        inputs = self.tokenizer(text, return_tensors="pt")
        n_tokens = int(inputs["input_ids"].shape[1])
        if n_tokens != len(text) + 2:
            raise BertError(f"{self.name}: {text!r} gives {n_tokens - 2} tokens for {len(text)} characters; "
                            f"phone-level features need one token per character (official get_bert_feature): is this "
                            f"chinese-roberta-wwm-ext-large's tokenizer, and the text normalised Chinese?")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        out = self.model(**inputs, output_hidden_states=True)
        return out.hidden_states[HIDDEN_LAYER][0, 1:-1].float().cpu()  # [n_chars, H], without [CLS]/[SEP]

    def features(self, norm_text: str, word2ph: list[int]) -> torch.Tensor:
        """Phone-level features [H, sum(word2ph)] of normalised Chinese text (official get_bert_feature)."""
        if len(word2ph) != len(norm_text):
            raise BertError(f"{self.name}: word2ph has {len(word2ph)} entries for the {len(norm_text)} characters "
                            f"of {norm_text!r}")
        return repeat_per_phone(self.character_features(norm_text), word2ph)


def load_bert(folder: str | os.PathLike, device: str | torch.device = "cpu") -> ChineseBert:
    """chinese-roberta-wwm-ext-large (or any BERT folder of transformers' format) from a local folder."""
    path = Path(folder)
    if not path.is_dir():
        raise BertError(f"--bert {folder}: no such folder (give a local copy of chinese-roberta-wwm-ext-large)")
    if not (path / "config.json").is_file():
        raise BertError(f"--bert {folder}: no config.json in it (a transformers model folder is expected)")
    try:  # deferred: transformers is an optional, heavy dependency (extra "bert")
        from transformers import AutoModelForMaskedLM, AutoTokenizer
    except ImportError:
        raise BertError("--bert needs the transformers package: pip install 'gsv_edu[bert]'") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForMaskedLM.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BertError(f"--bert {folder}: cannot load a tokenizer and a BERT model from it: {first}") from None
    return ChineseBert(tokenizer, model, name=str(folder)).to(device)


def phone_features(bert: ChineseBert | None, n_phones: int, word2ph: list[int] | None, norm_text: str,
                   language: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The BERT features [1024, n_phones] of one text run (official `get_bert_inf`).

    Chinese ("zh", "all_zh") with a BERT: its phone-level features; every other case zeros — other
    languages always (official), and Chinese without a BERT (what a model trained on zeros expects;
    an official Chinese model wants `--bert`).
    """
    language = language.replace("all_", "")
    if language == "zh" and bert is not None:
        if word2ph is None:
            raise BertError(f"{norm_text!r}: Chinese text without word2ph")
        feats = bert.features(norm_text, word2ph)  # [H, n_phones]
        if feats.size(1) != n_phones:
            raise BertError(f"{norm_text!r}: word2ph sums to {feats.size(1)} phones, the text has {n_phones}")
        return feats.to(dtype)
    return torch.zeros(BERT_DIM, n_phones, dtype=dtype)
