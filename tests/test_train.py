"""The training loop: checkpoints, exact resume, max_steps, exports, non-finite steps, lr schedule.

Runs the real `gsv_edu.train.train` on a synthetic prepared folder with a shrunken tiny config
(train_helpers.SMALL_OVERRIDES), a few steps each.
"""
from __future__ import annotations

import json
import math
import logging
import subprocess
import sys

import pytest
import torch

from gsv_edu import train as train_module
from gsv_edu.train import TrainingDiverged, train
from gsv_edu.train import step as step_module
from gsv_edu.train.logs import read_metrics
from gsv_edu.weights import checkpoint_dir, list_checkpoints, weights_fingerprint
from train_helpers import make_prepared, small_config


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return make_prepared(tmp_path_factory.mktemp("prepared"))


def _run(prepared, out, *overrides, tensorboard=False, **kwargs):
    return train(small_config(*overrides), prepared, out, device="cpu", progress=False, quiet=True,
                 tensorboard=tensorboard, **kwargs)


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def straight_and_resumed(prepared, tmp_path_factory):
    """The same 4 steps: once straight, once as 2 steps + resume to 4 (with a different --set max_steps)."""
    straight = tmp_path_factory.mktemp("straight")
    resumed = tmp_path_factory.mktemp("resumed")
    r_straight = _run(prepared, straight, "train.max_steps=4", tensorboard=True)
    r_first = _run(prepared, resumed, "train.max_steps=2")
    log_before = (resumed / "train.log").read_text()
    r_second = _run(prepared, resumed, "train.max_steps=4")
    return straight, resumed, r_straight, r_first, r_second, log_before


def test_checkpoint_files_have_the_official_layout(straight_and_resumed):
    straight, _, result, *_ = straight_and_resumed
    folder = checkpoint_dir(straight, "v2")
    assert list_checkpoints(folder) == [2, 4]  # save_every_steps=2, the stop at max_steps=4 coincides
    g, d = _load(folder / "G_4.pth"), _load(folder / "D_4.pth")
    for ckpt in (g, d):
        assert {"model", "iteration", "optimizer", "learning_rate"} <= set(ckpt)
        assert ckpt["iteration"] == 1 and ckpt["step"] == 4  # iteration is the epoch (official)
        assert ckpt["learning_rate"] == pytest.approx(small_config().train.learning_rate)  # the base lr
    assert any(k.startswith("enc_q.") for k in g["model"])  # training checkpoints keep the posterior encoder
    assert all(v.dtype == torch.float32 for v in g["model"].values() if v.is_floating_point())
    assert any(k.startswith("discriminators.") for k in d["model"])
    assert len(g["optimizer"]["param_groups"]) == 4
    assert result.step == 4 and result.stop_reason == "max_steps"
    assert result.export_path.endswith("weights/" + straight.name + "_e1_s4.pth")


def test_resume_continues_exactly(straight_and_resumed):
    straight, resumed, r_straight, r_first, r_second, log_before = straight_and_resumed
    assert (r_first.step, r_second.step, r_second.resumed_from) == (2, 4, 2)
    log = (resumed / "train.log").read_text()[len(log_before):]
    assert "resuming from" in log and "G_2.pth: step 2" in log
    g_straight = _load(checkpoint_dir(straight, "v2") / "G_4.pth")
    g_resumed = _load(checkpoint_dir(resumed, "v2") / "G_4.pth")
    # models, optimizer moments and RNG continue exactly: the weights are bitwise those of the straight run
    assert weights_fingerprint(g_resumed["model"]) == weights_fingerprint(g_straight["model"])
    d_straight = _load(checkpoint_dir(straight, "v2") / "D_4.pth")
    d_resumed = _load(checkpoint_dir(resumed, "v2") / "D_4.pth")
    assert weights_fingerprint(d_resumed["model"]) == weights_fingerprint(d_straight["model"])
    # the optimizer state was restored, not restarted: AdamW has counted 4 steps
    assert {float(s["step"]) for s in g_resumed["optimizer"]["state"].values()} == {4.0}
    # metrics: one row per step 1..4, no duplicates after the resume
    assert [r["step"] for r in read_metrics(resumed)] == [1, 2, 3, 4]


