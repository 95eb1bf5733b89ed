"""The speed changes of the SoVITS training step keep its results (gsv_edu/train/step.py, "Speed").

- `MultiPeriodDiscriminator.forward` judges y and y_hat as one batch when both need the same from
  autograd: the scores and feature maps equal those of the official two calls per discriminator;
- G's step leaves D's gradients alone: after a step D holds exactly its own step's gradients
  (the official backward adds G-step gradients there, which nothing uses), and every D parameter
  requires grad again afterwards;
- AdamW is torch's fused kernel, also after loading an official optimizer state (fused: None),
  and its update equals the default implementation's up to float rounding.
"""
from __future__ import annotations

import contextlib

import pytest
import torch

from gsv_edu.sovits.discriminators import MultiPeriodDiscriminator
from gsv_edu.train import step as step_module
from gsv_edu.train.step import grad_norm
from train_helpers import make_prepared, small_config


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return make_prepared(tmp_path_factory.mktemp("prepared"))


def _one_batch(prepared, cfg):
    from gsv_edu.data.dataset import TextAudioSpeakerCollate, TextAudioSpeakerDataset

    data = TextAudioSpeakerDataset(prepared, cfg)
    return TextAudioSpeakerCollate()([data[0], data[1]])


def _separately(mpd, y, y_hat):
    """The official order: each discriminator on y, then on y_hat."""
    out = [[], [], [], []]
    for d in mpd.discriminators:
        (r, fr), (g, fg) = d(y), d(y_hat)
        for lst, v in zip(out, (r, g, fr, fg)):
            lst.append(v)
    return out


@pytest.mark.parametrize("y_hat_grad", [False, True])
def test_batched_discriminator_equals_two_calls(y_hat_grad):
    torch.manual_seed(0)
    mpd = MultiPeriodDiscriminator(False, "v2", channel_divisor=8).train()
    y, y_hat = 0.3 * torch.randn(2, 1, 2560), 0.3 * torch.randn(2, 1, 2560)
    y_hat.requires_grad_(y_hat_grad)
    got, want = mpd(y, y_hat), _separately(mpd, y, y_hat)
    for a_list, b_list in zip(got[:2], want[:2]):
        for a, b in zip(a_list, b_list):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a_maps, b_maps in zip(got[2] + got[3], want[2] + want[3]):
        for a, b in zip(a_maps, b_maps):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # the D step's gradients (the loss on both halves) agree as well
    loss = sum((s ** 2).mean() for s in got[0] + got[1])
    grads = torch.autograd.grad(loss, list(mpd.parameters()))
    loss_ref = sum((s ** 2).mean() for s in want[0] + want[1])
    grads_ref = torch.autograd.grad(loss_ref, list(mpd.parameters()))
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def _step(prepared, cfg):
    torch.manual_seed(0)
    t = step_module.Trainer(cfg, device="cpu")
    result = t.train_step(_one_batch(prepared, cfg))
    assert result.ok, result.reason
    return t, result


def test_g_step_leaves_d_gradients_and_requires_grad_alone(prepared, monkeypatch):
    cfg = small_config()
    t, result = _step(prepared, cfg)
    # D's .grad is exactly what its own step computed (logged as grad_norm_d) ...
    assert grad_norm(t.net_d.parameters()).item() == pytest.approx(result.scalars["grad_norm_d"], rel=1e-6)
    assert all(p.requires_grad for p in t.net_d.parameters())
    # ... which G's backward changes when D is not frozen (the official behaviour), with the same losses
    monkeypatch.setattr(step_module, "_frozen", lambda module: contextlib.nullcontext())
    t_official, result_official = _step(prepared, cfg)
    assert grad_norm(t_official.net_d.parameters()).item() != pytest.approx(result.scalars["grad_norm_d"], rel=1e-3)
    for key in ("loss/d/total", "loss/g/total", "grad_norm_g"):
        assert result_official.scalars[key] == pytest.approx(result.scalars[key], rel=1e-5)


def test_adamw_is_fused_and_stays_fused_after_an_official_state(prepared):
    cfg = small_config()
    t = step_module.Trainer(cfg, device="cpu")
    assert all(g["fused"] for o in (t.optim_g, t.optim_d) for g in o.param_groups)
    official_state = {"model": t.net_g.state_dict(), "optimizer": t.optim_g.state_dict(), "iteration": 1}
    d_state = {"model": t.net_d.state_dict(), "optimizer": t.optim_d.state_dict(), "iteration": 1}
    for s in (official_state, d_state):
        for g in s["optimizer"]["param_groups"]:
            g["fused"] = None  # what the official optimizer saves
    t.load_checkpoint_states(official_state, d_state)
    assert all(g["fused"] for o in (t.optim_g, t.optim_d) for g in o.param_groups)


def test_fused_adamw_update_equals_the_default_one():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(64, 32)), torch.nn.Parameter(torch.randn(7))]
    copies = [torch.nn.Parameter(p.detach().clone()) for p in params]
    initial = [p.detach().clone() for p in params]
    fused, plain = torch.optim.AdamW(params, 1e-3, fused=True), torch.optim.AdamW(copies, 1e-3)
    for _ in range(5):
        grads = [torch.randn_like(p) for p in params]
        for p, c, g in zip(params, copies, grads):
            p.grad, c.grad = g.clone(), g.clone()
        fused.step()
        plain.step()
    for p, c in zip(params, copies):
        torch.testing.assert_close(p, c, rtol=1e-6, atol=1e-7)
    assert all((p - p0).abs().max() > 1e-3 for p, p0 in zip(params, initial))  # five steps of lr 1e-3 moved them
