"""GCRO-DR(m, k): GMRES with deflated restarting and subspace recycling between solves.

Parks, de Sturler, Mackey, Johnson and Maiti, "Recycling Krylov subspaces for sequences of
linear systems", SIAM J. Sci. Comput. 28 (2006). The solver keeps ``U`` (``k`` harmonic Ritz
vectors of the preconditioned operator ``op``, with smallest harmonic Ritz values) and
``C = op U`` with ``C^H C = I``. Each cycle

1. removes the ``C`` component of the residual, ``r <- (I - C C^H) r`` (its optimal correction
   lies in ``span(U)``);
2. runs ``m - k`` Arnoldi steps on ``(I - C C^H) op``, which gives
   ``op [U, V_j] = [C, V_{j+1}] G`` with ``G = [[I, B], [0, Hbar]]`` (``B = C^H op V_j``);
3. solves the small least-squares problem (only ``Hbar`` needs it; the ``U`` coefficients
   follow as ``C^H r - B y``);
4. replaces ``U`` and ``C`` by the ``k`` harmonic Ritz vectors of ``op`` in ``span([U, V_j])``
   and their images.

``U`` and ``C`` survive ``solve``: for the next system (a new ``A`` or ``M``) ``C`` is recomputed
as ``op U`` and re-orthonormalized (QR of ``C``, ``U <- U R^{-1}``). Bases are stored as rows so
that every vector is contiguous; all products with ``U``, ``C`` and ``V`` are BLAS-2/3.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla

from pdeml.solvers.krylov.base import (
    INFO_BREAKDOWN,
    INFO_NONFINITE,
    KrylovSolver,
    Run,
    fingerprint,
)
from pdeml.solvers.krylov.gmres import EPS, arnoldi_cycle, gram, hdot

__all__ = ["GCRODR", "ritz_basis"]

# Columns of a QR factor below this relative size are dropped: the recycled space is rank
# deficient there and keeping them would make U = Y R^{-1} blow up.
RANK_TOL = 1e3 * EPS


def _pivoted_qr(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Economic pivoted QR ``X[:, piv] = Q R`` truncated to the numerical rank of ``X``."""
    Q, R, piv = sla.qr(X, mode="economic", pivoting=True)
    diag = np.abs(np.diag(R))
    rank = int(np.sum(diag > RANK_TOL * diag[0])) if diag.size and diag[0] > 0 else 0
    return Q[:, :rank], R[:rank, :rank], piv[:rank]


def _smallest_harmonic_ritz(lhs: np.ndarray, rhs: np.ndarray, k: int, real: bool) -> np.ndarray:
    """Orthonormal basis of the eigenvectors of ``lhs z = theta rhs z`` with smallest |theta|.

    For a real problem complex conjugate pairs are replaced by the real and imaginary parts of
    one member, so that the basis stays real; a pair that does not fit in ``k`` is left out.
    """
    theta, Z = sla.eig(lhs, rhs)
    mag = np.where(np.isfinite(theta), np.abs(theta), np.inf)
    cols: list[np.ndarray] = []
    for idx in np.argsort(mag, kind="stable"):
        if len(cols) >= k or not np.isfinite(mag[idx]):
            break
        z = Z[:, idx]
        if not real:
            cols.append(z)
        elif abs(theta[idx].imag) <= 1e-12 * max(mag[idx], 1e-300):
            cols.append(z.real)
        elif theta[idx].imag > 0:  # the partner with negative imaginary part adds nothing
            if len(cols) + 2 > k:
                break
            cols += [z.real, z.imag]
    if not cols:
        return np.zeros((lhs.shape[0], 0), lhs.dtype)
    P = np.stack(cols, axis=1)
    return np.linalg.qr(P.real if real else P)[0]


