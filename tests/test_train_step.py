"""One training step of our `Trainer` against one official s2_train step (tests/fixtures/sovits_v2/
train_step_tiny.pt, README §5.5): the tiny generator of the fixtures and the official-size
MultiPeriodDiscriminator filled with weight_rule.py, the fixture batch, the official seed.

The fixture was made with both networks in eval mode (no dropout) and one discriminator for both
losses; so here `train_step` runs with the networks held in eval mode and lr 0, which makes the
discriminator update of the step an identity (AdamW: p·(1 − 0·wd) − 0·m̂/(√v̂ + ε) = p), and the
generator losses are computed with the same discriminator as the official's.
"""
from __future__ import annotations

import sys

import pytest
import torch

from conftest import FIXTURES, assert_fixture_close, load_fixture
from gsv_edu.config import Config
from gsv_edu.train.step import Trainer

sys.path.insert(0, str(FIXTURES))
import weight_rule  # noqa: E402  (the fixtures' own helper, imported from the fixtures folder)


@pytest.fixture(scope="module")
def official_step():
    return load_fixture("train_step_tiny.pt")


@pytest.fixture(scope="module")
def our_step(tiny_io):
    from conftest import _tiny_state_dict_cached

    cfg = Config.load(FIXTURES / "tiny_config.json").apply_overrides(["train.learning_rate=0"]).validate()
    t = Trainer(cfg, device="cpu")
    assert cfg.train.disc_channel_divisor == 1 and cfg.train.segment_size == 5120  # official-size D, 8 frames
    t.net_g.load_state_dict(_tiny_state_dict_cached())  # fp16 tensors, upcast by the copy
    weight_rule.fill_module(t.net_d)
    for net in (t.net_g, t.net_d):
        net.eval()
        net.train = lambda mode=True, net=net: net  # the step's .train() keeps the fixture's eval mode
    d_before = {k: v.clone() for k, v in t.net_d.state_dict().items()}
    inputs = tiny_io["inputs"]
    batch = tuple(inputs[k] for k in ("ssl", "ssl_lengths", "spec", "spec_lengths", "wav", "wav_lengths", "text",
                                      "text_lengths"))
    torch.manual_seed(tiny_io["forward"]["seed"])  # 1234: the posterior noise, then the slice starts
    result = t.train_step(batch, media=True)
    assert result.ok, result.reason
    assert all(torch.equal(v, d_before[k]) for k, v in t.net_d.state_dict().items())  # lr 0: D unchanged
    return result


def test_one_step_has_the_official_losses(our_step, official_step):
    s, ref = our_step.scalars, official_step
    for ours, key in (("loss/d/total", "loss_disc"), ("loss/g/gen", "loss_gen"), ("loss/g/fm", "loss_fm"),
                      ("loss/g/mel", "loss_mel"), ("loss/g/kl", "loss_kl"), ("loss/g/kl_ssl", "kl_ssl"),
                      ("loss/g/total", "loss_gen_all")):
        assert_fixture_close(torch.tensor(s[ours]), ref[key], msg=ours)
    for i in range(6):
        assert_fixture_close(torch.tensor(s[f"loss/d_r/{i}"]), ref["loss_disc_r_list"][i], msg=f"d_r {i}")
        assert_fixture_close(torch.tensor(s[f"loss/d_g/{i}"]), ref["loss_disc_g_list"][i], msg=f"d_g {i}")
    # the generator's per-discriminator adversarial losses are (1 − D(G(z)))² of the official scores
    for i, score in enumerate(ref["disc_fake_scores"]):
        assert_fixture_close(torch.tensor(s[f"loss/g/{i}"]), torch.mean((1 - score) ** 2), msg=f"g {i}")


def test_one_step_cuts_the_official_windows_and_mels(our_step, official_step):
    media, ref = our_step.media, official_step
    assert_fixture_close(media["audio/real_slice"], ref["y_slice"][0, 0])   # wav at ids_slice · 640
    assert_fixture_close(media["audio/gen_slice"], ref["y_hat"][0, 0])      # the decoder's window
    assert_fixture_close(media["slice/mel_org"], ref["y_mel"][0])
    assert_fixture_close(media["slice/mel_gen"], ref["y_hat_mel"][0])
    assert_fixture_close(media["all/mel"], ref["mel_full"][0])
