"""The four loss terms of SoVITS training besides the mel L1: GAN, feature matching and KL.

Mirrors `GPT_SoVITS/module/losses.py · discriminator_loss, generator_loss, feature_loss, kl_loss
@48b1a01`. The GAN losses are the least squares GAN of Mao et al. 2017 (as in HiFi-GAN), the
feature-matching loss is from Larsen et al. 2016 / MelGAN, and the KL term is the VITS one
between the flowed posterior sample and the prior. Every input is cast to float32 first, so
the losses stay in fp32 under mixed precision.
"""
from __future__ import annotations

import torch


def feature_loss(fmap_r: list[list[torch.Tensor]], fmap_g: list[list[torch.Tensor]]) -> torch.Tensor:
    """2 · Σ_discriminators Σ_layers mean |real map − generated map| (real maps detached)."""
    loss = 0
    for dr, dg in zip(fmap_r, fmap_g):
        for rl, gl in zip(dr, dg):
            rl = rl.float().detach()
            gl = gl.float()
            loss = loss + torch.mean(torch.abs(rl - gl))
    return loss * 2


def discriminator_loss(disc_real_outputs: list[torch.Tensor], disc_generated_outputs: list[torch.Tensor]):
    """LSGAN discriminator loss Σ_k [mean((1 − D_k(y))²) + mean(D_k(ŷ)²)].

    Returns (loss, r_losses, g_losses); the per-discriminator terms are detached 0-d tensors
    for logging (the official code returns Python floats via `.item()`, which forces a
    device synchronisation per term; values are the same).
    """
    loss = 0
    r_losses, g_losses = [], []
    for dr, dg in zip(disc_real_outputs, disc_generated_outputs):
        dr = dr.float()
        dg = dg.float()
        r_loss = torch.mean((1 - dr) ** 2)
        g_loss = torch.mean(dg ** 2)
        loss = loss + (r_loss + g_loss)
        r_losses.append(r_loss.detach())
        g_losses.append(g_loss.detach())
    return loss, r_losses, g_losses


def generator_loss(disc_outputs: list[torch.Tensor]):
    """LSGAN generator loss Σ_k mean((1 − D_k(ŷ))²); returns (loss, per-discriminator terms)."""
    loss = 0
    gen_losses = []
    for dg in disc_outputs:
        dg = dg.float()
        l_k = torch.mean((1 - dg) ** 2)
        gen_losses.append(l_k)
        loss = loss + l_k
    return loss, gen_losses


def kl_loss(z_p: torch.Tensor, logs_q: torch.Tensor, m_p: torch.Tensor, logs_p: torch.Tensor,
            z_mask: torch.Tensor) -> torch.Tensor:
    """KL(q ‖ p) estimated at the sample: Σ[(logs_p − logs_q − ½ + ½(z_p − m_p)²·e^(−2·logs_p))·mask] / Σ mask.

    z_p, logs_q, m_p, logs_p: [B, I, T] (z_p = flow(z), logs_q of the posterior, m_p/logs_p of
    the prior); z_mask [B, 1, T]. Note the normaliser counts frames (Σ mask over [B, 1, T]),
    not frames × channels, as in the official code.
    """
    z_p = z_p.float()
    logs_q = logs_q.float()
    m_p = m_p.float()
    logs_p = logs_p.float()
    z_mask = z_mask.float()

    kl = logs_p - logs_q - 0.5  # [B, I, T]
    kl = kl + 0.5 * ((z_p - m_p) ** 2) * torch.exp(-2.0 * logs_p)
    kl = torch.sum(kl * z_mask)
    return kl / torch.sum(z_mask)
