"""Fixture group `gpt_optim`: the official ScaledAdam and WarmupCosineLRSchedule, stepped with fixed data.

Runs `GPT_SoVITS/AR/modules/optim.py · ScaledAdam` and `GPT_SoVITS/AR/modules/lr_schedulers.py ·
WarmupCosineLRSchedule` @48b1a01 on the CPU in float32 (one float64 parameter) and writes

- `gpt/optim_scaled_adam.pt`: two parameter groups of rule-made parameters of several shapes
  (matrices, a 3-d tensor, a bias, a 0-d scalar, two one-element `alpha`-like parameters that
  are stacked together, a parameter without gradient, a float64 matrix, a tiny-rms one and a
  large-rms one), 14 steps with seeded gradients (a 100× spike at step 10 so that clipping
  engages) under `clipping_scale=2, clipping_update_period=4, size_update_period=4`; for each
  step the gradients fed, the learning rates used, and the parameters after the step; the
  final `state_dict()` of the optimizer (its layout: state on the first parameter of each stack);
- `gpt/optim_official_config.pt`: the configuration of `t2s_lightning_module.configure_optimizers`
  (ScaledAdam lr 0.01, betas (0.9, 0.95), clipping_scale 2, clipping_update_period 1000, with the
  s1longer-v2.yaml schedule) for 6 steps on three parameters;
- `gpt/optim_schedule.pt`: the learning rate of the parameter group before and after each of 6
  `scheduler.step()`s, the returned values and `get_last_lr()`, for the s1longer-v2.yaml
  optimizer section, and the same from `current_step` 1999, 2000, 30000 and 50000 (warm-up end,
  cosine, after the end): the schedule locks the rate at 0.002 everywhere.
"""
from __future__ import annotations

import copy
import pathlib
import sys

import torch

S1_OPTIMIZER = dict(lr=0.01, lr_init=0.00001, lr_end=0.0001, warmup_steps=2000, decay_steps=40000)  # s1longer-v2.yaml


def _import_official(official: pathlib.Path):
    root = str(official / "GPT_SoVITS")
    if root not in sys.path:
        sys.path.insert(0, root)
    from AR.modules.lr_schedulers import WarmupCosineLRSchedule
    from AR.modules.optim import ScaledAdam

    return ScaledAdam, WarmupCosineLRSchedule


def make_parameters() -> tuple[list[dict], list[list[str]]]:
    """Rule-made parameters in two groups (names, values); the test rebuilds them from the fixture."""
    g = torch.Generator().manual_seed(1234)

    def randn(*shape, scale=1.0, dtype=torch.float32):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)

    group1 = {
        "w1": randn(4, 3, scale=0.5),
        "w2": randn(4, 3, scale=0.2),
        "conv": randn(5, 2, 3, scale=0.3),
        "bias": randn(3, scale=0.1),
        "scalar0d": torch.tensor(12.0),          # beyond scalar_max = 10: clamped
        "alpha_text": torch.ones(1),             # two [1] parameters: one stack of scalars
        "alpha_audio": torch.ones(1) * 0.5,
        "unused": randn(2, 2, scale=0.5),        # never gets a gradient
        "w64": randn(3, 2, scale=0.4, dtype=torch.float64),
        "tiny": randn(6, scale=1e-6),            # rms < param_min_rms: its scale never shrinks
        "huge": randn(2, 5, scale=5.0),          # rms > param_max_rms: forced to shrink
    }
    group2 = {
        "w3": randn(4, 3, scale=0.3),  # same shape as w1/w2, but another group: its own stack
        "emb": randn(7, 4, scale=1.0),
    }
    groups = [group1, group2]
    return groups, [list(gr) for gr in groups]


def gradient(name: str, p: torch.Tensor, step: int) -> torch.Tensor | None:
    """A gradient that depends on the current value (a pull towards 0.3·p) plus seeded noise."""
    if name == "unused":
        return None
    g = torch.Generator().manual_seed(1000 * step + sum(map(ord, name)))
    noise = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)
    grad = 0.3 * p.detach() + 0.05 * noise
    if step == 10:
        grad = grad * 100.0  # a spike: clipped once a threshold exists
    return grad


