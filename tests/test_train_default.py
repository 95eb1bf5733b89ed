"""End to end with the real pieces: `python -m gsv_edu.train` without --data prepares the sample list
with the shipped content encoder, trains, stops at max_steps, resumes, exports; then `gsv_edu.infer`
speaks with the export.

The sample list is cut to three utterances and the model shrunk (`--set`), so this stays small.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from train_helpers import SMALL_OVERRIDES
from gsv_edu.train import cli as train_cli
from gsv_edu.config import PACKAGE_DIR

REPO = PACKAGE_DIR.parent
SAMPLE = REPO / "data" / "sample"

pytestmark = pytest.mark.skipif(not (PACKAGE_DIR / "assets" / "hubert_small").is_dir() or
                                not (SAMPLE / "sample.list").is_file(),
                                reason="needs the shipped content encoder and the sample corpus")


def test_default_run_prepares_trains_resumes_exports_and_infers(tmp_path, monkeypatch, capsys):
    lines = [line for line in (SAMPLE / "sample.list").read_text(encoding="utf-8").splitlines() if line.strip()]
    picked = [lines[0], lines[1], next(line for line in lines if "|zh|" in line)]
    short_list = tmp_path / "short.list"
    short_list.write_text("\n".join(str(SAMPLE / line) for line in picked) + "\n", encoding="utf-8")
    monkeypatch.setattr(train_cli, "DEFAULT_LIST", short_list)
    monkeypatch.setattr(train_cli, "DEFAULT_PREPARED", tmp_path / "prepared")
    monkeypatch.setattr(train_cli, "DEFAULT_RUN", tmp_path / "run")
    small = [s for s in SMALL_OVERRIDES if not s.startswith("model.ssl_dim")]  # keep the encoder's 256
    sets = [x for s in small for x in ("--set", s)]

    assert train_cli.main([*sets, "--set", "train.max_steps=2", "--no-progress", "--device", "cpu"]) == 0
    info = json.loads((tmp_path / "prepared" / "prepare_info.json").read_text())
    assert info["ssl_dim"] == 256 and info["items"] == 3
    assert (tmp_path / "run" / "logs_s2_v2" / "G_2.pth").is_file()
    first = capsys.readouterr().err
    assert "loss_mel" in first and "done: step 2" in first

    assert train_cli.main([*sets, "--set", "train.max_steps=3", "--no-progress", "--device", "cpu"]) == 0
    second = capsys.readouterr().err
    assert "reused from an earlier run: text 3, audio 3" in second  # preparation is not redone
    assert "resuming from" in second and "step 2" in second and "done: step 3" in second
    export = tmp_path / "run" / "weights" / "run_e1_s3.pth"
    assert export.is_file()

    from gsv_edu import infer

    model = infer.load_model(export)
    source = REPO / "data" / "sample" / picked[1].split("|")[0]
    wav = infer.synthesize(model, ref=str(SAMPLE / picked[0].split("|")[0]), source=str(source),
                           text="A shiny coin.", lang="en", noise_scale=0.0)
    import soundfile as sf

    seconds = sf.info(str(source)).duration
    assert wav.dtype == np.float32 and np.isfinite(wav).all()
    assert abs(len(wav) / 32000 - seconds) < 0.1  # as long as the source
