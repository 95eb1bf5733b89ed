"""v2Pro through the pipeline: prepare writes 7-sv_cn/, the dataset and collate carry the speaker
vectors, training runs and resumes, the export is tagged "05", inference uses the reference's vector.

Content encoder: the tiny random HuBERT of the fixtures; speaker verification: the seeded tiny
ERes2NetV2 (`--sv tiny`); the training config is the shrunken tiny one of train_helpers, as v2Pro.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.io import wavfile

import gsv_edu.data.prepare as prep
from gsv_edu.config import ConfigError
from gsv_edu.data.dataset import TextAudioSpeakerCollate, TextAudioSpeakerDataset
from gsv_edu.data.layout import check_prepared, read_prepare_info
from gsv_edu.hubert import HuBERT
from gsv_edu.infer import InferenceError, load_model, synthesize
from gsv_edu.sv import TINY_SV_SEED, build_preset, kaldi_fbank, resample
from gsv_edu.train import train
from gsv_edu.weights import read_sovits_file
from train_helpers import SMALL_OVERRIDES, small_config

HUBERT_TINY = os.path.join(os.path.dirname(__file__), "fixtures", "sovits_v2", "hubert_tiny")
NAMES = ["a.wav", "b.wav", "c.wav", "d.wav"]


def tone(seconds, freq):
    t = np.arange(int(seconds * 32000)) / 32000
    return (0.3 * np.sin(2 * np.pi * freq * t * (1 + 0.1 * t)) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    texts = ["Hello world.", "Good morning.", "A shiny coin.", "The oak tree."]
    for i, (name, text) in enumerate(zip(NAMES, texts)):
        sf.write(folder / name, tone(1.0 + 0.15 * i, 150 + 40 * i), 32000)
    (folder / "train.list").write_text("".join(f"{folder / n}|spk|en|{t}\n" for n, t in zip(NAMES, texts)))
    return folder


@pytest.fixture(scope="module")
def hubert():
    return HuBERT.from_pretrained(HUBERT_TINY)


@pytest.fixture(scope="module")
def prepared(corpus, hubert, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared_v2pro")
    report = prep.prepare(corpus / "train.list", out, hubert=hubert, hubert_name="tiny", version="v2Pro",
                          sv="tiny", progress=False)
    return out, report


def test_prepare_writes_the_speaker_vectors(prepared):
    out, report = prepared
    assert report.prepared == NAMES and report.computed["sv"] == 4
    info = read_prepare_info(out)
    assert info["version"] == "v2Pro" and info["sv_dim"] == 1280 and "seed 1234" in info["sv_model"]
    model = build_preset("tiny", seed=TINY_SV_SEED)
    for name in NAMES:
        vector = torch.load(out / "7-sv_cn" / f"{name}.pt", weights_only=True)
        assert vector.shape == (1, 1280) and vector.dtype == torch.float32
        # 2-get-sv.py by hand: the prepared int16 wav / 32768 → sinc 32k→16k → fbank → forward3
        _, y = wavfile.read(out / "5-wav32k" / name)
        wav16k = resample(torch.from_numpy(y.astype(np.float32) / 32768.0), 32000, 16000)
        with torch.no_grad():
            expected = model.forward3(kaldi_fbank(wav16k)[None])
        torch.testing.assert_close(vector, expected, rtol=1e-5, atol=1e-6)
    a, b = (torch.load(out / "7-sv_cn" / f"{n}.pt", weights_only=True) for n in NAMES[:2])
    assert (a - b).abs().max() > 1e-3  # different audio, different vector


def test_prepare_resumes_and_refuses_mixing(prepared, corpus, hubert):
    out, _ = prepared
    again = prep.prepare(corpus / "train.list", out, hubert=hubert, hubert_name="tiny", version="v2Pro",
                         sv="tiny", progress=False)
    assert again.reused["sv"] == 4 and again.computed["sv"] == 0
    other = build_preset("tiny", seed=7)
    with pytest.raises(prep.PrepareError, match="7-sv_cn holds speaker vectors from tiny ERes2NetV2"):
        prep.prepare(corpus / "train.list", out, hubert=hubert, hubert_name="tiny", version="v2Pro", sv=other,
                     progress=False)
    with pytest.raises(ValueError, match="v2Pro trains on speaker vectors: give sv"):
        prep.prepare(corpus / "train.list", out, hubert=hubert, version="v2Pro", progress=False)
    with pytest.raises(ValueError, match="only used by v2Pro/v2ProPlus, not v2"):
        prep.prepare(corpus / "train.list", out, hubert=hubert, version="v2", sv="tiny", progress=False)


def test_dataset_and_collate_carry_the_vectors(prepared, hubert):
    out, _ = prepared
    cfg = small_config("model.version=v2Pro", "model.sv_dim=1280", f"model.ssl_dim={hubert.config.hidden_size}")
    dataset = TextAudioSpeakerDataset(out, cfg, version="v2Pro")
    items = [dataset[i] for i in range(4)]
    assert all(len(item) == 5 and item[4].shape == (1280,) for item in items)
    batch = TextAudioSpeakerCollate()(items)
    assert len(batch) == 9 and batch[8].shape == (4, 1280)
    order = torch.sort(torch.tensor([it[1].shape[-1] for it in items]), descending=True, stable=True).indices
    for row, index in enumerate(order.tolist()):  # rows sorted by length, vectors with them
        assert torch.equal(batch[8][row], items[index][4])
    # a v2 dataset on the same folder ignores them
    assert len(TextAudioSpeakerDataset(out, cfg, version="v2")[0]) == 4


def test_check_prepared_names_what_is_missing(prepared, tmp_path, hubert):
    out, _ = prepared
    width = f"model.ssl_dim={hubert.config.hidden_size}"
    check_prepared(small_config("model.version=v2Pro", "model.sv_dim=1280", width), out)
    with pytest.raises(ConfigError, match="1280-dim speaker vectors .* model.sv_dim is 20480"):
        check_prepared(small_config("model.version=v2Pro", width), out)
    bare = tmp_path / "bare"
    (bare / "4-cnhubert").mkdir(parents=True)
    with pytest.raises(ConfigError, match="7-sv_cn is missing or empty: prepare with --version v2Pro --sv"):
        check_prepared(small_config("model.version=v2Pro", "model.sv_dim=1280"), bare)


@pytest.fixture(scope="module")
def trained(prepared, hubert, tmp_path_factory):
    out, _ = prepared
    run = tmp_path_factory.mktemp("run_v2pro")
    overrides = ["model.version=v2Pro", "model.sv_dim=1280", f"model.ssl_dim={hubert.config.hidden_size}"]
    first = train(small_config(*overrides, "train.max_steps=2"), out, run, device="cpu", progress=False, quiet=True,
                  tensorboard=False)
    second = train(small_config(*overrides, "train.max_steps=3"), out, run, device="cpu", progress=False,
                   quiet=True, tensorboard=False)
    return run, first, second


def test_training_runs_resumes_and_exports_v2pro(trained):
    run, first, second = trained
    assert first.step == 2 and second.step == 3
    assert (run / "logs_s2_v2Pro" / "G_2.pth").is_file()
    export = sorted((run / "weights").glob("*.pth"))[-1]
    assert export.read_bytes()[:2] == b"05"
    sovits = read_sovits_file(export)
    assert sovits.version == "v2Pro" and sovits.weight["sv_emb.weight"].shape[1] == 1280


def test_inference_uses_the_reference_speaker_vector(trained, corpus, hubert):
    run, _, _ = trained
    model = load_model(sorted((run / "weights").glob("*.pth"))[-1])
    assert model.version == "v2Pro"
    common = dict(source=corpus / "c.wav", text="Hello world.", lang="en", encoder=hubert, noise_scale=0.0)
    with pytest.raises(InferenceError, match="--sv: a v2Pro model needs the speaker-verification model"):
        synthesize(model, ref=corpus / "a.wav", **common)
    with pytest.raises(InferenceError, match="gives 20480-dim vectors but the v2Pro model expects 1280"):
        synthesize(model, ref=corpus / "a.wav", sv=build_preset("official"), **common)
    one = synthesize(model, ref=corpus / "a.wav", sv="tiny", **common)
    same_spec_other_vector = synthesize(model, ref=corpus / "a.wav", sv=build_preset("tiny", seed=5), **common)
    two = synthesize(model, ref=[corpus / "a.wav", corpus / "b.wav"], sv="tiny", **common)
    assert one.shape == two.shape and np.isfinite(one).all()
    assert np.abs(one - same_spec_other_vector).max() > 1e-6  # the vector reaches the decoder
    assert np.abs(one - two).max() > 1e-6
