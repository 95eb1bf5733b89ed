"""One SoVITS training step, and the models, optimizers and schedulers it updates.

Mirrors `GPT_SoVITS/s2_train.py · run, train_and_evaluate @48b1a01`. The model is
a VITS-style VAE trained as a GAN (Kim et al. 2021, "Conditional Variational Autoencoder with
Adversarial Learning for End-to-End Text-to-Speech"): per batch,

1. G forward (`GPT_SoVITS/module/models.py · SynthesizerTrn.forward`): a random window of
   `segment_frames` latent frames is decoded into y_hat [B, 1, segment_size];
2. the targets: mel of the real spectrogram cut at the same window (`spec_to_mel` then
   `slice_segments`), mel of y_hat (`mel_spectrogram`), and the real waveform window
   (`slice_segments(wav, ids_slice · hop)`);
3. D step: D(y, y_hat.detach()) → LSGAN loss_disc → AdamW step of D;
4. G step: D(y, y_hat) → loss_gen (LSGAN) + loss_fm (feature matching) + c_mel·L1(mel) +
   kl_ssl (commitment loss: 0, the quantizer is frozen) + c_kl·KL → AdamW step of G.

Official quirks kept (they change numbers; `GPT_SoVITS/s2_train.py · run, train_and_evaluate`):
- AdamW with PyTorch's default `weight_decay=0.01`, which no config mentions;
- the generator has four parameter groups: `enc_p.text_embedding`, `enc_p.encoder_text` and
  `enc_p.mrte` train at lr·text_low_lr_rate, everything else at lr;
- ExponentialLR(lr_decay) stepped once per epoch, and once *before* the first epoch, so the
  first epoch already runs at lr·γ (PyTorch warns about a scheduler step before an optimizer
  step; we silence that one warning);
- `clip_grad_value_(parameters, None)` clips nothing: the total gradient norm is computed
  (after unscaling) for the logs only (`grad_norm`).

gsv_edu additions / differences (no effect on a normal step's numbers on the CPU):
- the mels are computed in float32 with autocast off (official: the mel matmul runs under
  autocast, i.e. in fp16 on a GPU when fp16_run) — only rounding differs;
- bf16 autocast (`train.amp_dtype = "bfloat16"`, no GradScaler) besides fp16 + GradScaler;
- a skipped step updates *nothing* (the official has no skip: a NaN goes into the weights, and
  with a GradScaler `scaler.step` skips only the network whose gradients overflowed, after D
  has already been stepped). When a loss or a gradient of either network is non-finite on any
  rank (checked on D's loss, D's unscaled gradients, G's loss and G's unscaled gradients),
  neither D nor G is stepped: D's step, taken before G's loss exists (G's loss is computed
  with the updated D, as the official), is undone from a copy of D's parameters and AdamW
  state taken just before it, so every parameter and optimizer state is bit-identical to
  what it was before the step. With a GradScaler the scale then backs off exactly as
  `GradScaler.update` does after an overflow (scale × backoff_factor, growth tracker reset to
  0) and the step's unscale/step records are cleared, so the next step runs normally; without
  one, nothing else changes. `StepResult.ok` is False, `reason` says what was non-finite, and
  the run loop does not count the step. Cost: one copy of D's parameters and AdamW moments
  per step (3 × D's size in memory: 0.56 GB at the official size; the copy takes 0.08 s on
  one CPU thread, against 7-13 s for the whole official-size step);
- `train.disc_channel_divisor` narrows the discriminator (1 = official).

Speed (the same updates as the official up to float rounding; `bench/train_step.py --official`):
- AdamW runs torch's fused kernel (`fused=True`, on the CPU and CUDA): one pass over each
  parameter instead of about ten element-wise passes (official: the default implementation).
  The update is the same formula, rounded differently (≤ 2e-8 on the weights after a step);
  the `fused` setting of a loaded optimizer state (official checkpoints: None) is replaced.
- D is frozen during G's step: G's backward computes only the gradient flowing through D into
  y_hat. The official backward also computes D's weight gradients there, which the next D
  step's `zero_grad` throws away, and records D's graph for the real waveform, which no loss
  uses. For the same reason G's step calls the plain D, not its DDP wrapper (no gradient of D
  to all-reduce).
- In the D step the discriminator judges y and y_hat as one batch
  (`MultiPeriodDiscriminator.forward`).
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from gsv_edu.audio import mel_spectrogram, spec_to_mel
from gsv_edu.config import Config
from gsv_edu.sovits.commons import slice_segments
from gsv_edu.sovits.losses import discriminator_loss, feature_loss, generator_loss, kl_loss
from gsv_edu.sovits.models import MultiPeriodDiscriminator, SynthesizerTrn
from gsv_edu.train.distributed import DistributedContext, all_true, resolve_device
from gsv_edu.weights import compare_state_dict, read_discriminator_file, read_sovits_file

__all__ = ["Trainer", "StepResult", "generator_param_groups", "grad_norm", "load_matching", "LOW_LR_MODULES"]


# s2_train.py: these generator parts train at lr · text_low_lr_rate (groups 2, 3, 4 of optim_g).
LOW_LR_MODULES = ("enc_p.text_embedding", "enc_p.encoder_text", "enc_p.mrte")


def generator_param_groups(net_g: torch.nn.Module, lr: float, text_low_lr_rate: float) -> list[dict]:
    """The four AdamW parameter groups of the official `optim_g`, in the official order.

    Group 1: every parameter that requires grad except those of the three text modules (in
    `net_g.parameters()` order); groups 2-4: `enc_p.text_embedding`, `enc_p.encoder_text`,
    `enc_p.mrte` at lr · text_low_lr_rate. Same order as the official, so our optimizer state
    and the official one are interchangeable.
    """
    modules = [net_g.get_submodule(name) for name in LOW_LR_MODULES]
    low_ids = {id(p) for m in modules for p in m.parameters()}
    base = [p for p in net_g.parameters() if id(p) not in low_ids and p.requires_grad]
    groups = [{"params": base, "lr": lr}]
    groups += [{"params": list(m.parameters()), "lr": lr * text_low_lr_rate} for m in modules]
    return groups


def grad_norm(parameters) -> torch.Tensor:
    """Total L2 norm of the gradients (parameters without a gradient are left out).

    What the official `commons.clip_grad_value_(parameters, None)` returns
    (`GPT_SoVITS/module/commons.py · clip_grad_value_ @48b1a01`, called so from
    `GPT_SoVITS/s2_train.py · train_and_evaluate`): with clip_value None it clips nothing and
    only measures. Computed as one tensor (the official sums Python floats, one device sync per
    parameter); 0-d float32 tensor.
    """
    norms = [p.grad.detach().float().norm(2) for p in parameters if p.grad is not None]
    if not norms:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(norms), 2)


def load_matching(module: torch.nn.Module, weights: dict[str, torch.Tensor], what: str) -> dict[str, list[str]]:
    """Load the entries of `weights` whose name and shape fit `module`; report the rest.

    Official s2_train loads the pretrained s2G with `load_state_dict(strict=False)` and prints
    the missing/unexpected keys (a shape mismatch would raise there); here mismatched tensors
    are skipped and listed as well. Raises ValueError if nothing fits at all.
    Returns {"loaded", "missing", "unexpected", "mismatched"} key lists.
    """
    diff = compare_state_dict(weights, module.state_dict())
    fitting, missing, unexpected, mismatched = diff.fitting, diff.missing, diff.unexpected, diff.mismatched
    if not fitting:
        raise ValueError(f"{what}: no tensor fits this model ({len(mismatched)} shape mismatches, "
                         f"{len(unexpected)} unknown keys; e.g. {(mismatched + unexpected)[:3]}); "
                         f"was it made for another preset/version?")
    module.load_state_dict(fitting, strict=False)  # fp16 tensors are upcast by the copy
    return {"loaded": list(fitting), "missing": missing, "unexpected": unexpected, "mismatched": mismatched}


@contextlib.contextmanager
def _frozen(module: torch.nn.Module):
    """Inside the block no parameter of `module` requires grad (restored on exit, also on errors)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _grad_scaler(device: torch.device, enabled: bool):
    """torch.amp.GradScaler (torch ≥ 2.3) or torch.cuda.amp.GradScaler (older)."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device.type, enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)  # pragma: no cover - torch < 2.3


class _StepUndo:
    """A bit-exact copy of a module's parameters and of its optimizer's state, to undo one step.

    `take()` before `optimizer.step()`, `restore()` after it puts back every parameter value
    and the optimizer's per-parameter state (AdamW's step count and moments; no state at all
    before the first step), in place: the same tensors, so nothing that holds them notices.
    The copies live in buffers allocated once and reused, so a step costs copies, not
    allocations.
    """

    def __init__(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer):
        self.params = list(module.parameters())
        self.optimizer = optimizer
        self._values = [torch.empty_like(p) for p in self.params]
        self._buffers: list[dict[str, torch.Tensor]] = [{} for _ in self.params]
        self._state: list[dict | None] = [None for _ in self.params]  # what was there at take()

    @torch.no_grad()
    def take(self) -> None:
        for saved, p in zip(self._values, self.params):
            saved.copy_(p)
        for i, p in enumerate(self.params):
            state = self.optimizer.state.get(p)
            if not state:
                self._state[i] = None
                continue
            record = {}
            for key, value in state.items():
                if torch.is_tensor(value):
                    buffer = self._buffers[i].get(key)
                    if buffer is None or buffer.shape != value.shape or buffer.dtype != value.dtype \
                            or buffer.device != value.device:
                        buffer = self._buffers[i][key] = torch.empty_like(value)
                    value = buffer.copy_(value)
                record[key] = value
            self._state[i] = record

    @torch.no_grad()
    def restore(self) -> None:
        for saved, p in zip(self._values, self.params):
            p.copy_(saved)
        for p, record in zip(self.params, self._state):
            if record is None:
                self.optimizer.state.pop(p, None)
                continue
            live = self.optimizer.state[p]
            for key in [k for k in live if k not in record]:
                del live[key]
            for key, value in record.items():
                if torch.is_tensor(value) and torch.is_tensor(live.get(key)) and live[key].shape == value.shape:
                    live[key].copy_(value)
                else:
                    live[key] = value.clone() if torch.is_tensor(value) else value


@dataclass
class StepResult:
    """What one `Trainer.train_step` did.

    ok: False when the update was skipped (non-finite loss or gradient; `reason` says which).
    scalars: the logged numbers under the official TensorBoard tags (floats).
    media: detached tensors of item 0 for images/audio when asked for.
    """

    ok: bool
    scalars: dict[str, float] = field(default_factory=dict)
    media: dict[str, torch.Tensor] | None = None
    reason: str = ""


class Trainer:
    """net_g, net_d, their AdamW optimizers and ExponentialLR schedulers, the GradScaler, one step.

    Position in training (`step`, `epoch`, `batch_in_epoch`) is kept here so that checkpoints
    can store it; the data loop lives in `gsv_edu.train.run`.
    """

    def __init__(self, config: Config, ctx: DistributedContext | None = None, device: str | None = None):
        """`ctx`: the process's rank and device (`init_distributed()` under torchrun). Without it,
        one process on `device` ("auto" by default: the GPU when there is one, else the CPU)."""
        self.cfg = config
        if ctx is not None and device is not None:
            raise ValueError("Trainer: give either ctx or device, not both")
        self.ctx = ctx or DistributedContext(device=resolve_device(device))
        self.device = self.ctx.device
        tc, dc = config.train, config.data
        self.segment_frames = config.segment_frames
        # Mixed precision only on CUDA (fp16_run is ignored on the CPU); fp16 uses a GradScaler.
        self.autocast_enabled = bool(tc.fp16_run) and self.device.type == "cuda"
        self.autocast_dtype = torch.bfloat16 if tc.amp_dtype == "bfloat16" else torch.float16
        use_scaler = self.autocast_enabled and self.autocast_dtype == torch.float16

        self.net_g = SynthesizerTrn(config.spec_channels, config.segment_frames, n_speakers=dc.n_speakers,
                                    **config.model_kwargs()).to(self.device)
        self.net_d = MultiPeriodDiscriminator(config.model.use_spectral_norm, config.version,
                                              channel_divisor=tc.disc_channel_divisor).to(self.device)
        # official quirk (s2_train.py · run sets no weight_decay): AdamW's default 0.01 is active.
        # torch's fused AdamW kernel where it has one (module docstring: same update, one pass).
        self._fused_adamw = True if self.device.type in ("cpu", "cuda") else None
        self.optim_g = torch.optim.AdamW(generator_param_groups(self.net_g, tc.learning_rate, tc.text_low_lr_rate),
                                         tc.learning_rate, betas=tuple(tc.betas), eps=tc.eps, fused=self._fused_adamw)
        self.optim_d = torch.optim.AdamW(self.net_d.parameters(), tc.learning_rate, betas=tuple(tc.betas), eps=tc.eps,
                                         fused=self._fused_adamw)
        self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.optim_g, gamma=tc.lr_decay, last_epoch=-1)
        self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.optim_d, gamma=tc.lr_decay, last_epoch=-1)
        self.scaler = _grad_scaler(self.device, use_scaler)
        self._d_before_step = _StepUndo(self.net_d, self.optim_d)  # see _skip
        self.g: torch.nn.Module = self.net_g  # what the step calls: the DDP wrapper when distributed
        self.d: torch.nn.Module = self.net_d
        self.step = 0            # optimizer steps done (skipped non-finite steps not counted)
        self.epoch = 1           # current epoch (1-based, as the official)
        self.batch_in_epoch = 0  # batches of the current epoch already consumed

    # ------------------------------------------------------------------ setup
    def wrap_ddp(self) -> None:
        """Wrap both models in DistributedDataParallel when several processes train.

        find_unused_parameters=True as the official: the frozen `ssl_proj` gets no gradient.
        """
        if not self.ctx.is_distributed:
            return
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.g = DistributedDataParallel(self.net_g, device_ids=ids, find_unused_parameters=True)
        self.d = DistributedDataParallel(self.net_d, device_ids=ids, find_unused_parameters=True)

    def step_schedulers(self) -> None:
        """One ExponentialLR step for G and D (end of an epoch; and once before the first, official quirk)."""
        with warnings.catch_warnings():
            # official quirk (s2_train.py · run): stepped before any optimizer step; PyTorch warns.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            self.sched_g.step()
            self.sched_d.step()

    @property
    def iteration(self) -> int:
        """The epoch the last step belongs to (the official checkpoints' `iteration`, and the e in exports).

        `epoch`/`batch_in_epoch` name the *next* batch; right after an epoch ends they point at the
        start of the following one.
        """
        return self.epoch - 1 if self.batch_in_epoch == 0 and self.epoch > 1 else self.epoch

    @property
    def learning_rate(self) -> float:
        """The current lr of G's first group (what the official logs)."""
        return float(self.optim_g.param_groups[0]["lr"])

    def load_pretrained(self, g_path: str | None = None, d_path: str | None = None) -> list[str]:
        """Initialise from official pretrained s2G / s2D files (fp16 `weight` dicts); returns log lines."""
        lines = []
        if g_path:
            sovits = read_sovits_file(g_path)
            report = load_matching(self.net_g, sovits.weight, f"pretrained G {g_path}")
            lines.append(_summary(f"pretrained G {g_path} ({sovits.kind}, {sovits.version})", report))
            if any(k.startswith("enc_q.") for k in report["missing"]):
                lines.append("  note: the file has no enc_q (an export?): the posterior encoder starts from scratch")
        if d_path:
            weights = read_discriminator_file(d_path)
            report = load_matching(self.net_d, weights, f"pretrained D {d_path}")
            lines.append(_summary(f"pretrained D {d_path}", report))
        return lines

    # ------------------------------------------------------------------ the step
    def _autocast(self, enabled: bool | None = None):
        on = self.autocast_enabled if enabled is None else enabled
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=on)

    def _mels(self, spec: torch.Tensor, y_hat: torch.Tensor, ids_slice: torch.Tensor):
        """(full real mel [B, M, T], its window y_mel [B, M, S], y_hat's mel [B, M, S]), float32."""
        dc = self.cfg.data
        with self._autocast(False):
            mel = spec_to_mel(spec.float(), dc.filter_length, dc.n_mel_channels, dc.sampling_rate,
                              dc.mel_fmin, dc.mel_fmax)  # [B, M, T]
            y_mel = slice_segments(mel, ids_slice, self.segment_frames)  # [B, M, S]
            y_hat_mel = mel_spectrogram(y_hat.squeeze(1).float(), dc.filter_length, dc.n_mel_channels,
                                        dc.sampling_rate, dc.hop_length, dc.win_length, dc.mel_fmin,
                                        dc.mel_fmax)  # [B, M, S]
        return mel, y_mel, y_hat_mel

    def _finite_everywhere(self, value: torch.Tensor) -> bool:
        return all_true(bool(torch.isfinite(value).all()), self.ctx)

    def _skip(self, reason: str, *, scaled: bool, d_stepped: bool = False) -> StepResult:
        """Leave the step without any update (module docstring): undo D's step if it was taken,
        drop the gradients and, with a GradScaler, back the scale off as an overflow would.

        `scaled`: `scaler.scale()` ran in this step (so the scaler holds per-optimizer records to
        clear); `d_stepped`: D's optimizer step was taken (and is undone from its copy).
        """
        if d_stepped:
            self._d_before_step.restore()
        self.optim_d.zero_grad()
        self.optim_g.zero_grad()
        if self.scaler.is_enabled():
            # GradScaler.update after an overflow (torch._amp_update_scale_ with found_inf):
            # scale ← scale · backoff_factor, growth tracker ← 0.
            state = self.scaler.state_dict()
            state.update(scale=state["scale"] * state["backoff_factor"], _growth_tracker=0)
            if scaled:
                self.scaler.update(new_scale=state["scale"])  # also forgets this step's unscale_/step records
            self.scaler.load_state_dict(state)  # the scale, and the growth tracker that update(new_scale) keeps
        return StepResult(False, reason=reason)

    def train_step(self, batch, media: bool = False) -> StepResult:
        """One D update and one G update on a collated batch (TextAudioSpeakerCollate's tuple)."""
        tc = self.cfg.train
        ssl, ssl_lengths, spec, spec_lengths, wav, wav_lengths, text, text_lengths, *sv = (
            t.to(self.device, non_blocking=True) for t in batch)  # v2Pro: sv = [speaker vectors [B, D_sv]]
        self.g.train()
        self.d.train()

        with self._autocast():
            (y_hat, kl_ssl, ids_slice, x_mask, z_mask, (z, z_p, m_p, logs_p, m_q, logs_q),
             stats_ssl) = self.g(ssl, spec, spec_lengths, text, text_lengths, *sv)  # y_hat [B, 1, segment_size]
        mel, y_mel, y_hat_mel = self._mels(spec, y_hat, ids_slice)
        y = slice_segments(wav, ids_slice * self.cfg.data.hop_length, tc.segment_size)  # [B, 1, segment_size]

        # ---- discriminator
        with self._autocast():
            y_d_hat_r, y_d_hat_g, _, _ = self.d(y, y_hat.detach())
        loss_disc, losses_disc_r, losses_disc_g = discriminator_loss(y_d_hat_r, y_d_hat_g)  # fp32
        if not self._finite_everywhere(loss_disc):
            return self._skip(f"non-finite discriminator loss ({float(loss_disc.detach()):.4g})", scaled=False)
        self.optim_d.zero_grad()
        self.scaler.scale(loss_disc).backward()
        self.scaler.unscale_(self.optim_d)
        grad_norm_d = grad_norm(self.net_d.parameters())  # official clip_grad_value_(…, None): no clipping
        if not self._finite_everywhere(grad_norm_d):  # with a scaler: what unscale_ counted as found_inf
            return self._skip("non-finite discriminator gradient", scaled=True)
        self._d_before_step.take()  # G's loss may still be non-finite: D's step must be undoable
        self.scaler.step(self.optim_d)

        # ---- generator
        # D is frozen for G's step (module docstring): its backward computes only the gradient
        # that flows through D into y_hat. The plain module, not the DDP wrapper: no gradient of
        # D to all-reduce here.
        with self._autocast(), _frozen(self.net_d):
            y_d_hat_r, y_d_hat_g, fmap_r, fmap_g = self.net_d(y, y_hat)
        with self._autocast(False):
            loss_mel = F.l1_loss(y_mel, y_hat_mel) * tc.c_mel
            loss_kl = kl_loss(z_p, logs_q, m_p, logs_p, z_mask) * tc.c_kl
            loss_fm = feature_loss(fmap_r, fmap_g)
            loss_gen, losses_gen = generator_loss(y_d_hat_g)
            loss_gen_all = loss_gen + loss_fm + loss_mel + kl_ssl * 1 + loss_kl
        if not self._finite_everywhere(loss_gen_all):
            parts = {"mel": loss_mel, "kl": loss_kl, "fm": loss_fm, "gen": loss_gen}
            return self._skip("non-finite generator loss (" + ", ".join(
                f"{k} {float(v.detach()):.4g}" for k, v in parts.items()) + ")", scaled=True, d_stepped=True)
        self.optim_g.zero_grad()
        self.scaler.scale(loss_gen_all).backward()
        self.scaler.unscale_(self.optim_g)
        grad_norm_g = grad_norm(self.net_g.parameters())
        if not self._finite_everywhere(grad_norm_g):
            return self._skip("non-finite generator gradient", scaled=True, d_stepped=True)
        self.scaler.step(self.optim_g)
        self.scaler.update()

        # ---- what gets logged (one device sync for all scalars)
        names = ["loss/g/total", "loss/d/total", "grad_norm_d", "grad_norm_g", "loss/g/fm", "loss/g/mel",
                 "loss/g/kl_ssl", "loss/g/kl", "loss/g/gen"]
        values = [loss_gen_all, loss_disc, grad_norm_d, grad_norm_g, loss_fm, loss_mel, kl_ssl, loss_kl, loss_gen]
        names += [f"loss/g/{i}" for i in range(len(losses_gen))]
        names += [f"loss/d_r/{i}" for i in range(len(losses_disc_r))]
        names += [f"loss/d_g/{i}" for i in range(len(losses_disc_g))]
        values += list(losses_gen) + list(losses_disc_r) + list(losses_disc_g)
        numbers = torch.stack([torch.as_tensor(v, dtype=torch.float32, device=self.device).detach().reshape(())
                               for v in values]).tolist()
        result = StepResult(True, dict(zip(names, numbers)))
        if media:
            result.media = {
                "slice/mel_org": y_mel[0].detach().float().cpu(),     # [M, S]
                "slice/mel_gen": y_hat_mel[0].detach().float().cpu(),  # [M, S]
                "all/mel": mel[0].detach().float().cpu(),               # [M, T] (padded batch length, official)
                "all/stats_ssl": stats_ssl[0].detach().float().cpu(),   # [D, T] upsampled quantized content
                "audio/real_slice": y[0, 0].detach().float().cpu(),     # [segment_size]
                "audio/gen_slice": y_hat[0, 0].detach().float().cpu(),  # [segment_size]
            }
        return result

    @torch.no_grad()
    def synthesize_item(self, batch, index: int = 0) -> torch.Tensor:
        """Re-synthesise one batch item with `infer` (prior instead of posterior), eval mode, for the logs.

        v2Pro/v2ProPlus (whose official `infer` fails): `decode` of the item's own codes, reference
        spectrogram and speaker vector, the same prior-based re-synthesis.
        Runs under `torch.random.fork_rng`, so the training random stream is not disturbed.
        Returns the waveform [N] on the CPU.
        """
        ssl, _, spec, spec_lengths, _, _, text, text_lengths, *sv = (t.to(self.device) for t in batch)
        n, n_text = int(spec_lengths[index]), int(text_lengths[index])
        devices = [self.device] if self.device.type == "cuda" else []
        was_training = self.net_g.training
        self.net_g.eval()
        try:
            with torch.random.fork_rng(devices=devices):
                if sv:  # v2Pro
                    codes = self.net_g.extract_latent(ssl[index:index + 1, :, :n]).transpose(0, 1)  # [1, 1, n/2]
                    o = self.net_g.decode(codes, text[index:index + 1, :n_text], spec[index:index + 1, :, :n],
                                          sv_emb=sv[0][index:index + 1])  # [1, 1, n·hop]
                else:
                    o, _, _ = self.net_g.infer(ssl[index:index + 1, :, :n], spec[index:index + 1, :, :n],
                                               spec_lengths[index:index + 1], text[index:index + 1, :n_text],
                                               text_lengths[index:index + 1])  # [1, 1, n·hop]
        finally:
            self.net_g.train(was_training)
        return o[0, 0].float().cpu()

    def weights_finite(self) -> bool:
        """True if every parameter and buffer of G and D is finite (checked before any save)."""
        for module in (self.net_g, self.net_d):
            for t in list(module.parameters()) + list(module.buffers()):
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    return False
        return True

    # ------------------------------------------------------------------ checkpoint contents
    def checkpoint_states(self, rng: list | None = None) -> tuple[dict, dict]:
        """(G file dict, D file dict): the official keys plus ours (see the gsv_edu.weights docstring)."""
        lr = self.cfg.train.learning_rate
        common = {"iteration": self.iteration, "learning_rate": lr, "step": self.step, "epoch": self.epoch,
                  "batch_in_epoch": self.batch_in_epoch}
        g = {"model": self.net_g.state_dict(), "optimizer": self.optim_g.state_dict(),
             "scheduler": self.sched_g.state_dict(), **common,
             "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
             "rng": rng, "world_size": self.ctx.world_size, "config": self.cfg.to_dict()}
        d = {"model": self.net_d.state_dict(), "optimizer": self.optim_d.state_dict(),
             "scheduler": self.sched_d.state_dict(), **common}
        return g, d

    def load_checkpoint_states(self, g: dict, d: dict, g_path="G", d_path="D") -> None:
        """Restore models and optimizers (and, for our own files, schedulers, scaler and position)."""
        for module, state, path in ((self.net_g, g, g_path), (self.net_d, d, d_path)):
            try:
                module.load_state_dict(state["model"])
            except RuntimeError as e:
                first = str(e).strip().splitlines()
                raise ValueError(f"{path}: the checkpoint does not fit the configured model (was the run started "
                                 f"with another preset or --set model.*?): {first[0] if first else e}") from None
        if g.get("optimizer") is not None:
            self.optim_g.load_state_dict(g["optimizer"])
        if d.get("optimizer") is not None:
            self.optim_d.load_state_dict(d["optimizer"])
        for optim in (self.optim_g, self.optim_d):  # a loaded state brings its own `fused` (official: None)
            for group in optim.param_groups:
                group["fused"] = self._fused_adamw
        if "step" in g:  # gsv_edu checkpoint: exact position
            self.sched_g.load_state_dict(g["scheduler"])
            self.sched_d.load_state_dict(d["scheduler"])
            if g.get("scaler") is not None and self.scaler.is_enabled():
                self.scaler.load_state_dict(g["scaler"])
            self.step, self.epoch, self.batch_in_epoch = int(g["step"]), int(g["epoch"]), int(g["batch_in_epoch"])
        else:
            # An official checkpoint: continue at the start of the next epoch, with the lr an
            # uninterrupted run would have there (base · γ^epoch; see the gsv_edu.train.run docstring).
            self.epoch, self.batch_in_epoch = int(g.get("iteration", 0)) + 1, 0
            base, gamma = self.cfg.train.learning_rate, self.cfg.train.lr_decay
            for optim, sched, ratios in ((self.optim_g, self.sched_g, self._group_ratios()),
                                         (self.optim_d, self.sched_d, [1.0])):
                for group, ratio in zip(optim.param_groups, ratios):
                    group["initial_lr"] = base * ratio
                    group["lr"] = base * ratio * gamma ** (self.epoch - 1)
                sched.base_lrs = [group["initial_lr"] for group in optim.param_groups]
                sched.last_epoch = self.epoch - 1
            self.step = -1  # filled in by the loop: (epoch − 1) · batches per epoch, as the official

    def _group_ratios(self) -> list[float]:
        r = self.cfg.train.text_low_lr_rate
        return [1.0, r, r, r]


def _summary(title: str, report: dict[str, list[str]]) -> str:
    total = len(report["loaded"]) + len(report["missing"])
    lines = [f"{title}: loaded {len(report['loaded'])} of {total} tensors"]
    for kind in ("missing", "unexpected", "mismatched"):
        keys = report[kind]
        if keys:
            shown = ", ".join(keys[:6]) + (f", … ({len(keys) - 6} more)" if len(keys) > 6 else "")
            lines.append(f"  {kind} ({len(keys)}): {shown}")
    return "\n".join(lines)
