"""The non-causal WaveNet stack `WN` used inside the posterior encoder and the flow couplings.

Mirrors `GPT_SoVITS/module/modules.py · WN @48b1a01`, which comes from VITS (Kim et al.
2021, "Conditional Variational Autoencoder with Adversarial Learning for End-to-End
Text-to-Speech") and WaveGlow / WaveNet (van den Oord et al. 2016): a stack of dilated
convolutions with gated activations, residual connections and a sum of skip outputs, all
optionally conditioned on a global vector g (the speaker/style embedding `ge`).
"""
from __future__ import annotations

import torch
from torch import nn

from gsv_edu.sovits.commons import fused_add_tanh_sigmoid_multiply, get_padding
from gsv_edu.sovits.weight_norm import fold_weight_norm, weight_norm


class WN(nn.Module):
    """WaveNet stack: per layer, a gated dilated conv whose output feeds a residual and a skip path.

    Layer i: a = in_layers[i](x) (H → 2H, kernel `kernel_size`, dilation rate^i);
    acts = tanh(a[:H] + c[:H]) · sigmoid(a[H:] + c[H:]) with c the layer's slice of the
    conditioning; res_skip_layers[i](acts) gives H residual channels (added to x) and H skip
    channels (added to the output), except the last layer, whose H channels all go to the skip
    sum. Every conv is weight-normed (keys `weight_g`/`weight_v`).

    The conditioning conv `cond_layer` (G → 2·H·n_layers, kernel 1) runs once on g; layer i
    uses its channel slice [2Hi, 2H(i+1)).
    """

    def __init__(self, hidden_channels: int, kernel_size: int, dilation_rate: int, n_layers: int,
                 gin_channels: int = 0, p_dropout: float = 0):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"WN: kernel_size must be odd for 'same' padding, got {kernel_size}")
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.dilation_rate = dilation_rate
        self.n_layers = n_layers
        self.gin_channels = gin_channels
        self.p_dropout = p_dropout

        # Registration order fixes the state-dict key order (official: in_layers,
        # res_skip_layers, then cond_layer) and the order of random initialisation
        # (cond_layer is created before the per-layer convs).
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        self.drop = nn.Dropout(p_dropout)
        if gin_channels != 0:
            self.cond_layer = weight_norm(nn.Conv1d(gin_channels, 2 * hidden_channels * n_layers, 1))

        for i in range(n_layers):
            dilation = dilation_rate ** i
            self.in_layers.append(weight_norm(nn.Conv1d(
                hidden_channels, 2 * hidden_channels, kernel_size,
                dilation=dilation, padding=get_padding(kernel_size, dilation))))
            # The last layer has no residual half: everything goes to the skip sum.
            res_skip_channels = 2 * hidden_channels if i < n_layers - 1 else hidden_channels
            self.res_skip_layers.append(weight_norm(nn.Conv1d(hidden_channels, res_skip_channels, 1)))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, H, T], x_mask [B, 1, T], g [B, G, 1] or None → skip sum [B, H, T] (masked)."""
        h = self.hidden_channels
        output = torch.zeros_like(x)  # [B, H, T], the skip sum
        if g is not None:
            if self.gin_channels == 0:
                raise ValueError("WN.forward: got g but the module was built with gin_channels=0")
            g = self.cond_layer(g)  # [B, 2·H·n_layers, 1]

        for i in range(self.n_layers):
            x_in = self.in_layers[i](x)  # [B, 2H, T]
            if g is not None:
                g_l = g[:, 2 * h * i: 2 * h * (i + 1)]  # [B, 2H, 1], broadcast over time
            else:
                g_l = torch.zeros_like(x_in)
            acts = fused_add_tanh_sigmoid_multiply(x_in, g_l, h)  # [B, H, T]
            acts = self.drop(acts)

            res_skip = self.res_skip_layers[i](acts)  # [B, 2H, T] (last layer: [B, H, T])
            if i < self.n_layers - 1:
                x = (x + res_skip[:, :h]) * x_mask  # [B, H, T]
                output = output + res_skip[:, h:]
            else:
                output = output + res_skip
        return output * x_mask  # [B, H, T]

    def remove_weight_norm(self) -> None:
        """Fold the weight norm of every conv into a plain weight (inference only)."""
        fold_weight_norm(self)
