"""Training items from a prepared folder: `TextAudioSpeakerDataset` and `TextAudioSpeakerCollate`.

Mirrors `GPT_SoVITS/module/data_utils.py · TextAudioSpeakerLoader, TextAudioSpeakerCollate
@48b1a01`. The prepared folder is the official layout
(`gsv_edu.data.layout`) written by `gsv_edu.data.prepare` (or by the official scripts):

    2-name2text.txt      name \\t phones \\t word2ph \\t text      (one line per utterance)
    4-cnhubert/{name}.pt  content features [1, D, T'] float32
    5-wav32k/{name}       16-bit WAV at 32 kHz
    7-sv_cn/{name}.pt     v2Pro/v2ProPlus: the speaker vector [1, D]

Selection (the official order of operations):
1. names present in all three (all four for v2Pro) (lines of 2-name2text.txt with exactly 4 tab
   fields);
2. fewer than 100 → the list is repeated max(2, int(100 / n)) times (tiny data sets still fill
   an epoch);
3. shuffled with seed 1234;
4. each entry kept if every phone is in the symbol table and its duration, computed from the
   file size as size / 32000 / 2 seconds, is in (0.6 s, 54 s); `lengths` (for the bucket
   sampler) = size // (2 · hop) ≈ frames.

An item is (ssl [D, T], spec [1025, T], wav [1, N], text ids [L] int64) with T = floor(N / 640),
plus the speaker vector sv [D_sv] for v2Pro/v2ProPlus (official: a fifth element, [1, 20480]).
HuBERT gives one frame fewer than the spectrogram exactly when N mod 640 < 160 (one length in
four if lengths are evenly spread; 57 of the 150 sample files; `gsv_edu.data.layout` derives
it), otherwise as many; the missing frame is added by repeating the last one (official).

Differences from the official loader (none changes a good item):
- names are sorted before the shuffle, and the shuffle uses a private `random.Random(seed)`:
  the official shuffles `list(set(...))`, whose order depends on Python's per-process string
  hashing, with the global `random.seed(1234)`;
- an item that fails to load (unreadable wav, missing or corrupt .pt, HuBERT length off by more
  than one frame) is logged with its file and replaced by the loadable item nearest in length
  (so batches keep their size and stay in their length range); the official returns a silent
  100-frame dummy item of zeros that is then trained on. Too many consecutive failures raise;
- `__getitem__` returns ssl as [D, T] and the text ids as int64 (official: [1, D, T] and float);
- items dropped by the filter are counted in `skipped` and logged, not printed.
"""
from __future__ import annotations

import logging
import os
import random
from collections import Counter
from pathlib import Path

import torch

from gsv_edu import audio
from gsv_edu.data.layout import (MAX_DURATION, MIN_DURATION, SSL_DIR, SV_DIR, TEXT_FILE, WAV_DIR, align_to_spec,
                                 content_frames_fit, read_name2text, wav_duration_from_size)
from gsv_edu.text.symbols import symbol_to_id

logger = logging.getLogger(__name__)

__all__ = ["TextAudioSpeakerDataset", "TextAudioSpeakerCollate"]

MIN_ITEMS = 100          # smaller data sets are repeated (official)
MAX_CONSECUTIVE_FAILURES = 16


