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
    """--pretrained-g/-d put the files' tensors into the networks (an export has no enc_q: it keeps
    its fresh initial values). lr 0 makes the one step an identity, so the step-1 checkpoint holds
    exactly what was loaded."""
    from gsv_edu.weights import read_sovits_file

    straight, *_ = straight_and_resumed
    export = straight / "weights" / f"{straight.name}_e1_s4.pth"
    d_file = checkpoint_dir(straight, "v2") / "D_4.pth"
    with caplog.at_level(logging.INFO, logger="gsv_edu.train"):
        _run(prepared, tmp_path, "train.max_steps=1", "train.learning_rate=0", pretrained_g=str(export),
             pretrained_d=str(d_file))
    g = _load(checkpoint_dir(tmp_path, "v2") / "G_1.pth")["model"]
    d = _load(checkpoint_dir(tmp_path, "v2") / "D_1.pth")["model"]
    exported = read_sovits_file(export).weight  # fp16
    assert exported and not any(k.startswith("enc_q.") for k in exported)
    for k, v in exported.items():
        assert torch.equal(g[k], v.float()), k
    torch.manual_seed(small_config().train.seed)  # the run seeds before building its networks
    fresh = step_module.Trainer(small_config(), device="cpu").net_g.state_dict()
    enc_q = [k for k in g if k.startswith("enc_q.")]
    assert enc_q and all(torch.equal(g[k], fresh[k]) for k in enc_q)
    assert weights_fingerprint(d) == weights_fingerprint(_load(d_file)["model"])
    text = "\n".join(r.getMessage() for r in caplog.records)
    n_g = len(g)
    assert f"loaded {n_g - len(enc_q)} of {n_g} tensors" in text and f"missing ({len(enc_q)}): enc_q." in text
    assert f"pretrained D {d_file}: loaded {len(d)} of {len(d)} tensors" in text
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["train"]["pretrained_s2G"] == str(export) and cfg["train"]["pretrained_s2D"] == str(d_file)


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


def _one_batch(prepared, cfg):
    from gsv_edu.data.dataset import TextAudioSpeakerCollate, TextAudioSpeakerDataset

    data = TextAudioSpeakerDataset(prepared, cfg)
    return TextAudioSpeakerCollate()([data[0], data[1]])


def _trainer(cfg, dtype=None, scaler=False, **scaler_args):
    """A CPU Trainer on the CUDA mixed-precision path: autocast in `dtype`, a CPU GradScaler for fp16."""
    torch.manual_seed(0)
    t = step_module.Trainer(cfg, device="cpu")
    if dtype is not None:
        t.autocast_enabled, t.autocast_dtype = True, dtype
    if scaler:
        t.scaler = torch.amp.GradScaler("cpu", enabled=True, **scaler_args)
    return t


@pytest.mark.parametrize("dtype, scaler, rtol", [(torch.bfloat16, False, 0.1), (torch.float16, True, 0.02)])
def test_mixed_precision_step_is_the_float32_step_within_its_precision(prepared, dtype, scaler, rtol):
    """The CUDA mixed-precision path (autocast + GradScaler for fp16), exercised with CPU autocast,
    against the float32 step from the same weights and random draws: the same losses and gradient
    norms to the precision of the dtype (measured: fp16 0.26 %, bf16 5.6 % on the mel loss, which
    runs through the whole decoder), and the gradients unscaled (a missing unscale would show the
    scale, 16, in the norms)."""
    cfg = small_config()
    batch = _one_batch(prepared, cfg)
    reference = _trainer(cfg)
    torch.manual_seed(1)
    expected = reference.train_step(batch)
    t = _trainer(cfg, dtype, scaler, init_scale=2.0 ** 4)
    before = t.net_g.dec.conv_pre.weight.detach().clone()
    torch.manual_seed(1)
    result = t.train_step(batch, media=True)
    assert result.ok, result.reason
    for key in ("loss/d/total", "loss/g/gen", "loss/g/fm", "loss/g/kl", "grad_norm_d"):
        assert result.scalars[key] == pytest.approx(expected.scalars[key], rel=5e-3), key
    for key in ("loss/g/mel", "loss/g/total", "grad_norm_g"):
        assert result.scalars[key] == pytest.approx(expected.scalars[key], rel=rtol), key
    assert result.scalars["loss/g/mel"] != expected.scalars["loss/g/mel"]  # autocast did run in low precision
    assert result.media["slice/mel_gen"].dtype == torch.float32
    assert t.net_g.dec.conv_pre.weight.dtype == torch.float32    # master weights stay fp32
    assert not torch.equal(before, t.net_g.dec.conv_pre.weight)  # the generator was updated
    if scaler:  # update() ran once after a good step: same scale, one step towards growth
        assert t.scaler.state_dict()["scale"] == 16.0 and t.scaler.state_dict()["_growth_tracker"] == 1


