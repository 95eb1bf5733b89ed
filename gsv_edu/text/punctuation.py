"""Punctuation: which marks become phones, how the others are mapped, how repeats collapse.

Mirrors the punctuation handling spread over `GPT_SoVITS/text/symbols.py` (the punctuation
phones), `GPT_SoVITS/text/chinese2.py · rep_map, replace_punctuation,
replace_consecutive_punctuation` and `GPT_SoVITS/text/english.py` (its own `rep_map` and
`replace_consecutive_punctuation`), all at 48b1a01.

Only six marks survive as phones: ! ? … , . -  Every other mark is either mapped onto one of
them (Chinese full-width marks, colons, semicolons, dashes, tildes) or removed (quotes,
brackets). A run of marks keeps only its first one ("!!!" → "!", "?!" → "?"): the official
comment says this avoids "reference leakage" of long pauses.
"""
from __future__ import annotations

import re

from .symbols import PUNCTUATION

# Chinese side (chinese2.py `rep_map`). Quotes and brackets map to "'" there and are then
# deleted, because "'" is not a phone; we delete them directly (same output).
ZH_PUNCTUATION_MAP: dict[str, str] = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",",
    "、": ",", "...": "…", "$": ".", "/": ",", "—": "-", "～": "-", "~": "-",
    # further ASCII / full-width marks a Chinese text may carry (ours: mapped, not deleted)
    ":": ",", ";": ",",
}
ZH_DELETED = "“”\"‘’'（）()《》【】[]「」『』〈〉<>"

# English side (english.py `rep_map` + what survives its character filter).
EN_PUNCTUATION_MAP: dict[str, str] = {
    ";": ",", ":": ",", "：": ",", "，": ",", "；": ",", "、": ",",
    "。": ".", "！": "!", "？": "?", "…": ".", "—": "-", "–": "-", "～": "-", "~": "-",
    "’": "'", "‘": "'", "“": "", "”": "", '"': "",
}


def _mapping_pattern(mapping: dict[str, str]) -> re.Pattern[str]:
    # Longest keys first so that "..." wins over ".".
    keys = sorted(mapping, key=len, reverse=True)
    return re.compile("|".join(re.escape(k) for k in keys))


_ZH_PATTERN = _mapping_pattern(ZH_PUNCTUATION_MAP)
_EN_PATTERN = _mapping_pattern(EN_PUNCTUATION_MAP)
_CONSECUTIVE = re.compile("([{0}])[{0}]+".format(re.escape("".join(PUNCTUATION))))


def replace_consecutive_punctuation(text: str) -> str:
    """Keep only the first mark of every run of punctuation phones ("好!!!" → "好!")."""
    return _CONSECUTIVE.sub(r"\1", text)


def map_zh_punctuation(text: str) -> str:
    """Chinese marks → the official punctuation phones; quotes and brackets removed."""
    text = _ZH_PATTERN.sub(lambda m: ZH_PUNCTUATION_MAP[m.group()], text)
    return text.translate({ord(c): None for c in ZH_DELETED})


def map_en_punctuation(text: str) -> str:
    """Marks in English text → the ASCII marks the English front-end keeps (. , ? ! - ')."""
    return _EN_PATTERN.sub(lambda m: EN_PUNCTUATION_MAP[m.group()], text)
