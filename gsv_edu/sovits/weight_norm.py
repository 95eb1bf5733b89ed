"""Weight normalisation with the official (legacy) state-dict keys, and folding it away.

Weight normalisation (Salimans & Kingma 2016, "Weight Normalization: A Simple Reparameterization
to Accelerate Training of Deep Neural Networks") writes a convolution weight as

    w = g · v / ‖v‖        (‖v‖ over every axis except `dim`, g has size 1 on those axes)

and trains the direction v and the length g instead of w. GPT-SoVITS uses it on the HiFi-GAN
upsamplers and ResBlocks, on every WaveNet (`WN`) conv and on every discriminator conv
(`GPT_SoVITS/module/models.py · Generator.__init__, DiscriminatorS.__init__,
DiscriminatorP.__init__` and `GPT_SoVITS/module/modules.py · WN.__init__, ResBlock1.__init__`
@48b1a01), through the *legacy* `torch.nn.utils.weight_norm`, so the checkpoints store
`<name>.weight_g` (shape [out, 1, 1] or [out, 1, 1, 1]) and `<name>.weight_v` (the full weight
shape). For `ConvTranspose1d` the weight is [in, out, k] and dim 0 is the *input*-channel axis,
so g is [in, 1, 1].

Why our own implementation instead of torch's:
- `torch.nn.utils.weight_norm` is deprecated in torch 2.x (FutureWarning) and its successor,
  `torch.nn.utils.parametrizations.weight_norm`, renames the keys to
  `parametrizations.weight.original0/1`, which official checkpoints do not have.
- The mechanism is small enough to read in full: the module keeps two parameters, `weight_g`
  and `weight_v`, and a forward pre-hook recomputes the plain attribute `weight` from them
  before every call, so the module's own `forward` (an ordinary conv) is untouched. This is
  the same mechanism as torch's legacy version, hence the same state-dict keys *and key order*
  (`bias`, `weight_g`, `weight_v`: the original `weight` is removed and the two new
  parameters are appended).
- For inference the recomputation is pure overhead: `fold_weight_norm(model)` computes w once
  per conv and stores it as an ordinary `weight` parameter (what the official
  `remove_weight_norm()` does). It also folds convs that carry torch's legacy hook, so models
  built with either implementation can be prepared the same way.

Unlike torch's legacy version, a weight-normed module can always be `copy.deepcopy`-ed: the
derived `weight` attribute holds a graph-connected tensor only *during* a forward; a forward
hook swaps it for a detached copy afterwards (the autograd graph keeps its own reference, so
backward is unaffected), and it is detached from construction on.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.weight_norm import WeightNorm as _TorchLegacyWeightNorm  # to recognise its hook


def _norm_except_dim(v: torch.Tensor, dim: int) -> torch.Tensor:
    """‖v‖₂ over every axis except `dim`, kept as size-1 axes (the shape of g)."""
    other_axes = tuple(a for a in range(v.dim()) if a != dim)
    return torch.linalg.vector_norm(v, ord=2, dim=other_axes, keepdim=True)  # [out, 1, 1(, 1)]


class WeightNorm:
    """The forward pre-hook that sets `module.<name> = g · v / ‖v‖` before each forward.

    Registered by `weight_norm()`; recognised (and removed) by `remove_weight_norm()` and
    `fold_weight_norm()`.
    """

    def __init__(self, name: str, dim: int):
        self.name = name
        self.dim = dim

    def compute_weight(self, module: nn.Module) -> torch.Tensor:
        g = getattr(module, self.name + "_g")  # [out, 1, 1]
        v = getattr(module, self.name + "_v")  # full weight shape
        # torch._weight_norm computes exactly v · (g / ‖v‖) in one fused kernel with a fused
        # backward (about 2× faster in training than the three separate operations); it is
        # the kernel that torch's own weight-norm implementations call.
        return torch._weight_norm(v, g, self.dim)

    def __call__(self, module: nn.Module, inputs) -> None:
        setattr(module, self.name, self.compute_weight(module))

    def detach_after_forward(self, module: nn.Module, inputs, output) -> None:
        """Forward hook: keep no graph-connected tensor on the module between calls (deepcopy-able)."""
        setattr(module, self.name, getattr(module, self.name).detach())


def weight_norm(module: nn.Module, name: str = "weight", dim: int = 0) -> nn.Module:
    """Re-parametrise `module.<name>` as `<name>_g` and `<name>_v` (in place); returns the module.

    Same semantics and state-dict keys as the legacy `torch.nn.utils.weight_norm(module, name,
    dim)`: g is initialised to ‖w‖ and v to w, so the effective weight is unchanged.
    """
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, WeightNorm) and hook.name == name:
            raise RuntimeError(f"weight_norm: {type(module).__name__}.{name} is already weight-normed")
    weight = getattr(module, name)
    if not isinstance(weight, nn.Parameter):
        raise TypeError(f"weight_norm: {type(module).__name__}.{name} is not a Parameter")
    fn = WeightNorm(name, dim)
    del module._parameters[name]
    module.register_parameter(name + "_g", nn.Parameter(_norm_except_dim(weight, dim).detach().clone()))
    module.register_parameter(name + "_v", nn.Parameter(weight.detach().clone()))
    # The plain attribute exists from the start (code that reads `.weight` before the first
    # forward, such as the official init_weights, still works).
    setattr(module, name, fn.compute_weight(module).detach())
    module.register_forward_pre_hook(fn)
    module.register_forward_hook(fn.detach_after_forward)
    return module


def remove_weight_norm(module: nn.Module, name: str = "weight") -> nn.Module:
    """Fold the weight norm of one module into a plain `<name>` parameter (in place).

    Accepts our `WeightNorm` and torch's legacy one. Raises if the module has neither.
    """
    for key, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, WeightNorm) and hook.name == name:
            with torch.no_grad():
                weight = hook.compute_weight(module)
            del module._forward_pre_hooks[key]
            for post_key, post in list(module._forward_hooks.items()):
                if getattr(post, "__self__", None) is hook:
                    del module._forward_hooks[post_key]
            delattr(module, name)  # the derived plain attribute
            del module._parameters[name + "_g"]
            del module._parameters[name + "_v"]
            module.register_parameter(name, nn.Parameter(weight))
            return module
    if _has_torch_legacy_weight_norm(module, name):
        torch.nn.utils.remove_weight_norm(module, name)
        return module
    raise ValueError(f"remove_weight_norm: {type(module).__name__}.{name} is not weight-normed")


def _has_torch_legacy_weight_norm(module: nn.Module, name: str) -> bool:
    """True if torch's legacy `torch.nn.utils.weight_norm` hook is on `module.<name>`."""
    return any(isinstance(h, _TorchLegacyWeightNorm) and h.name == name
               for h in module._forward_pre_hooks.values())


def is_weight_normed(module: nn.Module, name: str = "weight") -> bool:
    """True if `module.<name>` is weight-normed (ours or torch's legacy hook)."""
    ours = any(isinstance(h, WeightNorm) and h.name == name for h in module._forward_pre_hooks.values())
    return ours or _has_torch_legacy_weight_norm(module, name)


def fold_weight_norm(module: nn.Module) -> nn.Module:
    """Fold every weight-normed sub-module of a tree into plain weights, in place; returns it.

    Use it for inference after loading a checkpoint: outputs are unchanged (up to float
    rounding) and each forward no longer recomputes g·v/‖v‖. The state-dict keys become
    `<name>.weight`, so load official checkpoints *before* folding.
    """
    for sub in module.modules():
        for hook in list(sub._forward_pre_hooks.values()):
            if isinstance(hook, WeightNorm):
                remove_weight_norm(sub, hook.name)
        if _has_torch_legacy_weight_norm(sub, "weight"):
            torch.nn.utils.remove_weight_norm(sub, "weight")
    return module
