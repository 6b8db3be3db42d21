"""Every pyamg hierarchy pdeml builds is the same for the same matrix (pyamg draws the start
vectors of its spectral-radius estimates from numpy's global generator), and building one
leaves the caller's global generator where it was."""

import numpy as np
import scipy.sparse as sp

from pdeml.solvers.krylov import amg
from pdeml.solvers.projection import PressurePoisson


def _poisson(n: int) -> sp.csr_matrix:
    """Dirichlet 5-point Laplacian on n x n nodes, a variable coefficient for good measure."""
    one = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n))
    eye = sp.identity(n)
    scale = sp.diags(1.0 + np.linspace(0.0, 3.0, n * n))
    return (scale @ (sp.kron(eye, one) + sp.kron(one, eye))).tocsr()


def _global_state() -> tuple:
    state = np.random.get_state()
    return state[1].copy(), state[2]


def test_the_amg_preconditioner_is_bitwise_repeatable_and_leaves_the_global_rng():
    A, b = _poisson(24), np.linspace(-1.0, 1.0, 576)
    np.random.seed(7)
    before = _global_state()
    first, second = amg(A).matvec(b), amg(A).matvec(b)
    assert np.array_equal(first, second)
    after = _global_state()
    assert np.array_equal(after[0], before[0]) and after[1] == before[1]


def test_projection_amg_pressure_solves_are_bitwise_repeatable():
    A, b = _poisson(20), np.cos(np.arange(400.0))
    first = PressurePoisson(A, method="amg").solve(b)
    second = PressurePoisson(A, method="amg").solve(b)
    assert np.array_equal(first, second)
