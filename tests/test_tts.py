"""End-to-end text-to-speech (gsv_edu.tts): a tiny random GPT saved with save_gpt, the shipped tiny
SoVITS and HuBERT, a reference from data/sample."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gsv_edu import audio, tts
from gsv_edu.config import Config
from gsv_edu.gpt.config import GPTConfig
from gsv_edu.weights import save_gpt
from gsv_edu.gpt.t2s_model import Text2SemanticDecoder
from gsv_edu.hubert import features
from gsv_edu.infer import reference_spectrogram, reference_speaker_vector
from gsv_edu.sovits.models import SynthesizerTrn
from gsv_edu.text import clean_text, cleaned_text_to_sequence
from gsv_edu.text.split import segments

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "data" / "sample" / "wavs" / "en_awb" / "en_awb_001.flac"  # 3.33 s
REF_TEXT = "A young boy found a shiny coin beside the oak tree."
TEXT = "Hello there, my friend. How are you?"
TOKEN_SAMPLES = 1280  # 25 Hz tokens at 32 kHz: 2 content frames × hop 640
PAUSE = int(32000 * 0.3)
MAX_SEC = 1  # the GPT config's max_sec: at most 50·1 = 50 new tokens per piece


def _gpt_config(**model) -> GPTConfig:
    cfg = GPTConfig.preset("tiny")
    cfg.data.max_sec = MAX_SEC
    return cfg.replace_model(**model) if model else cfg


@pytest.fixture(scope="module")
def gpt_path(tmp_path_factory):
    torch.manual_seed(0)
    cfg = _gpt_config()
    return save_gpt(Text2SemanticDecoder(cfg), tmp_path_factory.mktemp("gpt") / "tiny_random.ckpt", cfg)


@pytest.fixture(scope="module")
def engine(gpt_path):
    return tts.load_tts(gpt=gpt_path)


class Recorder:
    """Wraps a method and records its arguments and results."""

    def __init__(self, monkeypatch, obj, name):
        self.calls = []
        original = getattr(obj, name)

        def wrapped(*args, **kwargs):
            out = original(*args, **kwargs)
            self.calls.append((args, kwargs, out))
            return out

        monkeypatch.setattr(obj, name, wrapped)


def test_same_seed_same_audio_and_length_from_tokens(engine):
    kw = dict(how_to_cut="cut5")
    a = engine.synthesize(REF, REF_TEXT, "en", TEXT, "en", seed=3, **kw)
    b = engine.synthesize(REF, REF_TEXT, "en", TEXT, "en", seed=3, **kw)
    c = engine.synthesize(REF, REF_TEXT, "en", TEXT, "en", seed=4, **kw)
    assert a.sampling_rate == 32000 and a.wav.dtype == np.float32
    assert a.pieces == segments(TEXT, "cut5", "en") and len(a.pieces) == 3
    np.testing.assert_array_equal(a.wav, b.wav)
    assert [t.tolist() for t in a.tokens] == [t.tolist() for t in b.tokens]
    assert [t.tolist() for t in a.tokens] != [t.tolist() for t in c.tokens]
    for r in (a, c):
        n = [len(t) for t in r.tokens]
        assert all(0 < k <= 50 * MAX_SEC for k in n)
        assert len(r.wav) == sum(k * TOKEN_SAMPLES + PAUSE for k in n)
        assert not r.wav[-PAUSE:].any()  # the official pause after every piece
        start = 0
        for k in n:  # each piece: speech, then exactly PAUSE zeros
            assert np.abs(r.wav[start:start + k * TOKEN_SAMPLES]).max() > 0
            start += k * TOKEN_SAMPLES + PAUSE
            assert not r.wav[start - PAUSE:start].any()
        assert np.abs(r.wav).max() <= 1.0


def test_pipeline_feeds_the_official_inputs(engine, monkeypatch):
    """The GPT gets [ref phones ; piece phones], zero BERT (English), the reference's tokens with the
    0.6 s padding's tokens; SoVITS gets the new tokens, the piece's phones only, the reference
    spectrogram. Rebuilt here from the library's parts and compared by value."""
    gpt_calls = Recorder(monkeypatch, engine.gpt, "infer_panel")
    decode_calls = Recorder(monkeypatch, engine.sovits, "decode")
    result = engine.synthesize(REF, "A young boy found a shiny coin", "en", "Good morning", "en", seed=5, top_k=7,
                               temperature=0.8)
    assert result.pieces == ["Good morning."]  # a final "." added to the English piece

    y16 = audio.load_audio(REF, 16000)
    prompt = engine.sovits.extract_latent(features.reference_features(engine.encoder, y16))[0, 0][None]  # [1, T_p]
    assert prompt.size(1) == features.hubert_frames(len(y16) + 9600) // 2 == result.prompt_tokens
    ref_ids = cleaned_text_to_sequence(clean_text("A young boy found a shiny coin.", "en")[0], "v2")
    piece_ids = cleaned_text_to_sequence(clean_text("Good morning.", "en")[0], "v2")

    (args, kwargs, (y, idx)), = gpt_calls.calls
    x, x_lens, prompts, bert = args
    assert x.tolist() == [ref_ids + piece_ids] and x_lens.tolist() == [len(ref_ids) + len(piece_ids)]
    assert torch.equal(prompts, prompt)
    assert bert.shape == (1, 1024, x.size(1)) and not bert.any()
    assert kwargs == dict(top_k=7, top_p=1.0, temperature=0.8, early_stop_num=50 * MAX_SEC,
                          repetition_penalty=1.35)

    (args, kwargs, wav), = decode_calls.calls
    codes, phones, spec = args
    assert torch.equal(codes, y[:, -idx:][None]) and torch.equal(result.tokens[0], y[0, -idx:])
    assert phones.tolist() == [piece_ids]
    assert torch.equal(spec, reference_spectrogram(REF, engine.config))
    assert kwargs == dict(noise_scale=0.5, speed=1.0, sv_emb=None)
    np.testing.assert_array_equal(result.wav[:-PAUSE], wav[0, 0].numpy())


