"""Speak a text with the timbre of a reference and the delivery of a source recording.

    python -m gsv_edu.infer --sovits RUN/weights/run_e3_s300.pth --ref voice.wav \\
        --source speech.wav --text "Hello there." --lang en --out out.wav

In GPT-SoVITS the semantic tokens (25 Hz, "what is said and how") come from the GPT stage
(s1); here they come from a real recording, the *source*, so SoVITS can be used and checked
on its own. The pieces are those of the official inference
(`GPT_SoVITS/inference_webui.py · get_tts_wav @48b1a01`, which calls
`SynthesizerTrn.extract_latent` and `SynthesizerTrn.decode`):

- semantic codes: the source at 16 kHz, fed to the content encoder (HuBERT) as the official
  inference feeds its reference audio — unscaled, with int(32000·0.3) = 9600 zeros appended
  (official quirk of `get_tts_wav`: 0.6 s, not 0.3 s) — then `extract_latent` → codes
  [1, 1, T_c]. We drop the codes of the appended zeros, so the output is as long as the source
  (÷ speed);
- timbre: the linear spectrogram of each reference at 32 kHz (`get_spepc`: divided by
  min(2, peak) when the peak exceeds 1); several references → their style vectors are
  averaged (`decode` with a list);
- phones: `clean_text` of the text (a final "." / "。" is added when the text does not end
  with punctuation, as the official does) → symbol ids;
- v2Pro/v2ProPlus: the speaker vector of each reference (`GPT_SoVITS/sv.py`): its 32 kHz audio
  (after the same peak division) resampled to 16 kHz with torchaudio's sinc kernel, Kaldi fbank,
  `ERes2NetV2.forward3` (`gsv_edu.sv`); `--sv` names the speaker-verification model (the official
  pretrained_eres2netv2w24s4ep4.ckpt, or `tiny` for a tiny-v2pro model prepared with `--sv tiny`);
- `SynthesizerTrn.decode(codes, phones, refs, noise_scale, speed, sv_emb)` → 32 kHz waveform.

Python use (e.g. in a notebook):

    from gsv_edu.infer import load_model, synthesize
    model = load_model("weights.pth")
    wav = synthesize(model, ref="voice.wav", source="speech.wav", text="Hello there.", lang="en")
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Union

import numpy as np
import torch

from gsv_edu import audio
from gsv_edu.config import Config, ConfigError
from gsv_edu.hubert import features, load_content_encoder
from gsv_edu.sv import TINY_SV_SEED, ERes2NetV2, SpeakerVector, build_preset
from gsv_edu.text import clean_text, cleaned_text_to_sequence, normalize_language
from gsv_edu.weights import CheckpointError, load_sovits, load_sv_model

__all__ = ["load_model", "load_encoder", "load_speaker_verifier", "synthesize", "reference_spectrogram",
           "reference_speaker_vector", "source_codes", "text_to_ids", "InferenceError", "main"]

# A file path; an array at 32 kHz; or (array, sampling_rate).
AudioInput = Union[str, os.PathLike, np.ndarray, torch.Tensor, tuple]
SENTENCE_END = set("，。？！,.?!~:：—…;；")  # official `splits`: a text ending otherwise gets a final mark


class InferenceError(ValueError):
    """A bad input to inference; the message says which input and what is wrong."""


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """A SoVITS generator from an exported (or official, or G_*.pth) weight file, ready for `decode`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InferenceError(f"--sovits {path}: no such file")
    try:
        loaded = load_sovits(path, device, inference=True)
    except CheckpointError as e:
        raise InferenceError(f"--sovits {e}") from None
    config_of(loaded.model)  # a bad or foreign config is an error now, naming its file
    return loaded.model  # with .loaded_from: the file's config and version