def test_max_steps_counts_resumed_steps_and_stops_when_reached(straight_and_resumed, prepared):
    _, resumed, *_ = straight_and_resumed
    before = sorted(p.name for p in resumed.rglob("*.pth"))
    again = _run(prepared, resumed, "train.max_steps=4")
    assert again.stop_reason == "already done" and again.step == 4
    assert sorted(p.name for p in resumed.rglob("*.pth")) == before


def test_training_checkpoint_and_export_decode_identically(straight_and_resumed):
    """The fp16 export equals the fp32 checkpoint rounded to fp16: same decode output (noise_scale 0)."""
    from gsv_edu.weights import load_sovits

    straight, *_ = straight_and_resumed
    # inference=False keeps weight norm unfolded, so the rounding below applies to the stored g and v
    from_ckpt = load_sovits(checkpoint_dir(straight, "v2") / "G_4.pth", inference=False).model.eval()
    from_export = load_sovits(straight / "weights" / f"{straight.name}_e1_s4.pth", inference=False).model.eval()
    with torch.no_grad():
        for p in from_ckpt.state_dict().values():
            if p.is_floating_point():
                p.copy_(p.half().float())
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 1024, (1, 1, 10), generator=gen)
    text = torch.randint(1, 700, (1, 7), generator=gen)
    refer = torch.rand(1, 1025, 30, generator=gen)
    a = from_ckpt.decode(codes, text, refer, noise_scale=0.0)
    b = from_export.decode(codes, text, refer, noise_scale=0.0)
    assert a.shape == (1, 1, 20 * 640)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_generator_param_groups_match_the_official(prepared):
    cfg = small_config("train.learning_rate=0.001", "train.text_low_lr_rate=0.25")
    t = step_module.Trainer(cfg)
    groups = t.optim_g.param_groups
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 2.5e-4, 2.5e-4, 2.5e-4])
    assert all(g["weight_decay"] == 0.01 and g["betas"] == (0.8, 0.99) and g["eps"] == 1e-9 for g in groups)
    ids = [{id(p) for p in g["params"]} for g in groups]
    for ids_k, name in zip(ids[1:], step_module.LOW_LR_MODULES):
        assert ids_k == {id(p) for p in t.net_g.get_submodule(name).parameters()}
    assert ids[0].isdisjoint(ids[1] | ids[2] | ids[3])
    assert set().union(*ids) == {id(p) for p in t.net_g.parameters()}  # ssl_proj included, like the official
    assert id(t.net_g.ssl_proj.weight) in ids[0]


def test_scheduler_steps_before_the_first_epoch_and_after_each_and_keep_last(prepared, tmp_path, monkeypatch):
    from gsv_edu.data import dataset

    monkeypatch.setattr(dataset, "MIN_ITEMS", 4)  # no repetition of the 4 items: 2 batches per epoch
    result = _run(prepared, tmp_path, "train.lr_decay=0.5", "train.max_steps=6", "train.learning_rate=0.001",
                  "train.keep_last=2")
    lrs = {r["step"]: r["learning_rate"] for r in read_metrics(tmp_path)}
    # γ = 0.5 makes each scheduler step visible; epoch 1 already runs at lr·γ (official quirk)
    assert [lrs[s] for s in range(1, 7)] == pytest.approx([1e-3 * 0.5 ** e for e in (1, 1, 2, 2, 3, 3)])
    assert result.epoch == 3
    g = _load(checkpoint_dir(tmp_path, "v2") / "G_6.pth")
    assert [pg["lr"] for pg in g["optimizer"]["param_groups"]] == pytest.approx([1.25e-4, 5e-5, 5e-5, 5e-5])
    assert list_checkpoints(checkpoint_dir(tmp_path, "v2")) == [4, 6]  # saved at 2, 4, 6; keep_last=2


def test_a_nonfinite_loss_skips_the_step(prepared, tmp_path, monkeypatch, caplog):
    real_kl = step_module.kl_loss
    calls = {"n": 0}

    def kl_with_one_nan(*args):
        calls["n"] += 1
        value = real_kl(*args)
        return value * float("nan") if calls["n"] == 2 else value

    monkeypatch.setattr(step_module, "kl_loss", kl_with_one_nan)
    with caplog.at_level(logging.WARNING, logger="gsv_edu.train"):
        result = _run(prepared, tmp_path, "train.max_steps=3")
    assert calls["n"] == 4  # 3 good steps + the skipped one
    assert result.step == 3
    assert any("step 2: non-finite generator loss" in r.getMessage() for r in caplog.records)
    g = _load(checkpoint_dir(tmp_path, "v2") / "G_3.pth")
    assert all(torch.isfinite(v).all() for v in g["model"].values() if v.is_floating_point())


