"""List-file parsing: good lines become items, every bad line a `file:line: reason` problem."""
from __future__ import annotations

import os

import pytest

from gsv_edu.data.listfile import read_list


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "wavs").mkdir()
    for name in ("a.wav", "b.flac", "c.wav", "d.wav"):
        (tmp_path / "wavs" / name).write_bytes(b"RIFF")  # existence is all the parser checks
    return tmp_path


def write_list(folder, text: str, name="train.list"):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_good_lines_resolve_paths_and_normalise_languages(corpus):
    absolute = corpus / "wavs" / "c.wav"
    path = write_list(corpus, "\n".join([
        "# a comment",
        "wavs/a.wav|spk1|ZH|你好。",
        "",
        f"{absolute}|spk2|En| Hello there. ",
        "wavs/b.flac|spk1|en|Second.",
    ]) + "\n")
    parsed = read_list(path)
    assert parsed.problems == []
    assert [(i.name, i.language, i.line) for i in parsed.items] == [("a.wav", "zh", 2), ("c.wav", "en", 4),
                                                                   ("b.flac", "en", 5)]
    assert parsed.items[0].wav_path == str(corpus / "wavs" / "a.wav")  # relative to the list's folder
    assert parsed.items[1].wav_path == str(absolute)
    assert parsed.items[1].text == "Hello there."
    assert parsed.items[0].speaker == "spk1"


def test_relative_paths_do_not_depend_on_the_working_directory(corpus, tmp_path_factory, monkeypatch):
    path = write_list(corpus, "wavs/a.wav|s|en|Hi.\n")
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert read_list(os.path.relpath(path)).items[0].wav_path == str(corpus / "wavs" / "a.wav")


def test_every_kind_of_bad_line_is_reported_with_file_and_line(corpus):
    path = write_list(corpus, "\n".join([
        "wavs/a.wav|spk|en|Fine.",              # 1 good
        "wavs/b.flac|spk|en",                   # 2 three fields
        "wavs/c.wav|spk|en|a|b",                # 3 five fields (a '|' in the text)
        "wavs/missing.wav|spk|en|Where?",       # 4 no such file
        "wavs/c.wav|spk|en|   ",                # 5 empty text
        "wavs/d.wav|spk|xx|Hm.",                # 6 unknown language
        "wavs/a.wav|spk|en|Again.",             # 7 duplicate name (of line 1)
        "other/a.wav|spk|en|Same basename.",    # 8 duplicate name too (and missing)
        "wavs/b.flac|spk|ja|こんにちは",          # 9 official but unsupported language
    ]))
    parsed = read_list(path)
    assert [i.line for i in parsed.items] == [1]
    by_line = {p.line: str(p) for p in parsed.problems}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8, 9]  # parsing went on after each problem
    for line, message in by_line.items():
        assert message.startswith(f"{path}:{line}: ")
    assert "found 3" in by_line[2] and "4 fields" in by_line[2]
    assert "found 5" in by_line[3]
    assert "not found" in by_line[4] and "missing.wav" in by_line[4]
    assert "empty text" in by_line[5]
    assert "xx" in by_line[6]
    assert "duplicate" in by_line[7] and "line 1" in by_line[7]
    assert "duplicate" in by_line[8] and "not found" in by_line[8]
    assert "ja" in by_line[9]
    assert {p.line: p.name for p in parsed.problems}[7] == "a.wav"


def test_first_of_two_duplicates_is_kept(corpus):
    parsed = read_list(write_list(corpus, "wavs/a.wav|s|en|One.\nwavs/a.wav|s|en|Two.\n"))
    assert [i.text for i in parsed.items] == ["One."]
    assert len(parsed.problems) == 1 and parsed.problems[0].line == 2


def test_bom_crlf_and_invalid_utf8(corpus):
    path = corpus / "win.list"
    path.write_bytes(b"\xef\xbb\xbfwavs/a.wav|s|en|One.\r\nwavs/b.flac|s|en|\xff\xfe bad\r\n")
    parsed = read_list(path)
    assert [(i.name, i.text) for i in parsed.items] == [("a.wav", "One.")]
    assert parsed.problems[0].line == 2 and "UTF-8" in parsed.problems[0].reason


def test_check_audio_off_skips_the_file_test(corpus):
    parsed = read_list(write_list(corpus, "nowhere.wav|s|en|Hi.\n"), check_audio=False)
    assert len(parsed.items) == 1 and not parsed.problems


def test_missing_list_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such list file"):
        read_list(tmp_path / "nope.list")
    with pytest.raises(IsADirectoryError):
        read_list(tmp_path)
