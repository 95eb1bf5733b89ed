"""ERes2NetV2: the speaker-verification network whose feature map gives v2Pro its speaker vector.

Mirrors `GPT_SoVITS/eres2net/ERes2NetV2.py`, `fusion.py` (AFF) and `pooling_layers.py` @48b1a01
(from 3D-Speaker): same constructor arguments, module tree and state-dict keys, so the official
`pretrained_eres2netv2w24s4ep4.ckpt` loads strictly. Paper: Chen et al., "ERes2NetV2: Boosting
Short-Duration Speaker Verification Performance with Computational Efficiency", Interspeech 2024
(arXiv:2406.02167); Res2Net: Gao et al., TPAMI 2019; attentional feature fusion: Dai et al., WACV 2021.

The network reads an 80-bin Kaldi fbank [B, T, 80] as a one-channel image [B, 1, 80, T]:

- a 3x3 stem, then four stages of Res2Net blocks (strides 1, 2, 2, 2 → frequency 80/8 = 10).
  A block splits its 1x1-conv output into `scale` groups of `width` channels; group i is
  convolved after adding (stages 1-2) or *attentionally fusing* (AFF, stages 3-4) the previous
  group's output — a hierarchy of receptive fields inside one block;
- `layer3_ds` downsamples stage 3 and `fuse34` (AFF) fuses it into stage 4: the "bottom-up"
  fusion, [B, 8 m e, 10, T/8] (m = m_channels 64, e = expansion 4 → 2048 channels);
- `forward`: statistics pooling (TSTP) and `seg_1` → the 192-dim speaker *embedding*;
- `forward3`: the time-mean of the fused map, flattened to [B, 2048 * 10] = 20480 values. This,
  not the embedding, is what GPT-SoVITS v2Pro feeds to SoVITS (`sv_emb`): a pooled feature map
  that keeps 2048 channels x 10 frequency bands.

`ReLU` in the blocks is a hard tanh clipped to [0, 20] (as the official `ReLU(nn.Hardtanh)`); the
stem uses a plain ReLU.
"""
from __future__ import annotations

import math
import re
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .pooling import POOLINGS

__all__ = ["ERes2NetV2", "AFF", "ReLU", "BasicBlockERes2NetV2", "BasicBlockERes2NetV2AFF",
           "OFFICIAL_SV_ARGS", "TINY_SV_ARGS", "SV_PRESETS", "sv_vector_dim", "build_preset", "TINY_SV_SEED",
           "sv_args_from_state_dict"]


