"""The text front-end: text → phones → symbol ids, for Mandarin and English.

Mirrors `GPT_SoVITS/text/` at 48b1a01: `cleaner.py · clean_text`, `__init__.py ·
cleaned_text_to_sequence`, `symbols.py` / `symbols2.py · symbols` (the v1 and v2 inventories),
`chinese2.py` + `tone_sandhi.py · ToneSandhi` (Mandarin), `english.py` (English).

    >>> from gsv_edu.text import clean_text, cleaned_text_to_sequence
    >>> phones, word2ph, norm_text = clean_text("你好", "zh")
    >>> phones, word2ph
    (['n', 'i2', 'h', 'ao3'], [2, 2])
    >>> cleaned_text_to_sequence(phones, "v2")
    [227, 167, 158, 119]

Modules, one idea each:
    symbols       the symbol tables and phones → ids
    punctuation   which marks are phones, how others are mapped
    numbers_en    English numbers/abbreviations → words
    neural_g2p    g2p_en's neural predictor for unknown English words (NumPy)
    english       English G2P (CMU dictionary)
    numbers_zh    Chinese numbers → Chinese words
    tone_sandhi   Mandarin tone changes in context
    chinese       Mandarin G2P (jieba + pypinyin + opencpop table)
    language      language codes, splitting mixed text by script
    cleaner       clean_text, the entry point

Heavy resources (the CMU dictionary, jieba's dictionary, pypinyin's phrase dictionary, the
neural G2P weights) are loaded on first use, not on import.
"""
from __future__ import annotations

from .cleaner import clean_text, preprocess_list_text
from .language import normalize_language, split_by_language
from .symbols import (
    PAD,
    PUNCTUATION,
    UNK,
    cleaned_text_to_sequence,
    get_symbols,
    sequence_to_phones,
    symbol_to_id,
)

__all__ = [
    "PAD",
    "PUNCTUATION",
    "UNK",
    "clean_text",
    "cleaned_text_to_sequence",
    "get_symbols",
    "normalize_language",
    "preprocess_list_text",
    "sequence_to_phones",
    "split_by_language",
    "symbol_to_id",
]