def load_encoder(folder: str | os.PathLike | None, model, device: str | torch.device = "cpu"):
    """The content encoder (HuBERT) matching the model's content width.

    None → gsv_edu's shipped small HuBERT; else a Hugging Face folder (e.g. chinese-hubert-base,
    768 wide, for official weights).
    """
    encoder, name = load_content_encoder(folder)
    width = encoder.config.hidden_size
    if width != model.ssl_dim:
        hint = ("official weights need chinese-hubert-base: --hubert path/to/chinese-hubert-base"
                if model.ssl_dim == 768 else "use the content encoder the model was trained with")
        raise InferenceError(f"--hubert: the content encoder {name} gives {width}-dim features but the SoVITS model "
                             f"expects {model.ssl_dim}; {hint}")
    return encoder.to(device).eval()


def _load(item: AudioInput, sampling_rate: int, flag: str) -> np.ndarray:
    """Mono float32 audio at `sampling_rate` from a path, an (array, rate) pair or a 32 kHz array.

    `flag` ("--ref", "--source") starts the error messages; audio.AudioError names the file.
    """
    what = f"{flag} (array)"
    if isinstance(item, (str, os.PathLike)):
        try:
            return audio.load_audio(item, sampling_rate)
        except audio.AudioError as e:
            raise InferenceError(f"{flag} {e}") from None
    rate = audio.SOVITS_SR
    if isinstance(item, tuple):
        if len(item) != 2:
            raise InferenceError(f"{what}: give audio as a path, an array at 32 kHz or (array, sampling_rate)")
        item, rate = item
    y = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    if y.size == 0 or not np.isfinite(y).all():
        raise InferenceError(f"{what}: the audio array is empty or holds NaN/inf")
    return audio.resample(y, int(rate), sampling_rate)


def _name(item: AudioInput) -> str:
    return os.fspath(item) if isinstance(item, (str, os.PathLike)) else "(array)"


def _reference_audio(ref: AudioInput, config) -> torch.Tensor:
    """A reference at 32 kHz [N], divided by min(2, peak) when the peak exceeds 1 (official `get_spepc`)."""
    dc = config.data
    y = torch.from_numpy(_load(ref, dc.sampling_rate, "--ref"))
    peak = float(y.abs().max())
    if peak > 1:  # official get_spepc: divide by min(2, peak)
        y = y / min(2.0, peak)
    if y.numel() < dc.filter_length:
        raise InferenceError(f"--ref {_name(ref)}: the reference is too short ({y.numel() / dc.sampling_rate:.2f} s); "
                             f"give at least a second of speech (3-10 s is what the official UI asks for)")
    return y


def reference_spectrogram(ref: AudioInput, config, device="cpu") -> torch.Tensor:
    """Linear spectrogram [1, 1025, T] of a reference at 32 kHz (official `get_spepc`)."""
    dc = config.data
    y = _reference_audio(ref, config)
    return audio.spectrogram(y.unsqueeze(0), dc.filter_length, dc.hop_length, dc.win_length).to(device)  # [1, F, T]


def load_speaker_verifier(sv, device: str | torch.device = "cpu") -> SpeakerVector:
    """The v2Pro speaker-verification front: an ERes2NetV2 file (the official
    pretrained_eres2netv2w24s4ep4.ckpt), "tiny" (the seeded tiny model of `prepare --sv tiny`),
    an `ERes2NetV2` or a `SpeakerVector`."""
    if isinstance(sv, SpeakerVector):
        return sv.to(device).eval()
    if isinstance(sv, ERes2NetV2):
        return SpeakerVector(sv).to(device)
    if sv == "tiny":
        return SpeakerVector(build_preset("tiny", seed=TINY_SV_SEED)).to(device)
    try:
        return SpeakerVector(load_sv_model(sv)).to(device)
    except CheckpointError as e:
        raise InferenceError(f"--sv {e}") from None


@torch.no_grad()
def reference_speaker_vector(ref: AudioInput, config, verifier: SpeakerVector, device="cpu") -> torch.Tensor:
    """The v2Pro speaker vector [1, D] of a reference: its peak-limited 32 kHz audio → 16 kHz → fbank → forward3."""
    y = _reference_audio(ref, config).to(device)
    return verifier.from_32k(y.unsqueeze(0))  # [1, D]


