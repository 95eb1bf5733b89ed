"""Mandarin G2P: text → initials and toned finals of the opencpop-strict inventory.

Mirrors `GPT_SoVITS/text/chinese2.py · text_normalize, g2p @48b1a01` (v2; `chinese.py` is the v1
variant):

    text_normalize:  numbers → Chinese words (`numbers_zh`), punctuation → ! ? … , . -,
                     everything that is neither a Han character nor one of those removed,
                     repeated punctuation collapsed;
    g2p:             split after punctuation → jieba part-of-speech segmentation →
                     `ToneSandhi.pre_merge_for_modify` → per word: pypinyin initials and
                     finals with tones (neutral = 5) → `ToneSandhi.modified_tone` → erhua →
                     each syllable spelled as standard pinyin and looked up in
                     `data/pinyin_to_phones_opencpop_strict.txt` → two phones:
                     an initial (or the pseudo-initials AA / EE / OO, or y / w) and the
                     final with its tone digit.  你好 → n i2 h ao3.

`word2ph[i]` is the number of phones of the i-th character of the normalised text: 2 for a
Han character, 1 for a punctuation mark; `sum(word2ph) == len(phones)` and
`len(word2ph) == len(norm_text)`. (BERT features, one vector per character, are repeated
word2ph[i] times to align with phones: `GPT_SoVITS/prepare_datasets/1-get-text.py ·
get_bert_feature @48b1a01`.)

Deliberate differences from the official:
* The official v2 reads polyphones with g2pW (an ONNX model) and v1 with pypinyin; we use
  pypinyin (its phrase dictionary), as v1 does.
* The official text normaliser is PaddleSpeech's; ours (`numbers_zh`) is smaller.
* Syllables missing from the opencpop table (嗯 n, 呣 m, hm) make the official crash on an
  assert; we read them as the nearest table syllable (嗯 → EE en) and warn.
* Latin letters are deleted here as in the official; mixed Chinese–English text is split by
  `cleaner.clean_text` before it reaches this module.
"""
from __future__ import annotations

import functools
import logging
import re
import warnings
from importlib import resources

from .numbers_zh import normalize_numbers
from .punctuation import map_zh_punctuation, replace_consecutive_punctuation
from .symbols import PUNCTUATION, UNK
from .tone_sandhi import ToneSandhi

_HAN = "\u4e00-\u9fa5"  # the official range of Chinese characters
_NOT_KEPT = re.compile("[^" + _HAN + re.escape("".join(PUNCTUATION)) + "]")
_AFTER_PUNCTUATION = re.compile("(?<=[" + re.escape("".join(PUNCTUATION)) + r"])\s*")

# Syllables pypinyin can produce that the opencpop table lacks → nearest table syllable.
_MISSING_SYLLABLES = {"n": "en", "ng": "eng", "m": "mu", "hm": "hen", "hng": "heng"}

# Words in which a final 儿 is a full syllable (child, son...), not the erhua suffix.
NOT_ERHUA = set("""
女儿 儿子 孤儿 婴儿 幼儿 患儿 胎儿 健儿 宠儿 乞儿 妻儿 儿女 男儿 孩儿 少儿 托儿 新生儿 婴幼儿
流浪儿 混血儿 弃儿 犬儿 宁馨儿
""".split())


@functools.lru_cache(maxsize=1)
def get_jieba():
    """jieba, loaded on first use, with its start-up chatter on stderr silenced.

    The dictionary comes from the installed package (no network); jieba caches the parsed
    dictionary in the temp directory to start faster the next time.
    """
    import jieba  # lazy: the dictionary takes a second or two to load

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def pinyin(word: str, style: str) -> list[str]:
    """pypinyin's `lazy_pinyin` with the neutral tone written 5, one item per character
    (a run of non-Han characters is one item, returned as itself). `style` is a name of
    `pypinyin.Style`: "INITIALS", "FINALS_TONE3", "TONE3". pypinyin is imported on first use
    (its phrase dictionary takes about a second to load)."""
    from pypinyin import Style, lazy_pinyin  # deferred: its phrase dictionary takes about a second

    return lazy_pinyin(word, neutral_tone_with_five=True, style=getattr(Style, style))


