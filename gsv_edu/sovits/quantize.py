"""The residual vector quantizer that turns HuBERT features into the 25 Hz semantic tokens.

Mirrors `GPT_SoVITS/module/quantize.py` (`ResidualVectorQuantizer`) and `module/core_vq.py`
(`EuclideanCodebook`, `VectorQuantization`, `ResidualVectorQuantization`), reference §4. That
code comes from EnCodec (Défossez et al. 2022, "High Fidelity Neural Audio Compression"),
itself after SoundStream (Zeghidour et al. 2021) and VQ-VAE (van den Oord et al. 2017): the
codebook is learned with exponential moving averages (EMA) of the assigned vectors instead of
gradients, initialised by k-means on the first batch, and codes that are no longer used
("dead" codes) are replaced by random batch vectors.

In SoVITS the quantizer has a single layer of 1024 codes of dimension 768 and is frozen in all
released configs (it is always run in eval mode, reference §13.2), so only `encode`/`decode`
and the eval forward matter for the released models; the training path (EMA, k-means,
expiry, commitment loss) is implemented and tested for completeness.

Distributed training. The codebook statistics must stay identical on every rank. When a
`torch.distributed` process group is initialised, this module
- computes the k-means initialisation on rank 0 and broadcasts it,
- all-reduces (sums) the per-code counts and vector sums before the EMA update, so every rank
  applies the update of the whole global batch (equal to one process seeing all the data),
- draws the replacement vectors of expired codes on rank 0 and broadcasts them.
Without a process group it simply works on the local batch. Difference from the official code
(reference §13.3): the official `EuclideanCodebook` calls `dist.get_rank()`/`dist.broadcast`
unconditionally and crashes outside torch.distributed (k-means init of a fresh model, or a
dead-code expiry), and it does not all-reduce the EMA statistics.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

KMEANS_MAX_SAMPLES = 10_000  # k-means initialisation uses at most this many frames of the batch


def _distributed() -> bool:
    """True when a torch.distributed process group is initialised (then statistics are synced)."""
    return dist.is_available() and dist.is_initialized()


def _is_rank0() -> bool:
    return not _distributed() or dist.get_rank() == 0


def sample_vectors(samples: torch.Tensor, num: int) -> torch.Tensor:
    """`num` random rows of samples [N, D]: without replacement if N ≥ num, else with replacement."""
    n = samples.size(0)
    if n >= num:
        indices = torch.randperm(n, device=samples.device)[:num]  # [num]
    else:
        indices = torch.randint(0, n, (num,), device=samples.device)  # [num]
    return samples[indices]  # [num, D]


def _squared_distances(x: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
    """‖x_n − e_k‖² for x [N, D], embed [K, D], via ‖x‖² − 2·x·e + ‖e‖² → [N, K]."""
    return x.pow(2).sum(1, keepdim=True) - 2 * x @ embed.t() + embed.pow(2).sum(1).unsqueeze(0)


def kmeans(samples: torch.Tensor, num_clusters: int, num_iters: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on samples [N, D] → (means [K, D], counts [K] of the last assignment).

    At most KMEANS_MAX_SAMPLES random rows are used; the means start from random samples;
    a cluster that receives no sample keeps its previous mean. (Distances are computed by
    expansion, which needs N×K memory instead of the N×K×D of a broadcast difference.)
    """
    if samples.size(0) > KMEANS_MAX_SAMPLES:
        samples = sample_vectors(samples, KMEANS_MAX_SAMPLES)  # [N', D]
    means = sample_vectors(samples, num_clusters)  # [K, D]
    bins = torch.zeros(num_clusters, dtype=torch.long, device=samples.device)
    for _ in range(num_iters):
        buckets = (-_squared_distances(samples, means)).max(dim=-1).indices  # [N], nearest mean
        bins = torch.bincount(buckets, minlength=num_clusters)  # [K]
        empty = bins == 0
        new_means = torch.zeros_like(means).index_add_(0, buckets, samples)  # [K, D], sums
        new_means = new_means / bins.masked_fill(empty, 1).unsqueeze(1).to(samples.dtype)
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
    def init_embed_(self, data: torch.Tensor) -> None:
        """k-means initialisation from data [N, D] if not done yet (rank 0 computes, all receive).

        Official quirk (from EnCodec's core_vq, kept for the numbers): `embed_avg` is set to the
        means while `cluster_size` gets the counts, although the EMA treats embed_avg as a *sum*
        (embed = embed_avg / count). The first EMA updates therefore shrink each codeword by about
        its count, and a code with count 0 is divided by ε and explodes; with the overwritten
        dead-code expiry (see `_ema_update`) such codes are lost for good. Only matters when an
        unfrozen quantizer is trained, which no released config does (book chapter 03 measures it).
        """
        if self.inited.item():
            return
        if _is_rank0():
            embed, cluster_size = kmeans(data, self.codebook_size, self.kmeans_iters)
        else:
            embed = torch.empty_like(self.embed)
            cluster_size = torch.empty_like(self.cluster_size)
        cluster_size = cluster_size.to(self.cluster_size.dtype)
        if _distributed():
            dist.broadcast(embed, src=0)
            dist.broadcast(cluster_size, src=0)
        self.embed.copy_(embed)
        self.embed_avg.copy_(embed)
        self.cluster_size.copy_(cluster_size)
        self.inited.fill_(1.0)

    @torch.no_grad()
    def expire_codes_(self, batch_samples: torch.Tensor) -> None:
        """Replace the codewords whose EMA count fell below the threshold by random batch vectors.

        batch_samples [N, D]. `embed_avg` and `cluster_size` are not touched. The replacement
        vectors are drawn on rank 0 and broadcast, so every rank makes the same replacement.
        """
        if self.threshold_ema_dead_code == 0:
            return
        expired = self.cluster_size < self.threshold_ema_dead_code  # [K] bool, identical on every rank
        if not torch.any(expired):
            return
        if _is_rank0():
            replacement = sample_vectors(batch_samples, self.codebook_size)  # [K, D]
        else:
            replacement = torch.empty_like(self.embed)
        if _distributed():
            dist.broadcast(replacement, src=0)
        self.embed.copy_(torch.where(expired.unsqueeze(1), replacement, self.embed))

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
        """x [B, T, D] → (quantized [B, T, D], codes [B, T]); in training mode also updates the EMA.

        Codes and quantized values always use the codebook as it was *before* this call's update.
        """
        flat = x.reshape(-1, x.size(-1))  # [N, D], time-major flattening of [B, T]
        self.init_embed_(flat.detach())  # k-means on the first batch, in any mode (as the official)
        embed_ind = self.quantize(flat)  # [N]
        quantize = self.dequantize(embed_ind).view_as(x)  # [B, T, D]
        embed_ind = embed_ind.view(*x.shape[:-1])  # [B, T]
        if self.training:
            self._ema_update(flat.detach(), embed_ind.reshape(-1))
        return quantize, embed_ind

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, embed_ind: torch.Tensor) -> None:
        """EMA codebook update from the batch vectors flat [N, D] and their codes [N]."""
        # Official order (from EnCodec): dead codes are expired first, then the EMA update
        # recomputes every codeword as embed_avg / smoothed count. Official quirk: that
        # recomputation overwrites the replacement just written, so in the official code (and
        # here) the expiry changes no buffer; it only consumes random numbers (EnCodec issue #61).
        self.expire_codes_(flat)
        onehot = F.one_hot(embed_ind, self.codebook_size).to(flat.dtype)  # [N, K]
        counts = onehot.sum(0)  # [K]
        embed_sum = flat.t() @ onehot  # [D, K]
        if _distributed():
            # Sum the statistics of the whole global batch, so every rank applies the same update.
            dist.all_reduce(counts)
            dist.all_reduce(embed_sum)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(embed_sum.t(), alpha=1 - self.decay)
        # Laplace-smoothed counts, rescaled to the total n: (c + ε) / (n + K·ε) · n.
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (n + self.codebook_size * self.epsilon) * n  # [K]
        self.embed.copy_(self.embed_avg / smoothed.unsqueeze(1))


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
