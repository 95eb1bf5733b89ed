"""HuBERT pretraining by masked prediction of cluster ids, small enough for a CPU.

Follows HuBERT (Hsu et al. 2021, arXiv:2106.07447), as fairseq's `hubert_pretraining` task
implements it, scaled down:

1. targets: every 20 ms frame of the training audio gets a cluster id from k-means on MFCCs
   (iteration 1) or on the hidden states of a previous model (iteration 2) — `targets.py`;
2. span masking: about half of the frames, in spans of `mask_length` frames, are replaced by
   the learned vector `masked_spec_embed` after the feature projection (`compute_mask`);
3. the transformer output of every frame is projected (`final_proj`) and compared by cosine
   similarity, divided by a temperature of 0.1, with one learned embedding per cluster
   (`label_embs_concat`); cross-entropy on the **masked** frames only (HuBERT's α = 1): the
   model must infer what is said under the mask from the context, which forces it to model
   content rather than copy the input.

`pretrain()` trains from utterances and targets in memory, with a tqdm progress bar, writing a
resumable checkpoint atomically every `checkpoint_every` steps (model, head, optimizer,
random-number states, loss history); running it again with the same output folder continues
where it stopped and gives the same weights as an uninterrupted run. `run()` is the whole
recipe from a list file (what `python -m gsv_edu.hubert pretrain` calls).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tqdm.auto import tqdm

from gsv_edu import audio
from gsv_edu.atomic import atomic_save, atomic_write_text
from gsv_edu.data.listfile import read_list
from gsv_edu.hubert import targets as T
from gsv_edu.hubert.config import HuBERTConfig
from gsv_edu.hubert.model import HuBERT

CHECKPOINT = "checkpoint.pt"
TARGETS = "targets.pt"
HISTORY = "history.json"
MODEL_DIR = "model"


@dataclass
class PretrainConfig:
    """Sizes and optimisation settings of one pretraining run (defaults: the shipped small model)."""

    # model (a HuBERT-base shape, narrower and shallower)
    # widths of the 7 waveform convs (base: 512 each); narrow where the frame rate is high, since
    # a conv's cost is frames × C_in × C_out × kernel and the first layers run at 3200-400 Hz
    conv_dim: tuple[int, ...] = (64, 64, 128, 128, 256, 256, 256)
    hidden_size: int = 256  # (base: 768)
    num_hidden_layers: int = 3  # (base: 12)
    num_attention_heads: int = 4  # (base: 12)
    intermediate_size: int = 512  # (base: 3072)
    num_conv_pos_embeddings: int = 32  # positional conv kernel, in frames (base: 128); its grouped conv is slow to train
    num_conv_pos_embedding_groups: int = 16
    dropout: float = 0.1
    # targets
    num_clusters: int = 100
    mfcc_normalize: str = "utterance"  # "none" | "utterance" (see targets.mfcc)
    kmeans_iters: int = 30
    # masked prediction
    mask_prob: float = 0.8  # ≈ fraction of frames that start... × length: about 50% of frames end up masked
    mask_length: int = 10
    final_dim: int = 64  # projection width for the cosine logits (base: 256)
    logit_temp: float = 0.1
    # weight of the loss on unmasked frames. HuBERT uses 0 (α = 1, masked frames only); with our
    # 1000-step budget that barely learns (masked accuracy ≈ 0.02 after 470 steps), so we add it.
    unmasked_weight: float = 1.0
    # optimisation
    steps: int = 1000
    batch_size: int = 4
    crop_frames: int = 100  # 2.0 s crops
    lr: float = 1e-3
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 10.0
    max_gain: float = 1145.14  # input gain drawn log-uniformly in [1, max_gain] (official ×1 and ×1145.14)
    seed: int = 0
    checkpoint_every: int = 100

    def hubert_config(self) -> HuBERTConfig:
        return HuBERTConfig(
            conv_dim=tuple(self.conv_dim), hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers, num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size, num_conv_pos_embeddings=self.num_conv_pos_embeddings,
            num_conv_pos_embedding_groups=self.num_conv_pos_embedding_groups,
            hidden_dropout=self.dropout, attention_dropout=self.dropout, activation_dropout=0.0,
            feat_proj_dropout=self.dropout, layerdrop=0.0, mask_time_prob=self.mask_prob,
            mask_time_length=self.mask_length)


class MaskedPredictionHead(nn.Module):
    """Cosine-similarity logits over the clusters: [B, T, H] → [B, T, K].

    Mirrors fairseq's HubertModel `final_proj` + `label_embs_concat` (single codebook):
    logits = cos(final_proj(h), e_k) / logit_temp.
    """

    def __init__(self, hidden: int, final_dim: int, num_clusters: int, logit_temp: float):
        super().__init__()
        self.final_proj = nn.Linear(hidden, final_dim)
        self.label_embs_concat = nn.Parameter(torch.empty(num_clusters, final_dim).uniform_())
        self.logit_temp = logit_temp

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.final_proj(h), dim=-1)  # [B, T, F]
        e = F.normalize(self.label_embs_concat, dim=-1)  # [K, F]
        return z @ e.t() / self.logit_temp  # [B, T, K]


def compute_mask(batch: int, frames: int, mask_prob: float, mask_length: int,
                 generator: torch.Generator) -> torch.Tensor:
    """Span mask [B, T] bool, after fairseq's `compute_mask_indices` (no minimum-spacing options).

    Per row: n = int(mask_prob·T/mask_length + u), u ~ U[0, 1), span starts drawn without
    replacement from [0, T − mask_length]; each start masks mask_length frames. Spans overlap,
    so mask_prob 0.8 masks about half of the frames. At least one span per row.
    """
    mask = torch.zeros(batch, frames, dtype=torch.bool)
    span = min(mask_length, frames)
    for b in range(batch):
        u = torch.rand((), generator=generator).item()
        n = max(1, int(mask_prob * frames / span + u))
        n = min(n, frames - span + 1)
        starts = torch.randperm(frames - span + 1, generator=generator)[:n]  # [n]
        idx = (starts.unsqueeze(1) + torch.arange(span)).reshape(-1)  # [n·span]
        mask[b, idx] = True
    return mask


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up to cfg.lr over warmup_steps, then linear decay to 0 at cfg.steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    return cfg.lr * max(0.0, (cfg.steps - step) / max(1, cfg.steps - cfg.warmup_steps))


def sample_batch(utterances: list[np.ndarray], labels: list[np.ndarray], cfg: PretrainConfig,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random equal-length crops: waveforms [B, N] (gain applied) and their frame targets [B, T]."""
    picks = torch.randint(len(utterances), (cfg.batch_size,), generator=generator).tolist()
    frames = min([cfg.crop_frames] + [len(labels[i]) for i in picks])
    n = (frames - 1) * 320 + 400  # samples that give exactly `frames` HuBERT frames
    wavs, targets = [], []
    for i in picks:
        t0 = torch.randint(len(labels[i]) - frames + 1, (), generator=generator).item()
        gain = math.exp(torch.rand((), generator=generator).item() * math.log(cfg.max_gain))
        wavs.append(torch.from_numpy(utterances[i][t0 * 320: t0 * 320 + n]) * gain)  # [N]
        targets.append(torch.from_numpy(labels[i][t0: t0 + frames]))  # [T]
    return torch.stack(wavs), torch.stack(targets)  # [B, N], [B, T]


