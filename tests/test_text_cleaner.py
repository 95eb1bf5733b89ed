"""clean_text, language codes, mixed text (gsv_edu/text/cleaner.py, language.py)."""
from __future__ import annotations

import warnings

import pytest

from gsv_edu.text import (
    clean_text,
    cleaned_text_to_sequence,
    normalize_language,
    preprocess_list_text,
    sequence_to_phones,
    split_by_language,
)


@pytest.mark.parametrize("code, language", [
    ("ZH", "zh"), ("zh", "zh"), ("EN", "en"), ("en", "en"), ("En", "en"), ("JP", "ja"),
    ("ja", "ja"), ("KO", "ko"), ("yue", "yue"), ("auto", "auto"),
])
def test_normalize_language(code, language):
    assert normalize_language(code) == language


def test_unknown_language_code_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown language code 'fr'"):
        normalize_language("fr")
    with pytest.raises(ValueError, match="unknown language code"):
        clean_text("bonjour", "fr")


@pytest.mark.parametrize("code", ["ja", "JP", "ko", "yue"])
def test_official_but_unimplemented_languages(code):
    with pytest.raises(NotImplementedError, match="not supported yet"):
        clean_text("テスト", code)


def test_unknown_version():
    with pytest.raises(ValueError, match="v9"):
        clean_text("你好", "zh", version="v9")


def test_chinese():
    phones, word2ph, norm = clean_text("你好，世界。", "ZH")
    assert phones == ["n", "i2", "h", "ao3", ",", "sh", "ir4", "j", "ie4", "."]
    assert word2ph == [2, 2, 1, 2, 2, 1]
    assert norm == "你好,世界."


def test_english():
    phones, word2ph, norm = clean_text("Hello, world.", "en")
    assert phones == ["HH", "AH0", "L", "OW1", ",", "W", "ER1", "L", "D", "."]
    assert word2ph is None
    assert norm == "Hello, world."


def test_short_english_gets_a_leading_comma():
    assert clean_text("Hi!", "en")[0] == [",", "HH", "AY1", "!"]  # 3 phones → 4
    assert clean_text("Hello", "en")[0] == ["HH", "AH0", "L", "OW1"]  # 4 phones: unchanged


def test_special_symbols():
    # "￥" → SP2: official clean_special reads it as "," and turns *every* "," into SP2.
    phones, word2ph, norm = clean_text("好￥对，吧", "zh")
    assert phones == ["h", "ao3", "SP2", "d", "ui4", "SP2", "b", "a5"]
    assert norm == "好,对,吧" and word2ph == [2, 1, 2, 1, 2]
    assert clean_text("好^对", "zh")[0] == ["h", "ao3", "SP3", "d", "ui4"]
    # Only Chinese text has special symbols.
    assert "SP3" not in clean_text("yes^no", "en")[0]


def test_preprocess_list_text():
    # 1-get-text.py replaces "%" → "-" and "￥" → "," before clean_text.
    assert preprocess_list_text("50%￥") == "50-,"
    assert clean_text(preprocess_list_text("五十%"), "zh")[0] == ["w", "u3", "sh", "ir2", "-"]


@pytest.mark.parametrize("text, runs", [
    ("你好, world! 再见", [("你好, ", "zh"), ("world! ", "en"), ("再见", "zh")]),
    ("iPhone 15很好", [("iPhone 15", "en"), ("很好", "zh")]),
    ("「你好」", [("「你好」", "zh")]),
    ("123", [("123", "zh")]),
    ("", []),
])
def test_split_by_language(text, runs):
    assert split_by_language(text) == runs


def test_mixed_chinese_english():
    phones, word2ph, norm = clean_text("我喜欢apple和banana！", "zh")
    assert norm == "我喜欢apple和banana!"
    # apple = AE1 P AH0 L, banana = B AH0 N AE1 N AH0 (CMU); 和 = he2 (pypinyin)
    assert phones == ["w", "o2", "x", "i3", "h", "uan5", "AE1", "P", "AH0", "L", "h", "e2",
                      "B", "AH0", "N", "AE1", "N", "AH0", "!"]
    # one entry per character; an English word's phones sit on its first letter
    assert word2ph == [2, 2, 2, 4, 0, 0, 0, 0, 2, 6, 0, 0, 0, 0, 0, 1]
    assert len(word2ph) == len(norm) and sum(word2ph) == len(phones)


def test_auto_language():
    assert clean_text("Hello, world.", "auto") == clean_text("Hello, world.", "en")
    assert clean_text("你好", "auto") == clean_text("你好", "zh")
    mixed = clean_text("Hello世界", "auto")
    assert mixed[0] == ["HH", "AH0", "L", "OW1", "sh", "ir4", "j", "ie4"]
    assert mixed[1] == [4, 0, 0, 0, 0, 2, 2]


def test_outputs_are_symbols_and_round_trip():
    for text, language in [("今天是2024年5月1日，天气很好！", "zh"),
                           ("Dr. Smith paid $3.50 on May 21st, 1999.", "en"),
                           ("我用GPT-SoVITS训练了3个模型。", "zh")]:
        phones, _, _ = clean_text(text, language)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no UNK warning: every phone is a symbol
            ids = cleaned_text_to_sequence(phones, "v1")
        assert sequence_to_phones(ids, "v1") == phones
        assert cleaned_text_to_sequence(phones, "v2") == ids
