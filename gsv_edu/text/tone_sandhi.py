"""Mandarin tone sandhi: how tones change in connected speech.

Mirrors `GPT_SoVITS/text/tone_sandhi.py` (class `ToneSandhi`, itself from PaddleSpeech), in a
compact form of the same classic rules (`ToneSandhi.pre_merge_for_modify`,
`ToneSandhi.modified_tone` @48b1a01). Tones are written as the last
character of a pinyin final, "ao3"; 5 is the neutral tone.

Two passes, as in the official:

1. `pre_merge_for_modify(seg)` regroups jieba's (word, part-of-speech) pairs so that the rules
   see the right units: 不 joins the next word (不 + 是 → 不是); 一 joins its neighbours
   (看 + 一 + 看 → 看一看, 一 + 个 → 一个); repeated words join (试 + 试 → 试试); short runs of
   third-tone words join (你 + 好 → 你好); a lone 儿 joins the word before it.
2. `modified_tone(word, pos, finals)` applies, in this order:
   * 不 sandhi: bu4 → bu2 before a 4th tone (不是 bu2 shi4); neutral in the middle of
     V不V / V不C (看不懂 bu5);
   * 一 sandhi: yi1 → yi2 before a 4th tone (一个 yi2), → yi4 before other tones (一天 yi4);
     neutral in V一V (看一看 yi5); unchanged in numbers (一零一) and ordinals (第一);
   * neutral tone: sentence particles (吧 呢 啊 ...), 的/地/得, 们/子 suffixes, direction
     complements (上来, 出去), 个 after a number, reduplicated nouns/verbs (奶奶, 看看), and a
     list of common words whose last syllable is neutral (朋友, 东西, 知道, ...);
   * third-tone sandhi: 3 + 3 → 2 + 3 inside a word (老虎 lao2 hu3, 你好 ni2 hao3), and for
     three- and four-character words following the word's inner structure
     (蒙古/包 → 2 2 3, 纸/老虎 → 3 2 3).

The word lists here are our own, shorter than PaddleSpeech's; they hold common words only.
"""
from __future__ import annotations

import functools

from .symbols import PUNCTUATION

# Words whose last syllable is neutral in standard Mandarin (pypinyin keeps the full tone).
MUST_NEUTRAL_WORDS = set("""
东西 朋友 知道 衣服 先生 告诉 喜欢 清楚 明白 漂亮 地方 时候 事情 意思 眼睛 耳朵 石头 太阳
月亮 窗户 豆腐 葡萄 萝卜 玻璃 消息 休息 故事 关系 认识 觉得 舒服 麻烦 姑娘 头发 脑袋 嘴巴
尾巴 聪明 糊涂 客气 便宜 打扮 打听 答应 商量 琢磨 暖和 凉快 热闹 干净 结实 厉害 老实 点心
月饼 芝麻 钥匙 行李 生意 学生 大夫 丈夫 媳妇 亲戚 伙计 师傅 丫头 骨头 枕头 馒头 舌头 指头
木头 念头 跟头 外头 前头 后头 吓唬 招呼 收拾 折腾 溜达 唠叨 咳嗽 哆嗦 合同 胡同 衙门 规矩
和尚 喇叭 琵琶 耽误 别扭 含糊 马虎 窝囊 冤枉 凑合 将就 利索 痛快 黄瓜 葫芦 核桃 石榴 狐狸
骆驼 蛤蟆 刺猬 蘑菇 棉花 庄稼 粮食 衣裳 爱人 出息 打算 打量 大方 耳环 风筝 工夫 功夫 怪物
闺女 护士 机灵 记性 家伙 嫁妆 见识 讲究 街坊 戒指 精神 困难 苦头 邋遢 篱笆 力气 连累 铃铛
啰嗦 萝卜 买卖 忙活 眉毛 迷糊 名字 模糊 磨蹭 牌楼 脾气 屁股 便宜 亲家 勤快 晚上 早上 态度
提防 跳蚤 妥当 委屈 稀罕 先生 相声 笑话 心思 学问 秀才 牙碜 烟筒 眼睫 钥匙 衣服 应酬 有趣
云彩 运气 扎实 张罗 丈人 账房 照应 芝麻 指甲 主意 转悠 庄稼 状元 字号 自在 祖宗 作坊 琢磨
""".split())

# Words that look like a neutral-tone pattern (…子, reduplication) but keep their tones.
MUST_NOT_NEUTRAL_WORDS = set("""
男子 女子 分子 原子 量子 电子 离子 质子 中子 粒子 因子 孔子 老子 君子 天子 太子 才子 学子
莲子 瓜子 石子 卵子 精子 种子 人人 家家 天天 年年 个个 刚刚 常常 往往 渐渐 偏偏 哈哈 整整
""".split())

# Sentence-final particles that are always neutral.
_PARTICLES = set("吧呢啊呐噻嘛吖嗨哦哒额滴哩哟喽啰耶喔诶")
_STRUCTURAL = set("的地得")
_ASPECT = set("了着过")


def _tone(final: str) -> str:
    """The tone digit of a final ("ao3" → "3"), or "" for a non-syllable (punctuation)."""
    return final[-1] if final and final[-1] in "12345" else ""


