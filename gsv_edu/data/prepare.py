"""Data preparation: a list file → the official prepared-data folder that SoVITS training reads.

    python -m gsv_edu.prepare --list data/sample/sample.list --out runs/sample/data

Mirrors the three official scripts (`GPT_SoVITS/prepare_datasets/1-get-text.py · process`,
`2-get-hubert-wav32k.py · name2go`, `3-get-semantic.py · name2go` @48b1a01), in their layout and
file formats:

1. text (`prepare_datasets/1-get-text.py`): `clean_text(text, language, version)` with the
   official replacements "%" → "-" and "￥" → "," → `2-name2text.txt`, one line per utterance:
   `name \\t phones joined by spaces \\t word2ph as a Python list literal (or None) \\t normalised text`.
   (The BERT features of `3-bert/` are for the GPT stage s1 only and are not made here.)
2. audio and content (`prepare_datasets/2-get-hubert-wav32k.py`): audio loaded as mono 32 kHz;
   skipped if its peak exceeds 2.2; loudness mix y_mix = 0.95·0.5·y/peak + 0.5·y;
   `5-wav32k/{name}`: y_mix × 32768 as 16-bit WAV at 32 kHz; `4-cnhubert/{name}.pt`: the content
   encoder's last hidden state of y_mix × 1145.14 resampled to 16 kHz, a float32 tensor
   [1, D, T] (`gsv_edu.hubert.features.training_features`).
   The file name in `5-wav32k/` is the list's basename even when it ends in `.flac` or `.mp3`:
   the official script writes a WAV under that name with scipy, and every reader (ffmpeg,
   soundfile) recognises the WAV by its header, not its extension. We keep that, because the
   name is the key that joins the three outputs.
3. speaker vectors (`prepare_datasets/2-get-sv.py`), only for v2Pro/v2ProPlus (`--sv`):
   `7-sv_cn/{name}.pt` = `ERes2NetV2.forward3` of the 80-bin Kaldi fbank of the `5-wav32k` audio
   (int16 / 32768) resampled to 16 kHz with torchaudio's sinc kernel, [1, D] (`gsv_edu.sv`).
   `--sv CKPT` takes the official `pretrained_eres2netv2w24s4ep4.ckpt` (D = 20480); `--sv tiny` a
   randomly initialised tiny ERes2NetV2 (D = 1280, for the tiny-v2pro preset and the tests): a
   speaker-verification model cannot be trained meaningfully on the five speakers of the sample
   corpus, so the tiny one only exercises the path; its vectors carry no trained notion of voice.
4. semantic codes (`prepare_datasets/3-get-semantic.py`), only with `--sovits CKPT`:
   `SynthesizerTrn.extract_latent(ssl)[0, 0]` → `6-name2semantic.tsv` (header
   `item_name\\tsemantic_audio`, then `name \\t codes joined by spaces`). SoVITS training (s2)
   quantizes on the fly and does not need them; they are the targets of the GPT stage (s1).

The content encoder is our small pretrained HuBERT (`gsv_edu/assets/hubert_small`) by default, or
any HuBERT-base folder such as chinese-hubert-base with `--hubert FOLDER` (the official one).
Its name and width D are recorded in `prepare_info.json`; the trainer checks `model.ssl_dim`
against it.

What gsv_edu adds (the official scripts have none of it):

- **bad items are skipped, not fatal**: list-file problems, unreadable/empty/missing/silent audio,
  too short or too long audio, a text the front-end cannot handle or that gives nothing to
  speak (only punctuation/pauses, e.g. an emoji; the official keeps those), ... are listed with their
  reason in `prepare_report.tsv` and in the summary; the run fails only when nothing usable is
  left. Duration limit: 0.6 s < (44 + 2·N) / 64000 < 54 s, exactly the filter the official
  training loader applies to the written file
  (`GPT_SoVITS/module/data_utils.py · TextAudioSpeakerLoader.__init__ @48b1a01`), so
  nothing prepared is silently dropped later. (The bucket sampler then also drops items of at
  most `segment_frames` frames: 32 = 0.64 s officially, 8 for the tiny preset; 0.6-0.64 s items
  are kept here because that limit depends on the training config.)
- **resumable, every write atomic** (`gsv_edu.atomic`): an item whose `4-cnhubert/{name}.pt`
  and `5-wav32k/{name}` exist is not redone (the .pt is written after the wav, and a file only
  ever appears complete); the text results are kept per item in `items/2-name2text/{name}.json`
  and the codes in `items/6-name2semantic/{sovits fingerprint}/{name}.txt`; the two merged files
  are rewritten from them at the end of every run. An interrupted run loses nothing done.
  `2-name2text.txt` lists only the items that are fully usable (the official file also lists
  items whose audio failed; the loader then ignores them).
- the int16 conversion clips to [-32768, 32767] (official: values beyond wrap around when the
  input peak is between about 1.03 and 2.2, a plain overflow bug).

Audio loading: the official script decodes and resamples with ffmpeg; we read with
soundfile/librosa and resample with soxr (librosa's default) — identical for 32 kHz input.
The content encoder runs on one utterance at a time, as the official script: HuBERT has no
padding mask and its first layer normalises over time, so batching utterances of different
lengths would change their features.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.io import wavfile
from tqdm.auto import tqdm

from gsv_edu import audio
from gsv_edu.atomic import atomic_save, atomic_write, atomic_write_text
from gsv_edu.config import SUPPORTED_VERSIONS
from gsv_edu.data.layout import (INFO_FILE, MAX_DURATION, MIN_DURATION, REPORT_FILE, SEMANTIC_FILE, SEMANTIC_HEADER,
                                 SEMANTIC_ITEMS_DIR, SSL_DIR, TEXT_FILE, TEXT_ITEMS_DIR, WAV_DIR, WAV_HEADER_BYTES,
                                 SV_DIR, content_frames_fit, read_prepare_info, spec_frames, wav_duration_from_size,
                                 write_prepare_info)
from gsv_edu.data.listfile import ListItem, read_list
from gsv_edu.hubert import HuBERT, features, load_content_encoder
from gsv_edu.hubert.features import MAX_PEAK
from gsv_edu.sv import TINY_SV_SEED, ERes2NetV2, SpeakerVector, build_preset
from gsv_edu.text import clean_text, preprocess_list_text
from gsv_edu.text.symbols import PUNCTUATION, symbol_to_id
from gsv_edu.weights import load_sovits, load_sv_model, weights_fingerprint

logger = logging.getLogger(__name__)

__all__ = ["prepare", "PrepareReport", "PrepareError", "BadItem"]

FINGERPRINT_DIGITS = 12  # the fingerprints in prepare_info.json and the semantic cache's folder names
NON_SPEECH_PHONES = {"SP", "SP2", "SP3"}  # pauses; with the punctuation phones, nothing to speak
PRO_VERSIONS = ("v2Pro", "v2ProPlus")  # the versions that train on speaker vectors (7-sv_cn/)


class PrepareError(RuntimeError):
    """Nothing usable was prepared, or the output folder conflicts with this run; `report` if any."""

    def __init__(self, message: str, report: "PrepareReport | None" = None):
        super().__init__(message)
        self.report = report


class ItemError(ValueError):
    """One utterance cannot be used (the message is the reason written to the report)."""


@dataclass
class BadItem:
    """An utterance that was skipped: where it is (`list:line`), its name, and why."""

    where: str
    name: str
    reason: str


@dataclass
class PrepareReport:
    """What a `prepare` run did. `summary()` is the text printed at the end of the command."""

    list_path: str
    out_dir: str
    prepared: list[str] = field(default_factory=list)   # usable names, in list order
    bad: list[BadItem] = field(default_factory=list)
    computed: Counter = field(default_factory=Counter)  # steps done in this run: text/audio/sv/semantic
    reused: Counter = field(default_factory=Counter)    # steps found done by an earlier run
    content_encoder: str = ""
    ssl_dim: int = 0
    semantic_note: str = ""
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return len(self.prepared) + len(self.bad)

    def summary(self) -> str:
        lines = [f"prepared {len(self.prepared)} of {self.total} utterances into {self.out_dir} "
                 f"in {self.seconds:.1f} s",
                 f"  content encoder: {self.content_encoder} (D = {self.ssl_dim})",
                 "  done in this run: " + ", ".join(f"{k} {self.computed[k]}" for k in ("text", "audio", "sv", "semantic")),
                 "  reused from an earlier run: " + ", ".join(f"{k} {self.reused[k]}" for k in ("text", "audio", "sv", "semantic")),
                 f"  semantic codes: {self.semantic_note}"]
        if self.bad:
            lines.append(f"  {len(self.bad)} skipped (also in {os.path.join(self.out_dir, REPORT_FILE)}):")
            lines += [f"    {b.where}: {b.name + ': ' if b.name else ''}{b.reason}" for b in self.bad]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# models
# ------------------------------------------------------------------------------------------------

def _load_sovits(path: str | os.PathLike) -> torch.nn.Module:
    """An official or gsv_edu SoVITS export (or training checkpoint) as an eval-mode model."""
    return load_sovits(path).model.eval()  # inference=True: eval mode, enc_q dropped


def _ssl_width(model: torch.nn.Module) -> int | None:
    """Content width a SoVITS model expects (`ssl_proj.in_channels`), if it can be found."""
    proj = getattr(model, "ssl_proj", None)
    return getattr(proj, "in_channels", None)


# ------------------------------------------------------------------------------------------------
# one utterance
# ------------------------------------------------------------------------------------------------

def _clean_text(text: str, language: str, version: str):
    """(phones, word2ph, norm_text) of one utterance, with 1-get-text.py's replacements."""
    text = preprocess_list_text(text)  # official 1-get-text.py: "%" → "-", "￥" → ","
    try:
        phones, word2ph, norm_text = clean_text(text, language, version)
    except Exception as e:  # any front-end failure makes the item unusable; say what it was
        raise ItemError(f"text front-end failed ({type(e).__name__}: {e})") from None
    if not phones or all(p in NON_SPEECH_PHONES or p in PUNCTUATION for p in phones):
        # deviation: the official keeps such lines (e.g. an emoji gives just [","]) and trains on them
        raise ItemError(f"the text gives no phones to speak ({' '.join(phones) or 'none'}): {text!r}")

    unknown = sorted({p for p in phones if p not in symbol_to_id(version)})
    if unknown:  # the training loader would drop the item (official)
        raise ItemError(f"phones not in the {version} symbol table: {unknown}")
    return list(phones), (None if word2ph is None else [int(n) for n in word2ph]), str(norm_text)