class ReLU(nn.Hardtanh):
    """min(max(x, 0), 20): the clipped ReLU of the official blocks (an `nn.Hardtanh(0, 20)`)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(0.0, 20.0, inplace)


class AFF(nn.Module):
    """Attentional feature fusion of two maps of equal shape (fusion.py · AFF).

    A bottleneck of 1x1 convolutions over [x, y] (channels 2C → C/r → C) gives a ∈ (0, 2) per
    element, a = 1 + tanh(·); the output x·a + y·(2 − a) weighs the two inputs against each other.
    """

    def __init__(self, channels: int = 64, r: int = 4) -> None:
        super().__init__()
        inter_channels = int(channels // r)
        self.local_att = nn.Sequential(
            nn.Conv2d(channels * 2, inter_channels, kernel_size=1, stride=1, padding=0),
            nn.BatchNorm2d(inter_channels),
            nn.SiLU(inplace=True),
            nn.Conv2d(inter_channels, channels, kernel_size=1, stride=1, padding=0),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor, ds_y: torch.Tensor) -> torch.Tensor:
        attention = 1.0 + torch.tanh(self.local_att(torch.cat((x, ds_y), dim=1)))  # [B, C, F, T] in (0, 2)
        return x * attention + ds_y * (2.0 - attention)


class _Res2NetBlock(nn.Module):
    """Shared body of the two block kinds; `_merge(i, previous, group)` differs."""

    _fused = False  # AFF between groups (registered right after `bns`, the official key order)

    def __init__(self, in_planes: int, planes: int, stride: int = 1, baseWidth: int = 26, scale: int = 2,
                 expansion: int = 2) -> None:
        super().__init__()
        width = int(math.floor(planes * (baseWidth / 64.0)))  # channels of each of the `scale` groups
        self.conv1 = nn.Conv2d(in_planes, width * scale, kernel_size=1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.nums = scale
        self.expansion = expansion
        self.convs = nn.ModuleList(nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False)
                                   for _ in range(scale))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale))
        if self._fused:
            self.fuse_models = nn.ModuleList(AFF(channels=width, r=4) for _ in range(scale - 1))
        self.relu = ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width * scale, planes * expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * expansion)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, expansion * planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(expansion * planes),
            )
        self.stride = stride
        self.width = width
        self.scale = scale

    def _merge(self, i: int, previous: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))                  # [B, width*scale, F', T']
        groups = torch.split(out, self.width, dim=1)              # scale x [B, width, F', T']
        outputs = []
        for i in range(self.nums):
            sp = groups[0] if i == 0 else self._merge(i, sp, groups[i])
            sp = self.relu(self.bns[i](self.convs[i](sp)))        # [B, width, F', T']
            outputs.append(sp)
        out = self.bn3(self.conv3(torch.cat(outputs, dim=1)))     # [B, planes*expansion, F', T']
        return self.relu(out + self.shortcut(x))


class BasicBlockERes2NetV2(_Res2NetBlock):
    """Res2Net block whose groups are chained by addition (stages 1 and 2)."""

    def _merge(self, i: int, previous: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        return previous + group


class BasicBlockERes2NetV2AFF(_Res2NetBlock):
    """Res2Net block whose groups are chained by attentional fusion, `fuse_models` (stages 3 and 4)."""

    _fused = True

    def _merge(self, i: int, previous: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        return self.fuse_models[i - 1](previous, group)


class ERes2NetV2(nn.Module):
    """The ERes2NetV2 speaker network; `forward` → embedding [B, embedding_size], `forward3` → [B, D].

    Constructor arguments and defaults are the official ones (ERes2NetV2.py); GPT-SoVITS builds it
    as `ERes2NetV2(baseWidth=24, scale=4, expansion=4)` (`OFFICIAL_SV_ARGS`, 53.5 M parameters,
    D = 20480). Input: fbank features [B, T, feat_dim] (T >= 1 frame; the stride-2 stages need no
    minimum length).
    """

    def __init__(self, block: type = BasicBlockERes2NetV2, block_fuse: type = BasicBlockERes2NetV2AFF,
                 num_blocks: Sequence[int] = (3, 4, 6, 3), m_channels: int = 64, feat_dim: int = 80,
                 embedding_size: int = 192, baseWidth: int = 26, scale: int = 2, expansion: int = 2,
                 pooling_func: str = "TSTP", two_emb_layer: bool = False) -> None:
        super().__init__()
        if pooling_func not in POOLINGS:
            raise ValueError(f"pooling_func must be one of {sorted(POOLINGS)}, got {pooling_func!r}")
        if len(num_blocks) != 4:
            raise ValueError(f"num_blocks must list 4 stages, got {list(num_blocks)}")
        self.in_planes = m_channels
        self.feat_dim = feat_dim
        self.embedding_size = embedding_size
        self.stats_dim = int(feat_dim / 8) * m_channels * 8
        self.two_emb_layer = two_emb_layer
        self.baseWidth = baseWidth
        self.scale = scale
        self.expansion = expansion
        self.m_channels = m_channels
        self.num_blocks = list(num_blocks)
        self.pooling_func = pooling_func

        self.conv1 = nn.Conv2d(1, m_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.layer1 = self._make_layer(block, m_channels, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, m_channels * 2, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block_fuse, m_channels * 4, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block_fuse, m_channels * 8, num_blocks[3], stride=2)
        # bottom-up fusion: stage 3 downsampled to stage 4's size, then fused into it
        self.layer3_ds = nn.Conv2d(m_channels * 4 * expansion, m_channels * 8 * expansion, kernel_size=3,
                                   padding=1, stride=2, bias=False)
        self.fuse34 = AFF(channels=m_channels * 8 * expansion, r=4)

        self.n_stats = 1 if pooling_func in ("TAP", "TSDP") else 2
        self.pool = POOLINGS[pooling_func](in_dim=self.stats_dim * expansion)
        self.seg_1 = nn.Linear(self.stats_dim * expansion * self.n_stats, embedding_size)
        if two_emb_layer:
            self.seg_bn_1 = nn.BatchNorm1d(embedding_size, affine=False)
            self.seg_2 = nn.Linear(embedding_size, embedding_size)
        else:
            self.seg_bn_1 = nn.Identity()
            self.seg_2 = nn.Identity()

    def _make_layer(self, block: type, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(block(self.in_planes, planes, s, baseWidth=self.baseWidth, scale=self.scale,
                                expansion=self.expansion))
            self.in_planes = planes * self.expansion
        return nn.Sequential(*layers)

    @property
    def vector_dim(self) -> int:
        """Length D of `forward3`'s vector: channels x frequency bands of the fused map (20480)."""
        return self.m_channels * 8 * self.expansion * _bands(self.feat_dim)

    def feature_map(self, feats: torch.Tensor) -> torch.Tensor:
        """The fused stage-3/4 map [B, 8 m e, ceil(feat_dim / 8), ceil(T / 8)] of fbank [B, T, feat_dim]."""
        if feats.dim() != 3 or feats.shape[-1] != self.feat_dim:
            raise ValueError(f"ERes2NetV2 expects fbank features [B, T, {self.feat_dim}], "
                             f"got shape {tuple(feats.shape)}")
        x = feats.transpose(1, 2).unsqueeze(1)                  # [B, 1, F, T]: an image
        out = F.relu(self.bn1(self.conv1(x)))                   # [B, m, F, T]
        out1 = self.layer1(out)                                 # [B, m e, F, T]
        out2 = self.layer2(out1)                                # [B, 2 m e, F/2, T/2]
        out3 = self.layer3(out2)                                # [B, 4 m e, F/4, T/4]
        out4 = self.layer4(out3)                                # [B, 8 m e, F/8, T/8]
        out3_ds = self.layer3_ds(out3)                          # [B, 8 m e, F/8, T/8]
        return self.fuse34(out4, out3_ds)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Speaker embedding [B, embedding_size] (statistics pooling + `seg_1`)."""
        stats = self.pool(self.feature_map(feats))              # [B, n_stats * stats_dim * e]
        embed_a = self.seg_1(stats)                             # [B, embedding_size]
        if not self.two_emb_layer:
            return embed_a
        return self.seg_2(self.seg_bn_1(F.relu(embed_a)))

    def forward3(self, feats: torch.Tensor) -> torch.Tensor:
        """The v2Pro speaker vector [B, D]: the fused map averaged over time, channels x bands flattened."""
        fused = self.feature_map(feats)                         # [B, C, F/8, T/8]
        return fused.flatten(start_dim=1, end_dim=2).mean(-1)  # [B, C * F/8], index c * (F/8) + f


def _bands(feat_dim: int) -> int:
    """Frequency rows after three stride-2 3x3 convolutions (padding 1): ceil three times."""
    for _ in range(3):
        feat_dim = (feat_dim + 1) // 2
    return feat_dim


def sv_vector_dim(args: dict[str, Any]) -> int:
    """D of `forward3` for ERes2NetV2(**args) without building it (20480 for the official model)."""
    m = args.get("m_channels", 64)
    return m * 8 * args.get("expansion", 2) * _bands(args.get("feat_dim", 80))


# GPT-SoVITS' model (sv.py, prepare_datasets/2-get-sv.py): 53.5 M parameters, D = 20480.
OFFICIAL_SV_ARGS: dict[str, Any] = {"baseWidth": 24, "scale": 4, "expansion": 4}
# A CPU-sized network with the same structure (every block kind, AFF in stages 3-4): 0.23 M
# parameters, D = 8 * 8 * 2 * 10 = 1280. For tests and the sample corpus, randomly initialised:
# a speaker-verification model cannot be trained meaningfully on a handful of speakers.
TINY_SV_ARGS: dict[str, Any] = {"num_blocks": (1, 1, 2, 1), "m_channels": 8, "baseWidth": 32, "scale": 2,
                                "expansion": 2, "embedding_size": 32}
SV_PRESETS: dict[str, dict[str, Any]] = {"official": OFFICIAL_SV_ARGS, "tiny": TINY_SV_ARGS}
TINY_SV_SEED = 1234  # the random init of the tiny SV model that `prepare --sv tiny` uses


def build_preset(name: str, seed: Optional[int] = None) -> ERes2NetV2:
    """ERes2NetV2 of a preset ("official" or "tiny"), in eval mode; `seed` fixes the random init."""
    if name not in SV_PRESETS:
        raise ValueError(f"unknown SV preset {name!r}; known: {sorted(SV_PRESETS)}")
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = ERes2NetV2(**SV_PRESETS[name])
    else:
        model = ERes2NetV2(**SV_PRESETS[name])
    return model.eval()


_LAYER_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")


def sv_args_from_state_dict(weights: dict[str, torch.Tensor]) -> dict[str, Any]:
    """ERes2NetV2 constructor arguments that give exactly these keys and shapes (ValueError if none).

    Read off: m_channels (stem width), num_blocks (blocks per stage), scale (groups per block),
    expansion (stage-1 output / m_channels), baseWidth (the smallest value whose group widths
    floor(planes * baseWidth / 64) match every stage), embedding_size and the pooling (seg_1,
    pool.linear*, seg_2). feat_dim is taken as 8 x the frequency bands seg_1 implies (80 for
    GPT-SoVITS' model).
    """
    if "conv1.weight" not in weights or "layer1.0.conv3.weight" not in weights or "seg_1.weight" not in weights:
        raise ValueError("it has no conv1.weight / layer1.0.conv3.weight / seg_1.weight, "
                         "the keys of every ERes2NetV2")
    m = int(weights["conv1.weight"].shape[0])
    blocks = [0, 0, 0, 0]
    for key in weights:
        match = _LAYER_KEY.match(key)
        if match:
            stage, index = int(match.group(1)) - 1, int(match.group(2))
            blocks[stage] = max(blocks[stage], index + 1)
    if 0 in blocks:
        raise ValueError(f"a stage has no blocks (blocks per stage found: {blocks})")
    scale = sum(1 for key in weights if re.fullmatch(r"layer1\.0\.convs\.\d+\.weight", key))
    expansion = int(weights["layer1.0.conv3.weight"].shape[0]) // m
    widths = [int(weights[f"layer{s}.0.convs.0.weight"].shape[0]) for s in (1, 2, 3, 4)]
    base_width = next((bw for bw in range(1, 4097)
                       if all(int(m * 2**i * bw / 64.0) == w for i, w in enumerate(widths))), None)
    if base_width is None or scale == 0 or expansion == 0:
        raise ValueError(f"no baseWidth/scale/expansion fits the block widths {widths}")
    per_band = m * 8 * expansion  # channels of the fused map
    seg_in = int(weights["seg_1.weight"].shape[1])
    # mean+std pooling of 80 bins (10 bands) and mean-only pooling of 160 bins give the same
    # shapes: prefer the 80 bins GPT-SoVITS always uses
    if "pool.linear1.weight" in weights:
        pooling, n_stats = "ASTP", 2
    elif seg_in == per_band * 10:
        pooling, n_stats = "TAP", 1  # TSDP has the same shapes; neither is used by forward3
    else:
        pooling, n_stats = "TSTP", 2
    if seg_in % (n_stats * per_band):
        raise ValueError(f"seg_1 takes {seg_in} inputs, not a multiple of {n_stats} x {per_band}")
    args = {"num_blocks": tuple(blocks), "m_channels": m, "feat_dim": 8 * (seg_in // (n_stats * per_band)),
            "embedding_size": int(weights["seg_1.weight"].shape[0]), "baseWidth": base_width,
            "scale": scale, "expansion": expansion, "pooling_func": pooling,
            "two_emb_layer": "seg_2.weight" in weights}
    return args