def _with_tone(final: str, tone: str) -> str:
    """`final` with its tone replaced ("ao3", "2" → "ao2"); non-syllables pass unchanged."""
    return final[:-1] + tone if _tone(final) else final


def _all_third_tone(finals: list[str]) -> bool:
    return bool(finals) and all(_tone(f) == "3" for f in finals)


def _is_reduplication(word: str) -> bool:
    return len(word) == 2 and word[0] == word[1]


@functools.lru_cache(maxsize=4096)
def _finals_of(word: str) -> tuple[str, ...]:
    """Plain (dictionary) finals with tones of a word, as the merging rules need them."""
    from .chinese import pinyin  # here, not at the top: chinese imports this module (a cycle)

    return tuple(pinyin(word, "FINALS_TONE3"))


def split_word(word: str) -> list[str]:
    """Cut a word in two around its shortest search-engine sub-word (jieba `cut_for_search`):
    蒙古包 → [蒙古, 包], 纸老虎 → [纸, 老虎]. Used to find a compound's inner structure."""
    from .chinese import get_jieba  # here, not at the top: chinese imports this module (a cycle)

    subwords = sorted(get_jieba().cut_for_search(word), key=len)  # stable: ties keep order
    first = subwords[0]
    if word.find(first) == 0:
        return [first, word[len(first):]]
    return [word[:-len(first)], first]


