"""A KV-cache decoder for the GPT stage (s1), written for speed on the CPU.

Upstream decodes with `T2STransformer.process_prompt / decode_next_token`
(`GPT_SoVITS/AR/models/t2s_model.py @48b1a01`): the prompt runs once, and each new token
runs through the 24 layers alone, attending to the keys and values cached for the earlier
positions. This module computes the same thing (same tokens for the same seed; the logits
agree to float32 rounding) with three changes that matter on a CPU, where one token is a
chain of matrix–vector products and reading the 300 MB of weights dominates:

1. **Weights stored transposed** (`[in, out]`, contiguous). `x @ W_t` streams the weight
   matrix row by row; `F.linear(x, W)` with the official `[out, in]` layout takes a slower
   matrix-vector kernel on this machine (~2× slower measured on the official shapes). The
   copies are made once and rebuilt only when the model's parameters change (their storage
   or version counter), so training between two inferences is seen.
2. **A preallocated cache** `[B, H, capacity, head_dim]` per layer, written in place.
   Upstream concatenates the new key/value to the cache at every step and layer, which copies
   the whole cache each time (quadratic in the sequence length).
3. **No per-step masks or TorchScript calls**: after the prompt a new token may see every
   cached position, so the step needs no mask at all.

The prompt pass (prefill) keeps upstream's boolean prefix-LM mask and `F.linear` calls.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # only for annotations: t2s_model imports this module
    from gsv_edu.gpt.t2s_model import Text2SemanticDecoder

__all__ = ["KVCacheDecoder"]


def _weight_signature(model: torch.nn.Module) -> tuple:
    """Identifies the current parameter values: storage address, version counter, dtype, device."""
    return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in model.parameters())


class _Layer:
    """One post-LN block's weights, laid out for decoding."""

    __slots__ = ("qkv_w", "qkv_b", "qkv_wt", "out_w", "out_b", "out_wt", "w1", "b1", "w1t", "w2", "b2", "w2t",
                 "n1_w", "n1_b", "n1_eps", "n2_w", "n2_b", "n2_eps")

    def __init__(self, layer: torch.nn.Module, transpose: bool):
        attn = layer.self_attn
        self.qkv_w, self.qkv_b = attn.in_proj_weight.detach(), attn.in_proj_bias.detach()
        self.out_w, self.out_b = attn.out_proj.weight.detach(), attn.out_proj.bias.detach()
        self.w1, self.b1 = layer.linear1.weight.detach(), layer.linear1.bias.detach()
        self.w2, self.b2 = layer.linear2.weight.detach(), layer.linear2.bias.detach()
        t = (lambda w: w.t().contiguous()) if transpose else (lambda w: w.t())
        self.qkv_wt, self.out_wt, self.w1t, self.w2t = t(self.qkv_w), t(self.out_w), t(self.w1), t(self.w2)
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

    def __init__(self, model: "Text2SemanticDecoder"):
        if model.norm_first:
            raise NotImplementedError("KVCacheDecoder implements the post-LN layers (norm_first=False) "
                                      "that every s1 checkpoint uses")
        self.signature = _weight_signature(model)
        self.num_heads = model.num_head
        self.dim = model.model_dim
        self.head_dim = self.dim // self.num_heads
        # transposed copies pay off on the CPU; elsewhere (CUDA) a transposed view is as fast
        transpose = model.ar_predict_layer.weight.device.type == "cpu"
        self.layers = [_Layer(layer, transpose) for layer in model.h.layers]
        w = model.ar_predict_layer.weight.detach()
        self.predict_wt = w.t().contiguous() if transpose else w.t()
        self.k_cache: list[torch.Tensor] = []
        self.v_cache: list[torch.Tensor] = []
        self.length = 0

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
        B = x.size(0)
        D, H, Dh = self.dim, self.num_heads, self.head_dim
        if self.length == self.k_cache[0].size(2):
            self._grow()
        t = self.length
        h = x.reshape(B, D)
        shape = (D,)
        addmm, layer_norm, sdpa = torch.addmm, F.layer_norm, F.scaled_dot_product_attention
        for L, kc, vc in zip(self.layers, self.k_cache, self.v_cache):
            qkv = addmm(L.qkv_b, h, L.qkv_wt)  # [B, 3D]
            kc[:, :, t].copy_(qkv[:, D:2 * D].view(B, H, Dh))
            vc[:, :, t].copy_(qkv[:, 2 * D:].view(B, H, Dh))
            q = qkv[:, :D].view(B, H, 1, Dh)
            attn = sdpa(q, kc[:, :, : t + 1], vc[:, :, : t + 1])  # [B, H, 1, Dh]
            h = layer_norm(h + addmm(L.out_b, attn.reshape(B, D), L.out_wt), shape, L.n1_w, L.n1_b, L.n1_eps)
            ff = addmm(L.b2, addmm(L.b1, h, L.w1t).relu_(), L.w2t)  # [B, D]
            h = layer_norm(h + ff, shape, L.n2_w, L.n2_b, L.n2_eps)
        self.length = t + 1
        return h

    def predict(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits [B, V] of the last position: hidden [B, S, D] (its last row is used) or [B, D]."""
        if hidden.dim() == 3:
            hidden = hidden[:, -1]
        return hidden @ self.predict_wt
