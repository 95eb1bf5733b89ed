"""Cutting a long target text into the pieces the GPT speaks one at a time.

The GPT stage reads [reference phones ; target phones] and continues the reference's tokens; a
long target makes a long sequence, which the model (trained on clips of a few seconds) handles
badly. The official inference therefore cuts the target text first, speaks each piece with the
same reference, and joins the pieces with a short silence. This module is that cutting, with the
official results:

- `split`, `cut0` … `cut5`, `split_big_text`: `GPT_SoVITS/TTS_infer_pack/text_segmentation_method.py
  @48b1a01` (the web UI's `GPT_SoVITS/inference_webui.py · split, cut1 … cut5` are the same
  functions; the web UI has no `cut0`, its "不切" leaves the text alone);
- `merge_short_text_in_array`, `process_text`: `GPT_SoVITS/inference_webui.py @48b1a01`;
- `segments`: the glue of `GPT_SoVITS/inference_webui.py · get_tts_wav @48b1a01` from the target
  text to the list of pieces: cut, collapse empty lines, one piece per line, drop empty lines,
  merge pieces shorter than 5 characters into the one before, skip blank pieces, and end each
  piece with a sentence mark ("。", or "." for English) if it does not end with one of `SPLITS`.

Each cut method returns one string with a piece per line (as upstream; `segments` splits it).

| name | official label | what it does |
|---|---|---|
| `cut0` | 不切 (no cut) | the text as it is |
| `cut1` | 凑四句一切 (the web UI's default) | groups of 4 clauses (see `cut1` for the last group) |
| `cut2` | 凑50字一切 | clauses gathered until a group has more than 50 characters |
| `cut3` | 按中文句号。切 | at every "。" |
| `cut4` | 按英文句号.切 | at every "." that is not between two digits |
| `cut5` | 按标点符号切 | after every punctuation mark ("." between two digits excepted) |

Upstream quirks kept (tests/test_text_split.py checks them against the official functions):
`split` cuts "3.14" into "3." and "14" (cut1/cut2 therefore count it as two clauses), while
`cut4` and `cut5` keep decimal numbers whole; `cut4` also keeps the "." of "3.14159." at the end
of a sentence (it is preceded by a digit); `cut1` with 4 clauses or fewer returns the text
unchanged (no "。" added, "……" kept); its last group holds the last 5 to 8 clauses.
"""
from __future__ import annotations

import re
from typing import Callable, Iterable

__all__ = ["SPLITS", "PUNCTUATION", "CUT5_MARKS", "CUT_METHODS", "CUT_LABELS", "TextSplitError",
           "split", "cut0", "cut1", "cut2", "cut3", "cut4", "cut5", "split_big_text",
           "merge_short_text_in_array", "process_text", "get_method", "segments"]

# The marks that end a clause (official `splits`): full- and half-width comma, full stop,
# question and exclamation marks, tilde, colons, em dash, ellipsis.
SPLITS = frozenset("，。？！,.?!~:：—…")
# What a piece may consist of and still say nothing (official `punctuation`).
PUNCTUATION = frozenset("!?…,.- ")
# The marks `cut5` cuts after (its own set, with ";" and "、" but without "~" or "—").
CUT5_MARKS = frozenset(",.;?!、，。？！：…")
MERGE_THRESHOLD = 5  # get_tts_wav: pieces shorter than this are merged into the one before
_CUT4_PATTERN = re.compile(r"(?<!\d)\.(?!\d)")  # a "." not touching a digit on either side


class TextSplitError(ValueError):
    """The text has nothing to say after cutting (only blanks and punctuation)."""


def _says_nothing(piece: str, marks: frozenset = PUNCTUATION) -> bool:
    """True when every character of `piece` is in `marks` (the empty piece included)."""
    return set(piece) <= marks


def _keep(pieces: Iterable[str], marks: frozenset = PUNCTUATION) -> str:
    """The pieces that say something, one per line."""
    return "\n".join(p for p in pieces if not _says_nothing(p, marks))


def split(text: str) -> list[str]:
    """Clauses, each ending with its mark of `SPLITS`: "a，b。c" → ["a，", "b。", "c。"].

    "……" becomes "。" and "——" becomes "，" first; a text that does not end with a mark gets
    a final "。". Empty text is an error (upstream raises IndexError).
    """
    if not text:
        raise TextSplitError("split: empty text")
    text = text.replace("……", "。").replace("——", "，")
    if text[-1] not in SPLITS:
        text += "。"
    clauses, current = [], ""
    for char in text:
        current += char
        if char in SPLITS:
            clauses.append(current)
            current = ""
    return clauses  # the text ends with a mark, so nothing is left in `current`


def cut0(text: str) -> str:
    """No cut: the text itself, or "\\n" (nothing) when it is only punctuation and spaces."""
    return "\n" if _says_nothing(text) else text


def cut1(text: str) -> str:
    """Groups of four clauses of `split`.

    Upstream's grouping: starts at clause 0, 4, 8, … but the last start is dropped, so the last
    group runs from the one-but-last start to the end (5 to 8 clauses). With 4 clauses or fewer
    the text comes back as it is (without `split`'s replacements).
    """
    text = text.strip("\n")
    clauses = split(text)
    starts = list(range(0, len(clauses), 4))[:-1]
    if not starts:
        return _keep([text])
    ends = starts[1:] + [len(clauses)]
    return _keep("".join(clauses[a:b]) for a, b in zip(starts, ends))


