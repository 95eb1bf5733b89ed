"""The normalising flow between the posterior latent z and the prior space z_p.

Mirrors `GPT_SoVITS/module/models.py · ResidualCouplingBlock @48b1a01` and
`GPT_SoVITS/module/modules.py · ResidualCouplingLayer, Flip @48b1a01`, as in VITS (Kim et al.
2021), built from the affine coupling layers of RealNVP (Dinh et al. 2017, "Density estimation
using Real NVP") in their mean-only (volume-preserving) form.

Training maps z → z_p = flow(z) and compares z_p with the prior N(m_p, exp(logs_p)) (the KL
term); inference samples z_p from the prior and runs the flow backwards to get z.
"""
from __future__ import annotations

import torch
from torch import nn

from gsv_edu.sovits.wavenet import WN


class ResidualCouplingLayer(nn.Module):
    """Mean-only coupling: x1 ← x1 + m(x0), where m is computed from the other half x0.

    x0, x1 = the two channel halves; h = WN(pre(x0)); m = post(h). Forward: x1 ← m + x1;
    reverse: x1 ← x1 − m (both masked). Since only x1 changes and m depends only on x0, the
    layer is exactly invertible with log-determinant 0. `post` is initialised to zero, so a
    fresh layer is the identity.
    """

    def __init__(self, channels: int, hidden_channels: int, kernel_size: int, dilation_rate: int,
                 n_layers: int, p_dropout: float = 0, gin_channels: int = 0, mean_only: bool = True):
        super().__init__()
        if channels % 2 != 0:
            raise ValueError(f"ResidualCouplingLayer: channels must be even, got {channels}")
        if not mean_only:
            # The affine variant of VITS (x1 ← m + x1·exp(logs)) is never used by SoVITS.
            raise NotImplementedError("ResidualCouplingLayer: only mean_only=True (used by SoVITS) is implemented")
        self.channels = channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.dilation_rate = dilation_rate
        self.n_layers = n_layers
        self.half_channels = channels // 2
        self.mean_only = mean_only

        self.pre = nn.Conv1d(self.half_channels, hidden_channels, 1)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, n_layers,
                      p_dropout=p_dropout, gin_channels=gin_channels)
        self.post = nn.Conv1d(hidden_channels, self.half_channels, 1)
        # Zero init: the flow starts as the identity (only the mean shifts are learned).
        self.post.weight.data.zero_()
        self.post.bias.data.zero_()

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None,
                reverse: bool = False) -> torch.Tensor:
        """x [B, C, T], x_mask [B, 1, T], g [B, G, 1] → [B, C, T]."""
        x0, x1 = torch.split(x, [self.half_channels] * 2, dim=1)  # [B, C/2, T] each
        h = self.pre(x0) * x_mask  # [B, H, T]
        h = self.enc(h, x_mask, g=g)  # [B, H, T]
        m = self.post(h) * x_mask  # [B, C/2, T], the mean shift
        if not reverse:
            # Official form m + x1·exp(logs)·mask with logs = 0.
            x1 = m + x1 * x_mask
        else:
            x1 = (x1 - m) * x_mask
        return torch.cat([x0, x1], dim=1)  # [B, C, T]


class Flip(nn.Module):
    """Reverses the channel order, so the next coupling layer updates the other half.

    Its own inverse; has no parameters (so the couplings sit at indices 0, 2, 4, 6).
    """

    def forward(self, x: torch.Tensor, *args, reverse: bool = False, **kwargs) -> torch.Tensor:
        return torch.flip(x, [1])  # [B, C, T]


class ResidualCouplingBlock(nn.Module):
    """`n_flows` × (ResidualCouplingLayer, Flip); forward runs them in order, reverse backwards.

    State-dict keys: `flows.{0,2,4,…}.{pre,enc,post}` (the Flips have no parameters).
    """

    def __init__(self, channels: int, hidden_channels: int, kernel_size: int, dilation_rate: int,
                 n_layers: int, n_flows: int = 4, gin_channels: int = 0):
        super().__init__()
        self.channels = channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.dilation_rate = dilation_rate
        self.n_layers = n_layers
        self.n_flows = n_flows
        self.gin_channels = gin_channels

        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(ResidualCouplingLayer(channels, hidden_channels, kernel_size, dilation_rate,
                                                    n_layers, gin_channels=gin_channels, mean_only=True))
            self.flows.append(Flip())

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None,
                reverse: bool = False) -> torch.Tensor:
        """x [B, C, T], x_mask [B, 1, T], g [B, G, 1] → z_p (forward) or z (reverse), [B, C, T]."""
        flows = self.flows if not reverse else reversed(self.flows)
        for flow in flows:
            x = flow(x, x_mask, g=g, reverse=reverse)
        return x
