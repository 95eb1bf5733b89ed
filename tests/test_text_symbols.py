"""Symbol tables v1/v2 and phones → ids (gsv_edu/text/symbols.py; upstream
`GPT_SoVITS/text/symbols.py`, `symbols2.py` · `symbols` and
`GPT_SoVITS/text/__init__.py · cleaned_text_to_sequence` @48b1a01)."""
from __future__ import annotations

import warnings

import pytest

from gsv_edu.text import cleaned_text_to_sequence, get_symbols, sequence_to_phones
from gsv_edu.text.chinese import pinyin_to_phones
from gsv_edu.text.neural_g2p import PHONEMES


def test_counts_and_official_examples():
    v1, v2 = get_symbols("v1"), get_symbols("v2")
    assert (len(v1), len(v2)) == (322, 732)
    # Indices in GPT_SoVITS/text/symbols.py · symbols @48b1a01 (the same in symbols2.py).
    for symbol, index in [("!", 0), (",", 1), ("SP", 77), ("UNK", 86), ("_", 95)]:
        assert v1.index(symbol) == index and v2.index(symbol) == index
    # v1 ids stay valid in v2; v2 continues with the Japanese pitch marks.
    assert v2[:322] == v1
    assert v2[322:324] == ("[", "]")
    assert len(set(v2)) == 732


def test_unknown_version():
    with pytest.raises(ValueError, match="v3"):
        get_symbols("v3")


def test_every_phone_the_front_end_can_emit_is_a_symbol():
    v1 = set(get_symbols("v1"))
    # Mandarin: every opencpop initial, every final with every tone.
    for initial, final in pinyin_to_phones().values():
        assert initial in v1
        for tone in "12345":
            assert final + tone in v1, final + tone
    # English: every ARPAbet phone the neural predictor knows, but "UW" (the official drops it).
    arpabet = [p for p in PHONEMES if not p.startswith("<")]
    assert set(arpabet) - v1 == {"UW"}
    assert {"!", "?", "…", ",", ".", "-", "SP", "SP2", "SP3", "UNK"} <= v1


def test_sequence_round_trip_and_version_equivalence():
    phones = ["n", "i2", "h", "ao3", ",", "HH", "AH0", "L", "OW1", "."]
    ids = cleaned_text_to_sequence(phones, "v2")
    # 'n','i2','h','ao3' are lines 228, 168, 159, 120 of data/symbols_v1.txt (1-based).
    assert ids[:4] == [227, 167, 158, 119]
    assert ids[4] == 1
    assert cleaned_text_to_sequence(phones, "v1") == ids
    assert sequence_to_phones(ids) == phones


def test_unknown_phone_becomes_unk_with_a_warning():
    with pytest.warns(UserWarning, match="'XYZ'"):
        ids = cleaned_text_to_sequence(["n", "XYZ", "i2"])
    assert ids == [227, 86, 167]


def test_known_phones_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cleaned_text_to_sequence(["SP", "SP2", "SP3", "_"])