def cut2(text: str) -> str:
    """Clauses gathered until a group's length exceeds 50 characters; a last group shorter than
    50 joins the one before. Fewer than two clauses: the text as it is."""
    text = text.strip("\n")
    clauses = split(text)
    if len(clauses) < 2:
        return text
    groups, current = [], ""
    for clause in clauses:
        current += clause
        if len(current) > 50:
            groups.append(current)
            current = ""
    if current:
        groups.append(current)
    if len(groups) > 1 and len(groups[-1]) < 50:
        last = groups.pop()
        groups[-1] += last
    return _keep(groups)


def cut3(text: str) -> str:
    """At every Chinese full stop "。" (which is dropped)."""
    text = text.strip("\n")
    return _keep(text.strip("。").split("。"))


def cut4(text: str) -> str:
    """At every "." with no digit right before or after it (the "." is dropped)."""
    text = text.strip("\n")
    return _keep(_CUT4_PATTERN.split(text.strip(".")))


def cut5(text: str) -> str:
    """After every mark of `CUT5_MARKS` (the mark stays with its piece); a "." between two digits
    does not cut. Pieces made only of such marks are dropped."""
    text = text.strip("\n")
    pieces, current = [], ""
    last = len(text) - 1
    for i, char in enumerate(text):
        current += char
        if char not in CUT5_MARKS:
            continue
        decimal_point = char == "." and 0 < i < last and text[i - 1].isdigit() and text[i + 1].isdigit()
        if not decimal_point:
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return _keep(pieces, CUT5_MARKS)


def split_big_text(text: str, max_len: int = 510) -> list[str]:
    """Pieces of at most `max_len` characters where possible, cut only at marks of `SPLITS`
    (the mark stays with the text before it). A single run longer than `max_len` stays whole;
    upstream quirk kept: when the very first run is already too long, an empty piece comes first."""
    runs = re.split("([" + re.escape("".join(sorted(SPLITS))) + "])", text)
    pieces, current = [], ""
    for run in runs:
        if len(current) + len(run) > max_len:
            pieces.append(current)
            current = run
        else:
            current += run
    if current:
        pieces.append(current)
    return pieces


def merge_short_text_in_array(texts: list[str], threshold: int) -> list[str]:
    """Pieces joined left to right until each holds at least `threshold` characters; a short
    remainder joins the last piece (or is the only piece). Fewer than two pieces: unchanged."""
    if len(texts) < 2:
        return texts
    merged, current = [], ""
    for text in texts:
        current += text
        if len(current) >= threshold:
            merged.append(current)
            current = ""
    if current:
        if merged:
            merged[-1] += current
        else:
            merged.append(current)
    return merged


def process_text(texts: list[str | None]) -> list[str]:
    """The lines without the empty ones (None, "" or a single space); all empty is an error."""
    if all(t in (None, " ", "\n", "") for t in texts):
        raise TextSplitError("the text has nothing to say (only blank lines)")
    return [t for t in texts if t not in (None, " ", "")]


CUT_METHODS: dict[str, Callable[[str], str]] = {
    "cut0": cut0, "cut1": cut1, "cut2": cut2, "cut3": cut3, "cut4": cut4, "cut5": cut5}
# The web UI's labels (its `how_to_cut` choices) → our names.
CUT_LABELS = {"不切": "cut0", "凑四句一切": "cut1", "凑50字一切": "cut2", "按中文句号。切": "cut3",
              "按英文句号.切": "cut4", "按标点符号切": "cut5"}


def get_method(name: str) -> Callable[[str], str]:
    """A cut method by name ("cut0" … "cut5") or by the web UI's label ("凑四句一切", …)."""
    key = CUT_LABELS.get(name, name)
    if key not in CUT_METHODS:
        raise TextSplitError(f"unknown text-cutting method {name!r}; known: {', '.join(CUT_METHODS)} "
                             f"(or the web UI's labels {', '.join(CUT_LABELS)})")
    return CUT_METHODS[key]


def segments(text: str, how_to_cut: str = "cut1", language: str = "zh") -> list[str]:
    """The pieces of a target text that `get_tts_wav` speaks one by one.

    `how_to_cut`: a name of `CUT_METHODS` or a web-UI label ("cut0"/"不切": the text is not cut,
    as the web UI, which calls no function for it). `language`: the text's language code; "en"
    ends an unterminated piece with ".", any other with "。". Raises `TextSplitError` when
    nothing is left to say.
    """
    method = get_method(how_to_cut)
    text = text.strip("\n")
    if not text.strip():
        raise TextSplitError("the text is empty")
    if method is not cut0:  # the web UI's "不切" calls no function
        text = method(text)
    while "\n\n" in text:
        text = text.replace("\n\n", "\n")
    pieces = merge_short_text_in_array(process_text(text.split("\n")), MERGE_THRESHOLD)
    end_mark = "." if language == "en" else "。"
    out = []
    for piece in pieces:
        if not piece.strip():
            continue
        out.append(piece if piece[-1] in SPLITS else piece + end_mark)
    if not out:
        raise TextSplitError("the text has nothing to say (only blanks)")
    return out
