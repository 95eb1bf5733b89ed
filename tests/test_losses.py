"""The training losses against the official module/losses.py outputs (losses.pt)."""
import torch

from conftest import assert_fixture_close, load_fixture
from gsv_edu.sovits.losses import discriminator_loss, feature_loss, generator_loss, kl_loss


def test_losses_match_official():
    ref = load_fixture("losses.pt")
    i = ref["inputs"]
    assert_fixture_close(feature_loss(i["fmap_r"], i["fmap_g"]), ref["feature_loss"])
    loss, r_losses, g_losses = discriminator_loss(i["disc_real_outputs"], i["disc_generated_outputs"])
    assert_fixture_close(loss, ref["discriminator_loss"])
    assert_fixture_close(torch.stack(r_losses), ref["discriminator_loss_r_list"])
    assert_fixture_close(torch.stack(g_losses), ref["discriminator_loss_g_list"])
    loss, gen_losses = generator_loss(i["disc_generated_outputs"])
    assert_fixture_close(loss, ref["generator_loss"])
    assert_fixture_close(torch.stack(gen_losses), ref["generator_loss_list"])
    assert_fixture_close(kl_loss(i["z_p"], i["logs_q"], i["m_p"], i["logs_p"], i["z_mask"]), ref["kl_loss"])


def test_losses_are_float32_and_feature_loss_detaches_real_maps():
    real = [[torch.ones(2, 3, dtype=torch.float16, requires_grad=True)]]
    fake = [[torch.zeros(2, 3, dtype=torch.float16, requires_grad=True)]]
    loss = feature_loss(real, fake)
    assert loss.dtype == torch.float32 and loss.item() == 2.0
    loss.backward()
    assert real[0][0].grad is None and fake[0][0].grad is not None
    z = torch.zeros(1, 2, 3, dtype=torch.bfloat16)
    assert kl_loss(z, z, z, z, torch.ones(1, 1, 3)).dtype == torch.float32


def test_kl_loss_ignores_padded_frames():
    torch.manual_seed(0)
    z_p, logs_q, m_p, logs_p = (torch.randn(1, 4, 6) for _ in range(4))
    mask = torch.ones(1, 1, 6)
    mask[..., 4:] = 0
    full = kl_loss(z_p, logs_q, m_p, logs_p, mask)
    z_p[..., 4:] = 100.0
    assert torch.equal(kl_loss(z_p, logs_q, m_p, logs_p, mask), full)
    short = kl_loss(*(t[..., :4] for t in (z_p, logs_q, m_p, logs_p)), mask[..., :4])
    torch.testing.assert_close(full, short)
