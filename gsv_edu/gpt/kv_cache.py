"""A KV-cache decoder for the GPT stage (s1), written for speed on the CPU.

Upstream decodes with `T2STransformer.process_prompt / decode_next_token`
(`GPT_SoVITS/AR/models/t2s_model.py @48b1a01`): the prompt runs once, and each new token
runs through the 24 layers alone, attending to the keys and values cached for the earlier
positions. This module computes the same thing (same tokens for the same seed; the logits
agree to float32 rounding) with four changes that matter on a CPU, where one token is a
chain of matrix–vector products and reading the 300 MB of weights dominates (numbers below
from this project's 2-core machine, official size, best of 15 runs of the 96 products):

1. **Weights stored transposed** (`[in, out]`, contiguous) and multiplied by numpy's BLAS
   (OpenBLAS in the PyPI wheels): 14.9 ms for the 96 products of one token on one thread,
   against 25.4 ms for `F.linear` on the official `[out, in]` layout (torch's MKL; 20.1 ms
   with the transposed layout). The copies are made once and rebuilt only when the model's
   parameters change (their storage or version counter), so training between two inferences
   is seen. numpy and torch share the memory (`Tensor.numpy()`), nothing is copied per step.
2. **One thread for the steps.** A matrix–vector product is bound by memory, not arithmetic:
   MKL is no faster on two threads than on one, and two-thread pools that spin while they
   wait lose badly when other processes share the cores (OpenBLAS on two threads measured
   37 ms best, 200+ ms typical, on the loaded machine). The steps run with torch and the BLAS
   limited to one thread (`decoding()`; the BLAS limit needs `threadpoolctl`, otherwise the
   steps use torch's MKL); the prompt pass, a real matrix product, keeps the caller's threads.
3. **A preallocated cache** `[B, H, capacity, head_dim]` per layer, written in place.
   Upstream concatenates the new key/value to the cache at every step and layer, which copies
   the whole cache each time (quadratic in the sequence length).
4. **No per-step masks or TorchScript calls**: after the prompt a new token may see every
   cached position, so the step needs no mask at all.

The prompt pass (prefill) keeps upstream's boolean prefix-LM mask and `F.linear` calls.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
import torch.nn.functional as F

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # optional: without it numpy's BLAS cannot be held to one thread, and torch's is used
    ThreadpoolController = None

if TYPE_CHECKING:  # only for annotations: t2s_model imports this module
    from gsv_edu.gpt.t2s_model import Text2SemanticDecoder

__all__ = ["KVCacheDecoder"]

_BLAS: list = []  # the process's ThreadpoolController, made on first use (it scans the loaded libraries)


def _blas_controller():
    if ThreadpoolController is None:
        return None
    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    return _BLAS[0]


def _weight_signature(model: torch.nn.Module) -> tuple:
    """Identifies the current parameter values: storage address, version counter, dtype, device."""
    return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in model.parameters())


class _Layer:
    """One post-LN block's weights, laid out for decoding."""

    __slots__ = ("qkv_w", "qkv_b", "qkv_wt", "out_w", "out_b", "out_wt", "w1", "b1", "w1t", "w2", "b2", "w2t",
                 "n1_w", "n1_b", "n1_eps", "n2_w", "n2_b", "n2_eps", "np_w")

    def __init__(self, layer: torch.nn.Module, transpose: bool, use_numpy: bool):
        attn = layer.self_attn
        self.qkv_w, self.qkv_b = attn.in_proj_weight.detach(), attn.in_proj_bias.detach()
        self.out_w, self.out_b = attn.out_proj.weight.detach(), attn.out_proj.bias.detach()
        self.w1, self.b1 = layer.linear1.weight.detach(), layer.linear1.bias.detach()
        self.w2, self.b2 = layer.linear2.weight.detach(), layer.linear2.bias.detach()
        t = (lambda w: w.t().contiguous()) if transpose else (lambda w: w.t())
        self.qkv_wt, self.out_wt, self.w1t, self.w2t = t(self.qkv_w), t(self.out_w), t(self.w1), t(self.w2)
        # numpy views of the same memory, for the numpy-BLAS steps (None when not used)
        self.np_w = tuple(w.numpy() for w in (self.qkv_wt, self.out_wt, self.w1t, self.w2t)) if use_numpy else None
        self.n1_w, self.n1_b, self.n1_eps = layer.norm1.weight.detach(), layer.norm1.bias.detach(), layer.norm1.eps
        self.n2_w, self.n2_b, self.n2_eps = layer.norm2.weight.detach(), layer.norm2.bias.detach(), layer.norm2.eps


