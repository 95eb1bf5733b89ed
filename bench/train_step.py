"""Speed of one fp32 SoVITS training step at the official v2 size on the CPU: ours (the library's
`Trainer.train_step`) and, with `--official PATH`, the official classes side by side.

    .venv/bin/python bench/train_step.py [--official PATH] [--batch 2] [--seconds 4] [--repeats 3] [--threads 2]

One step as `GPT_SoVITS/s2_train.py · train_and_evaluate @48b1a01` does it: generator forward;
targets (mel of the whole padded spectrogram batch cut at the window, mel of y_hat, the
waveform window); discriminator step (LSGAN loss, backward, `clip_grad_value_(…, None)`, which
only measures the gradient norm, AdamW); generator step (mel L1 ×45, KL, feature matching, LSGAN
generator loss, backward, gradient norm, AdamW). Official v2 sizes (configs/s2.json):
SynthesizerTrn 51 M parameters, MultiPeriodDiscriminator 46.7 M; a batch of `--batch` items of
`--seconds` s (random content features, spectrograms of random waveforms, 50 phonemes);
32-frame decoder window (20480 samples). Both sides get the rule weights of the fixtures
(tests/fixtures/sovits_v2/weight_rule.py) and AdamW with the official four parameter groups.

The rows:
- `ours` — `gsv_edu.train.step.Trainer(cfg, device="cpu").train_step(batch)`, the step the
  trainer runs (its finiteness checks and logged scalars included);
- `official` — only with `--official PATH`: the official `SynthesizerTrn` and
  `MultiPeriodDiscriminator` imported from a checkout of RVC-Boss/GPT-SoVITS (bench/official.py),
  with the official `mel_processing`, `commons` and `losses`, in the order of the s2_train.py
  loop above (GradScaler disabled and autocast off, as fp16_run is on the CPU). The baseline.

Both run from the same `torch.manual_seed` before each step, so they draw the same window,
posterior noise and dropout masks: their first-step losses must agree (printed, and checked to
1e-4 relative). The rows are timed in alternating rounds (the order swaps every round), the
first round a warm-up, keeping the best of `--repeats`, by wall time and by the process's CPU
time (the steadier measure on a shared machine). The FLOPs of one step of each row (forward and
backward of both networks) are counted with torch.utils.flop_counter.FlopCounterMode (ours does
less arithmetic: its G step computes no gradient for D's weights, which the official computes
and discards); each row's GFLOP/s ÷ the best 2048×2048 fp32 matmul throughput measured in the
same run gives the fraction of the machine's matmul throughput it reaches.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "sovits_v2"))
from gsv_edu.audio import spectrogram  # noqa: E402
from gsv_edu.train.step import Trainer, generator_param_groups  # noqa: E402
import weight_rule  # noqa: E402
from common import matmul_gflops, official_v2, timed  # noqa: E402
from official import load_official  # noqa: E402

LOSSES = ("loss/d/total", "loss/g/gen", "loss/g/fm", "loss/g/mel", "loss/g/kl")


def make_batch(batch: int, seconds: float):
    """A collated batch as TextAudioSpeakerCollate gives it (all items full length)."""
    frames = int(seconds * 50) // 2 * 2  # even, as the collate pads
    gen = torch.Generator().manual_seed(0)
    wav = (0.25 * torch.randn(batch, 1, frames * 640, generator=gen)).clamp(-1, 1)  # [B, 1, N]
    spec = spectrogram(wav.squeeze(1))[..., :frames]  # [B, 1025, frames]
    ssl = 0.5 * torch.randn(batch, 768, frames, generator=gen)  # [B, 768, frames]
    text = torch.randint(1, 732, (batch, 50), generator=gen)  # [B, 50]
    lengths = torch.full((batch,), frames, dtype=torch.long)
    return (ssl, lengths, spec, lengths, wav, torch.full((batch,), frames * 640, dtype=torch.long),
            text, torch.full((batch,), 50, dtype=torch.long))


def ours(cfg):
    trainer = Trainer(cfg, device="cpu")
    weight_rule.fill_module(trainer.net_g)
    weight_rule.fill_module(trainer.net_d)

    def step(batch):
        result = trainer.train_step(batch)
        assert result.ok, result.reason
        return [result.scalars[k] for k in LOSSES]
    return step


def official(cfg, path):
    """The official s2_train.py step (fp32 on the CPU) on the official classes."""
    off = load_official(path)
    net_g, net_d = off.generator(cfg), off.discriminator(cfg)
    weight_rule.fill_module(net_g)
    weight_rule.fill_module(net_d)
    tc, dc = cfg.train, cfg.data
    kw = dict(betas=tuple(tc.betas), eps=tc.eps)
    # The official groups are those of generator_param_groups (same order, checked by the tests).
    optim_g = torch.optim.AdamW(generator_param_groups(net_g, tc.learning_rate, tc.text_low_lr_rate),
                                tc.learning_rate, **kw)
    optim_d = torch.optim.AdamW(net_d.parameters(), tc.learning_rate, **kw)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    mp, commons, losses = off.mel_processing, off.commons, off.losses

    def step(batch):
        ssl, _, spec, spec_lengths, y, _, text, text_lengths = batch
        net_g.train()
        net_d.train()
        y_hat, kl_ssl, ids_slice, x_mask, z_mask, (z, z_p, m_p, logs_p, m_q, logs_q), _ = net_g(
            ssl, spec, spec_lengths, text, text_lengths)
        mel = mp.spec_to_mel_torch(spec, dc.filter_length, dc.n_mel_channels, dc.sampling_rate,
                                   dc.mel_fmin, dc.mel_fmax)
        y_mel = commons.slice_segments(mel, ids_slice, tc.segment_size // dc.hop_length)
        y_hat_mel = mp.mel_spectrogram_torch(y_hat.squeeze(1), dc.filter_length, dc.n_mel_channels,
                                             dc.sampling_rate, dc.hop_length, dc.win_length, dc.mel_fmin,
                                             dc.mel_fmax)
        y = commons.slice_segments(y, ids_slice * dc.hop_length, tc.segment_size)
        y_d_hat_r, y_d_hat_g, _, _ = net_d(y, y_hat.detach())
        loss_disc, _, _ = losses.discriminator_loss(y_d_hat_r, y_d_hat_g)
        optim_d.zero_grad()
        scaler.scale(loss_disc).backward()
        scaler.unscale_(optim_d)
        commons.clip_grad_value_(net_d.parameters(), None)
        scaler.step(optim_d)
        y_d_hat_r, y_d_hat_g, fmap_r, fmap_g = net_d(y, y_hat)
        loss_mel = F.l1_loss(y_mel, y_hat_mel) * tc.c_mel
        loss_kl = losses.kl_loss(z_p, logs_q, m_p, logs_p, z_mask) * tc.c_kl
        loss_fm = losses.feature_loss(fmap_r, fmap_g)
        loss_gen, _ = losses.generator_loss(y_d_hat_g)
        loss_gen_all = loss_gen + loss_fm + loss_mel + kl_ssl * 1 + loss_kl
        optim_g.zero_grad()
        scaler.scale(loss_gen_all).backward()
        scaler.unscale_(optim_g)
        commons.clip_grad_value_(net_g.parameters(), None)
        scaler.step(optim_g)
        scaler.update()
        return [v.item() for v in (loss_disc, loss_gen, loss_fm, loss_mel, loss_kl)]
    return step


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", metavar="PATH", default=None,
                    help="root of a checkout of RVC-Boss/GPT-SoVITS: also time its classes (the baseline)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = official_v2()
    batch = make_batch(args.batch, args.seconds)

    steps = {"ours": ours(cfg)}
    if args.official:
        steps["official"] = official(cfg, args.official)
    names = list(steps)

    times = {name: [] for name in names}
    first_losses = {}
    mm = []
    for r in range(args.repeats + 1):  # round 0 is a warm-up
        if r:
            mm.append(matmul_gflops(repeats=3))
        for name in (names if r % 2 == 0 else names[::-1]):
            result = {}

            def run():
                torch.manual_seed(r)  # the same window, noise and dropout masks in every row
                result["losses"] = steps[name](batch)
            t = timed(run)
            if r == 0:
                first_losses[name] = result["losses"]
            else:
                times[name].append(t)
    # FLOPs of one step of each row (after the timing: the counter's hooks would slow the rounds).
    gflop = {}
    for name in names:
        with FlopCounterMode(display=False) as counter:
            torch.manual_seed(0)
            steps[name](batch)
        gflop[name] = counter.get_total_flops() / 1e9
    peak = max(m[0] for m in mm)
    peak_cpu = max(m[1] for m in mm)

    baseline = "official" if args.official else "ours"
    load = os.getloadavg()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (after the run), batch {args.batch} x {args.seconds:g} s, "
          f"fp32, best of {args.repeats} alternating rounds after a warm-up")
    print("GFLOP per step: " + ", ".join(f"{name} {gflop[name]:.1f}" for name in names)
          + f"; 2048x2048 fp32 matmul: best {peak:.1f} GFLOP/s by wall time, {peak_cpu:.1f} GFLOP per CPU-second")
    for name in names:
        print(f"  {name:<8} first-step losses [disc, gen, fm, mel, kl] {[round(v, 5) for v in first_losses[name]]}")
    if args.official:
        for a, b, what in zip(first_losses["ours"], first_losses["official"], LOSSES):
            if abs(a - b) > 1e-4 * max(1.0, abs(b)):
                raise SystemExit(f"first-step {what} differs: ours {a} vs official {b}")
    print(f"ratios: against `{baseline}`")
    print(f"  {'row':<8} {'wall s':>7} {'of matmul':>9} {'/ base':>7} {'CPU s':>7} {'of matmul':>9} {'/ base':>7}   all rounds (wall s)")
    best = {name: min(t[0] for t in times[name]) for name in names}
    best_cpu = {name: min(t[1] for t in times[name]) for name in names}
    for name in names:
        print(f"  {name:<8} {best[name]:7.2f} {gflop[name] / best[name] / peak:9.0%} "
              f"{best[name] / best[baseline]:7.3f} {best_cpu[name]:7.2f} {gflop[name] / best_cpu[name] / peak_cpu:9.0%} "
              f"{best_cpu[name] / best_cpu[baseline]:7.3f}"
              f"   {' '.join(f'{t[0]:.2f}' for t in times[name])}")


if __name__ == "__main__":
    main()
