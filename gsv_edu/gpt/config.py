"""Typed configuration of the GPT stage (s1), read from the official YAML as it is.

The official s1 code passes one nested dict around (`GPT_SoVITS/configs/s1longer-v2.yaml`,
loaded by `GPT_SoVITS/AR/utils/io.py · load_yaml_config @48b1a01`, extended by
`webui.py · open1Bb @48b1a01` and stored verbatim under `"config"` in every s1 export and
Lightning checkpoint). `GPTConfig` is that dict with types: five sections (`train`,
`optimizer`, `data`, `model`, `inference`) plus the paths the web UI adds at the top level.
Keys we do not know are kept in `extra` dicts, so `GPTConfig.from_dict(d).to_dict() == d`
for every official config (the round trip matters: our exports carry the config on, and the
official UI reads `config["data"]["max_sec"]` and `config["model"][...]` from it).

What the model reads (`GPT_SoVITS/AR/models/t2s_model.py · Text2SemanticDecoder.__init__`):
`model.hidden_dim`, `embedding_dim`, `head`, `n_layer`, `vocab_size`, `phoneme_vocab_size`,
`dropout` (token-embedding dropout only; the layers always use 0.1) and `EOS`. Two keys are
listed in the YAML but read by nobody: `linear_units` (the feed-forward width is always
4·hidden_dim) and `random_bert`.

Presets: `official-v2` (s1longer-v2.yaml: 732 phones), `official-v1` (s1longer.yaml: 512
phone rows, inference top_k 5), `tiny` (2 layers, 64-d, 4 heads: a model that trains on
the CPU in minutes) and `small` (4 layers, 256-d, 8 heads: the shipped small GPT).

    cfg = GPTConfig.from_yaml("GPT_SoVITS/configs/s1longer-v2.yaml")
    cfg = GPTConfig.preset("tiny")
    cfg.model.n_layer, cfg.to_dict()["model"]["n_layer"]
"""
from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml

__all__ = ["GPTConfigError", "GPTTrainConfig", "GPTOptimizerConfig", "GPTDataConfig", "GPTModelConfig",
           "GPTInferenceConfig", "GPTConfig", "PRESETS"]


class GPTConfigError(ValueError):
    """A GPT config is missing a key or has a value of the wrong kind (the message names the key)."""


