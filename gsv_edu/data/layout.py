"""The prepared folder: its file names, its info file, its filters, and how its frames line up.

The one owner of the layout that `gsv_edu.data.prepare` writes (and the official scripts
`GPT_SoVITS/prepare_datasets/1-get-text.py`, `2-get-hubert-wav32k.py`, `3-get-semantic.py`
write at 48b1a01) and that `gsv_edu.data.dataset` and the trainer read (as
`GPT_SoVITS/module/data_utils.py · TextAudioSpeakerLoader.__init__ @48b1a01` does):

    2-name2text.txt        name \\t phones joined by spaces \\t word2ph (or None) \\t normalised text
    3-bert/{name}.pt       BERT features of the Chinese text (the GPT stage s1 only; not made by
                           gsv_edu.data.prepare)
    4-cnhubert/{name}.pt   content features [1, D, T'] float32 (HuBERT's last hidden state)
    5-wav32k/{name}        16-bit mono WAV at 32 kHz (the name is the list's basename, whatever
                           its extension: the key that joins the three outputs)
    6-name2semantic.tsv    header `item_name\\tsemantic_audio`, then name \\t codes (only with --sovits)
    7-sv_cn/{name}.pt      v2Pro/v2ProPlus only: the speaker vector [1, D] (D = 20480 with the official
                           ERes2NetV2) of the 5-wav32k audio resampled to 16 kHz
                           (`prepare_datasets/2-get-sv.py`; `gsv_edu.sv`)

and gsv_edu's additions: `prepare_info.json` (the content encoder's name, width D and
fingerprint, the version, the list), `prepare_report.tsv` (the skipped items and why), and
the per-item caches `items/2-name2text/{name}.json`, `items/6-name2semantic/{sovits}/{name}.txt`.

Duration filter (official `TextAudioSpeakerLoader`): an item is trained on when the duration
estimated from its WAV file size, size / 32000 / 2 seconds (the 44-byte header included), is in
(0.6 s, 54 s). The preparation applies the same filter, so nothing prepared is dropped later.

Frame alignment. HuBERT gives floor((N₁₆ − 400)/320) + 1 frames (`gsv_edu.hubert.features.
hubert_frames`), the 32 kHz spectrogram (hop 640) gives floor(N₃₂/640) (`spec_frames`). With
N₃₂ = 640·k + r and N₁₆ = N₃₂/2, HuBERT has k − 1 frames when r < 160 (one fewer than the
spectrogram: about one length in four; 57 of the 150 sample files) and k otherwise (equal).
Any other difference means the features do not belong to the audio (`content_frames_fit`); a
one-frame gap is closed by repeating the last HuBERT frame (`align_to_spec`), as the official
loader does.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from gsv_edu.atomic import atomic_write_text
from gsv_edu.config import Config, ConfigError

__all__ = ["TEXT_FILE", "BERT_DIR", "SSL_DIR", "WAV_DIR", "SV_DIR", "SEMANTIC_FILE", "SEMANTIC_HEADER", "INFO_FILE", "REPORT_FILE",
           "TEXT_ITEMS_DIR", "SEMANTIC_ITEMS_DIR", "WAV_HEADER_BYTES", "MIN_DURATION", "MAX_DURATION",
           "wav_duration_from_size", "read_name2text", "read_prepare_info", "write_prepare_info", "content_width",
           "check_prepared", "spec_frames", "content_frames_fit", "align_to_spec"]

TEXT_FILE = "2-name2text.txt"
BERT_DIR = "3-bert"
SSL_DIR = "4-cnhubert"
WAV_DIR = "5-wav32k"
SV_DIR = "7-sv_cn"
SEMANTIC_FILE = "6-name2semantic.tsv"
SEMANTIC_HEADER = "item_name\tsemantic_audio"
INFO_FILE = "prepare_info.json"
REPORT_FILE = "prepare_report.tsv"
TEXT_ITEMS_DIR = os.path.join("items", "2-name2text")
SEMANTIC_ITEMS_DIR = os.path.join("items", "6-name2semantic")
WAV_HEADER_BYTES = 44    # scipy's 16-bit PCM mono WAV header: RIFF 12 + fmt 24 + data 8
MIN_DURATION = 0.6       # seconds, exclusive (official filter)
MAX_DURATION = 54.0      # seconds, exclusive (official filter)


def wav_duration_from_size(num_bytes: int, sampling_rate: int = 32000) -> float:
    """The official duration estimate of a prepared wav: file size / sr / 2 (header included)."""
    return num_bytes / sampling_rate / 2


def read_name2text(path: str | os.PathLike) -> tuple[dict[str, list[str]], list[int]]:
    """`2-name2text.txt` → ({name: phones}, [line numbers without exactly 4 tab fields])."""
    phones: dict[str, list[str]] = {}
    bad_lines: list[int] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f.read().split("\n"), start=1):
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 4:
                bad_lines.append(number)
                continue
            phones[fields[0]] = fields[1].split(" ")
    return phones, bad_lines


def read_prepare_info(out_dir: str | os.PathLike) -> dict | None:
    """The `prepare_info.json` of a prepared folder (content_encoder, ssl_dim, ...), or None."""
    path = Path(out_dir) / INFO_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_prepare_info(out_dir: str | os.PathLike, info: dict) -> None:
    """Write `prepare_info.json` atomically (indented UTF-8 JSON)."""
    atomic_write_text(Path(out_dir) / INFO_FILE, json.dumps(info, indent=2, ensure_ascii=False) + "\n")


def content_width(data_dir: Path) -> tuple[int | None, str]:
    """(content-feature width D, what made it) of a prepared folder: prepare_info.json, else one .pt file."""
    info = read_prepare_info(data_dir)
    if info and info.get("ssl_dim"):
        return int(info["ssl_dim"]), str(info.get("content_encoder", "?"))
    ssl_dir = data_dir / SSL_DIR
    for name in sorted(os.listdir(ssl_dir)) if ssl_dir.is_dir() else []:
        if name.endswith(".pt"):
            t = torch.load(ssl_dir / name, map_location="cpu", weights_only=True)  # [1, D, T]
            return int(t.shape[-2]), f"{ssl_dir / name}"
    return None, ""


def check_prepared(cfg: Config, data_dir: Path) -> None:
    """Fail early (naming the folder and the fix) if `data_dir` cannot feed this config's model."""
    if not data_dir.is_dir():
        raise FileNotFoundError(f"--data {data_dir}: no such folder (prepare one with: python -m gsv_edu.prepare "
                                f"--list LIST --out {data_dir})")
    width, source = content_width(data_dir)
    if width is not None and width != cfg.model.ssl_dim:
        raise ConfigError(f"{data_dir} holds {width}-dim content features (from {source}) but model.ssl_dim is "
                          f"{cfg.model.ssl_dim}: add --set model.ssl_dim={width}, or prepare the data with the "
                          f"content encoder this config expects (chinese-hubert-base: 768; gsv_edu's small HuBERT: 256)")
    if cfg.version in ("v2Pro", "v2ProPlus"):
        sv_dir = data_dir / SV_DIR
        if not sv_dir.is_dir() or not any(name.endswith(".pt") for name in os.listdir(sv_dir)):
            raise ConfigError(f"{cfg.version} trains on speaker vectors, but {sv_dir} is missing or empty: prepare "
                              f"with --version {cfg.version} --sv CKPT (the official "
                              f"pretrained_eres2netv2w24s4ep4.ckpt) or --sv tiny")
        info = read_prepare_info(data_dir) or {}
        sv_dim = info.get("sv_dim")
        if sv_dim is not None and int(sv_dim) != cfg.model.sv_dim:
            raise ConfigError(f"{data_dir} holds {sv_dim}-dim speaker vectors (from {info.get('sv_model', '?')}) but "
                              f"model.sv_dim is {cfg.model.sv_dim}: add --set model.sv_dim={sv_dim}, or prepare with "
                              f"the speaker-verification model this config expects (official: 20480; tiny: 1280)")


