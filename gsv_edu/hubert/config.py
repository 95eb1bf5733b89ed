"""The HuBERT hyper-parameters that shape the network, read from a Hugging Face `config.json`.

Mirrors the fields of `transformers.HubertConfig` that matter for `HubertModel` (the class
`GPT_SoVITS/feature_extractor/cnhubert.py · CNHubert.__init__ @48b1a01` loads
chinese-hubert-base with). Defaults are HuBERT-base, which is
also what TencentGameMate/chinese-hubert-base publishes. Fields of the published config that do
not change the network (vocab_size, ctc_*, architectures, ...) are ignored when reading and
written back with harmless values, so that our own checkpoints load in `transformers` too.

Paper: Hsu et al., "HuBERT: Self-Supervised Speech Representation Learning by Masked Prediction
of Hidden Units", 2021 (arXiv:2106.07447).
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field


class HuBERTConfigError(ValueError):
    """A config.json asks for something this implementation does not build (or is malformed)."""


@dataclass
class HuBERTConfig:
    """Shape of a HuBERT (`HubertModel`) network; field names are the Hugging Face ones."""

    # --- convolutional waveform encoder ("feature_extractor"): 7 layers, 320x downsampling
    conv_dim: tuple[int, ...] = (512, 512, 512, 512, 512, 512, 512)
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = False
    feat_extract_norm: str = "group"  # GroupNorm after the first conv only
    feat_extract_activation: str = "gelu"
    # --- feature projection: LayerNorm(conv_dim[-1]) -> Linear(conv_dim[-1], hidden_size)
    feat_proj_layer_norm: bool = True
    # --- transformer encoder (post-norm, as BERT)
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    do_stable_layer_norm: bool = False  # False = post-norm (base); True = pre-norm (large)
    # --- convolutional relative positional embedding
    num_conv_pos_embeddings: int = 128  # kernel size
    num_conv_pos_embedding_groups: int = 16
    conv_pos_batch_norm: bool = False
    # --- training only (dropout, LayerDrop, span masking); no effect in eval mode
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.1
    feat_proj_dropout: float = 0.0
    layerdrop: float = 0.1
    mask_time_prob: float = 0.05
    mask_time_length: int = 10
    mask_feature_prob: float = 0.0
    # --- everything else found in config.json, kept verbatim so that saving round-trips it
    extra: dict = field(default_factory=dict, repr=False, compare=False)

    # HF names of the tuple fields (JSON stores lists)
    _TUPLES = ("conv_dim", "conv_kernel", "conv_stride")

    def __post_init__(self) -> None:
        for name in self._TUPLES:
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise HuBERTConfigError for values this implementation does not build."""
        n = len(self.conv_dim)
        if not (len(self.conv_kernel) == len(self.conv_stride) == n) or n == 0:
            raise HuBERTConfigError(
                f"conv_dim, conv_kernel and conv_stride must have the same non-zero length, got "
                f"{len(self.conv_dim)}, {len(self.conv_kernel)}, {len(self.conv_stride)}")
        unsupported = {
            "feat_extract_norm": (self.feat_extract_norm, ("group",)),
            "feat_extract_activation": (self.feat_extract_activation, ("gelu",)),
            "hidden_act": (self.hidden_act, ("gelu",)),
            "do_stable_layer_norm": (self.do_stable_layer_norm, (False,)),
            "conv_pos_batch_norm": (self.conv_pos_batch_norm, (False,)),
        }
        for name, (value, allowed) in unsupported.items():
            if value not in allowed:
                raise HuBERTConfigError(
                    f"{name}={value!r} is not supported: this is the HuBERT-base architecture "
                    f"(chinese-hubert-base), which has {name}={allowed[0]!r}")
        if self.hidden_size % self.num_attention_heads:
            raise HuBERTConfigError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}")
        if self.hidden_size % self.num_conv_pos_embedding_groups:
            raise HuBERTConfigError(
                f"hidden_size {self.hidden_size} is not divisible by num_conv_pos_embedding_groups "
                f"{self.num_conv_pos_embedding_groups}")

    # ------------------------------------------------------------------ derived sizes
    @property
    def downsampling(self) -> int:
        """Samples per output frame: the product of the strides (320 = 20 ms at 16 kHz)."""
        out = 1
        for s in self.conv_stride:
            out *= s
        return out

    @property
    def receptive_field(self) -> int:
        """Samples seen by one output frame of the conv encoder (400 for HuBERT-base)."""
        field_, jump = 1, 1
        for k, s in zip(self.conv_kernel, self.conv_stride):
            field_ += (k - 1) * jump
            jump *= s
        return field_

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for `num_samples` 16 kHz samples: floor((N - 400) / 320) + 1 for base."""
        n = int(num_samples)
        for k, s in zip(self.conv_kernel, self.conv_stride):
            n = (n - k) // s + 1  # a conv without padding
            if n <= 0:
                return 0
        return n

    @property
    def uses_masked_spec_embed(self) -> bool:
        """HubertModel owns `masked_spec_embed` [hidden] only when some masking is configured."""
        return self.mask_time_prob > 0.0 or self.mask_feature_prob > 0.0

    # ------------------------------------------------------------------ JSON
    @classmethod
    def from_dict(cls, d: dict) -> "HuBERTConfig":
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in d.items() if k in known}
        extra = {k: v for k, v in d.items() if k not in known}
        if "num_feat_extract_layers" in d and int(d["num_feat_extract_layers"]) != len(d.get("conv_dim", cls.conv_dim)):
            raise HuBERTConfigError(
                f"num_feat_extract_layers={d['num_feat_extract_layers']} disagrees with len(conv_dim)")
        model_type = d.get("model_type", "hubert")
        if model_type != "hubert":
            raise HuBERTConfigError(f"model_type is {model_type!r}, expected 'hubert'")
        return cls(**kwargs, extra=extra)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "HuBERTConfig":
        """Read a Hugging Face HubertConfig `config.json`; errors name the file."""
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except FileNotFoundError:
            raise HuBERTConfigError(f"{path}: no such file (a Hugging Face model folder needs config.json)") from None
        except json.JSONDecodeError as e:
            raise HuBERTConfigError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise HuBERTConfigError(f"{path}: expected a JSON object")
        try:
            return cls.from_dict(d)
        except (HuBERTConfigError, TypeError, ValueError) as e:
            raise HuBERTConfigError(f"{path}: {e}") from None

    def to_dict(self) -> dict:
        """A config.json that both this class and `transformers.HubertConfig` read."""
        d = {"architectures": ["HubertModel"], "model_type": "hubert"}
        d.update({k: v for k, v in self.extra.items() if k not in ("architectures", "model_type")})
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        d["num_feat_extract_layers"] = len(self.conv_dim)
        return d
