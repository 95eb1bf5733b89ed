"""Training items of the GPT stage (s1): phones and semantic tokens of a prepared folder, and their batches.

Mirrors `GPT_SoVITS/AR/data/dataset.py · Text2SemanticDataset @48b1a01` (and the batch size of
`AR/data/data_module.py · train_dataloader`). It reads three things of the prepared folder
(names from `gsv_edu.data.layout`, written by `python -m gsv_edu.prepare ... --sovits CKPT`):

    2-name2text.txt       name \\t phones \\t word2ph \\t text   (the phones: the GPT's input)
    6-name2semantic.tsv   a header line, then name \\t semantic codes joined by spaces
                          (the SoVITS quantizer's codes of the utterance at 25 Hz: the targets)
    3-bert/{name}.pt      optional BERT features [1024, phones] (the official writes them only
                          for Chinese; every other item gets zeros)

Selection, in the official order (items follow the lines of 6-name2semantic.tsv):
1. a name without a 2-name2text.txt line (or whose phones are not in the symbol table) is
   skipped;
2. more than max_sec·25 tokens (54 s) → dropped;
3. more than max_sec·25/2.5 phones → dropped;
4. phones per second (phones / (tokens / 25)) outside [3, 25] → dropped;
5. fewer than 100 items left → the list is repeated max(2, int(100 / n)) times.

An item is a dict: idx, phoneme_ids (list), phoneme_ids_len, semantic_ids (list),
semantic_ids_len, bert_feature ([1024, L] float tensor or None). `collate` pads into the
official batch: phoneme_ids [B, Lx] int64 padded with 0, semantic_ids [B, Ly] int64 padded with
`pad_val` (1024, the EOS token: the model turns the padding into EOS targets), the two length
vectors [B] int64, and bert_feature [B, 1024, Lx] float32 (zeros where absent, and after each
item's phones). The rows keep the sampler's order (no sorting by length).

Differences from the official class (none changes a good item):
- 6-name2semantic.tsv is read as plain text (the official uses pandas, whose type guessing
  turns a one-token line into an int and then fails on it); a malformed line is an error naming
  the file and the line;
- a line with no tokens, a BERT file of the wrong shape, or an empty selection is a clear error
  naming the file (official: a ZeroDivisionError or an assertion);
- the skipped and dropped items are counted in `skipped` and logged, not printed;
- the phone symbol table `version` is an argument (official: the environment variable).
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import torch

from gsv_edu.data.layout import BERT_DIR, SEMANTIC_FILE, SEMANTIC_HEADER, TEXT_FILE, read_name2text
from gsv_edu.text.symbols import symbol_to_id

logger = logging.getLogger(__name__)

__all__ = ["Text2SemanticDataset", "read_name2semantic", "collate", "official_batch_size", "SEMANTIC_HZ",
           "MIN_ITEMS", "BERT_DIM"]

SEMANTIC_HZ = 25   # semantic tokens per second (official env "hz", default "25hz")
MIN_ITEMS = 100    # smaller data sets are repeated (official)
BERT_DIM = 1024    # chinese-roberta-wwm-ext-large hidden size


def read_name2semantic(path: str | os.PathLike) -> list[tuple[str, list[int]]]:
    """`6-name2semantic.tsv` → [(name, codes)] in file order; the first line is the header (skipped)."""
    path = Path(path)
    rows: list[tuple[str, list[int]]] = []
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[0].strip() != SEMANTIC_HEADER:
        logger.warning("%s: the first line is %r, not the header %r; it is skipped as a header anyway (official)",
                       path, lines[0][:60], SEMANTIC_HEADER)
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 2:
            raise ValueError(f"{path}:{number}: expected 'name<TAB>codes', got {len(fields)} tab-separated field(s)")
        name, codes = fields
        try:
            tokens = [int(c) for c in codes.split(" ")]
        except ValueError:
            raise ValueError(f"{path}:{number}: {name}: the codes must be integers joined by single spaces, got "
                             f"{codes[:40]!r}") from None
        rows.append((name, tokens))
    return rows


class Text2SemanticDataset(torch.utils.data.Dataset):
    """(phones, semantic tokens, BERT features) items of a prepared folder, selected as the official loader.

    Attributes: `items` [(name, semantic ids, phone ids)] after selection and repetition,
    `durations` (seconds per item, for the bucket sampler), `skipped` (Counter of reasons).
    """

    def __init__(self, prepared_dir: str | os.PathLike, *, version: str = "v2", max_sec: float = 54,
                 pad_val: int = 1024, min_ps_ratio: float = 3, max_ps_ratio: float = 25,
                 max_sample: int | None = None, hz: int = SEMANTIC_HZ):
        self.root = Path(prepared_dir)
        self.text_path, self.semantic_path = self.root / TEXT_FILE, self.root / SEMANTIC_FILE
        self.bert_dir = self.root / BERT_DIR
        if not self.text_path.is_file():
            raise FileNotFoundError(f"{self.text_path}: missing; {self.root} is not a prepared folder "
                                    f"(python -m gsv_edu.prepare --list LIST --out {self.root} --sovits SOVITS)")
        if not self.semantic_path.is_file():
            raise FileNotFoundError(f"{self.semantic_path}: missing; the GPT trains on semantic codes: prepare with "
                                    f"--sovits (python -m gsv_edu.prepare --list LIST --out {self.root} --sovits "
                                    f"SOVITS.pth)")
        self.pad_val, self.hz, self.max_sec = pad_val, hz, max_sec
        phones, bad_lines = read_name2text(self.text_path)
        self.skipped: Counter = Counter()
        if bad_lines:
            self.skipped["not 4 tab fields"] += len(bad_lines)
            logger.warning("%s: %d line(s) without exactly 4 tab fields skipped (lines %s)", self.text_path,
                           len(bad_lines), ", ".join(map(str, bad_lines[:10])))
        rows = read_name2semantic(self.semantic_path)
        if max_sample is not None:
            rows = rows[:max_sample]
        table = symbol_to_id(version)
        selected: list[tuple[str, list[int], list[int]]] = []
        for name, semantic in rows:
            if name not in phones:
                self.skipped["no phones"] += 1
                continue
            if not semantic:
                raise ValueError(f"{self.semantic_path}: {name} has no codes")
            if len(semantic) > max_sec * hz:
                self.skipped[f"longer than {max_sec} s"] += 1
                continue
            unknown = sorted({p for p in phones[name] if p not in table})
            if unknown:  # official: KeyError in cleaned_text_to_sequence, item skipped
                self.skipped["unknown phone"] += 1
                logger.warning("%s: %s: phone(s) %s not in the %s symbol table; skipped", self.text_path, name,
                               unknown, version)
                continue
            phone_ids = [table[p] for p in phones[name]]
            if len(phone_ids) > max_sec * hz / 2.5:
                self.skipped["too many phones"] += 1
                continue
            ratio = len(phone_ids) / (len(semantic) / hz)  # phones per second
            if not min_ps_ratio <= ratio <= max_ps_ratio:
                self.skipped["phones per second"] += 1
                continue
            selected.append((name, semantic, phone_ids))
        if self.skipped:
            logger.warning("%s: %d of %d line(s) of %s kept; not used: %s", self.root, len(selected), len(rows),
                           SEMANTIC_FILE, dict(self.skipped))
        if not selected:
            raise ValueError(f"{self.root}: no utterance is usable for the GPT ({dict(self.skipped)}; {len(rows)} "
                             f"line(s) in {SEMANTIC_FILE})")
        self.unique = len(selected)
        if len(selected) < MIN_ITEMS:  # official: repeat small data sets
            selected = selected * max(2, int(MIN_ITEMS / len(selected)))
        self.items = selected
        self.durations = [len(semantic) / hz for _, semantic, _ in selected]

    def __len__(self) -> int:
        return len(self.items)

    def bert_feature(self, index: int) -> torch.Tensor | None:
        """`3-bert/{name}.pt` ([1024, phones]) if the folder has one for this item, else None (zeros later)."""
        name, _, phone_ids = self.items[index]
        path = self.bert_dir / f"{name}.pt"
        if not path.is_file():
            return None
        feature = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(feature, torch.Tensor) or feature.dim() != 2 or feature.shape != (BERT_DIM, len(phone_ids)):
            shape = tuple(feature.shape) if isinstance(feature, torch.Tensor) else type(feature).__name__
            raise ValueError(f"{path}: expected BERT features of shape ({BERT_DIM}, {len(phone_ids)}) (one column per "
                             f"phone of {TEXT_FILE}), got {shape}")
        return feature

    def __getitem__(self, index: int) -> dict:
        _, semantic, phone_ids = self.items[index]
        return {"idx": index, "phoneme_ids": phone_ids, "phoneme_ids_len": len(phone_ids),
                "semantic_ids": semantic, "semantic_ids_len": len(semantic), "bert_feature": self.bert_feature(index)}

    def collate(self, examples: list[dict]) -> dict:
        return collate(examples, self.pad_val)


def collate(examples: list[dict], pad_val: int = 1024) -> dict:
    """Pad items into the official batch dict (see the module docstring)."""
    n = len(examples)
    phone_lens = torch.tensor([e["phoneme_ids_len"] for e in examples], dtype=torch.long)  # [B]
    semantic_lens = torch.tensor([e["semantic_ids_len"] for e in examples], dtype=torch.long)  # [B]
    max_x, max_y = int(phone_lens.max()), int(semantic_lens.max())
    phoneme_ids = torch.zeros(n, max_x, dtype=torch.long)  # [B, Lx], 0-padded
    semantic_ids = torch.full((n, max_y), pad_val, dtype=torch.long)  # [B, Ly], EOS-padded
    bert = torch.zeros(n, BERT_DIM, max_x)  # [B, 1024, Lx]
    for i, e in enumerate(examples):
        phoneme_ids[i, : e["phoneme_ids_len"]] = torch.tensor(e["phoneme_ids"], dtype=torch.long)
        semantic_ids[i, : e["semantic_ids_len"]] = torch.tensor(e["semantic_ids"], dtype=torch.long)
        if e["bert_feature"] is not None:
            bert[i, :, : e["bert_feature"].shape[-1]] = e["bert_feature"]
    return {"ids": [e["idx"] for e in examples], "phoneme_ids": phoneme_ids, "phoneme_ids_len": phone_lens,
            "semantic_ids": semantic_ids, "semantic_ids_len": semantic_lens, "bert_feature": bert}


def official_batch_size(batch_size: int, dataset_size: int, if_dpo: bool = False) -> int:
    """The batch size `data_module.train_dataloader` really uses: halved for DPO, at most a quarter of the data."""
    if if_dpo:
        batch_size //= 2
    return max(min(batch_size, dataset_size // 4), 1)