class GCRODR(KrylovSolver):
    """GCRO-DR(m, k): restarted GMRES that deflates with, and recycles, ``k`` Ritz vectors.

    Converged when ``norm(b - A @ x) <= max(rtol * norm(b), atol)`` for the true residual of the
    returned ``x`` (recomputed after every cycle). The recycled subspace ``U`` (harmonic Ritz
    vectors of the preconditioned operator, smallest harmonic Ritz values) is kept between
    calls of :meth:`solve`, also when the next call has a different matrix or preconditioner:
    then ``C = op U`` is recomputed (``k`` products with ``A``, counted in ``n_matvec``) and
    re-orthonormalized. :meth:`reset` drops it.

    Parameters
    ----------
    m
        Maximum dimension of the search space per cycle (``k`` recycled + ``m - k`` Arnoldi).
    k
        Number of recycled vectors, ``1 <= k < m``; ``m // 2`` by default (20 for ``m=40``).
    side
        ``"right"`` (default): ``U`` lives in the space of ``M^{-1} x`` and ``C = A M U``;
        ``"left"``: ``C = M A U``.
    orthog
        ``"cgs2"`` (default), ``"dgks"`` or ``"mgs"``, for the Arnoldi vectors (``C`` is always
        projected out as one matrix product); see :class:`~pdeml.solvers.krylov.GMRES`.
    callback_type
        ``"pr_norm"``: ``callback(estimate)`` per inner iteration; ``"x"``: ``callback(x)`` per
        cycle.
    flexible
        The preconditioner may change from one application to the next (FGCRO-DR: Carvalho,
        Gratton, Lago and Vasseur, "A flexible generalized conjugate residual method with inner
        orthogonalization and deflated restarting", SIMAX 32, 2011), e.g. a neural correction
        applied every few iterations. Needs right preconditioning. The search directions
        ``Z = M V`` and ``Z = M U`` are kept as computed, so ``op Z = A Z`` holds for whatever
        ``M`` produced them, and a new ``M`` for the next system only recomputes ``C = A Z``
        (``k`` products with ``A``, none with ``M``).

    Notes
    -----
    A change of ``A`` or ``M`` is detected from the content of a sparse or dense matrix (a
    digest of its entries and pattern, so a new object with the same entries is the same
    operator and ``C`` is not recomputed, and in-place edits are seen); a ``LinearOperator`` or
    callable is compared by identity only: pass a new object when it changes. A solve with a
    different size drops the recycled space; so does a real problem after a complex one.
    """

    def __init__(
        self,
        m: int = 40,
        k: int | None = None,
        side: str = "right",
        orthog: str = "cgs2",
        callback_type: str = "pr_norm",
        flexible: bool = False,
    ) -> None:
        super().__init__(m, side, orthog, callback_type)
        if flexible and side != "right":
            raise ValueError("a flexible GCRO-DR needs side='right'")
        self.flexible = bool(flexible)
        k = self.m // 2 if k is None else k
        if int(k) != k or not 1 <= k < self.m:
            raise ValueError(f"k must be an integer with 1 <= k < m={self.m}, got {k}")
        self.k = int(k)
        self.reset()

    def reset(self) -> None:
        """Drop the recycled subspace; the next solve starts like GMRES(m)."""
        self._U: np.ndarray | None = None
        self._Z: np.ndarray | None = None  # M U with right preconditioning, else U itself
        self._C: np.ndarray | None = None
        self._key_a: tuple[Any, ...] | None = None
        self._key_m: tuple[Any, ...] | None = None
        self._refs: tuple[Any, Any] = (None, None)

    def seed(self, U: np.ndarray) -> None:
        """Recycle the ``(n, j)`` subspace ``U`` (``j <= k`` columns) in the next solve.

        Any basis works: the next solve computes ``C = op U`` for its operator and
        re-orthonormalizes (``j`` products with ``A``, and with ``M`` under right
        preconditioning), as for a recycled space after a change of matrix. A predicted
        subspace (NeurKItt's idea: an operator that predicts the system's slowest modes)
        enters here; the stopping test is untouched.
        """
        U = np.asarray(U)
        if U.ndim != 2 or not 1 <= U.shape[1] <= self.k:
            raise ValueError(f"seed needs an (n, j) basis with 1 <= j <= k={self.k}, got "
                             f"shape {U.shape}")
        self.reset()
        self._U = np.ascontiguousarray(U.T)
        self._Z = self._U
        self._key_a = self._key_m = ("seeded",)  # differs from every operator: refresh

    @property
    def U(self) -> np.ndarray | None:
        """Recycled subspace, shape ``(n, k)`` (a copy), or ``None``."""
        return None if self._U is None else self._U.T.copy()

    @property
    def C(self) -> np.ndarray | None:
        """``op @ U`` with orthonormal columns, shape ``(n, k)`` (a copy), or ``None``."""
        return None if self._C is None else self._C.T.copy()

    def _iterate(self, run: Run) -> None:
        self._adopt(run)
        n, dtype = run.system.n, run.system.dtype
        # C sits directly above V in one buffer, so that Arnoldi orthogonalizes against both
        # with one product per pass (see gmres._basis_block).
        self._buffer = np.empty((self.k + self.m + 1, n), dtype)
        V = self._buffer[self.k:]
        # Right preconditioning keeps M V as well, so that U and M U update together.
        W = np.empty((self.m + 1, n), dtype) if self._keeps_z(run) else None
        if self._U is None:
            self._first_cycle(run, V, W)
        while not run.done:
            self._augmented_cycle(run, V, W)
        self._buffer = np.empty((0, 0), dtype)  # the workspace is not kept between solves

    @staticmethod
    def _keeps_z(run: Run) -> bool:
        return run.system.side == "right" and run.system.M is not None

    def _adopt(self, run: Run) -> None:
        """Keep the recycled space for this system: drop it if unusable, refresh ``C``."""
        sys = run.system
        if self._U is not None:
            wrong_size = self._U.shape[1] != sys.n
            lost_imag = np.iscomplexobj(self._U) and sys.dtype.kind != "c"
            if wrong_size or lost_imag:
                self.reset()
        key_a, key_m = fingerprint(sys.A), (fingerprint(sys.M), sys.side)
        if self._U is not None:
            self._U = self._U.astype(sys.dtype, copy=False)
            self._Z = self._Z.astype(sys.dtype, copy=False)
            if key_m != self._key_m:
                self._refresh(run, new_precond=not (self.flexible and self._keeps_z(run)))
            elif key_a != self._key_a:
                self._refresh(run, new_precond=False)
        self._key_a, self._key_m = key_a, key_m
        # Holding the operators keeps their ids from being reused by other objects.
        self._refs = (sys.A, sys.M)

    def _refresh(self, run: Run, new_precond: bool) -> None:
        """``C = op U`` for the current operator, then ``C = QR``, ``U <- U R^{-1}``.

        With right preconditioning and an unchanged ``M`` the stored ``Z = M U`` makes this
        ``k`` products with ``A`` and none with ``M``.
        """
        sys = run.system
        if self._keeps_z(run):
            if new_precond:
                self._Z = sys.precond_rows(self._U)
            C = sys.matmat_rows(self._Z)
        else:
            self._Z = self._U
            C = sys.op_rows(self._U)
        Q, R, piv = _pivoted_qr(C.T)
        if not piv.size:
            self._U = self._Z = self._C = None
            return
        self._C = np.ascontiguousarray(Q.T)
        same = self._Z is self._U
        self._U = np.ascontiguousarray(sla.solve_triangular(R, self._U[piv], trans="T"))
        self._Z = self._U if same else np.ascontiguousarray(
            sla.solve_triangular(R, self._Z[piv], trans="T"))

    def _first_cycle(self, run: Run, V: np.ndarray, W: np.ndarray | None) -> None:
        """One GMRES(m) cycle; its harmonic Ritz vectors become the first ``U``."""
        beta = float(np.linalg.norm(run.r_hat))
        if beta == 0.0:
            run.stop(INFO_BREAKDOWN, "breakdown: the preconditioned residual is zero")
            return
        steps = min(self.m, run.remaining)
        cyc = arnoldi_cycle(run, V, run.r_hat, beta, steps, run.inner_target(beta), self.orthog,
                            Z=W)
        if cyc.nonfinite:
            run.stop(INFO_NONFINITE, "A or M produced NaN or inf")
            return
        X = V if W is None else W
        dx = cyc.y @ X[: cyc.steps]
        if cyc.steps:
            j = cyc.steps
            wtv = np.eye(j + 1, j, dtype=run.system.dtype)  # V_{j+1}^H V_j
            empty = np.zeros((0, run.system.n), run.system.dtype)
            self._update_recycled(run, V, W, cyc.hbar, wtv, empty, empty, empty)
        run.end_cycle(dx, cyc.claimed, cyc.singular)

    def _augmented_cycle(self, run: Run, V: np.ndarray, W: np.ndarray | None) -> None:
        """One cycle of Arnoldi on ``(I - C C^H) op`` augmented by ``U``."""
        U, Z, C = self._U, self._Z, self._C
        c0 = hdot(C, run.r_hat)
        r = run.r_hat - c0 @ C
        beta = float(np.linalg.norm(r))
        target = run.inner_target(float(np.linalg.norm(run.r_hat)))
        steps = min(self.m - len(U), run.remaining)
        if beta <= target or steps <= 0:
            # span(U) already holds the correction; if the true residual disagrees, C = op U
            # has drifted from rounding: recompute it before the next cycle.
            run.end_cycle(c0 @ Z, True, False)
            if not run.done:
                self._refresh(run, new_precond=False)
            return
        kc = len(C)
        C_above = self._buffer[self.k - kc: self.k]
        C_above[...] = C
        cyc = arnoldi_cycle(run, V, r, beta, steps, target, self.orthog, C_above, Z=W)
        if cyc.nonfinite:
            run.stop(INFO_NONFINITE, "A or M produced NaN or inf")
            return
        X = V if W is None else W
        dx = (c0 - cyc.bk @ cyc.y) @ Z + cyc.y @ X[: cyc.steps]
        if cyc.steps:
            self._deflate_and_update(run, V, W, cyc.hbar, cyc.bk)
        run.end_cycle(dx, cyc.claimed, cyc.singular)
        if self._U is None and not run.done:  # all rank deficient: start over as GMRES
            self._first_cycle(run, V, W)

    def _deflate_and_update(
        self, run: Run, V: np.ndarray, W: np.ndarray | None, hbar: np.ndarray, bk: np.ndarray
    ) -> None:
        """Assemble ``G`` and ``[C, V_{j+1}]^H [U D, V_j]`` and update the recycled space."""
        U, Z, C = self._U, self._Z, self._C
        kc, j = bk.shape
        d = 1.0 / np.linalg.norm(U, axis=1)  # scale U to unit columns for a balanced G
        G = np.zeros((kc + j + 1, kc + j), run.system.dtype)
        G[:kc, :kc] = np.diag(d)
        G[:kc, kc:] = bk
        G[kc:, kc:] = hbar
        # C sits directly above V in the workspace: [C; V_{j+1}] is one block, one product.
        block = self._buffer[self.k - kc: self.k + j + 1]
        wtv = np.zeros_like(G)
        wtv[:, :kc] = gram(block, U) * d
        wtv[kc:, kc:] = np.eye(j + 1, j)  # V_{j+1}^H V_j; C^H V_j = 0 by construction
        self._update_recycled(run, V, W, G, wtv, U, Z, C, d, block)

    def _update_recycled(
        self,
        run: Run,
        V: np.ndarray,
        W: np.ndarray | None,
        G: np.ndarray,
        wtv: np.ndarray,
        U: np.ndarray,
        Z: np.ndarray,
        C: np.ndarray,
        d: np.ndarray | None = None,
        block: np.ndarray | None = None,
    ) -> None:
        """Harmonic Ritz vectors of ``op`` in ``span([U D, V_j])``; ``U, C`` become them.

        ``D = diag(d)`` scales ``U`` to unit rows (identity when ``d`` is ``None``). With
        ``op [U D, V_j] = [C, V_{j+1}] G`` the harmonic Ritz problem is
        ``G^H G z = theta G^H wtv z``; for the chosen ``P``, ``G P = Q R`` gives the new
        ``C = [C, V_{j+1}] Q`` and ``U = [U D, V_j] P R^{-1}``, so ``C = op U`` still holds.
        ``Z = M U`` follows from ``[Z D, W_j]`` with the same coefficients. ``D`` is folded
        into the small coefficient matrix, and ``block`` (``[C; V_{j+1}]`` as one array, when
        given) makes the new ``C`` one product.
        """
        kc = len(U)
        j = G.shape[1] - kc
        lhs = G.conj().T @ G
        rhs = G.conj().T @ wtv
        P = _smallest_harmonic_ritz(lhs, rhs, min(self.k, kc + j), run.system.dtype.kind != "c")
        Q, R, piv = _pivoted_qr(G @ P)
        if not piv.size:
            self._U = self._Z = self._C = None
            return
        F = sla.solve_triangular(R, P[:, piv].T, trans="T").T  # P R^{-1}, (kc + j, rank)
        Fu = F[:kc] if d is None else F[:kc] * d[:, None]
        dtype = run.system.dtype
        self._U = np.ascontiguousarray(Fu.T @ U + F[kc:].T @ V[:j], dtype=dtype)
        if block is not None:
            self._C = np.ascontiguousarray(Q.T @ block, dtype=dtype)
        else:
            self._C = np.ascontiguousarray(Q[:kc].T @ C + Q[kc:].T @ V[: j + 1], dtype=dtype)
        if W is None:
            self._Z = self._U
        else:
            self._Z = np.ascontiguousarray(Fu.T @ Z + F[kc:].T @ W[:j], dtype=dtype)


