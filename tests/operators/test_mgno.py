"""MgNO: a V-cycle that is a real multigrid, grid rules, padding modes, linearity."""

import pytest
import torch

from pdeml.operators import MgNO
from pdeml.operators.mgno import MultigridConv

STENCIL = torch.tensor([[[-1.0, 2.0, -1.0]]], dtype=torch.float64)


def poisson_vcycle(n: int, levels: int) -> MultigridConv:
    """A 1-D V-cycle whose convolutions hold the classical weights for -u'' = f."""
    mg = MultigridConv(1, 1, 1, levels, n_pre=2, n_post=2, padding="zeros").double()
    h = 1.0 / (n + 1)
    with torch.no_grad():
        for level in range(levels):
            hl = h * 2**level
            if not isinstance(mg.A[level], torch.nn.Identity):
                mg.A[level].weight.copy_(STENCIL / hl**2)
            for smoother in [*mg.pre[level], *mg.post[level]]:  # weighted Jacobi, omega 2/3
                smoother.weight.copy_(torch.tensor([[[0.0, 1.0, 0.0]]]) * (2 / 3) * hl**2 / 2)
        for r in mg.restrict:  # full weighting
            r.weight.copy_(torch.tensor([[[0.25, 0.5, 0.25]]]))
        for p in mg.prolong:  # linear interpolation
            p.weight.copy_(torch.tensor([[[0.5, 1.0, 0.5, 0.0]]]))
    return mg


def residual_after(mg: MultigridConv, f: torch.Tensor, cycles: int) -> float:
    n = f.shape[-1]
    A = lambda u: torch.nn.functional.conv1d(u, STENCIL * (n + 1) ** 2, padding=1)  # noqa: E731
    u = torch.zeros_like(f)
    with torch.no_grad():
        for _ in range(cycles):
            u = u + mg(f - A(u))
        return float((f - A(u)).norm() / f.norm())