def _text_step(item: ListItem, out: Path, version: str, report: PrepareReport) -> dict:
    """The cached or freshly computed text result of one item (`items/2-name2text/{name}.json`)."""
    path = out / TEXT_ITEMS_DIR / f"{item.name}.json"
    key = {"text": item.text, "language": item.language, "version": version}
    if path.is_file():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if {k: cached.get(k) for k in key} == key:
                report.reused["text"] += 1
                return cached
        except (json.JSONDecodeError, OSError):
            pass  # unreadable cache: recompute
    phones, word2ph, norm_text = _clean_text(item.text, item.language, version)
    result = {**key, "phones": phones, "word2ph": word2ph, "norm_text": norm_text}
    atomic_write_text(path, json.dumps(result, ensure_ascii=False) + "\n")
    report.computed["text"] += 1
    return result


def _int16_mix(y: np.ndarray) -> np.ndarray:
    """The 32 kHz training audio: loudness mix × 32768 as int16 [N] (truncated like numpy's astype)."""
    x = audio.loudness_normalize(y, gain=32768.0)  # [N], the official float32 values
    # deviation (plain official bug): clip instead of wrapping around beyond the int16 range
    return np.clip(x, -32768, 32767).astype(np.int16)


def _audio_step(item: ListItem, out: Path, encoder, device: torch.device, report: PrepareReport) -> torch.Tensor | None:
    """Write `5-wav32k/{name}` and `4-cnhubert/{name}.pt`; returns the features [1, D, T] (None if reused)."""
    wav_path, ssl_path = out / WAV_DIR / item.name, out / SSL_DIR / f"{item.name}.pt"
    if ssl_path.is_file() and wav_path.is_file():
        report.reused["audio"] += 1
        return None
    try:
        y = audio.load_audio(item.wav_path, audio.SOVITS_SR)  # [N] mono float at 32 kHz
    except audio.AudioError as e:
        raise ItemError(str(e)) from None
    peak = float(np.abs(y).max())
    if peak > MAX_PEAK:
        raise ItemError(f"peak {peak:.2f} > {MAX_PEAK} (the official preparation skips such files)")
    duration = wav_duration_from_size(WAV_HEADER_BYTES + 2 * len(y), audio.SOVITS_SR)
    if not MIN_DURATION < duration < MAX_DURATION:
        what = "too short" if duration <= MIN_DURATION else "too long"
        raise ItemError(f"{what}: {len(y) / audio.SOVITS_SR:.2f} s (training uses {MIN_DURATION}-{MAX_DURATION:.0f} s)")
    x16 = torch.from_numpy(features.hubert_input(y, item.wav_path)).unsqueeze(0).to(device)  # [1, N16]
    ssl = features.content_features(encoder, x16).float().cpu()  # [1, D, T]
    if not torch.isfinite(ssl).all():
        raise ItemError("the content encoder produced NaN/inf features")
    n_spec = spec_frames(len(y))
    if not content_frames_fit(ssl.shape[-1], n_spec):
        raise ItemError(f"the content encoder gave {ssl.shape[-1]} frames for {n_spec} spectrogram frames "
                        f"(expected the same or one fewer: a 320-sample stride at 16 kHz)")
    with atomic_write(wav_path) as f:
        wavfile.write(f, audio.SOVITS_SR, _int16_mix(y))
    atomic_save(ssl, ssl_path)  # written last: its presence marks the item done
    report.computed["audio"] += 1
    return ssl


