import numpy as np
import pytest

from pdeml.solvers.fields import gaussian_random_field, piecewise_constant
from pdeml.solvers.problems import DarcyFlow, make_problem


def manufactured(s: int) -> float:
    """Max-norm error of the Darcy solver against u = sin(pi x) sin(pi y), a = 1 + x + y^2."""
    prob = DarcyFlow(resolution=s)
    x = prob.coords()["x"]
    X, Y = np.meshgrid(x, x)  # rows are y, columns are x
    u = np.sin(np.pi * X) * np.sin(np.pi * Y)
    a = 1 + X + Y**2
    f = -(
        np.pi * np.cos(np.pi * X) * np.sin(np.pi * Y)
        + 2 * Y * np.pi * np.sin(np.pi * X) * np.cos(np.pi * Y)
        - 2 * np.pi**2 * a * u
    )
    return float(np.abs(prob.solve(a, f) - u).max())


def test_manufactured_solution_converges_at_declared_order():
    sizes = np.array([17, 33, 65, 129])
    errors = np.array([manufactured(s) for s in sizes])
    h = 1.0 / (sizes - 1)
    slope = np.polyfit(np.log(h), np.log(errors), 1)[0]
    assert abs(slope - DarcyFlow.order) < 0.15, (slope, errors)
    assert errors[-1] < 1e-3


def test_assembled_matrix_is_spd_and_residual_small():
    prob = DarcyFlow(resolution=20)
    a = prob.draw_coefficient(np.random.default_rng(0))
    A, b = prob.assemble(a)
    assert abs(A - A.T).max() < 1e-9
    assert np.linalg.eigvalsh(A.toarray()).min() > 0
    u = prob.solve(a)
    assert np.abs(u[0]).max() == 0 and np.abs(u[:, -1]).max() == 0
    r = A @ u[1:-1, 1:-1].ravel() - b
    assert np.linalg.norm(r) <= 1e-10 * np.linalg.norm(b)


def test_piecewise_constant_field_takes_two_values_and_is_balanced():
    rng = np.random.default_rng(1)
    a = np.stack([piecewise_constant((32, 32), rng) for _ in range(50)])
    assert set(np.unique(a)) == {3.0, 12.0}
    assert 0.3 < (a == 12.0).mean() < 0.7


def test_grf_is_resolution_consistent():
    coarse = gaussian_random_field((17, 17), np.random.default_rng(5))
    fine = gaussian_random_field((33, 33), np.random.default_rng(5))
    np.testing.assert_allclose(fine[::2, ::2], coarse, atol=1e-12)


def test_periodic_grf_statistics_match_spectrum():
    # The pointwise variance of the KL expansion is sum(coef^2); check it empirically.
    rng = np.random.default_rng(2)
    samples = np.stack([gaussian_random_field(16, rng, boundary="periodic") for _ in range(4000)])
    k = np.arange(1, 32)
    lam = np.concatenate([[0.0], np.repeat((2 * np.pi * k) ** 2, 2)])[:64]
    expected = np.sum((3.0**1.5) ** 2 * (lam + 9.0) ** -2.0)
    assert abs(samples.var() / expected - 1) < 0.08


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"resolution": 2}, "resolution"),
        ({"coefficient": "banana"}, "coefficient"),
        ({"nonsense": 1}, "bad options"),
    ],
)
def test_bad_options_raise_one_line_errors(kwargs, msg):
    with pytest.raises(ValueError, match=msg) as err:
        make_problem("darcy", **kwargs)
    assert "\n" not in str(err.value)


def test_unknown_problem():
    with pytest.raises(ValueError, match="unknown problem 'nope'; available: .*darcy"):
        make_problem("nope")


def test_solve_fine_store_coarse_matches_a_finer_reference_better():
    # The log-normal coefficient is the same continuous field on every grid (KL expansion), so
    # storing every 4th node of a 65-node solve must beat a direct 17-node solve against a
    # 129-node reference on the same 17 nodes (second order: about 16x smaller error).
    def u(resolution, solver_resolution=None):
        p = DarcyFlow(resolution=resolution, solver_resolution=solver_resolution,
                      coefficient="lognormal", solver="direct")
        return p.sample(np.random.default_rng(3))

    ref = u(17, 129)
    fine, coarse = u(17, 65), u(17)
    assert fine["u"].shape == fine["a"].shape == (17, 17)
    assert np.array_equal(fine["a"], ref["a"])  # the same field at the stored nodes
    err_fine = np.abs(fine["u"] - ref["u"]).max()
    err_coarse = np.abs(coarse["u"] - ref["u"]).max()
    assert err_fine < err_coarse / 8
    with pytest.raises(ValueError, match="multiple of"):
        DarcyFlow(resolution=17, solver_resolution=30)
