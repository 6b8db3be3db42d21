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
