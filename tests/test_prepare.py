"""Data preparation: official layout and formats, bad items reported, resumable, atomic.

The content encoder is the tiny random HuBERT of the fixtures (width 64), so the features are
meaningless but have the real shapes; the text front-end is the real one (en + zh).
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.io import wavfile

import gsv_edu.data.prepare as prep
import gsv_edu.prepare as prepare_cli
from gsv_edu.data.layout import read_prepare_info
from gsv_edu import audio
from gsv_edu.hubert import HuBERT, features
from gsv_edu.text.symbols import symbol_to_id

HUBERT_TINY = os.path.join(os.path.dirname(__file__), "fixtures", "sovits_v2", "hubert_tiny")
GOOD = ["a.wav", "b.flac", "c.wav"]


def tone(seconds, sr, freq, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def make_corpus(folder):
    """Three good recordings (32, 44.1 and 16 kHz; wav and flac) and every kind of bad one."""
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "a.wav", tone(1.0, 32000, 220), 32000)
    sf.write(folder / "b.flac", tone(1.2, 44100, 330), 44100)
    sf.write(folder / "c.wav", tone(0.9, 16000, 180), 16000)
    sf.write(folder / "short.wav", tone(0.4, 32000, 200), 32000)
    sf.write(folder / "silent.wav", np.zeros(32000, np.float32), 32000)
    sf.write(folder / "loud.wav", tone(1.0, 32000, 200, amp=3.0), 32000, subtype="FLOAT")
    sf.write(folder / "empty.wav", np.zeros(0, np.float32), 32000)
    (folder / "corrupt.wav").write_bytes(b"this is not audio at all" * 10)
    for name in ("emoji.wav", "raise.wav", "lang.wav", "notext.wav"):
        shutil.copy(folder / "a.wav", folder / name)
    lines = [
        "# good lines, then every kind of bad one",
        "a.wav|spk|en|Hello world, this is a test.",   # 2
        "b.flac|spk|zh|你好，世界。",                    # 3
        "c.wav|spk|EN|Short one.",                      # 4
        "short.wav|spk|en|Too short.",                  # 5
        "silent.wav|spk|en|Nothing here.",              # 6
        "loud.wav|spk|en|Far too loud.",                # 7
        "empty.wav|spk|en|No samples.",                 # 8
        "corrupt.wav|spk|en|Garbage.",                  # 9
        "missing.wav|spk|en|Where is it?",              # 10
        "emoji.wav|spk|zh|😀",                           # 11 nothing to speak
        "raise.wav|spk|en|RAISE ME",                    # 12 the front-end raises (patched)
        "lang.wav|spk|xx|Unknown language.",            # 13
        "notext.wav|spk|en|",                           # 14
        "a.wav|spk|en|Duplicate name.",                 # 15
        "only|three|fields",                            # 16
    ]
    (folder / "train.list").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "good.list").write_text("\n".join(lines[1:4]) + "\n", encoding="utf-8")
    return folder


EXPECTED_BAD = {  # line → words its reason must contain
    5: "too short", 6: "silent", 7: "peak", 8: "no samples", 9: "cannot read", 10: "not found",
    11: "no phones to speak", 12: "front-end failed", 13: "xx", 14: "empty text", 15: "duplicate", 16: "found 3",
}


@pytest.fixture(scope="module")
def hubert():
    return HuBERT.from_pretrained(HUBERT_TINY)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def patched_clean_text(monkeypatch):
    """The real front-end, except that the text "RAISE ME" makes it raise."""
    real = prep.clean_text  # the name data.prepare calls

    def clean_text(t, language, version="v2"):
        if t == "RAISE ME":
            raise RuntimeError("simulated front-end failure")
        return real(t, language, version)

    monkeypatch.setattr(prep, "clean_text", clean_text)


@pytest.fixture(scope="module")
def prepared(corpus, hubert, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    with pytest.MonkeyPatch.context() as mp:
        patched_clean_text(mp)
        report = prep.prepare(corpus / "train.list", out, hubert=hubert, hubert_name="tiny", progress=False)
    return out, report


def test_good_items_in_official_layout(prepared, corpus, hubert):
    out, report = prepared
    assert report.prepared == GOOD
    lines = (out / "2-name2text.txt").read_text(encoding="utf-8").splitlines()
    assert [line.split("\t")[0] for line in lines] == GOOD
    table = symbol_to_id("v2")
    for line in lines:
        name, phones, word2ph, norm_text = line.split("\t")
        phones = phones.split(" ")
        assert all(p in table for p in phones)
        if name == "b.flac":
            assert eval(word2ph) == [2, 2, 1, 2, 2, 1] and sum(eval(word2ph)) == len(phones)  # noqa: S307
            assert phones[:4] == ["n", "i2", "h", "ao3"]
        else:
            assert word2ph == "None"
    for name in GOOD:
        y = audio.load_audio(corpus / name, 32000)  # [N32]
        # 5-wav32k/{name}: a 16-bit WAV at 32 kHz under the list's basename (also for .flac)
        assert (out / "5-wav32k" / name).read_bytes()[:4] == b"RIFF"
        sr, x = wavfile.read(out / "5-wav32k" / name)
        assert sr == 32000 and x.dtype == np.int16 and len(x) == len(y)
        peak = np.abs(y).max()  # the official loudness mix and int16 cast, in its float32 order: bit for bit
        np.testing.assert_array_equal(x, ((y / peak * (0.95 * 0.5 * 32768)) + (0.5 * 32768) * y).astype("int16"))
        # 4-cnhubert/{name}.pt: float32 [1, D, T] with HuBERT's frame count
        ssl = torch.load(out / "4-cnhubert" / f"{name}.pt", weights_only=True)
        n16 = len(features.hubert_input(y))
        assert ssl.dtype == torch.float32 and ssl.shape == (1, 64, (n16 - 400) // 320 + 1)
        assert ssl.shape[-1] in (len(y) // 640, len(y) // 640 - 1)  # spectrogram frames or one fewer
        torch.testing.assert_close(ssl, features.training_features(hubert, y), rtol=0, atol=0)
    info = json.loads((out / "prepare_info.json").read_text())
    assert info["ssl_dim"] == 64 and info["content_encoder"] == "tiny" and info["items"] == 3
    assert not (out / "6-name2semantic.tsv").exists() and "skipped" in report.semantic_note


def test_bad_items_listed_with_reasons(prepared, corpus):
    out, report = prepared
    rows = (out / "prepare_report.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "where\tname\treason"
    by_line = {}
    for row in rows[1:]:
        where, name, reason = row.split("\t")
        by_line[int(where.rsplit(":", 1)[1])] = reason
        assert where.startswith(str(corpus / "train.list") + ":")
    assert sorted(by_line) == sorted(EXPECTED_BAD)
    for line, words in EXPECTED_BAD.items():
        assert words in by_line[line], (line, by_line[line])
    summary = report.summary()
    assert "prepared 3 of 15" in summary and "12 skipped" in summary
    assert all(f"train.list:{line}:" in summary for line in EXPECTED_BAD)
    names_with_outputs = {p.name[:-3] for p in (out / "4-cnhubert").iterdir()}
    assert names_with_outputs == set(GOOD) and set(os.listdir(out / "5-wav32k")) == set(GOOD)


def test_second_run_skips_everything(prepared, corpus, hubert):
    out, first = prepared
    files = [out / "4-cnhubert" / f"{n}.pt" for n in GOOD] + [out / "5-wav32k" / n for n in GOOD]
    mtimes = [f.stat().st_mtime_ns for f in files]
    text_before = (out / "2-name2text.txt").read_text(encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        patched_clean_text(mp)
        again = prep.prepare(corpus / "train.list", out, hubert=hubert, hubert_name="tiny", progress=False)
    assert again.computed["text"] == again.computed["audio"] == 0
    assert again.reused["audio"] == 3
    assert again.reused["text"] == 3 + 5  # also the 5 items whose text was fine but audio bad (lines 5-9)
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    assert (out / "2-name2text.txt").read_text(encoding="utf-8") == text_before
    assert [b.where for b in again.bad] == [b.where for b in first.bad]


def test_interrupted_run_keeps_finished_items(corpus, hubert, tmp_path, monkeypatch):
    real_audio_step = prep._audio_step
    calls = []

    def audio_step_interrupted_at_second_item(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_audio_step(*args, **kwargs)

    monkeypatch.setattr(prep, "_audio_step", audio_step_interrupted_at_second_item)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare(corpus / "good.list", tmp_path, hubert=hubert, progress=False)
    assert os.listdir(tmp_path / "4-cnhubert") == ["a.wav.pt"]
    assert os.listdir(tmp_path / "5-wav32k") == ["a.wav"]
    assert sorted(os.listdir(tmp_path / "items" / "2-name2text")) == ["a.wav.json", "b.flac.json"]
    assert not [f for _, _, fs in os.walk(tmp_path) for f in fs if f.endswith(".tmp")]

    monkeypatch.setattr(prep, "_audio_step", real_audio_step)
    report = prep.prepare(corpus / "good.list", tmp_path, hubert=hubert, progress=False)
    assert report.prepared == GOOD
    assert (report.reused["audio"], report.computed["audio"]) == (1, 2)
    assert (report.reused["text"], report.computed["text"]) == (2, 1)


def test_changed_text_is_recomputed(corpus, hubert, tmp_path):
    prep.prepare(corpus / "good.list", tmp_path, hubert=hubert, progress=False)
    edited = corpus / "edited.list"
    edited.write_text((corpus / "good.list").read_text(encoding="utf-8").replace("Short one.", "Three more words."),
                      encoding="utf-8")
    report = prep.prepare(edited, tmp_path, hubert=hubert, progress=False)
    assert (report.computed["text"], report.reused["text"], report.reused["audio"]) == (1, 2, 3)
    assert "TH R IY1" in (tmp_path / "2-name2text.txt").read_text(encoding="utf-8")


def test_semantic_codes_with_a_sovits_model(corpus, hubert, tmp_path):
    from gsv_edu.config import Config
    from gsv_edu.sovits.models import SynthesizerTrn

    cfg = Config.preset("tiny")
    kwargs = cfg.model_kwargs()
    kwargs["ssl_dim"] = 64
    torch.manual_seed(0)
    sovits = SynthesizerTrn(cfg.spec_channels, cfg.segment_frames, **kwargs).eval()
    codebook = sovits.quantizer.vq.layers[0]._codebook
    codebook.embed.normal_()
    codebook.inited.fill_(1)  # a fresh codebook would run k-means first (official init_embed_)
    report = prep.prepare(corpus / "good.list", tmp_path, hubert=hubert, sovits=sovits, progress=False)
    lines = (tmp_path / "6-name2semantic.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "item_name\tsemantic_audio"
    assert [line.split("\t")[0] for line in lines[1:]] == GOOD
    for line in lines[1:]:
        name, codes = line.split("\t")
        ssl = torch.load(tmp_path / "4-cnhubert" / f"{name}.pt", weights_only=True)
        with torch.no_grad():
            expected = sovits.extract_latent(ssl)[0, 0].tolist()
        assert [int(c) for c in codes.split(" ")] == expected and len(expected) == ssl.shape[-1] // 2
    assert report.computed["semantic"] == 3
    again = prep.prepare(corpus / "good.list", tmp_path, hubert=hubert, sovits=sovits, progress=False)
    assert again.reused["semantic"] == 3 and again.computed["semantic"] == 0
    # a SoVITS model whose content width differs from the encoder's is refused up front
    kwargs["ssl_dim"] = 32
    other = SynthesizerTrn(cfg.spec_channels, cfg.segment_frames, **kwargs)
    with pytest.raises(prep.PrepareError, match="expects 32-dim"):
        prep.prepare(corpus / "good.list", tmp_path, hubert=hubert, sovits=other, progress=False)


def test_other_content_encoder_in_same_folder_is_refused(corpus, hubert, tmp_path):
    prep.prepare(corpus / "good.list", tmp_path, hubert=hubert, progress=False)
    other = HuBERT.from_pretrained(HUBERT_TINY)
    with torch.no_grad():
        next(other.parameters()).add_(0.1)
    with pytest.raises(prep.PrepareError, match="holds content features from"):
        prep.prepare(corpus / "good.list", tmp_path, hubert=other, progress=False)


def test_nothing_usable_fails_with_report(corpus, tmp_path, capsys):
    bad = tmp_path / "bad.list"
    bad.write_text(f"{corpus / 'silent.wav'}|s|en|Hi there.\n{corpus / 'nope.wav'}|s|en|Hi.\n", encoding="utf-8")
    code = prepare_cli.main(["--list", str(bad), "--out", str(tmp_path / "out"), "--hubert", HUBERT_TINY, "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert "nothing usable" in captured.err and "silent" in captured.out
    assert len((tmp_path / "out" / "prepare_report.tsv").read_text().splitlines()) == 3


def test_command_line(corpus, tmp_path, capsys):
    code = prepare_cli.main(["--list", str(corpus / "good.list"), "--out", str(tmp_path), "--hubert", HUBERT_TINY,
                      "--no-progress"])
    assert code == 0
    assert "prepared 3 of 3" in capsys.readouterr().out
    info = read_prepare_info(tmp_path)
    assert info["content_encoder"] == "hubert_tiny" and info["ssl_dim"] == 64


def test_semantic_codes_from_an_official_export_file(corpus, tmp_path):
    """`--sovits CKPT` with an official-format export (tiny, content width 768 as officially)."""
    from gsv_edu.hubert import HuBERTConfig

    export = os.path.join(os.path.dirname(HUBERT_TINY), "export", "tiny_v2_e4_s8.pth")
    torch.manual_seed(0)
    wide = HuBERT(HuBERTConfig(conv_dim=(32,) * 7, hidden_size=768, num_hidden_layers=1, num_attention_heads=12,
                               intermediate_size=64)).eval()
    report = prep.prepare(corpus / "good.list", tmp_path, hubert=wide, sovits=export, progress=False)
    assert report.computed["semantic"] == 3
    rows = (tmp_path / "6-name2semantic.tsv").read_text(encoding="utf-8").splitlines()[1:]
    frames = {n: torch.load(tmp_path / "4-cnhubert" / f"{n}.pt", weights_only=True).shape[-1] for n in GOOD}
    for row in rows:
        name, codes = row.split("\t")
        codes = [int(c) for c in codes.split(" ")]
        assert len(codes) == frames[name] // 2 and all(0 <= c < 1024 for c in codes)
    assert read_prepare_info(tmp_path)["sovits"]["source"] == export
