"""Typed configuration for SoVITS training and inference, in the layout of the official s2.json.

Mirrors `GPT_SoVITS/configs/s2.json @48b1a01` and the fields that the official web UI
(`webui.py · open1Ba @48b1a01`, at the root of the official repository) adds before training
(`name`, `version`, `save_weight_dir`, `train.pretrained_s2G`, `data.exp_dir`, ...).
Three sections, each a dataclass: `train`, `data`, `model`; a few top-level keys.

- `Config.load("s2.json")` reads the official file as-is, and `config.save(path)` writes it back
  unchanged: keys that came from a file are always written, in their order; keys that did not
  are written only when they differ from the default. So a gsv_edu-only setting (say
  `train.max_steps`) never appears in an official file unless you set it.
- Presets: `official-v2`, `official-v1` (the released s2.json), `official-v2pro`,
  `official-v2proplus` (configs/s2v2Pro.json, s2v2ProPlus.json as released), `tiny` (CPU-sized,
  used by the book, the tests and the default run) and `tiny-v2pro` (the same with the v2Pro
  speaker-verification branch, fed by the tiny ERes2NetV2 of `gsv_edu.sv`).
- Overrides from the command line: `--set train.batch_size=4`; values are parsed as JSON
  (`4`, `1e-4`, `true`, `null`, `[1,2]`) or taken as plain strings, and type-checked.
- An unknown key or a value of the wrong type is a `ConfigError` that names the key.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Optional, Union

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
OFFICIAL_S2_JSON = PACKAGE_DIR / "configs" / "s2.json"
# the released config of each version (v1 and v2 share s2.json; GPT_SoVITS/configs/ @48b1a01)
OFFICIAL_CONFIGS = {"v1": OFFICIAL_S2_JSON, "v2": OFFICIAL_S2_JSON,
                    "v2Pro": PACKAGE_DIR / "configs" / "s2v2Pro.json",
                    "v2ProPlus": PACKAGE_DIR / "configs" / "s2v2ProPlus.json"}


class ConfigError(ValueError):
    """A configuration key is unknown or its value has the wrong type."""


CODEBOOK_INITS = ("first_batch", "corpus")  # train.codebook_init: the official way first


@dataclass
class TrainConfig:
    """The `train` section. Official keys first; gsv_edu additions below the marker."""

    log_interval: int = 100          # steps between log lines
    eval_interval: int = 500         # unused by the official trainer (kept for the layout)
    seed: int = 1234
    epochs: int = 100
    learning_rate: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.8, 0.99])
    eps: float = 1e-9
    batch_size: int = 32
    fp16_run: bool = True            # mixed precision on CUDA (ignored on the CPU)
    lr_decay: float = 0.999875       # ExponentialLR gamma, stepped per epoch
    segment_size: int = 20480        # samples of the decoder's training window (32 frames)
    init_lr_ratio: float = 1         # unused by the official trainer
    warmup_epochs: int = 0           # unused by the official trainer
    c_mel: float = 45
    c_kl: float = 1.0
    text_low_lr_rate: float = 0.4    # lr multiplier of enc_p.text_embedding/encoder_text/mrte
    grad_ckpt: bool = False          # unused for v1/v2
    # --- keys the official web UI writes into the training config ---
    pretrained_s2G: str = ""
    pretrained_s2D: str = ""
    if_save_latest: bool = True
    if_save_every_weights: bool = True
    save_every_epoch: int = 4
    gpu_numbers: str = "0"
    lora_rank: str = ""
    # --- gsv_edu additions (not read by the official code) ---
    max_steps: Optional[int] = None  # stop after this many optimizer steps in total (resumes count)
    save_every_steps: Optional[int] = None  # checkpoint every N steps (besides every save_every_epoch epochs)
    keep_last: int = 3               # training checkpoints kept in the run folder
    amp_dtype: str = "float16"       # "float16" (with GradScaler) or "bfloat16" when fp16_run on CUDA
    num_workers: int = 0             # DataLoader workers
    max_nonfinite_steps: int = 5     # consecutive non-finite losses tolerated before the run stops
    disc_channel_divisor: int = 1    # divides the discriminator's widths (1 = official 46.7 M parameters)
    codebook_init: str = "first_batch"  # fresh codebook: k-means of the first batch (official) or "corpus"
    #                                     (of every training utterance: gsv_edu.train.codebook)


@dataclass
class DataConfig:
    """The `data` section: audio parameters shared by preparation, training and inference."""

    max_wav_value: float = 32768.0   # unused (audio is already in [-1, 1])
    sampling_rate: int = 32000
    filter_length: int = 2048        # n_fft
    hop_length: int = 640            # 20 ms at 32 kHz = one HuBERT frame
    win_length: int = 2048
    n_mel_channels: int = 128
    mel_fmin: float = 0.0
    mel_fmax: Optional[float] = None
    add_blank: bool = True           # unused by the model
    n_speakers: int = 300            # unused by the model
    cleaned_text: bool = True        # unused by the model
    exp_dir: str = ""                # web UI: the prepared-data folder


@dataclass
class ModelConfig:
    """The `model` section: keyword arguments of `SynthesizerTrn`."""

    inter_channels: int = 192        # latent size I
    hidden_channels: int = 192       # H
    filter_channels: int = 768       # FFN inner size
    n_heads: int = 2
    n_layers: int = 6                # → 3 / 6 / 3 layers in encoder_ssl / encoder_text / encoder2
    kernel_size: int = 3
    p_dropout: float = 0.1
    resblock: str = "1"
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(default_factory=lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]])
    upsample_rates: list[int] = field(default_factory=lambda: [10, 8, 2, 2, 2])
    upsample_initial_channel: int = 512
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [16, 16, 8, 2, 2])
    n_layers_q: int = 3              # unused
    use_spectral_norm: bool = False
    gin_channels: int = 512          # G: width of the global voice vector ge
    semantic_frame_rate: str = "25hz"
    freeze_quantizer: bool = True
    version: Optional[str] = None    # "v1" | "v2" | "v2Pro" | "v2ProPlus"; the web UI adds it
    # --- gsv_edu additions ---
    ssl_dim: int = 768               # content-feature width (768 for chinese-hubert-base)
    sv_dim: int = 20480              # v2Pro speaker-vector width (ERes2NetV2 forward3; 1280 for the tiny SV)


SECTIONS: dict[str, type] = {"train": TrainConfig, "data": DataConfig, "model": ModelConfig}
# Top-level keys of s2.json and of the web UI's training config, with their types.
TOP_LEVEL: dict[str, Any] = {
    "s2_ckpt_dir": str, "content_module": str, "name": str, "version": str, "save_weight_dir": str,
    "pretrain": Optional[str], "resume_step": Optional[int],
}
SUPPORTED_VERSIONS = ("v1", "v2", "v2Pro", "v2ProPlus")  # the SoVITS versions gsv_edu implements (the one list of them)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check(value, tp, key: str):
    """Return `value` converted to the annotated type `tp`, or raise ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of {_type_name(item_tp)}, got {value!r} ({type(value).__name__})")
        return [_check(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():  # 1e4 written for an int
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value) if isinstance(value, float) else value
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported annotation {tp!r} for {key}")
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _section_from_dict(cls, data: dict, section: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{section}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in hints]
    if unknown:
        raise ConfigError(f"{section}.{unknown[0]}: unknown key (known keys of '{section}': {', '.join(names)})")
    values = {k: _check(v, hints[k], f"{section}.{k}") for k, v in data.items()}
    return cls(**values)


@dataclass
class Config:
    """A whole training/inference configuration: the three sections plus top-level keys."""

    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    top: dict[str, Any] = field(default_factory=dict)
    # Keys (per section, in file order) that came from a file: always written back.
    given_keys: dict[str, list[str]] = field(default_factory=dict, repr=False)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "Config":
        """Build from a dict in the s2.json layout. Unknown keys and wrong types raise ConfigError."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object at the top level")
        given = _given_keys(d)
        d = dict(d)
        d.pop("_derived", None)  # informative block of the fixtures' tiny config
        d.pop("mrte", None)      # MRTE sizes follow hidden/gin_channels here (fixtures' note)
        sections = {}
        for name, section_cls in SECTIONS.items():
            try:
                sections[name] = _section_from_dict(section_cls, d.pop(name, {}), name)
            except ConfigError as e:
                raise ConfigError(f"{source}: {e}") from None
        top = {}
        for k, v in d.items():
            if k not in TOP_LEVEL:
                raise ConfigError(f"{source}: {k}: unknown top-level key (known: train, data, model, "
                                  f"{', '.join(TOP_LEVEL)})")
            top[k] = _check(v, TOP_LEVEL[k], k)
        return cls(top=top, given_keys=given, **sections)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Config":
        """Read a config in the official s2.json layout."""
        path = pathlib.Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_hparams(cls, hparams) -> "Config":
        """Build from the `config` object stored in an official export (a pickled utils.HParams)."""
        return cls.from_dict(_to_plain(hparams), source="exported config")

    @classmethod
    def preset(cls, name: str) -> "Config":
        """`official-v2`, `official-v1`, `official-v2pro`, `official-v2proplus`, `tiny` or
        `tiny-v2pro` (see module docstring)."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})")
        return PRESETS[name]()

    # ---------------------------------------------------------------- output
    def to_dict(self) -> dict:
        """The s2.json layout: file keys in file order, then keys that differ from the defaults."""
        out: dict[str, Any] = {}
        for name, section_cls in SECTIONS.items():
            section = getattr(self, name)
            default = section_cls()
            given = self.given_keys.get(name, [])
            values = dataclasses.asdict(section)
            keys = list(given) + [k for k in values if k not in given and values[k] != getattr(default, k)]
            out[name] = {k: values[k] for k in keys}
        for k, v in self.top.items():
            out[k] = v
        top_order = self.given_keys.get("", [])
        if top_order:  # keep the file's order of sections and top-level keys
            ordered = {k: out[k] for k in top_order if k in out}
            ordered.update({k: v for k, v in out.items() if k not in ordered})
            out = ordered
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON (2-space indent like the official file), atomically."""
        path = pathlib.Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    # ---------------------------------------------------------------- overrides
    def set(self, key: str, value) -> None:
        """Set `section.key` (or a top-level key) with type checking."""
        if "." in key:
            section_name, name = key.split(".", 1)
            if section_name not in SECTIONS:
                raise ConfigError(f"{key}: unknown section '{section_name}' (choose from {', '.join(SECTIONS)})")
            section = getattr(self, section_name)
            hints = typing.get_type_hints(type(section))
            if name not in hints:
                known = ", ".join(f.name for f in dataclasses.fields(section))
                raise ConfigError(f"{key}: unknown key (known keys of '{section_name}': {known})")
            setattr(section, name, _check(value, hints[name], key))
        else:
            if key not in TOP_LEVEL:
                raise ConfigError(f"{key}: unknown key (use section.key, e.g. train.batch_size)")
            self.top[key] = _check(value, TOP_LEVEL[key], key)

    def apply_overrides(self, overrides: list[str] | None) -> "Config":
        """Apply `key=value` strings (from `--set`); values are JSON or plain strings."""
        for item in overrides or []:
            if "=" not in item:
                raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.batch_size=4")
            key, text = item.split("=", 1)
            self.set(key.strip(), parse_value(text))
        return self

    # ---------------------------------------------------------------- derived values
    @property
    def version(self) -> str:
        """The SoVITS version ("v1"/"v2"/"v2Pro"/"v2ProPlus"): model.version, else the top-level
        version, else v2."""
        v = self.model.version or self.top.get("version") or "v2"
        return v

    @property
    def spec_channels(self) -> int:
        """Linear-spectrogram bins: n_fft / 2 + 1 = 1025."""
        return self.data.filter_length // 2 + 1

    @property
    def segment_frames(self) -> int:
        """Decoder training window in spectrogram frames: 20480 / 640 = 32 officially."""
        return self.train.segment_size // self.data.hop_length

    def model_kwargs(self) -> dict:
        """Keyword arguments for `SynthesizerTrn(spec_channels, segment_frames, **kwargs)`."""
        kw = dataclasses.asdict(self.model)
        kw["version"] = self.version
        return kw

    def validate(self) -> "Config":
        """Checks that span several keys (the per-key types are checked on the way in)."""
        if self.version not in SUPPORTED_VERSIONS:
            raise ConfigError(f"model.version: {self.version!r} is not supported yet "
                              f"(supported: {', '.join(SUPPORTED_VERSIONS)})")
        if math.prod(self.model.upsample_rates) != self.data.hop_length:
            raise ConfigError(f"model.upsample_rates: their product {math.prod(self.model.upsample_rates)} "
                              f"must equal data.hop_length {self.data.hop_length}")
        n_up = len(self.model.upsample_rates)
        if self.model.upsample_initial_channel // 2 ** n_up < 1:
            raise ConfigError(f"model.upsample_initial_channel: {self.model.upsample_initial_channel} is halved "
                              f"{n_up} times (once per upsampling stage) to 0 channels; use at least {2 ** n_up}")
        if len(self.model.upsample_kernel_sizes) != n_up:
            raise ConfigError(f"model.upsample_kernel_sizes: {len(self.model.upsample_kernel_sizes)} kernels for "
                              f"{n_up} upsample_rates")
        if self.train.segment_size % self.data.hop_length:
            raise ConfigError(f"train.segment_size: {self.train.segment_size} is not a multiple of "
                              f"data.hop_length {self.data.hop_length}")
        if self.model.hidden_channels % self.model.n_heads:
            raise ConfigError("model.hidden_channels: must be divisible by model.n_heads")
        if self.model.inter_channels % 2:
            raise ConfigError("model.inter_channels: must be even (the flow splits it in halves)")
        if self.model.sv_dim < 1:
            raise ConfigError(f"model.sv_dim: the speaker-vector width must be positive, got {self.model.sv_dim}")
        if self.train.amp_dtype not in ("float16", "bfloat16"):
            raise ConfigError(f"train.amp_dtype: expected 'float16' or 'bfloat16', got {self.train.amp_dtype!r}")
        if self.train.codebook_init not in CODEBOOK_INITS:
            raise ConfigError(f"train.codebook_init: expected 'first_batch' (official) or 'corpus', "
                              f"got {self.train.codebook_init!r}")
        return self


def parse_value(text: str):
    """`4` → 4, `1e-4` → 0.0001, `true` → True, `null` → None, `[1,2]` → [1, 2], else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _given_keys(raw: dict) -> dict[str, list[str]]:
    given = {"": [k for k in raw if k not in ("_derived", "mrte")]}
    for name in SECTIONS:
        if isinstance(raw.get(name), dict):
            given[name] = list(raw[name])
    return given


