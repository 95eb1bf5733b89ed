"""Chinese text normalisation: digits and number-like expressions written as Chinese words.

Plays the role of the PaddleSpeech-style `TextNormalizer` that the official
`GPT_SoVITS/text/chinese2.py` calls (`GPT_SoVITS/text/zh_normalization/text_normlization.py ·
TextNormalizer @48b1a01`). Written from
scratch, much smaller; it covers what a speech corpus usually contains:

* integers: 12 → 十二, 105 → 一百零五, 20300 → 二万零三百;
* decimals: 3.14 → 三点一四;  negative numbers: -3 → 负三;
* percentages: 50% → 百分之五十;  fractions: 3/4 → 四分之三;
* years: 2024年 → 二零二四年 (digit by digit, as people say them);
* dates 2024-05-01 / 2024/5/1 → 二零二四年五月一日;  times 8:05 → 八点零五分;
* temperatures 25°C / 25℃ → 二十五摄氏度;
* long digit strings (phone numbers, codes: 11 digits or more, or a leading 0) digit by digit;
* "2" alone before a measure word → 两 (2个 → 两个), as a speaker says it;
* thousands separators dropped: 1,000 → 一千.

Numbers are read with 二 (not 两) inside larger numbers (2000 → 二千), like the official
normaliser; 10–19 lose the leading 一 (12 → 十二, 150000 → 十五万).
"""
from __future__ import annotations

import re

DIGITS = "零一二三四五六七八九"
_UNITS = ["", "十", "百", "千"]
_GROUPS = ["", "万", "亿", "万亿"]
# Measure words after which a lone 2 is said 两.
_MEASURE_WORDS = "个只位次本件条张天年岁人种点名台辆块把头匹层部双对分项遍斤克米"


def _four_digits(n: int) -> str:
    """0 < n < 10000 → Chinese, with 零 for every gap inside (1005 → 一千零五)."""
    text = ""
    pending_zero = False
    for power in (3, 2, 1, 0):
        digit = n // 10**power % 10
        if digit == 0:
            pending_zero = bool(text)
            continue
        if pending_zero:
            text += "零"
            pending_zero = False
        text += DIGITS[digit] + _UNITS[power]
    return text


def integer_to_chinese(n: int) -> str:
    """An integer as Chinese words: 0 → 零, 12 → 十二, 10086 → 一万零八十六, -5 → 负五."""
    if n < 0:
        return "负" + integer_to_chinese(-n)
    if n == 0:
        return "零"
    if n >= 10**16:  # beyond 万亿: read digit by digit
        return digits_to_chinese(str(n))
    groups = []
    while n:
        groups.append(n % 10000)
        n //= 10000
    text = ""
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            continue
        # A gap before this group (a zero group, or fewer than 4 digits after a higher group)
        if text and (group < 1000 or groups[index + 1] == 0):
            text += "零"
        text += _four_digits(group) + _GROUPS[index]
    text = re.sub("零+", "零", text)
    if text.startswith("一十"):
        text = text[1:]
    return text


def digits_to_chinese(digits: str) -> str:
    """Digit by digit: "2024" → 二零二四."""
    return "".join(DIGITS[int(d)] for d in digits)


def number_to_chinese(text: str) -> str:
    """A number string (optional minus, digits, optional decimals) → Chinese words."""
    sign = ""
    if text.startswith("-"):
        sign, text = "负", text[1:]
    whole, _, frac = text.partition(".")
    if len(whole) > 1 and whole.startswith("0") or len(whole) >= 11:
        words = digits_to_chinese(whole)
    else:
        words = integer_to_chinese(int(whole or "0"))
    if frac:
        words += "点" + digits_to_chinese(frac)
    return sign + words


_NUM = r"-?\d+(?:\.\d+)?"
_RULES: list[tuple[re.Pattern[str], object]] = [
    # 1,000,000 → 1000000
    (re.compile(r"(?<=\d),(?=\d{3}(?!\d))"), ""),
    # dates and times first, while their separators still mean something
    (re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})"),
     lambda m: f"{digits_to_chinese(m[1])}年{integer_to_chinese(int(m[2]))}月{integer_to_chinese(int(m[3]))}日"),
    (re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?"),
     lambda m: f"{integer_to_chinese(int(m[1]))}点"
               + ("" if int(m[2]) == 0 and not m[3] else
                  ("零" if int(m[2]) < 10 else "") + integer_to_chinese(int(m[2])) + "分")
               + (integer_to_chinese(int(m[3])) + "秒" if m[3] else "")),
    (re.compile(r"(\d{2,4})(?=年)"), lambda m: digits_to_chinese(m[1])),
    (re.compile(rf"({_NUM})\s*(?:°C|℃)"), lambda m: number_to_chinese(m[1]) + "摄氏度"),
    (re.compile(rf"({_NUM})\s*[%％]"), lambda m: "百分之" + number_to_chinese(m[1])),
    (re.compile(r"(\d+)/(\d+)"), lambda m: integer_to_chinese(int(m[2])) + "分之" + integer_to_chinese(int(m[1]))),
    (re.compile(rf"(?<![\d.])2(?=[{_MEASURE_WORDS}])"), "两"),
    # a minus sign only directly before a number that does not follow a word or digit
    (re.compile(r"(?<![\w.])-(?=\d)"), "负"),
    (re.compile(r"\d+(?:\.\d+)?"), lambda m: number_to_chinese(m[0])),
]


def normalize_numbers(text: str) -> str:
    """Rewrite every number-like expression of a Chinese text as Chinese characters."""
    text = text.translate({0xFF10 + i: str(i) for i in range(10)})  # full-width digits
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text
