"""The operator contract: every pdeml operator passes these (FNO now; others as they land)."""

import io
import math

import pytest
import torch

from pdeml.operators import FNO, GNOT, LSM, MGTFNO, T1, TFNO, MgNO, build
from pdeml.operators.layers import DomainPadding, SpectralConv

torch.manual_seed(0)

FACTORIES = {
    "FNO": lambda d, cin, cout: FNO(cin, cout, n_modes=(6,) * d, hidden_channels=8, n_layers=2),
    "T1": lambda d, cin, cout: T1(cin, cout, n_modes=(6,) * d, hidden_channels=8, n_layers=2),
    "TFNO": lambda d, cin, cout: TFNO(cin, cout, n_modes=(6,) * d, hidden_channels=8,
                                      n_layers=2, rank=0.3),
    "MGTFNO": lambda d, cin, cout: MGTFNO(cin, cout, n_modes=(6,) * d, hidden_channels=8,
                                          n_layers=2, rank=0.3),
    "MgNO": lambda d, cin, cout: MgNO(cin, cout, hidden_channels=4, n_layers=2, n_levels=2,
                                      n_dim=d),
    "LSM": lambda d, cin, cout: LSM(cin, cout, n_dim=d, hidden_channels=8, n_scales=2,
                                    n_heads=2, patches=2),
    "GNOT": lambda d, cin, cout: GNOT(cin, cout, space_dim=d, hidden_channels=8, n_layers=1,
                                      n_heads=2, n_experts=2),
}


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("d,size", [(1, 17), (1, 16), (2, 12), (2, 9), (3, 8), (3, 7)])
def test_shapes(name, d, size):
    net = FACTORIES[name](d, 3, 2)
    assert net(torch.randn(2, 3, *([size] * d))).shape == (2, 2, *([size] * d))


# Every operator accepts any grid (issue 20): odd, prime-ish and non-square sizes.
@pytest.mark.parametrize("name", [n for n in FACTORIES if n != "GNOT"])
@pytest.mark.parametrize("shape", [(63, 63), (33, 17), (48, 80)])
def test_any_grid(name, shape):
    net = FACTORIES[name](2, 1, 1)
    y = net(torch.randn(1, 1, *shape))
    assert y.shape == (1, 1, *shape) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", FACTORIES)
def test_builds_from_channels_alone(name):
    net = build({"name": name, "kwargs": {"in_channels": 2, "out_channels": 1}})
    x = torch.randn(1, 2, *([16] * net.n_dim))
    assert net(x).shape == (1, 1, *([16] * net.n_dim))


@pytest.mark.parametrize("name", FACTORIES)
def test_every_parameter_gets_a_gradient(name):
    net = FACTORIES[name](2, 1, 1)
    net(torch.randn(2, 1, 12, 12)).pow(2).mean().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", FACTORIES)
def test_config_and_state_dict_round_trip(name):
    net = FACTORIES[name](2, 1, 1).eval()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    clone = build(net.config).eval()  # batch-norm models (LSM) differ in train mode
    clone.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.randn(2, 1, 12, 12)
    with torch.no_grad():
        assert torch.equal(clone(x), net(x))


def test_unknown_operator_and_bad_inputs():
    with pytest.raises(ValueError, match="unknown operator 'nope'"):
        build({"name": "nope", "kwargs": {}})
    net = FNO(1, 1, n_modes=(4, 4))
    with pytest.raises(ValueError, match="2 spatial dims"):
        net(torch.randn(1, 1, 8))
    with pytest.raises(ValueError, match="1 input channels, got 3"):
        net(torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("d,size", [(1, 15), (1, 16), (2, 11), (2, 12), (3, 7)])
def test_spectral_conv_commutes_with_circular_shifts(d, size):
    conv = SpectralConv(3, 2, (6,) * d)
    x = torch.randn(2, 3, *([size] * d), dtype=torch.float64)
    conv = conv.double()
    shifts, dims = tuple(range(1, d + 1)), tuple(range(2, 2 + d))
    a = conv(torch.roll(x, shifts, dims))
    b = torch.roll(conv(x), shifts, dims)
    assert torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("size", [12, 13])
def test_fno_without_position_or_padding_is_shift_equivariant(size):
    net = FNO(1, 1, n_modes=(6, 6), hidden_channels=8, n_layers=3,
              positional_embedding=False).double()
    x = torch.randn(2, 1, size, size, dtype=torch.float64)
    a = net(torch.roll(x, (3, 5), (2, 3)))
    b = torch.roll(net(x), (3, 5), (2, 3))
    assert torch.allclose(a, b, atol=1e-10)
    # The positional embedding breaks the symmetry on purpose: the test can tell.
    net_pos = FNO(1, 1, n_modes=(6, 6), hidden_channels=8, n_layers=3).double()
    c, e = net_pos(torch.roll(x, (3, 5), (2, 3))), torch.roll(net_pos(x), (3, 5), (2, 3))
    assert not torch.allclose(c, e, atol=1e-6)


def band_limited(n: int, d: int) -> torch.Tensor:
    """A fixed field with frequencies |k| <= 2 on an n-point periodic grid."""
    axes = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) / n] * d, indexing="ij")
    f = torch.zeros([n] * d, dtype=torch.float64)
    for k, phase in ((1, 0.3), (2, 1.1)):
        f = f + torch.cos(2 * math.pi * k * sum(axes) + phase)
    other = 0.5 if d == 1 else torch.cos(2 * math.pi * axes[-1])
    f = f + torch.sin(2 * math.pi * axes[0]) * other
    return f[None, None].expand(1, 2, *([n] * d)).clone()


