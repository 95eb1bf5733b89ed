"""Text-to-speech: GPT-SoVITS end to end — a reference recording and its text, then any text in that voice.

    python -m gsv_edu.tts --ref ref.wav --ref-text "What the reference says." --ref-lang en \\
        --text "Something new to say." --lang en --out out.wav --seed 1

Mirrors `GPT_SoVITS/inference_webui.py · get_tts_wav @48b1a01` (SoVITS v1/v2/v2Pro/v2ProPlus):

1. **the reference's tokens (the prompt).** The reference at 16 kHz must last 3 to 10 s
   (48 000 – 160 000 samples); with int(32000·0.3) = 9600 zeros appended (the official pause of
   0.3 s computed at 32 kHz, so 0.6 s at 16 kHz: `gsv_edu.hubert.features.reference_features`) it
   goes through HuBERT, and SoVITS's quantizer (`extract_latent`) turns the features into 25 Hz
   semantic tokens — the tokens of the padding included, as upstream;
2. **text.** The reference text gets a final "." ("。" for Chinese) unless it ends with a mark of
   `gsv_edu.text.split.SPLITS`; the target text is cut into pieces (`gsv_edu.text.split.segments`,
   method `cut1` by default, the web UI's default); each text becomes phones and phone-level BERT
   features (`text_features`: the official `get_phones_and_bert`; a text of fewer than 6 phones
   is read again with a "." in front; BERT features for Chinese runs when `--bert` is given,
   zeros otherwise, as upstream for every non-Chinese text);
3. **GPT (s1)** per piece: `infer_panel([ref phones ; piece phones], [ref BERT ; piece BERT],
   prompt tokens)` — the official sampler (top_k 15, top_p 1, temperature 1, repetition penalty
   1.35: the web UI's defaults), at most 50·max_sec new tokens (max_sec of the GPT's config),
   decoded by our KV-cache decoder (the same tokens as the official loop); the new tokens are
   the last `idx` of the result;
4. **SoVITS** per piece: `decode(tokens, piece phones only, reference spectrogram, speed)` — the
   reference's 32 kHz linear spectrogram for the timbre (`gsv_edu.infer.reference_spectrogram`),
   and for v2Pro/v2ProPlus also its speaker vector (`--sv`); each token is 1280 samples (40 ms);
   a piece louder than 1 is divided by its peak;
5. each piece is followed by the pause (0.3 s of zeros, `--pause`), the pieces are concatenated,
   and the 32 kHz result is written as 16-bit PCM (×32767, as upstream), atomically.

Without `--ref-text` the reference is used for its timbre only (the official "reference-free"
mode: no prompt tokens, no reference phones, no 3–10 s check).

Defaults: the shipped small SoVITS (`gsv_edu.pretrained.load_tiny_sovits`), the shipped small
HuBERT (`gsv_edu.hubert.load_default`) and the shipped small GPT (`gsv_edu/assets/gpt_tiny/`,
trained on the sample corpus with the tiny SoVITS's codebook). With the official weights
(`--gpt s1v3.ckpt --sovits s2G2333k.pth --hubert chinese-hubert-base --bert
chinese-roberta-wwm-ext-large`, all local) it is the real GPT-SoVITS.

Python use:

    from gsv_edu.tts import load_tts
    tts = load_tts(gpt="voice-e15.ckpt", sovits="voice_e8_s200.pth")
    result = tts.synthesize("ref.wav", "What the reference says.", "en", "Something new.", "en", seed=1)
    result.wav, result.sampling_rate, result.tokens
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from gsv_edu import audio
from gsv_edu.atomic import atomic_write
from gsv_edu.hubert import HuBERTConfigError, HuBERTLoadError, features
from gsv_edu.infer import (InferenceError, config_of, load_encoder, load_model, load_speaker_verifier,
                           reference_spectrogram, reference_speaker_vector)
from gsv_edu.pretrained import TINY_GPT_DIR, TINY_GPT_PATH, load_tiny_sovits
from gsv_edu.text import clean_text, cleaned_text_to_sequence, get_symbols, split_by_language
from gsv_edu.text.bert import BertError, ChineseBert, load_bert, phone_features
from gsv_edu.text.split import SPLITS, TextSplitError, get_method, segments
from gsv_edu.weights import GPTFileError, load_gpt

__all__ = ["TTSError", "TTS", "TTSResult", "load_tts", "text_features", "check_reference_length",
           "TINY_GPT_DIR", "TINY_GPT_PATH", "LANGUAGES", "main"]

LANGUAGES = ("en", "zh")  # "zh" is the official 中英混合: Chinese with English words read as English
REF_MIN_16K, REF_MAX_16K = 48000, 160000  # get_tts_wav: the reference must last 3-10 s at 16 kHz
PAUSE_SECONDS = 0.3  # get_tts_wav's pause_second: silence after every piece
EARLY_STOP_HZ = 50  # get_tts_wav: early_stop_num = hz · max_sec, with hz = 50 (tokens are 25 Hz)
MIN_PHONES = 6  # get_phones_and_bert: fewer phones → the text is read again with "." in front
DEFAULT_TOP_K, DEFAULT_TOP_P, DEFAULT_TEMPERATURE = 15, 1.0, 1.0  # the web UI's sliders
DEFAULT_REPETITION_PENALTY = 1.35  # infer_panel's default (get_tts_wav passes none)


class TTSError(InferenceError):
    """A bad input to text-to-speech; the message names the input and what is wrong."""


@dataclass
class TTSResult:
    """What `TTS.synthesize` made: the waveform and, per piece, its text and GPT tokens."""

    wav: np.ndarray  # [N] float32 at `sampling_rate`
    sampling_rate: int
    pieces: list[str]
    tokens: list[torch.Tensor]  # per piece: the new semantic tokens [T_i] fed to SoVITS
    prompt_tokens: int  # length of the reference's token prompt (0 without --ref-text)
    pause_samples: int
    seconds: dict = field(default_factory=dict)  # wall-clock time of each stage


def _language(code: str, flag: str) -> str:
    language = code.strip().lower() if isinstance(code, str) else code
    if language not in LANGUAGES:
        raise TTSError(f"{flag} {code!r}: unsupported language; supported: {', '.join(LANGUAGES)} "
                       f"(zh reads English words in it as English, as the official 中英混合)")
    return language


def text_features(text: str, language: str, version: str, bert: ChineseBert | None = None,
                  *, final: bool = False) -> tuple[list[int], torch.Tensor, str]:
    """(phone ids, BERT features [1024, n_phones], normalised text) of one text, as the official
    `get_phones_and_bert` for languages "en" and "zh".

    Runs of two or more spaces become one. "en": one English run. "zh": the text cut into Chinese
    and English runs by script (`split_by_language`, our stand-in for the official LangSegmenter),
    each read by its own G2P; BERT features for the Chinese runs (when `bert` is given), zeros for
    the rest. A result of fewer than 6 phones is made again from "." + text (once).
    """
    text = re.sub(r" {2,}", " ", text)
    runs = [(text, "en")] if language == "en" else split_by_language(text, default="zh")
    ids: list[int] = []
    feats, norm = [], ""
    for run, run_language in runs:
        phones, word2ph, norm_text = clean_text(run, run_language, version)
        run_ids = cleaned_text_to_sequence(phones, version)
        feats.append(phone_features(bert, len(run_ids), word2ph, norm_text, run_language))  # [1024, n]
        ids += run_ids
        norm += norm_text
    if not final and len(ids) < MIN_PHONES:
        return text_features("." + text, language, version, bert, final=True)
    return ids, torch.cat(feats, dim=1), norm  # [1024, n_phones]


def check_reference_length(wav16k: np.ndarray, name: str) -> None:
    """The official limit: 3 to 10 s of reference at 16 kHz (48 000 – 160 000 samples)."""
    if not REF_MIN_16K <= len(wav16k) <= REF_MAX_16K:
        raise TTSError(f"--ref {name}: the reference lasts {len(wav16k) / audio.HUBERT_SR:.2f} s; it must last "
                       f"3 to 10 s (official get_tts_wav)")


def _phone_version_of_gpt(phoneme_vocab_size: int) -> str | None:
    """Which symbol table a GPT's phone embedding was made for: v2 (732 rows), v1 (512 rows for 322
    symbols: the official v1 s1 config), None when it fits neither."""
    if phoneme_vocab_size >= len(get_symbols("v2")):
        return "v2"
    if phoneme_vocab_size >= len(get_symbols("v1")):
        return "v1"
    return None


class TTS:
    """The loaded models of text-to-speech: GPT (s1), SoVITS (s2), the content encoder, and
    optionally the Chinese BERT and (v2Pro) the speaker-verification model. `load_tts` builds one."""

    def __init__(self, gpt, sovits, encoder, bert: ChineseBert | None = None, speaker_verifier=None,
                 device: str | torch.device = "cpu", gpt_name: str = "GPT", sovits_name: str = "SoVITS"):
        self.gpt, self.sovits, self.encoder, self.bert = gpt, sovits, encoder, bert
        self.speaker_verifier = speaker_verifier
        self.device = torch.device(device)
        self.config = config_of(sovits)  # the SoVITS data section: rates, STFT sizes
        self.version = sovits.version  # phones follow the SoVITS's symbol table, as upstream
        bins = sovits.quantizer.bins
        if gpt.vocab_size != bins + 1 or gpt.EOS != bins:
            raise TTSError(f"--gpt {gpt_name}: the GPT speaks {gpt.vocab_size - 1} semantic tokens (EOS {gpt.EOS}) "
                           f"but the SoVITS {sovits_name} decodes {bins}: they are not a pair")
        gpt_phones = _phone_version_of_gpt(gpt.phoneme_vocab_size)
        table = "v1" if self.version == "v1" else "v2"
        if gpt_phones != table:
            raise TTSError(f"--gpt {gpt_name}: its phone embedding has {gpt.phoneme_vocab_size} rows "
                           f"({gpt_phones or 'no'} symbol table) but the {self.version} SoVITS {sovits_name} uses the "
                           f"{table} table ({len(get_symbols(table))} symbols): use a GPT and a SoVITS of the same "
                           f"version")
        if bert is not None and bert.hidden_size != gpt.bert_proj.in_features:
            raise TTSError(f"--bert {bert.name}: {bert.hidden_size}-dim features but the GPT reads "
                           f"{gpt.bert_proj.in_features} (chinese-roberta-wwm-ext-large)")
        if getattr(sovits, "is_v2pro", False) and speaker_verifier is None:
            raise TTSError(f"--sv: the {sovits.version} SoVITS {sovits_name} needs the speaker-verification model "
                           f"its data was prepared with (the official pretrained_eres2netv2w24s4ep4.ckpt, or 'tiny')")
        if speaker_verifier is not None and not getattr(sovits, "is_v2pro", False):
            raise TTSError(f"--sv: a {sovits.version} SoVITS takes no speaker vector (only v2Pro/v2ProPlus do)")
        if speaker_verifier is not None and speaker_verifier.vector_dim != sovits.sv_dim:
            raise TTSError(f"--sv: the speaker-verification model gives {speaker_verifier.vector_dim}-dim vectors "
                           f"but the {sovits.version} SoVITS expects {sovits.sv_dim}")

    @torch.no_grad()
    def prompt_tokens(self, ref, name: str) -> torch.Tensor:
        """The reference's semantic tokens [1, T_p] (3–10 s checked; 9600 zeros appended at 16 kHz)."""
        wav16k = _read_audio(ref, audio.HUBERT_SR, name)
        check_reference_length(wav16k, name)
        ssl = features.reference_features(self.encoder, wav16k).to(self.device)  # [1, D, T]
        codes = self.sovits.extract_latent(ssl.float())  # [1, 1, T/2]
        return codes[0, 0].unsqueeze(0)  # [1, T_p]

    @torch.no_grad()
    def synthesize(self, ref, ref_text: str | None, ref_lang: str, text: str, lang: str, *,
                   how_to_cut: str = "cut1", top_k: int = DEFAULT_TOP_K, top_p: float = DEFAULT_TOP_P,
                   temperature: float = DEFAULT_TEMPERATURE,
                   repetition_penalty: float = DEFAULT_REPETITION_PENALTY, speed: float = 1.0,
                   pause: float = PAUSE_SECONDS, noise_scale: float = 0.5, seed: int | None = None) -> TTSResult:
        """Speak `text` (language `lang`) in the voice of `ref`, whose words are `ref_text` (`ref_lang`).

        `ref`: a file path (or an (array, sampling_rate) pair). `ref_text` None or "": the
        reference-free mode. `seed` seeds torch's global generator once, before anything random
        (the GPT's sampling, then SoVITS's prior noise), so the same seed gives the same audio.
        """
        name = os.fspath(ref) if isinstance(ref, (str, os.PathLike)) else "(array)"
        if isinstance(ref, (str, os.PathLike)) and not os.path.isfile(ref):
            raise TTSError(f"--ref {name}: no such file")
        language = _language(lang, "--lang")
        if not text or not text.strip():
            raise TTSError("--text: empty text")
        if top_k < 1:
            raise TTSError(f"--top-k must be ≥ 1, got {top_k}")
        if top_p < 0 or temperature < 0 or repetition_penalty <= 0 or speed <= 0 or pause < 0:
            raise TTSError(f"settings out of range: --top-p {top_p} (≥ 0), --temperature {temperature} (≥ 0), "
                           f"--repetition-penalty {repetition_penalty} (> 0), --speed {speed} (> 0), "
                           f"--pause {pause} (≥ 0)")
        try:
            get_method(how_to_cut)
        except TextSplitError as e:
            raise TTSError(f"--how-to-cut: {e}") from None
        ref_free = ref_text is None or len(ref_text.strip("\n").strip()) == 0
        seconds = {}
        if seed is not None:
            torch.manual_seed(seed)
        start = time.perf_counter()

        if ref_free:
            prompt = None
        else:
            ref_language = _language(ref_lang, "--ref-lang")
            ref_text = ref_text.strip("\n")
            if ref_text[-1] not in SPLITS:
                ref_text += "." if ref_language == "en" else "。"
            prompt = self.prompt_tokens(ref, name)  # [1, T_p]
            ref_ids, ref_bert, _ = self._text(ref_text, ref_language, "--ref-text")
        spec = reference_spectrogram(ref, self.config, self.device)  # [1, F, T_r]
        sv_emb = None
        if self.speaker_verifier is not None:
            sv_emb = reference_speaker_vector(ref, self.config, self.speaker_verifier, self.device)
        try:
            pieces = segments(text, how_to_cut, language)
        except TextSplitError as e:
            raise TTSError(f"--text: {e}") from None
        seconds["reference"] = time.perf_counter() - start

        early_stop = int(EARLY_STOP_HZ * self.gpt.config.data.max_sec)
        rate = self.config.data.sampling_rate
        pause_samples = int(rate * pause)
        out, tokens = [], []
        gpt_s = sovits_s = 0.0
        for piece in pieces:
            piece_ids, piece_bert, _ = self._text(piece, language, "--text")
            if ref_free:
                ids, bert = piece_ids, piece_bert
            else:
                ids, bert = ref_ids + piece_ids, torch.cat([ref_bert, piece_bert], dim=1)  # [1024, n_ref + n]
            t0 = time.perf_counter()
            x = torch.tensor([ids], dtype=torch.long, device=self.device)  # [1, n_ref + n]
            x_lens = torch.tensor([x.size(1)], device=self.device)
            y, idx = self.gpt.infer_panel(x, x_lens, prompt, bert.unsqueeze(0).to(self.device), top_k=top_k,
                                          top_p=top_p, temperature=temperature, early_stop_num=early_stop,
                                          repetition_penalty=repetition_penalty)
            new = y[:, -idx:]  # [1, T] (idx 0 without a prompt: the whole sequence)
            t1 = time.perf_counter()
            phones = torch.tensor([piece_ids], dtype=torch.long, device=self.device)  # [1, n]: the piece only
            wav = self.sovits.decode(new.unsqueeze(0), phones, spec, noise_scale=noise_scale, speed=speed,
                                     sv_emb=sv_emb)[0, 0]  # [N]
            peak = wav.abs().max()
            if peak > 1:  # get_tts_wav: keep 16-bit audio from clipping
                wav = wav / peak
            out += [wav.float().cpu(), torch.zeros(pause_samples)]
            tokens.append(new[0].cpu())
            gpt_s += t1 - t0
            sovits_s += time.perf_counter() - t1
        seconds.update(gpt=gpt_s, sovits=sovits_s, total=time.perf_counter() - start)
        return TTSResult(wav=torch.cat(out).numpy(), sampling_rate=rate, pieces=pieces, tokens=tokens,
                         prompt_tokens=0 if prompt is None else prompt.size(1), pause_samples=pause_samples,
                         seconds=seconds)

    def _text(self, text: str, language: str, flag: str) -> tuple[list[int], torch.Tensor, str]:
        try:
            ids, bert, norm = text_features(text, language, self.version, self.bert)
        except BertError as e:
            raise TTSError(f"--bert: {e}") from None
        if not ids:
            raise TTSError(f"{flag} {text!r}: the front-end produced no phones")
        return ids, bert, norm


