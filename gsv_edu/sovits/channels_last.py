"""A CPU speed helper: run 1-D convolutions in the channels-last ("time-major") memory layout.

Why. On the CPU, PyTorch computes convolutions with oneDNN (mkldnn), which treats a 1-D
convolution as a 2-D one on [B, C, 1, T]. With the default layout (each channel's time series
contiguous, "NCW") oneDNN reorders the data into its own blocked layout around every call;
with the channels-last layout (the C values of one time step contiguous, as if the tensor
were [B, T, C]) it computes directly. For the narrow, very long signals of the HiFi-GAN
decoder (16 to 128 channels, 40 000 to 320 000 samples) this makes the convolutions about
2–3× faster and the transposed convolutions 3–10× faster, with the same arithmetic (results
equal to float rounding).

How. `use_channels_last_convs(module)` switches every `nn.Conv1d` / `nn.ConvTranspose1d` of a
module tree to a subclass whose forward calls the 2-D convolution on channels-last tensors.
The switch changes only the class of each module object (`module.__class__`), so parameters,
state-dict keys and hooks (weight norm included) stay exactly as they are. Tensors keep the
logical shape [B, C, T]; only their strides differ ([B, C, T] with strides (T·C, 1, C)), and
element-wise operations (leaky ReLU, residual adds, masks) preserve that layout, so the model
code is unchanged. `use_channels_last_convs(module, enabled=False)` switches back.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _as_channels_last_4d(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T] → [B, C, 1, T] in channels-last memory (a view when x is already time-major)."""
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


class ChannelsLastConv1d(nn.Conv1d):
    """nn.Conv1d computed as a channels-last 2-D convolution (same parameters, same result)."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super()._conv_forward(input, weight, bias)
        out = F.conv2d(_as_channels_last_4d(input), weight.unsqueeze(2), bias,
                       stride=(1, self.stride[0]), padding=(0, self.padding[0]),
                       dilation=(1, self.dilation[0]), groups=self.groups)  # [B, C_out, 1, T']
        return out.squeeze(2)  # [B, C_out, T'], time-major strides


class ChannelsLastConvTranspose1d(nn.ConvTranspose1d):
    """nn.ConvTranspose1d computed as a channels-last 2-D transposed convolution."""

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is not None or self.padding_mode != "zeros":
            return super().forward(input, output_size)
        out = F.conv_transpose2d(_as_channels_last_4d(input), self.weight.unsqueeze(2), self.bias,
                                 stride=(1, self.stride[0]), padding=(0, self.padding[0]),
                                 output_padding=(0, self.output_padding[0]), groups=self.groups,
                                 dilation=(1, self.dilation[0]))  # [B, C_out, 1, T']
        return out.squeeze(2)  # [B, C_out, T'], time-major strides


_FAST = {nn.Conv1d: ChannelsLastConv1d, nn.ConvTranspose1d: ChannelsLastConvTranspose1d}
_PLAIN = {fast: plain for plain, fast in _FAST.items()}


def use_channels_last_convs(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch every Conv1d / ConvTranspose1d in the tree to the channels-last subclass (in place).

    `enabled=False` switches them back to the plain torch classes. Returns the module.
    """
    table = _FAST if enabled else _PLAIN
    for sub in module.modules():
        new_class = table.get(type(sub))
        if new_class is not None:
            sub.__class__ = new_class
    return module