@pytest.mark.parametrize("d,n", [(1, 16), (2, 16), (2, 15), (3, 9)])
def test_band_limited_input_at_n_and_2n_match(d, n):
    conv = SpectralConv(2, 3, (8,) * d).double()
    coarse = conv(band_limited(n, d))
    fine = conv(band_limited(2 * n, d))
    sub = fine[(slice(None), slice(None), *([slice(None, None, 2)] * d))]
    assert torch.allclose(sub, coarse, atol=1e-10)


def test_modes_clamp_on_coarse_grids_without_nyquist_double_count():
    # With 16 requested modes (|k| <= 8) on an 8-point grid only |k| <= 3 fit: a pure
    # Nyquist mode must be filtered out entirely rather than counted twice.
    conv = SpectralConv(1, 1, (16, 16)).double()
    x = torch.cos(math.pi * torch.arange(8, dtype=torch.float64))  # (-1)^j: the Nyquist mode
    field = (x[:, None] * torch.ones(8, dtype=torch.float64))[None, None]
    assert conv(field).abs().max() < 1e-12


def test_domain_padding_round_trip_on_odd_sizes():
    pad = DomainPadding(0.25)
    x = torch.randn(1, 2, 13, 7)
    padded = pad.pad(x)
    assert padded.shape == (1, 2, 13 + 4, 7 + 2)
    assert torch.equal(pad.unpad(padded, (13, 7)), x)


# Reduced precision (issue 29): every operator on the odd and non-square grids, under bf16
# autocast (Lightning's bf16-mixed: forward and backward) and with bf16 weights (bf16-true).
# The FFT paths (MgNO's resampling, SpectralConv's fft transform) have no bf16 kernel on CPU
# and run in fp32 regions; without them bf16-true fails on these grids.
BF16_GRIDS = [(63, 63), (33, 17), (48, 80)]
BF16_FORWARD_TOL = 5e-2  # relative L2 to fp32; measured <= 4.4% (LSM), <= 1.1% for the rest
BF16_GRAD_TOL = 1e-1  # measured <= 4% (GNOT)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("shape", BF16_GRIDS)
def test_any_grid_bf16_mixed(name, shape):
    torch.manual_seed(0)
    net = FACTORIES[name](2, 1, 1)
    x, target = torch.randn(2, 1, *shape), torch.randn(2, 1, *shape)
    grads = []
    for autocast in (False, True):
        net.zero_grad()
        with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            y = net(x)
        ((y.float() - target) ** 2).mean().backward()
        grads.append((y, torch.cat([p.grad.flatten() for p in net.parameters()])))
    (y32, g32), (y16, g16) = grads
    assert y16.shape == (2, 1, *shape) and torch.isfinite(y16).all()
    # it really ran in bf16 (a no-op autocast would give fp32's exact output) ...
    assert y16.dtype == torch.bfloat16 and _rel(y16, y32) > 1e-4
    # ... and stays near fp32, gradients included
    assert _rel(y16, y32) < BF16_FORWARD_TOL
    assert torch.isfinite(g16).all() and _rel(g16, g32) < BF16_GRAD_TOL


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("shape", BF16_GRIDS)
def test_any_grid_bf16_weights(name, shape):
    torch.manual_seed(0)
    net = FACTORIES[name](2, 1, 1).eval()  # LSM's batch norm: running statistics
    x = torch.randn(2, 1, *shape)
    with torch.no_grad():
        y32 = net(x)
        y16 = net.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert y16.dtype == torch.bfloat16 and torch.isfinite(y16).all()
    assert 1e-4 < _rel(y16, y32) < BF16_FORWARD_TOL


@pytest.mark.parametrize("transform", ["fft", "dft"])
@pytest.mark.parametrize("shape", BF16_GRIDS)
def test_spectral_conv_bf16_both_transforms(transform, shape):
    conv = SpectralConv(3, 2, (12, 12), transform=transform)
    x = torch.randn(2, 3, *shape)
    want = conv(x)
    with torch.autocast("cpu", torch.bfloat16):
        mixed = conv(x.bfloat16())
    true = conv.to(torch.bfloat16)(x.bfloat16())
    for got in (mixed, true):
        assert got.dtype == torch.bfloat16  # handed back in the input's dtype
        assert 1e-4 < _rel(got, want) < 2e-2


def test_mgno_circular_resampling_bf16_on_odd_grids():
    net = MgNO(1, 1, hidden_channels=4, n_layers=2, n_levels=3, padding="circular").eval()
    x = torch.randn(1, 1, 33, 17)
    with torch.no_grad():
        want = net(x)
        got = net.to(torch.bfloat16)(x.bfloat16())
    assert got.shape == want.shape and 1e-4 < _rel(got, want) < BF16_FORWARD_TOL


def test_spectral_conv_float16_does_not_overflow_on_large_grids():
    # Unscaled forward DFT sums over 256^2 points pass float16's 65504 (16-mixed on GPU).
    conv = SpectralConv(2, 2, (8, 8), transform="dft")
    x = torch.full((1, 2, 256, 256), 2.0) + 0.1 * torch.randn(1, 2, 256, 256)
    want = conv(x)
    got = conv.half()(x.half())
    assert torch.isfinite(got).all() and _rel(got, want) < 2e-2