class TextAudioSpeakerDataset(torch.utils.data.Dataset):
    """(ssl, spec, wav, text ids) items of a prepared folder, filtered as the official loader.

    `config`: a `gsv_edu.config.Config` (its `data` section is used) or a `DataConfig`.
    `version`: the model version: symbol table of the phones ("v1" / "v2"), and for "v2Pro" /
    "v2ProPlus" the speaker vectors of `7-sv_cn/` (a fifth item element).
    Attributes: `items` [(name, phone ids)], `lengths` (frames, for the bucket sampler),
    `skipped` (Counter of filter reasons), `ssl_dir`, `wav_dir`.
    """

    def __init__(self, prepared_dir: str | os.PathLike, config, version: str = "v2", seed: int = 1234):
        data = getattr(config, "data", config)
        self.root = Path(prepared_dir)
        self.sampling_rate = data.sampling_rate
        self.filter_length, self.hop_length, self.win_length = data.filter_length, data.hop_length, data.win_length
        self.version = version
        self.ssl_dir, self.wav_dir = self.root / SSL_DIR, self.root / WAV_DIR
        self.sv_dir = self.root / SV_DIR if version in ("v2Pro", "v2ProPlus") else None
        text_path = self.root / TEXT_FILE
        for needed in (text_path, self.ssl_dir, self.wav_dir) + ((self.sv_dir,) if self.sv_dir else ()):
            if not needed.exists():
                raise FileNotFoundError(f"{needed}: missing; {self.root} is not a prepared folder "
                                        f"(run: python -m gsv_edu.prepare --list LIST --out {self.root})")
        phones, bad_lines = read_name2text(text_path)
        self.skipped: Counter = Counter()
        if bad_lines:
            self.skipped["not 4 tab fields"] += len(bad_lines)
            logger.warning("%s: %d line(s) without exactly 4 tab fields skipped (lines %s)", text_path,
                           len(bad_lines), ", ".join(map(str, bad_lines[:10])))
        with_ssl = {n[:-3] for n in os.listdir(self.ssl_dir) if n.endswith(".pt")}
        with_wav = set(os.listdir(self.wav_dir))
        names = set(phones) & with_ssl & with_wav
        if self.sv_dir is not None:
            names &= {n[:-3] for n in os.listdir(self.sv_dir) if n.endswith(".pt")}
        names = sorted(names)
        missing = len(phones) - len(names)
        if missing:
            self.skipped["no .pt or wav file"] += missing
            logger.warning("%s: %d name(s) without all of 4-cnhubert/{name}.pt, 5-wav32k/{name}%s", self.root, missing,
                           ", 7-sv_cn/{name}.pt" if self.sv_dir else "")
        if not names:
            raise ValueError(f"{self.root}: no utterance has all of {TEXT_FILE} line, {SSL_DIR}/{{name}}.pt "
                             f"and {WAV_DIR}/{{name}}")
        if len(names) < MIN_ITEMS:  # official: repeat small data sets
            names = names * max(2, MIN_ITEMS // len(names))
        random.Random(seed).shuffle(names)

        table = symbol_to_id(version)
        self.items: list[tuple[str, list[int]]] = []
        self.lengths: list[int] = []
        for name in names:
            unknown = [p for p in phones[name] if p not in table]
            if unknown:  # official: cleaned_text_to_sequence raises KeyError and the item is dropped
                self.skipped["unknown phone"] += 1
                logger.warning("%s: %s: phone(s) %s not in the %s symbol table; utterance skipped",
                               text_path, name, sorted(set(unknown)), version)
                continue
            size = os.path.getsize(self.wav_dir / name)
            duration = wav_duration_from_size(size, self.sampling_rate)
            if not MIN_DURATION < duration < MAX_DURATION:
                self.skipped["duration"] += 1
                continue
            self.items.append((name, [table[p] for p in phones[name]]))
            self.lengths.append(size // (2 * self.hop_length))  # ≈ spectrogram frames
        if self.skipped["duration"]:
            logger.warning("%s: %d entr(y/ies) outside %.1f-%.0f s skipped", self.root, self.skipped["duration"],
                           MIN_DURATION, MAX_DURATION)
        if not self.items:
            raise ValueError(f"{self.root}: every utterance was filtered out ({dict(self.skipped)})")
        self._broken: set[str] = set()
        # positions in length order, to substitute a broken item by its nearest neighbour in length
        self._by_length = sorted(range(len(self.items)), key=self.lengths.__getitem__)
        self._rank_of = {index: rank for rank, index in enumerate(self._by_length)}

    def __len__(self) -> int:
        return len(self.items)

    def load_item(self, index: int) -> tuple[torch.Tensor, ...]:
        """Load item `index` or raise (no substitution): (ssl [D,T], spec [F,T], wav [1,N], text [L]),
        and sv [D_sv] for v2Pro."""
        name, phone_ids = self.items[index]
        wav_path = self.wav_dir / name
        y = audio.load_audio(wav_path, self.sampling_rate, allow_silent=True)  # [N] float in [-1, 1]
        wav = torch.from_numpy(y).unsqueeze(0)  # [1, N]
        spec = audio.spectrogram(wav, self.filter_length, self.hop_length, self.win_length)[0]  # [F, T]
        ssl_path = self.ssl_dir / f"{name}.pt"
        ssl = torch.load(ssl_path, map_location="cpu", weights_only=True)  # [1, D, T'] (official format)
        if not isinstance(ssl, torch.Tensor) or ssl.dim() != 3 or ssl.shape[0] != 1:
            raise ValueError(f"{ssl_path}: expected a tensor [1, D, T], got "
                             f"{tuple(ssl.shape) if isinstance(ssl, torch.Tensor) else type(ssl).__name__}")
        ssl = ssl[0].float()  # [D, T']
        frames = spec.shape[-1]
        if not content_frames_fit(ssl.shape[-1], frames):
            raise ValueError(f"{ssl_path}: {ssl.shape[-1]} frames but the spectrogram of {wav_path} has {frames}; "
                             f"was the folder prepared with a different audio file?")
        # official: when HuBERT has one frame fewer (N mod 640 < 160), repeat its last frame
        ssl = align_to_spec(ssl, frames)  # [D, T]
        text = torch.tensor(phone_ids, dtype=torch.long)  # [L]
        if self.sv_dir is None:
            return ssl, spec, wav, text
        sv_path = self.sv_dir / f"{name}.pt"
        sv = torch.load(sv_path, map_location="cpu", weights_only=True)  # [1, D_sv] (official format)
        if not isinstance(sv, torch.Tensor) or sv.dim() != 2 or sv.shape[0] != 1:
            raise ValueError(f"{sv_path}: expected a speaker vector [1, D], got "
                             f"{tuple(sv.shape) if isinstance(sv, torch.Tensor) else type(sv).__name__}")
        return ssl, spec, wav, text, sv[0].float()  # sv [D_sv]

    def __getitem__(self, index: int):
        """Item `index`; a broken item is logged and replaced by the loadable one nearest in length."""
        rank = self._rank_of[index]
        failures = 0
        for step in range(2 * len(self.items)):
            # candidates in length order: index itself, then +1, -1, +2, -2, ...
            offset = (step + 1) // 2 * (1 if step % 2 else -1)
            position = rank + offset
            if not 0 <= position < len(self.items):
                continue
            candidate = self._by_length[position]
            name = self.items[candidate][0]
            if name in self._broken:
                continue
            try:
                return self.load_item(candidate)
            except Exception as e:  # a broken file must not stop training: log it, take a neighbour
                self._broken.add(name)
                logger.warning("cannot load training item %s (%s: %s); using the item nearest in length instead",
                               self.wav_dir / name, type(e).__name__, e)
                failures += 1
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    break
        raise RuntimeError(f"{self.root}: {failures} training items in a row failed to load (last: "
                           f"{sorted(self._broken)[-1:]}); is the prepared folder intact?")


class TextAudioSpeakerCollate:
    """Pad a list of items into the official batch tuple (mirrors data_utils.TextAudioSpeakerCollate).

    Returns (ssl [B, D, Ts], ssl_lengths [B], spec [B, F, Ts], spec_lengths [B], wav [B, 1, N],
    wav_lengths [B], text [B, L] int64, text_lengths [B]) and, for v2Pro items, sv [B, D_sv] last
    (official: `sv_embs`), rows sorted by spectrogram length,
    longest first. ssl and spec are zero-padded to Ts = 2·(max//2 + 1) frames (always even and
    longer than the longest item, official), wav to the longest wav, text with 0 to the longest.
    Ties keep their input order (stable sort; the official sort is not guaranteed stable).
    """

    def __call__(self, batch):
        spec_frames = torch.tensor([item[1].shape[-1] for item in batch], dtype=torch.long)  # [B]
        order = torch.sort(spec_frames, descending=True, stable=True).indices.tolist()
        rows = [batch[i] for i in order]
        max_ssl = max(r[0].shape[-1] for r in rows)
        max_spec = max(r[1].shape[-1] for r in rows)
        ssl_frames = 2 * (max_ssl // 2 + 1)  # official: even, at least one frame of padding
        spec_frames_padded = 2 * (max_spec // 2 + 1)
        max_wav = max(r[2].shape[-1] for r in rows)
        max_text = max(r[3].shape[0] for r in rows)
        n = len(rows)
        ssl = torch.zeros(n, rows[0][0].shape[0], ssl_frames)  # [B, D, Ts]
        spec = torch.zeros(n, rows[0][1].shape[0], spec_frames_padded)  # [B, F, Ts]
        wav = torch.zeros(n, 1, max_wav)  # [B, 1, N]
        text = torch.zeros(n, max_text, dtype=torch.long)  # [B, L]
        ssl_lengths, spec_lengths, wav_lengths, text_lengths = (torch.zeros(n, dtype=torch.long) for _ in range(4))
        for i, (s, sp, w, t) in enumerate(r[:4] for r in rows):
            ssl[i, :, : s.shape[-1]] = s
            spec[i, :, : sp.shape[-1]] = sp
            wav[i, :, : w.shape[-1]] = w
            text[i, : t.shape[0]] = t
            ssl_lengths[i], spec_lengths[i] = s.shape[-1], sp.shape[-1]
            wav_lengths[i], text_lengths[i] = w.shape[-1], t.shape[0]
        collated = (ssl, ssl_lengths, spec, spec_lengths, wav, wav_lengths, text, text_lengths)
        if len(rows[0]) == 5:  # v2Pro: the speaker vectors, in the same (sorted) order
            collated += (torch.stack([r[4] for r in rows]),)  # [B, D_sv]
        return collated
