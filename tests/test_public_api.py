"""The public surface: every lazily exported name and every console script resolves to the object
its owner module defines (a moved or renamed module breaks these, not a user's import)."""
from __future__ import annotations

import importlib
import pathlib
import pytest

import gsv_edu

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11 (the project supports 3.10 too)

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_lazy_export_is_the_owner_modules_object():
    # importing a submodule sets an attribute of the package: no export may share a submodule's name
    for module in ("gsv_edu.prepare", "gsv_edu.infer", "gsv_edu.tts", "gsv_edu.train_gpt", "gsv_edu.weights"):
        importlib.import_module(module)
    for name, module in gsv_edu._LAZY_EXPORTS.items():
        assert getattr(gsv_edu, name) is getattr(importlib.import_module(module), name), name
    assert set(gsv_edu.__all__) == {"__version__", *gsv_edu._LAZY_EXPORTS}


def test_the_names_of_the_first_release_are_still_exported():
    for name in ["SynthesizerTrn", "MultiPeriodDiscriminator", "HParams", "CheckpointError",
                 "UnsupportedVersionError", "read_sovits_file", "load_sovits", "save_sovits",
                 "load_training_checkpoint", "save_training_checkpoint"]:
        assert name in gsv_edu.__all__, name


def test_every_console_script_points_at_a_main_function():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"gsv-prepare", "gsv-train", "gsv-infer", "gsv-train-gpt", "gsv-tts"} <= set(scripts)
    for name, target in scripts.items():
        module, _, func = target.partition(":")
        assert callable(getattr(importlib.import_module(module), func)), name