def spec_frames(num_samples_32k: int, hop_length: int = 640) -> int:
    """Frames of the 32 kHz linear spectrogram (`audio.spectrogram`, center=False): floor(N₃₂/640)."""
    return int(num_samples_32k) // hop_length


def content_frames_fit(content_frames: int, num_spec_frames: int) -> bool:
    """True when content features of this many frames belong to audio with `num_spec_frames`
    spectrogram frames: the same count, or one fewer (module docstring)."""
    return content_frames in (num_spec_frames, num_spec_frames - 1)


def align_to_spec(ssl: torch.Tensor, num_spec_frames: int) -> torch.Tensor:
    """What the official `TextAudioSpeakerLoader` does with a HuBERT/spectrogram length mismatch.

    Official quirk (`GPT_SoVITS/module/data_utils.py ·
    TextAudioSpeakerLoader.get_audio_text_speaker_pair @48b1a01`): if the frame counts differ,
    the features [.., D, T'] are padded by **one** frame (repeating the last) on the right,
    whatever the difference; the collate later crops/pads to the spectrogram length.
    """
    if ssl.shape[-1] == num_spec_frames:
        return ssl
    squeeze = ssl.dim() == 2
    x = ssl.unsqueeze(0) if squeeze else ssl  # [B, D, T']
    x = F.pad(x, (0, 1), mode="replicate")  # [B, D, T' + 1]
    return x.squeeze(0) if squeeze else x
