"""The residual vector quantizer that turns HuBERT features into the 25 Hz semantic tokens.

Mirrors `GPT_SoVITS/module/quantize.py · ResidualVectorQuantizer` and `GPT_SoVITS/module/core_vq.py ·
EuclideanCodebook, VectorQuantization, ResidualVectorQuantization @48b1a01`. That code comes from
EnCodec (Défossez et al. 2022, "High Fidelity Neural Audio Compression"), itself after SoundStream
(Zeghidour et al. 2021) and VQ-VAE (van den Oord et al. 2017): the codebook is learned with
exponential moving averages (EMA) of the assigned vectors instead of gradients, initialised by
k-means on the first batch, and codes that are no longer used ("dead" codes) are replaced by random
batch vectors.

In SoVITS the quantizer has a single layer of 1024 codes of dimension 768 and is frozen in all
released configs (`GPT_SoVITS/module/models.py · SynthesizerTrn.forward @48b1a01` puts it in eval
mode), so only `encode`/`decode` and the eval forward matter for the released models. The training
path is implemented to the official numbers all the same (fixture `rvq_train_expiry.pt`: five
official training steps with dead codes at every step).

One training step of a codebook (`GPT_SoVITS/module/core_vq.py · EuclideanCodebook.forward @48b1a01`):
1. k-means initialisation if the codebook is fresh (in any mode), on the frames of all ranks;
2. codes and quantized vectors from the codebook *as it is before this step*;
3. EMA update: per-code counts and vector sums of the batch (summed over all ranks), then
   `embed = embed_avg / smoothed count` for every code (VQ-VAE appendix, the equations core_vq's
   comments call (6)–(8));
4. dead-code expiry: the codes whose EMA count is now below `threshold_ema_dead_code` get fresh
   vectors drawn from the batch (frames of all ranks), exactly as many as there are dead codes,
   written into `embed` only. `embed_avg` and `cluster_size` keep their values, so a fresh vector
   lives until the next step's EMA update recomputes `embed` from them.

Distributed training. With a `torch.distributed` process group of world size > 1, every rank
applies the same update: counts and sums are all-reduced (summed) before the EMA; k-means and the
expiry draw from the frames gathered from all ranks (each rank contributes as many frames as the
rank with the fewest has, like `GPT_SoVITS/module/ddp_utils.py · SyncFunction.forward @48b1a01`);
rank 0 alone draws the random numbers and broadcasts its result, and after an initialisation or an
expiry all buffers are broadcast from rank 0. So a run on R ranks equals one process on the
gathered batch with rank 0's random stream.

Differences from the official code (`GPT_SoVITS/module/core_vq.py · EuclideanCodebook.init_embed_,
EuclideanCodebook.expire_codes_ @48b1a01`), none of which changes a number:
- no process group: the official calls `dist.get_rank()`/`dist.broadcast` unconditionally and fails
  (k-means of a fresh codebook, or an expiry); here the process is rank 0 of a world of one, which
  gives exactly what a single-process gloo group gives;
- k-means on several ranks: the official broadcasts rank 0's integer counts into float buffers on
  the other ranks, which gloo rejects (a size mismatch, measured at 48b1a01); here the counts are
  converted to float before the broadcast;
- k-means means: the official averages each cluster in a Python loop; here one `index_add_` sums
  them (the same means up to float32 rounding).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

KMEANS_MAX_SAMPLES = 10_000  # k-means initialisation uses at most this many frames of the batch
KMEANS_CHUNK = 64  # k-means assigns frames to means in chunks of this many rows (as the official)


# --- process group -------------------------------------------------------------------------------

def _group_initialised() -> bool:
    return dist.is_available() and dist.is_initialized()


def _world_size() -> int:
    """Number of ranks; 1 without a process group."""
    return dist.get_world_size() if _group_initialised() else 1


def _rank() -> int:
    """This process's rank; 0 without a process group."""
    return dist.get_rank() if _group_initialised() else 0


