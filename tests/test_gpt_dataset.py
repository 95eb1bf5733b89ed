"""The GPT stage's data: selection, repetition, bucket batches and collate against the official pipeline
(tests/fixtures/gpt/dataset.pt), plus the clear errors."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from gsv_edu.data.layout import BERT_DIR, SEMANTIC_FILE, TEXT_FILE
from gsv_edu.gpt.dataset import Text2SemanticDataset, collate, official_batch_size, read_name2semantic
from gsv_edu.gpt.sampler import BucketBatchSampler, duration_buckets

FIXTURE = Path(__file__).parent / "fixtures" / "gpt" / "dataset.pt"


@pytest.fixture(scope="module")
def record() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def write_folder(folder: Path, files: dict) -> Path:
    (folder / BERT_DIR).mkdir(parents=True, exist_ok=True)
    (folder / TEXT_FILE).write_text(files["2-name2text.txt"], encoding="utf-8")
    (folder / SEMANTIC_FILE).write_text(files["6-name2semantic.tsv"], encoding="utf-8")
    for name, tensor in files["bert"].items():
        torch.save(tensor, folder / BERT_DIR / f"{name}.pt")
    return folder


@pytest.fixture()
def dataset(record, tmp_path) -> Text2SemanticDataset:
    return Text2SemanticDataset(write_folder(tmp_path, record["files"]))


def test_selection_and_repetition_match_official(dataset, record):
    expected = record["items"]
    assert len(dataset) == len(expected) == 100  # 10 usable items repeated max(2, 100 // 10) times
    assert [(s, p, n) for n, s, p in dataset.items] == [tuple(e) for e in expected]
    assert dataset.durations == pytest.approx(record["lengths"], abs=0)
    assert dataset.unique == 10
    assert dataset.skipped == {"not 4 tab fields": 1, "no phones": 2, "unknown phone": 1,
                               "longer than 54 s": 1, "phones per second": 2}


def test_bucket_batches_match_official(dataset, record):
    size = official_batch_size(8, len(dataset))
    assert size == record["batch_size"] == 8
    for key, expected in record["batches"].items():
        replicas, rank, epoch = map(int, key.split("_"))
        sampler = BucketBatchSampler(dataset.durations, size, num_replicas=replicas, rank=rank)
        sampler.set_epoch(epoch)
        assert sampler.batches() == expected, key
        assert len(sampler) == len(expected)
    # different epochs give different orders, and every epoch covers the whole data set once
    sampler = BucketBatchSampler(dataset.durations, size)
    epochs = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        epochs.append([i for b in sampler for i in b])
    assert epochs[0] != epochs[1] and sorted(epochs[0]) == sorted(epochs[1]) == list(range(len(dataset)))


def test_collate_matches_official(dataset, record):
    sampler = BucketBatchSampler(dataset.durations, 8)
    sampler.set_epoch(0)
    for batch_ids, expected in zip(sampler.batches(), record["collated"]):
        got = dataset.collate([dataset[i] for i in batch_ids])
        assert got["ids"] == expected["ids"]
        for key in ("phoneme_ids", "phoneme_ids_len", "semantic_ids", "semantic_ids_len"):
            assert got[key].dtype == expected[key].dtype == torch.int64, key
            assert torch.equal(got[key], expected[key]), key
        bert = got["bert_feature"]
        assert list(bert.shape) == expected["bert_feature_shape"] and bert.dtype == torch.float32
        torch.testing.assert_close(bert.sum(dim=1), expected["bert_feature_sum"], rtol=1e-6, atol=1e-5)
        assert torch.equal(bert[:, :4, :], expected["bert_feature_head"])
    first = dataset.collate([dataset[i] for i in sampler.batches()[0]])
    assert (first["bert_feature"].abs().sum(dim=(1, 2)) > 0).sum() >= 1  # a batch with real BERT features


def test_collate_padding_values():
    items = [{"idx": 0, "phoneme_ids": [5, 6, 7], "phoneme_ids_len": 3, "semantic_ids": [1, 2], "semantic_ids_len": 2,
              "bert_feature": torch.ones(1024, 3)},
             {"idx": 1, "phoneme_ids": [9], "phoneme_ids_len": 1, "semantic_ids": [3, 4, 5, 6], "semantic_ids_len": 4,
              "bert_feature": None}]
    b = collate(items)
    assert b["phoneme_ids"].tolist() == [[5, 6, 7], [9, 0, 0]]  # phones padded with 0
    assert b["semantic_ids"].tolist() == [[1, 2, 1024, 1024], [3, 4, 5, 6]]  # codes padded with EOS
    assert b["phoneme_ids_len"].tolist() == [3, 1] and b["semantic_ids_len"].tolist() == [2, 4]
    assert b["bert_feature"].shape == (2, 1024, 3)
    assert b["bert_feature"][0].eq(1).all() and b["bert_feature"][1].eq(0).all()  # no BERT file: zeros


def test_bucket_edges_quirk():
    """An item far above the current edge opens one bucket and moves the edge by one width only."""
    assert duration_buckets([0.5, 1.9, 2.1, 7.0, 7.5, 8.2, 9.0]) == [[0, 1], [2], [3], [4], [5, 6]]
    assert duration_buckets([3.0, 1.0]) == [[1], [0]]


def test_sampler_pads_and_splits_across_processes():
    durations = [1.0 + 0.1 * i for i in range(7)]
    shares = []
    for rank in (0, 1):
        s = BucketBatchSampler(durations, 2, num_replicas=2, rank=rank, seed=3)
        s.set_epoch(5)
        shares.append([i for b in s.batches() for i in b])
        assert len(s) == 2
    assert len(shares[0]) == len(shares[1]) == 4
    assert set(shares[0]) | set(shares[1]) == set(range(7))  # 8 slots: one item repeated
    rng = random.Random(8)  # the same draws as the official global random.seed(seed + epoch)
    order = list(range(7))
    rng.shuffle(order)
    groups = [order[k:k + 4] for k in range(0, 7, 4)]
    rng.shuffle(groups)
    flat = [i for g in groups for i in g]
    flat += flat[:1]
    assert shares[0] == flat[0::2] and shares[1] == flat[1::2]


def test_missing_semantic_file_says_how_to_make_it(tmp_path):
    (tmp_path / TEXT_FILE).write_text("a.wav\tAA0\tNone\ta\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="--sovits"):
        Text2SemanticDataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a prepared folder"):
        Text2SemanticDataset(tmp_path / "nothing")


def test_malformed_semantic_line_names_file_and_line(tmp_path):
    path = tmp_path / SEMANTIC_FILE
    path.write_text("item_name\tsemantic_audio\na.wav\t1 2 3\nb.wav\t1 x 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"6-name2semantic.tsv:3: b.wav"):
        read_name2semantic(path)
    path.write_text("item_name\tsemantic_audio\na.wav\t7\n\n", encoding="utf-8")
    assert read_name2semantic(path) == [("a.wav", [7])]  # a one-token line (pandas would make it an int)


def test_nothing_usable_is_a_clear_error(tmp_path):
    (tmp_path / TEXT_FILE).write_text("a.wav\tAA0\tNone\ta\n", encoding="utf-8")
    (tmp_path / SEMANTIC_FILE).write_text("item_name\tsemantic_audio\na.wav\t" + " ".join(["1"] * 100) + "\n",
                                          encoding="utf-8")  # 1 phone in 4 s: below 3 phones/s
    with pytest.raises(ValueError, match="no utterance is usable"):
        Text2SemanticDataset(tmp_path)


def test_bert_file_of_wrong_shape_is_a_clear_error(record, tmp_path):
    folder = write_folder(tmp_path, record["files"])
    name = next(iter(record["files"]["bert"]))
    torch.save(torch.zeros(1024, 2), folder / BERT_DIR / f"{name}.pt")
    ds = Text2SemanticDataset(folder)
    index = next(i for i, (n, _, _) in enumerate(ds.items) if n == name)
    with pytest.raises(ValueError, match=r"expected BERT features of shape \(1024, "):
        ds[index]


def test_official_batch_size():
    assert official_batch_size(8, 100) == 8
    assert official_batch_size(8, 20) == 5      # at most a quarter of the data
    assert official_batch_size(8, 3) == 1
    assert official_batch_size(8, 100, if_dpo=True) == 4