def _load_sv(sv, device: torch.device) -> tuple[SpeakerVector, str]:
    """The speaker-vector front (`gsv_edu.sv.SpeakerVector`) and its name, from `--sv`."""
    if isinstance(sv, ERes2NetV2):
        model, name = sv, f"ERes2NetV2(vector_dim={sv.vector_dim})"
    elif sv == "tiny":
        model, name = build_preset("tiny", seed=TINY_SV_SEED), f"tiny ERes2NetV2 (random, seed {TINY_SV_SEED})"
    else:
        model, name = load_sv_model(sv), str(sv)
    return SpeakerVector(model.eval()).to(device), name


def _sv_step(item: ListItem, out: Path, front: SpeakerVector, device: torch.device, report: PrepareReport) -> None:
    """Write `7-sv_cn/{name}.pt` [1, D]: the speaker vector of the prepared 32 kHz wav (2-get-sv.py)."""
    path = out / SV_DIR / f"{item.name}.pt"
    if path.is_file():
        report.reused["sv"] += 1
        return
    _, y = wavfile.read(out / WAV_DIR / item.name)  # int16 [N], the loudness-mixed training audio
    wav32k = torch.from_numpy(y.astype(np.float32) / 32768.0).unsqueeze(0).to(device)  # [1, N], as torchaudio.load
    vector = front.from_32k(wav32k).float().cpu()  # [1, D]
    if not torch.isfinite(vector).all():
        raise ItemError("the speaker-verification model produced NaN/inf")
    atomic_save(vector, path)
    report.computed["sv"] += 1


