"""train.codebook_init = "corpus": the fresh codebook is the k-means of every training frame, not of one batch."""
from __future__ import annotations

import pytest
import torch

from gsv_edu.config import ConfigError
from gsv_edu.data.dataset import TextAudioSpeakerDataset
from gsv_edu.sovits.models import SynthesizerTrn
from gsv_edu.sovits.quantize import kmeans
from gsv_edu.train import train
from gsv_edu.train.codebook import corpus_frames, fit_codebook_on_corpus
from train_helpers import make_prepared, small_config


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return make_prepared(tmp_path_factory.mktemp("prepared"), n_items=5)


def _model(cfg):
    torch.manual_seed(0)
    return SynthesizerTrn(cfg.spec_channels, cfg.segment_frames, **cfg.model_kwargs())


def test_corpus_frames_are_every_items_projection(prepared):
    cfg = small_config()
    net_g, dataset = _model(cfg), TextAudioSpeakerDataset(prepared, cfg)
    frames = corpus_frames(net_g, dataset)
    # the dataset repeats the 5 utterances (official: sets under 100 items); each counts once
    assert len(dataset) >= 100
    first = {}
    for i, (name, _) in enumerate(dataset.items):
        first.setdefault(name, i)
    assert len(first) == 5
    with torch.no_grad():
        parts = [net_g.ssl_proj(dataset.load_item(i)[0][None])[0].T for i in first.values()]  # [T/2, D] each
    torch.testing.assert_close(frames, torch.cat(parts), rtol=0, atol=0)


def test_fit_is_the_official_initialisation_on_all_frames(prepared):
    cfg = small_config()
    net_g, dataset = _model(cfg), TextAudioSpeakerDataset(prepared, cfg)
    codebook = net_g.quantizer.vq.layers[0]._codebook
    assert codebook.inited.item() == 0
    frames = corpus_frames(net_g, dataset)  # [N, D]
    torch.manual_seed(7)
    means, counts = kmeans(frames, codebook.codebook_size, codebook.kmeans_iters)
    torch.manual_seed(7)
    summary = fit_codebook_on_corpus(net_g, dataset)
    torch.testing.assert_close(codebook.embed, means, rtol=0, atol=0)
    torch.testing.assert_close(codebook.embed_avg, means, rtol=0, atol=0)  # official quirk: means, not sums
    assert torch.equal(codebook.cluster_size, counts.float())
    assert codebook.inited.item() == 1
    assert summary == {"fitted": True, "frames": frames.shape[0], "codes_used": int((counts > 0).sum()),
                       "codebook_size": 1024}
    # an initialised codebook (pretrained or resumed) is left alone
    before = codebook.embed.clone()
    assert fit_codebook_on_corpus(net_g, dataset)["fitted"] is False
    assert torch.equal(codebook.embed, before)


def test_training_uses_it_and_says_so(prepared, tmp_path):
    def codebook_after(init, out):
        train(small_config("train.max_steps=1", f"train.codebook_init={init}"), prepared, out, device="cpu",
              progress=False, quiet=True, tensorboard=False)
        g = torch.load(sorted((out / "logs_s2_v2").glob("G_*.pth"))[-1], map_location="cpu", weights_only=True)
        return g["model"]["quantizer.vq.layers.0._codebook.embed"]

    corpus = codebook_after("corpus", tmp_path / "corpus")
    first = codebook_after("first_batch", tmp_path / "first")
    # the first batch (2 items) has fewer frames than codes: its k-means repeats rows; the corpus fills more
    assert len(torch.unique(corpus, dim=0)) > len(torch.unique(first, dim=0))
    assert "codebook: k-means of the whole corpus" in (tmp_path / "corpus" / "train.log").read_text()


def test_bad_value_is_a_config_error():
    with pytest.raises(ConfigError, match="train.codebook_init"):
        small_config("train.codebook_init=everything")
