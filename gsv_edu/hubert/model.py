"""HuBERT-base, written out: the network GPT-SoVITS hears speech through.

Mirrors `transformers.models.hubert.modeling_hubert.HubertModel` (the class that
`GPT_SoVITS/feature_extractor/cnhubert.py · CNHubert @48b1a01` wraps for
TencentGameMate/chinese-hubert-base),
which itself re-implements fairseq's HuBERT (Hsu et al. 2021, arXiv:2106.07447) on top of
wav2vec 2.0's encoder (Baevski et al. 2020, arXiv:2006.11477). Module and parameter names follow
the Hugging Face ones, so a published `model.safetensors` / `pytorch_model.bin` loads key for key
(see `loading.py`).

    waveform [B, N] (16 kHz)
      └ feature_extractor: 7 convs, 320x down, GroupNorm after conv 0 ─► [B, 512, T]   (T = 50 Hz frames)
      └ feature_projection: LayerNorm(512) → Linear(512, 768)         ─► [B, T, 768]
      └ (pretraining only: masked frames replaced by masked_spec_embed)
      └ encoder: x + pos_conv_embed(x) → LayerNorm → 12 post-norm transformer layers ─► [B, T, 768]

T = floor((N − 400) / 320) + 1: the conv stack has a receptive field of 400 samples (25 ms)
and a stride of 320 samples (20 ms), without padding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gsv_edu.hubert import loading
from gsv_edu.hubert.config import HuBERTConfig


# ------------------------------------------------------------------------------------------------
# 1. convolutional waveform encoder
# ------------------------------------------------------------------------------------------------

class ConvLayer(nn.Module):
    """One conv of the waveform encoder: Conv1d (no padding) → [GroupNorm] → GELU.

    Mirrors HF `HubertGroupNormConvLayer` (layer 0, `layer_norm` is a GroupNorm with one group per
    channel, i.e. every channel is normalised over time, per utterance) and
    `HubertNoLayerNormConvLayer` (layers 1-6).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 bias: bool, group_norm: bool):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, bias=bias)
        self.layer_norm = nn.GroupNorm(out_channels, out_channels, affine=True) if group_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # [B, C_out, T_out]
        if self.layer_norm is not None:
            x = self.layer_norm(x)  # [B, C_out, T_out], each channel zero-mean / unit-var over time
        return F.gelu(x)


class FeatureEncoder(nn.Module):
    """The 7-layer conv stack: waveform [B, N] → local features [B, conv_dim[-1], T] at 50 Hz.

    Mirrors HF `HubertFeatureEncoder` (feat_extract_norm "group"). Conv 0 is followed by a
    per-channel GroupNorm over time, which removes any per-channel scale and offset, so scaling
    the input waveform changes almost nothing (GPT-SoVITS feeds audio ×1145.14 in training,
    `GPT_SoVITS/prepare_datasets/2-get-hubert-wav32k.py · name2go @48b1a01`, and ×1 at inference,
    `GPT_SoVITS/inference_webui.py · get_tts_wav @48b1a01`); the invariance only breaks for very
    quiet input, when the conv-0 variance approaches GroupNorm's ε (book chapter 02, solutions).
    """

    def __init__(self, cfg: HuBERTConfig):
        super().__init__()
        in_dims = (1,) + cfg.conv_dim[:-1]
        self.conv_layers = nn.ModuleList(
            ConvLayer(i, o, k, s, cfg.conv_bias, group_norm=(n == 0))
            for n, (i, o, k, s) in enumerate(zip(in_dims, cfg.conv_dim, cfg.conv_kernel, cfg.conv_stride)))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = wav.unsqueeze(1)  # [B, 1, N]
        for layer in self.conv_layers:
            x = layer(x)  # [B, C, T_i]
        return x  # [B, conv_dim[-1], T]