def test_a_short_text_is_read_again_with_a_leading_dot(engine):
    ids, bert, norm = tts.text_features("Hi.", "en", "v2")
    expected = cleaned_text_to_sequence(clean_text(".Hi.", "en")[0], "v2")  # "Hi." alone: fewer than 6 phones
    assert len(cleaned_text_to_sequence(clean_text("Hi.", "en")[0], "v2")) < 6
    assert ids == expected and bert.shape == (1024, len(ids))


def test_reference_free_mode(engine, monkeypatch):
    gpt_calls = Recorder(monkeypatch, engine.gpt, "infer_panel")
    result = engine.synthesize(REF, None, "en", "Good morning to you all.", "en", seed=1)
    (args, _, (y, idx)), = gpt_calls.calls
    assert args[2] is None and idx == 0 and result.prompt_tokens == 0
    piece_ids = cleaned_text_to_sequence(clean_text("Good morning to you all.", "en")[0], "v2")
    assert args[0].tolist() == [piece_ids]
    assert torch.equal(result.tokens[0], y[0])


def test_chinese_with_bert_features_and_english_runs_zero(gpt_path, tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    text = "你好，hello world。今天很好。"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(text + "一二三是的了。，"))
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=1024, num_hidden_layers=3,
                                     num_attention_heads=2, intermediate_size=16, max_position_embeddings=32)
    torch.manual_seed(0)
    transformers.BertForMaskedLM(config).save_pretrained(tmp_path)
    engine = tts.load_tts(gpt=gpt_path, bert=tmp_path)

    ids, bert, norm = tts.text_features(text, "zh", "v2", engine.bert)
    zh1, w1, n1 = clean_text("你好，", "zh")
    en, _, _ = clean_text("hello world。", "en")
    zh2, w2, n2 = clean_text("今天很好。", "zh")
    assert ids == cleaned_text_to_sequence(zh1 + en + zh2, "v2")
    torch.testing.assert_close(bert[:, :len(zh1)], engine.bert.features(n1, w1))
    assert not bert[:, len(zh1):len(zh1) + len(en)].any()  # English run: zeros, as upstream
    torch.testing.assert_close(bert[:, len(zh1) + len(en):], engine.bert.features(n2, w2))
    assert bert[:, :len(zh1)].abs().sum() > 0

    gpt_calls = Recorder(monkeypatch, engine.gpt, "infer_panel")
    result = engine.synthesize(REF, REF_TEXT, "en", text, "zh", seed=2, how_to_cut="cut0")
    (args, _, _), = gpt_calls.calls
    n_ref = args[0].size(1) - len(ids)
    assert not args[3][0, :, :n_ref].any()  # the English reference text: zeros
    torch.testing.assert_close(args[3][0, :, n_ref:], bert)
    assert len(result.wav) == len(result.tokens[0]) * TOKEN_SAMPLES + PAUSE