RITZ_RANK_TOL = 1e-10


def ritz_basis(solver: GCRODR, j: int, n: int) -> np.ndarray:
    """The first ``j`` vectors of ``solver``'s recycled space: orthonormal, ``(n, j)``.

    GCRO-DR keeps ``U`` with ``C = op U``, ``C^H C = I`` (``op = A M``, right preconditioning),
    but the columns of ``U`` are mixed by its pivoted QR. The harmonic Ritz pairs of ``op``
    in ``span(U)`` solve ``C^H C z = theta C^H U z``; when ``U`` came out of a cycle's
    harmonic Ritz step they are exactly the pairs that cycle chose, so this only restores
    their order: smallest ``|theta|`` first (a real problem keeps a complex pair as its real
    and imaginary parts, as the solver does). The vectors ``U Z`` are then orthonormalized
    in that order (Householder QR: the first ``i`` columns span the first ``i`` vectors),
    each column's largest entry is made real and positive (a fixed sign/phase), and columns
    beyond the numerical rank, or beyond what the solver holds, are zero.
    """
    out = np.zeros((n, j), dtype=float)
    U, C = solver.U, solver.C
    if U is None or C is None or U.shape[0] != n or j == 0:
        return out
    real = not np.iscomplexobj(U)
    k = U.shape[1]
    Z = _smallest_harmonic_ritz(np.eye(k, dtype=U.dtype), C.conj().T @ U, k, real)
    if Z.shape[1] == 0:
        Z = np.eye(k, dtype=U.dtype)  # no finite pair: keep the solver's order
    Q, R = np.linalg.qr(U @ Z)
    diag = np.abs(np.diag(R))
    rank = int(np.sum(diag > RITZ_RANK_TOL * diag.max())) if diag.size and diag.max() > 0 else 0
    Q = Q[:, :min(rank, j)]
    peak = Q[np.argmax(np.abs(Q), axis=0), np.arange(Q.shape[1])]
    Q = Q * (np.abs(peak) / np.where(peak == 0, 1, peak))
    out = out.astype(Q.dtype)
    out[:, :Q.shape[1]] = Q
    return out
