"""Restarted GMRES(m) in NumPy, and the Arnoldi cycle that GCRO-DR shares with it.

One cycle builds an orthonormal basis ``V`` of the Krylov space of the preconditioned operator
(optionally deflated by ``(I - C C^H)``, see :mod:`pdeml.solvers.krylov.gcrodr`), reduces the
Hessenberg matrix with Givens rotations as it grows, and so knows the least-squares residual
after every step without forming ``x``.
"""

from __future__ import annotations

import math
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


def vnorm(w: np.ndarray) -> float:
    """Euclidean norm through one dot product (``np.linalg.norm`` costs more per call)."""
    if w.dtype.kind == "c":
        return math.sqrt(max(float(np.vdot(w, w).real), 0.0))
    return math.sqrt(max(float(w @ w), 0.0))


def _project(B: np.ndarray, w: np.ndarray, conj: bool) -> np.ndarray:
    """``c = B^H w`` and ``w -= B^T c`` in place: one classical Gram-Schmidt pass (BLAS-2)."""
    c = (B @ w.conj()).conj() if conj else B @ w
    w -= c @ B
    return c


def orthogonalize(
    w: np.ndarray, B: np.ndarray, orthog: str
) -> tuple[np.ndarray, float, float]:
    """Orthogonalize ``w`` in place against the orthonormal rows of ``B``.

    ``B`` holds every vector to project out as one block (GCRO-DR puts its ``C`` rows
    directly above the Arnoldi rows), so a classical pass is two BLAS-2 products however
    many blocks there are. ``"cgs2"``: two classical passes; ``"dgks"``: a second pass only
    when the first removed more than ``1 - 1/sqrt(2)`` of the norm; ``"mgs"``: modified
    Gram-Schmidt, one Python step per row, with the same conditional second pass.
    Returns the coefficients ``B^H w``, the remaining norm and the norm before.
    """
    conj = w.dtype.kind == "c"
    norm0 = vnorm(w)
    if orthog == "mgs":
        coef = np.empty(len(B), dtype=w.dtype)
        for i, v in enumerate(B):
            coef[i] = np.vdot(v, w)
            w -= coef[i] * v
    else:
        coef = _project(B, w, conj)
    hnorm = vnorm(w)
    if orthog == "cgs2" or hnorm < REORTH_THRESHOLD * norm0:
        coef += _project(B, w, conj)
        hnorm = vnorm(w)
    return coef, hnorm, norm0


def givens(a: complex, b: complex) -> tuple[float, complex, complex]:
    """Rotation ``[[c, s], [-conj(s), c]]`` with real ``c`` mapping ``(a, b)`` to ``(r, 0)``.

    Works on Python scalars (``float`` or ``complex``): NumPy scalars cost more per operation.
    """
    if b == 0:
        return 1.0, 0.0, a
    if a == 0:
        return 0.0, b.conjugate() / abs(b), abs(b)
    t = math.hypot(abs(a), abs(b))
    phase = a / abs(a)
    return abs(a) / t, phase * b.conjugate() / t, phase * t


class GivensLeastSquares:
    """``min || beta e1 - Hbar y ||`` updated one Hessenberg column at a time.

    The product of all rotations so far is kept as one small unitary matrix ``Q`` (``Q Hbar =
    [R; 0]``), so a new column is reduced by one small matrix-vector product ``Q h`` instead
    of a Python loop over the earlier rotations, and ``g = Q beta e1 = beta Q[:, 0]``.
    """

    def __init__(self, size: int, beta: float, dtype: np.dtype) -> None:
        self.beta = beta
        self.R = np.zeros((size, size), dtype)
        self.Q = np.eye(size + 1, dtype=dtype)
        self._rot = np.empty((2, 2), dtype)

    @property
    def g(self) -> np.ndarray:
        """The rotated right-hand side ``Q beta e1``."""
        return self.beta * self.Q[:, 0]

    def add_column(self, j: int, column: np.ndarray) -> float:
        """Rotate column ``j`` (length ``j + 2``) of ``Hbar``; return the new residual norm."""
        Q = self.Q
        col = Q[: j + 2, : j + 2] @ column
        c, s, r = givens(col[j].item(), col[j + 1].item())
        rot = self._rot
        rot[0, 0], rot[0, 1], rot[1, 0], rot[1, 1] = c, s, -s.conjugate(), c
        # Only rows j, j+1 of Q change, and they are zero beyond column j+1.
        Q[j : j + 2, : j + 2] = rot @ Q[j : j + 2, : j + 2]
        col[j] = r
        self.R[: j + 1, j] = col[: j + 1]
        return abs(self.beta * Q[j + 1, 0].item())

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


