"""Fit a fresh SoVITS codebook on the whole training corpus before step 1 (a gsv_edu option).

The official trainer never does this: a fresh quantizer initialises itself by k-means on the
frames of the **first batch** it sees (`GPT_SoVITS/module/core_vq.py · EuclideanCodebook.init_embed_
@48b1a01`), and with `freeze_quantizer` that codebook is never updated again. That is harmless when
fine-tuning from the pretrained s2G (its codebook was learned on thousands of hours and is already
initialised), but a model trained from scratch keeps the k-means of one batch for ever: when a
batch has fewer frames than the 1024 codes, k-means starts from samples drawn with replacement
and many codes stay copies of each other (the first shipped tiny SoVITS, batches of 8 clips, kept
538 distinct rows of 1024). `train.codebook_init = "corpus"` runs the same initialisation
(`EuclideanCodebook.init_embed_`: the same k-means, the same buffers) on the projected content
frames of every training utterance instead (9,987 frames for the 132 utterances of the sample
corpus's training split: 1024 codes used). It changes nothing for a run started from
pretrained weights or resumed from a checkpoint (their codebook is already initialised).
"""
from __future__ import annotations

import torch

from gsv_edu.data.dataset import TextAudioSpeakerDataset


@torch.no_grad()
def corpus_frames(net_g: torch.nn.Module, dataset: TextAudioSpeakerDataset) -> torch.Tensor:
    """`ssl_proj(ssl)` frames [N, D] of every distinct utterance of the dataset.

    Each utterance counts once, although the dataset repeats a set of under 100 items, in the
    dataset's order of first appearance. The projection is the one the quantizer reads
    (`SynthesizerTrn._quantize`: float32, 25 Hz).
    """
    proj = net_g.ssl_proj
    device = proj.weight.device
    first = {}  # utterance name -> its first index in the (repeated, shuffled) dataset
    for index, (name, _) in enumerate(dataset.items):
        first.setdefault(name, index)
    frames = []
    for index in first.values():
        ssl = dataset.load_item(index)[0]  # [D_ssl, T]
        x = proj(ssl[None].to(device=device, dtype=proj.weight.dtype))  # [1, D, T/2]
        frames.append(x[0].T)  # [T/2, D]
    return torch.cat(frames)  # [N, D]


@torch.no_grad()
def fit_codebook_on_corpus(net_g: torch.nn.Module, dataset: TextAudioSpeakerDataset) -> dict:
    """Initialise a fresh one-layer `net_g.quantizer` from the whole corpus.

    Every rank projects every utterance (the same frames everywhere: the corpus is small and the
    projection cheap), and rank 0 fits them alone and broadcasts the codebook
    (`init_embed_(..., gather=False)`), so nothing is trimmed to the smallest rank's share as a
    gathered batch would be. Only a single-layer quantizer is fitted this way (SoVITS has n_q = 1;
    residual layers would need the first layer's residuals). Returns a summary: frames used, codes
    that received at least one frame.
    """
    layers = net_g.quantizer.vq.layers
    if len(layers) != 1:
        raise ValueError(f"train.codebook_init = 'corpus' fits a one-layer quantizer; this one has {len(layers)}")
    codebook = layers[0]._codebook
    if codebook.inited.item():
        return {"fitted": False, "reason": "the codebook is already initialised (pretrained or resumed weights)"}
    frames = corpus_frames(net_g, dataset)  # [N, D]
    codebook.init_embed_(frames, gather=False)
    used = int((codebook.cluster_size > 0).sum())
    return {"fitted": True, "frames": int(frames.shape[0]), "codes_used": used,
            "codebook_size": codebook.codebook_size}