def test_v2pro_gets_the_speaker_vector(gpt_path, monkeypatch):
    cfg = Config.preset("tiny-v2pro")
    torch.manual_seed(0)
    sovits = SynthesizerTrn(cfg.spec_channels, cfg.segment_frames, **cfg.model_kwargs()).eval()
    base = tts.load_tts(gpt=gpt_path)
    with pytest.raises(tts.TTSError, match="--sv: the v2Pro SoVITS"):
        tts.TTS(base.gpt, sovits, base.encoder)
    from gsv_edu.infer import load_speaker_verifier

    verifier = load_speaker_verifier("tiny")
    engine = tts.TTS(base.gpt, sovits, base.encoder, speaker_verifier=verifier)
    decode_calls = Recorder(monkeypatch, sovits, "decode")
    engine.synthesize(REF, REF_TEXT, "en", "Good morning to you.", "en", seed=1)
    (_, kwargs, _), = decode_calls.calls
    torch.testing.assert_close(kwargs["sv_emb"], reference_speaker_vector(REF, engine.config, verifier))


def test_vocabulary_mismatches_are_refused(engine, gpt_path):
    cfg = Config.preset("tiny").apply_overrides(["model.version=v1"]).validate()
    v1 = SynthesizerTrn(cfg.spec_channels, cfg.segment_frames, **cfg.model_kwargs()).eval()
    with pytest.raises(tts.TTSError, match=r"732 rows \(v2 symbol table\) but the v1 SoVITS .* v1 table \(322"):
        tts.TTS(engine.gpt, v1, engine.encoder)
    gpt_v1 = Text2SemanticDecoder(_gpt_config(phoneme_vocab_size=512))
    with pytest.raises(tts.TTSError, match=r"512 rows \(v1 symbol table\) but the v2 SoVITS"):
        tts.TTS(gpt_v1, engine.sovits, engine.encoder)
    tts.TTS(gpt_v1, v1, engine.encoder)  # a v1 pair is fine
    gpt_2048 = Text2SemanticDecoder(_gpt_config(vocab_size=2049, EOS=2048))
    with pytest.raises(tts.TTSError, match="speaks 2048 semantic tokens .* decodes 1024"):
        tts.TTS(gpt_2048, engine.sovits, engine.encoder)


# ---------------------------------------------------------------- the command line

def _run_main(capsys, *argv):
    """main(argv) → (exit code, stdout, stderr)."""
    try:
        code = tts.main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_writes_32k_pcm(gpt_path, tmp_path, capsys):
    out = tmp_path / "sub" / "out.wav"
    code, stdout, _ = _run_main(capsys, "--ref", REF, "--ref-text", REF_TEXT, "--ref-lang", "en", "--text",
                                "Good morning.", "--lang", "en", "--out", out, "--seed", 7, "--gpt", gpt_path)
    assert code == 0 and f"wrote {out}" in stdout
    data, rate = sf.read(out, dtype="int16")
    info = sf.info(out)
    assert rate == 32000 and info.subtype == "PCM_16"
    result = tts.load_tts(gpt=gpt_path).synthesize(REF, REF_TEXT, "en", "Good morning.", "en", seed=7)
    np.testing.assert_array_equal(data, (result.wav * 32767).astype(np.int16))
    assert [p.name for p in out.parent.iterdir()] == ["out.wav"]  # no temporary file left