def test_consecutive_nonfinite_losses_stop_the_run_and_keep_the_checkpoint(prepared, tmp_path, monkeypatch):
    _run(prepared, tmp_path, "train.max_steps=2")
    folder = checkpoint_dir(tmp_path, "v2")
    before = (folder / "G_2.pth").read_bytes()
    monkeypatch.setattr(step_module, "discriminator_loss",
                        lambda r, g: (torch.tensor(float("nan")), [], []))
    with pytest.raises(TrainingDiverged, match="3 consecutive steps with a non-finite loss"):
        _run(prepared, tmp_path, "train.max_steps=10", "train.max_nonfinite_steps=3")
    assert list_checkpoints(folder) == [2]
    assert (folder / "G_2.pth").read_bytes() == before


def test_cli_rejects_content_width_mismatch(prepared, tmp_path, capsys):
    code = train_module.main(["--data", str(prepared), "--out", str(tmp_path), "--device", "cpu", "--no-progress",
                              "--set", "model.ssl_dim=32"])
    assert code == 1
    err = capsys.readouterr().err
    assert "16-dim content features" in err and "--set model.ssl_dim=16" in err


def test_run_folder_refuses_another_model(straight_and_resumed, prepared):
    from gsv_edu.config import ConfigError

    straight, *_ = straight_and_resumed
    with pytest.raises(ConfigError, match="model.hidden_channels"):
        _run(prepared, straight, "train.max_steps=8", "model.hidden_channels=24")


def test_pretrained_weights_are_loaded_with_a_summary(straight_and_resumed, prepared, tmp_path, caplog):
    straight, *_ = straight_and_resumed
    export = straight / "weights" / f"{straight.name}_e1_s4.pth"
    d_file = checkpoint_dir(straight, "v2") / "D_4.pth"
    with caplog.at_level(logging.INFO, logger="gsv_edu.train"):
        _run(prepared, tmp_path, "train.max_steps=1", pretrained_g=str(export), pretrained_d=str(d_file))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "pretrained G" in text and "missing" in text and "enc_q" in text  # an export has no enc_q
    assert "pretrained D" in text
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["train"]["pretrained_s2G"] == str(export)


def test_narrow_discriminator_has_the_official_keys():
    from gsv_edu.sovits.discriminators import MultiPeriodDiscriminator

    official = MultiPeriodDiscriminator(False, "v2").state_dict()
    narrow = MultiPeriodDiscriminator(False, "v2", channel_divisor=8)
    assert list(narrow.state_dict()) == list(official)
    assert sum(p.numel() for p in narrow.parameters()) == 778106  # official: 46,747,132
    y = torch.randn(2, 1, 2560)
    scores_r, scores_g, fmaps_r, fmaps_g = narrow(y, y.flip(-1))
    assert len(scores_r) == 6 and all(s.shape[0] == 2 for s in scores_r)
    with pytest.raises(ValueError, match="channel_divisor"):
        MultiPeriodDiscriminator(channel_divisor=3)


