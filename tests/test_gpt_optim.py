"""ScaledAdam and the s1 learning-rate schedule against the official classes (tests/fixtures/gpt/optim_*.pt)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from gsv_edu.gpt.optim import OFFICIAL_LOCKED_LR, ScaledAdam, WarmupCosineLRSchedule, official_optimizer

FIXTURES = Path(__file__).parent / "fixtures" / "gpt"
RTOL, ATOL = 1e-6, 1e-7  # the tolerance of the optim fixtures (tests/fixtures/README.md)


def load(name: str) -> dict:
    return torch.load(FIXTURES / name, weights_only=True)


def replay(record: dict, **overrides) -> tuple[ScaledAdam, list[dict], list[torch.nn.Parameter]]:
    """Run our ScaledAdam on the fixture's parameters and gradients; returns (optimizer, params after each step)."""
    names = record["names"]
    params = [[torch.nn.Parameter(record["initial"][n].clone()) for n in group] for group in names]
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in record["kwargs"].items()}
    kwargs.update(overrides)
    groups = [{"params": params[0]}, {"params": params[1], "lr": record["group_lrs"][1]}]
    opt = ScaledAdam(groups, parameters_names=names, **kwargs)
    scheduler = None
    if "schedule" in record:
        cfg = record["schedule"]
        scheduler = WarmupCosineLRSchedule(opt, cfg["lr_init"], cfg["lr"], cfg["lr_end"], cfg["warmup_steps"],
                                           cfg["decay_steps"])
    after = []
    for step, grads in enumerate(record["grads"]):
        assert [g["lr"] for g in opt.param_groups] == pytest.approx(record["lrs"][step], rel=0, abs=0)
        for group_names, group_params in zip(names, params):
            for n, p in zip(group_names, group_params):
                p.grad = grads[n].clone() if n in grads else None
        opt.step()
        opt.zero_grad()
        if scheduler is not None:
            scheduler.step()
        after.append({n: p.detach().clone() for gn, gp in zip(names, params) for n, p in zip(gn, gp)})
    return opt, after, params


@pytest.mark.parametrize("fixture", ["optim_scaled_adam.pt", "optim_official_config.pt"])
def test_scaled_adam_matches_official_steps(fixture):
    record = load(fixture)
    _, after, _ = replay(record)
    worst = 0.0
    for step, (ours, theirs) in enumerate(zip(after, record["after"])):
        for name, expected in theirs.items():
            assert ours[name].dtype == expected.dtype, name
            torch.testing.assert_close(ours[name], expected, rtol=RTOL, atol=ATOL, msg=f"{name} after step {step}")
            worst = max(worst, (ours[name] - expected).abs().max().item())
    # the parameters really moved (a no-op optimizer would fail the comparison above already)
    moved = (record["after"][-1]["w1"] - record["initial"]["w1"]).abs().max().item()
    assert moved > 1e-3


def test_scaled_adam_fixture_exercises_every_branch(caplog):
    """The small fixture hits clipping, both rms limits and the scalar clamp (else it would test less)."""
    record = load("optim_scaled_adam.pt")
    thresholds = [s["model_norm_threshold"] for s in record["state_dict"]["state"].values()
                  if "model_norm_threshold" in s]
    assert len(thresholds) == 2 and min(thresholds) > 0  # one clipping statistic per parameter group
    with caplog.at_level("INFO", logger="gsv_edu.gpt.optim"):
        replay(record)
    assert "scaling gradients by 0.0" in caplog.text  # the spike at step 10 is scaled below 0.1
    assert "dominating the gradient norm" in caplog.text
    assert record["initial"]["scalar0d"].item() > 10 and record["after"][0]["scalar0d"].item() <= 10
    assert record["initial"]["huge"].pow(2).mean().sqrt() > 3.0
    assert record["initial"]["tiny"].pow(2).mean().sqrt() < 1e-5


def test_clipping_changes_only_the_size_update():
    """Official quirk: the clipped gradient feeds the scale statistics; the Adam step reads the raw gradient."""
    record = load("optim_scaled_adam.pt")
    opt, after, _ = replay(record)
    # the same run without clipping differs (the spike at step 10 is clipped in the official run) ...
    _, unclipped, _ = replay(record, clipping_scale=None)
    assert not torch.allclose(unclipped[11]["w1"], record["after"][11]["w1"], rtol=RTOL, atol=ATOL)
    # ... and only from the first size update after clipping began (steps 4.. use the threshold; the
    # first size update that sees a clipped gradient is at step 7): before that the runs agree
    for step in range(7):
        torch.testing.assert_close(unclipped[step]["w1"], record["after"][step]["w1"], rtol=RTOL, atol=ATOL)


def test_state_dict_layout_matches_official():
    """State on the first parameter of each (dtype, shape) stack, with the official keys and shapes."""
    record = load("optim_scaled_adam.pt")
    opt, _, _ = replay(record)
    ours, theirs = opt.state_dict(), record["state_dict"]
    assert sorted(ours["state"]) == sorted(theirs["state"])
    for index, expected in theirs["state"].items():
        got = ours["state"][index]
        assert sorted(got) == sorted(expected), index
        for key, value in expected.items():
            if isinstance(value, torch.Tensor):
                torch.testing.assert_close(got[key], value, rtol=RTOL, atol=ATOL, msg=f"{index}.{key}")
            else:
                assert got[key] == pytest.approx(value, rel=1e-6), (index, key)
    for g_ours, g_theirs in zip(ours["param_groups"], theirs["param_groups"]):
        assert g_ours == g_theirs


