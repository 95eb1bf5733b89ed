"""GPT-SoVITS list files: one utterance per line, `wav_path|speaker|language|text`.

Mirrors how `GPT_SoVITS/prepare_datasets/1-get-text.py` and `2-get-hubert-wav32k.py` read the
list at 48b1a01 (their module-level loops over `line.split("|")`; the language table
`language_v1_to_language_v2` of 1-get-text.py):

- the file is UTF-8 text, one utterance per line, four fields separated by `|`;
- the utterance **name** is the basename of `wav_path`; every prepared file is keyed by it
  (`4-cnhubert/{name}.pt`, `5-wav32k/{name}`, the first column of `2-name2text.txt`);
- language codes: ZH/zh → zh, EN/en/En → en (JP/ja, KO/ko, yue are official languages our text
  front-end does not support yet); anything else is skipped by the official script with a
  warning.

What we do differently, all for clearer errors (no prepared output changes):

- blank lines and lines starting with `#` are ignored (the official script would fail on them);
- a relative `wav_path` is resolved against the list file's folder (the official scripts use
  it relative to the current directory, or join it with the web UI's "audio folder" field);
- every problem is collected, with `file:line: reason`, instead of stopping at (or silently
  skipping) the first: wrong field count, missing audio file, empty text, unknown or
  unsupported language, a name used twice (the second line with the same basename would
  overwrite the first one's prepared files in the official layout);
- a UTF-8 byte-order mark at the start and Windows line ends are accepted.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gsv_edu.text.language import check_implemented, normalize_language

__all__ = ["ListItem", "ListProblem", "ListFile", "read_list", "parse_list_text"]

FIELD_SEPARATOR = "|"
FIELDS = ("wav_path", "speaker", "language", "text")


@dataclass(frozen=True)
class ListItem:
    """One good line of a list file."""

    name: str        # basename of wav_path: the key of every prepared file
    wav_path: str    # absolute path of the audio file
    speaker: str     # as written (the official SoVITS training does not use it)
    language: str    # normalised: "zh" or "en"
    text: str        # as written, stripped of surrounding spaces
    line: int        # 1-based line number in the list file


@dataclass(frozen=True)
class ListProblem:
    """A line that cannot be used, and why. `str(problem)` is `file:line: reason`."""

    file: str
    line: int
    reason: str
    name: str = ""   # the utterance name, when the line got far enough to have one

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class ListFile:
    """A parsed list file: the usable items (in file order) and every problem found."""

    path: str
    items: list[ListItem] = field(default_factory=list)
    problems: list[ListProblem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)


def _normalize_language(code: str) -> str:
    """List-file language code → "zh"/"en"; ValueError (with the reason) for anything else."""
    language = normalize_language(code)  # ValueError for a code the official lists do not use
    if language == "auto":  # a gsv_edu inference mode, not a list-file code (1-get-text.py skips it)
        raise ValueError(f"language {code!r} is not a list-file code; write zh or en for each line")
    try:
        return check_implemented(language)
    except NotImplementedError as e:  # ja, ko, yue: official, not implemented here
        raise ValueError(str(e)) from None


def read_list(path: str | os.PathLike, *, check_audio: bool = True) -> ListFile:
    """Parse the list file at `path`; never stops at the first problem.

    `check_audio`: report lines whose audio file does not exist (default). Relative audio
    paths are resolved against the folder of the list file.
    Raises FileNotFoundError / IsADirectoryError only when the list file itself cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such list file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; expected a list file (wav_path|speaker|language|text)")
    return parse_list_text(path.read_bytes(), str(path), base_dir=str(path.resolve().parent),
                           check_audio=check_audio)


def parse_list_text(data: bytes | str, source: str = "<list>", base_dir: str | None = None,
                    *, check_audio: bool = True) -> ListFile:
    """Parse list-file contents (`data`); `source` names the file in messages.

    Relative audio paths are resolved against `base_dir` (default: the current folder).
    """
    base_dir = base_dir or os.getcwd()
    if isinstance(data, str):
        data = data.encode("utf-8")
    if data.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte-order mark (Windows Notepad)
        data = data[3:]
    result = ListFile(path=source)
    first_line_of: dict[str, int] = {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")

        def problem(reason: str, name: str = "") -> None:
            result.problems.append(ListProblem(source, number, reason, name))

        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            problem(f"not valid UTF-8 (byte {e.start}); save the list file as UTF-8")
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(FIELD_SEPARATOR)
        if len(fields) != len(FIELDS):
            problem(f"expected 4 fields separated by '|' (wav_path|speaker|language|text), found {len(fields)}")
            continue
        wav, speaker, language, text = (f.strip() for f in fields)
        if not wav:
            problem("empty wav_path")
            continue
        name = os.path.basename(wav)
        wav_path = os.path.normpath(os.path.join(base_dir, wav))  # an absolute wav is kept as is
        reasons = []
        if check_audio and not os.path.isfile(wav_path):
            reasons.append(f"audio file not found: {wav_path}")
        if not text:
            reasons.append("empty text")
        try:
            language = _normalize_language(language)
        except ValueError as e:
            reasons.append(str(e) if language else "empty language field")
        if name in first_line_of:
            reasons.append(f"duplicate utterance name {name!r} (first used on line {first_line_of[name]}); "
                           f"prepared files are keyed by the audio file's basename, so names must be unique")
        else:
            first_line_of[name] = number
        if reasons:
            problem("; ".join(reasons), name)
            continue
        result.items.append(ListItem(name, wav_path, speaker, language, text, number))
    return result
