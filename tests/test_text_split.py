"""The text splitting of inference against the official functions.

tests/fixtures/tts_split/cases.json was made by running the official code at 48b1a01
(`tools/official_fixtures/tts_split.py`: TTS_infer_pack/text_segmentation_method.py imported,
inference_webui.py's split/cut/merge/process functions executed from its source, get_tts_wav's
glue restated) on 16 hand-picked strings; see tests/fixtures/README.md (group `tts_split`).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gsv_edu.text import split as ts

CASES = json.loads((Path(__file__).parent / "fixtures" / "tts_split" / "cases.json").read_text(encoding="utf-8"))
CASES = CASES["cases"]
IDS = [c["text"][:24] for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_split_and_cuts_equal_official(case):
    text = case["text"]
    assert ts.split(text) == case["split"]
    assert ts.split_big_text(text, 20) == case["split_big_text_20"]
    for name in ts.CUT_METHODS:
        assert ts.CUT_METHODS[name](text) == case[name], name


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_segments_equal_official_webui(case):
    for key, expected in case["webui_segments"].items():
        cut, lang = key.split("/")
        if isinstance(expected, dict):  # the official process_text refused: nothing to say
            with pytest.raises(ts.TextSplitError):
                ts.segments(case["text"], cut, lang)
        else:
            assert ts.segments(case["text"], cut, lang) == expected, key


def test_fixture_exercises_the_quirks():
    """The cases above are only worth something if they reach the branches that differ."""
    by_text = {c["text"]: c for c in CASES}
    nine = by_text["One. Two. Three. Four. Five. Six. Seven. Eight. Nine."]
    assert nine["cut1"].split("\n") == ["One. Two. Three. Four.", " Five. Six. Seven. Eight. Nine."]  # last group: 5
    assert ts.split("3.14.") == ["3.", "14."]  # split cuts decimals, cut4/cut5 do not
    assert ts.cut4("It costs 3.14 dollars. Pi is 3.14159. Really.") == "It costs 3.14 dollars\n Pi is 3.14159. Really"
    assert ts.cut5("3.5元。") == "3.5元。"
    assert ts.segments("Hi. Ok. Yes.", "cut5", "en") == ["Hi. Ok.", " Yes."]  # "Hi." is merged (< 5 chars)


def test_hand_worked_examples():
    # worked by hand from the official definitions (see gsv_edu/text/split.py)
    assert ts.split("他说……好——吧") == ["他说。", "好，", "吧。"]
    assert ts.cut3("甲。乙。丙。") == "甲\n乙\n丙"
    assert ts.cut0("...") == "\n" and ts.cut0("a.") == "a."
    assert ts.merge_short_text_in_array(["ab", "cd", "efgh", "i"], 4) == ["abcd", "efghi"]
    assert ts.merge_short_text_in_array(["ab"], 4) == ["ab"]
    assert ts.process_text(["a", "", " ", None, "b"]) == ["a", "b"]
    # no cut; the empty line collapses, "你好" (< 5 characters) is merged into the next piece
    assert ts.segments("你好\n\n世界和平", "cut0", "zh") == ["你好世界和平。"]
    assert ts.segments("你好吗朋友。世界和平了。", "cut3", "zh") == ["你好吗朋友。", "世界和平了。"]
    assert ts.segments("你好吗朋友。世界和平。", "cut3", "zh") == ["你好吗朋友世界和平。"]  # 4 < 5: merged
    assert ts.get_method("凑四句一切") is ts.cut1


def test_errors_are_clear():
    with pytest.raises(ts.TextSplitError, match="empty"):
        ts.segments("  \n ", "cut1", "en")
    with pytest.raises(ts.TextSplitError, match="unknown text-cutting method 'cut9'"):
        ts.segments("Hello.", "cut9", "en")
    with pytest.raises(ts.TextSplitError, match="nothing to say"):
        ts.process_text(["", " ", "\n"])
