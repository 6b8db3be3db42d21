"""What is reused along a sequence (operator content, preconditioners) and the new kernels."""

import numpy as np
import pytest
import scipy.sparse as sp

from pdeml.solvers.krylov import GCRODR, GMRES, make_preconditioner, solve_sequence
from pdeml.solvers.krylov.base import _csr_kernel, fingerprint
from pdeml.solvers.krylov.precond import _ilu0_factor
from pdeml.solvers.problems import DarcyFlow, Poisson
from pdeml.solvers.problems.linear import AmgSequence, _Direct
from pdeml.solvers.problems.skr_darcy import skr_coefficients, skr_darcy_system, skr_order
from pdeml.solvers.projection import PressurePoisson


def _darcy(n, seed=0, res=16):
    prob = DarcyFlow(resolution=res, coefficient="lognormal")
    rng = np.random.default_rng(seed)
    return [prob.assemble(prob.draw_coefficient(rng)) for _ in range(n)]


def test_fingerprint_is_by_content_not_identity():
    A = Poisson(resolution=12).assemble(0.0)[0]
    assert fingerprint(A) == fingerprint(A.copy())
    B = A.copy()
    B.data[3] += 1.0
    assert fingerprint(B) != fingerprint(A)


def test_gcrodr_does_not_refresh_for_an_equal_matrix_object():
    prob = Poisson(resolution=14)
    rng = np.random.default_rng(0)
    systems = [prob.assemble(prob.draw_inputs(rng)["f"]) for _ in range(3)]
    solver = GCRODR(20, 5)
    refreshes = []
    original = solver._refresh
    solver._refresh = lambda run, new_precond: (refreshes.append(new_precond),
                                                original(run, new_precond))
    solver.solve(*systems[0], rtol=1e-10)
    res = solver.solve(*systems[1], rtol=1e-10)  # a new object with the same entries
    assert res.converged and refreshes == []
    solver.solve(systems[2][0] * 2.0, systems[2][1], rtol=1e-10)
    assert refreshes == [False]  # C = A U recomputed once for the changed matrix


def test_csr_fast_path_matches_scipy():
    A = _darcy(1)[0][0]
    v = np.random.default_rng(1).standard_normal(A.shape[0])
    np.testing.assert_allclose(_csr_kernel(A)(v), A @ v, rtol=1e-14)
    assert _csr_kernel(A.tocsc()) is None
    Ac = (A * (1 + 0.5j)).tocsr()
    vc = v + 1j * v[::-1]
    np.testing.assert_allclose(_csr_kernel(Ac)(vc), Ac @ vc, rtol=1e-14)


def test_ilu0_is_exact_on_the_pattern_and_ssor_matches_its_formula():
    A = skr_darcy_system(skr_coefficients(1, 12, np.random.default_rng(0))[0], True)[0]
    A.sort_indices()
    F = sp.csr_matrix((_ilu0_factor(A), A.indices, A.indptr), shape=A.shape)
    L, U = sp.tril(F, -1) + sp.eye(A.shape[0]), sp.triu(F)
    R = (L @ U - A).tocsr()
    on_pattern = R.multiply(abs(A).sign())
    assert abs(on_pattern).max() < 1e-12 * abs(A).max()
    x = np.random.default_rng(2).standard_normal(A.shape[0])
    D = sp.diags(A.diagonal())
    M = (D + sp.tril(A, -1)) @ sp.diags(1 / A.diagonal()) @ (D + sp.triu(A, 1))
    np.testing.assert_allclose(M @ (make_preconditioner("sor", A) @ x), x, rtol=1e-10)
    np.testing.assert_allclose(make_preconditioner("jacobi", A) @ x, x / A.diagonal())


def test_skr_matrix_published_and_corrected():
    coef = skr_coefficients(2, 10, np.random.default_rng(0))
    A_pub, b = skr_darcy_system(coef[0])
    A_cor, _ = skr_darcy_system(coef[0], corrected=True)
    s = 8
    T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(s, s))
    L = sp.kron(sp.eye(s), T) + sp.kron(T, sp.eye(s))
    ref = L @ sp.diags(coef[0][1:-1, 1:-1].ravel())  # -Laplace(a u), 5 points
    assert abs(A_cor - ref).max() < 1e-12 * abs(ref).max()
    diff = (A_pub - A_cor).tocoo()
    assert np.all(diff.row - diff.col == s) and diff.nnz > 0  # only the -s diagonal differs
    np.testing.assert_allclose(b, np.full(s * s, 1.0 / (s - 1) ** 2))
    assert skr_order(coef)[0] == 0


def test_amg_hierarchy_reuse_builds_fewer_and_meets_rtol():
    systems = _darcy(6)
    counts = {}
    for reuse in (False, True):
        seq = AmgSequence(1e-8, True, _Direct(), reuse=reuse)
        for A, b in systems:
            x, st = seq(A, b)
            assert np.linalg.norm(b - A @ x) <= 1e-8 * np.linalg.norm(b)
            assert st["solver_method"] == 1
        counts[reuse] = seq.n_builds
    assert counts[False] == 6 and counts[True] < 6


def test_solve_sequence_precond_reuse_switch():
    systems = _darcy(5)
    mats, rhs = [A for A, _ in systems], [b for _, b in systems]
    fresh = solve_sequence(mats, rhs, GMRES(30), precond="ilu", precond_reuse=False)
    kept = solve_sequence(mats, rhs, GMRES(30), precond="ilu")
    assert fresh.n_rebuilds == 5 and kept.n_rebuilds < 5
    assert all(s.converged for s in fresh.stats + kept.stats)


@pytest.mark.parametrize("method", ["amg", "gmres"])
def test_pressure_poisson_keeps_its_preconditioner_across_matrix_updates(method):
    systems = _darcy(4, res=14)
    solver = PressurePoisson(systems[0][0], method=method, rtol=1e-9)
    for A, b in systems:
        solver.update_matrix(A)
        x = solver.solve(b)
        assert np.linalg.norm(b - A @ x) <= 1e-9 * np.linalg.norm(b) * (1 + 1e-6)
    assert 1 <= solver.n_builds < 4
    rebuild = PressurePoisson(systems[0][0], method=method, rtol=1e-9, reuse=False)
    for A, b in systems:
        rebuild.update_matrix(A)
        rebuild.solve(b)
    assert rebuild.n_builds == 5
