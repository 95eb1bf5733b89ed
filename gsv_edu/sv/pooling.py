"""Pooling over time for speaker embeddings: mean (TAP), std (TSDP), both (TSTP), attentive (ASTP).

Mirrors `GPT_SoVITS/eres2net/pooling_layers.py @48b1a01` (from 3D-Speaker / WeSpeaker). Each
layer turns a feature map [B, C, F, T] (or [B, D, T]) into a fixed vector per utterance; ERes2NetV2
uses TSTP (the x-vector statistics pooling of Snyder et al., 2018: mean and standard deviation).
v2Pro does not use any of them: its speaker vector is `ERes2NetV2.forward3`, a plain time-mean
taken before the pooling layer (eres2net.py). They matter for the embedding path `forward` and
for the state-dict keys (ASTP has weights).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["TAP", "TSDP", "TSTP", "ASTP", "POOLINGS"]


class TAP(nn.Module):
    """Temporal average pooling: mean over the last axis, flattened → [B, C*F]."""

    def __init__(self, **kwargs) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=-1).flatten(start_dim=1)


class TSDP(nn.Module):
    """Temporal standard-deviation pooling: sqrt(unbiased variance + 1e-8) → [B, C*F]."""

    def __init__(self, **kwargs) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.var(x, dim=-1) + 1e-8).flatten(start_dim=1)


class TSTP(nn.Module):
    """Temporal statistics pooling: [mean, std] concatenated → [B, 2*C*F] (x-vector style)."""

    def __init__(self, **kwargs) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1).flatten(start_dim=1)                        # [B, C*F]
        std = torch.sqrt(torch.var(x, dim=-1) + 1e-8).flatten(start_dim=1)  # [B, C*F]
        return torch.cat((mean, std), dim=1)


class ASTP(nn.Module):
    """Attentive statistics pooling (Okabe et al., 2018): attention-weighted mean and std over time.

    1x1 convolutions compute one softmax-over-time weight per channel; with `global_context_att`
    the attention also sees the utterance's mean and std (ECAPA-TDNN, Desplanques et al., 2020).
    """

    def __init__(self, in_dim: int, bottleneck_dim: int = 128, global_context_att: bool = False) -> None:
        super().__init__()
        self.global_context_att = global_context_att
        self.linear1 = nn.Conv1d(in_dim * 3 if global_context_att else in_dim, bottleneck_dim, kernel_size=1)
        self.linear2 = nn.Conv1d(bottleneck_dim, in_dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.reshape(x.shape[0], x.shape[1] * x.shape[2], x.shape[3])    # [B, C*F, T]
        if x.dim() != 3:
            raise ValueError(f"ASTP expects [B, D, T] or [B, C, F, T], got shape {tuple(x.shape)}")
        if self.global_context_att:
            mean = x.mean(dim=-1, keepdim=True).expand_as(x)
            std = torch.sqrt(torch.var(x, dim=-1, keepdim=True) + 1e-10).expand_as(x)
            x_in = torch.cat((x, mean, std), dim=1)                           # [B, 3D, T]
        else:
            x_in = x
        alpha = torch.tanh(self.linear1(x_in))                                # [B, bottleneck, T]
        alpha = torch.softmax(self.linear2(alpha), dim=2)                     # [B, D, T], sums to 1 over T
        mean = torch.sum(alpha * x, dim=2)                                    # [B, D]
        var = torch.sum(alpha * x**2, dim=2) - mean**2
        std = torch.sqrt(var.clamp(min=1e-10))
        return torch.cat([mean, std], dim=1)                                  # [B, 2D]


POOLINGS = {"TAP": TAP, "TSDP": TSDP, "TSTP": TSTP, "ASTP": ASTP}