def _basis_block(V: np.ndarray, C: np.ndarray | None) -> tuple[np.ndarray, int]:
    """One array whose rows are ``C`` then ``V`` (a view when ``C`` already sits above ``V``).

    GCRO-DR allocates ``C`` and ``V`` in one buffer for this; otherwise both are copied into
    a fresh block and ``V`` must be read back from it (the returned block's rows ``kc:``).
    """
    if C is None or not len(C):
        return V, 0
    kc = len(C)
    base = V.base
    if (base is not None and C.base is base and C.flags.c_contiguous and V.flags.c_contiguous
            and C.__array_interface__["data"][0] + C.nbytes == V.__array_interface__["data"][0]):
        start = (C.__array_interface__["data"][0] - base.__array_interface__["data"][0])
        row = start // (base.strides[0])
        return base[row:row + kc + len(V)], kc
    block = np.empty((kc + len(V), V.shape[1]), V.dtype)
    block[:kc] = C
    return block, kc


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
    ``C`` and ``V`` are orthogonalized against as one block (see :func:`_basis_block`).
    """
    dtype = run.system.dtype
    block, kc = _basis_block(V, C)
    Vb = block[kc:]
    Vb[0] = r / beta
    H = np.zeros((steps + 1, steps), dtype)
    bk = None if C is None else np.zeros((len(C), steps), dtype)
    lsq = GivensLeastSquares(steps, beta, dtype)
    done, estimate, nonfinite = 0, beta, False
    system = run.system
    for j in range(steps):
        if Z is None:
            w = system.op(Vb[j])
        else:
            Z[j] = system.precond(Vb[j])
            w = system.matvec_copy(Z[j])
        coef, hnorm, norm0 = orthogonalize(w, block[: kc + j + 1], orthog)
        if not (math.isfinite(hnorm) and np.isfinite(coef).all()):
            nonfinite = True
            break
        H[: j + 1, j] = coef[kc:]
        if bk is not None:
            bk[:, j] = coef[:kc]
        invariant = hnorm <= 8 * EPS * norm0
        # An invariant subspace makes the least-squares solution exact; V[j+1] is unused then.
        H[j + 1, j] = 0.0 if invariant else hnorm
        if invariant:
            Vb[j + 1] = 0.0
        else:
            np.multiply(w, 1.0 / hnorm, out=Vb[j + 1])
        done = j + 1
        estimate = lsq.add_column(j, H[: j + 2, j])
        run.record(estimate)
        if invariant or estimate <= target:
            break
    if not np.may_share_memory(Vb, V):
        V[: done + 1] = Vb[: done + 1]
    hbar = H[: done + 1, :done]
    y, singular = lsq.solve(done, hbar) if done else (np.zeros(0, dtype), False)
    return Cycle(done, y, hbar, None if bk is None else bk[:, :done], estimate,
                 estimate <= target, singular, nonfinite)


class GMRES(KrylovSolver):
    """Restarted GMRES(m) (Saad and Schultz 1986), written in NumPy.

    Arnoldi with classical Gram-Schmidt applied twice (by default) and Givens rotations
    accumulated in one small unitary matrix. Converged when
    ``norm(b - A @ x) <= max(rtol * norm(b), atol)`` for the true residual of the returned
    ``x``; the residual is recomputed after every cycle.

    Parameters
    ----------
    m
        Restart length (inner iterations per cycle).
    side
        ``"right"`` (default) or ``"left"`` preconditioning.
    orthog
        ``"cgs2"`` (default; classical Gram-Schmidt twice, BLAS-2), ``"dgks"`` (classical
        Gram-Schmidt, repeated only on cancellation) or ``"mgs"`` (modified Gram-Schmidt, one
        Python step per basis vector; slowest).
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
