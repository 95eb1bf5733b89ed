"""English text normalisation: numbers, money, percentages, ordinals, years, abbreviations.

Plays the role of the official `GPT_SoVITS/text/en_normalization/expend.py` (`normalize`),
itself grown from g2p_en's `expand.py`: everything that is not a word is rewritten as words
before the dictionary lookup, because the CMU dictionary only knows words. Written from
scratch here, small on purpose; it follows the same reading conventions:

* cardinals without "and" and without hyphens: 123 → "one hundred twenty three";
* 4-digit numbers from 1001 to 2999 are read as years (1999 → "nineteen ninety nine",
  2005 → "two thousand five", 1905 → "nineteen oh five", 1500 → "fifteen hundred");
* decimals digit by digit after "point": 3.14 → "three point one four";
* ordinals: 21st → "twenty first";
* money: $3.50 → "three dollars fifty cents", £1 → "one pound";
* percentages: 50% → "fifty percent";
* thousands separators are dropped: 1,000,000 → "one million".

(Hyphens are avoided because "-" is itself a phone of the official inventory.)
"""
from __future__ import annotations

import re

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand")]

# Irregular ordinals; the others add "th" (with "y" → "ieth").
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n or not words:
        words.append(_ONES[n])
    return words


def cardinal(n: int) -> str:
    """An integer as words: 1234567 → "one million two hundred thirty four thousand five
    hundred sixty seven"; negative numbers get "minus"."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n < 1000:
        return " ".join(_below_thousand(n))
    words: list[str] = []
    for value, name in _SCALES:
        if n >= value:
            words += [cardinal(n // value), name]
            n %= value
    if n:
        words += _below_thousand(n)
    return " ".join(words)


def ordinal(n: int) -> str:
    """21 → "twenty first", 100 → "one hundredth", 12 → "twelfth"."""
    words = cardinal(n).split(" ")
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year(n: int) -> str:
    """A year the way people say it: 1999 → "nineteen ninety nine", 2000 → "two thousand",
    2008 → "two thousand eight", 2024 → "twenty twenty four", 1905 → "nineteen oh five",
    1900 → "nineteen hundred"."""
    if n == 2000 or not 1000 < n < 3000:
        return cardinal(n)
    if 2000 < n < 2010:
        return "two thousand " + cardinal(n % 100)
    high, low = divmod(n, 100)
    if low == 0:
        return cardinal(high) + " hundred"
    if low < 10:
        return cardinal(high) + " oh " + cardinal(low)
    return cardinal(high) + " " + cardinal(low)


def decimal(text: str) -> str:
    """ "3.14" → "three point one four" (the part after the point digit by digit)."""
    whole, _, frac = text.partition(".")
    words = cardinal(int(whole)) if whole else "zero"
    if frac:
        words += " point " + " ".join(_ONES[int(d)] for d in frac)
    return words


def _number(text: str) -> str:
    """A plain number string (no separators): integers as cardinals or years, else decimals."""
    if "." in text:
        return decimal(text)
    n = int(text)
    if len(text) > 1 and text.startswith("0"):  # "007": read the digits
        return " ".join(_ONES[int(d)] for d in text)
    if 1000 < n < 3000:
        return year(n)
    return cardinal(n)


_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
               "€": ("euro", "euros", "cent", "cents")}


def _money(symbol: str, amount: str) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[symbol]
    whole, _, frac = amount.partition(".")
    units = int(whole) if whole else 0
    cents = int((frac + "00")[:2]) if frac else 0
    parts = []
    if units or not cents:
        parts.append(f"{cardinal(units)} {one if units == 1 else many}")
    if cents:
        parts.append(f"{cardinal(cents)} {sub_one if cents == 1 else sub_many}")
    return " ".join(parts)


# Abbreviations that end in a full stop (the stop is part of the abbreviation, not a pause).
ABBREVIATIONS = {
    "mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "st": "saint", "jr": "junior",
    "sr": "senior", "prof": "professor", "capt": "captain", "gen": "general", "lt": "lieutenant",
    "col": "colonel", "sgt": "sergeant", "mt": "mount", "ft": "fort", "co": "company",
    "ltd": "limited", "inc": "incorporated", "vs": "versus", "etc": "et cetera", "no": "number",
}
_ABBREVIATION_RE = re.compile(r"\b(" + "|".join(ABBREVIATIONS) + r")\.", re.IGNORECASE)
# "No." is only "number" before a digit ("No. 5"), otherwise it is the word "no" + full stop.
_LATIN_RE = [(re.compile(r"\bi\.e\.", re.IGNORECASE), "that is"),
             (re.compile(r"\be\.g\.", re.IGNORECASE), "for example")]

_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}\b)")
_MONEY_RE = re.compile(r"([$£€])\s?(\d+(?:\.\d+)?)")
_PERCENT_RE = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_TIME_RE = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_NEGATIVE_RE = re.compile(r"(?<![\w.])-(?=\d)")
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")
_SYMBOLS = {"&": " and ", "+": " plus ", "@": " at ", "=": " equals "}


def _abbreviation(match: re.Match[str]) -> str:
    word = match.group(1)
    expansion = ABBREVIATIONS[word.lower()]
    after = match.string[match.end():]
    if word.lower() == "no" and not re.match(r"\s*\d", after):
        return match.group(0)  # the word "no" ending a sentence
    if word.lower() == "st" and not re.match(r"\s*[A-Z]", after):
        expansion = "street"  # "Baker St." (but "St. Louis" → "saint Louis")
    # The stop belongs to the abbreviation, except at the very end, where it also ends the text.
    return expansion + ("." if not after.strip() else "")


def _time(match: re.Match[str]) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes == 0:
        return f"{cardinal(hours)} o'clock"
    if minutes < 10:
        return f"{cardinal(hours)} oh {cardinal(minutes)}"
    return f"{cardinal(hours)} {cardinal(minutes)}"


def normalize_numbers(text: str) -> str:
    """Rewrite numbers, money, percentages, times, ordinals, abbreviations and a few symbols
    (& + @ =) as English words. Order matters: money and percentages before plain numbers,
    thousands separators first of all."""
    for pattern, words in _LATIN_RE:
        text = pattern.sub(words, text)
    text = _ABBREVIATION_RE.sub(_abbreviation, text)
    text = _THOUSANDS_RE.sub("", text)
    text = _MONEY_RE.sub(lambda m: _money(m.group(1), m.group(2)), text)
    text = _PERCENT_RE.sub(lambda m: _number(m.group(1)) + " percent", text)
    text = _ORDINAL_RE.sub(lambda m: ordinal(int(m.group(1))), text)
    text = _TIME_RE.sub(_time, text)
    text = _NEGATIVE_RE.sub("minus ", text)
    # A number glued to letters ("3D", "mp3") gets spaces so that both halves are read.
    text = _NUMBER_RE.sub(lambda m: " " + _number(m.group(0)) + " ", text)
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    return re.sub(r" {2,}", " ", text).strip()
