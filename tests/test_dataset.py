"""TextAudioSpeakerDataset (official selection, items, one-frame ssl padding) and the collate."""
from __future__ import annotations

import logging
import os
import random

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from gsv_edu import audio
from gsv_edu.config import Config
from gsv_edu.data.dataset import TextAudioSpeakerCollate, TextAudioSpeakerDataset
from gsv_edu.text.symbols import symbol_to_id

D = 8  # content width of the fake features
CONFIG = Config.preset("tiny")


def write_item(root, name, seconds, phones="n i2 h ao3", ssl_frames=None, seed=0):
    """A prepared utterance: int16 wav, features [1, D, T'] (T' = spec frames − 1 by default)."""
    n = int(seconds * 32000)
    y = (np.random.default_rng(seed).standard_normal(n) * 3000).astype(np.int16)
    wavfile.write(root / "5-wav32k" / name, 32000, y)
    frames = n // 640 - 1 if ssl_frames is None else ssl_frames
    torch.save(torch.randn(1, D, frames, generator=torch.Generator().manual_seed(seed)),
               root / "4-cnhubert" / f"{name}.pt")
    return f"{name}\t{phones}\tNone\ttext"


@pytest.fixture
def prepared(tmp_path):
    (tmp_path / "5-wav32k").mkdir()
    (tmp_path / "4-cnhubert").mkdir()
    lines = [
        write_item(tmp_path, "a.wav", 1.0, seed=1),
        write_item(tmp_path, "b.flac", 0.7, seed=2, ssl_frames=35),  # equal length: no padding
        write_item(tmp_path, "c.wav", 1.5, seed=3),
        write_item(tmp_path, "short.wav", 0.5, seed=4),               # ≤ 0.6 s: filtered
        write_item(tmp_path, "odd.wav", 1.0, phones="n i2 XYZ", seed=5),  # unknown phone: filtered
        "three\tfields\tonly",                                        # not 4 fields: ignored
        "nofiles.wav\tn i2\tNone\ttext",                              # no .pt / wav: ignored
    ]
    (tmp_path / "2-name2text.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


def test_selection_repetition_and_private_shuffle(prepared):
    random.seed(99)
    state = random.getstate()
    ds = TextAudioSpeakerDataset(prepared, CONFIG)
    assert random.getstate() == state  # the global random state is untouched
    # 5 names with all files → repeated max(2, int(100 / 5)) = 20 times, then filtered
    names = [name for name, _ in ds.items]
    assert len(names) == 3 * 20 and set(names) == {"a.wav", "b.flac", "c.wav"}
    assert ds.skipped["duration"] == 20 and ds.skipped["unknown phone"] == 20
    assert ds.skipped["not 4 tab fields"] == 1 and ds.skipped["no .pt or wav file"] == 1
    # lengths: official file size // (2 · hop)
    for (name, _), length in zip(ds.items, ds.lengths):
        assert length == os.path.getsize(prepared / "5-wav32k" / name) // 1280
    # deterministic with the seed, different with another one
    assert [n for n, _ in TextAudioSpeakerDataset(prepared, CONFIG).items] == names
    assert [n for n, _ in TextAudioSpeakerDataset(prepared, CONFIG, seed=7).items] != names
    table = symbol_to_id("v2")
    assert dict(ds.items)["a.wav"] == [table[p] for p in "n i2 h ao3".split()]


def test_item_shapes_and_one_frame_replicate_padding(prepared):
    ds = TextAudioSpeakerDataset(prepared, CONFIG)
    index = next(i for i, (n, _) in enumerate(ds.items) if n == "a.wav")
    ssl, spec, wav, text = ds[index]
    assert wav.shape == (1, 32000) and wav.dtype == torch.float32
    assert spec.shape == (1025, 50)
    assert ssl.shape == (D, 50)  # stored 49 frames + the repeated last one
    stored = torch.load(prepared / "4-cnhubert" / "a.wav.pt")[0]
    assert torch.equal(ssl[:, :49], stored) and torch.equal(ssl[:, 49], stored[:, 48])
    assert text.dtype == torch.int64 and text.tolist() == dict(ds.items)["a.wav"]
    # wav is the int16 file / 32768, spec its spectrogram
    _, raw = wavfile.read(prepared / "5-wav32k" / "a.wav")
    assert torch.equal(wav[0], torch.from_numpy(raw.astype(np.float32) / 32768))
    torch.testing.assert_close(spec, audio.spectrogram(wav)[0])
    index_b = next(i for i, (n, _) in enumerate(ds.items) if n == "b.flac")
    ssl_b, spec_b, _, _ = ds[index_b]
    assert ssl_b.shape == (D, 35) == (D, spec_b.shape[-1])  # equal lengths: untouched


def test_broken_item_is_replaced_by_nearest_in_length(prepared, caplog):
    ds = TextAudioSpeakerDataset(prepared, CONFIG)
    (prepared / "4-cnhubert" / "c.wav.pt").write_bytes(b"not a tensor")
    index = next(i for i, (n, _) in enumerate(ds.items) if n == "c.wav")
    with caplog.at_level(logging.WARNING, logger="gsv_edu.data.dataset"):
        ssl, spec, wav, text = ds[index]
    assert "c.wav" in caplog.text
    assert wav.shape[-1] == 32000  # a.wav (1.0 s) is nearest in length to c.wav (1.5 s)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gsv_edu.data.dataset"):
        ds[index]
    assert caplog.text == ""  # reported once


def test_frame_mismatch_beyond_one_is_an_error_for_that_item(prepared):
    write_item(prepared, "a.wav", 1.0, ssl_frames=40, seed=1)
    ds = TextAudioSpeakerDataset(prepared, CONFIG)
    index = next(i for i, (n, _) in enumerate(ds.items) if n == "a.wav")
    with pytest.raises(ValueError, match="40 frames"):
        ds.load_item(index)


def test_not_a_prepared_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a prepared folder"):
        TextAudioSpeakerDataset(tmp_path, CONFIG)


def fake_item(frames, text_len, d=D):
    return (torch.randn(d, frames), torch.randn(1025, frames), torch.randn(1, frames * 640),
            torch.arange(1, text_len + 1))


def test_collate_sorts_pads_and_keeps_values():
    batch = [fake_item(30, 5), fake_item(41, 3), fake_item(35, 7), fake_item(41, 2)]
    ssl, ssl_len, spec, spec_len, wav, wav_len, text, text_len = TextAudioSpeakerCollate()(batch)
    order = [1, 3, 2, 0]  # by spec length, descending; the tie (41, 41) keeps input order
    assert spec_len.tolist() == [41, 41, 35, 30] and ssl_len.tolist() == [41, 41, 35, 30]
    assert ssl.shape == (4, D, 42) and spec.shape == (4, 1025, 42)  # 2·(41//2 + 1) = 42
    assert wav.shape == (4, 1, 41 * 640) and wav_len.tolist() == [41 * 640, 41 * 640, 35 * 640, 30 * 640]
    assert text.dtype == torch.int64 and text.shape == (4, 7) and text_len.tolist() == [3, 2, 7, 5]
    for row, k in enumerate(order):
        s, sp, w, t = batch[k]
        n = sp.shape[-1]
        assert torch.equal(ssl[row, :, :n], s) and torch.equal(spec[row, :, :n], sp)
        assert not ssl[row, :, n:].any() and not spec[row, :, n:].any()
        assert torch.equal(wav[row, :, : w.shape[-1]], w) and not wav[row, :, w.shape[-1]:].any()
        assert torch.equal(text[row, : len(t)], t) and not text[row, len(t):].any()


def test_collate_padding_is_always_even_and_longer():
    for longest in (10, 11):
        ssl, _, spec, *_ = TextAudioSpeakerCollate()([fake_item(longest, 2), fake_item(4, 2)])
        assert spec.shape[-1] == ssl.shape[-1] == {10: 12, 11: 12}[longest]