def test_classical_weights_turn_the_layer_into_a_multigrid_solver():
    # With textbook weights the parameterization is a multigrid preconditioner: iterating it
    # reduces the Poisson residual far faster than its own smoother alone (one level).
    f = torch.randn(1, 1, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    smoother_only = residual_after(poisson_vcycle(64, 1), f, 5)
    multigrid = residual_after(poisson_vcycle(64, 4), f, 5)
    assert multigrid < smoother_only / 3, (multigrid, smoother_only)


def test_vcycle_is_linear_and_uses_every_level():
    mg = MultigridConv(2, 3, 2, 3, padding="zeros").double()
    f, g = torch.randn(2, 2, 2, 16, 16, dtype=torch.float64)
    assert torch.allclose(mg(2 * f - 3 * g), 2 * mg(f) - 3 * mg(g), atol=1e-12)
    before = mg(f)
    with torch.no_grad():
        mg.pre[2][0].weight.add_(0.1)  # the coarsest smoother
    assert not torch.allclose(mg(f), before, atol=1e-6)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_levels_for_counts_exact_and_padded_grids(d):
    assert MgNO.levels_for((64,) * d) == 5 and MgNO.levels_for((12,) * d, coarsest=3) == 3
    assert MgNO.levels_for((9,) * d) == 1
    assert MgNO.levels_for((63,) * d, pad=True) == 5 and MgNO.levels_for((9,) * d, pad=True) == 2
    assert MgNO.link_grid({}, (33, 17)) == {"n_levels": 3}  # ceil(17 / 4) = 5 >= 4 > ceil(17 / 8)
    assert MgNO.link_grid({"n_levels": 2}, (64, 64)) == {"n_levels": 2}


@pytest.mark.parametrize("shape", [(63, 63), (33, 17), (48, 80), (10, 12, 9)])
def test_any_grid_is_padded_and_cropped(shape):
    net = MgNO(1, 2, hidden_channels=4, n_layers=2, n_levels=4, n_dim=len(shape)).double()
    x = torch.randn(2, 1, *shape, dtype=torch.float64)
    y = net(x)
    assert y.shape == (2, 2, *shape) and torch.isfinite(y).all()
    # The same as running by hand on the zero-extended grid with the exterior held at zero:
    # perturbing the input changes only what a Dirichlet-like exterior lets through, and the
    # output never depends on values a caller could have placed beyond the grid.
    big = tuple(-(-n // 8) * 8 for n in shape)
    if big != shape:
        x2 = x.clone()
        x2[(0, 0, *(slice(n // 2, n // 2 + 1) for n in shape))] += 1.0
        assert not torch.allclose(net(x2)[0], y[0])  # the whole grid is seen
        assert torch.allclose(net(x2)[1], y[1])  # samples stay independent


def test_padding_leaves_admissible_grids_unchanged_and_is_exact_on_the_exterior():
    torch.manual_seed(0)
    net = MgNO(1, 1, hidden_channels=4, n_layers=2, n_levels=3, positional_embedding=False)
    net = net.double()
    x = torch.randn(1, 1, 14, 13, dtype=torch.float64)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 2))  # the admissible grid is 16 x 16
    # On the padded grid without a mask the exterior cells would feed back into the interior:
    # the masked forward differs from the naive pad-run-crop, and equals a run whose exterior
    # is zeroed after every layer (re-implemented here by hand).
    v = padded
    mask = torch.nn.functional.pad(torch.ones(1, 1, 14, 13, dtype=torch.float64), (0, 3, 0, 2))
    for cycle, pointwise, norm in zip(net.cycles, net.pointwise, net.norms, strict=True):
        v = net.activation(norm(cycle(v) + pointwise(v))) * mask
    by_hand = net.projection(v)[..., :14, :13]
    assert torch.allclose(net(x), by_hand, atol=1e-12)
    assert not torch.allclose(net(x), net(padded)[..., :14, :13], atol=1e-6)


def test_fourier_resample_round_trip_and_periodic_any_grid():
    from pdeml.operators.mgno import fourier_resample
    n = 21
    j = torch.arange(n, dtype=torch.float64) / n
    f = (torch.sin(2 * torch.pi * 3 * j)[:, None] * torch.cos(2 * torch.pi * 5 * j)[None, :])
    f = f[None, None]
    up = fourier_resample(f, (32, 24))
    jj = torch.arange(32, dtype=torch.float64) / 32
    kk = torch.arange(24, dtype=torch.float64) / 24
    exact = torch.sin(2 * torch.pi * 3 * jj)[:, None] * torch.cos(2 * torch.pi * 5 * kk)[None, :]
    assert torch.allclose(up[0, 0], exact, atol=1e-12)  # band-limited data interpolates exactly
    assert torch.allclose(fourier_resample(up, (n, n)), f, atol=1e-12)
    net = MgNO(1, 1, hidden_channels=4, n_layers=2, n_levels=3, padding="circular").double()
    assert net(f).shape == (1, 1, n, n)


def test_circular_padding_commutes_with_coarse_shifts_and_zero_padding_does_not():
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    shift, dims = (4, 8), (2, 3)  # multiples of 2^(n_levels-1): the coarsest grid shifts too
    periodic = MgNO(1, 1, hidden_channels=4, n_layers=2, n_levels=3, padding="circular",
                    positional_embedding=False).double()
    a, b = periodic(torch.roll(x, shift, dims)), torch.roll(periodic(x), shift, dims)
    assert torch.allclose(a, b, atol=1e-10)
    for other in (MgNO(1, 1, hidden_channels=4, n_layers=2, n_levels=3,
                       positional_embedding=False),
                  MgNO(1, 1, hidden_channels=4, n_layers=2, n_levels=3, padding="circular")):
        other = other.double()  # zero padding, or periodic coordinates (the bias function)
        c, e = other(torch.roll(x, shift, dims)), torch.roll(other(x), shift, dims)
        assert not torch.allclose(c, e, atol=1e-4)


def test_no_lifting_first_layer_sees_the_input_channels():
    net = MgNO(3, 2, hidden_channels=8, n_layers=2, n_levels=2, positional_embedding=False)
    assert net.cycles[0].pre[0][0].weight.shape[1] == 3  # S: f (input channels) -> u
    assert net.cycles[0].restrict[0].weight.shape[:2] == (3, 3)
    assert MgNO(3, 2, padding="circular").cycles[0].pre[0][0].weight.shape[1] == 3 + 4


def test_bad_options_raise():
    with pytest.raises(ValueError, match="padding"):
        MgNO(1, 1, padding="reflect")
    with pytest.raises(ValueError, match="1-3 spatial dims"):
        MgNO(1, 1, n_dim=4)


def test_device_and_dtype_follow_the_input():
    net = MgNO(1, 1, hidden_channels=4, n_layers=1, n_levels=2).to("meta", torch.float64)
    assert net(torch.empty(2, 1, 8, 8, device="meta", dtype=torch.float64)).device.type == "meta"