@torch.no_grad()
def source_codes(model, encoder, source: AudioInput, device="cpu") -> torch.Tensor:
    """Semantic codes [1, 1, T_c] (quantizer layer first, as `decode` takes them) of the source speech."""
    name = _name(source)
    y16 = _load(source, audio.HUBERT_SR, "--source")  # [N16]
    own_frames = features.hubert_frames(len(y16), encoder)
    if own_frames < 2:
        raise InferenceError(f"--source {name}: too short ({len(y16) / audio.HUBERT_SR:.2f} s) to give any "
                             f"semantic token (at least 0.05 s)")
    ssl = features.reference_features(encoder, y16).to(device)  # [1, D, T] with the official 9600 zeros
    codes = model.extract_latent(ssl.float())  # [1, 1, T/2]
    keep = own_frames // 2  # drop the tokens of the appended zeros: output as long as the source
    return codes[:, :, :keep].transpose(0, 1).contiguous()  # [n_q=1, B=1, T_c]


def text_to_ids(text: str, lang: str, version: str = "v2") -> torch.Tensor:
    """Phone ids [1, L] of a text (`clean_text` + `cleaned_text_to_sequence`)."""
    if not text or not text.strip():
        raise InferenceError("--text: empty text")
    try:
        language = normalize_language(lang)
    except Exception:
        language = None
    if language not in ("en", "zh"):
        raise InferenceError(f"--lang {lang!r}: supported languages are en and zh")
    text = text.strip()
    if text[-1] not in SENTENCE_END:  # official get_tts_wav: a text must end with a sentence mark
        text += "." if language == "en" else "。"
    phones, _, _ = clean_text(text, language, version)
    ids = cleaned_text_to_sequence(phones, version)
    if not ids:
        raise InferenceError(f"--text {text!r}: the front-end produced no phones")
    return torch.tensor([ids], dtype=torch.long)  # [1, L]


def synthesize(model, *, ref: AudioInput | list[AudioInput], source: AudioInput, text: str, lang: str,
               encoder=None, hubert: str | os.PathLike | None = None, noise_scale: float = 0.5,
               speed: float = 1.0, seed: int | None = None, sv=None) -> np.ndarray:
    """32 kHz float32 waveform [N] saying `text` with the timbre of `ref` and the codes of `source`.

    `model`: from `load_model` (or any eval-mode SynthesizerTrn).
    Audio (`ref`, `source`): a file path, a float array at 32 kHz, or (array, sampling_rate).
    `ref`: one reference or a list (their style vectors are averaged). `encoder`: a loaded
    content encoder (else `hubert` folder, else the shipped small HuBERT). `seed`: fixes the
    prior noise (noise_scale 0 is deterministic anyway). `sv` (v2Pro/v2ProPlus models only): the
    speaker-verification model (`load_speaker_verifier`: a file, "tiny", or a loaded model); each
    reference gets its own speaker vector, as in the official UI.
    """
    if speed <= 0:
        raise InferenceError(f"--speed must be positive, got {speed}")
    if noise_scale < 0:
        raise InferenceError(f"--noise-scale must be ≥ 0, got {noise_scale}")
    config = config_of(model)
    device = next(model.parameters()).device
    if encoder is None:
        encoder = load_encoder(hubert, model, device)
    refs = list(ref) if isinstance(ref, list) else [ref]
    if not refs:
        raise InferenceError("--ref: give at least one reference recording")
    specs = [reference_spectrogram(r, config, device) for r in refs]
    sv_emb = None
    if getattr(model, "is_v2pro", False):
        if sv is None:
            raise InferenceError(f"--sv: a {model.version} model needs the speaker-verification model its data was "
                                 f"prepared with (the official pretrained_eres2netv2w24s4ep4.ckpt, or 'tiny'; "
                                 f"prepare_info.json says which)")
        verifier = load_speaker_verifier(sv, device)
        if verifier.vector_dim != model.sv_dim:
            raise InferenceError(f"--sv: the speaker-verification model gives {verifier.vector_dim}-dim vectors but the "
                                 f"{model.version} model expects {model.sv_dim} (official: 20480 = "
                                 f"pretrained_eres2netv2w24s4ep4.ckpt; 1280 = --sv tiny)")
        vectors = [reference_speaker_vector(r, config, verifier, device) for r in refs]  # each [1, D]
        sv_emb = vectors if len(vectors) > 1 else vectors[0]
    elif sv is not None:
        raise InferenceError(f"--sv: a {model.version} model takes no speaker vector (only v2Pro/v2ProPlus do)")
    codes = source_codes(model, encoder, source, device)  # [1, 1, T_c]
    phones = text_to_ids(text, lang, model.version).to(device)  # [1, L]
    if seed is not None:
        torch.manual_seed(seed)
    with torch.no_grad():
        wav = model.decode(codes, phones, specs if len(specs) > 1 else specs[0], noise_scale=noise_scale,
                           speed=speed, sv_emb=sv_emb)  # [1, 1, N]
    return wav[0, 0].float().cpu().numpy()