@dataclass
class PretrainResult:
    model: HuBERT
    head: MaskedPredictionHead
    history: list[dict]  # one entry per step: step, loss, acc (masked-frame accuracy), lr
    seconds: float  # wall time spent training in this call


def _check_inputs(utterances, labels, cfg: PretrainConfig) -> None:
    if len(utterances) == 0 or len(utterances) != len(labels):
        raise ValueError(f"pretrain: need one label sequence per utterance, got {len(utterances)} utterances "
                         f"and {len(labels)} label sequences")
    hcfg = cfg.hubert_config()
    for i, (y, lab) in enumerate(zip(utterances, labels)):
        if hcfg.num_frames(len(y)) != len(lab):
            raise ValueError(f"pretrain: utterance {i} has {hcfg.num_frames(len(y))} frames but "
                             f"{len(lab)} labels")
        if lab.max() >= cfg.num_clusters:
            raise ValueError(f"pretrain: utterance {i} has label {lab.max()} ≥ num_clusters {cfg.num_clusters}")


def pretrain(utterances: list[np.ndarray], labels: list[np.ndarray], cfg: PretrainConfig,
             out_dir: str | os.PathLike | None = None, *, resume: bool = True, progress: bool = True,
             until_step: int | None = None) -> PretrainResult:
    """Masked-prediction training of a new HuBERT on 16 kHz utterances ([N_i] float) with targets ([T_i]).

    With `out_dir`, a checkpoint is written there every `checkpoint_every` steps and when this
    call returns; if one exists and `resume`, training continues from it (refusing a
    different config). `until_step` stops early (the learning-rate schedule still spans
    `cfg.steps`), e.g. to train in several sittings.
    """
    _check_inputs(utterances, labels, cfg)
    torch.manual_seed(cfg.seed)
    model = HuBERT(cfg.hubert_config())
    head = MaskedPredictionHead(cfg.hidden_size, cfg.final_dim, cfg.num_clusters, cfg.logit_temp)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)  # data crops, gains and masks
    step, history = 0, []
    ckpt_path = Path(out_dir) / CHECKPOINT if out_dir is not None else None
    if ckpt_path is not None and resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ck["config"] != dataclasses.asdict(cfg):
            diff = {k: (ck["config"].get(k), v) for k, v in dataclasses.asdict(cfg).items() if ck["config"].get(k) != v}
            raise ValueError(f"{ckpt_path}: was written with a different config (checkpoint, now): {diff}; "
                             f"use another output folder or resume=False")
        model.load_state_dict(ck["model"])
        head.load_state_dict(ck["head"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        step, history = ck["step"], ck["history"]

    def save() -> None:
        if ckpt_path is None:
            return
        atomic_save({"config": dataclasses.asdict(cfg), "step": step, "model": model.state_dict(),
                     "head": head.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                     "torch_rng": torch.get_rng_state(), "history": history}, ckpt_path)

    model.train()
    head.train()
    t_start = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="HuBERT pretraining", unit="step")
    stop = cfg.steps if until_step is None else min(until_step, cfg.steps)
    with bar:  # an interruption (Ctrl-C) loses at most the steps since the last checkpoint
        while step < stop:
            step = _train_step(model, head, opt, params, utterances, labels, cfg, gen, step, history)
            bar.update(1)
            bar.set_postfix(loss=f"{history[-1]['loss']:.3f}", acc=f"{history[-1]['acc']:.2f}",
                            acc_unmasked=f"{history[-1]['acc_unmasked']:.2f}")
            if step % cfg.checkpoint_every == 0:
                save()
    seconds = time.perf_counter() - t_start
    if step % cfg.checkpoint_every != 0:
        save()
    model.eval()
    head.eval()
    return PretrainResult(model, head, history, seconds)


def _train_step(model, head, opt, params, utterances, labels, cfg: PretrainConfig, gen: torch.Generator,
                step: int, history: list[dict]) -> int:
    """One optimisation step on a fresh random batch; appends to `history`, returns step + 1."""
    wav, target = sample_batch(utterances, labels, cfg, gen)  # [B, N], [B, T]
    mask = compute_mask(target.shape[0], target.shape[1], cfg.mask_prob, cfg.mask_length, gen)  # [B, T]
    lr = lr_at(step, cfg)
    for group in opt.param_groups:
        group["lr"] = lr
    logits = head(model.encode(wav, mask))  # [B, T, K]
    loss = F.cross_entropy(logits[mask], target[mask])  # masked frames
    if cfg.unmasked_weight > 0 and (~mask).any():
        loss = loss + cfg.unmasked_weight * F.cross_entropy(logits[~mask], target[~mask])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    opt.step()
    with torch.no_grad():
        hit = logits.argmax(-1) == target  # [B, T]
        acc, acc_unmasked = hit[mask].float().mean().item(), hit[~mask].float().mean().item()
    history.append({"step": step + 1, "loss": round(loss.item(), 5), "acc": round(acc, 4),
                    "acc_unmasked": round(acc_unmasked, 4), "lr": lr})
    return step + 1


# ------------------------------------------------------------------------------------------------
# the whole recipe from a list file
# ------------------------------------------------------------------------------------------------

@dataclass
class Utterance:
    name: str
    speaker: str
    language: str
    text: str
    prompt_id: str | None
    split: str  # "train" | "heldout"
    wav16k: np.ndarray  # [N] float32, [-1, 1]
    wav_path: str = ""


def read_prompts(path: str | os.PathLike) -> dict[tuple[str, str], tuple[str, str]]:
    """prompts.tsv (prompt_id, language, split, text; header line) → {(language, text): (id, split)}."""
    out = {}
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[:4] != ["prompt_id", "language", "split", "text"]:
            raise ValueError(f"{path}:1: expected the header prompt_id, language, split, text; got {header}")
        for number, line in enumerate(f, start=2):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 4 or fields[2] not in ("train", "heldout"):
                raise ValueError(f"{path}:{number}: expected 4 tab-separated fields with split train|heldout")
            out[(fields[1], fields[3].strip())] = (fields[0], fields[2])
    return out


def load_corpus(list_path: str | os.PathLike, prompts_path: str | os.PathLike | None = None) -> list[Utterance]:
    """Every utterance of a list file at 16 kHz, with its prompt id and split from prompts.tsv.

    Without `prompts_path`, `prompts.tsv` beside the list file is used if present; lines whose
    text is not in it count as "train". The audio is loaded as `gsv_edu.audio.load_audio` gives it.
    """
    lf = read_list(list_path)
    if lf.problems:
        raise ValueError("list file problems:\n" + "\n".join(str(p) for p in lf.problems))
    if prompts_path is None and (Path(list_path).parent / "prompts.tsv").is_file():
        prompts_path = Path(list_path).parent / "prompts.tsv"
    prompts = read_prompts(prompts_path) if prompts_path is not None else {}
    out = []
    for item in lf.items:
        pid, split = prompts.get((item.language, item.text), (None, "train"))
        out.append(Utterance(item.name, item.speaker, item.language, item.text, pid, split,
                             audio.load_audio(item.wav_path, audio.HUBERT_SR), item.wav_path))
    return out


def make_targets(utterances: list[np.ndarray], cfg: PretrainConfig, teacher: HuBERT | None = None,
                 teacher_layer: int | None = None) -> tuple[list[np.ndarray], torch.Tensor]:
    """Iteration 1 (no teacher): k-means on MFCC+Δ+ΔΔ; iteration 2: k-means on a teacher's hidden states."""
    if teacher is None:
        frames = [T.mfcc(y, normalize=cfg.mfcc_normalize) for y in utterances]  # [T_i, 39]
    else:
        frames = [T.model_features(teacher, y, teacher_layer) for y in utterances]  # [T_i, H]
    return T.cluster_targets(frames, cfg.num_clusters, cfg.kmeans_iters, cfg.seed)


def plot_history(history: list[dict], path: str | os.PathLike, title: str = "HuBERT pretraining") -> bool:
    """Loss and target-accuracy curves as PNG (False if matplotlib is not installed)."""
    try:  # deferred: matplotlib is an optional dependency (the dev extra)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    steps = np.array([h["step"] for h in history])
    loss = np.array([h["loss"] for h in history])
    acc = np.array([h["acc"] for h in history])
    k = max(1, len(steps) // 50)
    smooth = lambda v: np.convolve(v, np.ones(k) / k, mode="valid")  # noqa: E731
    fig = Figure(figsize=(6, 3.2), dpi=100)  # drawn off-screen, without pyplot: the process's backend is untouched
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(steps, loss, color="tab:blue", alpha=0.25, lw=0.8)
    ax.plot(steps[k - 1:], smooth(loss), color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (cross-entropy)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(steps[k - 1:], smooth(acc), color="tab:orange", label="masked frames")
    if "acc_unmasked" in history[0]:
        unmasked = np.array([h["acc_unmasked"] for h in history])
        ax2.plot(steps[k - 1:], smooth(unmasked), color="tab:orange", ls="--", label="unmasked frames")
    ax2.set_ylabel("target accuracy", color="tab:orange")
    ax2.set_ylim(0, 1)
    ax2.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    return True


def run(list_path: str | os.PathLike, out_dir: str | os.PathLike, cfg: PretrainConfig | None = None, *,
        prompts_path: str | os.PathLike | None = None, teacher: str | os.PathLike | None = None,
        teacher_layer: int | None = None, export_layers: int | None = None, resume: bool = True,
        progress: bool = True, dtype: torch.dtype = torch.float32) -> PretrainResult:
    """Targets → pretraining → export, from a list file; held-out prompts are left out.

    Writes into `out_dir`: `targets.pt` (computed once, reused on resume), `checkpoint.pt`,
    `history.json`, `loss.png`, and `model/` (config.json + model.safetensors, the HF format
    `HuBERT.from_pretrained` reads), truncated to `export_layers` transformer layers if given
    (then `model_full/` keeps every layer).
    """
    cfg = cfg or PretrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = [u for u in load_corpus(list_path, prompts_path) if u.split == "train"]
    wavs = [u.wav16k for u in corpus]
    targets_path = out / TARGETS
    meta = {"config": dataclasses.asdict(cfg), "names": [u.name for u in corpus],
            "teacher": str(teacher) if teacher else None, "teacher_layer": teacher_layer}
    labels = None
    if targets_path.is_file() and resume:
        saved = torch.load(targets_path, map_location="cpu", weights_only=True)
        same = {k: saved["meta"].get(k) for k in ("names", "teacher", "teacher_layer")} == \
            {k: meta[k] for k in ("names", "teacher", "teacher_layer")}
        if same and saved["meta"]["config"]["num_clusters"] == cfg.num_clusters:
            labels = [t.numpy() for t in saved["labels"]]
    if labels is None:
        teacher_model = HuBERT.from_pretrained(teacher) if teacher else None
        t0 = time.perf_counter()
        labels, centroids = make_targets(wavs, cfg, teacher_model, teacher_layer)
        meta["seconds"] = time.perf_counter() - t0
        atomic_save({"meta": meta, "labels": [torch.from_numpy(t) for t in labels], "centroids": centroids},
                    targets_path)
    result = pretrain(wavs, labels, cfg, out, resume=resume, progress=progress)
    atomic_write_text(out / HISTORY, json.dumps(result.history) + "\n")
    plot_history(result.history, out / "loss.png")
    model = result.model
    if export_layers is not None:
        model.save_pretrained(out / (MODEL_DIR + "_full"), dtype=dtype)  # every layer, for layer studies
        model = truncate(model, export_layers)
    model.save_pretrained(out / MODEL_DIR, dtype=dtype)
    return result


def truncate(model: HuBERT, num_layers: int) -> HuBERT:
    """A copy of `model` keeping only its first `num_layers` transformer layers (eval mode).

    Its last hidden state equals the original's hidden state after `num_layers` layers, so a
    middle layer can be shipped as "the" output (what SoVITS reads).
    """
    if not 1 <= num_layers <= model.config.num_hidden_layers:
        raise ValueError(f"truncate: num_layers must be in 1..{model.config.num_hidden_layers}, got {num_layers}")
    cfg = dataclasses.replace(model.config, num_hidden_layers=num_layers)
    small = HuBERT(cfg)
    sd = {k: v for k, v in model.state_dict().items()
          if not (k.startswith("encoder.layers.") and int(k.split(".")[2]) >= num_layers)}
    small.load_state_dict(sd)
    return small.eval()