def test_official_state_dict_resumes_identically():
    """Load the official optimizer state after 14 steps into ours; the next step equals ours uninterrupted."""
    record = load("optim_scaled_adam.pt")
    opt_a, _, params_a = replay(record)
    names = record["names"]
    params_b = [[torch.nn.Parameter(p.detach().clone()) for p in group] for group in params_a]
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in record["kwargs"].items()}
    opt_b = ScaledAdam([{"params": params_b[0]}, {"params": params_b[1], "lr": record["group_lrs"][1]}],
                       parameters_names=names, **kwargs)
    opt_b.load_state_dict(record["state_dict"])
    for pa_group, pb_group, group_names in zip(params_a, params_b, names):
        for pa, pb, n in zip(pa_group, pb_group, group_names):
            if n != "unused":
                pa.grad = 0.1 * torch.ones_like(pa)
                pb.grad = 0.1 * torch.ones_like(pb)
    opt_a.step()
    opt_b.step()
    for pa_group, pb_group in zip(params_a, params_b):
        for pa, pb in zip(pa_group, pb_group):
            torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_schedule_locks_the_learning_rate():
    """The official schedule returns and applies 0.002 at every step, whatever warm-up/cosine says."""
    record = load("optim_schedule.pt")
    cfg = record["optimizer_config"]
    for start, expected in record["runs"].items():
        p = torch.nn.Parameter(torch.zeros(2))
        opt = ScaledAdam([p], lr=0.01)
        s = WarmupCosineLRSchedule(opt, cfg["lr_init"], cfg["lr"], cfg["lr_end"], cfg["warmup_steps"],
                                   cfg["decay_steps"], current_step=start)
        assert s.get_last_lr() == expected["last_lr_at_start"]
        for i in range(6):
            assert opt.param_groups[0]["lr"] == expected["group_lr_before"][i]
            assert s.step() == expected["returned"][i] == OFFICIAL_LOCKED_LR
            assert s.get_last_lr() == expected["last_lr"][i]
            assert opt.param_groups[0]["lr"] == expected["group_lr_after"][i]
        ours = s.state_dict()
        assert ours.pop("lock_lr") == OFFICIAL_LOCKED_LR
        assert ours == expected["state_dict"]
    # the first step's get_last_lr is the constructor lr: the first optimizer step runs at 0.01
    assert record["runs"][0]["last_lr"][0] == [0.01]


def test_unlocked_schedule_is_warmup_then_cosine():
    """lock_lr=None applies what the official code computes and then discards."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    s = WarmupCosineLRSchedule(opt, init_lr=1e-5, peak_lr=1e-2, end_lr=1e-4, warmup_steps=2000, total_steps=40000,
                               lock_lr=None)
    assert s.computed_lr(0) == pytest.approx(1e-5)
    assert s.computed_lr(1000) == pytest.approx(1e-5 + (1e-2 - 1e-5) / 2)
    assert s.computed_lr(2000) == pytest.approx(1e-2)
    assert s.computed_lr(21000) == pytest.approx(1e-4 + 0.5 * (1e-2 - 1e-4))
    assert s.computed_lr(40000) == pytest.approx(1e-4)
    assert s.computed_lr(45000) == pytest.approx(1e-4)
    assert s.step() == pytest.approx(1e-5) and opt.param_groups[0]["lr"] == pytest.approx(1e-5)
    assert s.step() == pytest.approx(1e-5 + (1e-2 - 1e-5) / 2000)


def test_official_optimizer_configuration():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    opt, sched = official_optimizer(model, dict(lr=0.01, lr_init=1e-5, lr_end=1e-4, warmup_steps=2000,
                                                decay_steps=40000))
    g = opt.param_groups[0]
    assert (g["lr"], g["betas"], g["clipping_scale"], g["clipping_update_period"]) == (0.01, (0.9, 0.95), 2.0, 1000)
    assert opt.parameters_names == [["0.weight", "0.bias", "1.weight", "1.bias"]]
    assert sched.step() == OFFICIAL_LOCKED_LR and g["lr"] == OFFICIAL_LOCKED_LR


def test_scaled_adam_update_is_relative_to_parameter_size():
    """One step moves a tensor by about lr·rms(p) per element, whatever its scale.

    First step: |Δ| = lr·(1-β1)·rms(p) for every element (the Adam direction is ±1)."""
    torch.manual_seed(0)
    for scale in (0.01, 1.0):
        p = torch.nn.Parameter(torch.randn(50, 40) * scale)
        rms = p.detach().pow(2).mean().sqrt().item()
        before = p.detach().clone()
        opt = ScaledAdam([p], lr=0.1, betas=(0.9, 0.98))
        p.grad = torch.randn_like(p)
        opt.step()
        change = (p.detach() - before).abs()  # first step: grad/sqrt(grad²) = ±1 (up to eps)
        assert change.mean().item() == pytest.approx(0.1 * 0.1 * rms, rel=1e-3)
        assert math.isfinite(change.max().item())


def test_bad_arguments_are_clear_errors():
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="betas"):
        ScaledAdam([p], betas=(0.99, 0.9))
    with pytest.raises(ValueError, match="parameters_names"):
        ScaledAdam([p], parameters_names=[["a", "b"]])
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupCosineLRSchedule(torch.optim.SGD([p], lr=1.0), 1e-5, 1e-2, 1e-4, warmup_steps=10, total_steps=5)