def _check_type(where: str, key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    """`value` if it is of `kind` (ints are accepted where floats are expected, bools are not ints)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok and float in kinds and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        names = " or ".join(k.__name__ for k in kinds)
        raise GPTConfigError(f"{where}: key {key!r} must be {names}, got {value!r} ({type(value).__name__})")
    return value


@dataclass
class _Section:
    """One section of the config: typed known keys, optional keys (None = absent), the rest in `extra`."""

    extra: dict = field(default_factory=dict)

    # field name -> accepted types; filled by each subclass
    TYPES: ClassVar[dict[str, type | tuple[type, ...]]] = {}
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()  # keys that may be absent (value None)
    REQUIRED: ClassVar[frozenset[str]] = frozenset()  # keys that must be present in a dict

    @classmethod
    def from_dict(cls, d: Any, where: str) -> "_Section":
        if not isinstance(d, dict):
            raise GPTConfigError(f"{where}: expected a mapping, got {type(d).__name__}")
        missing = sorted(k for k in cls.REQUIRED if k not in d)
        if missing:
            raise GPTConfigError(f"{where}: missing key(s) {missing}")
        kwargs, extra = {}, {}
        for key, value in d.items():
            if key not in cls.TYPES or (value is None and key in cls.OPTIONAL):
                extra[key] = copy.deepcopy(value)  # unknown keys, and known ones written as null, kept as they are
            else:
                kwargs[key] = _check_type(where, key, value, cls.TYPES[key])
        return cls(extra=extra, **kwargs)

    def to_dict(self) -> dict:
        out = {}
        for name in self.TYPES:
            value = getattr(self, name)
            if value is None and name in self.OPTIONAL:
                continue
            out[name] = value
        out.update(copy.deepcopy(self.extra))
        return out


@dataclass
class GPTTrainConfig(_Section):
    """`train:` — read by `s1_train.py` and the Lightning module (the `if_*`, `exp_name` and
    `half_weights_save_dir` keys are added by the web UI; None means absent)."""

    seed: int = 1234
    epochs: int = 20
    batch_size: int = 8
    save_every_n_epoch: int = 1
    precision: str | int = "16-mixed"  # "32" when the web UI runs without half precision
    gradient_clip: float = 1.0
    gradient_accumulation: int | None = None  # only in the old s1.yaml; unused by s1_train.py
    if_save_latest: bool | None = None
    if_save_every_weights: bool | None = None
    if_dpo: bool | None = None
    half_weights_save_dir: str | None = None
    exp_name: str | None = None

    TYPES: ClassVar = {"seed": int, "epochs": int, "batch_size": int, "save_every_n_epoch": int,
                       "precision": (str, int), "gradient_clip": float, "gradient_accumulation": int,
                       "if_save_latest": bool, "if_save_every_weights": bool, "if_dpo": bool,
                       "half_weights_save_dir": str, "exp_name": str}
    OPTIONAL: ClassVar = frozenset({"gradient_accumulation", "if_save_latest", "if_save_every_weights",
                                    "if_dpo", "half_weights_save_dir", "exp_name"})


@dataclass
class GPTOptimizerConfig(_Section):
    """`optimizer:` — the warm-up/cosine schedule's numbers (`AR/modules/lr_schedulers.py`)."""

    lr: float = 0.01
    lr_init: float = 0.00001
    lr_end: float = 0.0001
    warmup_steps: int = 2000
    decay_steps: int = 40000

    TYPES: ClassVar = {"lr": float, "lr_init": float, "lr_end": float, "warmup_steps": int, "decay_steps": int}


@dataclass
class GPTDataConfig(_Section):
    """`data:` — `max_sec` also caps inference (`early_stop_num = 50 * max_sec` in the web UI)."""

    max_eval_sample: int = 8
    max_sec: float = 54
    num_workers: int = 4
    pad_val: int = 1024

    TYPES: ClassVar = {"max_eval_sample": int, "max_sec": float, "num_workers": int, "pad_val": int}


@dataclass
class GPTModelConfig(_Section):
    """`model:` — the network's sizes (see the module docstring for which keys are read)."""

    vocab_size: int = 1025
    phoneme_vocab_size: int = 732
    embedding_dim: int = 512
    hidden_dim: int = 512
    head: int = 16
    linear_units: int | None = None  # 2048 in the official YAML files
    n_layer: int = 24
    dropout: float = 0.0
    EOS: int = 1024
    random_bert: int | None = None  # 0 in the official YAML files

    TYPES: ClassVar = {"vocab_size": int, "phoneme_vocab_size": int, "embedding_dim": int, "hidden_dim": int,
                       "head": int, "linear_units": int, "n_layer": int, "dropout": float, "EOS": int,
                       "random_bert": int}
    OPTIONAL: ClassVar = frozenset({"random_bert", "linear_units"})
    REQUIRED: ClassVar = frozenset({"vocab_size", "phoneme_vocab_size", "embedding_dim", "hidden_dim", "head",
                                    "n_layer", "dropout", "EOS"})

    @property
    def ffn_dim(self) -> int:
        """The feed-forward width the official model builds: 4·hidden_dim (not `linear_units`)."""
        return 4 * self.hidden_dim

    def validate(self, where: str = "model") -> None:
        for key in ("vocab_size", "phoneme_vocab_size", "embedding_dim", "hidden_dim", "head", "n_layer"):
            if getattr(self, key) < 1:
                raise GPTConfigError(f"{where}: key {key!r} must be at least 1, got {getattr(self, key)}")
        if self.EOS != self.vocab_size - 1:
            raise GPTConfigError(f"{where}: EOS must be the last audio token (vocab_size - 1 = "
                                 f"{self.vocab_size - 1}), got EOS={self.EOS}")
        if self.embedding_dim != self.hidden_dim:
            raise GPTConfigError(f"{where}: embedding_dim ({self.embedding_dim}) must equal hidden_dim "
                                 f"({self.hidden_dim}): the embeddings feed the layers directly")
        if self.hidden_dim % self.head:
            raise GPTConfigError(f"{where}: hidden_dim ({self.hidden_dim}) is not divisible by head ({self.head})")
        if not 0.0 <= self.dropout < 1.0:
            raise GPTConfigError(f"{where}: key 'dropout' must be in [0, 1), got {self.dropout}")


@dataclass
class GPTInferenceConfig(_Section):
    """`inference:` — kept for completeness; the web UI passes its own top_k."""

    top_k: int = 15

    TYPES: ClassVar = {"top_k": int}


_SECTIONS = {"train": GPTTrainConfig, "optimizer": GPTOptimizerConfig, "data": GPTDataConfig,
             "model": GPTModelConfig, "inference": GPTInferenceConfig}
_TOP_LEVEL_PATHS = ("output_dir", "pretrained_s1", "train_semantic_path", "train_phoneme_path")


@dataclass
class GPTConfig:
    """The whole s1 config: five typed sections, the web UI's paths, and any other top-level keys."""

    train: GPTTrainConfig = field(default_factory=GPTTrainConfig)
    optimizer: GPTOptimizerConfig = field(default_factory=GPTOptimizerConfig)
    data: GPTDataConfig = field(default_factory=GPTDataConfig)
    model: GPTModelConfig = field(default_factory=GPTModelConfig)
    inference: GPTInferenceConfig = field(default_factory=GPTInferenceConfig)
    output_dir: str | None = None
    pretrained_s1: str | None = None
    train_semantic_path: str | None = None
    train_phoneme_path: str | None = None
    extra: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, d: Any, source: str = "config") -> "GPTConfig":
        """From the official nested dict (a loaded YAML, or `ckpt["config"]`). Only `model` is required;
        absent sections take the s1longer-v2 values."""
        if isinstance(d, GPTConfig):
            return copy.deepcopy(d)
        if not isinstance(d, dict):
            raise GPTConfigError(f"{source}: a GPT config is a mapping with a 'model' section, "
                                 f"got {type(d).__name__}")
        if "model" not in d:
            raise GPTConfigError(f"{source}: no 'model' section (found keys {sorted(map(str, d))})")
        kwargs: dict[str, Any] = {}
        for name, section in _SECTIONS.items():
            if name in d:
                kwargs[name] = section.from_dict(d[name], f"{source}: {name}")
            else:
                kwargs[name] = section.from_dict(PRESETS["official-v2"][name], f"preset official-v2: {name}")
        extra = {}
        for key, value in d.items():
            if key in _SECTIONS:
                continue
            if key in _TOP_LEVEL_PATHS and value is not None:
                value = os.fspath(value) if isinstance(value, os.PathLike) else value
                kwargs[key] = _check_type(source, key, value, str)
            else:
                extra[key] = copy.deepcopy(value)  # other keys, and paths written as null, kept as they are
        kwargs["extra"] = extra
        cfg = cls(**kwargs)
        cfg.model.validate(f"{source}: model")
        return cfg

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "GPTConfig":
        """Read an official s1 YAML file (e.g. GPT_SoVITS/configs/s1longer-v2.yaml)."""
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                d = yaml.safe_load(f)
        except OSError as e:
            raise GPTConfigError(f"{path}: cannot read ({e.strerror or e})") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            raise GPTConfigError(f"{path}:{line} not valid YAML ({getattr(e, 'problem', None) or e})") from None
        return cls.from_dict(d, source=path)

    @classmethod
    def preset(cls, name: str) -> "GPTConfig":
        """`official-v2`, `official-v1` or `tiny` (see PRESETS)."""
        if name not in PRESETS:
            raise GPTConfigError(f"unknown GPT preset {name!r}; known: {sorted(PRESETS)}")
        return cls.from_dict(PRESETS[name], source=f"preset {name!r}")

    # ------------------------------------------------------------------ writing
    def to_dict(self) -> dict:
        """The official nested dict (what goes under `"config"` in an export)."""
        out: dict[str, Any] = {name: getattr(self, name).to_dict() for name in _SECTIONS}
        for key in _TOP_LEVEL_PATHS:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out.update(copy.deepcopy(self.extra))
        return out

    def to_yaml(self) -> str:
        """YAML text the official `s1_train.py --config_file` reads (the web UI also writes with yaml.dump)."""
        return yaml.dump(self.to_dict(), default_flow_style=False, sort_keys=False)

    def replace_model(self, **changes: Any) -> "GPTConfig":
        """A copy with some `model` keys changed (validated), e.g. a wider tiny model."""
        cfg = copy.deepcopy(self)
        cfg.model = dataclasses.replace(cfg.model, **changes)
        cfg.model.validate()
        return cfg


