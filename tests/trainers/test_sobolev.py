"""Sobolev-norm losses against analytic norms, finite differences, and the config plumbing."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from pdeml.trainers.losses import LpLoss, SobolevLoss, make_loss, sobolev_norm

ORDERS = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0)
TWO_PI = 2 * math.pi


def grid(n: int, d: int) -> list[torch.Tensor]:
    """Periodic unit-torus coordinates ``j / n`` per axis, float64."""
    x = torch.arange(n, dtype=torch.float64) / n
    return list(torch.meshgrid(*[x] * d, indexing="ij"))


def symbol(k_sq: float, s: float, weighting: str, alpha: float = 1.0) -> float:
    if weighting == "integer":
        return (1 + k_sq) ** s
    base = alpha + 4 * math.pi**2 * k_sq
    return 0.0 if base == 0 and s != 0 else base**s


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("weighting", ["integer", "angular"])
def test_single_fourier_mode(d, weighting):
    n = 16 if d == 3 else 24
    k = (3, -2, 1)[:d]
    phase = TWO_PI * sum(ki * xi for ki, xi in zip(k, grid(n, d), strict=True))
    f = (2.0 * torch.cos(phase + 0.3))[None, None]
    k_sq = sum(ki**2 for ki in k)
    for s in ORDERS:
        expected = math.sqrt(0.5 * 4.0 * symbol(k_sq, s, weighting, 0.7))  # mean cos^2 = 1/2
        got = float(sobolev_norm(f, s, weighting=weighting, alpha=0.7))
        assert got == pytest.approx(expected, rel=1e-10), (s, got, expected)


@pytest.mark.parametrize("weighting", ["integer", "angular"])
def test_sum_of_modes_channels_and_mean(weighting):
    # Distinct frequencies are orthogonal: squared norms add (channels are averaged); the
    # constant mode weighs w(0) = 1 (integer) or alpha^s (angular).
    gen = torch.Generator().manual_seed(0)
    X, Y = grid(32, 2)
    modes = [(0, 0), (1, 0), (2, 5), (-4, 3), (7, 7), (0, 9)]
    amps = torch.rand(2, len(modes), generator=gen, dtype=torch.float64) + 0.5
    f = torch.zeros(1, 2, 32, 32, dtype=torch.float64)
    for c, ((kx, ky), i) in itertools.product(range(2), zip(modes, range(len(modes)),
                                                              strict=True)):
        if (kx, ky) == (0, 0):
            f[0, c] += amps[c, i]
        else:
            f[0, c] += amps[c, i] * torch.sin(TWO_PI * (kx * X + ky * Y) + c)
    for s in ORDERS:
        expected = 0.0
        for c, ((kx, ky), i) in itertools.product(range(2), zip(modes, range(len(modes)),
                                                                  strict=True)):
            mean_sq = 1.0 if (kx, ky) == (0, 0) else 0.5
            expected += mean_sq * float(amps[c, i]) ** 2 * symbol(kx**2 + ky**2, s, weighting,
                                                                   2.0)
        got = float(sobolev_norm(f, s, weighting=weighting, alpha=2.0)) ** 2
        assert got == pytest.approx(expected / 2, rel=1e-10), s


def test_alpha_zero_is_the_seminorm_and_h0_is_l2():
    X, Y = grid(16, 2)
    wave = torch.cos(TWO_PI * 2 * X)
    f = (3.0 + wave)[None, None]
    for s in (-1.0, 1.0):
        semi = float(sobolev_norm(f, s, weighting="angular", alpha=0.0))
        assert semi == pytest.approx(math.sqrt(0.5 * (16 * math.pi**2) ** s), rel=1e-10)
    g = torch.randn(3, 2, 16, 16, dtype=torch.float64)
    h0 = SobolevLoss(0.0, relative=False, reduction="none")(g, torch.zeros_like(g))
    l2 = LpLoss(2.0, relative=False, reduction="none")(g, torch.zeros_like(g))
    assert torch.allclose(h0, l2, rtol=1e-12)


def test_nyquist_and_odd_grids():
    # The Nyquist cosine of an even grid has |k| = n/2 and mean square 1; odd grids work.
    n = 16
    x = torch.arange(n, dtype=torch.float64) / n
    f = torch.cos(TWO_PI * (n // 2) * x)[None, None]
    assert float(sobolev_norm(f, 1.0)) ** 2 == pytest.approx(1 + (n // 2) ** 2, rel=1e-12)
    x = torch.arange(15, dtype=torch.float64) / 15
    f = torch.sin(TWO_PI * 7 * x)[None, None]
    assert float(sobolev_norm(f, -1.0)) ** 2 == pytest.approx(0.5 / 50, rel=1e-12)


def smooth_periodic(n: int) -> torch.Tensor:
    X, Y = grid(n, 2)
    return torch.exp(torch.sin(TWO_PI * X) + 0.5 * torch.cos(TWO_PI * (X - 2 * Y)))[None, None]


@pytest.mark.parametrize("weighting", ["integer", "angular"])
def test_spectral_h1_agrees_with_finite_differences(weighting):
    # Not band-limited (exp of trig), so the spectral norm is the (spectrally accurate)
    # reference and the finite-difference one converges to it at second order.
    errors = []
    for n in (32, 64, 128):
        f = smooth_periodic(n)
        ref = float(sobolev_norm(f, 1, weighting=weighting))
        fd = float(sobolev_norm(f, 1, weighting=weighting, method="fd"))
        errors.append(abs(fd - ref) / ref)
    assert errors[-1] < 2e-3, errors
    rates = [math.log2(a / b) for a, b in itertools.pairwise(errors)]
    assert all(1.8 < r < 2.2 for r in rates), rates
    f = smooth_periodic(128)
    h2 = float(sobolev_norm(f, 2, weighting=weighting))
    assert float(sobolev_norm(f, 2, weighting=weighting, method="fd")) == pytest.approx(h2,
                                                                                      rel=2e-2)


def exp_h1_sq(weighting: str) -> float:
    """Analytic squared H1 norm of ``exp(x + 2 y)`` on the unit square."""
    ix, iy = (math.e**2 - 1) / 2, (math.e**4 - 1) / 4
    l2 = ix * iy
    grad = (1 + 4) * l2  # |f_x|^2 + |f_y|^2 = (1 + 4) f^2
    return l2 + grad / (4 * math.pi**2) if weighting == "integer" else 1.0 * l2 + grad


@pytest.mark.parametrize("grid_kind", ["node", "cell"])
def test_non_periodic_h1_converges_to_the_analytic_norm(grid_kind):
    # exp(x + 2y) has non-zero normal derivatives: the cosine series converges at first order
    # in H1, finite differences at second order; both reach the analytic value.
    expected = math.sqrt(exp_h1_sq("integer"))
    errors = {"spectral": [], "fd": []}
    for n in (33, 65, 129):
        t = (torch.linspace(0, 1, n, dtype=torch.float64) if grid_kind == "node"
             else (torch.arange(n, dtype=torch.float64) + 0.5) / n)
        X, Y = torch.meshgrid(t, t, indexing="ij")
        f = torch.exp(X + 2 * Y)[None, None]
        for method in errors:
            got = float(sobolev_norm(f, 1, periodic=False, method=method, grid=grid_kind))
            errors[method].append(abs(got / expected - 1))
    assert errors["spectral"][-1] < 2e-3 and errors["fd"][-1] < 2e-4, errors
    assert errors["spectral"][0] / errors["spectral"][-1] > 3.0  # about 4: first order
    assert errors["fd"][0] / errors["fd"][-1] > 12.0  # about 16: second order


def test_cosine_modes_have_their_analytic_norms_any_order():
    # cos(pi m x) on [0, 1] is a cosine-series mode: xi = pi m, i.e. k = m / 2 cycles per unit.
    n = 41
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    for m in (0, 1, 3):
        f = torch.cos(math.pi * m * x)[None, None]
        mean_sq = 1.0 if m == 0 else 0.5
        for s in ORDERS:
            expected = math.sqrt(mean_sq * (1 + (m / 2) ** 2) ** s)
            assert float(sobolev_norm(f, s, periodic=False)) == pytest.approx(expected,
                                                                              rel=1e-10)


def test_mixed_periodicity_and_domain_length():
    # Periodic in x on [0, 2), walls in y on [0, 1]: sin(pi x) cos(pi y), xi = (pi, pi).
    nx, ny = 32, 21
    x = torch.arange(nx, dtype=torch.float64) * 2 / nx
    y = torch.linspace(0, 1, ny, dtype=torch.float64)
    X, Y = torch.meshgrid(x, y, indexing="ij")
    f = (torch.sin(math.pi * X) * torch.cos(math.pi * Y))[None, None]
    got = float(sobolev_norm(f, -1, weighting="angular", alpha=1.0, periodic=[True, False],
                             length=[2.0, 1.0]))
    assert got == pytest.approx(math.sqrt(0.25 / (1 + 2 * math.pi**2)), rel=1e-10)


def test_relative_loss_reduction_and_gradients():
    gen = torch.Generator().manual_seed(1)
    target = torch.randn(4, 2, 16, 16, generator=gen, dtype=torch.float64)
    pred = (target + 0.1 * torch.randn(4, 2, 16, 16, generator=gen, dtype=torch.float64))
    pred.requires_grad_(True)
    loss_fn = SobolevLoss(s=-1.0, relative=True, reduction="none")
    rel = loss_fn(pred, target)
    num = sobolev_norm(pred - target, -1.0)
    assert torch.allclose(rel, num / sobolev_norm(target, -1.0))
    scaled = SobolevLoss(-1.0)(3 * pred.detach(), 3 * target)
    assert float(scaled) == pytest.approx(float(rel.detach().mean()))
    rel.sum().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    # The gradient of the squared norm is the weighted difference: a descent step reduces it.
    step = SobolevLoss(1.0, relative=False)
    p = pred.detach().clone().requires_grad_(True)
    before = step(p, target)
    before.backward()
    with torch.no_grad():
        after = step(p - 1e-3 * p.grad, target)
    assert float(after) < float(before.detach())


def test_bad_input():
    with pytest.raises(ValueError, match="non-negative integer s"):
        SobolevLoss(s=-1.0, method="fd")
    with pytest.raises(ValueError, match="unknown weighting"):
        SobolevLoss(weighting="bessel")
    with pytest.raises(ValueError, match="finite"):
        SobolevLoss(s=float("nan"))
    with pytest.raises(ValueError, match="alpha"):
        SobolevLoss(alpha=-1.0, weighting="angular")
    with pytest.raises(ValueError, match="1-3 spatial dims"):
        sobolev_norm(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="differ"):
        SobolevLoss()(torch.zeros(1, 1, 8), torch.zeros(1, 1, 9))
    with pytest.raises(ValueError, match="2 entries for 1 spatial dims"):
        sobolev_norm(torch.zeros(1, 1, 8), periodic=[True, False])
    with pytest.raises(ValueError, match="at least 3 points"):
        sobolev_norm(torch.zeros(1, 1, 2), periodic=False)


def test_make_loss_names_and_mappings():
    h1 = make_loss("h1")
    assert isinstance(h1, SobolevLoss) and h1.s == 1.0 and h1.relative
    assert make_loss("H-1").s == -1.0 and make_loss("h0.5").s == 0.5
    loss = make_loss({"name": "sobolev", "s": -1, "relative": False, "periodic": False,
                      "weighting": "angular", "alpha": 0})
    assert (loss.s, loss.relative, loss.norm_kwargs["alpha"]) == (-1.0, False, 0.0)
    again = make_loss(loss.config)
    assert again.config == loss.config
    assert make_loss({"name": "l2", "relative": False}).config["relative"] is False
    assert make_loss(make_loss("l1").config).p == 1.0
    with pytest.raises(ValueError, match="unknown loss 'h1x'"):
        make_loss("h1x")
    with pytest.raises(ValueError, match="bad settings for loss 'sobolev'"):
        make_loss({"name": "sobolev", "order": 2})
    with pytest.raises(ValueError, match="needs a 'name'"):
        make_loss({"s": 1})


def test_operator_module_takes_the_loss_from_config():
    from pdeml.operators import FNO
    from pdeml.trainers.module import OperatorModule

    net = FNO(1, 1, n_modes=(4, 4), hidden_channels=4, n_layers=1)
    spec = {"name": "sobolev", "s": 1, "periodic": False, "method": "fd"}
    module = OperatorModule(net, loss=spec)
    assert isinstance(module.loss_fn, SobolevLoss) and module.hparams.loss == spec
    assert OperatorModule(net, loss="h-1").loss_fn.s == -1.0
    # A loss module is stored by its config, so a checkpoint rebuilds the same loss.
    module = OperatorModule(net, loss=SobolevLoss(s=0.5, relative=False))
    rebuilt = OperatorModule(**module.hparams)
    assert rebuilt.loss_fn.config == module.loss_fn.config
    with pytest.raises(ValueError, match="unknown loss"):
        OperatorModule(net, loss="h2x")


def test_train_cli_with_a_sobolev_loss(darcy_dir, tmp_path, capsys):
    from pdeml.cli import main
    from pdeml.evaluate import find_checkpoint

    out = tmp_path / "run"
    code = main(["train", "--set", f"data.train={darcy_dir / 'train.h5'}",
                 "--set", "model.n_modes=[4,4]", "--set", "model.hidden_channels=4",
                 "--set", "model.n_layers=1", "--set", "trainer.max_epochs=1",
                 "--set", "trainer.enable_progress_bar=false",
                 "--set", "module.loss={name: sobolev, s: 1, periodic: false}",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    ckpt = torch.load(find_checkpoint(out), weights_only=False)
    assert ckpt["hyper_parameters"]["loss"] == {"name": "sobolev", "s": 1, "periodic": False}
    code = main(["train", "--set", f"data.train={darcy_dir / 'train.h5'}",
                 "--set", "module.loss=h1y", "--out", str(tmp_path / "bad")])
    assert code == 1 and "unknown loss 'h1y'" in capsys.readouterr().err
