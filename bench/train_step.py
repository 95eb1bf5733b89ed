"""Speed of one fp32 SoVITS training step at the official v2 size on the CPU, ours against a plain
implementation of the same models.

    .venv/bin/python bench/train_step.py [--batch 2] [--seconds 4] [--repeats 3] [--threads N]

One step as in `GPT_SoVITS/s2_train.py · train_and_evaluate @48b1a01`: generator forward;
discriminator step (LSGAN loss, backward, AdamW); generator step (mel L1 ×45, KL, feature
matching, LSGAN generator loss; backward, AdamW). Official v2 sizes (configs/s2.json): SynthesizerTrn
51 M parameters, MultiPeriodDiscriminator 46.7 M; batch of `--batch` items of `--seconds` s
(random content features, spectrograms of random waveforms, 50 phonemes); 32-frame decoder
window (20480 samples). Rule weights (tests/fixtures/sovits_v2/weight_rule.py).

Two copies with identical weights are timed, interleaved, best of `--repeats`:
- `ours`  — gsv_edu as it is (own weight norm, in-place ops in the HiFi-GAN);
- `plain` — the same models with torch's legacy `torch.nn.utils.weight_norm` on every
            weight-normed conv and the HiFi-GAN forwards written without in-place ops (as the
            official code).
The losses of the two copies are printed for the first step (equal up to float rounding).
Wall time and the process's CPU time are both reported: on a shared machine the CPU time is
the steadier measure (with one thread it excludes the time other processes hold the core).
"""
from __future__ import annotations

import argparse
import os
import sys
import types
import warnings

import torch
from torch.nn import functional as F

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "sovits_v2"))
from gsv_edu.audio import mel_spectrogram, spec_to_mel, spectrogram  # noqa: E402
from gsv_edu.sovits.commons import slice_segments  # noqa: E402
from gsv_edu.sovits.hifigan import LRELU_SLOPE, Generator, ResBlock1  # noqa: E402
from gsv_edu.sovits.losses import discriminator_loss, feature_loss, generator_loss, kl_loss  # noqa: E402
from gsv_edu.sovits.weight_norm import WeightNorm, remove_weight_norm  # noqa: E402
import weight_rule  # noqa: E402
from common import official_v2, official_v2_discriminator, official_v2_generator, timed  # noqa: E402


def build_pair(cfg):
    net_g, net_d = official_v2_generator(cfg), official_v2_discriminator(cfg)
    weight_rule.fill_module(net_g)
    weight_rule.fill_module(net_d)
    return net_g.train(), net_d.train()


# --- the plain variant -----------------------------------------------------------------------

def use_torch_legacy_weight_norm(module: torch.nn.Module) -> None:
    """Replace our weight norm by torch's legacy one, keeping g and v (same keys, same values)."""
    for m in module.modules():
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, WeightNorm):
                g, v = m.weight_g.detach().clone(), m.weight_v.detach().clone()
                remove_weight_norm(m)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    torch.nn.utils.weight_norm(m, dim=hook.dim)
                with torch.no_grad():
                    m.weight_g.copy_(g)
                    m.weight_v.copy_(v)


def plain_resblock1_forward(self, x, x_mask=None):
    for c1, c2 in zip(self.convs1, self.convs2):
        xt = F.leaky_relu(x, LRELU_SLOPE)
        xt = c1(xt)
        xt = F.leaky_relu(xt, LRELU_SLOPE)
        xt = c2(xt)
        x = xt + x
    return x


def plain_generator_forward(self, x, g=None):
    x = self.conv_pre(x)
    if g is not None:
        x = x + self.cond(g)
    for i in range(self.num_upsamples):
        x = F.leaky_relu(x, LRELU_SLOPE)
        x = self.ups[i](x)
        xs = None
        for j in range(self.num_kernels):
            y = self.resblocks[i * self.num_kernels + j](x)
            xs = y if xs is None else xs + y
        x = xs / self.num_kernels
    x = F.leaky_relu(x)
    x = self.conv_post(x)
    return torch.tanh(x)


def make_plain(net_g, net_d) -> None:
    use_torch_legacy_weight_norm(net_g)
    use_torch_legacy_weight_norm(net_d)
    for m in net_g.modules():
        if isinstance(m, ResBlock1):
            m.forward = types.MethodType(plain_resblock1_forward, m)
        elif isinstance(m, Generator):
            m.forward = types.MethodType(plain_generator_forward, m)


# --- one training step -----------------------------------------------------------------------

