"""The surrogate inside the solver: guess, recycle space and neural correction (hybrid.py).

Oracle surrogates (exact or deliberately wrong answers) check what each method must do: a
good surrogate cuts iterations, a bad one costs iterations but never accuracy, because the
stopping test stays on the true residual.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from pdeml.solvers.hybrid import (
    FieldSurrogate,
    Hooks,
    TwoLevel,
    best_start,
    combine_spaces,
    solve_with_surrogate,
)
from pdeml.solvers.krylov import GCRODR, make_preconditioner
from pdeml.solvers.krylov.sequence import sort_systems
from pdeml.solvers.problems.linear3d import Helmholtz3D

RTOL = 1e-8


@pytest.fixture(scope="module")
def sequence():
    p = Helmholtz3D(resolution=12, solver="gcrodr")
    inputs = [p.draw_inputs(np.random.default_rng(i)) for i in range(5)]
    systems = [p.system(i) for i in inputs]
    As, bs = [A for A, _ in systems], [b for _, b in systems]
    order = sort_systems(np.stack([p.sort_features(i) for i in inputs]), "fft")
    lus = [spla.splu(A.tocsc()) for A in As]
    return p, inputs, As, bs, order, lus


def _relres(A, b, x):
    return np.linalg.norm(b - A @ x) / np.linalg.norm(b)


def _plain(As, bs, order):
    """GCRO-DR + ILU along the sequence, no surrogate: iterations per system."""
    solver, its = GCRODR(40, 20, orthog="cgs2"), {}
    M, prev = None, None
    for i in order:
        M = M or make_preconditioner("ilu", As[i])
        res = solver.solve(As[i], bs[i], x0=prev, rtol=RTOL, M=M)
        its[i], prev = res.n_iter, res.x
    return its


def test_exact_correction_converges_in_a_few_iterations(sequence):
    _, inputs, As, bs, order, lus = sequence
    index = {id(inp): i for i, inp in enumerate(inputs)}
    hooks = Hooks(correct=lambda inp, r: lus[index[id(inp)]].solve(r))
    xs, st = solve_with_surrogate(As, bs, inputs, order, hooks, "correct", rtol=RTOL)
    plain = _plain(As, bs, order)
    for i, s in enumerate(st):
        assert s["converged"] and _relres(As[i], bs[i], xs[i]) <= RTOL
        assert s["iterations"] <= 3 < plain[i]
    assert hooks.calls >= len(As) and hooks.seconds > 0


def test_the_step_length_repairs_a_misscaled_correction(sequence):
    """``-3 A^{-1} r`` is the exact correction up to its scale: the minimizing step finds
    ``w = -1/3`` and the iteration is as fast as with the exact one."""
    _, inputs, As, bs, order, lus = sequence
    index = {id(inp): i for i, inp in enumerate(inputs)}
    two = TwoLevel(As[0], make_preconditioner("ilu", As[0]),
                   lambda r: -3.0 * lus[0].solve(r))
    two @ bs[0]
    assert two.steps[0] == pytest.approx(-1 / 3, rel=1e-8)
    hooks = Hooks(correct=lambda inp, r: -3.0 * lus[index[id(inp)]].solve(r))
    _, st = solve_with_surrogate(As, bs, inputs, order, hooks, "correct", rtol=RTOL)
    assert all(s["converged"] and s["iterations"] <= 3 for s in st)


def test_a_wrong_correction_costs_iterations_not_accuracy(sequence):
    _, inputs, As, bs, order, _ = sequence
    rng = np.random.default_rng(0)
    hooks = Hooks(correct=lambda inp, r: rng.standard_normal(r.shape) * np.linalg.norm(r))
    xs, st = solve_with_surrogate(As, bs, inputs, order, hooks, "correct", rtol=RTOL, every=2)
    for i, s in enumerate(st):
        assert s["converged"] and _relres(As[i], bs[i], xs[i]) <= RTOL


def test_every_spaces_the_corrections():
    A = spla.aslinearoperator(np.eye(4))
    calls = []
    two = TwoLevel(np.eye(4), None, lambda r: calls.append(1) or 0 * r, every=3)
    for _ in range(7):
        two @ np.ones(4)
    assert len(calls) == 3 and two.applications == 7  # applications 1, 4, 7
    with pytest.raises(ValueError, match="every"):
        TwoLevel(np.eye(4), None, lambda r: r, every=0)
    del A


def test_flexible_needs_right_preconditioning():
    with pytest.raises(ValueError, match="flexible"):
        GCRODR(20, 5, side="left", flexible=True)


def test_predicted_space_replaces_or_augments(sequence):
    """The recycled space of an earlier solve of the *same* system, used as a prediction,
    beats a cold start; a random space does no harm to the answer."""
    _, inputs, As, bs, order, _ = sequence
    exact = {}
    for i in range(len(As)):
        s = GCRODR(40, 20, orthog="cgs2")
        M = make_preconditioner("ilu", As[i])
        s.solve(As[i], bs[i], rtol=RTOL, M=M)
        s.solve(As[i], bs[i], rtol=RTOL, M=M)  # a second pass refines the Ritz vectors
        exact[i] = s.U
    index = {id(inp): i for i, inp in enumerate(inputs)}
    cold = {}
    for i in range(len(As)):
        cold[i] = GCRODR(40, 20).solve(As[i], bs[i], rtol=RTOL,
                                       M=make_preconditioner("ilu", As[i])).n_iter
    for mode in ("replace", "augment"):
        hooks = Hooks(space=lambda inp: exact[index[id(inp)]][:, :10])
        xs, st = solve_with_surrogate(As, bs, inputs, order, hooks, "space", rtol=RTOL,
                                      space_mode=mode)
        assert all(s["converged"] for s in st)
        assert st[order[0]]["iterations"] < cold[order[0]]
    rng = np.random.default_rng(1)
    n = As[0].shape[0]
    hooks = Hooks(space=lambda inp: rng.standard_normal((n, 10)) + 0j)
    xs, st = solve_with_surrogate(As, bs, inputs, order, hooks, "space", rtol=RTOL,
                                  space_mode="replace")
    assert all(_relres(A, b, x) <= RTOL for A, b, x in zip(As, bs, xs, strict=True))


def test_combine_spaces_keeps_prediction_first_and_k_columns():
    rng = np.random.default_rng(2)
    P, Q = rng.standard_normal((50, 3)), rng.standard_normal((50, 8))
    B = combine_spaces(P, Q, 6)
    assert B.shape == (50, 6)
    assert np.allclose(B.T @ B, np.eye(6), atol=1e-12)
    proj = B[:, :3] @ (B[:, :3].T @ P)
    assert np.allclose(proj, P)  # the predicted span comes first, whole
    dup = combine_spaces(P, np.concatenate([P, P], axis=1), 6)
    assert dup.shape[1] == 3  # nothing new in the previous space: dependent columns dropped


def test_best_start_prefers_the_smaller_residual(sequence):
    _, _, As, bs, _, lus = sequence
    A, b = As[0], bs[0]
    exact = lus[0].solve(b)
    x, i, res = best_start(A, b, [None, exact, 100 * exact])
    assert i == 1 and res[1] < 1e-10 and res[0] == pytest.approx(1.0)


def test_guess_falls_back_when_the_surrogate_is_wrong(sequence):
    _, inputs, As, bs, order, lus = sequence
    index = {id(inp): i for i, inp in enumerate(inputs)}
    good = Hooks(guess=lambda inp: lus[index[id(inp)]].solve(bs[index[id(inp)]]))
    _, st = solve_with_surrogate(As, bs, inputs, order, good, "guess", rtol=RTOL)
    assert all(s["start"] == 1 and s["iterations"] == 0 for s in st)
    bad = Hooks(guess=lambda inp: 1e3 * np.ones(As[0].shape[0], complex))
    xs, st = solve_with_surrogate(As, bs, inputs, order, bad, "guess", rtol=RTOL)
    assert all(s["start"] == 0 and s["converged"] for s in st)


class _ExactField(torch.nn.Module):
    """A stand-in for a trained run: maps (k, f_real, f_imag) or (k,) fields to the exact
    solution of the Helmholtz system (sparse LU), as a torch module on stacked fields."""

    def __init__(self, problem: Helmholtz3D, forcing: bool) -> None:
        super().__init__()
        self.problem, self.forcing = problem, forcing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for sample in x.double().numpy():
            f = None
            if self.forcing:
                f = sample[1] + 1j * sample[2]
            A, b = self.problem.assemble(sample[0], f)
            u = self.problem.embed(spla.spsolve(A.tocsc(), b))
            out.append(np.stack([u.real, u.imag]))
        return torch.from_numpy(np.stack(out)).float()


def test_problem_solves_with_a_field_surrogate_inside():
    """End to end through LinearProblem: the fields are mapped to the unknowns and back."""
    p = Helmholtz3D(resolution=10, solver="gcrodr", rtol=RTOL)
    rngs = [np.random.default_rng(i) for i in range(4)]
    plain = p.sample_batch(rngs)
    guess = FieldSurrogate(_ExactField(p, False), ["k"], ["u_real", "u_imag"])
    p.use_surrogate(guess, use="guess")
    warm = p.sample_batch([np.random.default_rng(i) for i in range(4)])
    # float32 fields: the guess is exact to ~1e-7, so a handful of iterations remain
    for a, b in zip(plain, warm, strict=True):
        assert b["solver_residual"] <= RTOL
        assert b["solver_iterations"] < a["solver_iterations"]
        assert np.allclose(a["u_real"], b["u_real"], atol=1e-6 * np.abs(a["u_real"]).max())
    corr = FieldSurrogate(_ExactField(p, True), ["k", "f_real", "f_imag"], ["u_real", "u_imag"])
    p.use_surrogate(corr, use="correct")
    fixed = p.sample_batch([np.random.default_rng(i) for i in range(4)])
    for a, b in zip(plain, fixed, strict=True):
        assert b["solver_residual"] <= RTOL
        assert b["solver_iterations"] <= 4 < a["solver_iterations"]
    with pytest.raises(ValueError, match="ritz"):
        p.use_surrogate(guess, use="space")
    with pytest.raises(ValueError, match="random forcing"):
        p.use_surrogate(guess, use="correct")
    with pytest.raises(ValueError, match="unknown surrogate use"):
        p.use_surrogate(guess, use="magic")
    p.use_surrogate(None)
    again = p.sample_batch([np.random.default_rng(i) for i in range(4)])
    assert [s["solver_iterations"] for s in again] == [s["solver_iterations"] for s in plain]


def test_smoothing_a_complex_guess(sequence):
    """Symmetric Gauss-Seidel on a complex Helmholtz guess stays complex and lowers the
    residual of a guess with a rough error."""
    from pdeml.solvers.warmstart import smooth_guess

    _, _, As, bs, _, lus = sequence
    x = lus[0].solve(bs[0])
    rough = x + 0.05 * np.abs(x).max() * np.random.default_rng(3).standard_normal(x.shape)
    smoothed = smooth_guess(As[0], bs[0], rough, sweeps=2)
    assert np.iscomplexobj(smoothed)
    assert _relres(As[0], bs[0], smoothed) < 0.6 * _relres(As[0], bs[0], rough)


def test_a_poor_smoother_is_weighted_down():
    """A smoother far off for this matrix (Jacobi scaled 3x: two plain sweeps are then an
    indefinite step) with a useless network: the least-squares weights keep the two-level
    step a descent step, and flexible GCRO-DR converges."""
    import scipy.sparse as sp

    from pdeml.solvers.problems import DarcyFlow

    p = DarcyFlow(resolution=24)
    A, b = p.system(p.draw_inputs(np.random.default_rng(0)))
    S = sp.diags(3.0 / A.diagonal())
    two = TwoLevel(A, S, lambda r: np.zeros_like(r))
    res = GCRODR(30, 10, flexible=True).solve(A, b, rtol=RTOL, M=two.operator(), maxiter=2000)
    # (with the post-smoothing weight fixed at 1 this ran 2000 iterations unconverged)
    assert res.info == 0 and res.n_iter < 200 and _relres(A, b, res.x) <= RTOL
    assert all(abs(w) < 1e-12 for w in two.steps)  # the zero correction gets no weight
