"""GPT (s1) training: official parity (tests/fixtures/gpt/train_*.pt), resume, the optimizer choice, the CLI.

- parity: our loop on the rule-made folder of the `gpt_dataset` fixture reproduces the official
  Lightning run's 26 per-batch losses, the learning rate of each optimizer step and the final
  weights (with dropout off on both sides, as the fixture was made);
- official checkpoints: resuming from the official epoch-0 `.ckpt` reproduces its epoch 1;
- the sample corpus (12 utterances prepared with the shipped small HuBERT and tiny SoVITS):
  the loss goes down, an interrupted run resumed from its checkpoint gives the same losses and
  bit-identical weights as an uninterrupted one, AdamW is available;
- torchrun with two processes (gloo) keeps the ranks identical.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gsv_edu.data.layout import BERT_DIR, SEMANTIC_FILE, TEXT_FILE
from gsv_edu.data.prepare import prepare
from gsv_edu.gpt.config import GPTConfig, GPTConfigError
from gsv_edu.pretrained import TINY_SOVITS_PATH
from gsv_edu.train.distributed import DistributedContext
from gsv_edu.train.gpt import (CKPT_DIR, WEIGHTS_DIR, GPTTrainingRun, gpt_config, list_gpt_checkpoints,
                               read_gpt_checkpoint, train_gpt)
from gsv_edu.train.logs import read_metrics
from gsv_edu.weights import weights_fingerprint

FIXTURES = Path(__file__).parent / "fixtures" / "gpt"
SAMPLE_LIST = Path(__file__).resolve().parents[1] / "data" / "sample" / "sample.list"
# the tiny preset shrunk further: a batch takes a few milliseconds
SMALL = ["model.embedding_dim=32", "model.hidden_dim=32", "model.head=2", "model.n_layer=1", "train.batch_size=4",
         "train.epochs=50", "train.log_interval=1"]


# ------------------------------------------------------------------------------------------------
# official parity
# ------------------------------------------------------------------------------------------------

def write_fixture_folder(folder: Path) -> Path:
    files = torch.load(FIXTURES / "dataset.pt", weights_only=True)["files"]
    (folder / BERT_DIR).mkdir(parents=True, exist_ok=True)
    (folder / TEXT_FILE).write_text(files["2-name2text.txt"], encoding="utf-8")
    (folder / SEMANTIC_FILE).write_text(files["6-name2semantic.tsv"], encoding="utf-8")
    for name, tensor in files["bert"].items():
        torch.save(tensor, folder / BERT_DIR / f"{name}.pt")
    return folder


def fixture_run(tmp_path: Path, record: dict) -> GPTTrainingRun:
    """Our run set up like the fixture's Lightning run: same config and folder, official text mask, dropout off."""
    cfg = GPTConfig.from_dict(record["config"])
    cfg.train.extra.update(pr2537_text_mask=True, log_interval=1)
    run = GPTTrainingRun(cfg, write_fixture_folder(tmp_path / "prepared"), tmp_path / "run", DistributedContext(),
                         progress=False, quiet=True, tensorboard=False, num_workers=0)
    run.setup()
    model = run.model
    model.train = lambda mode=True: torch.nn.Module.train(model, False)  # the fixture ran in eval mode (no dropout)
    return run


def assert_final_weights(run: GPTTrainingRun, record: dict) -> None:
    for key, value in run.model.state_dict().items():
        assert value.double().sum().item() == pytest.approx(record["final_sum"][key], abs=1e-5), key
        assert value.double().abs().sum().item() == pytest.approx(record["final_abs_sum"][key], abs=1e-5), key


def test_two_epochs_match_the_official_lightning_run(tmp_path):
    record = torch.load(FIXTURES / "train_run.pt", weights_only=True)
    run = fixture_run(tmp_path, record)
    for key, value in run.model.state_dict().items():  # the same seed gives the official initial weights
        assert torch.equal(value, record["initial"][key]), key
    result = run.run()
    expected = [row[2] for row in record["batches"]]
    assert len(result.losses) == len(expected) == 26
    assert result.losses == pytest.approx(expected, rel=1e-5)
    assert [r["lr"] for r in read_metrics(tmp_path / "run")] == record["step_lrs"]  # 0.01 once, then 0.002
    assert result.step == record["global_step"] == 6
    assert_final_weights(run, record)


