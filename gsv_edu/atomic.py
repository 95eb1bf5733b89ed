"""Atomic file writes: a file is either absent, or complete — never half written.

Every writer here writes to a temporary file in the *same folder* as the target (so the final
rename never crosses file systems), flushes and fsyncs it, and then `os.replace`s it onto the
target name. `os.replace` is atomic on POSIX and Windows, so a run interrupted at any moment
(Ctrl-C, out of memory, power cut) leaves either the old file or the new one, and at worst a
stray `.{name}.*.tmp` file that the next write ignores.

The official GPT-SoVITS writes its prepared data and checkpoints in place (`torch.save(obj,
path)`, `open(path, "w")`), so an interrupted run can leave truncated files that later crash
training; this module is our deliberate difference (it changes no output).

API:
- `atomic_write(path, mode="wb")`: context manager yielding an open file object.
- `atomic_write_bytes(path, data)`, `atomic_write_text(path, text)`.
- `atomic_save(obj, path)`: `torch.save` through a temporary file.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator

import torch

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "atomic_save"]


def _file_mode() -> int:
    """The permissions a plain `open(path, "w")` would give now (mkstemp would give 0o600).

    Read at each write, not at import, and without changing the umask: on Linux from
    /proc/self/status; elsewhere (no such line) by the mode that `os.open` gives a probe file,
    which the umask has already masked.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    fd, probe = tempfile.mkstemp()
    os.close(fd)
    try:
        os.unlink(probe)
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        os.close(fd)
        return os.stat(probe).st_mode & 0o777
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None,
                 newline: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside `path`; on a clean exit of the `with` block, move it onto `path`.

    If the block raises, the temporary file is removed and `path` is left as it was.
    `mode` is "wb" (bytes) or "w" (text; `encoding` defaults to UTF-8).

        with atomic_write("out/2-name2text.txt", "w") as f:
            f.write(...)
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', not {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        os.chmod(tmp, _file_mode())
        if mode == "w":
            f = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline)
        else:
            f = os.fdopen(fd, "wb")
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` atomically (newlines written as given, no platform translation)."""
    with atomic_write(path, "w", encoding=encoding, newline="") as f:
        f.write(text)


def atomic_save(obj, path: str | os.PathLike) -> None:
    """`torch.save(obj, path)`, atomically: a checkpoint is never left half written."""
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)