def _to_plain(obj):
    """Turn an HParams-like object tree (attributes or dict) into plain dicts."""
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return {k: _to_plain(v) for k, v in vars(obj).items()}
    return obj


# ---------------------------------------------------------------------------------------- presets

def _official(version: str) -> Config:
    cfg = Config.load(OFFICIAL_CONFIGS[version])
    cfg.model.version = version
    return cfg


def _tiny_v2pro() -> Config:
    """`tiny` with the v2Pro speaker-verification branch: configs/s2v2Pro.json's settings
    (p_dropout 0) at the tiny sizes, gin 64, and the 1280-wide speaker vector of the tiny
    ERes2NetV2 (`gsv_edu.sv.TINY_SV_ARGS`; the official one gives 20480)."""
    cfg = _tiny("v2Pro")
    cfg.model.sv_dim = 1280
    return cfg


def _tiny(version: str = "v2") -> Config:
    """CPU-sized SoVITS: the fixtures' tiny widths, our small HuBERT's content width.

    Same architecture family and every data/mel parameter of the official model; widths cut
    (hidden 32, inter 16, gin 64, HiFi-GAN 128 → 4 channels), 2/4/2 attention layers, an
    8-frame (5120-sample) decoder window, small batches and fp32.
    """
    cfg = _official(version)
    m, t = cfg.model, cfg.train
    m.inter_channels, m.hidden_channels, m.filter_channels = 16, 32, 64
    m.n_layers, m.upsample_initial_channel, m.gin_channels = 4, 128, 64
    m.ssl_dim = TINY_SSL_DIM
    t.segment_size, t.batch_size, t.fp16_run = 5120, 4, False
    t.log_interval, t.save_every_epoch, t.epochs = 10, 1000, 1000
    # Sized for `python -m gsv_edu.train` (no arguments) to prepare the sample corpus and train in
    # under 10 minutes on 2 shared CPU cores: a narrow discriminator (0.78 M instead of 46.7 M
    # parameters), a 4× higher learning rate than the official fine-tuning one (this model starts
    # from scratch), 100 steps.
    t.learning_rate, t.disc_channel_divisor = 4e-4, 8
    t.save_every_steps, t.max_steps = 50, 100
    return cfg


TINY_SSL_DIM = 256  # width of the small HuBERT shipped in gsv_edu/assets/hubert_small
PRESETS = {"official-v2": lambda: _official("v2"), "official-v1": lambda: _official("v1"),
           "official-v2pro": lambda: _official("v2Pro"), "official-v2proplus": lambda: _official("v2ProPlus"),
           "tiny": _tiny, "tiny-v2pro": _tiny_v2pro}


def add_config_arguments(parser) -> None:
    """Add `--preset`, `--config` and `--set` to an argparse parser."""
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS),
                        help="start from a preset (default: tiny, or the file given with --config)")
    parser.add_argument("--config", default=None, help="an s2.json-layout file (official or gsv_edu)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one value, e.g. --set train.batch_size=4 (repeatable)")


def config_from_arguments(args, default_preset: str = "tiny") -> Config:
    """The Config described by `--preset`/`--config`/`--set`, validated."""
    if args.config and args.preset:
        raise ConfigError("give either --preset or --config, not both")
    cfg = Config.load(args.config) if args.config else Config.preset(args.preset or default_preset)
    return cfg.apply_overrides(args.overrides).validate()
