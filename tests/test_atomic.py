"""Atomic writes: a target file is either the old one or the complete new one, never partial."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
import torch

from gsv_edu.atomic import atomic_save, atomic_write, atomic_write_bytes, atomic_write_text


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("interrupted while saving")


def test_roundtrips(tmp_path):
    atomic_save({"w": torch.arange(3)}, tmp_path / "sub" / "ckpt.pth")  # folders are created
    assert torch.equal(torch.load(tmp_path / "sub" / "ckpt.pth")["w"], torch.arange(3))
    atomic_write_text(tmp_path / "t.txt", "a\tb\r\nc\n")
    assert (tmp_path / "t.txt").read_bytes() == "a\tb\r\nc\n".encode()  # no newline translation
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_failure_mid_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "ckpt.pth"
    atomic_save({"step": 1}, target)
    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_save({"step": 2, "bad": Unpicklable(), "big": torch.zeros(10000)}, target)
    assert torch.load(target) == {"step": 1}
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(tmp_path / "new.txt", "w") as f:
            f.write("half of it")
            raise KeyboardInterrupt
    assert not (tmp_path / "new.txt").exists()
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pth"]


def test_permissions_like_a_plain_open(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "x")
    with open(tmp_path / "b.txt", "w") as f:
        f.write("x")
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(tmp_path / "a.txt") == mode(tmp_path / "b.txt")


def test_import_leaves_the_umask_alone_and_writes_follow_the_current_one(tmp_path):
    """The file mode is read at each write (not fixed at import, and without setting the umask)."""
    code = (
        "import os, stat, sys\n"
        "calls = []\n"
        "real = os.umask\n"
        "os.umask = lambda m: calls.append(m) or real(m)\n"
        "import gsv_edu.atomic as a\n"
        "assert calls == [], calls\n"
        "os.umask = real\n"
        "for umask in (0o027, 0o002):\n"
        "    os.umask(umask)\n"
        "    path = os.path.join(sys.argv[1], oct(umask))\n"
        "    a.atomic_write_text(path, 'x')\n"
        "    print(oct(stat.S_IMODE(os.stat(path).st_mode)))\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0o640", "0o664"]


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        with atomic_write("x", "a"):
            pass