def config_of(model):
    """The model's Config: the one its weight file came with (`load_model`: stored in the file,
    or the config.json beside it). A config that is not a SoVITS s2 config (an unknown key, a
    value of the wrong type) is an InferenceError naming that file, never replaced by defaults.

    A model built in code (no `loaded_from`) has no file: it gets the data section of the
    official s2.json (32 kHz, n_fft 2048, hop 640, which every released v1/v2/v2Pro config
    shares), provided its spectrogram width fits it.
    """
    loaded = getattr(model, "loaded_from", None)
    if loaded is None or getattr(loaded, "hps", None) is None:
        config = Config.preset("official-v2")
        expected = config.data.filter_length // 2 + 1
        if getattr(model, "spec_channels", expected) != expected:
            raise InferenceError(f"the model takes {model.spec_channels}-bin spectrograms but has no config to say "
                                 f"how to make them (the official data settings give {expected}): load it with "
                                 f"load_model(path) from a weight file that carries or sits beside its config")
        return config
    source = getattr(loaded, "config_source", "") or loaded.path
    try:
        return Config.from_dict(loaded.hps.to_dict(), source=source)
    except ConfigError as e:
        raise InferenceError(f"--sovits {e}; this is not the SoVITS (s2.json-layout) config the weights were "
                             f"trained with") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gsv_edu.infer",
        description="Synthesize TEXT with the voice of REF, using the semantic tokens of SOURCE speech "
                    "(SoVITS alone, without the GPT stage).")
    parser.add_argument("--sovits", required=True, metavar="CKPT", help="SoVITS weights (export, official, or G_*.pth)")
    parser.add_argument("--ref", required=True, action="append", metavar="REF_AUDIO",
                        help="reference recording for the timbre (repeat for several: their styles are averaged)")
    parser.add_argument("--source", required=True, metavar="SRC_AUDIO", help="speech whose semantic tokens are decoded")
    parser.add_argument("--text", required=True, help="the text to speak (its phones condition the prior)")
    parser.add_argument("--lang", required=True, choices=["en", "zh"], help="language of --text")
    parser.add_argument("--out", required=True, metavar="OUT.wav", help="output file (32 kHz, 16-bit)")
    parser.add_argument("--noise-scale", type=float, default=0.5, help="prior noise scale (official default 0.5)")
    parser.add_argument("--speed", type=float, default=1.0, help="speaking rate (>1 faster, shorter)")
    parser.add_argument("--hubert", default=None, metavar="FOLDER",
                        help="content encoder folder (default: gsv_edu's small HuBERT; official weights need "
                             "chinese-hubert-base)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the prior noise")
    parser.add_argument("--sv", default=None, metavar="CKPT|tiny",
                        help="v2Pro/v2ProPlus only: the speaker-verification model the training data was prepared "
                             "with (official pretrained_eres2netv2w24s4ep4.ckpt, or 'tiny')")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1, as gsv_edu.train)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    try:
        model = load_model(args.sovits, args.device)
        wav = synthesize(model, ref=args.ref, source=args.source, text=args.text, lang=args.lang,
                         hubert=args.hubert, noise_scale=args.noise_scale, speed=args.speed, seed=args.seed,
                         sv=args.sv)
        out = Path(args.out)
        if out.parent and not out.parent.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
        audio.save_audio(out, wav, audio.SOVITS_SR)
    except InferenceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {len(wav) / audio.SOVITS_SR:.2f} s at {audio.SOVITS_SR} Hz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
