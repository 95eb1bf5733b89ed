"""Fixture group `gpt_dataset`: the official s1 data pipeline on a small rule-made prepared folder.

Runs `GPT_SoVITS/AR/data/dataset.py · Text2SemanticDataset`, `AR/data/bucket_sampler.py ·
DistributedBucketSampler` and the DataLoader of `AR/data/data_module.py` @48b1a01 (CPU) on a
folder written here from rules (no audio): `2-name2text.txt`, `6-name2semantic.tsv` and two
`3-bert/{name}.pt` files. Writes `gpt/dataset.pt` with

- `files`: the text of the two list files and the BERT tensors (the test writes the same folder);
- `items`: the selected (semantic ids, phone ids, name) after the filters and the repetition;
- `lengths`: `get_sample_length` of every item;
- `batches`: for (num_replicas, rank) in (1, 0), (2, 0), (2, 1) and epochs 0 and 1, the index
  batches the DataLoader draws (batch size from data_module: min(8, len // 4));
- `collated`: the first two batches of epoch 0 (one replica) through `dataset.collate`; to stay
  small, the BERT features of a batch are stored as their shape, their sum over the 1024
  channels [B, Lx] and their first 4 channels [B, 4, Lx].

The folder has 10 good utterances of 1-9 s and six that the filters drop or skip (a name missing
from 2-name2text.txt, a line with 3 fields, a phone outside the v2 table, over 54 s of codes, too
few and too many phones per second).
"""
from __future__ import annotations

import os
import pathlib
import sys
import tempfile

import torch

GOOD = [(f"good_{i:02d}.wav", 30 + 23 * i, 6 + 4 * i) for i in range(10)]  # (name, tokens, phones)


def _phones(symbols: list[str], count: int, offset: int) -> list[str]:
    usable = [s for s in symbols if s not in ("_", "UNK", " ")]
    return [usable[(offset * 37 + 11 * j) % len(usable)] for j in range(count)]


def _codes(count: int, offset: int) -> list[int]:
    return [(offset * 101 + 7 * j * j + 3 * j) % 1024 for j in range(count)]


def build_files(symbols: list[str]) -> dict:
    text_lines, semantic_lines = [], ["item_name\tsemantic_audio"]
    for i, (name, tokens, phones) in enumerate(GOOD):
        text_lines.append(f"{name}\t{' '.join(_phones(symbols, phones, i))}\tNone\tsentence {i}")
        semantic_lines.append(f"{name}\t{' '.join(map(str, _codes(tokens, i)))}")
    # filtered / skipped
    semantic_lines.append(f"no_text.wav\t{' '.join(map(str, _codes(50, 20)))}")              # not in 2-name2text
    text_lines.append("three_fields.wav\tAA0 B\tNone")                                           # 3 fields: ignored
    semantic_lines.append(f"three_fields.wav\t{' '.join(map(str, _codes(50, 21)))}")
    text_lines.append(f"bad_phone.wav\t{' '.join(_phones(symbols, 8, 22))} NOT_A_PHONE\tNone\tx")  # KeyError
    semantic_lines.append(f"bad_phone.wav\t{' '.join(map(str, _codes(60, 22)))}")
    text_lines.append(f"too_long.wav\t{' '.join(_phones(symbols, 300, 23))}\tNone\tx")          # > 54 s of codes
    semantic_lines.append(f"too_long.wav\t{' '.join(map(str, _codes(54 * 25 + 1, 23)))}")
    text_lines.append(f"slow.wav\t{' '.join(_phones(symbols, 5, 24))}\tNone\tx")                # 5 phones in 4 s
    semantic_lines.append(f"slow.wav\t{' '.join(map(str, _codes(100, 24)))}")
    text_lines.append(f"fast.wav\t{' '.join(_phones(symbols, 60, 25))}\tNone\tx")               # 60 phones in 2 s
    semantic_lines.append(f"fast.wav\t{' '.join(map(str, _codes(50, 25)))}")
    g = torch.Generator().manual_seed(7)
    bert = {GOOD[1][0]: torch.randn(1024, GOOD[1][2], generator=g),
            GOOD[4][0]: torch.randn(1024, GOOD[4][2], generator=g)}
    return {"2-name2text.txt": "\n".join(text_lines) + "\n", "6-name2semantic.tsv": "\n".join(semantic_lines),
            "bert": bert}


def write_folder(folder: pathlib.Path, files: dict) -> None:
    (folder / "3-bert").mkdir(parents=True, exist_ok=True)
    (folder / "2-name2text.txt").write_text(files["2-name2text.txt"], encoding="utf-8")
    (folder / "6-name2semantic.tsv").write_text(files["6-name2semantic.tsv"], encoding="utf-8")
    for name, tensor in files["bert"].items():
        torch.save(tensor, folder / "3-bert" / f"{name}.pt")


def make(official: pathlib.Path, out: pathlib.Path) -> list[pathlib.Path]:
    root = str(official / "GPT_SoVITS")
    if root not in sys.path:
        sys.path.insert(0, root)
    os.environ["version"] = "v2"
    from AR.data.bucket_sampler import DistributedBucketSampler
    from AR.data.dataset import Text2SemanticDataset
    from text import symbols2
    from torch.utils.data import DataLoader

    files = build_files(list(symbols2.symbols))
    record: dict = {"files": files}
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        write_folder(folder, files)
        ds = Text2SemanticDataset(phoneme_path=str(folder / "2-name2text.txt"),
                                  semantic_path=str(folder / "6-name2semantic.tsv"), max_sec=54, pad_val=1024)
        record["items"] = [(list(s), list(p), n) for (s, p), n in zip(ds.semantic_phoneme, ds.item_names)]
        record["lengths"] = [ds.get_sample_length(i) for i in range(len(ds))]
        batch_size = max(min(8, len(ds) // 4), 1)
        record["batch_size"] = batch_size
        record["batches"] = {}
        for replicas, rank in ((1, 0), (2, 0), (2, 1)):
            sampler = DistributedBucketSampler(ds, num_replicas=replicas, rank=rank, batch_size=batch_size)
            for epoch in (0, 1):
                sampler.set_epoch(epoch)
                loader = DataLoader(ds, batch_size=batch_size, sampler=sampler,
                                    collate_fn=lambda b: [e["idx"] for e in b])
                record["batches"][f"{replicas}_{rank}_{epoch}"] = [list(b) for b in loader]
        sampler = DistributedBucketSampler(ds, num_replicas=1, rank=0, batch_size=batch_size)
        sampler.set_epoch(0)
        loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, collate_fn=ds.collate)
        collated = []
        for k, batch in enumerate(loader):
            if k == 2:
                break
            bert = batch.pop("bert_feature")  # [B, 1024, Lx]: kept small, as a column sum and 4 channels
            batch["bert_feature_sum"] = bert.sum(dim=1)  # [B, Lx]
            batch["bert_feature_head"] = bert[:, :4, :].clone()  # [B, 4, Lx]
            batch["bert_feature_shape"] = list(bert.shape)
            collated.append(batch)
        record["collated"] = collated
    folder_out = out / "gpt"
    folder_out.mkdir(parents=True, exist_ok=True)
    path = folder_out / "dataset.pt"
    torch.save(record, path)
    return [path]
