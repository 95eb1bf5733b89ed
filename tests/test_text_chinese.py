"""Mandarin front-end (gsv_edu/text/chinese.py, tone_sandhi.py, numbers_zh.py).

How the goldens were checked by hand: the dictionary pinyin comes from pypinyin
(`lazy_pinyin(w, style=TONE3)`, e.g. 你好 → ni3 hao3, 老虎 → lao3 hu3, 朋友 → peng2 you3,
东西 → dong1 xi1, 一天 → yi1 tian1, 不好 → bu4 hao3); the expected tones then follow the
textbook rules (3+3 → 2+3; 一 → yi2 before a 4th tone, yi4 before others, yi5 in V一V, yi1 in
ordinals; 不 → bu2 before a 4th tone, bu5 in V不C; neutral 5 for 们/的/子/reduplicated nouns
and common words like 朋友, 东西); the phone symbols come from
data/pinyin_to_phones_opencpop_strict.txt (ni → "n i", hao → "h ao", yi → "y i",
zi → "z i0", zhi → "zh ir", er → "EE er", a → "AA a", nv → "n v").
"""
from __future__ import annotations

import pytest

from gsv_edu.text.chinese import g2p, spell_pinyin, syllable_to_phones, text_normalize
from gsv_edu.text.numbers_zh import integer_to_chinese, normalize_numbers


def phones_of(text: str) -> str:
    norm = text_normalize(text)
    phones, word2ph = g2p(norm)
    assert sum(word2ph) == len(phones) and len(word2ph) == len(norm)
    return " ".join(phones)


@pytest.mark.parametrize("text, phones", [
    # third-tone sandhi
    ("你好", "n i2 h ao3"),
    ("老虎", "l ao2 h u3"),
    ("水果", "sh ui2 g uo3"),
    ("展览馆", "zh an2 l an2 g uan3"),  # 展览/馆: 3 3 3 → 2 2 3
    ("纸老虎", "zh ir3 l ao2 h u3"),  # 纸/老虎: 3 3 3 → 3 2 3
    ("所有人", "s uo2 y ou3 r en2"),  # 所有/人
    # 一
    ("一个", "y i2 g e5"),  # before 4th tone → yi2; 个 after a number → neutral
    ("一天", "y i4 t ian1"),  # before 1st tone → yi4
    ("第一", "d i4 y i1"),  # ordinal keeps yi1
    ("看一看", "k an4 y i5 k an4"),  # V一V → neutral
    # 不
    ("不是", "b u2 sh ir4"),  # before 4th tone → bu2
    ("不好", "b u4 h ao3"),
    ("看不懂", "k an4 b u5 d ong3"),  # V不C → neutral
    # neutral tone
    ("朋友", "p eng2 y ou5"),
    ("东西", "d ong1 x i5"),
    ("我们的", "w o3 m en5 d e5"),
    ("椅子", "y i3 z i05"),
    ("奶奶", "n ai3 n ai5"),
    ("上来", "sh ang4 l ai5"),
    # erhua: a word-final 儿 takes the tone of the syllable before; 女儿 is a real er2
    ("哪儿", "n a3 EE er3"),
    ("女儿", "n v3 EE er2"),
    # zero-initial syllables map to y/w or the pseudo-initials AA/EE/OO
    ("阿姨", "AA a1 y i2"),
    ("有鱼", "y ou3 y v2"),
])
def test_words(text, phones):
    assert phones_of(text) == phones


def test_sentence_with_punctuation_and_word2ph():
    norm = text_normalize("你好，世界！")
    assert norm == "你好,世界!"
    phones, word2ph = g2p(norm)
    assert phones == ["n", "i2", "h", "ao3", ",", "sh", "ir4", "j", "ie4", "!"]
    assert word2ph == [2, 2, 1, 2, 2, 1]


@pytest.mark.parametrize("text, norm", [
    ("好。真的？是、吗；", "好.真的?是,吗,"),
    ("好！！！？", "好!"),  # repeats collapse to the first mark
    ("“你好”——他说~", "你好-他说-"),  # quotes removed, dashes and tildes → "-"
    ("等等……", "等等…"),
    ("abc你好 123", "你好一百二十三"),  # Latin letters and spaces removed here
])
def test_normalize_punctuation(text, norm):
    assert text_normalize(text) == norm


@pytest.mark.parametrize("n, words", [
    (0, "零"), (10, "十"), (12, "十二"), (20, "二十"), (101, "一百零一"), (110, "一百一十"),
    (1001, "一千零一"), (1010, "一千零一十"), (10086, "一万零八十六"), (20300, "二万零三百"),
    (150000, "十五万"), (100010000, "一亿零一万"), (-5, "负五"),
])
def test_integer_to_chinese(n, words):
    assert integer_to_chinese(n) == words


@pytest.mark.parametrize("text, expected", [
    ("我有2个苹果", "我有两个苹果"),
    ("12只猫", "十二只猫"),
    ("3.14", "三点一四"),
    ("增长50%", "增长百分之五十"),
    ("3/4", "四分之三"),
    ("2024年5月1日", "二零二四年五月一日"),
    ("2024-05-01", "二零二四年五月一日"),
    ("8:05", "八点零五分"),
    ("-3.5℃", "负三点五摄氏度"),
    ("13812345678", "一三八一二三四五六七八"),
    ("1,000元", "一千元"),
])
def test_normalize_numbers(text, expected):
    assert normalize_numbers(text) == expected


def test_numbers_in_a_sentence_are_read():
    assert phones_of("2个") == "l iang3 g e5"
    assert phones_of("50%") == "b ai3 f en1 zh ir1 w u3 sh ir2"


@pytest.mark.parametrize("initial, final, pinyin", [
    ("", "iou", "you"), ("d", "uei", "dui"), ("l", "uen", "lun"), ("", "v", "yu"),
    ("", "ve", "yue"), ("", "van", "yuan"), ("", "i", "yi"), ("", "ing", "ying"),
    ("", "u", "wu"), ("", "uo", "wo"), ("", "ia", "ya"), ("", "e", "e"), ("", "er", "er"),
    ("j", "v", "jv"), ("n", "v", "nv"),
])
def test_spell_pinyin(initial, final, pinyin):
    assert spell_pinyin(initial, final) == pinyin


@pytest.mark.parametrize("initial, final, phones", [
    ("h", "ao3", ["h", "ao3"]), ("", "a1", ["AA", "a1"]), ("", "er2", ["EE", "er2"]),
    ("", "o1", ["OO", "o1"]), ("z", "i5", ["z", "i05"]), ("zh", "i1", ["zh", "ir1"]),
    ("", "ian2", ["y", "En2"]), ("j", "v4", ["j", "v4"]),
])
def test_syllable_to_phones(initial, final, phones):
    assert syllable_to_phones(initial, final) == phones


def test_syllable_missing_from_the_table_warns():
    # 嗯 is "n2" in pypinyin; the opencpop table has no "n" (the official crashes on it).
    with pytest.warns(UserWarning, match="'n'"):
        phones = phones_of("嗯")
    assert phones == "EE en2"


def test_character_without_pinyin_becomes_unk():
    # g2p called on un-normalised text: the digit has no pinyin → one UNK phone, with a warning.
    with pytest.warns(UserWarning, match="no pinyin for '2'"):
        phones, word2ph = g2p("你2好")
    assert phones == ["n", "i3", "UNK", "h", "ao3"]
    assert word2ph == [2, 1, 2]