def _read_audio(ref, sampling_rate: int, name: str) -> np.ndarray:
    """Mono float32 audio at `sampling_rate` from a path or an (array, rate) pair."""
    if isinstance(ref, (str, os.PathLike)):
        try:
            return audio.load_audio(ref, sampling_rate)
        except audio.AudioError as e:
            raise TTSError(f"--ref {e}") from None
    if not (isinstance(ref, tuple) and len(ref) == 2):
        raise TTSError("--ref (array): give the reference as a path or (array, sampling_rate)")
    y, rate = ref
    y = np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y, dtype=np.float32).reshape(-1)
    return audio.resample(y, int(rate), sampling_rate)


def _load_gpt(path, device):
    if path is None:
        if not TINY_GPT_PATH.is_file():
            raise TTSError(f"--gpt: the shipped small GPT ({TINY_GPT_PATH}) is missing (a partial install?); pass "
                           f"--gpt CKPT (a GPT export or Lightning checkpoint, e.g. from python -m gsv_edu.train_gpt)")
        path = TINY_GPT_PATH
    if not os.path.isfile(path):
        raise TTSError(f"--gpt {path}: no such file")
    try:
        return load_gpt(path, device)
    except GPTFileError as e:
        raise TTSError(f"--gpt {e}") from None


def load_tts(gpt=None, sovits=None, hubert=None, bert=None, sv=None, device: str | torch.device = "cpu") -> TTS:
    """Load the models: each argument a path (None: the shipped small model; `bert` None: no BERT,
    zeros for Chinese too; `sv` only for v2Pro SoVITS: a file or "tiny")."""
    gpt_model = _load_gpt(gpt, device)
    sovits_model = load_tiny_sovits(device) if sovits is None else load_model(sovits, device)
    try:
        encoder = load_encoder(hubert, sovits_model, device)
    except (HuBERTLoadError, HuBERTConfigError) as e:
        raise TTSError(f"--hubert {e}") from None
    try:
        bert_model = None if bert is None else load_bert(bert, device)
    except BertError as e:
        raise TTSError(str(e)) from None
    verifier = None if sv is None else load_speaker_verifier(sv, device)
    return TTS(gpt_model, sovits_model, encoder, bert_model, verifier, device,
               gpt_name=os.fspath(gpt) if gpt is not None else str(TINY_GPT_PATH),
               sovits_name=os.fspath(sovits) if sovits is not None else "(shipped tiny SoVITS)")


