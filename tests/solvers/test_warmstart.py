import numpy as np
import pytest
import scipy.sparse.linalg as spla

from pdeml.solvers.problems import DarcyFlow
from pdeml.solvers.warmstart import interior, solve_warm, warm_start_gain


@pytest.fixture(scope="module")
def system():
    problem = DarcyFlow(resolution=32)
    a = problem.draw_coefficient(np.random.default_rng(0))
    A, b = problem.assemble(a)
    return problem, A, b, spla.spsolve(A.tocsc(), b)


def test_interior_inverts_embed(system):
    problem, _, _, x = system
    np.testing.assert_array_equal(interior(problem.embed(x)), x)


def test_a_close_guess_saves_iterations_and_keeps_the_accuracy(system):
    _, A, b, x = system
    rng = np.random.default_rng(1)
    close = x * (1 + 1e-3 * rng.standard_normal(x.size))
    rows = warm_start_gain([(A, b)], [close], precond="ilu", rtol=1e-8)
    assert rows[0]["warm_iterations"] < rows[0]["cold_iterations"]
    res = solve_warm(A, b, close, rtol=1e-8)
    assert np.linalg.norm(b - A @ res.x) <= 1e-8 * np.linalg.norm(b)
    assert solve_warm(A, b, x, rtol=1e-8).n_iter == 0  # the exact answer needs no iteration


def test_a_bad_guess_still_converges(system):
    _, A, b, x = system
    res = solve_warm(A, b, 100 * np.ones_like(x), method="gcrodr", precond="none", rtol=1e-8)
    assert res.info == 0 and np.linalg.norm(b - A @ res.x) <= 1e-8 * np.linalg.norm(b)
    with pytest.raises(ValueError, match="unknown method"):
        solve_warm(A, b, None, method="cg")


def test_smoothing_removes_the_rough_part_of_a_guess(system):
    from pdeml.solvers.warmstart import smooth_guess

    _, A, b, x = system
    rng = np.random.default_rng(2)
    n = int(np.sqrt(x.size))
    yy, xx = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n), indexing="ij")
    smooth_error = 0.02 * np.abs(x).max() * np.sin(np.pi * xx) * np.sin(np.pi * yy)
    guess = x + smooth_error.ravel() + 0.02 * np.abs(x).max() * rng.standard_normal(x.size)
    before = np.linalg.norm(b - A @ guess)
    after = np.linalg.norm(b - A @ smooth_guess(A, b, guess, sweeps=3))
    assert after < 0.1 * before
    rows = warm_start_gain([(A, b)], [guess], precond="ilu", rtol=1e-8)
    assert rows[0]["smoothed_iterations"] < rows[0]["warm_iterations"]