def _gather_frames(x: torch.Tensor) -> torch.Tensor:
    """Frames x [N, D] of every rank, rank after rank → [R·n_min, D]; x itself on a single rank.

    Each rank contributes its first n_min rows, n_min being the smallest N among the ranks (what
    the official SyncFunction gathers). Every rank receives the same tensor.
    """
    world = _world_size()
    if world == 1:
        return x
    n = torch.tensor([x.size(0)], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    n_min = min(int(s.item()) for s in sizes)
    parts = [torch.empty(n_min, *x.shape[1:], dtype=x.dtype, device=x.device) for _ in range(world)]
    dist.all_gather(parts, x[:n_min].contiguous())
    return torch.cat(parts)  # [R·n_min, D]


def _broadcast_buffers(module: nn.Module) -> None:
    """Copy rank 0's floating-point buffers to every rank (nothing to do on a single rank)."""
    if _world_size() == 1:
        return
    for buf in module.buffers():
        if buf.is_floating_point():
            dist.broadcast(buf, src=0)


# --- sampling and k-means ------------------------------------------------------------------------

def sample_vectors(samples: torch.Tensor, num: int) -> torch.Tensor:
    """`num` random rows of samples [N, D]: without replacement if N ≥ num, else with replacement.

    The random calls are part of the numbers: `randperm(N)` if N ≥ num, else `randint(0, N, (num,))`.
    """
    n = samples.size(0)
    if n >= num:
        indices = torch.randperm(n, device=samples.device)[:num]  # [num]
    else:
        indices = torch.randint(0, n, (num,), device=samples.device)  # [num]
    return samples[indices]  # [num, D]


def kmeans(samples: torch.Tensor, num_clusters: int, num_iters: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on samples [N, D] → (means [K, D], counts [K] of the last assignment).

    At most KMEANS_MAX_SAMPLES random rows are used; the means start from random samples (drawn
    with replacement when N < K, so some start equal); a cluster that receives no sample keeps
    its previous mean. The counts are those of the last assignment, made before the last update
    of the means.
    """
    if samples.size(0) > KMEANS_MAX_SAMPLES:
        samples = sample_vectors(samples, KMEANS_MAX_SAMPLES)  # [N', D]
    means = sample_vectors(samples, num_clusters)  # [K, D]
    bins = torch.zeros(num_clusters, dtype=torch.long, device=samples.device)
    for _ in range(num_iters):
        # Nearest mean by Euclidean distance (first index on ties), chunk by chunk as the official.
        buckets = torch.cat([torch.cdist(chunk, means, p=2).argmin(dim=1)
                             for chunk in samples.split(KMEANS_CHUNK)])  # [N]
        bins = torch.bincount(buckets, minlength=num_clusters)  # [K]
        empty = bins == 0
        sums = torch.zeros_like(means).index_add_(0, buckets, samples)  # [K, D]
        new_means = sums / bins.masked_fill(empty, 1).unsqueeze(1).to(samples.dtype)  # [K, D]
        means = torch.where(empty.unsqueeze(1), means, new_means)
    return means, bins


class EuclideanCodebook(nn.Module):
    """A codebook of `codebook_size` vectors of size `dim`, learned by EMA; nearest-neighbour lookup.

    Buffers only (no parameters): `inited` [1], `cluster_size` [K] (EMA of the code counts),
    `embed` [K, D] (the codewords), `embed_avg` [K, D] (EMA of the sums of assigned vectors).
    """

    def __init__(self, dim: int, codebook_size: int, kmeans_init: bool = False, kmeans_iters: int = 10,
                 decay: float = 0.99, epsilon: float = 1e-5, threshold_ema_dead_code: int = 2):
        super().__init__()
        self.dim = dim
        self.codebook_size = codebook_size
        self.kmeans_iters = kmeans_iters
        self.decay = decay
        self.epsilon = epsilon
        self.threshold_ema_dead_code = threshold_ema_dead_code
        if kmeans_init:
            embed = torch.zeros(codebook_size, dim)  # filled by k-means on the first batch
        else:
            embed = nn.init.kaiming_uniform_(torch.empty(codebook_size, dim))
        self.register_buffer("inited", torch.tensor([float(not kmeans_init)]))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())

    # --- initialisation and dead codes -------------------------------------------------------
    @torch.no_grad()
    def init_embed_(self, data: torch.Tensor, gather: bool = True) -> None:
        """k-means initialisation from data [N, D] (this rank's frames) if not done yet.

        The frames of all ranks are gathered (official); rank 0 computes k-means and broadcasts it.
        `gather=False`: `data` already holds every frame to fit, the same on every rank (the whole
        corpus, `gsv_edu.train.codebook`), and rank 0 fits it alone, with nothing trimmed.
        Official quirk (from EnCodec's core_vq, kept for the numbers): `embed_avg` is set to the
        means while `cluster_size` gets the counts, although the EMA treats embed_avg as a *sum*
        (embed = embed_avg / count). The first EMA updates therefore shrink each codeword towards
        zero by about its count, and a code with count 0 gets embed_avg / ε-smoothed count. Such
        codes are dead, and the expiry after the EMA update replaces them in `embed` with batch
        vectors (book chapter 03 follows it step by step).
        """
        if self.inited.item():
            return
        if gather:
            data = _gather_frames(data)  # [R·n_min, D]
        if _rank() == 0:
            embed, cluster_size = kmeans(data, self.codebook_size, self.kmeans_iters)
            cluster_size = cluster_size.to(self.cluster_size.dtype)  # integer counts → float buffer
        else:
            embed = torch.empty_like(self.embed)
            cluster_size = torch.empty_like(self.cluster_size)
        if _group_initialised():
            dist.broadcast(embed, src=0)
            dist.broadcast(cluster_size, src=0)
        self.embed.copy_(embed)
        self.embed_avg.copy_(embed)
        self.cluster_size.copy_(cluster_size)
        self.inited.fill_(1.0)
        _broadcast_buffers(self)

    @torch.no_grad()
    def expire_codes_(self, batch_samples: torch.Tensor) -> None:
        """Give the codes whose EMA count is below the threshold fresh vectors from the batch.

        batch_samples [N, D] are this rank's frames; the frames of all ranks are gathered. Rank 0
        draws exactly one vector per dead code (`sample_vectors(frames, n_dead)`) and broadcasts
        them; they are written into `embed` in code order. `embed_avg` and `cluster_size` are not
        touched, so the next EMA update recomputes these codewords from them.
        """
        if self.threshold_ema_dead_code == 0:
            return
        expired = self.cluster_size < self.threshold_ema_dead_code  # [K] bool, identical on every rank
        n_expired = int(expired.sum().item())
        if n_expired == 0:
            return
        frames = _gather_frames(batch_samples)  # [R·n_min, D]
        if _rank() == 0:
            fresh = sample_vectors(frames, n_expired)  # [n_expired, D]
        else:
            fresh = torch.zeros(n_expired, self.dim, dtype=self.embed.dtype, device=self.embed.device)
        if _group_initialised():
            dist.broadcast(fresh, src=0)
        self.embed[expired] = fresh
        _broadcast_buffers(self)

    # --- lookup ------------------------------------------------------------------------------
    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, D] → index of the nearest codeword [N] (argmax of the negative squared distance)."""
        embed = self.embed.t()  # [D, K]
        neg_dist = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ embed + embed.pow(2).sum(0, keepdim=True))  # [N, K]
        return neg_dist.max(dim=-1).indices  # [N]

    def dequantize(self, embed_ind: torch.Tensor) -> torch.Tensor:
        """Indices [...] → codewords [..., D]."""
        return F.embedding(embed_ind, self.embed)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, D] → codes [B, T] (never triggers the k-means initialisation)."""
        return self.quantize(x.reshape(-1, x.size(-1))).view(*x.shape[:-1])

    def decode(self, embed_ind: torch.Tensor) -> torch.Tensor:
        """Codes [B, T] → [B, T, D]."""
        return self.dequantize(embed_ind)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, D] → (quantized [B, T, D], codes [B, T]).

        In training mode the codebook then learns from the batch: EMA update, then dead-code
        expiry. Codes and quantized values use the codebook as it was *before* this call.
        """
        flat = x.reshape(-1, x.size(-1))  # [N, D], time-major flattening of [B, T]
        self.init_embed_(flat.detach())  # k-means on the first batch, in any mode (as the official)
        embed_ind = self.quantize(flat)  # [N]
        quantize = self.dequantize(embed_ind).view_as(x)  # [B, T, D]
        if self.training:
            self._ema_update(flat.detach(), embed_ind)
            # After the EMA the buffers are identical on every rank, so every rank finds the
            # same dead codes.
            self.expire_codes_(flat.detach())
        return quantize, embed_ind.view(*x.shape[:-1])  # [B, T, D], [B, T]

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, embed_ind: torch.Tensor) -> None:
        """EMA codebook update from the batch vectors flat [N, D] and their codes [N]."""
        onehot = F.one_hot(embed_ind, self.codebook_size).to(flat.dtype)  # [N, K]
        counts = onehot.sum(0)  # [K]
        embed_sum = flat.t() @ onehot  # [D, K]
        if _world_size() > 1:
            # Sum the statistics of the whole global batch, so every rank applies the same update.
            dist.all_reduce(counts)
            dist.all_reduce(embed_sum)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(embed_sum.t(), alpha=1 - self.decay)
        # Laplace-smoothed counts, rescaled to the total n: (c + ε) / (n + K·ε) · n.
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (n + self.codebook_size * self.epsilon) * n  # [K]
        self.embed.copy_(self.embed_avg / smoothed.unsqueeze(1))  # [K, D]


class VectorQuantization(nn.Module):
    """One quantizer layer on [B, D, T] tensors: codebook lookup, straight-through, commitment loss.

    The official class also has `project_in`/`project_out`, which are identities when the
    codebook dimension equals the input dimension (always the case in SoVITS); they are omitted.
    """

    def __init__(self, dim: int, codebook_size: int, decay: float = 0.99, epsilon: float = 1e-5,
                 kmeans_init: bool = True, kmeans_iters: int = 50, threshold_ema_dead_code: int = 2,
                 commitment_weight: float = 1.0):
        super().__init__()
        self._codebook = EuclideanCodebook(dim, codebook_size, kmeans_init=kmeans_init,
                                           kmeans_iters=kmeans_iters, decay=decay, epsilon=epsilon,
                                           threshold_ema_dead_code=threshold_ema_dead_code)
        self.codebook_size = codebook_size
        self.commitment_weight = commitment_weight

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, D, T] → codes [B, T]."""
        return self._codebook.encode(x.transpose(1, 2))

    def decode(self, embed_ind: torch.Tensor) -> torch.Tensor:
        """codes [B, T] → [B, D, T]."""
        return self._codebook.decode(embed_ind).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, D, T] → (quantized [B, D, T], codes [B, T], loss [1])."""
        x = x.transpose(1, 2)  # [B, T, D]
        quantize, embed_ind = self._codebook(x)
        loss = torch.zeros(1, device=x.device, requires_grad=self.training)  # [1]
        if self.training:
            # Straight-through estimator: the value of quantize, the gradient of x.
            quantize = x + (quantize - x).detach()
            if self.commitment_weight > 0:
                # Commitment loss only (the codebook itself is learned by EMA, not by gradient).
                loss = loss + F.mse_loss(quantize.detach(), x) * self.commitment_weight
        return quantize.transpose(1, 2), embed_ind, loss  # [B, D, T]


