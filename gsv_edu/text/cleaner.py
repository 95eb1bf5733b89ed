"""`clean_text`: any text of a training list → (phones, word2ph, norm_text).

Mirrors `GPT_SoVITS/text/cleaner.py · clean_text, clean_special @48b1a01` and the text step of
`GPT_SoVITS/prepare_datasets/1-get-text.py · process @48b1a01`:

* language "zh": Chinese G2P (`chinese`); if the text also holds Latin letters, the English
  words are read by the English G2P (as official v2 inference does in its "zh" mode with a
  language segmenter; the official 1-get-text would silently delete them);
* language "en": English G2P (`english`); a result shorter than 4 phones gets a leading ","
  (official: a very short English prompt is padded with a pause);
* language "auto": split by script (`language.split_by_language`), each run read by its
  language; an all-Latin text is read exactly as "en";
* special symbols in Chinese text: "￥" → SP2 and "^" → SP3 (official `clean_special`);
* a phone that is not in the symbol table becomes "UNK" (with a warning).

`word2ph` lists the phones of each character of `norm_text` (Chinese, and mixed text), or is
None (pure English, as the official: English gets no BERT features).
"""
from __future__ import annotations

import re
import warnings

from . import chinese, english
from .language import check_implemented, normalize_language, split_by_language
from .symbols import UNK, _check_version, symbol_to_id

# (character, language it applies to, phone it stands for) — official cleaner.py `special`.
SPECIAL_SYMBOLS = [("￥", "zh", "SP2"), ("^", "zh", "SP3")]
_LATIN = re.compile(r"[A-Za-z]")


def preprocess_list_text(text: str) -> str:
    """The replacement `1-get-text.py` makes before calling `clean_text`: "%" → "-" and
    "￥" → ",".

    Official quirk (`GPT_SoVITS/prepare_datasets/1-get-text.py · process @48b1a01` calls
    `clean_text(text.replace("%", "-").replace("￥", ","), ...)`): so in prepared training data
    "50%" is read as "五十-" (fifty, pause), and the SP2 symbol that "￥" would produce never
    appears. Call this when preparing data the official way; `clean_text` itself (inference)
    reads "%" as percent.
    """
    return text.replace("%", "-").replace("￥", ",")


def _clean_english(text: str) -> tuple[list[str], list[int], str]:
    """English text → (phones, phones per character of norm_text, norm_text)."""
    norm_text = english.text_normalize(text)
    per_char = [0] * len(norm_text)
    phones: list[str] = []
    for start, token_phones in english.g2p_tokens(norm_text):
        per_char[start] += len(token_phones)
        phones += token_phones
    if len(phones) < 4:  # official: short English results get a leading pause
        phones = [","] + phones
        if per_char:
            per_char[0] += 1
    return phones, per_char, norm_text


def _clean_chinese(text: str) -> tuple[list[str], list[int], str]:
    norm_text = chinese.text_normalize(text)
    phones, word2ph = chinese.g2p(norm_text)
    return phones, word2ph, norm_text


def _clean_mixed(text: str) -> tuple[list[str], list[int], str]:
    """Chinese with English words: each script run read by its own G2P and concatenated.

    For English runs, each word's phones are counted on the word's first letter and 0 on its
    other characters, so that word2ph still has one entry per character of norm_text and
    sums to the number of phones.
    """
    phones: list[str] = []
    word2ph: list[int] = []
    norm_text = ""
    for segment, language in split_by_language(text, default="zh"):
        clean = _clean_english if language == "en" else _clean_chinese
        seg_phones, seg_word2ph, seg_norm = clean(segment)
        if not seg_norm:
            continue  # nothing readable (only removed symbols)
        phones += seg_phones
        word2ph += seg_word2ph
        norm_text += seg_norm
    return phones, word2ph, norm_text


def _replace_unknown(phones: list[str], version: str) -> list[str]:
    table = symbol_to_id(version)
    unknown = sorted({p for p in phones if p not in table})
    if unknown:
        warnings.warn(f"phones {unknown} are not in the {version} symbol table; using {UNK!r}", stacklevel=3)
    return [p if p in table else UNK for p in phones]


def clean_text(text: str, language: str, version: str = "v2") -> tuple[list[str], list[int] | None, str]:
    """Text → (phones, word2ph, norm_text), official `cleaner.clean_text`.

    >>> clean_text("你好", "zh")
    (['n', 'i2', 'h', 'ao3'], [2, 2], '你好')
    >>> clean_text("Hi!", "en")
    ([',', 'HH', 'AY1', '!'], None, 'Hi!')
    """
    language = check_implemented(normalize_language(language))
    version = _check_version(version)  # v2Pro/v2ProPlus speak with the v2 table
    if language == "auto":
        runs = split_by_language(text, default="zh")
        language = "en" if runs and all(lang == "en" for _, lang in runs) else "zh"

    if language == "en":
        phones, _, norm_text = _clean_english(text)
        return _replace_unknown(phones, version), None, norm_text

    # Chinese (possibly with English words and special pause symbols)
    targets = {}
    for char, special_language, target in SPECIAL_SYMBOLS:
        if char in text and special_language == language:
            # Official quirk (cleaner.py clean_special): the symbol is read as "," and then
            # *every* "," phone of the text becomes the target, genuine commas included.
            text = text.replace(char, ",")
            targets[","] = target
            break  # the official handles the first special symbol found only
    clean = _clean_mixed if _LATIN.search(text) else _clean_chinese
    phones, word2ph, norm_text = clean(text)
    phones = [targets.get(p, p) for p in phones]
    return _replace_unknown(phones, version), word2ph, norm_text
