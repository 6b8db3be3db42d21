"""LSM: automatic padding, patches, the latent spectral transition, scales, devices."""

import math

import pytest
import torch

from pdeml.operators import LSM
from pdeml.operators.lsm import NeuralSpectralBlock

torch.manual_seed(0)


def small(**kw):
    kw = {"hidden_channels": 8, "n_scales": 3, "n_heads": 2, "patches": 2} | kw
    return LSM(1, 1, **kw)


@pytest.mark.parametrize("d,size", [(1, 13), (2, 9), (2, 50), (3, 5)])
def test_any_grid_is_padded_to_the_rule_and_cropped_back(d, size):
    net = small(n_dim=d)
    assert net.multiple() == 4  # 3 scales: two halvings; 2 patches at the finest scale
    assert net(torch.randn(2, 1, *([size] * d))).shape == (2, 1, *([size] * d))


def test_multiple_follows_scales_and_patches():
    assert LSM(1, 1, n_scales=4, patches=4).multiple() == 8
    assert LSM(1, 1, n_scales=2, patches=8).multiple() == 8
    assert LSM(1, 1, n_scales=3, patches=3).multiple() == 12  # lcm(3, 2 * 1, 4 * 1)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_patchify_round_trip(d):
    block = NeuralSpectralBlock(8, d, 2, n_tokens=3, n_basis=4, n_heads=2)
    x = torch.randn(3, 8, *([4, 6, 2][:d]))
    tokens, sizes = block._patchify(x)
    assert tokens.shape == (3 * 2**d, 2, math.prod(sizes) // 2**d, 4)
    assert torch.equal(block._unpatchify(tokens, 3, sizes), x)


def test_patches_are_independent_below_the_attention():
    # One spectral block sees each patch alone: changing one patch leaves the others be.
    block = NeuralSpectralBlock(8, 2, 2, n_tokens=3, n_basis=4, n_heads=2).eval()
    x = torch.randn(1, 8, 8, 8)
    y = x.clone()
    y[..., :4, :4] += 1.0  # the top-left patch only
    a, b = block(x), block(y)
    assert torch.allclose(a[..., 4:, :], b[..., 4:, :])
    assert torch.allclose(a[..., :, 4:], b[..., :, 4:])
    assert not torch.allclose(a[..., :4, :4], b[..., :4, :4])


def test_spectral_transition_is_a_trigonometric_series_per_channel():
    block = NeuralSpectralBlock(4, 1, 1, n_tokens=1, n_basis=3, n_heads=1).double()
    z = torch.linspace(-1, 1, 5, dtype=torch.float64)
    w = block.spectral.detach()
    k = torch.arange(1, 4, dtype=torch.float64) * math.pi / 3
    angles = z[:, None] * k
    manual = z + (angles.sin() @ w[0, :3] + angles.cos() @ w[0, 3:])
    basis = torch.cat([(z[:, None, None] * block.freqs).sin(), (z[:, None, None] * block.freqs)
                       .cos()], -1)  # (5, 1, 6): channel 0's tokens
    assert torch.allclose(z + torch.einsum("tck,k->t", basis, w[0]), manual)


def test_every_scale_contributes():
    net = small().eval()
    x = torch.randn(1, 1, 16, 16)
    before = net(x)
    with torch.no_grad():
        net.spectral[-1].spectral.add_(1.0)  # the coarsest scale's transition
    assert not torch.allclose(net(x), before, atol=1e-6)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="n_heads"):
        LSM(1, 1, hidden_channels=6, n_heads=4)
    with pytest.raises(ValueError, match="1-3 spatial dims"):
        LSM(1, 1, n_dim=4)


def test_device_and_dtype_follow_the_input():
    net = small().to("meta", torch.float64)
    out = net(torch.empty(2, 1, 10, 10, device="meta", dtype=torch.float64))
    assert out.device.type == "meta" and out.dtype == torch.float64


def test_patch_size_mode_is_the_default_and_follows_the_grid():
    net = LSM(1, 1)
    assert net.patches is None and net.multiple() == 2 ** 3 * 4  # 4 scales, 4-point patches
    block = net.spectral[0]
    x = torch.randn(1, 32, 64, 32)
    tokens, _ = block._patchify(x)
    assert tokens.shape[0] == 16 * 8  # 4 x 4-point patches: the count follows each axis
    assert torch.equal(block._unpatchify(tokens, 1, (64, 32)), x)
    assert net.spectral[-1]._counts((8, 8)) == [2, 2]  # coarsest scale of a 64 grid
    y = LSM(1, 1, hidden_channels=8, n_heads=2, n_scales=2, patch_size=3)(torch.randn(2, 1, 7, 13))
    assert y.shape == (2, 1, 7, 13)  # padded to multiples of 6, cropped back


def test_patch_size_blocks_are_independent_below_the_attention():
    block = NeuralSpectralBlock(8, 2, None, n_tokens=3, n_basis=4, n_heads=2,
                                patch_size=4).eval()
    x = torch.randn(1, 8, 8, 12)
    y = x.clone()
    y[..., 4:, 8:] += 1.0  # one 4 x 4 patch of the 2 x 3
    a, b = block(x), block(y)
    assert torch.allclose(a[..., :4, :], b[..., :4, :]) and torch.allclose(a[..., :8], b[..., :8])
    assert not torch.allclose(a[..., 4:, 8:], b[..., 4:, 8:])
    with pytest.raises(ValueError, match="either patches or patch_size"):
        NeuralSpectralBlock(8, 2, 2, n_tokens=3, n_basis=4, n_heads=2, patch_size=4)


def test_widths_are_the_reference_u_nets():
    # thuml's LSM_2D (bilinear): encoder widths w, 2w, 4w, 8w and 8w (the coarsest does not
    # double); each decoder hands on the width of the scale above, the finest its own.
    w = 8
    net = LSM(1, 1, hidden_channels=w, n_scales=5, n_heads=2)
    enc_out = [e.net[3].out_channels for e in net.encoders]
    assert enc_out == [w, 2 * w, 4 * w, 8 * w, 8 * w]
    dec = [(d.net[0].in_channels, d.net[0].out_channels, d.net[3].out_channels)
           for d in net.decoders]
    assert dec == [(2 * w, w, w), (4 * w, 2 * w, w), (8 * w, 4 * w, 2 * w),
                   (16 * w, 8 * w, 4 * w)]
    assert [LSM(1, 1, hidden_channels=w, n_scales=k, n_heads=2).encoders[-1].net[3].out_channels
            for k in (1, 2, 3)] == [w, w, 2 * w]