class FeatureProjection(nn.Module):
    """LayerNorm over the conv channels, then a linear map to the transformer width.

    Mirrors HF `HubertFeatureProjection` (feat_proj_layer_norm true).
    """

    def __init__(self, cfg: HuBERTConfig):
        super().__init__()
        c = cfg.conv_dim[-1]
        self.layer_norm = nn.LayerNorm(c, eps=cfg.layer_norm_eps) if cfg.feat_proj_layer_norm else None
        self.projection = nn.Linear(c, cfg.hidden_size)
        self.dropout = nn.Dropout(cfg.feat_proj_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer_norm is not None:
            x = self.layer_norm(x)  # [B, T, C]
        return self.dropout(self.projection(x))  # [B, T, H]


# ------------------------------------------------------------------------------------------------
# 2. convolutional relative positional embedding
# ------------------------------------------------------------------------------------------------

class WeightNormConv1d(nn.Conv1d):
    """Conv1d whose kernel is `weight_g · weight_v / ‖weight_v‖`, the norm taken per kernel tap.

    This is weight normalisation (Salimans & Kingma 2016) with `dim=2`, as wav2vec 2.0 / HuBERT
    apply it to the positional conv: `weight_g` is [1, 1, K] (one gain per tap position) and the
    norm of `weight_v` [C_out, C_in/groups, K] runs over its first two dimensions. Written out
    (instead of `torch.nn.utils.parametrizations.weight_norm`) so the two tensors keep their
    classic names; `loading.py` maps the newer `parametrizations.weight.original0/1` spelling.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int, groups: int):
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, groups=groups)
        v = self.weight.detach().clone()  # [C_out, C_in/groups, K], PyTorch's default init
        del self.weight  # the kernel is derived, not a parameter
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(torch.linalg.vector_norm(v, dim=(0, 1), keepdim=True))  # [1, 1, K]
        self._cache: tuple | None = None  # (versions and addresses of g and v, derived kernel)

    def _compute_weight(self) -> torch.Tensor:
        norm = torch.linalg.vector_norm(self.weight_v, dim=(0, 1), keepdim=True)  # [1, 1, K]
        return self.weight_v * (self.weight_g / norm)  # [C_out, C_in/groups, K]

    def normalized_weight(self) -> torch.Tensor:
        """g·v/‖v‖; recomputed whenever gradients may flow to g or v, otherwise cached.

        The cache is keyed on the tensors' version counters and storage addresses, so loading
        weights, an optimizer step or `.to()` invalidates it. It saves recomputing the kernel at
        every inference call (transformers' parametrization recomputes it each time).
        """
        g, v = self.weight_g, self.weight_v
        if torch.is_grad_enabled() and (g.requires_grad or v.requires_grad):
            self._cache = None
            return self._compute_weight()
        key = (g._version, v._version, g.data_ptr(), v.data_ptr(), g.dtype, v.dtype)
        if self._cache is None or self._cache[0] != key:
            with torch.inference_mode(False), torch.no_grad():  # an ordinary tensor, usable outside inference mode
                self._cache = (key, self._compute_weight())
        return self._cache[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.normalized_weight(), self.bias)


class PositionalConvEmbedding(nn.Module):
    """A wide grouped conv over time that lets every frame know its neighbourhood (relative position).

    Mirrors HF `HubertPositionalConvEmbedding` + `HubertSamePadLayer`: kernel 128 in 16 groups,
    padding 64 on both sides; with an even kernel this yields T + 1 frames, so the last one is
    dropped; then GELU. wav2vec 2.0 uses this instead of sinusoidal / learned absolute positions.
    """

    def __init__(self, cfg: HuBERTConfig):
        super().__init__()
        k = cfg.num_conv_pos_embeddings
        self.conv = WeightNormConv1d(cfg.hidden_size, cfg.hidden_size, k, padding=k // 2,
                                     groups=cfg.num_conv_pos_embedding_groups)
        self.num_pad_remove = 1 if k % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.transpose(1, 2))  # [B, H, T + 1] for an even kernel
        if self.num_pad_remove:
            y = y[:, :, : -self.num_pad_remove]  # [B, H, T]
        return F.gelu(y).transpose(1, 2)  # [B, T, H]


# ------------------------------------------------------------------------------------------------
# 3. transformer encoder (post-norm)
# ------------------------------------------------------------------------------------------------

class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention. Mirrors HF `HubertAttention` (q/k/v/out_proj)."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, hidden // heads, dropout
        self.k_proj = nn.Linear(hidden, hidden)
        self.v_proj = nn.Linear(hidden, hidden)
        self.q_proj = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # [B, heads, T, d]

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # softmax(q·kᵀ/√d)·v  [B, heads, T, d]
        return self.out_proj(y.transpose(1, 2).reshape(b, t, h))  # [B, T, H]


class FeedForward(nn.Module):
    """Linear(H, 4H) → GELU → Linear(4H, H). Mirrors HF `HubertFeedForward`."""

    def __init__(self, hidden: int, intermediate: int, activation_dropout: float, hidden_dropout: float):
        super().__init__()
        self.intermediate_dropout = nn.Dropout(activation_dropout)
        self.intermediate_dense = nn.Linear(hidden, intermediate)
        self.output_dense = nn.Linear(intermediate, hidden)
        self.output_dropout = nn.Dropout(hidden_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.intermediate_dropout(F.gelu(self.intermediate_dense(x)))  # [B, T, I]
        return self.output_dropout(self.output_dense(x))  # [B, T, H]


class EncoderLayer(nn.Module):
    """Post-norm transformer layer: x = LN(x + Attn(x)); x = LN(x + FFN(x)).

    Mirrors HF `HubertEncoderLayer` (do_stable_layer_norm false, as in BERT and HuBERT-base).
    """

    def __init__(self, cfg: HuBERTConfig):
        super().__init__()
        h = cfg.hidden_size
        self.attention = SelfAttention(h, cfg.num_attention_heads, cfg.attention_dropout)
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        self.layer_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.feed_forward = FeedForward(h, cfg.intermediate_size, cfg.activation_dropout, cfg.hidden_dropout)
        self.final_layer_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(x + self.dropout(self.attention(x)))  # [B, T, H]
        return self.final_layer_norm(x + self.feed_forward(x))  # [B, T, H]


class Encoder(nn.Module):
    """x + pos_conv_embed(x) → LayerNorm → dropout → layers. Mirrors HF `HubertEncoder`.

    `hidden_states` (when asked for) follows HF's `output_hidden_states`: the input of layer 0
    (after the positional conv and LayerNorm), then the output of every layer.
    """

    def __init__(self, cfg: HuBERTConfig):
        super().__init__()
        self.pos_conv_embed = PositionalConvEmbedding(cfg)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.layerdrop = cfg.layerdrop

    def forward(self, x: torch.Tensor, num_layers: int | None = None,
                hidden_states: list | None = None) -> torch.Tensor:
        x = self.dropout(self.layer_norm(x + self.pos_conv_embed(x)))  # [B, T, H]
        if hidden_states is not None:
            hidden_states.append(x)
        for layer in self.layers[:num_layers]:
            # LayerDrop (Fan et al. 2019): in training, skip a whole layer with probability `layerdrop`.
            if self.training and self.layerdrop > 0 and torch.rand(()) < self.layerdrop:
                if hidden_states is not None:
                    hidden_states.append(x)
                continue
            x = layer(x)  # [B, T, H]
            if hidden_states is not None:
                hidden_states.append(x)
        return x


# ------------------------------------------------------------------------------------------------
# 4. the whole model
# ------------------------------------------------------------------------------------------------

class HuBERT(nn.Module):
    """HuBERT (`HubertModel`): 16 kHz waveform [B, N] → last hidden state [B, T, hidden_size].

    `HuBERT.from_pretrained(folder)` loads a Hugging Face folder such as chinese-hubert-base
    (config.json + model.safetensors or pytorch_model.bin); `save_pretrained(folder)` writes one.
    For the content features SoVITS reads ([B, D, T], the official data preparation) see
    `gsv_edu.hubert.features`.

    The waveform is used as given: GPT-SoVITS does **not** apply the Wav2Vec2FeatureExtractor
    normalisation (`GPT_SoVITS/prepare_datasets/2-get-hubert-wav32k.py · name2go @48b1a01` calls
    `model.model` directly, not `CNHubert.forward`). Batched inputs must have equal lengths
    (there is no padding mask; GPT-SoVITS extracts one utterance at a time).
    """

    def __init__(self, cfg: HuBERTConfig | None = None):
        super().__init__()
        self.config = cfg = cfg if cfg is not None else HuBERTConfig()
        if cfg.uses_masked_spec_embed:
            # the learned vector that replaces masked frames in pretraining (HF initialises it uniform[0,1))
            self.masked_spec_embed = nn.Parameter(torch.rand(cfg.hidden_size))
        self.feature_extractor = FeatureEncoder(cfg)
        self.feature_projection = FeatureProjection(cfg)
        self.encoder = Encoder(cfg)

    # -------------------------------------------------------------- loading / saving (loading.py)
    @classmethod
    def from_pretrained(cls, folder, map_location="cpu") -> "HuBERT":
        """Build from a Hugging Face-format folder (config.json + weights); eval mode."""
        return loading.load_pretrained(folder, cls, map_location=map_location)

    def save_pretrained(self, folder, dtype: torch.dtype | None = None) -> None:
        """Write config.json + model.safetensors, readable by `from_pretrained` and by transformers."""
        loading.save_pretrained(self, folder, dtype=dtype)

    # -------------------------------------------------------------- forward
    def num_frames(self, num_samples: int) -> int:
        """Output frames for `num_samples` input samples (floor((N − 400)/320) + 1 for base)."""
        return self.config.num_frames(num_samples)

    def _check_input(self, wav: torch.Tensor) -> torch.Tensor:
        if not isinstance(wav, torch.Tensor):
            raise TypeError(f"HuBERT expects a torch.Tensor waveform [B, N], got {type(wav).__name__}")
        if wav.dim() == 1:
            wav = wav.unsqueeze(0)  # [1, N]
        if wav.dim() != 2:
            raise ValueError(f"HuBERT expects a waveform [B, N] (16 kHz), got shape {tuple(wav.shape)}")
        if self.num_frames(wav.shape[1]) < 1:
            raise ValueError(f"HuBERT needs at least {self.config.receptive_field} samples "
                             f"({self.config.receptive_field / 16:.0f} ms at 16 kHz), got {wav.shape[1]}")
        return wav

    def extract_features(self, wav: torch.Tensor) -> torch.Tensor:
        """Conv-encoder output, time-major: [B, N] → [B, T, conv_dim[-1]] (HF `extract_features`)."""
        return self.feature_extractor(self._check_input(wav)).transpose(1, 2)  # [B, T, C]

    def encode(self, wav: torch.Tensor, mask: torch.Tensor | None = None, *, num_layers: int | None = None,
               hidden_states: list | None = None) -> torch.Tensor:
        """The full forward with the optional extras.

        - `mask` [B, T] bool: frames replaced by `masked_spec_embed` before the transformer
          (HuBERT's masked prediction, pretraining only).
        - `num_layers`: stop after this many transformer layers (0 = the input of layer 0).
        - `hidden_states`: a list that receives HF's `hidden_states` (input of layer 0, then
          every layer's output).
        """
        x = self.feature_projection(self.extract_features(wav))  # [B, T, H]
        if mask is not None:
            if mask.shape != x.shape[:2]:
                raise ValueError(f"mask must be [B, T] = {tuple(x.shape[:2])}, got {tuple(mask.shape)}")
            x = torch.where(mask.unsqueeze(-1), self.masked_spec_embed.to(x.dtype), x)  # [B, T, H]
        return self.encoder(x, num_layers=num_layers, hidden_states=hidden_states)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Last hidden state [B, T, hidden_size] of a 16 kHz waveform [B, N] (HF `last_hidden_state`)."""
        return self.encode(wav)

    def hidden_states(self, wav: torch.Tensor) -> list[torch.Tensor]:
        """HF `hidden_states`: num_hidden_layers + 1 tensors [B, T, H] (input of layer 0, then each layer)."""
        out: list[torch.Tensor] = []
        self.encode(wav, hidden_states=out)
        return out
