"""Restarted GMRES(m) in NumPy, and the Arnoldi cycle that GCRO-DR shares with it.

One cycle builds an orthonormal basis ``V`` of the Krylov space of the preconditioned operator
(optionally deflated by ``(I - C C^H)``, see :mod:`pdeml.solvers.krylov.gcrodr`), reduces the
Hessenberg matrix with Givens rotations as it grows, and so knows the least-squares residual
after every step without forming ``x``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular

from pdeml.solvers.krylov.base import INFO_BREAKDOWN, INFO_NONFINITE, KrylovSolver, Run

__all__ = ["GMRES"]

# Reorthogonalize when orthogonalization removed more than this share of the norm
# (Daniel-Gragg-Kaufman-Stewart criterion; one extra pass is enough, "twice is enough").
REORTH_THRESHOLD = 1.0 / np.sqrt(2.0)
EPS = np.finfo(float).eps


def hdot(Q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``Q^H w`` for a basis stored as rows ``Q`` (shape ``(k, n)``), without copying ``Q``."""
    if np.iscomplexobj(Q):
        return (Q @ w.conj()).conj()
    return Q @ w


def gram(Q: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``Q^H X`` for two bases stored as rows: one BLAS-3 product, shape ``(len(Q), len(X))``."""
    return (Q.conj() if np.iscomplexobj(Q) else Q) @ X.T


def orthogonalize(
    w: np.ndarray, V: np.ndarray, C: np.ndarray | None, orthog: str
) -> tuple[np.ndarray, np.ndarray | None, float, float]:
    """Orthogonalize ``w`` in place against the rows of ``C`` and then of ``V``.

    Returns the coefficients against ``V`` and ``C``, the remaining norm and the norm of ``w``
    before orthogonalization.
    """
    norm0 = float(np.linalg.norm(w))
    c = None
    if C is not None and len(C):
        c = hdot(C, w)
        w -= c @ C
    if orthog == "mgs":
        h = np.empty(len(V), dtype=w.dtype)
        for i, v in enumerate(V):
            h[i] = np.vdot(v, w)
            w -= h[i] * v
    else:
        h = hdot(V, w)
        w -= h @ V
    hnorm = float(np.linalg.norm(w))
    if orthog == "cgs2" or hnorm < REORTH_THRESHOLD * norm0:
        if c is not None:
            dc = hdot(C, w)
            w -= dc @ C
            c += dc
        dh = hdot(V, w)
        w -= dh @ V
        h += dh
        hnorm = float(np.linalg.norm(w))
    return h, c, hnorm, norm0


def givens(a: complex, b: complex) -> tuple[float, complex, complex]:
    """Rotation ``[[c, s], [-conj(s), c]]`` with real ``c`` mapping ``(a, b)`` to ``(r, 0)``."""
    if b == 0:
        return 1.0, 0.0, a
    if a == 0:
        return 0.0, np.conj(b) / abs(b), abs(b)
    t = float(np.hypot(abs(a), abs(b)))
    phase = a / abs(a)
    return abs(a) / t, phase * np.conj(b) / t, phase * t


class GivensLeastSquares:
    """``min || beta e1 - Hbar y ||`` updated one Hessenberg column at a time."""

    def __init__(self, size: int, beta: float, dtype: np.dtype) -> None:
        self.beta = beta
        self.R = np.zeros((size, size), dtype)
        self.g = np.zeros(size + 1, dtype)
        self.g[0] = beta
        self.c = np.zeros(size)
        self.s = np.zeros(size, dtype)

    def add_column(self, j: int, column: np.ndarray) -> float:
        """Rotate column ``j`` (length ``j + 2``) of ``Hbar``; return the new residual norm."""
        col = column.astype(self.R.dtype, copy=True)
        for i in range(j):
            c, s = self.c[i], self.s[i]
            col[i], col[i + 1] = c * col[i] + s * col[i + 1], -np.conj(s) * col[i] + c * col[i + 1]
        c, s, r = givens(col[j], col[j + 1])
        self.c[j], self.s[j] = c, s
        col[j] = r
        self.R[: j + 1, j] = col[: j + 1]
        self.g[j], self.g[j + 1] = c * self.g[j], -np.conj(s) * self.g[j]
        return float(abs(self.g[j + 1]))

    def solve(self, steps: int, hbar: np.ndarray) -> tuple[np.ndarray, bool]:
        """The minimizer ``y`` and whether the triangular factor was (numerically) singular."""
        R = self.R[:steps, :steps]
        diag = np.abs(np.diag(R))
        if steps and diag.min() > EPS * diag.max():
            return solve_triangular(R, self.g[:steps]), False
        rhs = np.zeros(steps + 1, hbar.dtype)
        rhs[0] = self.beta
        return np.linalg.lstsq(hbar, rhs, rcond=None)[0], True


@dataclass
class Cycle:
    """What one Arnoldi cycle produced; ``V`` rows ``0..steps`` are the basis."""

    steps: int
    y: np.ndarray
    hbar: np.ndarray
    bk: np.ndarray | None
    estimate: float
    claimed: bool
    singular: bool
    nonfinite: bool


def arnoldi_cycle(
    run: Run,
    V: np.ndarray,
    r: np.ndarray,
    beta: float,
    steps: int,
    target: float,
    orthog: str,
    C: np.ndarray | None = None,
    Z: np.ndarray | None = None,
) -> Cycle:
    """Arnoldi on ``(I - C C^H) op`` from ``r / beta`` for at most ``steps`` steps.

    Stops early when the least-squares estimate reaches ``target`` or at an invariant subspace.
    ``V`` is a workspace with at least ``steps + 1`` rows. Returns the minimizer ``y`` of
    ``|| beta e1 - Hbar y ||`` and ``bk = C^H op V`` (when ``C`` is given). With right
    preconditioning and a workspace ``Z``, ``Z[j] = M V[j]`` is kept (it is computed anyway),
    which spares the preconditioner products that would map ``V`` to the space of ``x``.
    """
    dtype = run.system.dtype
    V[0] = r / beta
    H = np.zeros((steps + 1, steps), dtype)
    bk = None if C is None else np.zeros((len(C), steps), dtype)
    lsq = GivensLeastSquares(steps, beta, dtype)
    done, estimate, nonfinite = 0, beta, False
    for j in range(steps):
        if Z is None:
            w = run.system.op(V[j])
        else:
            Z[j] = run.system.precond(V[j])
            w = np.array(run.system.matvec(Z[j]), dtype=dtype)
        h, c, hnorm, norm0 = orthogonalize(w, V[: j + 1], C, orthog)
        if not (np.isfinite(hnorm) and np.all(np.isfinite(h))):
            nonfinite = True
            break
        H[: j + 1, j] = h
        if bk is not None and c is not None:
            bk[:, j] = c
        invariant = hnorm <= 8 * EPS * norm0
        # An invariant subspace makes the least-squares solution exact; V[j+1] is unused then.
        H[j + 1, j] = 0.0 if invariant else hnorm
        V[j + 1] = 0.0 if invariant else w / hnorm
        done = j + 1
        estimate = lsq.add_column(j, H[: j + 2, j])
        run.record(estimate)
        if invariant or estimate <= target:
            break
    hbar = H[: done + 1, :done]
    y, singular = lsq.solve(done, hbar) if done else (np.zeros(0, dtype), False)
    return Cycle(done, y, hbar, None if bk is None else bk[:, :done], estimate,
                 estimate <= target, singular, nonfinite)


class GMRES(KrylovSolver):
    """Restarted GMRES(m) (Saad and Schultz 1986), written in NumPy.

    Arnoldi with modified Gram-Schmidt (reorthogonalized when cancellation is detected) and
    Givens rotations. Converged when ``norm(b - A @ x) <= max(rtol * norm(b), atol)`` for the
    true residual of the returned ``x``; the residual is recomputed after every cycle.

    Parameters
    ----------
    m
        Restart length (inner iterations per cycle).
    side
        ``"right"`` (default) or ``"left"`` preconditioning.
    orthog
        ``"mgs"`` (default) or ``"cgs2"`` (classical Gram-Schmidt twice, BLAS-2; faster for
        small ``n`` where Python overhead dominates).
    callback_type
        ``"pr_norm"``: ``callback(estimate)`` per inner iteration; ``"x"``: ``callback(x)`` per
        cycle.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> A = sp.diags([-1.0, 2.5, -1.0], [-1, 0, 1], shape=(50, 50), format="csr")
    >>> res = GMRES(m=20).solve(A, np.ones(50), rtol=1e-10)
    >>> res.info, bool(np.linalg.norm(np.ones(50) - A @ res.x) <= 1e-10 * np.sqrt(50))
    (0, True)
    """

    def _iterate(self, run: Run) -> None:
        V = np.empty((self.m + 1, run.system.n), run.system.dtype)
        while not run.done:
            beta = float(np.linalg.norm(run.r_hat))
            if beta == 0.0:  # only with a singular left preconditioner: M r = 0, r != 0
                run.stop(INFO_BREAKDOWN, "breakdown: the preconditioned residual is zero")
                break
            steps = min(self.m, run.remaining)
            cyc = arnoldi_cycle(run, V, run.r_hat, beta, steps, run.inner_target(beta),
                                self.orthog)
            if cyc.nonfinite:
                run.stop(INFO_NONFINITE, "A or M produced NaN or inf")
                break
            dx = run.system.correction(cyc.y @ V[: cyc.steps])
            run.end_cycle(dx, cyc.claimed, cyc.singular)