class KVCacheDecoder:
    """Prefill once, then one token per `step`, for a post-LN `Text2SemanticDecoder`.

        dec = KVCacheDecoder(model)
        hidden = dec.prefill(xy_pos, blocked, max_new=1500)   # [B, S, D]; blocked [S, S] True = masked
        logits = dec.predict(hidden[:, -1])                   # [B, V]
        hidden = dec.step(next_pos)                           # next_pos [B, 1, D] -> [B, D]
    """

    INITIAL_ROOM = 512  # new positions allocated at prefill; the cache doubles when a sequence outgrows it
    STEP_THREADS = 1  # threads for the steps (see the module docstring, point 2)

    def __init__(self, model: "Text2SemanticDecoder"):
        if model.norm_first:
            raise NotImplementedError("KVCacheDecoder implements the post-LN layers (norm_first=False) "
                                      "that every s1 checkpoint uses")
        self.signature = _weight_signature(model)
        self.num_heads = model.num_head
        self.dim = model.model_dim
        self.head_dim = self.dim // self.num_heads
        # transposed copies pay off on the CPU; elsewhere (CUDA) a transposed view is as fast
        weight = model.ar_predict_layer.weight
        transpose = weight.device.type == "cpu"
        self.use_numpy = transpose and weight.dtype == torch.float32 and _blas_controller() is not None
        self.layers = [_Layer(layer, transpose, self.use_numpy) for layer in model.h.layers]
        w = model.ar_predict_layer.weight.detach()
        self.predict_wt = w.t().contiguous() if transpose else w.t()
        self.k_cache: list[torch.Tensor] = []
        self.v_cache: list[torch.Tensor] = []
        self.length = 0
        self._buffers: dict[str, torch.Tensor] = {}  # outputs of the numpy products, reused every layer

    @contextlib.contextmanager
    def decoding(self) -> Iterator[None]:
        """Hold torch (and numpy's BLAS) to `STEP_THREADS` threads while stepping, then restore."""
        if not self.layers or self.layers[0].qkv_w.device.type != "cpu":
            yield
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(min(threads, self.STEP_THREADS))
        blas = _blas_controller()
        limit = blas.limit(limits=self.STEP_THREADS, user_api="blas") if blas is not None else contextlib.nullcontext()
        try:
            with limit:
                yield
        finally:
            torch.set_num_threads(threads)

    def matches(self, model: torch.nn.Module) -> bool:
        """True while the model's parameters are those this decoder was built from."""
        return _weight_signature(model) == self.signature

    # ------------------------------------------------------------------ cache
    def _allocate(self, batch: int, capacity: int, like: torch.Tensor) -> None:
        shape = (batch, self.num_heads, capacity, self.head_dim)
        self.k_cache = [like.new_empty(shape) for _ in self.layers]
        self.v_cache = [like.new_empty(shape) for _ in self.layers]

    def _grow(self) -> None:
        """Double the capacity (only when a sequence outgrows the first allocation)."""
        for cache in (self.k_cache, self.v_cache):
            for i, c in enumerate(cache):
                bigger = c.new_empty(c.size(0), c.size(1), 2 * c.size(2), c.size(3))
                bigger[:, :, : self.length].copy_(c[:, :, : self.length])
                cache[i] = bigger

    # ------------------------------------------------------------------ passes
    def prefill(self, xy_pos: torch.Tensor, blocked: torch.Tensor, max_new: int) -> torch.Tensor:
        """Run the whole prompt [B, S, D] under `blocked` ([S, S] or broadcastable, True = may not
        attend), fill the cache (room for min(max_new, INITIAL_ROOM) new tokens before it grows), return the outputs [B, S, D]."""
        B, S, D = xy_pos.shape
        H, Dh = self.num_heads, self.head_dim
        self._allocate(B, S + max(1, min(max_new, self.INITIAL_ROOM)), xy_pos)
        if self.use_numpy:
            self._buffers = {name: xy_pos.new_empty(B, width) for name, width in
                             (("qkv", 3 * D), ("out", D), ("ff1", self.layers[0].w1t.size(1)), ("ff2", D))}
        allowed = ~blocked
        x = xy_pos
        for i, L in enumerate(self.layers):
            q, k, v = F.linear(x, L.qkv_w, L.qkv_b).chunk(3, dim=-1)  # 3 × [B, S, D]
            q = q.view(B, S, H, Dh).transpose(1, 2)  # [B, H, S, Dh]
            k = k.view(B, S, H, Dh).transpose(1, 2)
            v = v.view(B, S, H, Dh).transpose(1, 2)
            self.k_cache[i][:, :, :S].copy_(k)
            self.v_cache[i][:, :, :S].copy_(v)
            attn = F.scaled_dot_product_attention(q, k, v, allowed)  # [B, H, S, Dh]
            attn = F.linear(attn.transpose(1, 2).reshape(B, S, D), L.out_w, L.out_b)
            x = F.layer_norm(x + attn, (D,), L.n1_w, L.n1_b, L.n1_eps)
            ff = F.linear(F.relu(F.linear(x, L.w1, L.b1)), L.w2, L.b2)
            x = F.layer_norm(x + ff, (D,), L.n2_w, L.n2_b, L.n2_eps)
        self.length = S
        return x

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One new position x [B, 1, D] (or [B, D]) through every layer → its output [B, D]."""
        if self.length == self.k_cache[0].size(2):
            self._grow()
        h = x.reshape(x.size(0), self.dim)
        h = self._step_numpy(h) if self.use_numpy else self._step_torch(h)
        self.length += 1
        return h

    def _attend(self, qkv: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor) -> torch.Tensor:
        """Write this position's key and value into the cache, attend over it: [B, D]."""
        B, D, H, Dh, t = qkv.size(0), self.dim, self.num_heads, self.head_dim, self.length
        kc[:, :, t].copy_(qkv[:, D:2 * D].view(B, H, Dh))
        vc[:, :, t].copy_(qkv[:, 2 * D:].view(B, H, Dh))
        q = qkv[:, :D].view(B, H, 1, Dh)
        return F.scaled_dot_product_attention(q, kc[:, :, : t + 1], vc[:, :, : t + 1]).reshape(B, D)

    def _step_torch(self, h: torch.Tensor) -> torch.Tensor:
        shape, addmm, layer_norm = (self.dim,), torch.addmm, F.layer_norm
        for L, kc, vc in zip(self.layers, self.k_cache, self.v_cache):
            attn = self._attend(addmm(L.qkv_b, h, L.qkv_wt), kc, vc)  # [B, D]
            h = layer_norm(h + addmm(L.out_b, attn, L.out_wt), shape, L.n1_w, L.n1_b, L.n1_eps)
            ff = addmm(L.b2, addmm(L.b1, h, L.w1t).relu_(), L.w2t)  # [B, D]
            h = layer_norm(h + ff, shape, L.n2_w, L.n2_b, L.n2_eps)
        return h

    def _step_numpy(self, h: torch.Tensor) -> torch.Tensor:
        buf = self._buffers
        if buf["qkv"].size(0) != h.size(0):
            raise ValueError(f"step: batch of {h.size(0)}, but the prefill had {buf['qkv'].size(0)}")
        qkv, out, ff1, ff2 = buf["qkv"], buf["out"], buf["ff1"], buf["ff2"]
        n_qkv, n_out, n_ff1, n_ff2 = qkv.numpy(), out.numpy(), ff1.numpy(), ff2.numpy()  # same memory
        shape, matmul, layer_norm = (self.dim,), np.matmul, F.layer_norm
        for L, kc, vc in zip(self.layers, self.k_cache, self.v_cache):
            w_qkv, w_out, w_1, w_2 = L.np_w
            matmul(h.contiguous().numpy(), w_qkv, out=n_qkv)
            attn = self._attend(qkv.add_(L.qkv_b), kc, vc)  # [B, D]
            matmul(attn.numpy(), w_out, out=n_out)
            h = layer_norm(h + out.add_(L.out_b), shape, L.n1_w, L.n1_b, L.n1_eps)
            matmul(h.numpy(), w_1, out=n_ff1)
            matmul(ff1.add_(L.b1).relu_().numpy(), w_2, out=n_ff2)
            h = layer_norm(h + ff2.add_(L.b2), shape, L.n2_w, L.n2_b, L.n2_eps)
        return h

    def predict(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits [B, V] of the last position: hidden [B, S, D] (its last row is used) or [B, D]."""
        if hidden.dim() == 3:
            hidden = hidden[:, -1]
        return hidden @ self.predict_wt