class ResidualVectorQuantization(nn.Module):
    """Layers quantize what the previous ones left: r₀ = x, q_i = VQ_i(r_i), r_{i+1} = r_i − q_i; out Σ q_i."""

    def __init__(self, *, num_quantizers: int, **kwargs):
        super().__init__()
        self.layers = nn.ModuleList([VectorQuantization(**kwargs) for _ in range(num_quantizers)])

    def forward(self, x: torch.Tensor, n_q: int | None = None, layers: list[int] | None = None):
        """x [B, D, T] → (quantized [B, D, T], codes [n_q, B, T], losses [n_q, 1], per-layer list)."""
        quantized_out = torch.zeros_like(x)
        residual = x
        all_losses, all_indices, out_quantized = [], [], []
        n_q = n_q or len(self.layers)
        for i, layer in enumerate(self.layers[:n_q]):
            quantized, indices, loss = layer(residual)
            residual = residual - quantized
            quantized_out = quantized_out + quantized
            all_indices.append(indices)
            all_losses.append(loss)
            if layers and i in layers:
                out_quantized.append(quantized)
        return quantized_out, torch.stack(all_indices), torch.stack(all_losses), out_quantized

    def encode(self, x: torch.Tensor, n_q: int | None = None, st: int | None = None) -> torch.Tensor:
        """x [B, D, T] → codes [n_q − st, B, T] of layers st … n_q − 1."""
        residual = x
        all_indices = []
        n_q = n_q or len(self.layers)
        st = st or 0
        for layer in self.layers[st:n_q]:
            indices = layer.encode(residual)  # [B, T]
            residual = residual - layer.decode(indices)
            all_indices.append(indices)
        return torch.stack(all_indices)

    def decode(self, q_indices: torch.Tensor, st: int = 0) -> torch.Tensor:
        """codes [n, B, T] of layers st … st + n − 1 → Σ codewords [B, D, T]."""
        if q_indices.dim() != 3 or st + q_indices.size(0) > len(self.layers):
            raise ValueError(f"decode: codes must be [n_q, B, T] with n_q ≤ {len(self.layers) - st} "
                             f"(quantizer layer first), got {tuple(q_indices.shape)}; codes from "
                             "SynthesizerTrn.extract_latent are [B, n_q, T]: transpose(0, 1) them first")
        quantized_out = None
        for i, indices in enumerate(q_indices):
            quantized = self.layers[st + i].decode(indices)  # [B, D, T]
            quantized_out = quantized if quantized_out is None else quantized_out + quantized
        return quantized_out


