"""Contract tests of the Krylov solvers: cases x solvers, scipy as the reference answer."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from pdeml.solvers.krylov import GCRODR, GMRES, SolveResult, ilu


def laplacian_1d(n: int) -> sp.csr_matrix:
    h = 1.0 / (n + 1)
    ones = np.ones(n)
    return sp.diags([-ones[:-1], 2 * ones, -ones[:-1]], [-1, 0, 1], format="csr") / h**2


def laplacian_2d(n: int) -> sp.csr_matrix:
    T, I = laplacian_1d(n), sp.eye(n)
    return (sp.kron(T, I) + sp.kron(I, T)).tocsr()


def upwind_2d(n: int, wx: float, wy: float) -> sp.csr_matrix:
    """First-order upwind ``w . grad`` for positive velocities (backward differences)."""
    h = 1.0 / (n + 1)
    D = sp.diags([-np.ones(n - 1), np.ones(n)], [-1, 0]) / h
    I = sp.eye(n)
    return (wx * sp.kron(I, D) + wy * sp.kron(D, I)).tocsr()


def rhs(n: int, complex_: bool = False, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    b = rng.standard_normal(n)
    return b + 1j * rng.standard_normal(n) if complex_ else b


def poisson():
    A = laplacian_2d(12)
    return A, rhs(A.shape[0])


def convection_diffusion():
    A = (laplacian_2d(12) + upwind_2d(12, 100.0, 50.0)).tocsr()
    return A, rhs(A.shape[0])


def helmholtz():
    # Shifted Laplacian with 6 negative eigenvalues, none close to zero (cond ~ 130).
    A = (laplacian_2d(10) - 100.0 * sp.eye(100)).tocsr()
    return A, rhs(A.shape[0])


def complex_nonhermitian():
    n = 12
    A = laplacian_2d(n) + upwind_2d(n, 40.0, 20.0) + (1j * 50.0 - 200.0) * sp.eye(n * n)
    return A.tocsr(), rhs(n * n, complex_=True)


CASES = {
    "poisson": poisson,
    "convection-diffusion": convection_diffusion,
    "helmholtz": helmholtz,
    "complex": complex_nonhermitian,
}
SOLVERS = {
    "gmres": lambda: GMRES(m=30),
    "gmres-left": lambda: GMRES(m=30, side="left"),
    "gmres-cgs2": lambda: GMRES(m=30, orthog="cgs2"),
    "gcrodr": lambda: GCRODR(m=30, k=10),
    "gcrodr-left-cgs2": lambda: GCRODR(m=30, k=10, side="left", orthog="cgs2"),
}


def true_residual(A, b, x) -> float:
    return float(np.linalg.norm(b - A @ x))


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("case", CASES)
def test_solution_matches_scipy_and_meets_the_stated_criterion(case, solver):
    A, b = CASES[case]()
    res = SOLVERS[solver]().solve(A, b, rtol=1e-10, maxiter=3000)
    assert isinstance(res, SolveResult)
    assert res.info == 0, res.message
    r = true_residual(A, b, res.x)
    assert r <= 1e-10 * np.linalg.norm(b)
    assert res.residual_norm == pytest.approx(r, rel=1e-6, abs=1e-14 * np.linalg.norm(b))
    x_ref = spla.spsolve(A.tocsc(), b)
    assert np.linalg.norm(res.x - x_ref) <= 1e-6 * np.linalg.norm(x_ref)
    assert res.x.dtype == np.result_type(A.dtype, b.dtype)
    assert len(res.residual_norms) == res.n_iter + 1
    assert res.n_matvec >= res.n_iter


@pytest.mark.parametrize("solver", ["gmres", "gcrodr"])
def test_ilu_preconditioner_reduces_iterations(solver):
    A, b = convection_diffusion()
    plain = SOLVERS[solver]().solve(A, b, rtol=1e-8)
    M = ilu(A, drop_tol=1e-2)
    for side in ("right", "left"):
        make = GMRES if solver == "gmres" else (lambda side: GCRODR(30, 10, side=side))
        pre = make(side=side).solve(A, b, rtol=1e-8, M=M)
        assert pre.info == 0 and plain.info == 0
        assert pre.n_iter < plain.n_iter / 3
        assert pre.n_precond >= pre.n_iter
        # Left preconditioning still stops on the true, unpreconditioned residual.
        assert true_residual(A, b, pre.x) <= 1e-8 * np.linalg.norm(b)


@pytest.mark.parametrize("solver", ["gmres", "gcrodr"])
def test_zero_rhs_returns_zero_without_iterating(solver):
    A, b = poisson()
    res = SOLVERS[solver]().solve(A, np.zeros_like(b), x0=np.ones_like(b))
    assert res.info == 0 and res.n_iter == 0 and res.n_matvec == 0
    assert not np.any(res.x)


@pytest.mark.parametrize("solver", ["gmres", "gcrodr"])
def test_exact_initial_guess_needs_no_iteration(solver):
    A, b = poisson()
    x = spla.spsolve(A.tocsc(), b)
    res = SOLVERS[solver]().solve(A, b, x0=x, rtol=1e-8)
    assert res.info == 0 and res.n_iter == 0 and res.n_matvec == 1
    np.testing.assert_array_equal(res.x, x)


@pytest.mark.parametrize("solver", ["gmres", "gcrodr"])
def test_maxiter_reached_gives_positive_info(solver):
    A, b = convection_diffusion()
    res = SOLVERS[solver]().solve(A, b, rtol=1e-12, maxiter=7)
    assert res.info == 7 == res.n_iter
    assert "maxiter" in res.message
    assert true_residual(A, b, res.x) == pytest.approx(res.residual_norm)


@pytest.mark.parametrize("solver", ["gmres", "gcrodr"])
def test_callback_is_called(solver):
    A, b = poisson()
    seen = []
    res = SOLVERS[solver]().solve(A, b, rtol=1e-8, callback=seen.append)
    assert len(seen) == res.n_iter and all(isinstance(v, float) for v in seen)
    assert seen == res.residual_norms[1:]
    cls = GMRES if solver == "gmres" else GCRODR
    iterates = []
    res = cls(m=5, callback_type="x").solve(A, b, rtol=1e-8, callback=iterates.append)
    assert len(iterates) >= res.n_iter // 5 and iterates[-1].shape == b.shape
    np.testing.assert_allclose(iterates[-1], res.x)


def test_stagnation_stops_early_with_positive_info():
    # GMRES(1) on a rotation makes no progress at all: the classical stagnation example.
    A = np.array([[0.0, 1.0], [-1.0, 0.0]])
    res = GMRES(m=1).solve(A, np.array([1.0, 0.0]), maxiter=1000)
    assert 0 < res.info < 10 and "stagnated" in res.message


def test_nonfinite_operator_gives_negative_info():
    A = spla.LinearOperator((4, 4), matvec=lambda v: np.full(4, np.nan), dtype=float)
    res = GMRES(m=3).solve(A, np.ones(4))
    assert res.info < 0


def test_other_operator_types_and_column_rhs():
    A, b = convection_diffusion()
    dense, op = A.toarray(), spla.aslinearoperator(A)
    M = ilu(A, drop_tol=1e-2)
    for solver in (GMRES(20), GCRODR(20, 5)):
        for A_ in (dense, op):
            res = solver.solve(A_, b[:, None], rtol=1e-9, M=lambda v: M @ v)
            assert res.info == 0 and res.x.shape == b.shape
            assert true_residual(A, b, res.x) <= 1e-9 * np.linalg.norm(b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"A": np.ones((3, 4)), "b": np.ones(3)}, "square"),
        ({"b": np.ones(5)}, "shape"),
        ({"b": np.array([1.0, np.nan, 0.0, 1.0])}, "NaN"),
        ({"x0": np.array([np.inf, 0.0, 0.0, 0.0])}, "NaN"),
        ({"M": np.eye(3)}, "M has shape"),
        ({"rtol": -1.0}, "rtol"),
        ({"maxiter": 0}, "maxiter"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    args = {"A": np.eye(4) * 2.0, "b": np.ones(4), **kwargs}
    for solver in (GMRES(3), GCRODR(3, 1)):
        with pytest.raises(ValueError, match=match):
            solver.solve(**args)


@pytest.mark.parametrize("make", [lambda: GMRES(0), lambda: GMRES(5, side="up"),
                                  lambda: GCRODR(10, 10), lambda: GCRODR(10, 0),
                                  lambda: GMRES(5, orthog="qr")])
def test_bad_options_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def shifted_family(complex_: bool, n: int = 24, count: int = 6):
    """Poisson (or a complex non-Hermitian variant) with small diagonal shifts."""
    rng = np.random.default_rng(1)
    base = laplacian_2d(n)
    if complex_:
        base = base + upwind_2d(n, 30.0, 10.0) + 20j * sp.eye(n * n)
    d = rng.uniform(0.5, 1.5, n * n)
    return [(base + sp.diags(s * d)).tocsr() for s in range(count)], rhs(n * n, complex_)


@pytest.mark.parametrize("complex_", [False, True])
def test_recycling_needs_fewer_matvecs_than_gmres(complex_):
    mats, b = shifted_family(complex_)
    totals = {}
    for name, solver in {"gmres": GMRES(m=30), "gcrodr": GCRODR(m=30, k=10)}.items():
        totals[name] = 0
        for A in mats:
            res = solver.solve(A, b, rtol=1e-8)
            assert res.info == 0 and true_residual(A, b, res.x) <= 1e-8 * np.linalg.norm(b)
            totals[name] += res.n_matvec
    # Observed ratios: 0.52 (real), 0.67 (complex).
    assert totals["gcrodr"] < 0.75 * totals["gmres"], totals


@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("precond", [False, True])
def test_recycled_space_invariant_after_a_matrix_change(complex_, precond):
    mats, b = shifted_family(complex_, count=3)
    solver = GCRODR(m=20, k=8)
    M = ilu(mats[0], drop_tol=1e-1) if precond else None
    solver.solve(mats[0], b, rtol=1e-8, M=M)
    U_before = solver.U
    res = solver.solve(mats[2], b, rtol=1e-8, M=M, maxiter=1)  # refresh, then one step
    assert res.n_matvec >= U_before.shape[1]  # C = A M U was recomputed
    solver.solve(mats[1], 2 * b, rtol=1e-8, M=M)
    U, C = solver.U, solver.C
    assert U.shape == C.shape and U.shape[1] <= 8
    AMU = mats[1] @ (M @ U if precond else U)
    assert np.linalg.norm(AMU - C) <= 1e-8 * np.linalg.norm(C)
    np.testing.assert_allclose(C.conj().T @ C, np.eye(C.shape[1]), atol=1e-10)
    if complex_:
        assert np.iscomplexobj(U)


def test_in_place_matrix_change_is_detected_and_reset_drops_the_space():
    mats, b = shifted_family(False, count=2)
    A = mats[0].copy()
    solver = GCRODR(m=20, k=5)
    solver.solve(A, b, rtol=1e-8)
    A.data[:] = mats[1].data  # same object, new entries (same sparsity pattern)
    solver.solve(A, b, rtol=1e-8)
    np.testing.assert_allclose(A @ solver.U, solver.C, atol=1e-8 * np.abs(solver.C).max())
    solver.reset()
    assert solver.U is None and solver.C is None