def test_resume_from_official_checkpoint(tmp_path):
    record = torch.load(FIXTURES / "train_run.pt", weights_only=True)
    ckpt_dir = tmp_path / "run" / CKPT_DIR
    ckpt_dir.mkdir(parents=True)
    shutil.copyfile(FIXTURES / "train_epoch0.ckpt", ckpt_dir / "epoch=0-step=3.ckpt")
    run = fixture_run(tmp_path, record)
    assert (run.epoch, run.batch_in_epoch, run.step) == (1, 0, 3)  # Lightning: the next epoch
    result = run.run()
    expected = [row[2] for row in record["batches"] if row[0] == 1]
    assert result.losses == pytest.approx(expected, rel=1e-5)
    assert_final_weights(run, record)
    # our checkpoint of the end of epoch 1 has Lightning's layout and the official optimizer state layout
    ours = read_gpt_checkpoint(ckpt_dir / "epoch=1-step=6.ckpt")
    official = read_gpt_checkpoint(ckpt_dir / "epoch=0-step=3.ckpt")
    for key in official:
        assert key in ours, key
    assert ours["epoch"] == 1 and ours["global_step"] == 6
    assert sorted(ours["state_dict"]) == sorted(official["state_dict"])
    assert sorted(ours["optimizer_states"][0]["state"]) == sorted(official["optimizer_states"][0]["state"])
    assert ours["lr_schedulers"][0]["_current_step"] == 6
    assert ours["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 1


# ------------------------------------------------------------------------------------------------
# the sample corpus
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample_prepared(tmp_path_factory) -> Path:
    """12 utterances of the sample corpus with the semantic codes of the shipped tiny SoVITS."""
    folder = tmp_path_factory.mktemp("gpt_sample")
    lines = SAMPLE_LIST.read_text(encoding="utf-8").splitlines()[:12]
    base = SAMPLE_LIST.parent
    subset = folder / "subset.list"
    subset.write_text("\n".join(str(base / ln.split("|")[0]) + "|" + "|".join(ln.split("|")[1:]) for ln in lines)
                      + "\n", encoding="utf-8")
    prepare(subset, folder / "prepared", sovits=TINY_SOVITS_PATH, progress=False)
    return folder / "prepared"


def run_sample(data: Path, out: Path, *sets: str) -> "object":
    torch.set_num_threads(1)
    cfg = gpt_config("tiny", None, SMALL + list(sets))
    return train_gpt(cfg, data, out, device="cpu", progress=False, quiet=True, tensorboard=False, num_workers=0)


def test_loss_decreases_on_the_sample_corpus(sample_prepared, tmp_path):
    result = run_sample(sample_prepared, tmp_path / "run", "train.max_steps=40", "train.optimizer=adamw",
                        "train.adamw_lr=0.003")
    rows = read_metrics(tmp_path / "run")
    assert len(rows) == 40 and result.stop_reason == "max_steps"
    first = sum(r["loss_per_token"] for r in rows[:5]) / 5
    last = sum(r["loss_per_token"] for r in rows[-5:]) / 5
    assert first > 6.5           # about ln(1025) = 6.93 at the start: uniform guesses
    assert last < first - 1.0    # the sample sentences are being memorised
    export = torch.load(result.export_path, weights_only=True)  # the official export format
    assert set(export) == {"weight", "config", "info"}
    assert all(k.startswith("model.") and v.dtype == torch.float16 for k, v in export["weight"].items())
    assert export["config"]["model"]["hidden_dim"] == 32


def test_scaled_adam_is_the_default_and_adamw_an_option(sample_prepared, tmp_path):
    run_sample(sample_prepared, tmp_path / "a", "train.max_steps=2")
    run_sample(sample_prepared, tmp_path / "b", "train.max_steps=2", "train.optimizer=adamw")
    a = read_gpt_checkpoint(list_gpt_checkpoints(tmp_path / "a")[-1][2])
    b = read_gpt_checkpoint(list_gpt_checkpoints(tmp_path / "b")[-1][2])
    assert "delta" in next(iter(a["optimizer_states"][0]["state"].values()))  # ScaledAdam's momentum of updates
    assert a["lr_schedulers"][0]["lr"] == 0.002
    assert "exp_avg" in next(iter(b["optimizer_states"][0]["state"].values()))  # AdamW
    assert b["lr_schedulers"] == [] and b["optimizer_states"][0]["param_groups"][0]["weight_decay"] == 0.01
    assert [r["lr"] for r in read_metrics(tmp_path / "a")] == [0.01, 0.002]  # the official first step at 0.01
    run_sample(sample_prepared, tmp_path / "c", "train.max_steps=2", "train.lr_schedule=warmup_cosine")
    assert [r["lr"] for r in read_metrics(tmp_path / "c")] == pytest.approx([1e-5, 1e-5 + (0.01 - 1e-5) / 2000])
    with pytest.raises(GPTConfigError, match="train.optimizer"):
        gpt_config("tiny", None, ["train.optimizer=sgd"])
    with pytest.raises(GPTConfigError, match="another --out"):  # a run folder keeps its optimizer
        run_sample(sample_prepared, tmp_path / "a", "train.max_steps=3", "train.optimizer=adamw")


def test_interrupted_run_resumes_exactly(sample_prepared, tmp_path):
    """Stop at step 3 (inside epoch 0), resume to step 7: same losses and weights as one run to step 7.

    12 items repeated 8 times, batch 4: 24 batches per epoch, steps after batches 4, 8, ..., 20, so
    the last three batches of an epoch go into the first step of the next; dropout draws random
    numbers. The resume needs the position, the pending gradients and the RNG states.
    """
    full = run_sample(sample_prepared, tmp_path / "full", "train.max_steps=7")
    first = run_sample(sample_prepared, tmp_path / "split", "train.max_steps=3")
    second = run_sample(sample_prepared, tmp_path / "split", "train.max_steps=7")
    assert first.stop_reason == second.stop_reason == "max_steps" and second.resumed_from
    assert first.losses + second.losses == full.losses  # bit-identical, batch by batch
    fa = read_gpt_checkpoint(list_gpt_checkpoints(tmp_path / "full")[-1][2])
    fb = read_gpt_checkpoint(list_gpt_checkpoints(tmp_path / "split")[-1][2])
    assert weights_fingerprint(fa["state_dict"]) == weights_fingerprint(fb["state_dict"])
    assert [r["step"] for r in read_metrics(tmp_path / "split")] == list(range(1, 8))  # no duplicated log rows
    assert (tmp_path / "split" / WEIGHTS_DIR).is_dir()


def test_checkpoint_at_an_epoch_end_keeps_the_carried_gradients(sample_prepared, tmp_path):
    """Epoch 0 (24 batches) ends with 3 batches not yet stepped on: its checkpoint holds their
    gradients (official Lightning files lose them), and a resume from it is exact."""
    full = run_sample(sample_prepared, tmp_path / "full", "train.max_steps=6")
    run_sample(sample_prepared, tmp_path / "cut", "train.max_steps=6")
    found = list_gpt_checkpoints(tmp_path / "cut")
    assert [(e, s) for e, s, _ in found] == [(0, 5), (1, 6)]
    epoch_end = read_gpt_checkpoint(found[0][2])
    assert (epoch_end["gsv_edu"]["epoch"], epoch_end["gsv_edu"]["batch_in_epoch"]) == (1, 0)
    assert epoch_end["gsv_edu"]["pending_grads"]  # batches 21-23 of epoch 0
    found[1][2].unlink()  # as if the run had died right after the end of epoch 0
    resumed = run_sample(sample_prepared, tmp_path / "cut", "train.max_steps=6")
    assert len(resumed.losses) == 5  # batches 0-4 of epoch 1
    assert resumed.losses == full.losses[-5:]
    last_full = read_gpt_checkpoint(list_gpt_checkpoints(tmp_path / "full")[-1][2])
    last_cut = read_gpt_checkpoint(list_gpt_checkpoints(tmp_path / "cut")[-1][2])
    assert weights_fingerprint(last_full["state_dict"]) == weights_fingerprint(last_cut["state_dict"])


def test_cli_runs_and_bad_input_is_a_clear_error(sample_prepared, tmp_path, capsys):
    from gsv_edu.train_gpt import main

    args = ["--data", str(sample_prepared), "--out", str(tmp_path / "run"), "--device", "cpu", "--no-progress",
            "--quiet", "--no-tensorboard"] + [x for s in SMALL + ["train.max_steps=2"] for x in ("--set", s)]
    assert main(args) == 0
    assert "total_loss" in capsys.readouterr().err
    assert (tmp_path / "run" / "config.yaml").is_file() and list_gpt_checkpoints(tmp_path / "run")
    assert main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x"), "--no-progress"]) == 1
    assert "not a prepared folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing written for a run that cannot start
    no_codes = tmp_path / "no_codes"
    no_codes.mkdir()
    shutil.copyfile(sample_prepared / TEXT_FILE, no_codes / TEXT_FILE)
    assert main(["--data", str(no_codes), "--out", str(tmp_path / "y"), "--no-progress"]) == 1
    assert "--sovits" in capsys.readouterr().err
    assert main(["--data", str(sample_prepared), "--out", str(tmp_path / "z"), "--set", "train.max_steps=zero"]) == 1
    assert "train.max_steps" in capsys.readouterr().err


def test_two_process_torchrun_ranks_agree(sample_prepared, tmp_path):
    out = tmp_path / "run"
    sets = [x for s in SMALL + ["train.max_steps=2"] for x in ("--set", s)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "gsv_edu.train_gpt", "--data", str(sample_prepared), "--out", str(out), "--device", "cpu", "--no-progress",
           "--no-tensorboard", *sets]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (out / "train.log").read_text()
    assert "2 process(es) on cpu" in log
    m = re.search(r"weights of the 2 ranks: \['(\w+)', '(\w+)'\] \(identical\)", log)
    assert m, log[-2000:]
    ckpt = read_gpt_checkpoint(list_gpt_checkpoints(out)[-1][2])
    saved = {k[len("model."):]: v for k, v in ckpt["state_dict"].items()}
    assert m.group(1) == m.group(2) == weights_fingerprint(saved)
    assert ckpt["gsv_edu"]["world_size"] == 2 and len(ckpt["gsv_edu"]["rng"]) == 2
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]


def test_pretrained_s1_sets_the_initial_weights(sample_prepared, tmp_path):
    first = run_sample(sample_prepared, tmp_path / "first", "train.max_steps=1")
    export = torch.load(first.export_path, weights_only=True)["weight"]  # {"model." + key: fp16}
    cfg = gpt_config("tiny", None, SMALL)
    run = GPTTrainingRun(cfg, sample_prepared, tmp_path / "second", DistributedContext(),
                         pretrained_s1=first.export_path, progress=False, quiet=True, tensorboard=False, num_workers=0)
    run.setup()
    for key, value in run.model.state_dict().items():
        assert torch.equal(value, export["model." + key].float()), key
    bad = GPTTrainingRun(gpt_config("tiny", None, SMALL + ["model.n_layer=2"]), sample_prepared, tmp_path / "third",
                         DistributedContext(), pretrained_s1=first.export_path, progress=False, quiet=True,
                         tensorboard=False, num_workers=0)
    with pytest.raises(ValueError, match="do not fit"):  # a file of another size: a clear error
        bad.setup()
