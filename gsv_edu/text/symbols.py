"""The phone inventories (v1: 322 symbols, v2: 732) and phones → ids.

Mirrors `GPT_SoVITS/text/symbols.py · symbols` (v1), `GPT_SoVITS/text/symbols2.py · symbols`
(v2) and `GPT_SoVITS/text/__init__.py · cleaned_text_to_sequence` @48b1a01.

The official lists are built in code (a sorted set of pad, Mandarin initials and toned finals,
Japanese kana phones, punctuation, ARPAbet); the *order* is what the checkpoints depend on,
because the text embedding `enc_p.text_embedding` has one row per symbol. We therefore keep the
two lists as plain data files, one symbol per line in the official order
(`data/symbols_v1.txt`, `data/symbols_v2.txt`), and only check their well-known properties:

* v1 has 322 symbols, v2 has 732;
* v1 is a prefix of v2 (v2 appends "[", "]", 29 Korean symbols and 379 Cantonese ones), so a v1
  phone id means the same phone in v2;
* "!" = 0, "," = 1, "SP" = 77, "UNK" = 86, "_" = 95.
"""
from __future__ import annotations

import functools
import warnings
from importlib import resources

VERSIONS = ("v1", "v2")
EXPECTED_COUNTS = {"v1": 322, "v2": 732}

PAD = "_"
UNK = "UNK"
# Official punctuation phones: `punctuation = ["!", "?", "…", ",", "."]` plus "-" (symbols.py).
PUNCTUATION = ["!", "?", "…", ",", ".", "-"]
# Silence-like special symbols: SP (plain pause), SP2 (from "￥" in Chinese), SP3 (from "^").
SPECIAL = ["SP", "SP2", "SP3", UNK]


# model versions that use the v2 table (official: `symbols_v1 if version == "v1" else symbols_v2`)
V2_TABLE_VERSIONS = ("v2Pro", "v2ProPlus")


def _check_version(version: str) -> str:
    """The symbol table ("v1"/"v2") of a model version; v2Pro/v2ProPlus use v2's."""
    if version in V2_TABLE_VERSIONS:
        return "v2"
    if version not in VERSIONS:
        raise ValueError(f"unknown symbol version {version!r}; expected one of {VERSIONS + V2_TABLE_VERSIONS}")
    return version


@functools.lru_cache(maxsize=None)
def get_symbols(version: str = "v2") -> tuple[str, ...]:
    """The symbol list of `version` ("v1" or "v2") in the official order, as a tuple.

    Read once from `gsv_edu/text/data/symbols_{version}.txt`; the count is checked so that a
    damaged data file fails here, loudly, rather than as a shape mismatch when loading weights.
    """
    version = _check_version(version)
    path = resources.files("gsv_edu.text").joinpath("data").joinpath(f"symbols_{version}.txt")
    text = path.read_text(encoding="utf-8")
    symbols = tuple(line for line in text.split("\n") if line != "")
    if len(symbols) != EXPECTED_COUNTS[version]:
        raise ValueError(
            f"{path}: expected {EXPECTED_COUNTS[version]} symbols (one per line), found {len(symbols)}"
        )
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"{path}: duplicate symbols")
    return symbols


@functools.lru_cache(maxsize=None)
def symbol_to_id(version: str = "v2") -> dict[str, int]:
    """Mapping symbol → index in the version's list (the row of `enc_p.text_embedding`)."""
    return {s: i for i, s in enumerate(get_symbols(version))}


def cleaned_text_to_sequence(phones: list[str], version: str = "v2") -> list[int]:
    """Phones (strings from `clean_text`) → symbol ids of `version`.

    Mirrors `cleaned_text_to_sequence` in GPT_SoVITS/text/__init__.py: a plain lookup, one id
    per phone. No blank symbol is interspersed (the s2 config's `add_blank` is ignored by the
    official code: no `.py` file of GPT-SoVITS @48b1a01 reads it).

    Differences from the official function: the official default version comes from the
    environment variable `version` (else v2); ours is an explicit argument defaulting to "v2".
    The official lookup raises KeyError on an unknown phone (and the data loader then drops the
    utterance); we map it to "UNK" and warn, so one odd phone never crashes a run.
    """
    table = symbol_to_id(version)
    unk = table[UNK]
    ids = []
    for phone in phones:
        idx = table.get(phone)
        if idx is None:
            message = f"phone {phone!r} is not in the {version} symbol table; using {UNK!r}"
            warnings.warn(message, stacklevel=2)
            idx = unk
        ids.append(idx)
    return ids


def sequence_to_phones(ids: list[int], version: str = "v2") -> list[str]:
    """The inverse of `cleaned_text_to_sequence` (ids → phones), handy for inspecting data."""
    symbols = get_symbols(version)
    return [symbols[i] for i in ids]