def test_tensorboard_gets_the_official_tags_images_and_audio(straight_and_resumed):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    straight, *_ = straight_and_resumed
    events = EventAccumulator(str(straight), size_guidance={"images": 0, "audio": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    for tag in ("loss/g/total", "loss/d/total", "learning_rate", "grad_norm_d", "grad_norm_g", "loss/g/fm",
                "loss/g/mel", "loss/g/kl_ssl", "loss/g/kl", "loss/g/0", "loss/d_r/0", "loss/d_g/5"):
        assert tag in tags["scalars"], tag
    assert [e.step for e in events.Scalars("loss/g/mel")] == [1, 2, 3, 4]
    assert {"slice/mel_org", "slice/mel_gen", "all/mel", "all/stats_ssl"} <= set(tags["images"])
    assert {"audio/real_slice", "audio/gen_slice", "audio/gen_full"} <= set(tags["audio"])
    assert all(e.value == 0.0 for e in events.Scalars("loss/g/kl_ssl"))  # frozen quantizer: no commitment loss


@pytest.mark.parametrize("dtype, scaler", [(torch.bfloat16, False), (torch.float16, True)])
def test_mixed_precision_step_runs(prepared, dtype, scaler):
    """The CUDA mixed-precision path (autocast + GradScaler for fp16), exercised with CPU autocast."""
    from gsv_edu.data.dataset import TextAudioSpeakerCollate, TextAudioSpeakerDataset

    cfg = small_config()
    torch.manual_seed(0)
    t = step_module.Trainer(cfg)
    t.autocast_enabled, t.autocast_dtype = True, dtype
    if scaler:
        t.scaler = torch.amp.GradScaler("cpu", enabled=True, init_scale=2.0 ** 4)
    data = TextAudioSpeakerDataset(prepared, cfg)
    batch = TextAudioSpeakerCollate()([data[0], data[1]])
    before = t.net_g.dec.conv_pre.weight.detach().clone()
    result = t.train_step(batch, media=True)
    assert result.ok, result.reason
    assert all(math.isfinite(v) for v in result.scalars.values())
    assert result.media["slice/mel_gen"].dtype == torch.float32
    assert not torch.equal(before, t.net_g.dec.conv_pre.weight)  # the generator was updated
    assert t.net_g.dec.conv_pre.weight.dtype == torch.float32    # master weights stay fp32


def test_resume_from_an_official_checkpoint(prepared, tmp_path, monkeypatch, caplog):
    """Files with only the official keys (utils.save_checkpoint): resume at the next epoch, lr = base·γ^epoch."""
    from gsv_edu.data import dataset
    from gsv_edu.weights import save_training_checkpoint

    monkeypatch.setattr(dataset, "MIN_ITEMS", 4)  # 4 items, batch 2: 2 batches per epoch
    overrides = ("train.lr_decay=0.5", "train.learning_rate=0.001", "train.save_every_steps=null")
    _run(prepared, tmp_path, "train.max_steps=2", *overrides)  # one epoch; checkpoint at the end (step 2)
    folder = checkpoint_dir(tmp_path, "v2")
    t = step_module.Trainer(small_config(*overrides))
    g, d = _load(folder / "G_2.pth"), _load(folder / "D_2.pth")
    t.net_g.load_state_dict(g["model"])
    t.net_d.load_state_dict(d["model"])
    t.optim_g.load_state_dict(g["optimizer"])
    t.optim_d.load_state_dict(d["optimizer"])
    for kind, net, optim in (("G", t.net_g, t.optim_g), ("D", t.net_d, t.optim_d)):
        save_training_checkpoint(net, optim, 1e-3, 1, folder / f"{kind}_2.pth")  # the official layout only
    assert "step" not in _load(folder / "G_2.pth")

    with caplog.at_level(logging.INFO, logger="gsv_edu.train"):
        result = _run(prepared, tmp_path, "train.max_steps=4", *overrides)
    assert "resuming from the official checkpoint" in caplog.text and "starting epoch 2 at step 2" in caplog.text
    lrs = {r["step"]: r["learning_rate"] for r in read_metrics(tmp_path)}
    assert lrs[3] == pytest.approx(1e-3 * 0.5 ** 2)  # epoch 2 of an uninterrupted run
    assert result.step == 4 and result.epoch == 2


def test_metrics_keep_seven_significant_digits(tmp_path):
    from gsv_edu.train.logs import RunLogger

    logger = RunLogger(tmp_path, tensorboard=False)
    logger.scalars(3, {"learning_rate": 4e-4 * 0.999875, "loss/g/mel": float("nan")}, extra={"epoch": 1})
    (row,) = read_metrics(tmp_path)
    assert row == {"step": 3, "epoch": 1, "learning_rate": 3.9995e-4, "loss/g/mel": None}


def test_trainer_device_defaults_to_auto_and_accepts_a_device():
    from gsv_edu.train.distributed import DistributedContext
    from gsv_edu.train.step import Trainer

    cfg = small_config()
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert Trainer(cfg).device.type == expected
    assert Trainer(cfg, device="cpu").device.type == "cpu"
    with pytest.raises(ValueError, match="either ctx or device"):
        Trainer(cfg, DistributedContext(), device="cpu")


def test_log_images_leave_matplotlibs_backend_alone():
    """TensorBoard's spectrogram images are drawn off-screen; a notebook's backend stays as it was."""
    code = ("import matplotlib\nmatplotlib.use('pdf')\nimport torch\n"
            "from gsv_edu.train.logs import spectrogram_image\n"
            "img = spectrogram_image(torch.arange(12.0).reshape(3, 4))\n"
            "print(matplotlib.get_backend(), img.shape[2], img.dtype)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["pdf", "3", "uint8"]