class ResidualVectorQuantizer(nn.Module):
    """The SoVITS `quantizer`: residual VQ with `n_q` layers of `bins` codes of size `dimension`.

    State-dict keys: `vq.layers.{i}._codebook.{inited,cluster_size,embed,embed_avg}`.
    """

    def __init__(self, dimension: int = 768, n_q: int = 1, bins: int = 1024, decay: float = 0.99,
                 kmeans_init: bool = True, kmeans_iters: int = 50, threshold_ema_dead_code: int = 2):
        super().__init__()
        self.n_q = n_q
        self.dimension = dimension
        self.bins = bins
        self.decay = decay
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        self.threshold_ema_dead_code = threshold_ema_dead_code
        self.vq = ResidualVectorQuantization(
            dim=dimension, codebook_size=bins, num_quantizers=n_q, decay=decay, kmeans_init=kmeans_init,
            kmeans_iters=kmeans_iters, threshold_ema_dead_code=threshold_ema_dead_code)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.size(1) != self.dimension:
            raise ValueError(f"ResidualVectorQuantizer: expected x of shape [B, {self.dimension}, T], "
                             f"got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor, n_q: int | None = None, layers: list[int] | None = None):
        """x [B, D, T] → (quantized [B, D, T], codes [n_q, B, T], commit_loss (scalar), quantized_list).

        `n_q` limits the number of layers used; `layers` lists the layers whose individual
        quantized outputs are returned in `quantized_list`.
        """
        self._check_input(x)
        n_q = n_q if n_q else self.n_q
        if layers and max(layers) >= n_q:
            raise ValueError(f"ResidualVectorQuantizer: layers {layers} asked for, but only {n_q} "
                             f"layers are used (n_q={n_q})")
        quantized, codes, commit_loss, quantized_list = self.vq(x, n_q=n_q, layers=layers)
        return quantized, codes, torch.mean(commit_loss), quantized_list

    def encode(self, x: torch.Tensor, n_q: int | None = None, st: int | None = None) -> torch.Tensor:
        """x [B, D, T] → codes [n_q, B, T] (layers st … n_q − 1)."""
        self._check_input(x)
        n_q = n_q if n_q else self.n_q
        return self.vq.encode(x, n_q=n_q, st=st or 0)

    def decode(self, codes: torch.Tensor, st: int = 0) -> torch.Tensor:
        """codes [n_q, B, T] (quantizer layer first) → [B, D, T]."""
        if codes.dim() != 3:
            raise ValueError(f"ResidualVectorQuantizer.decode: expected codes [n_q, B, T], got {tuple(codes.shape)}")
        return self.vq.decode(codes, st=st)
