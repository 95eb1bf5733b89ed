"""Small helpers shared by every SoVITS module: masks, segment slicing, the gated activation,
and the channel-wise LayerNorm.

Mirrors `GPT_SoVITS/module/commons.py · sequence_mask, slice_segments, rand_slice_segments,
fused_add_tanh_sigmoid_multiply @48b1a01` and `GPT_SoVITS/module/modules.py · LayerNorm @48b1a01`.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """'Same' padding of a dilated 1-D convolution with an odd kernel: (k·d − d) / 2."""
    return int((kernel_size * dilation - dilation) / 2)


def sequence_mask(lengths: torch.Tensor, max_length: int | None = None) -> torch.Tensor:
    """Boolean mask [B, T] that is True where the time index is below the item's length."""
    if max_length is None:
        max_length = int(lengths.max())
    steps = torch.arange(max_length, dtype=lengths.dtype, device=lengths.device)  # [T]
    return steps.unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]


def fused_add_tanh_sigmoid_multiply(a: torch.Tensor, b: torch.Tensor, n_channels: int) -> torch.Tensor:
    """WaveNet's gated activation: with s = a + b, tanh(s[:, :n]) · sigmoid(s[:, n:])."""
    s = a + b  # [B, 2n, T]
    return torch.tanh(s[:, :n_channels]) * torch.sigmoid(s[:, n_channels:])  # [B, n, T]


def slice_segments(x: torch.Tensor, ids_start: torch.Tensor, segment_size: int) -> torch.Tensor:
    """Cut one window of `segment_size` steps per item: out[b] = x[b, :, ids_start[b] : +segment_size].

    Works on any tensor whose last axis is time ([B, C, T] latents or [B, 1, N] waveforms).
    """
    starts = ids_start.to(device=x.device, dtype=torch.long)  # [B]
    if (starts < 0).any() or (starts + segment_size > x.size(-1)).any():
        raise ValueError(
            f"slice_segments: a window of {segment_size} steps starting at {starts.tolist()} "
            f"does not fit in {x.size(-1)} steps")
    index = starts.view(-1, 1) + torch.arange(segment_size, device=x.device)  # [B, S]
    index = index.view(x.size(0), *([1] * (x.dim() - 2)), segment_size)  # [B, 1.., S]
    return torch.gather(x, -1, index.expand(*x.shape[:-1], segment_size))  # [B, C, S]


def rand_slice_segments(x: torch.Tensor, x_lengths: torch.Tensor | None = None, segment_size: int = 4,
                        uniform: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random training windows: start = floor(U · (length − segment_size + 1)), U ~ uniform(0, 1).

    Draws exactly one `torch.rand([B])` (the official RNG call, so a fixed seed gives the official
    slices); pass `uniform` [B] to inject those numbers instead. Returns (slices, starts).

    The official `GPT_SoVITS/module/commons.py · rand_slice_segments @48b1a01` relies on the
    bucket sampler (`GPT_SoVITS/module/data_utils.py · DistributedBucketSampler`) to drop items
    of at most 32 frames and would produce negative starts for shorter ones; here an item
    shorter than the segment is a clear error instead.
    """
    b, _, t = x.size()
    if x_lengths is None:
        x_lengths = torch.full((b,), t, device=x.device)
    if (x_lengths < segment_size).any():
        raise ValueError(f"rand_slice_segments: lengths {x_lengths.tolist()} shorter than the "
                         f"segment of {segment_size} frames")
    if uniform is None:
        uniform = torch.rand([b]).to(device=x.device)
    ids_start_max = x_lengths - segment_size + 1  # [B]
    ids_start = (uniform.to(x.device) * ids_start_max).to(dtype=torch.long)  # [B], floor of a positive value
    return slice_segments(x, ids_start, segment_size), ids_start


class LayerNorm(nn.Module):
    """Layer normalisation over the channel axis of a [B, C, T] tensor.

    Mirrors `modules.LayerNorm`: the parameters are named `gamma` and `beta` (not weight/bias),
    which fixes the state-dict keys of every attention encoder.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, -1)  # [B, T, C]
        x = F.layer_norm(x, (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)  # [B, C, T]
