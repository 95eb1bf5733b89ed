"""Fit a fresh SoVITS codebook on the whole training corpus before step 1 (a gsv_edu option).

The official trainer never does this: a fresh quantizer initialises itself by k-means on the
frames of the **first batch** it sees (`GPT_SoVITS/module/core_vq.py · EuclideanCodebook.init_embed_
@48b1a01`), and with `freeze_quantizer` that codebook is never updated again. That is harmless when
fine-tuning from the pretrained s2G (its codebook was learned on thousands of hours and is already
initialised), but a model trained from scratch keeps the k-means of one batch for ever: with the
tiny preset's batches of 8 short clips, about 1,700 frames for 1,024 codes, half of which start as
copies of each other (book chapter 03 measures it). `train.codebook_init = "corpus"` runs the same
initialisation (`EuclideanCodebook.init_embed_`: the same k-means, the same buffers) on the
projected content frames of every training item instead. It changes nothing for a run started from
pretrained weights or resumed from a checkpoint (their codebook is already initialised).
"""
from __future__ import annotations

import torch

from gsv_edu.data.dataset import TextAudioSpeakerDataset
from gsv_edu.train.distributed import DistributedContext

CODEBOOK_INITS = ("first_batch", "corpus")


@torch.no_grad()
def corpus_frames(net_g: torch.nn.Module, dataset: TextAudioSpeakerDataset, rank: int = 0,
                  world_size: int = 1) -> torch.Tensor:
    """`ssl_proj(ssl)` frames [N, D] of this rank's share of the distinct utterances.

    Each utterance counts once, although the dataset repeats a set of under 100 items; the
    utterances, in the dataset's order of first appearance, are shared out as rank, rank + R, ...
    The projection is the one the quantizer reads (`SynthesizerTrn._quantize`: float32, 25 Hz).
    """
    proj = net_g.ssl_proj
    device = proj.weight.device
    first = {}  # utterance name -> its first index in the (repeated, shuffled) dataset
    for index, (name, _) in enumerate(dataset.items):
        first.setdefault(name, index)
    frames = []
    for index in list(first.values())[rank::world_size]:
        ssl = dataset.load_item(index)[0]  # [D_ssl, T]
        x = proj(ssl[None].to(device=device, dtype=proj.weight.dtype))  # [1, D, T/2]
        frames.append(x[0].T)  # [T/2, D]
    if not frames:
        return torch.zeros(0, proj.out_channels, device=device)
    return torch.cat(frames)  # [N, D]


@torch.no_grad()
def fit_codebook_on_corpus(net_g: torch.nn.Module, dataset: TextAudioSpeakerDataset,
                           ctx: DistributedContext | None = None) -> dict:
    """Initialise every fresh codebook layer of `net_g.quantizer` from the whole corpus.

    Each rank projects its share of the items; `init_embed_` gathers the shares (rank 0 runs the
    k-means and broadcasts it), exactly as it does with a batch. Only a single-layer quantizer is
    fitted this way (SoVITS has n_q = 1; residual layers would need the first layer's residuals).
    Returns a summary: frames used, codes that received at least one frame.
    """
    rank, world = (ctx.rank, ctx.world_size) if ctx is not None else (0, 1)
    layers = net_g.quantizer.vq.layers
    if len(layers) != 1:
        raise ValueError(f"train.codebook_init = 'corpus' fits a one-layer quantizer; this one has {len(layers)}")
    codebook = layers[0]._codebook
    if codebook.inited.item():
        return {"fitted": False, "reason": "the codebook is already initialised (pretrained or resumed weights)"}
    frames = corpus_frames(net_g, dataset, rank, world)  # [N, D]
    codebook.init_embed_(frames)
    used = int((codebook.cluster_size > 0).sum())
    return {"fitted": True, "frames": int(frames.shape[0]) * world, "codes_used": used,
            "codebook_size": codebook.codebook_size}