def _semantic_step(item: ListItem, out: Path, sovits, sovits_id: str, ssl: torch.Tensor | None,
                   device: torch.device, report: PrepareReport) -> str:
    """Space-joined semantic codes of one item, cached in `items/6-name2semantic/{sovits_id}/`."""
    path = out / SEMANTIC_ITEMS_DIR / sovits_id / f"{item.name}.txt"
    if path.is_file():
        report.reused["semantic"] += 1
        return path.read_text(encoding="utf-8").strip()
    if ssl is None:
        ssl = torch.load(out / SSL_DIR / f"{item.name}.pt", map_location="cpu", weights_only=True)  # [1, D, T]
    codes = sovits.extract_latent(ssl.float().to(device))  # [1, 1, T/2]
    text = " ".join(str(c) for c in codes[0, 0].tolist())
    atomic_write_text(path, text + "\n")
    report.computed["semantic"] += 1
    return text


# ------------------------------------------------------------------------------------------------
# the whole run
# ------------------------------------------------------------------------------------------------

def _check_output_folder(out: Path, info_now: dict) -> None:
    """Refuse to mix content features of two different encoders in one folder."""
    previous = read_prepare_info(out)
    has_features = (out / SSL_DIR).is_dir() and any((out / SSL_DIR).iterdir())
    if not has_features:
        return
    if previous is None:
        raise PrepareError(f"{out / SSL_DIR} holds content features but {out / INFO_FILE} is missing, so their "
                           f"encoder is unknown; use an empty --out folder")
    if previous.get("content_encoder_fingerprint") != info_now["content_encoder_fingerprint"]:
        raise PrepareError(
            f"{out} holds content features from {previous.get('content_encoder')} (D = {previous.get('ssl_dim')}), "
            f"but this run uses {info_now['content_encoder']} (D = {info_now['ssl_dim']}); use another --out "
            f"folder, or delete {out / SSL_DIR} and {out / INFO_FILE} to redo them")
    has_vectors = (out / SV_DIR).is_dir() and any((out / SV_DIR).iterdir())
    if has_vectors and "sv_fingerprint" in info_now and previous.get("sv_fingerprint") != info_now["sv_fingerprint"]:
        raise PrepareError(
            f"{out / SV_DIR} holds speaker vectors from {previous.get('sv_model')} (D = {previous.get('sv_dim')}), "
            f"but this run uses {info_now['sv_model']} (D = {info_now['sv_dim']}); use another --out folder, "
            f"or delete {out / SV_DIR} to redo them")