def _everything(t) -> dict:
    """Copies of every parameter, buffer and optimizer state of a Trainer, by name."""
    import copy

    out = {}
    for prefix, module in (("G", t.net_g), ("D", t.net_d)):
        out.update({f"{prefix}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
    for prefix, optim in (("optim_g", t.optim_g), ("optim_d", t.optim_d)):
        state = optim.state_dict()
        for i, per_param in state["state"].items():
            out.update({f"{prefix}.{i}.{k}": v.clone() if torch.is_tensor(v) else v for k, v in per_param.items()})
        out[f"{prefix}.param_groups"] = copy.deepcopy(state["param_groups"])
    return out


def _assert_bit_identical(after: dict, before: dict):
    assert after.keys() == before.keys()
    for k, a in after.items():
        b = before[k]
        if torch.is_tensor(a):
            assert a.dtype == b.dtype and a.shape == b.shape, k
            assert torch.equal(a.contiguous().reshape(-1).view(torch.uint8),
                               b.contiguous().reshape(-1).view(torch.uint8)), k
        else:
            assert a == b, k


def _torch_overflow_update(state: dict) -> dict:
    """What torch's own GradScaler does from `state` after a step whose gradients overflowed."""
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    scaler.load_state_dict(state)
    p = torch.nn.Parameter(torch.ones(1))
    optim = torch.optim.SGD([p], lr=1.0)
    scaler.scale((p * float("inf")).sum()).backward()
    scaler.step(optim)  # skipped: found_inf
    scaler.update()
    assert torch.equal(p.detach(), torch.ones(1))
    return scaler.state_dict()


NAN_AT = ["discriminator loss", "discriminator gradient", "generator loss", "generator gradient"]


@pytest.mark.parametrize("with_scaler", [True, False], ids=["fp16+GradScaler", "float32"])
@pytest.mark.parametrize("where", NAN_AT)
def test_a_skipped_step_updates_nothing_and_the_next_steps_train(prepared, monkeypatch, where, with_scaler):
    """Four steps, a NaN injected into step 2 at `where`: step 2 is skipped and leaves every
    parameter, buffer and optimizer state bit-identical (D's step, already taken when G's loss is
    known, is undone); with a GradScaler the scale backs off as torch's own overflow update does;
    steps 3 and 4 train normally (AdamW has counted 3 steps, the scale grows back after
    growth_interval = 2 good steps)."""
    cfg = small_config()
    batch = _one_batch(prepared, cfg)
    t = (_trainer(cfg, torch.float16, True, init_scale=2.0 ** 4, growth_interval=2) if with_scaler
         else _trainer(cfg))
    armed = {"on": False}
    nan_if_armed = lambda x: x * float("nan") if armed["on"] else x  # noqa: E731
    if where == "discriminator loss":
        real = step_module.discriminator_loss
        monkeypatch.setattr(step_module, "discriminator_loss",
                            lambda r, g: (lambda out: (nan_if_armed(out[0]), *out[1:]))(real(r, g)))
    elif where == "generator loss":
        real_kl = step_module.kl_loss
        monkeypatch.setattr(step_module, "kl_loss", lambda *args: nan_if_armed(real_kl(*args)))
    elif where == "discriminator gradient":
        next(t.net_d.parameters()).register_hook(nan_if_armed)
    else:
        t.net_g.dec.conv_pre.weight.register_hook(nan_if_armed)

    assert t.train_step(batch).ok
    if with_scaler:
        assert t.scaler.state_dict()["scale"] == 16.0 and t.scaler.state_dict()["_growth_tracker"] == 1
    before = _everything(t)
    scaler_before = t.scaler.state_dict()
    armed["on"] = True
    skipped = t.train_step(batch)
    armed["on"] = False
    assert not skipped.ok and skipped.reason.startswith(f"non-finite {where}")
    _assert_bit_identical(_everything(t), before)
    if with_scaler:
        assert t.scaler.state_dict() == _torch_overflow_update(scaler_before)
        assert t.scaler.state_dict()["scale"] == 8.0 and t.scaler.state_dict()["_growth_tracker"] == 0
    else:
        assert t.scaler.state_dict() == {}

    third = t.train_step(batch)
    assert third.ok, third.reason
    after = _everything(t)
    for net in ("G", "D"):
        changed = [k for k in after if k.startswith(net + ".") and not torch.equal(after[k], before[k])]
        assert changed, f"{net} was not updated by the step after the skipped one"
    if with_scaler:
        assert t.scaler.state_dict()["scale"] == 8.0 and t.scaler.state_dict()["_growth_tracker"] == 1
    assert t.train_step(batch).ok
    for optim in (t.optim_g, t.optim_d):
        assert {float(s["step"]) for s in optim.state.values()} == {3.0}  # steps 1, 3, 4; not the skipped 2
    if with_scaler:
        assert t.scaler.state_dict()["scale"] == 16.0 and t.scaler.state_dict()["_growth_tracker"] == 0


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


def test_trainer_device_defaults_to_auto_and_accepts_a_device(monkeypatch):
    """"auto" (the default) is cuda:LOCAL_RANK when a GPU is visible, else the CPU; the expected
    devices are written out, for both answers of torch.cuda.is_available."""
    from gsv_edu.train.distributed import DistributedContext, resolve_device
    from gsv_edu.train.step import Trainer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device(None) == torch.device("cuda", 0)
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cpu", local_rank=1) == torch.device("cpu")
    with pytest.raises(RuntimeError, match="cuda:2: only 2 GPU"):
        resolve_device("cuda:2")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == torch.device("cpu") and resolve_device("auto", 1) == torch.device("cpu")
    with pytest.raises(RuntimeError, match="no GPU is visible.*use --device cpu"):
        resolve_device("cuda")
    cfg = small_config()
    t = Trainer(cfg)  # device None → auto → cpu here
    assert t.device == torch.device("cpu") and t.ctx.device == torch.device("cpu")
    assert {p.device for p in list(t.net_g.parameters()) + list(t.net_d.parameters())} == {torch.device("cpu")}
    assert not t.autocast_enabled and not t.scaler.is_enabled()  # fp16_run is ignored on the CPU
    assert Trainer(cfg, device="cpu").device == torch.device("cpu")
    with pytest.raises(ValueError, match="either ctx or device"):
        Trainer(cfg, DistributedContext(), device="cpu")


def test_train_leaves_the_callers_config_alone(prepared, tmp_path):
    """The run records its name, folders and pretrained paths in its own copy of the config: the
    caller's object is unchanged, and a second run with it gets its own name."""
    cfg = small_config("train.max_steps=1")
    before = cfg.to_dict()
    top, exp_dir, pretrained = dict(cfg.top), cfg.data.exp_dir, cfg.train.pretrained_s2G
    for name in ("first", "second"):
        train(cfg, prepared, tmp_path / name, device="cpu", progress=False, quiet=True, tensorboard=False)
        assert cfg.to_dict() == before and cfg.top == top
        assert (cfg.data.exp_dir, cfg.train.pretrained_s2G) == (exp_dir, pretrained)
        saved = json.loads((tmp_path / name / "config.json").read_text())
        assert saved["name"] == name and saved["data"]["exp_dir"] == str(prepared)


def test_mel_summary_averages_the_last_three_log_lines(tmp_path):
    from gsv_edu.train.run import mel_summary

    def summary(values):
        lines = [json.dumps({"step": 10 * (i + 1), "loss/g/mel": v}) for i, v in enumerate(values)]
        (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        return mel_summary(tmp_path)

    assert summary([10.0, 8.0, 7.0, 5.0, 3.0]) == ((10, 10.0), (50, 5.0))        # (7 + 5 + 3) / 3
    assert summary([9.0, None, 6.0, 3.0]) == ((10, 9.0), (40, 6.0))              # a NaN line is left out
    assert summary([9.0, 6.0, 3.0]) == ((10, 9.0), (30, 6.0))                    # exactly three lines
    assert summary([9.0, 7.0]) == ((10, 9.0), (20, 8.0))                         # fewer: those there are
    assert summary([None]) == (None, None)


def test_log_images_leave_matplotlibs_backend_alone():
    """TensorBoard's spectrogram images are drawn off-screen; a notebook's backend stays as it was."""
    code = ("import matplotlib\nmatplotlib.use('pdf')\nimport torch\n"
            "from gsv_edu.train.logs import spectrogram_image\n"
            "img = spectrogram_image(torch.arange(12.0).reshape(3, 4))\n"
            "print(matplotlib.get_backend(), img.shape[2], img.dtype)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["pdf", "3", "uint8"]
