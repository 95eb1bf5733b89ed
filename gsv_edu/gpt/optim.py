"""The optimizer and learning-rate schedule of the GPT stage (s1): `ScaledAdam` and `WarmupCosineLRSchedule`.

Mirrors `GPT_SoVITS/AR/modules/optim.py · ScaledAdam @48b1a01` (itself from icefall's
Zipformer recipe, D. Povey) and `GPT_SoVITS/AR/modules/lr_schedulers.py · WarmupCosineLRSchedule
@48b1a01`, configured as `GPT_SoVITS/AR/models/t2s_lightning_module.py ·
configure_optimizers @48b1a01` does (`official_optimizer`).

ScaledAdam in one paragraph. Write every non-scalar parameter tensor as p = r · u with
r = rms(p) (its root-mean-square) and u of rms 1. Adam would move every element by about lr;
ScaledAdam moves it by about lr · r, i.e. by a fixed *fraction* of the tensor's own size, so a
large matrix and a small bias learn at the same relative speed with one learning rate. The
size r itself is learned separately, in log space, every `size_update_period` steps, from the
gradient of the loss with respect to log r, which is Σ p · ∂L/∂p; it is kept within
[param_min_rms, param_max_rms]. Parameters with a single element get plain Adam (without the
first-moment bias correction) at lr · scalar_lr_scale, clamped to ±scalar_max. Momentum is
applied to the whole update ("delta") rather than to the gradient.

Mechanics that decide the exact numbers, all reproduced:
- parameters of one group with the same dtype and shape are stacked into one tensor and
  updated together (a leading batch dimension); the stacks are visited in sorted order of
  (dtype name, *shape), and each stack's state lives in the optimizer state of its *first*
  parameter (so `state_dict()` has the official layout and official Lightning checkpoints load);
- gradient clipping (`clipping_scale`): the "normalized" gradient norm √Σ(rms(p)·g)² is
  recorded every step; every `clipping_update_period` steps the threshold becomes
  clipping_scale × the median of the recorded norms, and from then on larger norms are scaled
  down. Quirk: the clipped gradient feeds only the size update; the Adam update itself reads
  the unclipped gradient (`_step_one_batch` scales a local copy, `_step` re-reads `p.grad`).
  With the official clipping_update_period = 1000 nothing is clipped before step 1000;
- quirk: `_init_state` decides whether to keep the size statistics (`param_rms`,
  `scale_exp_avg_sq`, `scale_grads`) from the element count of the whole *stack*, while the
  update uses the count per parameter; a stack of several one-element parameters (the two
  `alpha`s of the GPT's positional encodings) therefore carries size statistics it never uses.

The schedule: `WarmupCosineLRSchedule` computes a linear warm-up from init_lr to peak_lr over
warmup_steps and a cosine decay to end_lr at total_steps, and then discards it: every `step()`
sets the learning rate (and `end_lr`) to 0.002 ("locked"). `get_last_lr()` returns the rate
*before* the last step. Since the Lightning module steps the scheduler after the optimizer
(manual optimization: Lightning never steps it), the very first optimizer step runs at
ScaledAdam's constructor lr (0.01) and every later one at 0.002. `lock_lr=None` applies the
computed warm-up/cosine curve instead (not official).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

__all__ = ["ScaledAdam", "WarmupCosineLRSchedule", "official_optimizer", "OFFICIAL_LOCKED_LR"]

OFFICIAL_LOCKED_LR = 0.002  # lr_schedulers.py: "self.lr = lr = self.end_lr = 0.002"


@dataclass
class _Stack:
    """Parameters of one group sharing dtype and shape, stacked along a new leading dimension."""

    members: list[torch.nn.Parameter]
    names: list[str]
    param: Tensor   # [n, *shape] copy of the members' values; updated, then written back
    grad: Tensor    # [n, *shape] their gradients (zeros for a member without one)
    state: dict     # the optimizer state of members[0]

    @property
    def per_member(self) -> int:
        """Elements of one member (1: a scalar-like parameter, plain Adam)."""
        return self.param.numel() // self.param.shape[0]

    @property
    def dims(self) -> list[int]:
        """Every dimension but the stacking one."""
        return list(range(1, self.param.ndim))


class ScaledAdam(torch.optim.Optimizer):
    """Adam with updates proportional to each tensor's rms, a learned tensor scale, and median clipping.

    Same arguments and defaults as the official class. `parameters_names`: one list of names per
    parameter group (the official requires it; here it defaults to "param{i}") — only used in the
    log line that names the parameter dominating a heavily clipped gradient
    (`show_dominant_parameters`).
    """

    def __init__(self, params, lr: float = 3e-2, clipping_scale: float | None = None,
                 betas: tuple[float, float] = (0.9, 0.98), scalar_lr_scale: float = 0.1, eps: float = 1.0e-8,
                 param_min_rms: float = 1.0e-5, param_max_rms: float = 3.0, scalar_max: float = 10.0,
                 size_update_period: int = 4, clipping_update_period: int = 100,
                 parameters_names: Sequence[Sequence[str]] | None = None, show_dominant_parameters: bool = True):
        if not 0.0 < betas[0] <= betas[1] < 1.0:
            raise ValueError(f"ScaledAdam: betas must satisfy 0 < beta1 <= beta2 < 1, got {betas}")
        defaults = dict(lr=lr, clipping_scale=clipping_scale, betas=betas, scalar_lr_scale=scalar_lr_scale, eps=eps,
                        param_min_rms=param_min_rms, param_max_rms=param_max_rms, scalar_max=scalar_max,
                        size_update_period=size_update_period, clipping_update_period=clipping_update_period)
        super().__init__(params, defaults)
        if parameters_names is None:
            parameters_names = [[f"param{i}" for i in range(len(g["params"]))] for g in self.param_groups]
        if len(parameters_names) != len(self.param_groups) or any(
                len(names) != len(g["params"]) for names, g in zip(parameters_names, self.param_groups)):
            raise ValueError("ScaledAdam: parameters_names needs one name per parameter, one list per group")
        self.parameters_names = [list(names) for names in parameters_names]
        self.show_dominant_parameters = show_dominant_parameters

    # ------------------------------------------------------------------ stacking
    def _stacks(self, group: dict, names: list[str]) -> list[_Stack]:
        """The group's parameters stacked by (dtype, shape), in sorted key order (official `batched_params`)."""
        by_key: dict[tuple, tuple[list, list]] = {}
        for p, name in zip(group["params"], names):
            members, member_names = by_key.setdefault((str(p.dtype), *p.shape), ([], []))
            members.append(p)
            member_names.append(name)
        stacks = []
        for key in sorted(by_key):
            members, member_names = by_key[key]
            param = torch.stack(members)  # [n, *shape]
            grad = torch.stack([torch.zeros_like(p) if p.grad is None else p.grad for p in members])  # [n, *shape]
            stacks.append(_Stack(members, member_names, param, grad, self.state[members[0]]))
        return stacks

    @staticmethod
    def _write_back(stacks: list[_Stack]) -> None:
        for stack in stacks:
            for i, p in enumerate(stack.members):
                p.copy_(stack.param[i])

    # ------------------------------------------------------------------ the step
    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter group (the closure, if any, is evaluated first with grad enabled)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group, names in zip(self.param_groups, self.parameters_names):
            stacks = self._stacks(group, names)
            if any(s.grad.is_sparse for s in stacks):
                raise RuntimeError("ScaledAdam does not support sparse gradients")
            # the first stack's state holds the step counter and the clipping statistics
            factor = 1.0 if len(stacks[0].state) == 0 else self._clipping_factor(group, stacks)
            for stack in stacks:
                if len(stack.state) == 0:
                    self._init_state(group, stack)
                self._update(group, stack, factor)
            self._write_back(stacks)
        return loss

    @staticmethod
    def _init_state(group: dict, stack: _Stack) -> None:
        p = stack.param  # [n, *shape]
        state = stack.state
        state["step"] = 0
        state["delta"] = torch.zeros_like(p, memory_format=torch.preserve_format)  # the momentum of the update
        if p.numel() > 1:  # official quirk: the whole stack's count, not per member (see the module docstring)
            param_rms = (p ** 2).mean(dim=stack.dims, keepdim=True).sqrt()  # [n, 1, ...]
            state["param_rms"] = param_rms
            state["scale_exp_avg_sq"] = torch.zeros_like(param_rms)
            state["scale_grads"] = torch.zeros(group["size_update_period"], *param_rms.shape,
                                               device=p.device, dtype=p.dtype)  # [period, n, 1, ...]
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _clipping_factor(self, group: dict, stacks: list[_Stack]) -> float:
        """The factor ≤ 1 that scales the gradients this step (official `_get_clipping_scale`)."""
        clipping_scale = group["clipping_scale"]
        first = stacks[0].state
        step = first["step"]
        if clipping_scale is None or step == 0:
            return 1.0
        period = group["clipping_update_period"]
        sumsq = torch.tensor(0.0, device=stacks[0].param.device)
        for s in stacks:
            if s.per_member == 1:
                sumsq += (s.grad ** 2).sum()
            else:
                sumsq += ((s.grad * s.state["param_rms"]) ** 2).sum()
        norm = sumsq.sqrt()
        if "model_norms" not in first:
            first["model_norms"] = torch.zeros(period, device=norm.device)  # [period]
        first["model_norms"][step % period] = norm
        if step % period == 0:
            ordered = first["model_norms"].sort()[0].to("cpu")
            quartiles = [ordered[min(period - 1, (period // 4) * k)].item() for k in range(5)]
            first["model_norm_threshold"] = clipping_scale * quartiles[2]
            clipped = first.get("num_clipped")
            percent = clipped * 100.0 / period if clipped is not None else 0.0
            first["num_clipped"] = 0
            logger.info("ScaledAdam clipping_scale=%s, grad-norm quartiles %s, threshold=%.3e, percent-clipped=%.1f",
                        clipping_scale, " ".join(f"{q:.3e}" for q in quartiles), first["model_norm_threshold"], percent)
        if step < period:
            return 1.0  # no threshold estimated yet
        threshold = first.get("model_norm_threshold")
        if threshold is None:
            logger.info("ScaledAdam: no model_norm_threshold in the state (clipping enabled on a resumed run?)")
            return 1.0
        factor = min(1.0, (threshold / (norm + 1.0e-20)).item())
        if factor < 1.0:
            first["num_clipped"] += 1
        if factor < 0.1:
            logger.warning("ScaledAdam: scaling gradients by %s, model_norm_threshold=%s", factor, threshold)
            if self.show_dominant_parameters:
                self._log_dominant(stacks, sumsq)
        return factor

    @staticmethod
    def _log_dominant(stacks: list[_Stack], sumsq: Tensor) -> None:
        """Name the parameter with the largest share of the normalized gradient norm."""
        shares = {}
        for s in stacks:
            if s.per_member == 1:
                member_sumsq = s.grad.reshape(len(s.members), -1).pow(2).sum(dim=1)  # [n]
            else:
                member_sumsq = ((s.grad * s.state["param_rms"]) ** 2).sum(dim=s.dims)  # [n]
            for name, value in zip(s.names, member_sumsq):
                shares[name] = (value / sumsq).item()
        name = max(shares, key=shares.get)
        logger.info("ScaledAdam: parameter dominating the gradient norm: %s (proportion %.2f)", name, shares[name])

    def _update(self, group: dict, stack: _Stack, factor: float) -> None:
        """One stack's update (official `_step_one_batch`)."""
        period = group["size_update_period"]
        beta1 = group["betas"][0]
        state, p = stack.state, stack.param
        clipped = stack.grad if factor == 1.0 else stack.grad * factor  # [n, *shape]
        step = state["step"]
        state["delta"].mul_(beta1)
        if stack.per_member > 1:
            # d loss / d log(scale) of each member = Σ p · g; kept for the size update
            state["scale_grads"][step % period] = (p * clipped).sum(dim=stack.dims, keepdim=True)  # [n, 1, ...]
            if step % period == period - 1:
                state["param_rms"].copy_((p ** 2).mean(dim=stack.dims, keepdim=True).sqrt())  # [n, 1, ...]
                if step > 0:
                    self._size_update(group, stack)
            self._scaled_adam_update(group, stack)
        else:
            self._scalar_update(group, stack)
        state["step"] = step + 1

    @staticmethod
    def _size_update(group: dict, stack: _Stack) -> None:
        """Learn each member's overall scale: an Adam step on log(scale), added to the momentum."""
        state, p = stack.state, stack.param
        beta1, beta2 = group["betas"]
        size_lr = group["lr"] * group["scalar_lr_scale"]
        scale_grads = state["scale_grads"]  # [period, n, 1, ...]
        period = scale_grads.shape[0]
        beta2_period = beta2 ** period  # beta2 per size update, which comes once every `period` steps
        avg_sq = state["scale_exp_avg_sq"]  # [n, 1, ...]
        avg_sq.mul_(beta2_period).add_((scale_grads ** 2).mean(dim=0), alpha=1 - beta2_period)
        size_step = (state["step"] + 1) // period
        bias_correction2 = 1 - beta2_period ** size_step
        denom = avg_sq.sqrt() + group["eps"]  # [n, 1, ...]
        scale_step = -size_lr * (bias_correction2 ** 0.5) * scale_grads.sum(dim=0) / denom  # [n, 1, ...]
        rms = state["param_rms"]
        scale_step.masked_fill_(rms < group["param_min_rms"], 0.0)  # too small: do not shrink further
        scale_step.masked_fill_(rms > group["param_max_rms"], -size_lr * period)  # too large: shrink
        state["delta"].add_(p * scale_step, alpha=1 - beta1)

    @staticmethod
    def _scaled_adam_update(group: dict, stack: _Stack) -> None:
        """Adam direction times the member's rms (official `_step`; reads the unclipped gradient)."""
        state, p, grad = stack.state, stack.param, stack.grad
        beta1, beta2 = group["betas"]
        exp_avg_sq = state["exp_avg_sq"]  # [n, *shape]
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction2 = 1 - beta2 ** (state["step"] - state.get("zero_step", 0) + 1)
        if bias_correction2 < 0.99:
            exp_avg_sq = exp_avg_sq * (1.0 / bias_correction2)
        denom = exp_avg_sq.sqrt()
        denom += group["eps"]
        alpha = -group["lr"] * (1 - beta1) * state["param_rms"].clamp(min=group["param_min_rms"])  # [n, 1, ...]
        delta = state["delta"]
        delta.add_((grad / denom) * alpha)
        p.add_(delta)

    @staticmethod
    def _scalar_update(group: dict, stack: _Stack) -> None:
        """Plain Adam (no first-moment bias correction) for one-element parameters (official `_step_scalar`)."""
        state, p, grad = stack.state, stack.param, stack.grad
        beta1, beta2 = group["betas"]
        lr = group["lr"] * group["scalar_lr_scale"]
        exp_avg_sq = state["exp_avg_sq"]  # [n, 1...]
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction2 = 1 - beta2 ** (state["step"] + 1)
        denom = (exp_avg_sq / bias_correction2).sqrt() + group["eps"]
        delta = state["delta"]
        delta.add_(grad / denom, alpha=-lr * (1 - beta1))
        p.clamp_(min=-group["scalar_max"], max=group["scalar_max"])
        p.add_(delta)


class WarmupCosineLRSchedule(torch.optim.lr_scheduler.LRScheduler):
    """Warm-up then cosine decay, computed — and, as the official code does, overridden by a fixed 0.002.

    `step()`: compute lr(current_step) (linear from init_lr to peak_lr over warmup_steps, cosine
    from peak_lr to end_lr until total_steps, end_lr after), then, with `lock_lr` set (the
    official behaviour), replace it by lock_lr and also set `end_lr = lock_lr`; write it into
    every parameter group; return it. `get_last_lr()` is the groups' lr *before* the last step
    (official). The constructor does not touch the optimizer's lr.

    `state_dict()` holds the official attributes (init_lr, peak_lr, end_lr, _warmup_rate,
    _decay_rate, _current_step, lr, warmup_steps, total_steps, _last_lr) plus lock_lr, so
    official Lightning checkpoints load.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, init_lr: float, peak_lr: float, end_lr: float,
                 warmup_steps: int = 10000, total_steps: int = 400000, current_step: int = 0,
                 lock_lr: float | None = OFFICIAL_LOCKED_LR):
        if not 0 < warmup_steps < total_steps:
            raise ValueError(f"WarmupCosineLRSchedule: need 0 < warmup_steps < total_steps, got {warmup_steps}, "
                             f"{total_steps}")
        # deliberately no super().__init__ (official): it would reset the optimizer's lr and step once
        self.optimizer = optimizer
        self.init_lr, self.peak_lr, self.end_lr = init_lr, peak_lr, end_lr
        self._warmup_rate = (peak_lr - init_lr) / warmup_steps
        self._decay_rate = (end_lr - peak_lr) / (total_steps - warmup_steps)
        self._current_step = current_step
        self.lr = init_lr
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self._last_lr = [self.lr]
        self.lock_lr = lock_lr

    def computed_lr(self, step: int) -> float:
        """The warm-up/cosine value at `step` (what the official code computes before locking)."""
        if step < self.warmup_steps:
            return self.init_lr + self._warmup_rate * step
        if step > self.total_steps:
            return self.end_lr
        progress = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)  # in [0, 1]
        return self.end_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (self.peak_lr - self.end_lr)

    def step(self, epoch=None) -> float:  # noqa: ARG002 - LRScheduler signature
        lr = self.computed_lr(self._current_step)
        if self.lock_lr is not None:
            lr = self.end_lr = self.lock_lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.lr = lr
        self._current_step += 1
        return lr

    def get_last_lr(self) -> list[float]:
        return self._last_lr

    def load_state_dict(self, state_dict: dict) -> None:
        """Official states have no lock_lr: they were locked."""
        self.__dict__.update({"lock_lr": OFFICIAL_LOCKED_LR, **state_dict})


def official_optimizer(model: torch.nn.Module, optimizer_config: dict, *,
                       lock_lr: float | None = OFFICIAL_LOCKED_LR) -> tuple[ScaledAdam, WarmupCosineLRSchedule]:
    """ScaledAdam and its schedule as `t2s_lightning_module.py · configure_optimizers` builds them.

    `model`: the `Text2SemanticDecoder` (names are its `named_parameters`, one group);
    `optimizer_config`: the `optimizer` section of s1longer-v2.yaml (lr, lr_init, lr_end,
    warmup_steps, decay_steps). The constructor lr is a fixed 0.01 (not the config's lr).
    """
    names = [name for name, _ in model.named_parameters()]
    optimizer = ScaledAdam(model.parameters(), lr=0.01, betas=(0.9, 0.95), clipping_scale=2.0,
                           parameters_names=[names], show_dominant_parameters=False, clipping_update_period=1000)
    scheduler = WarmupCosineLRSchedule(optimizer, init_lr=optimizer_config["lr_init"], peak_lr=optimizer_config["lr"],
                                       end_lr=optimizer_config["lr_end"],
                                       warmup_steps=optimizer_config["warmup_steps"],
                                       total_steps=optimizer_config["decay_steps"], lock_lr=lock_lr)
    return optimizer, scheduler