def optimizers(net_g, net_d, train):
    kw = dict(lr=train.learning_rate, betas=train.betas, eps=train.eps)  # AdamW weight decay 0.01
    return (torch.optim.AdamW([p for p in net_g.parameters() if p.requires_grad], **kw),
            torch.optim.AdamW(net_d.parameters(), **kw))


def train_step(net_g, net_d, optim_g, optim_d, batch, cfg, seed: int):
    ssl, spec, spec_lengths, text, text_lengths, wav = batch
    train = cfg.train
    hop, segment = cfg.data.hop_length, train.segment_size
    torch.manual_seed(seed)  # the same posterior noise and slices for both variants
    y_hat, kl_ssl, ids_slice, _, z_mask, (z, z_p, m_p, logs_p, m_q, logs_q), _ = net_g(
        ssl, spec, spec_lengths, text, text_lengths)
    mel = spec_to_mel(spec)  # [B, 128, T]
    y_mel = slice_segments(mel, ids_slice, segment // hop)
    y_hat_mel = mel_spectrogram(y_hat.squeeze(1))
    y = slice_segments(wav, ids_slice * hop, segment)

    y_d_hat_r, y_d_hat_g, _, _ = net_d(y, y_hat.detach())
    loss_disc, _, _ = discriminator_loss(y_d_hat_r, y_d_hat_g)
    optim_d.zero_grad()
    loss_disc.backward()
    optim_d.step()

    y_d_hat_r, y_d_hat_g, fmap_r, fmap_g = net_d(y, y_hat)
    loss_mel = F.l1_loss(y_mel, y_hat_mel) * train.c_mel
    loss_kl = kl_loss(z_p, logs_q, m_p, logs_p, z_mask) * train.c_kl
    loss_fm = feature_loss(fmap_r, fmap_g)
    loss_gen, _ = generator_loss(y_d_hat_g)
    loss_gen_all = loss_gen + loss_fm + loss_mel + kl_ssl * 1 + loss_kl
    optim_g.zero_grad()
    loss_gen_all.backward()
    optim_g.step()
    return [round(v.item(), 5) for v in (loss_disc, loss_gen, loss_fm, loss_mel, loss_kl)]


def make_batch(batch: int, seconds: float):
    frames = int(seconds * 50) // 2 * 2  # even, as the collate pads
    gen = torch.Generator().manual_seed(0)
    wav = (0.25 * torch.randn(batch, 1, frames * 640, generator=gen)).clamp(-1, 1)  # [B, 1, N]
    spec = spectrogram(wav.squeeze(1))  # [B, 1025, frames]
    spec = spec[..., :frames]
    ssl = 0.5 * torch.randn(batch, 768, frames, generator=gen)
    text = torch.randint(1, 732, (batch, 50), generator=gen)
    lengths = torch.full((batch,), frames, dtype=torch.long)
    return ssl, spec, lengths, text, torch.full((batch,), 50, dtype=torch.long), wav


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="default: torch.get_num_threads()")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = official_v2()
    batch = make_batch(args.batch, args.seconds)

    variants = {}
    for name in ("ours", "plain"):
        net_g, net_d = build_pair(cfg)
        if name == "plain":
            make_plain(net_g, net_d)
        variants[name] = (net_g, net_d, *optimizers(net_g, net_d, cfg.train))

    times = {name: [] for name in variants}
    cpu_times = {name: [] for name in variants}
    first_losses = {}
    for step in range(args.repeats + 1):  # the first round is a warm-up
        for name, (net_g, net_d, optim_g, optim_d) in variants.items():
            result = {}
            wall, cpu = timed(lambda: result.update(losses=train_step(net_g, net_d, optim_g, optim_d, batch, cfg,
                                                                      seed=step)))
            if step == 0:
                first_losses[name] = result["losses"]
            else:
                times[name].append(wall)
                cpu_times[name].append(cpu)

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load avg {os.getloadavg()[0]:.2f}, "
          f"batch {args.batch} x {args.seconds:g} s, fp32, best of {args.repeats}")
    for name in variants:
        print(f"  {name:<6} first-step losses [disc, gen, fm, mel, kl] {first_losses[name]}")
    best = {name: min(t) for name, t in times.items()}
    best_cpu = {name: min(t) for name, t in cpu_times.items()}
    for name in variants:
        print(f"  {name:<6} wall {best[name]:6.2f} s per step (all: {', '.join(f'{t:.2f}' for t in times[name])}); "
              f"process CPU time {best_cpu[name]:6.2f} s")
    print(f"  ours / plain: wall {best['ours'] / best['plain']:.3f}, CPU time {best_cpu['ours'] / best_cpu['plain']:.3f}")


if __name__ == "__main__":
    main()