def _cut(tmp_path, seconds_list, name):
    y = np.concatenate([audio.load_audio(REF, 32000)] * 4)
    path = tmp_path / name
    sf.write(path, y[:int(32000 * seconds_list)], 32000)
    return path


@pytest.mark.parametrize("case, expected", [
    ("missing_ref", "--ref {tmp}/absent.wav: no such file"),
    ("empty_text", "--text: empty text"),
    ("language", "--lang 'fr': unsupported language; supported: en, zh"),
    ("ref_language", "--ref-lang 'de': unsupported language"),
    ("short_ref", "--ref {tmp}/short.wav: the reference lasts 2.00 s; it must last 3 to 10 s"),
    ("long_ref", "--ref {tmp}/long.wav: the reference lasts 10.50 s; it must last 3 to 10 s"),
    ("bad_gpt", "--gpt {tmp}/bad.ckpt: not a torch checkpoint"),
    ("gpt_v1", "its phone embedding has 512 rows (v1 symbol table) but the v2 SoVITS"),
    ("cut", "--how-to-cut: unknown text-cutting method 'cut9'"),
    ("out", "--out {tmp}/out.mp3: give a .wav or .flac file name"),
])
def test_cli_bad_input_is_one_line_and_exit_2(case, expected, gpt_path, tmp_path, capsys):
    args = dict(ref=REF, ref_text=REF_TEXT, ref_lang="en", text="Good morning.", lang="en",
                out=tmp_path / "out.wav", gpt=gpt_path)
    if case == "missing_ref":
        args["ref"] = tmp_path / "absent.wav"
    elif case == "empty_text":
        args["text"] = "  "
    elif case == "language":
        args["lang"] = "fr"
    elif case == "ref_language":
        args["ref_lang"] = "de"
    elif case == "short_ref":
        args["ref"] = _cut(tmp_path, 2.0, "short.wav")
    elif case == "long_ref":
        args["ref"] = _cut(tmp_path, 10.5, "long.wav")
    elif case == "bad_gpt":
        (tmp_path / "bad.ckpt").write_text("not a checkpoint")
        args["gpt"] = tmp_path / "bad.ckpt"
    elif case == "gpt_v1":
        cfg = _gpt_config(phoneme_vocab_size=512)
        args["gpt"] = save_gpt(Text2SemanticDecoder(cfg), tmp_path / "v1.ckpt", cfg)
    elif case == "out":
        args["out"] = tmp_path / "out.mp3"
    argv = [x for k, v in args.items() for x in (f"--{k.replace('_', '-')}", v)]
    if case == "cut":
        argv += ["--how-to-cut", "cut9"]
    code, _, err = _run_main(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert expected.format(tmp=tmp_path) in err
    assert not (tmp_path / "out.wav").exists()


def test_default_gpt_missing_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(tts, "TINY_GPT_PATH", tmp_path / "gpt_tiny" / "gpt_tiny.ckpt")
    code, _, err = _run_main(capsys, "--ref", REF, "--ref-text", REF_TEXT, "--text", "Hi there.", "--out",
                             tmp_path / "o.wav")
    assert code == 2 and "the shipped small GPT" in err and "pass --gpt CKPT" in err and err.count("\n") == 1


def test_exit_code_of_the_module(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gsv_edu.tts", "--ref", str(tmp_path / "none.wav"), "--text", "Hi.",
                           "--out", str(tmp_path / "o.wav")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: --ref {tmp_path / 'none.wav'}: no such file"
