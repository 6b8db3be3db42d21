"""Sequence solving: SKR-style sorting, recycling along the order, preconditioner reuse."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from pdeml.solvers.fields import gaussian_random_field
from pdeml.solvers.krylov import (
    GCRODR,
    GMRES,
    Preconditioner,
    fourier_features,
    make_preconditioner,
    solve_sequence,
    sort_systems,
)
from pdeml.solvers.problems import DarcyFlow


def darcy_family(n: int = 8, res: int = 24, spread: float = 1.0, seed: int = 0):
    """Coefficients exp(g0 + spread * t_i * g1) for shuffled t_i, their systems and t."""
    rng = np.random.default_rng(seed)
    g0 = gaussian_random_field((res, res), rng)
    g1 = gaussian_random_field((res, res), rng)
    t = rng.permutation(np.linspace(0.0, 1.0, n))
    fields = np.stack([np.exp(g0 + spread * ti * g1) for ti in t])
    prob = DarcyFlow(resolution=res, coefficient="lognormal")
    systems = [prob.assemble(a) for a in fields]
    return fields, [A for A, _ in systems], np.stack([b for _, b in systems]), t


def is_monotone(v: np.ndarray) -> bool:
    d = np.diff(v)
    return bool(np.all(d > 0) or np.all(d < 0))


@pytest.mark.parametrize("method", ["greedy", "fft"])
def test_sort_recovers_the_order_of_a_one_parameter_family(method):
    fields, _, _, t = darcy_family(n=15)
    order = sort_systems(fields, method=method, n_features=32)
    assert sorted(order.tolist()) == list(range(15))
    assert is_monotone(t[order]), t[order]


def test_sort_scalar_parameters_and_explicit_start():
    t = np.random.default_rng(3).permutation(10).astype(float)
    assert is_monotone(t[sort_systems(t)])
    start = int(np.argmin(t))
    order = sort_systems(t, start=start)
    assert order[0] == start and np.all(np.diff(t[order]) > 0)
    with pytest.raises(ValueError, match="sort method"):
        sort_systems(t, method="tsp")


def test_fourier_features_are_l2_distances_of_the_low_pass_fields():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 16, endpoint=False)
    smooth = np.stack([np.cos(2 * np.pi * a * x)[:, None] * np.sin(2 * np.pi * x)[None, :]
                       for a in (1.0, 2.0)])
    feats = fourier_features(smooth, n_features=200)
    # Both fields are band-limited below the cut-off: distances are preserved exactly.
    dist = np.linalg.norm(smooth[0] - smooth[1])
    assert np.linalg.norm(feats[0] - feats[1]) == pytest.approx(dist)
    assert fourier_features(rng.standard_normal((4, 8, 8, 8)), 64).shape[0] == 4


@pytest.mark.parametrize("precond", ["none", "ilu", "amg"])
def test_solutions_come_back_in_the_original_order(precond):
    fields, mats, rhs, _ = darcy_family()
    order = sort_systems(fields)
    out = solve_sequence(mats, rhs, GCRODR(m=30, k=10), order=order, precond=precond, rtol=1e-9)
    assert out.solutions.shape == rhs.shape
    for i, (A, b) in enumerate(zip(mats, rhs, strict=True)):
        x_ref = spla.spsolve(A.tocsc(), b)
        assert np.linalg.norm(out.solutions[i] - x_ref) <= 1e-6 * np.linalg.norm(x_ref)
        assert np.linalg.norm(b - A @ out.solutions[i]) <= 1e-9 * np.linalg.norm(b)
        st = out.stats[i]
        assert st.index == i and order[st.position] == i
        assert st.converged and st.method == "krylov" and st.n_matvec > 0
    assert out.n_rebuilds >= (precond != "none")
    assert out.summary()["n_matvec"] == out.n_matvec


def test_sorted_recycling_beats_plain_gmres_on_the_family():
    fields, mats, rhs, _ = darcy_family(n=10, res=32, spread=0.5)
    order = sort_systems(fields)
    gcro = solve_sequence(mats, rhs, GCRODR(m=30, k=10), order=order, rtol=1e-8)
    plain = solve_sequence(mats, rhs, GMRES(m=30), rtol=1e-8, warm_start=False)
    assert gcro.n_matvec < 0.6 * plain.n_matvec, (gcro.n_matvec, plain.n_matvec)


def test_preconditioner_is_reused_and_rebuilt_when_iterations_grow():
    _, mats, rhs, _ = darcy_family(n=8, spread=3.0)
    kw = {"precond": "ilu", "precond_options": {"drop_tol": 1e-2}, "rtol": 1e-8}
    lazy = solve_sequence(mats, rhs, GMRES(30), precond_rebuild_factor=100.0, **kw)
    assert lazy.n_rebuilds == 1 and lazy.stats[0].rebuilt
    eager = solve_sequence(mats, rhs, GMRES(30), precond_rebuild_factor=1.0, **kw)
    assert eager.n_rebuilds > 1
    assert all(s.converged for s in eager.stats)


def test_failures_fall_back_and_are_recorded():
    _, mats, rhs, _ = darcy_family(n=3)
    # Two iterations can never reach 1e-10: every system needs a fallback, and says so.
    out = solve_sequence(mats, rhs, GMRES(30), precond="none", rtol=1e-10, maxiter=2)
    for A, b, x, st in zip(mats, rhs, out.solutions, out.stats, strict=True):
        assert st.method in ("krylov+fresh-precond", "direct")
        assert st.attempts[0] == "krylov" and st.attempts[-1] == st.method
        assert st.converged and np.linalg.norm(b - A @ x) <= 1e-10 * np.linalg.norm(b)
    assert out.n_fallbacks == 3
    assert out.stats[0].method == "direct"  # ILU with 2 iterations is not enough either


def test_callable_systems_shared_rhs_and_matrix_free_failure():
    _, mats, rhs, _ = darcy_family(n=4)
    out = solve_sequence(lambda i: mats[i], rhs[0], GCRODR(20, 5), n_systems=4, rtol=1e-8)
    assert out.solutions.shape == (4, rhs.shape[1]) and all(s.converged for s in out.stats)
    ops = [spla.aslinearoperator(A) for A in mats]
    with pytest.raises(RuntimeError, match="system 0"):
        solve_sequence(ops, rhs, GMRES(5), rtol=1e-12, maxiter=1)
    with pytest.raises(ValueError, match="permutation"):
        solve_sequence(mats, rhs, GMRES(5), order=[0, 0, 1, 2])
    with pytest.raises(ValueError, match="precond"):
        solve_sequence(mats, rhs, GMRES(5), precond="spai")


def test_make_preconditioner():
    _, mats, _, _ = darcy_family(n=1)
    assert make_preconditioner("none", mats[0]) is None
    M = make_preconditioner("ilu", mats[0])
    assert isinstance(M, Preconditioner) and M.kind == "ilu"
    v = np.ones(mats[0].shape[0])
    ref = spla.spilu(mats[0].tocsc(), drop_tol=1e-2, fill_factor=10.0).solve(v)
    np.testing.assert_allclose(M @ v, ref)
    np.testing.assert_allclose(M @ np.stack([v, 2 * v], axis=1), np.stack([ref, 2 * ref], 1))
    assert M.n_applications == 3
    # A real factorization applied to a complex vector acts on both parts.
    np.testing.assert_allclose(M @ (v + 2j * v), (M @ v) * (1 + 2j))
    with pytest.raises(ValueError, match="unknown preconditioner"):
        make_preconditioner("spai", mats[0])
