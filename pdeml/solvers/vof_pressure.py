"""The variable-coefficient pressure equation of two-phase flow, solved once per time step.

With density ``rho`` varying in space the projection solves ``div(beta grad p) = div(u*) / dt``
with ``beta = 1 / rho`` on the cell faces. The matrix changes every step (the interface moves),
so the single-phase trick of factorizing once no longer applies. :class:`VariablePoisson`
assembles it cheaply (a fixed sparsity pattern; only the values are recomputed, by one
``bincount`` over precomputed face contributions) and offers four ways to solve the sequence:

``"lu"``
    a fresh sparse LU (SuperLU) every step: exact to round-off, no reuse;
``"amg"``
    pyamg smoothed aggregation rebuilt every step, as a preconditioner of conjugate gradients
    started from the previous step's pressure;
``"amg-reuse"``
    the same, but the AMG hierarchy is kept across steps and rebuilt only when the CG iteration
    count grows past ``growth`` times (plus 2) the count right after the last rebuild: the
    hierarchy of a nearby matrix is still a good preconditioner of the current one;
``"gcrodr"``
    pdeml's GCRO-DR(m, k) with its recycled subspace kept across steps (its ``C = A U`` is
    refreshed when the matrix changes) and the same reused AMG preconditioner.

All iterative methods stop on ``norm(b - A p) <= rtol * norm(b)`` (scipy's test), which
:attr:`VariablePoisson.last_residual` reports for checking. Every method is bitwise
repeatable between identical runs: the hierarchies are built by
:func:`pdeml.solvers.krylov.precond.amg_hierarchy` (pyamg's random spectral-radius start
vectors under a fixed local seed).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import cg, splu

VOF_PRESSURE_METHODS = ("lu", "amg", "amg-reuse", "gcrodr")


class VariablePoisson:
    """Assembles and solves ``-area * D diag(beta) G p = b`` for a sequence of ``beta``.

    Parameters
    ----------
    D, G
        Divergence (cells x faces) and gradient (faces x cells) of the MAC grid, as built by
        :class:`pdeml.solvers.projection.ProjectionSolver`.
    area
        Cell area ``dx * dy`` (makes the matrix symmetric positive (semi)definite).
    pin
        Whether the pressure is defined up to a constant (no Dirichlet boundary): then the first
        cell's diagonal is doubled, which fixes ``p[0] = 0`` without changing a compatible
        system's solution otherwise.
    method
        One of :data:`VOF_PRESSURE_METHODS`.
    rtol
        Relative residual tolerance of the iterative methods.
    growth
        ``"amg-reuse"``/``"gcrodr"``: rebuild the hierarchy when the iteration count exceeds
        ``growth * n0 + 2``, ``n0`` the count of the first solve after the last rebuild.
    """

    def __init__(self, D: sp.csr_matrix, G: sp.csr_matrix, area: float, pin: bool,
                 method: str = "amg-reuse", rtol: float = 1e-10, growth: float = 1.5,
                 m: int = 20, k: int = 8) -> None:
        if method not in VOF_PRESSURE_METHODS:
            raise ValueError(f"unknown two-phase pressure method '{method}'; use one of "
                             f"{', '.join(VOF_PRESSURE_METHODS)}")
        self.method, self.rtol, self.growth = method, float(rtol), float(growth)
        self.n = D.shape[0]
        self._pattern(D.tocoo(), G.tocsr(), area)
        self.pin = pin
        self.seconds, self.setup_seconds = 0.0, 0.0
        self.n_solves, self.n_iter, self.n_builds = 0, 0, 0
        self.last_residual = 0.0
        self._x: np.ndarray | None = None
        self._ml: Any = None
        self._M: Any = None
        self._n0: int | None = None
        self._krylov: Any = None
        if method == "gcrodr":
            from pdeml.solvers.krylov import GCRODR

            self._krylov = GCRODR(m=m, k=k)

    def _pattern(self, Dc: sp.coo_matrix, G: sp.csr_matrix, area: float) -> None:
        """Every product ``D[r, f] * G[f, c]`` as a term of entry ``(r, c)`` weighted by face f."""
        counts = np.diff(G.indptr)[Dc.col]
        rows = np.repeat(Dc.row, counts)
        self._face = np.repeat(Dc.col, counts)
        first = np.repeat(G.indptr[Dc.col], counts)
        offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        cols = G.indices[first + offset]
        self._unit = -area * np.repeat(Dc.data, counts) * G.data[first + offset]
        keys, self._slot = np.unique(rows.astype(np.int64) * self.n + cols, return_inverse=True)
        self._indices = (keys % self.n).astype(np.int32)
        row_of = keys // self.n
        self._indptr = np.searchsorted(row_of, np.arange(self.n + 1)).astype(np.int32)
        self._diag0 = int(np.nonzero((row_of == 0) & (self._indices == 0))[0][0])

    def matrix(self, beta: np.ndarray) -> sp.csr_matrix:
        """The pressure matrix for face coefficients ``beta`` (one per face of the grid)."""
        data = np.bincount(self._slot, weights=self._unit * beta[self._face],
                           minlength=self._indices.size)
        if self.pin:
            data[self._diag0] *= 2.0
        return sp.csr_matrix((data, self._indices, self._indptr), shape=(self.n, self.n))

    def solve(self, beta: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Assemble for ``beta`` and solve; iterative methods start from the last solution."""
        start = time.perf_counter()
        A = self.matrix(beta)
        if self.method == "lu":
            lu = splu(A.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                      options={"SymmetricMode": True})
            x = lu.solve(b)
            x += lu.solve(b - A @ x)  # one refinement step: the density jump costs digits
        elif self.method == "gcrodr":
            x = self._gcrodr(A, b)
        else:
            x = self._cg(A, b)
        self.last_residual = float(np.linalg.norm(b - A @ x) / max(np.linalg.norm(b), 1e-300))
        self._x = x
        self.seconds += time.perf_counter() - start
        self.n_solves += 1
        return x

    def _build(self, A: sp.csr_matrix) -> None:
        from pdeml.solvers.krylov.precond import amg_hierarchy

        start = time.perf_counter()
        self._ml = amg_hierarchy(A)  # fixed local seed: repeatable runs
        self._M = self._ml.aspreconditioner(cycle="V")
        self._n0 = None
        self.n_builds += 1
        self.setup_seconds += time.perf_counter() - start

    def _needs_rebuild(self, n_iter: int) -> bool:
        if self._n0 is None:
            self._n0 = n_iter
            return False
        return n_iter > self.growth * self._n0 + 2

    def _cg(self, A: sp.csr_matrix, b: np.ndarray) -> np.ndarray:
        if self._ml is None or self.method == "amg":
            self._build(A)
        count = [0]

        def tick(_: np.ndarray) -> None:
            count[0] += 1

        x, info = cg(A, b, x0=self._x, rtol=self.rtol, atol=0.0, M=self._M,
                     maxiter=10 * self.n, callback=tick)
        if info != 0:
            raise RuntimeError(f"pressure CG ({self.method}) did not converge in {info} "
                               f"iterations")
        self.n_iter += count[0]
        if self.method == "amg-reuse" and self._needs_rebuild(count[0]):
            self._ml = None  # the next step rebuilds
        return x

    def _gcrodr(self, A: sp.csr_matrix, b: np.ndarray) -> np.ndarray:
        from pdeml.solvers.krylov.precond import Preconditioner

        if self._ml is None:
            self._build(A)
            # a new operator object tells GCRO-DR the preconditioner changed
            self._M = Preconditioner(A.shape, A.dtype, self._ml.aspreconditioner().matvec,
                                     "amg", 0.0)
        res = self._krylov.solve(A, b, x0=self._x, rtol=self.rtol, M=self._M,
                                 maxiter=10 * self.n)
        if res.info != 0:
            raise RuntimeError(f"pressure GCRO-DR did not converge: info {res.info}, "
                               f"residual {res.residual_norm:.2e}")
        self.n_iter += res.n_iter
        if self._needs_rebuild(res.n_iter):
            self._ml = None
        return res.x

    def summary(self) -> dict[str, float]:
        """Seconds (solve and setup), solves, iterations and hierarchy builds so far."""
        return {"method": self.method, "seconds": self.seconds,
                "setup_seconds": self.setup_seconds, "solves": self.n_solves,
                "iterations": self.n_iter, "builds": self.n_builds}