def _official_v2() -> dict:
    """GPT_SoVITS/configs/s1longer-v2.yaml @48b1a01, as yaml.safe_load reads it."""
    return {
        "train": {"seed": 1234, "epochs": 20, "batch_size": 8, "save_every_n_epoch": 1,
                  "precision": "16-mixed", "gradient_clip": 1.0},
        "optimizer": {"lr": 0.01, "lr_init": 0.00001, "lr_end": 0.0001, "warmup_steps": 2000,
                      "decay_steps": 40000},
        "data": {"max_eval_sample": 8, "max_sec": 54, "num_workers": 4, "pad_val": 1024},
        "model": {"vocab_size": 1025, "phoneme_vocab_size": 732, "embedding_dim": 512, "hidden_dim": 512,
                  "head": 16, "linear_units": 2048, "n_layer": 24, "dropout": 0, "EOS": 1024, "random_bert": 0},
        "inference": {"top_k": 15},
    }


def _official_v1() -> dict:
    """GPT_SoVITS/configs/s1longer.yaml @48b1a01: v2 with 512 phone rows and top_k 5."""
    d = _official_v2()
    d["model"]["phoneme_vocab_size"] = 512
    d["inference"]["top_k"] = 5
    return d


def _tiny() -> dict:
    """2 layers, 64-d, 4 heads (FFN 256): for tests, chapters and CPU training runs."""
    d = _official_v2()
    d["model"].update(embedding_dim=64, hidden_dim=64, head=4, linear_units=256, n_layer=2)
    return d


def _small() -> dict:
    """4 layers, 256-d, 8 heads (FFN 1024): the shipped small GPT (`gsv_edu/assets/gpt_tiny/`), trained
    on the sample corpus with AdamW, one optimizer step per batch (its MODEL_CARD.md has the command)."""
    d = _official_v2()
    d["model"].update(embedding_dim=256, hidden_dim=256, head=8, linear_units=1024, n_layer=4)
    return d


PRESETS: dict[str, dict] = {"official-v2": _official_v2(), "official-v1": _official_v1(), "tiny": _tiny(),
                            "small": _small()}