def _run_scaled_adam(ScaledAdam, WarmupCosineLRSchedule, kwargs: dict, steps: int, with_schedule: bool) -> dict:
    groups, names = make_parameters()
    params = [[torch.nn.Parameter(v.clone()) for v in gr.values()] for gr in groups]
    param_groups = [{"params": params[0]}, {"params": params[1], "lr": kwargs["lr"] * 0.5}]
    opt = ScaledAdam(param_groups, parameters_names=names, **kwargs)
    scheduler = None
    if with_schedule:
        scheduler = WarmupCosineLRSchedule(opt, init_lr=S1_OPTIMIZER["lr_init"], peak_lr=S1_OPTIMIZER["lr"],
                                           end_lr=S1_OPTIMIZER["lr_end"], warmup_steps=S1_OPTIMIZER["warmup_steps"],
                                           total_steps=S1_OPTIMIZER["decay_steps"])
    record = {"grads": [], "lrs": [], "after": []}
    for step in range(steps):
        grads = {}
        for gi, (gr_names, gr_params) in enumerate(zip(names, params)):
            for name, p in zip(gr_names, gr_params):
                grad = gradient(name, p, step)
                p.grad = grad
                if grad is not None:
                    grads[name] = grad.clone()
        record["grads"].append(grads)
        record["lrs"].append([grp["lr"] for grp in opt.param_groups])
        opt.step()
        opt.zero_grad()
        if scheduler is not None:
            scheduler.step()
        record["after"].append({n: p.detach().clone() for gr_names, gr_params in zip(names, params)
                                for n, p in zip(gr_names, gr_params)})
    record["initial"] = {n: v.clone() for gr in groups for n, v in gr.items()}
    record["names"] = names
    record["group_lrs"] = [kwargs["lr"], kwargs["lr"] * 0.5]
    record["kwargs"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}
    record["state_dict"] = copy.deepcopy(opt.state_dict())
    return record


def _schedule(WarmupCosineLRSchedule, ScaledAdam) -> dict:
    out = {}
    for start in (0, 1999, 2000, 30000, 50000):
        p = torch.nn.Parameter(torch.zeros(2))
        opt = ScaledAdam([p], lr=0.01, parameters_names=[["p"]])
        s = WarmupCosineLRSchedule(opt, init_lr=S1_OPTIMIZER["lr_init"], peak_lr=S1_OPTIMIZER["lr"],
                                   end_lr=S1_OPTIMIZER["lr_end"], warmup_steps=S1_OPTIMIZER["warmup_steps"],
                                   total_steps=S1_OPTIMIZER["decay_steps"], current_step=start)
        rows = {"group_lr_before": [], "returned": [], "last_lr": [], "group_lr_after": []}
        rows["last_lr_at_start"] = list(s.get_last_lr())
        for _ in range(6):
            rows["group_lr_before"].append(opt.param_groups[0]["lr"])
            rows["returned"].append(s.step())
            rows["last_lr"].append(list(s.get_last_lr()))
            rows["group_lr_after"].append(opt.param_groups[0]["lr"])
        rows["state_dict"] = dict(s.state_dict())
        out[start] = rows
    return out


def make(official: pathlib.Path, out: pathlib.Path) -> list[pathlib.Path]:
    ScaledAdam, WarmupCosineLRSchedule = _import_official(official)
    torch.set_num_threads(1)
    folder = out / "gpt"
    folder.mkdir(parents=True, exist_ok=True)
    written = []

    small = dict(lr=0.01, clipping_scale=2.0, betas=(0.9, 0.98), scalar_lr_scale=0.1, eps=1e-8, param_min_rms=1e-5,
                 param_max_rms=3.0, scalar_max=10.0, size_update_period=4, clipping_update_period=4,
                 show_dominant_parameters=True)
    record = _run_scaled_adam(ScaledAdam, WarmupCosineLRSchedule, small, steps=14, with_schedule=False)
    path = folder / "optim_scaled_adam.pt"
    torch.save(record, path)
    written.append(path)

    official_cfg = dict(lr=0.01, betas=(0.9, 0.95), clipping_scale=2.0, show_dominant_parameters=False,
                        clipping_update_period=1000)
    record = _run_scaled_adam(ScaledAdam, WarmupCosineLRSchedule, official_cfg, steps=6, with_schedule=True)
    record["schedule"] = S1_OPTIMIZER
    path = folder / "optim_official_config.pt"
    torch.save(record, path)
    written.append(path)

    path = folder / "optim_schedule.pt"
    torch.save({"optimizer_config": S1_OPTIMIZER, "runs": _schedule(WarmupCosineLRSchedule, ScaledAdam)}, path)
    written.append(path)
    return written