class ToneSandhi:
    """The official `ToneSandhi` interface: `pre_merge_for_modify` and `modified_tone`."""

    # ---- pass 1: regroup the segmentation ---------------------------------------------
    @staticmethod
    def _merge_bu(seg: list[tuple[str, str]]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        pending_bu = False
        for word, pos in seg:
            if pending_bu:
                word, pending_bu = "不" + word, False
            if word == "不":
                pending_bu = True
                continue
            out.append((word, pos))
        if pending_bu:
            out.append(("不", "d"))
        return out

    @staticmethod
    def _merge_yi(seg: list[tuple[str, str]]) -> list[tuple[str, str]]:
        # V 一 V → one word (看 一 看 → 看一看)
        out: list[list[str]] = []
        i = 0
        while i < len(seg):
            word, pos = seg[i]
            if (word == "一" and out and i + 1 < len(seg)
                    and out[-1][0] == seg[i + 1][0] and out[-1][1] == "v"):
                out[-1][0] += "一" + seg[i + 1][0]
                i += 2
                continue
            out.append([word, pos])
            i += 1
        # a lone 一 joins the next word (一 个 → 一个)
        merged: list[tuple[str, str]] = []
        for word, pos in out:
            if merged and merged[-1][0] == "一":
                merged[-1] = ("一" + word, merged[-1][1])
            else:
                merged.append((word, pos))
        return merged

    @staticmethod
    def _merge_reduplication(seg: list[tuple[str, str]]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for word, pos in seg:
            if out and out[-1][0] == word:
                out[-1] = (word + word, out[-1][1])
            else:
                out.append((word, pos))
        return out

    @staticmethod
    def _merge_third_tones(seg: list[tuple[str, str]], at_boundary: bool) -> list[tuple[str, str]]:
        """Join two neighbours into one sandhi unit of at most 3 characters when both words are
        entirely third tone (你 好 → 你好; `at_boundary=False`), or when third tones meet at
        their boundary (买 雨伞 → 买雨伞; `at_boundary=True`). A word joined once is not
        joined again in the same pass; reduplications (好好) stay apart."""
        out: list[tuple[str, str]] = []
        merged_last = False
        for word, pos in seg:
            if out and not merged_last and len(out[-1][0]) + len(word) <= 3 \
                    and not _is_reduplication(out[-1][0]):
                prev_finals, finals = list(_finals_of(out[-1][0])), list(_finals_of(word))
                if at_boundary:
                    join = _tone(prev_finals[-1]) == "3" and _tone(finals[0]) == "3"
                else:
                    join = _all_third_tone(prev_finals) and _all_third_tone(finals)
                if join:
                    out[-1] = (out[-1][0] + word, out[-1][1])
                    merged_last = True
                    continue
            out.append((word, pos))
            merged_last = False
        return out

    @staticmethod
    def _merge_er(seg: list[tuple[str, str]]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for word, pos in seg:
            if word == "儿" and out and out[-1][0] not in PUNCTUATION:
                out[-1] = (out[-1][0] + word, out[-1][1])
            else:
                out.append((word, pos))
        return out

    def pre_merge_for_modify(self, seg: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Regroup jieba's (word, pos) pairs into the units the tone rules work on."""
        seg = self._merge_bu(seg)
        seg = self._merge_yi(seg)
        seg = self._merge_reduplication(seg)
        seg = self._merge_third_tones(seg, at_boundary=False)
        seg = self._merge_third_tones(seg, at_boundary=True)
        return self._merge_er(seg)

    # ---- pass 2: change the tones of one word ------------------------------------------
    @staticmethod
    def _bu_sandhi(word: str, finals: list[str]) -> list[str]:
        if len(word) == 3 and word[1] == "不":  # 看不懂, 来不及
            finals[1] = _with_tone(finals[1], "5")
            return finals
        for i, char in enumerate(word[:-1]):
            if char == "不" and _tone(finals[i + 1]) == "4":  # 不是, 不要
                finals[i] = _with_tone(finals[i], "2")
        return finals

    @staticmethod
    def _yi_sandhi(word: str, finals: list[str]) -> list[str]:
        if "一" in word and all(c.isnumeric() for c in word if c != "一"):
            return finals  # a number: 一, 一零一, 十一
        if len(word) == 3 and word[1] == "一" and word[0] == word[2]:  # 看一看
            finals[1] = _with_tone(finals[1], "5")
        elif word.startswith("第一"):  # ordinal: keeps yi1
            finals[1] = _with_tone(finals[1], "1")
        else:
            for i, char in enumerate(word[:-1]):
                if char != "一":
                    continue
                if _tone(finals[i + 1]) == "4":  # 一个, 一样
                    finals[i] = _with_tone(finals[i], "2")
                elif word[i + 1] not in PUNCTUATION:  # 一天, 一起, 一把
                    finals[i] = _with_tone(finals[i], "4")
        return finals

    @staticmethod
    def _neutral_sandhi(word: str, pos: str, finals: list[str]) -> list[str]:
        # reduplicated nouns, verbs, adjectives: 奶奶, 看看
        if word not in MUST_NOT_NEUTRAL_WORDS and pos[:1] in {"n", "v", "a"}:
            for j in range(1, len(word)):
                if word[j] == word[j - 1]:
                    finals[j] = _with_tone(finals[j], "5")
        ge = word.find("个")
        last = word[-1]
        if last in _PARTICLES or last in _STRUCTURAL:
            finals[-1] = _with_tone(finals[-1], "5")
        elif len(word) == 1 and word in _ASPECT and pos in {"ul", "uz", "ug"}:
            finals[-1] = _with_tone(finals[-1], "5")
        elif len(word) > 1 and last in "们子" and pos in {"r", "n"} and word not in MUST_NOT_NEUTRAL_WORDS:
            finals[-1] = _with_tone(finals[-1], "5")
        elif len(word) > 1 and last in "上下里" and pos in {"s", "l", "f"}:
            finals[-1] = _with_tone(finals[-1], "5")
        elif len(word) > 1 and last in "来去" and word[-2] in "上下进出回过起开":
            finals[-1] = _with_tone(finals[-1], "5")
        elif word == "个" or (ge >= 1 and (word[ge - 1].isnumeric() or word[ge - 1] in "几有两半多各整每做是")):
            finals[ge] = _with_tone(finals[ge], "5")
        elif word in MUST_NEUTRAL_WORDS or word[-2:] in MUST_NEUTRAL_WORDS:
            finals[-1] = _with_tone(finals[-1], "5")
        # the same list inside compounds: 老朋友 → 老 / 朋友
        if len(word) > 2:
            left, right = split_word(word)
            for start, part in ((0, left), (len(left), right)):
                if part and (part in MUST_NEUTRAL_WORDS or part[-2:] in MUST_NEUTRAL_WORDS):
                    end = start + len(part) - 1
                    finals[end] = _with_tone(finals[end], "5")
        return finals

    @staticmethod
    def _three_sandhi(word: str, finals: list[str]) -> list[str]:
        if len(word) == 2 and _all_third_tone(finals):  # 老虎, 你好
            finals[0] = _with_tone(finals[0], "2")
        elif len(word) == 3:
            left, _ = split_word(word)
            if _all_third_tone(finals):
                if len(left) == 2:  # 蒙古/包 → 2 2 3
                    finals[0] = _with_tone(finals[0], "2")
                    finals[1] = _with_tone(finals[1], "2")
                else:  # 纸/老虎 → 3 2 3
                    finals[1] = _with_tone(finals[1], "2")
            else:
                parts = [finals[:len(left)], finals[len(left):]]
                for k, part in enumerate(parts):
                    if len(part) == 2 and _all_third_tone(part):  # 所有/人 → 2 3 2
                        part[0] = _with_tone(part[0], "2")
                    elif (k == 1 and part and not _all_third_tone(part)
                          and _tone(part[0]) == "3" and _tone(parts[0][-1]) == "3"):
                        parts[0][-1] = _with_tone(parts[0][-1], "2")  # 好/喜欢 → 2 3 5
                finals = parts[0] + parts[1]
        elif len(word) == 4:  # two halves: 总统选举 → 总统 / 选举
            for half in (slice(0, 2), slice(2, 4)):
                if _all_third_tone(finals[half]):
                    finals[half.start] = _with_tone(finals[half.start], "2")
        return finals

    def modified_tone(self, word: str, pos: str, finals: list[str]) -> list[str]:
        """Apply 不, 一, neutral-tone and third-tone sandhi to the finals of one word."""
        finals = list(finals)
        finals = self._bu_sandhi(word, finals)
        finals = self._yi_sandhi(word, finals)
        finals = self._neutral_sandhi(word, pos, finals)
        return self._three_sandhi(word, finals)
