"""Language codes and splitting mixed Chinese–English text by script.

`normalize_language` mirrors the language-code table of
`GPT_SoVITS/prepare_datasets/1-get-text.py · language_v1_to_language_v2 @48b1a01`.
`split_by_language` plays the
role of the official inference-time `LangSegmenter` for the two languages implemented here:
runs of Han characters are Chinese, runs of Latin letters are English.
"""
from __future__ import annotations

import re

# List-file codes (1-get-text.py) → the cleaner's language names.
LANGUAGE_CODES = {
    "zh": "zh", "ZH": "zh",
    "en": "en", "EN": "en", "En": "en",
    "ja": "ja", "JA": "ja", "jp": "ja", "JP": "ja",
    "ko": "ko", "KO": "ko", "Ko": "ko",
    "yue": "yue", "YUE": "yue", "Yue": "yue",
    "auto": "auto",
}
IMPLEMENTED = ("zh", "en", "auto")

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")


def normalize_language(code: str) -> str:
    """A language code as written in a training list ("ZH", "en", "En", ...) → "zh", "en",
    "ja", "ko", "yue" or "auto". Raises ValueError for a code the official lists do not use."""
    language = LANGUAGE_CODES.get(code.strip() if isinstance(code, str) else code)
    if language is None:
        raise ValueError(
            f"unknown language code {code!r}; expected one of {sorted(LANGUAGE_CODES)}"
        )
    return language


def check_implemented(language: str) -> str:
    """`language` (already normalised) if this front-end can read it, else a clear error."""
    if language not in IMPLEMENTED:
        raise NotImplementedError(
            f"language {language!r} is part of the official GPT-SoVITS v2 front-end but is not "
            f"supported yet by gsv_edu (supported: {', '.join(IMPLEMENTED)})"
        )
    return language


def script_of(char: str) -> str | None:
    """ "zh" for a Han character, "en" for a Latin letter, None for anything else."""
    if _HAN.match(char):
        return "zh"
    if _LATIN.match(char):
        return "en"
    return None


def split_by_language(text: str, default: str = "zh") -> list[tuple[str, str]]:
    """Cut text into (segment, language) runs by script.

    Han characters are "zh", Latin letters are "en". Everything else (digits, spaces,
    punctuation) belongs to the run it follows, so "iPhone 15很好" → [("iPhone 15", "en"),
    ("很好", "zh")] and "我有3个apple。" → [("我有3个", "zh"), ("apple。", "en")]; marks at
    the very start join the first run. A text without any letter is one `default` run.

    >>> split_by_language("你好, world! 再见")
    [('你好, ', 'zh'), ('world! ', 'en'), ('再见', 'zh')]
    """
    runs: list[list[str]] = []  # [segment, language]
    leading = ""
    for char in text:
        language = script_of(char)
        if language is None:
            if runs:
                runs[-1][0] += char
            else:
                leading += char
        elif runs and runs[-1][1] == language:
            runs[-1][0] += char
        else:
            runs.append([char, language])
    if not runs:
        return [(text, default)] if text else []
    runs[0][0] = leading + runs[0][0]
    return [(segment, language) for segment, language in runs]