@functools.lru_cache(maxsize=1)
def pinyin_to_phones() -> dict[str, tuple[str, str]]:
    """The opencpop-strict table: pinyin without tone → (initial symbol, final symbol)."""
    path = resources.files("gsv_edu.text").joinpath("data").joinpath("pinyin_to_phones_opencpop_strict.txt")
    table: dict[str, tuple[str, str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            pinyin, phones = line.split("\t")
            initial, final = phones.split(" ")
        except ValueError:
            raise ValueError(f"{path}:{number}: expected 'pinyin<TAB>initial final', got {line!r}") from None
        table[pinyin] = (initial, final)
    return table


def text_normalize(text: str) -> str:
    """Official chinese2.py `text_normalize`: the text the G2P reads, one symbol per char.

    >>> text_normalize("你好！今天是2024年5月1日……")
    '你好!今天是二零二四年五月一日…'
    """
    text = normalize_numbers(text)
    text = map_zh_punctuation(text)
    text = text.replace("……", "…")
    text = _NOT_KEPT.sub("", text)
    return replace_consecutive_punctuation(text)


def spell_pinyin(initial: str, final: str) -> str:
    """Standard pinyin spelling of a syllable from pypinyin's strict initial and final
    (tone removed): ("", "iou") → "you", ("", "v") → "yu", ("j", "v") → "jv", ("d", "uei") →
    "dui". The table has both "ju" and "jv" spellings, so j/q/x + v need no rewriting."""
    if initial:
        return initial + {"uei": "ui", "iou": "iu", "uen": "un"}.get(final, final)
    whole = {"i": "yi", "in": "yin", "ing": "ying", "u": "wu", "v": "yu", "ve": "yue",
             "van": "yuan", "vn": "yun"}
    if final in whole:
        return whole[final]
    if final.startswith("i"):
        return "y" + final[1:]  # ia → ya, iou → you, iong → yong
    if final.startswith("u"):
        return "w" + final[1:]  # uo → wo, uei → wei, ueng → weng
    return final  # a, o, e, ai, er, ...


def syllable_to_phones(initial: str, final_with_tone: str) -> list[str]:
    """One syllable → [initial symbol, final symbol + tone]: ("h", "ao3") → ["h", "ao3"],
    ("", "a1") → ["AA", "a1"], ("", "iou3") → ["y", "ou3"]."""
    final, tone = final_with_tone[:-1], final_with_tone[-1]
    pinyin = spell_pinyin(initial, final)
    table = pinyin_to_phones()
    if pinyin not in table:
        substitute = _MISSING_SYLLABLES.get(pinyin)
        message = f"pinyin {pinyin!r} is not in the opencpop table; reading it as {substitute or UNK!r}"
        warnings.warn(message, stacklevel=2)
        if substitute is None:
            return [UNK, UNK]
        pinyin = substitute
    new_initial, new_final = table[pinyin]
    return [new_initial, new_final + tone]


def _initials_finals(word: str) -> tuple[list[str], list[str]]:
    """pypinyin's strict initials and tone-3-style finals of a word (neutral tone = 5).

    Syllabic nasals (嗯 n2) have neither initial nor final in pypinyin's strict style; we
    take them from the full syllable so that they are not lost."""
    initials = pinyin(word, "INITIALS")
    finals = pinyin(word, "FINALS_TONE3")
    for i, (initial, final) in enumerate(zip(initials, finals)):
        if initial == "" and final == "":
            finals[i] = pinyin(word[i], "TONE3")[0]
            if finals[i][-1:] not in set("12345"):
                finals[i] += "5"
    return initials, finals


def merge_erhua(initials: list[str], finals: list[str], word: str, pos: str) -> tuple[list[str], list[str]]:
    """Erhua, handled simply (official chinese2.py `_merge_erhua`): the 儿 that ends a word
    (好玩儿, 哪儿) is said with the tone of the syllable before it (er2 → er + that tone);
    it stays a syllable of its own, so word2ph is unchanged. Words where 儿 means
    "child/son" (女儿, 婴儿) and names, adjectives, abbreviations (pos nr, a, j) keep er2."""
    if not word.endswith("儿") or len(finals) != len(word):
        return initials, finals
    if finals[-1] == "er1":  # official fix: a word-final 儿 is never er1
        finals[-1] = "er2"
    if len(word) < 2 or word in NOT_ERHUA or word[-2:] in NOT_ERHUA or pos in {"a", "j", "nr"}:
        return initials, finals
    if finals[-1] in {"er2", "er5"} and finals[-2][-1:] in set("12345"):
        finals = finals[:-1] + ["er" + finals[-2][-1]]
    return initials, finals


_sandhi = ToneSandhi()


def _segment(sentence: str) -> list[tuple[str, str]]:
    """jieba part-of-speech segmentation of one sentence: [(word, pos)]."""
    get_jieba()  # loads (quietly) the dictionary that posseg shares
    import jieba.posseg as posseg  # deferred, as jieba above

    return [(pair.word, pair.flag) for pair in posseg.lcut(sentence) if pair.flag != "eng"]


def g2p(norm_text: str) -> tuple[list[str], list[int]]:
    """Official chinese2.py `g2p`: normalised Chinese text → (phones, word2ph)."""
    phones: list[str] = []
    word2ph: list[int] = []
    sentences = [s for s in _AFTER_PUNCTUATION.split(norm_text) if s.strip()]
    for sentence in sentences:
        sentence = re.sub("[a-zA-Z]+", "", sentence)
        for word, pos in _sandhi.pre_merge_for_modify(_segment(sentence)):
            initials, finals = _initials_finals(word)
            finals = _sandhi.modified_tone(word, pos, finals)
            initials, finals = merge_erhua(initials, finals, word, pos)
            for initial, final in zip(initials, finals):
                if initial == final:  # pypinyin returns a non-Han character as itself
                    if initial not in PUNCTUATION:
                        message = f"no pinyin for {initial!r} in {sentence!r}; using {UNK!r}"
                        warnings.warn(message, stacklevel=2)
                    phones.append(initial if initial in PUNCTUATION else UNK)
                    word2ph.append(1)
                else:
                    phones += syllable_to_phones(initial, final)
                    word2ph.append(2)
    return phones, word2ph
