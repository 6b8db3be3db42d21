"""The SKR problem suite (Darcy, Poisson, Helmholtz, steady heat) as verified generators."""

import warnings

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from pdeml.solvers.problems import Helmholtz, Poisson, SteadyHeat, make_problem
from pdeml.solvers.problems.linear import STAT_VARIABLES, auto_method

SIZES = np.array([17, 33, 65, 129])


def grid(prob):
    x = prob.coords()["x"]
    return np.meshgrid(x, x)  # rows are y, columns are x


def poisson_error(s):
    prob = Poisson(resolution=s)
    X, Y = grid(prob)
    u = np.sin(np.pi * X) * np.sin(2 * np.pi * Y)
    A, b = prob.assemble(5 * np.pi**2 * u)
    return np.abs(prob.embed(spla.spsolve(A.tocsc(), b)) - u).max()


def heat_error(s):
    # T = exp(x) cos(y) (non-zero on every wall), kappa = 1 + x y.
    prob = SteadyHeat(resolution=s)
    X, Y = grid(prob)
    T, kappa = np.exp(X) * np.cos(Y), 1 + X * Y
    # -div(kappa grad T) = -(kappa Lap T + kappa_x T_x + kappa_y T_y), Lap T = 0 here.
    q = -(Y * np.exp(X) * np.cos(Y) - X * np.exp(X) * np.sin(Y))
    A, b = prob.assemble(kappa, q, T)
    return np.abs(prob.embed(spla.spsolve(A.tocsc(), b), T) - T).max()


def helmholtz_error(s):
    prob = Helmholtz(resolution=s, gamma=0.1)
    X, Y = grid(prob)
    u = np.sin(np.pi * X) * np.sin(np.pi * Y) * (1 + 0.5j * X)
    k = 8 + 2 * np.sin(np.pi * X)
    lap = (-2 * np.pi**2 * u + 2 * 0.5j * np.pi * np.cos(np.pi * X) * np.sin(np.pi * Y))
    f = -lap - k**2 * (1 + 0.1j) * u
    A, b = prob.assemble(k, f)
    return np.abs(prob.embed(spla.spsolve(A.tocsc(), b)) - u).max()


@pytest.mark.parametrize("error,cls", [(poisson_error, Poisson), (heat_error, SteadyHeat),
                                       (helmholtz_error, Helmholtz)])
def test_manufactured_solution_converges_at_declared_order(error, cls):
    errors = np.array([error(s) for s in SIZES])
    slope = np.polyfit(np.log(1.0 / (SIZES - 1)), np.log(errors), 1)[0]
    assert abs(slope - cls.order) < 0.15, (slope, errors)
    assert errors[-1] < 1e-3


@pytest.mark.parametrize("name", ["darcy", "poisson", "heat", "helmholtz"])
@pytest.mark.parametrize("solver", ["direct", "amg", "gmres", "gcrodr", "auto"])
def test_every_solver_gives_the_same_verified_samples(name, solver):
    ref = make_problem(name, resolution=20, solver="direct")
    prob = make_problem(name, resolution=20, solver=solver, rtol=1e-9)
    rngs = lambda: [np.random.default_rng(i) for i in range(5)]  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # AMG on Helmholtz falls back, reported
        got = prob.sample_batch(rngs())
    want = ref.sample_batch(rngs())
    assert set(got[0]) == set(prob.variables())
    for g, w in zip(got, want, strict=True):
        assert g["solver_residual"] <= 1e-9
        for out in prob.output_vars:
            scale = np.abs(w[out]).max()
            np.testing.assert_allclose(g[out], w[out], atol=1e-6 * scale)


def test_stats_record_method_and_krylov_work():
    prob = make_problem("darcy", resolution=20, solver="gcrodr")
    out = prob.sample_batch([np.random.default_rng(i) for i in range(4)])
    assert all(int(o["solver_method"]) == 3 and o["solver_iterations"] > 0 for o in out)
    assert all(o[k].shape == () for o in out for k in STAT_VARIABLES)


def test_amg_miss_on_helmholtz_is_reported_and_retried_directly(monkeypatch):
    prob = Helmholtz(resolution=20, solver="amg")
    # An AMG-preconditioned iteration that stops short (as pyamg's own GMRES did here).
    monkeypatch.setattr("pdeml.solvers.problems.linear.AmgSequence._iterate",
                        lambda self, A, b, x0: (np.zeros(A.shape[0], complex), 7))
    with pytest.warns(RuntimeWarning, match="retried"):
        out = prob.sample_batch([np.random.default_rng(0)])
    assert int(out[0]["solver_fallback"]) == 1 and int(out[0]["solver_method"]) == 0
    assert out[0]["solver_residual"] <= prob.rtol


def test_unverifiable_system_raises_instead_of_writing(monkeypatch):
    prob = Poisson(resolution=12, solver="direct", rtol=1e-8)
    monkeypatch.setattr("pdeml.solvers.problems.linear._relres", lambda A, b, x: 1.0)
    with pytest.raises(RuntimeError, match="not written"):
        prob.sample_batch([np.random.default_rng(0)])


def test_sample_is_one_element_batch_and_deterministic():
    prob = SteadyHeat(resolution=16)
    a = prob.sample(np.random.default_rng(3))
    b = prob.sample_batch([np.random.default_rng(3)])[0]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    T = a["T"]
    assert np.allclose(T[:, 0], 1.0) and np.allclose(T[:, -1], 0.0)


def test_auto_follows_the_measured_table():
    assert auto_method(62 * 62, spd=True) == "direct"
    assert auto_method(510 * 510, spd=True) == "amg"
    assert auto_method(510 * 510, spd=False) == "direct"


@pytest.mark.parametrize("name", ["darcy", "poisson", "heat", "helmholtz"])
@pytest.mark.parametrize("kwargs,msg", [({"solver": "cholesky"}, "unknown solver"),
                                        ({"precond": "jacobi"}, "unknown precond"),
                                        ({"rtol": 2.0}, "rtol"),
                                        ({"resolution": 3}, "resolution")])
def test_bad_options_raise_one_line_errors(name, kwargs, msg):
    with pytest.raises(ValueError, match=msg) as err:
        make_problem(name, **kwargs)
    assert "\n" not in str(err.value)
