"""Packaging: a non-editable install (`pip install .`, a wheel) must carry every data file the library reads."""
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "gsv_edu"


def test_package_data_covers_every_non_python_file():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["gsv_edu"]
    shipped = {p for pattern in patterns for p in PACKAGE.glob(pattern) if p.is_file()}
    data_files = {p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
                  and "__pycache__" not in p.parts}
    missing = sorted(str(p.relative_to(REPO)) for p in data_files - shipped)
    assert not missing, f"not in [tool.setuptools.package-data] of pyproject.toml: {missing}"
    # the files the library opens at run time, by name
    for needed in ("configs/s2.json", "text/data/symbols_v2.txt", "assets/hubert_small/model.safetensors",
                   "assets/sovits_tiny/sovits_tiny.pth", "assets/gpt_tiny/gpt_tiny.ckpt"):
        assert PACKAGE / needed in shipped, needed