def write_wav(path: str | os.PathLike, wav: np.ndarray, sampling_rate: int) -> None:
    """16-bit PCM as the official UI makes it (wav × 32767 → int16), written atomically (.wav or .flac)."""
    path = Path(path)
    kind = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower())
    if kind is None:
        raise TTSError(f"--out {path}: give a .wav or .flac file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.asarray(wav, dtype=np.float32) * 32767).astype(np.int16)  # [N]
    with atomic_write(path, "wb") as f:
        sf.write(f, pcm, sampling_rate, format=kind, subtype="PCM_16")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gsv_edu.tts",
        description="Speak TEXT in the voice of REF (GPT-SoVITS: GPT → semantic tokens → SoVITS → 32 kHz audio).")
    parser.add_argument("--ref", required=True, metavar="REF.wav", help="reference recording, 3-10 s")
    parser.add_argument("--ref-text", default=None,
                        help="what the reference says (omit for the official reference-free mode: timbre only)")
    parser.add_argument("--ref-lang", default="en", help="language of --ref-text: en or zh (default en)")
    parser.add_argument("--text", required=True, help="the text to speak")
    parser.add_argument("--lang", default="en", help="language of --text: en or zh (default en)")
    parser.add_argument("--out", required=True, metavar="OUT.wav", help="output file (32 kHz, 16-bit; .wav or .flac)")
    parser.add_argument("--seed", type=int, default=None, help="seed: the same seed gives the same audio")
    parser.add_argument("--gpt", default=None, metavar="CKPT", help="GPT (s1) weights (default: the shipped small GPT)")
    parser.add_argument("--sovits", default=None, metavar="PTH",
                        help="SoVITS (s2) weights (default: the shipped small SoVITS)")
    parser.add_argument("--hubert", default=None, metavar="DIR",
                        help="content encoder folder (default: the shipped small HuBERT; official weights need "
                             "chinese-hubert-base)")
    parser.add_argument("--bert", default=None, metavar="DIR",
                        help="chinese-roberta-wwm-ext-large folder for Chinese text (needs transformers: "
                             "pip install 'gsv_edu[bert]'); without it Chinese gets zeros")
    parser.add_argument("--sv", default=None, metavar="CKPT|tiny",
                        help="v2Pro/v2ProPlus SoVITS only: the speaker-verification model")
    parser.add_argument("--how-to-cut", default="cut1",
                        help="text cutting: cut0 (none), cut1 (4 clauses, default), cut2 (50 characters), "
                             "cut3 (。), cut4 (.), cut5 (every mark)")
    parser.add_argument("--top-k", type=int, default=DEFAULT_TOP_K)
    parser.add_argument("--top-p", type=float, default=DEFAULT_TOP_P)
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    parser.add_argument("--repetition-penalty", type=float, default=DEFAULT_REPETITION_PENALTY)
    parser.add_argument("--speed", type=float, default=1.0, help="speaking rate (>1 faster)")
    parser.add_argument("--pause", type=float, default=PAUSE_SECONDS, help="seconds of silence after each piece")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    try:
        if not os.path.isfile(args.ref):
            raise TTSError(f"--ref {args.ref}: no such file")
        if not args.text.strip():
            raise TTSError("--text: empty text")
        _language(args.lang, "--lang")
        if args.ref_text:
            _language(args.ref_lang, "--ref-lang")
        tts = load_tts(args.gpt, args.sovits, args.hubert, args.bert, args.sv, args.device)
        if args.bert is None and "zh" in (args.lang, args.ref_lang if args.ref_text else None):
            print("note: no --bert: Chinese text gets zero BERT features (a GPT trained with BERT features, e.g. "
                  "the official one, needs --bert chinese-roberta-wwm-ext-large)", file=sys.stderr)
        result = tts.synthesize(args.ref, args.ref_text, args.ref_lang, args.text, args.lang,
                                how_to_cut=args.how_to_cut, top_k=args.top_k, top_p=args.top_p,
                                temperature=args.temperature, repetition_penalty=args.repetition_penalty,
                                speed=args.speed, pause=args.pause, seed=args.seed)
        write_wav(args.out, result.wav, result.sampling_rate)
    except InferenceError as e:  # TTSError and the errors of gsv_edu.infer's loaders
        parser.exit(2, f"error: {e}\n")
    n_tokens = sum(len(t) for t in result.tokens)
    print(f"wrote {args.out}: {len(result.wav) / result.sampling_rate:.2f} s at {result.sampling_rate} Hz "
          f"({len(result.pieces)} piece(s), {n_tokens} tokens; GPT {result.seconds['gpt']:.1f} s, "
          f"SoVITS {result.seconds['sovits']:.1f} s, total {result.seconds['total']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
