"""A seeded recycle space (a predicted subspace, NeurKItt's entry point) enters GCRO-DR."""

import numpy as np
import pytest
import scipy.linalg as sla

from pdeml.solvers import GCRODR
from pdeml.solvers.problems import DarcyFlow


@pytest.fixture(scope="module")
def darcy():
    """One log-normal Darcy system on 24² nodes (484 unknowns) and its slowest modes."""
    problem = DarcyFlow(resolution=24, coefficient="lognormal")
    A, b = problem.system(problem.draw_inputs(np.random.default_rng(0)))
    w, v = sla.eigh(A.toarray())
    return A, b, v[:, :10]  # eigenvectors of the 10 smallest eigenvalues


def test_the_slowest_eigenvectors_cut_iterations_and_keep_the_criterion(darcy):
    A, b, V = darcy
    cold = GCRODR(40, 10).solve(A, b, rtol=1e-8)
    solver = GCRODR(40, 10)
    solver.seed(V)
    seeded = solver.solve(A, b, rtol=1e-8)
    assert cold.info == 0 and seeded.info == 0
    for res in (cold, seeded):  # the stated criterion, on the true residual
        assert np.linalg.norm(b - A @ res.x) <= 1e-8 * np.linalg.norm(b)
    assert seeded.n_iter < 0.7 * cold.n_iter, (seeded.n_iter, cold.n_iter)
    assert seeded.n_matvec < cold.n_matvec


def test_a_random_seed_is_harmless_and_any_basis_is_accepted(darcy):
    A, b, V = darcy
    rng = np.random.default_rng(1)
    solver = GCRODR(40, 10)
    solver.seed(V @ rng.standard_normal((10, 10)))  # a non-orthogonal basis of the same span
    mixed = solver.solve(A, b, rtol=1e-8)
    solver.seed(V)
    plain = solver.solve(A, b, rtol=1e-8)
    assert abs(mixed.n_iter - plain.n_iter) <= 1
    solver.seed(rng.standard_normal((A.shape[0], 5)))
    noise = solver.solve(A, b, rtol=1e-8)
    assert noise.info == 0
    assert np.linalg.norm(b - A @ noise.x) <= 1e-8 * np.linalg.norm(b)


@pytest.mark.parametrize("shape", [(484,), (484, 0), (484, 11)])
def test_a_bad_seed_is_refused(shape):
    with pytest.raises(ValueError, match="seed needs an"):
        GCRODR(40, 10).seed(np.ones(shape))
