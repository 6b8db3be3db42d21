"""The surrogate inside the solver: a trained operator as guess, recycle space or correction.

pdeml trains operators on the same families of systems its Krylov solvers generate. This
module lets a trained operator work *inside* those solves in three ways. The stopping test
never moves: every method stops on the true residual ``norm(b - A x) <= rtol * norm(b)``, so
a poor surrogate costs iterations, never accuracy.

``guess`` (the baseline that existed: a warm start)
    The surrogate's prediction of the solution is the initial iterate (optionally smoothed by
    symmetric Gauss-Seidel, :func:`pdeml.solvers.warmstart.smooth_guess`). Along a sorted
    sequence the previous solution is the alternative start; the better of the two by
    residual is used, so a bad surrogate can only lose its inference time.

``space`` (a learned recycle space, after NeurKItt)
    Luo et al., "Neural Krylov Iteration for Accelerating Linear System Solving" (NeurIPS
    2024, code ``smart-JLuo/NeurKItt``): an FNO maps the system's parameters to a basis of
    its slowest invariant subspace, trained with a projection loss against eigenvectors, and
    that basis seeds GCRO-DR's deflation space; the paper compares with GMRES only. Here:

    - *follows*: an operator (any of pdeml's) predicts ``j`` basis vectors from the
      coefficient fields; :meth:`~pdeml.solvers.krylov.GCRODR.seed` makes them the recycled
      space of the next solve (``C = A M U`` recomputed, QR); the projection loss
      (``subspace`` in :mod:`pdeml.trainers.losses`) trains it;
    - *departs*: the targets are the harmonic Ritz vectors that GCRO-DR computed while
      generating the data (``save_ritz``), not eigenvectors from a separate eigensolver,
      because they are what the solver recycles and they cost nothing extra; and the
      predicted space can be *combined* with the space recycled from the previous system
      (``space_mode="augment"``: the predicted vectors first, then the previous system's
      until ``k`` columns), which is the baseline NeurKItt never measured against.

``correct`` (a hybrid correction, after HINTS)
    Kopaničáková and Karniadakis, "Leveraging operator learning for scientific computing:
    hybrid iterative numerical solvers" (Nature Machine Intelligence 2024, code
    ``kopanicakova/HINTS_precond``): a DeepONet trained on (coefficient, random forcing) ->
    solution replaces every n-th step of a Jacobi / Gauss-Seidel relaxation by
    ``u += G(k, r)``, valid because the error ``e`` solves ``A e = r`` (linearity in the
    right-hand side), with the residual normalized before the network and the output scaled
    back. Here:

    - *follows*: the operator is trained on random-forcing data (``source="random"`` in the
      problem: ``(coefficient, f) -> u``), the residual is normalized (unit RMS on the grid,
      the scale of the Gaussian-random-field forcing it was trained on) and the output
      scaled back; the network is applied at every ``every``-th application, the others use
      the classical smoother alone;
    - *departs*: instead of a stationary relaxation, the hybrid step is a two-level
      preconditioner (pre-smoothing with the problem's ILU or AMG cycle, the neural
      correction of the remaining residual as the coarse level, post-smoothing) inside
      flexible GCRO-DR (:class:`~pdeml.solvers.krylov.GCRODR` with ``flexible=True``), which
      keeps the search directions it computed, so that a preconditioner that changes (or is
      nonlinear, as a network is) cannot break the minimal-residual property; the
      correction enters with the step length that minimizes the residual (HINTS adds it
      undamped), so a network that is wrong on some residual costs an iteration rather than
      spoiling the preconditioner; and an FNO takes the place of the DeepONet (the
      operators pdeml trains).

The three take plain callables on the solver's unknown vector (numpy in, numpy out), so this
module imports no operator code: :class:`FieldSurrogate` wraps any torch module that maps
stacked input fields to stacked output fields (a pdeml run's surrogate), and
:meth:`pdeml.solvers.problems.linear.LinearProblem.surrogate_hooks` maps the problem's fields
to and from the unknown vector.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

USES = ("guess", "space", "correct")
SPACE_MODES = ("replace", "augment")


@dataclass
class Hooks:
    """What a surrogate offers the solver, on the unknown vector of one system.

    ``guess(inputs) -> x0``; ``space(inputs) -> U`` of shape ``(n, j)``;
    ``correct(inputs, r) -> e`` with ``A e ~ r``. ``seconds`` accumulates the time spent in
    these calls (inference included), so that a benchmark can report it apart.
    """

    guess: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None
    space: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None
    correct: Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray] | None = None
    seconds: float = 0.0
    calls: int = 0

    def timed(self, fn: Callable[..., np.ndarray], *args: Any) -> np.ndarray:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


class FieldSurrogate:
    """A torch module on stacked fields, called with numpy fields.

    ``module`` maps a ``(batch, len(inputs), *grid)`` tensor to ``(batch, len(outputs),
    *grid)`` (a pdeml run's ``Surrogate`` does, in physical units). Called with a mapping of
    named input fields (each of the grid's shape, or a list of such mappings for a batch), it
    returns the named output fields as float64 arrays. ``threads`` pins torch's intra-op
    threads for the call (``None``: leave them).
    """

    def __init__(self, module: Any, inputs: Sequence[str], outputs: Sequence[str],
                 threads: int | None = None) -> None:
        self.module, self.inputs, self.outputs = module, list(inputs), list(outputs)
        self.threads = threads
        self.seconds, self.calls = 0.0, 0  # inference time and calls, for benchmarks
        if hasattr(module, "eval"):
            module.eval()

    def __call__(self, fields: dict[str, np.ndarray] | Sequence[dict[str, np.ndarray]]
                 ) -> Any:
        import torch

        start = time.perf_counter()
        batch = [fields] if isinstance(fields, dict) else list(fields)
        missing = [v for v in self.inputs if v not in batch[0]]
        if missing:
            raise KeyError(f"the surrogate needs input fields {missing}; have {sorted(batch[0])}")
        x = np.stack([np.stack([np.asarray(f[v], dtype=np.float32) for v in self.inputs])
                      for f in batch])
        old = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                y = self.module(torch.from_numpy(x)).double().numpy()
        finally:
            if self.threads:
                torch.set_num_threads(old)
        if y.shape[1] != len(self.outputs):
            raise ValueError(f"the surrogate returned {y.shape[1]} channels, expected "
                             f"{len(self.outputs)} ({', '.join(self.outputs)})")
        out = [{name: y[i, c] for c, name in enumerate(self.outputs)} for i in range(len(batch))]
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out[0] if isinstance(fields, dict) else out


def residual_norm(A: Any, b: np.ndarray, x: np.ndarray | None) -> float:
    """``norm(b - A x)`` (``norm(b)`` for ``x`` ``None``)."""
    return float(np.linalg.norm(b if x is None else b - A @ x))


def best_start(A: Any, b: np.ndarray, candidates: Sequence[np.ndarray | None]
               ) -> tuple[np.ndarray | None, int, list[float]]:
    """The candidate initial guess with the smallest residual (``None`` is the zero guess).

    Returns the guess, its index and every candidate's relative residual.
    """
    nb = float(np.linalg.norm(b)) or 1.0
    res = [residual_norm(A, b, x) / nb for x in candidates]
    i = int(np.argmin(res))
    return candidates[i], i, res


def combine_spaces(predicted: np.ndarray, previous: np.ndarray | None, k: int) -> np.ndarray:
    """An orthonormal basis of the predicted columns, then the previous space's, ``<= k``.

    The predicted vectors come first (all of them, up to ``k``); the previous system's
    recycled vectors fill the remaining columns, each orthogonalized against what is already
    in (columns that add less than 1e-8 of their norm are dropped).
    """
    P = np.asarray(predicted)
    cols = P if previous is None else np.concatenate([P, np.asarray(previous, P.dtype)], axis=1)
    Q, R = np.linalg.qr(cols[:, : max(k, P.shape[1])] if previous is None else cols)
    keep = np.abs(np.diag(R)) > 1e-8 * max(np.abs(np.diag(R)).max(), 1e-300)
    return np.ascontiguousarray(Q[:, keep][:, :k])


@dataclass
class TwoLevel:
    """A two-level preconditioner with a neural coarse level.

    ``z = S v``; ``r = v - A z``; ``c = correct(r)``, ``s = S r``; ``z += a c + b s`` with
    the weights that minimize ``norm(r - a A c - b A s)`` (two products with ``A`` and a
    2-column least-squares problem).

    ``S`` is the smoother (a preconditioner object with ``@``, e.g. ILU or an AMG cycle),
    ``correct`` the neural correction ``r -> e ~ A^{-1} r``. The weights make a poor
    correction harmless (``a = 0``: the smoother alone, twice) and an exact one exact
    (``a = 1, b = 0``); they also keep a smoother that is poor for this matrix (a reused AMG
    hierarchy gone stale) from making the two-sweep step indefinite, which stalled flexible
    GCRO-DR on Darcy 256² with a fixed post-smoothing weight of 1. The correction runs on
    every ``every``-th application (the others are ``z = S v`` alone), so its inference cost
    can be traded against its effect; ``every=1`` is the full two-level method. Not a fixed
    linear operator: use it with a flexible Krylov method (``GCRODR(flexible=True)``).
    """

    A: Any
    S: Any
    correct: Callable[[np.ndarray], np.ndarray]
    every: int = 1
    applications: int = 0
    corrections: int = 0
    steps: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if int(self.every) != self.every or self.every < 1:
            raise ValueError(f"every must be an integer >= 1, got {self.every}")
        self.A = sp.csr_matrix(self.A) if sp.issparse(self.A) else self.A

    def _smooth(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(self.S @ v).reshape(-1) if self.S is not None else v.copy()

    def __matmul__(self, v: np.ndarray) -> np.ndarray:
        return self.apply(v)

    def apply(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v).reshape(-1)
        self.applications += 1
        z = self._smooth(v)
        if (self.applications - 1) % self.every:
            return z
        self.corrections += 1
        r = v - self.A @ z
        c = np.asarray(self.correct(r)).reshape(-1)
        s = self._smooth(r)
        # the correction and the post-smoothing step enter with the weights that minimize
        # norm(r - a A c - b A s): a poor network (a ~ 0) or a smoother that is poor for this
        # matrix (a stale AMG hierarchy, for which two plain sweeps can even be indefinite)
        # cannot make the step worse than the pre-smoothing alone
        B = np.stack([self.A @ c, self.A @ s], axis=1)
        w = np.zeros(2, dtype=np.result_type(B, r))
        if np.all(np.isfinite(B)):
            w = np.linalg.lstsq(B, r, rcond=1e-12)[0]
        if not np.all(np.isfinite(w)):
            w[:] = 0.0
        self.steps.append(complex(w[0]))
        return z + w[0] * c + w[1] * s

    def operator(self) -> LinearOperator:
        """The preconditioner as a ``LinearOperator`` (a new object: a new identity)."""
        n = self.A.shape[0]
        dtype = np.result_type(self.A.dtype, np.float64)
        return LinearOperator((n, n), matvec=self.apply, dtype=dtype)


def normalized_correction(correct_fields: Callable[[np.ndarray], np.ndarray]
                          ) -> Callable[[np.ndarray], np.ndarray]:
    """``r -> s * G(r / s)`` with ``s`` the RMS of ``r``: the network sees unit-RMS input.

    The error is linear in the residual but a network is not; HINTS normalizes the residual
    before the network and scales the output back, and so does this.
    """
    def correct(r: np.ndarray) -> np.ndarray:
        s = float(np.sqrt(np.mean(np.abs(r) ** 2)))
        if s == 0.0 or not np.isfinite(s):
            return np.zeros_like(r)
        return s * np.asarray(correct_fields(r / s))

    return correct


def to_unknowns(fields: dict[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """The unknown vector (the interior nodes, raveled) from named node-grid fields; a
    ``*_real``/``*_imag`` pair of names makes it complex."""
    inner = tuple(slice(1, -1) for _ in np.shape(fields[names[0]]))
    parts = [np.asarray(fields[n])[inner].reshape(-1) for n in names]
    return parts[0] + 1j * parts[1] if len(parts) == 2 else parts[0]


def from_unknowns(problem: Any, x: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Named node-grid fields (zero boundary, ``problem.embed``) from an unknown vector."""
    u = problem.embed(x)
    if len(names) == 2:
        return {names[0]: np.real(u), names[1]: np.imag(u)}
    return {names[0]: np.real(u)}


def problem_hooks(problem: Any, sur: Any, use: str) -> Hooks:
    """The :class:`Hooks` of a :class:`FieldSurrogate` ``sur`` for a linear ``problem``.

    ``guess``: the surrogate's outputs are the problem's output fields; ``space``: its
    outputs are Ritz vectors (``ritz:<i>``, or ``ritz_real:<i>`` and ``ritz_imag:<i>``
    channels); ``correct``: its inputs are the problem's inputs and the forcing (``f``, or
    ``f_real``/``f_imag``) of a random-source dataset, its outputs the solution fields.
    Raises ``ValueError`` when the surrogate's fields do not fit the use.
    """
    outs = list(sur.outputs)
    sol = [v for v in problem.output_vars if v in outs]
    hooks = Hooks()
    if use == "guess":
        if len(sol) != len(problem.output_vars):
            raise ValueError(f"a guess needs a surrogate predicting {list(problem.output_vars)}"
                             f", got outputs {outs}")
        hooks.guess = lambda inp: to_unknowns(sur(inp), sol)
    elif use == "space":
        modes = sorted({int(o.rsplit(":", 1)[1]) for o in outs
                        if o.startswith("ritz") and ":" in o})
        if not modes:
            raise ValueError(f"a recycle space needs a surrogate predicting ritz vectors "
                             f"(ritz:<i> channels), got outputs {outs}")
        cplx = any(o.startswith("ritz_real") for o in outs)

        def names(i: int) -> list[str]:
            return [f"ritz_real:{i}", f"ritz_imag:{i}"] if cplx else [f"ritz:{i}"]

        def space(inp: dict[str, np.ndarray]) -> np.ndarray:
            y = sur(inp)
            return np.stack([to_unknowns(y, names(i)) for i in modes], axis=1)

        hooks.space = space
    else:
        forcing = [v for v in sur.inputs if v == "f" or v.startswith("f_")]
        if not forcing or len(sol) != len(problem.output_vars):
            raise ValueError(f"a correction needs a surrogate trained on random forcing "
                             f"(inputs with f, outputs {list(problem.output_vars)}), got "
                             f"inputs {list(sur.inputs)} and outputs {outs}")

        def correct(inp: dict[str, np.ndarray], r: np.ndarray) -> np.ndarray:
            def fields(rn: np.ndarray) -> np.ndarray:
                return to_unknowns(sur({**inp, **from_unknowns(problem, rn, forcing)}), sol)
            return normalized_correction(fields)(r)

        hooks.correct = correct
    return hooks


def solve_with_surrogate(
    As: Sequence[Any], bs: Sequence[np.ndarray], inputs: Sequence[dict[str, np.ndarray]],
    order: Sequence[int], hooks: Hooks, use: str, *, method: str = "gcrodr",
    rtol: float = 1e-8, precond: Any = "ilu", m: int = 40, k: int = 20,
    space_mode: str = "augment", every: int = 1, smooth: int = 0, spd: bool = False,
    rebuild_factor: float = 1.5,
) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Solve a sorted sequence with a surrogate inside the solver (see the module doc).

    ``use`` is ``"guess"``, ``"space"`` or ``"correct"``. ``method`` is the Krylov method
    around it: ``"gcrodr"`` (recycling), ``"gmres"``, or ``"amg"`` (CG for ``spd`` systems,
    else GMRES(m), preconditioned by ``precond``, which should then build an AMG hierarchy);
    ``"space"`` and ``"correct"`` always run GCRO-DR (flexible for ``"correct"``).
    ``precond`` is a name or a builder ``A -> M`` (:func:`make_preconditioner`), reused along
    the sequence and rebuilt when the iteration count grows ``rebuild_factor`` times.
    Returns the solutions (input order) and per system: ``iterations``, ``matvecs``,
    ``residual`` (relative, true), ``surrogate_seconds``, ``start`` (for ``guess``: 0 zero
    or previous, 1 the surrogate's), ``converged``.
    """
    from pdeml.solvers.krylov import GCRODR, GMRES, make_preconditioner
    from pdeml.solvers.warmstart import smooth_guess

    if use not in USES:
        raise ValueError(f"unknown surrogate use '{use}'; use one of {', '.join(USES)}")
    if space_mode not in SPACE_MODES:
        raise ValueError(f"unknown space_mode '{space_mode}'; use one of "
                         f"{', '.join(SPACE_MODES)}")
    needed = {"guess": hooks.guess, "space": hooks.space, "correct": hooks.correct}[use]
    if needed is None:
        raise ValueError(f"the surrogate offers no '{use}' (its outputs do not fit that use)")
    if use in ("space", "correct"):
        method = "gcrodr"
    if method not in ("gcrodr", "gmres", "amg"):
        raise ValueError(f"a surrogate works inside gcrodr, gmres or amg, not '{method}'")
    cg = method == "amg" and spd and use == "guess"
    solver = (GCRODR(m, k, orthog="cgs2", flexible=use == "correct") if method == "gcrodr"
              else GMRES(m, orthog="cgs2"))
    xs: list[Any] = [None] * len(As)
    stats: list[Any] = [None] * len(As)
    M, baseline, prev = None, None, None
    for i in order:
        A, b, inp = As[i], bs[i], inputs[i]
        before = hooks.seconds
        built = M is None
        if built:
            M = make_preconditioner(precond, A)
        x0, start = prev, 0
        if use == "guess":
            pred = hooks.timed(hooks.guess, inp)
            if smooth:
                pred = hooks.timed(smooth_guess, A, b, pred, smooth)
            x0, start, _ = best_start(A, b, [prev, pred])
        elif use == "space":
            U = hooks.timed(hooks.space, inp)
            solver.seed(combine_spaces(U, solver.U if space_mode == "augment" else None,
                                       solver.k))
        Mi = M
        if use == "correct":
            corr = hooks.correct

            def correct(r: np.ndarray, inp: dict = inp, corr: Any = corr) -> np.ndarray:
                return hooks.timed(corr, inp, r)

            Mi = TwoLevel(A, M, correct, every).operator()
        if cg:
            x, iters = _cg(A, b, x0, rtol, M)
            matvecs = iters + 1
        else:
            res = solver.solve(A, b, x0=x0, rtol=rtol, M=Mi, maxiter=50 * A.shape[0])
            x, iters, matvecs = res.x, res.n_iter, res.n_matvec
        rel = residual_norm(A, b, x) / (float(np.linalg.norm(b)) or 1.0)
        if built:
            baseline = iters
        elif baseline is not None and iters > rebuild_factor * max(baseline, 1):
            M = None
        xs[i], prev = x, x
        stats[i] = {"iterations": int(iters), "matvecs": int(matvecs), "residual": rel,
                    "surrogate_seconds": hooks.seconds - before, "start": start,
                    "converged": bool(rel <= rtol)}
    return xs, stats


def _cg(A: Any, b: np.ndarray, x0: np.ndarray | None, rtol: float, M: Any
        ) -> tuple[np.ndarray, int]:
    import scipy.sparse.linalg as spla

    count = [0]

    def tick(_: Any) -> None:
        count[0] += 1

    x, _ = spla.cg(A, b, x0=x0, rtol=rtol, atol=0.0, maxiter=min(2000, A.shape[0]), M=M,
                   callback=tick)
    return x, count[0]