def _sanitize(text: str) -> str:
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def prepare(list_path: str | os.PathLike, out_dir: str | os.PathLike, hubert=None, sovits=None,
            version: str = "v2", *, sv=None, device: str | torch.device = "cpu", hubert_name: str | None = None,
            progress: bool = True) -> PrepareReport:
    """Prepare the utterances of `list_path` into `out_dir` (official layout; module docstring).

    `hubert`: None (our small pretrained HuBERT), a Hugging Face folder (e.g.
    chinese-hubert-base), or a `HuBERT` instance (then `hubert_name` names it).
    `sovits`: None (no semantic codes), a SoVITS export/checkpoint path, or a model with
    `extract_latent`. `version`: text front-end and symbol table ("v1"/"v2"; v2Pro/v2ProPlus use
    v2's) and, for v2Pro/v2ProPlus, the speaker vectors: `sv` = an ERes2NetV2 state-dict file (the
    official pretrained_eres2netv2w24s4ep4.ckpt), "tiny" (a random tiny model) or an `ERes2NetV2`.
    Returns a `PrepareReport`; raises `PrepareError` when nothing usable remains (the report
    is then attached and `prepare_report.tsv` written).
    """
    start = time.perf_counter()
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"version must be one of {', '.join(SUPPORTED_VERSIONS)}, got {version!r}")
    if version in PRO_VERSIONS and sv is None:
        raise ValueError(f"{version} trains on speaker vectors: give sv (--sv pretrained_eres2netv2w24s4ep4.ckpt, "
                         f"or --sv tiny for the tiny-v2pro preset)")
    if sv is not None and version not in PRO_VERSIONS:
        raise ValueError(f"speaker vectors (--sv) are only used by v2Pro/v2ProPlus, not {version}: add --version v2Pro")
    out = Path(out_dir)
    device = torch.device(device)
    listing = read_list(list_path)  # before loading any model: a wrong path fails at once
    if isinstance(hubert, HuBERT):
        encoder, encoder_name = hubert.eval(), hubert_name or f"HuBERT(hidden_size={hubert.config.hidden_size})"
    else:
        encoder, encoder_name = load_content_encoder(hubert)
        encoder_name = hubert_name or encoder_name
    encoder = encoder.to(device)
    ssl_dim = encoder.config.hidden_size
    info = {"content_encoder": encoder_name, "ssl_dim": ssl_dim,
            "content_encoder_fingerprint": weights_fingerprint(encoder, FINGERPRINT_DIGITS),
            "version": version, "list": str(Path(list_path).resolve()), "sampling_rate": audio.SOVITS_SR}

    sv_front = None
    if sv is not None:
        sv_front, sv_name = _load_sv(sv, device)
        info.update(sv_model=sv_name, sv_dim=sv_front.vector_dim,
                    sv_fingerprint=weights_fingerprint(sv_front.model, FINGERPRINT_DIGITS))

    sovits_model, sovits_id = None, ""
    if sovits is not None:
        sovits_model = sovits.eval() if isinstance(sovits, torch.nn.Module) else _load_sovits(sovits)
        sovits_model = sovits_model.to(device)
        width = _ssl_width(sovits_model)
        if width is not None and width != ssl_dim:
            raise PrepareError(f"the SoVITS model expects {width}-dim content features, but the content encoder "
                               f"{encoder_name} gives {ssl_dim}; use the encoder it was trained with (--hubert)")
        sovits_id = weights_fingerprint(sovits_model, FINGERPRINT_DIGITS)
        info["sovits"] = {"source": str(sovits) if not isinstance(sovits, torch.nn.Module) else type(sovits).__name__,
                          "fingerprint": sovits_id}

    out.mkdir(parents=True, exist_ok=True)
    _check_output_folder(out, info)
    write_prepare_info(out, info)

    report = PrepareReport(list_path=str(list_path), out_dir=str(out), content_encoder=encoder_name, ssl_dim=ssl_dim)
    report.bad += [BadItem(p.where, p.name, p.reason) for p in listing.problems]
    text_lines, semantic_lines = [], []
    bar = tqdm(listing.items, desc="prepare", unit="utt", disable=not progress, dynamic_ncols=True)
    with torch.inference_mode():
        for item in bar:
            try:
                text = _text_step(item, out, version, report)
                ssl = _audio_step(item, out, encoder, device, report)
                if sv_front is not None:
                    _sv_step(item, out, sv_front, device, report)
                codes = _semantic_step(item, out, sovits_model, sovits_id, ssl, device, report) if sovits_model is not None else None
            except ItemError as e:
                report.bad.append(BadItem(f"{listing.path}:{item.line}", item.name, str(e)))
                bar.set_postfix(ok=len(report.prepared), bad=len(report.bad), refresh=False)
                continue
            report.prepared.append(item.name)
            text_lines.append("\t".join([item.name, " ".join(text["phones"]), repr(text["word2ph"]),
                                         _sanitize(text["norm_text"])]))
            if codes is not None:
                semantic_lines.append(f"{item.name}\t{codes}")
            bar.set_postfix(ok=len(report.prepared), bad=len(report.bad), refresh=False)
    bar.close()

    report.bad.sort(key=lambda b: _line_of(b.where))
    rows = ["where\tname\treason"] + ["\t".join(_sanitize(v) for v in (b.where, b.name, b.reason)) for b in report.bad]
    atomic_write_text(out / REPORT_FILE, "\n".join(rows) + "\n")
    if report.prepared:
        atomic_write_text(out / TEXT_FILE, "\n".join(text_lines) + "\n")
    if sovits_model is not None:
        if report.prepared:
            atomic_write_text(out / SEMANTIC_FILE, "\n".join([SEMANTIC_HEADER] + semantic_lines) + "\n")
        report.semantic_note = f"{len(semantic_lines)} written to {SEMANTIC_FILE}"
    else:
        report.semantic_note = (f"skipped (no --sovits): SoVITS training quantizes the content features itself; "
                                f"the codes are only needed for the GPT stage (s1) and for inspection")
    info.update(items=len(report.prepared), skipped=len(report.bad))
    write_prepare_info(out, info)
    report.seconds = time.perf_counter() - start
    if not report.prepared:
        raise PrepareError(f"nothing usable in {list_path}: all {report.total} utterance(s) were skipped "
                           f"(reasons in {out / REPORT_FILE})", report)
    return report


def _line_of(where: str) -> int:
    try:
        return int(where.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0
