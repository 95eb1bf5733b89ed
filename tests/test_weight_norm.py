"""Weight norm with the legacy keys: same keys, values and gradients as torch's legacy version;
folding leaves outputs unchanged."""
import warnings

import pytest
import torch
from torch import nn

from gsv_edu.sovits.weight_norm import fold_weight_norm, is_weight_normed, remove_weight_norm, weight_norm


def _torch_legacy(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.nn.utils.weight_norm(module)


@pytest.mark.parametrize("make, x_shape", [
    (lambda: nn.Conv1d(4, 6, 3, padding=1), (2, 4, 9)),
    (lambda: nn.ConvTranspose1d(6, 4, 4, 2, padding=1), (2, 6, 9)),
    (lambda: nn.Conv2d(3, 5, (5, 1), (3, 1), padding=(2, 0)), (2, 3, 11, 2)),
])
def test_same_keys_values_and_gradients_as_torch_legacy(make, x_shape):
    torch.manual_seed(0)
    ours = weight_norm(make())
    legacy = _torch_legacy(make())
    # Keys and their order are the official ones: bias, weight_g, weight_v.
    assert list(ours.state_dict()) == list(legacy.state_dict()) == ["bias", "weight_g", "weight_v"]
    g = legacy.state_dict()["weight_g"]
    assert g.shape == (legacy.weight_v.shape[0],) + (1,) * (legacy.weight_v.dim() - 1)
    # Load a non-trivial g (not ‖v‖) from the legacy module, as a checkpoint would be loaded.
    with torch.no_grad():
        legacy.weight_g.mul_(torch.linspace(0.5, 2.0, g.numel()).view_as(g))
    ours.load_state_dict(legacy.state_dict())
    x = torch.randn(x_shape)
    y_ours, y_legacy = ours(x), legacy(x)
    torch.testing.assert_close(y_ours, y_legacy, rtol=1e-6, atol=1e-6)
    y_ours.square().sum().backward()
    y_legacy.square().sum().backward()
    for name in ("weight_g", "weight_v", "bias"):
        torch.testing.assert_close(getattr(ours, name).grad, getattr(legacy, name).grad, rtol=1e-5, atol=1e-5)


def test_conv_transpose_norm_is_over_input_channel_axis():
    m = weight_norm(nn.ConvTranspose1d(8, 3, 4, 2))  # weight [in=8, out=3, k=4]
    assert m.weight_g.shape == (8, 1, 1)
    torch.testing.assert_close(m.weight_g.flatten(), m.weight_v.flatten(1).norm(dim=1))


def test_fold_weight_norm_keeps_outputs_and_plain_keys():
    torch.manual_seed(1)
    tree = nn.Sequential(weight_norm(nn.Conv1d(3, 5, 3, padding=1)), nn.Tanh(),
                         _torch_legacy(nn.Conv1d(5, 2, 1)), nn.Conv1d(2, 2, 1))
    with torch.no_grad():
        tree[0].weight_g.mul_(1.7)
    x = torch.randn(2, 3, 7)
    before = tree(x)
    assert fold_weight_norm(tree) is tree
    after = tree(x)
    torch.testing.assert_close(after, before, rtol=1e-6, atol=1e-6)
    assert sorted(tree.state_dict()) == ["0.bias", "0.weight", "2.bias", "2.weight", "3.bias", "3.weight"]
    assert not any(is_weight_normed(m) for m in tree)
    assert len(tree[0]._forward_pre_hooks) == 0
    with pytest.raises(ValueError, match="not weight-normed"):
        remove_weight_norm(tree[3])


def test_double_weight_norm_is_an_error():
    m = weight_norm(nn.Conv1d(2, 2, 1))
    with pytest.raises(RuntimeError, match="already weight-normed"):
        weight_norm(m)


def test_weight_normed_modules_can_be_deep_copied_fresh_and_after_training_forward():
    """copy.deepcopy works on a fresh model and after a forward with gradients (torch's legacy
    weight norm fails there); the copy computes the same outputs and gradients flow as before."""
    import copy

    torch.manual_seed(0)
    conv = weight_norm(torch.nn.Conv1d(3, 4, 3))
    copy.deepcopy(conv)  # fresh
    x = torch.randn(2, 3, 9)
    y = conv(x)
    twin = copy.deepcopy(conv)  # after a forward with gradients enabled
    y.square().sum().backward()
    assert conv.weight_g.grad is not None and conv.weight_v.grad is not None
    torch.testing.assert_close(twin(x), y.detach())
    assert not conv.weight.requires_grad  # nothing graph-connected stays on the module
    remove_weight_norm(conv)
    assert not conv._forward_hooks and not conv._forward_pre_hooks
    torch.testing.assert_close(conv(x), y.detach())
