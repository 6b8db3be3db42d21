"""Preconditioners built once from one matrix and reusable on its neighbours in a sequence.

Each builder returns a :class:`Preconditioner`, a ``LinearOperator`` approximating ``A^{-1}``
of the matrix it was built from; applying it to a different but nearby matrix's residuals is
legitimate (right preconditioning keeps the true residual), only less effective.

Every pyamg hierarchy pdeml builds goes through :func:`amg_hierarchy`: pyamg estimates
spectral radii (the prolongation smoother's weight) by Arnoldi/Lanczos from start vectors it
draws from numpy's *global* generator, so two builds for the same matrix differ in the last
bits and so do the solves preconditioned by them. The builds run under a fixed seed that is
set locally and the caller's global generator state is restored afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, spilu, splu

__all__ = ["AMG_SEED", "PRECONDITIONERS", "Preconditioner", "amg", "amg_hierarchy", "ilu",
           "ilu0", "jacobi", "make_preconditioner", "numpy_global_seed", "ssor"]

PRECONDITIONERS = ("none", "ilu", "amg", "jacobi", "sor", "ilu0")
AMG_SEED = 0  # numpy's global seed while pyamg builds a hierarchy (see the module docstring)


class Preconditioner(LinearOperator):
    """A fixed approximation of ``A^{-1}`` applied as ``M @ v`` (vectors or blocks).

    Attributes
    ----------
    kind
        ``"ilu"``, ``"amg"`` or a user label.
    build_time
        Seconds spent building it.
    n_applications
        Number of vectors it has been applied to.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        dtype: Any,
        apply: Callable[[np.ndarray], np.ndarray],
        kind: str,
        build_time: float,
        apply_block: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        super().__init__(dtype=np.dtype(dtype), shape=shape)
        self._apply, self._apply_block = apply, apply_block
        self.kind, self.build_time = kind, build_time
        self.n_applications = 0

    def fast_matvec(self, x: np.ndarray) -> np.ndarray:
        """``M @ x`` for a vector, without ``LinearOperator``'s argument checks (the solvers)."""
        self.n_applications += 1
        return np.asarray(self._call(self._apply, x))

    def _call(self, fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
        # A real factorization cannot take complex vectors: apply it to both parts.
        if np.iscomplexobj(x) and self.dtype.kind != "c":
            return fn(np.ascontiguousarray(x.real)) + 1j * fn(np.ascontiguousarray(x.imag))
        return fn(x)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        self.n_applications += 1
        shape = x.shape
        return np.asarray(self._call(self._apply, x.reshape(-1))).reshape(shape)

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        if self._apply_block is None:
            return np.stack([self._matvec(X[:, i]) for i in range(X.shape[1])], axis=1)
        self.n_applications += X.shape[1]
        return np.asarray(self._call(self._apply_block, np.asarray(X)))

    def __repr__(self) -> str:
        return f"Preconditioner(kind={self.kind!r}, shape={self.shape}, dtype={self.dtype})"


def _require_matrix(A: Any, kind: str) -> sp.csr_matrix:
    if isinstance(A, np.ndarray):
        A = sp.csr_matrix(A)
    if not sp.issparse(A):
        raise ValueError(f"the {kind} preconditioner needs an assembled matrix, got {type(A)}")
    return A


def ilu(
    A: Any, drop_tol: float = 1e-2, fill_factor: float = 10.0, **options: Any
) -> Preconditioner:
    """Incomplete LU factorization (SuperLU's ILUTP through ``scipy.sparse.linalg.spilu``).

    Parameters
    ----------
    A
        Sparse (or dense) square matrix.
    drop_tol, fill_factor
        Passed to ``spilu``. The default ``drop_tol=1e-2`` differs from scipy's ``1e-4``: with
        SuperLU's default drop rule a smaller tolerance hits the ``fill_factor`` cap and the
        area rule then drops entries badly (on 64x64 Darcy: 40 GMRES iterations at ``1e-4``,
        17 at ``1e-2``). For a stronger factor lower ``drop_tol`` together with
        ``drop_rule="basic"`` (4 iterations at ``1e-4``, twice the fill).
    **options
        Other ``spilu`` keywords (``drop_rule``, ``permc_spec``, ...).

    Raises
    ------
    RuntimeError
        When the factorization fails (exactly singular factor).
    """
    A = _require_matrix(A, "ILU")
    start = time.perf_counter()
    factor = spilu(A.tocsc(), drop_tol=drop_tol, fill_factor=fill_factor, **options)
    return Preconditioner(A.shape, A.dtype, factor.solve, "ilu", time.perf_counter() - start,
                          apply_block=factor.solve)


@contextmanager
def numpy_global_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global generator inside the block and restore its state on leaving.

    For third-party code that draws from ``np.random`` (pyamg's setup); the caller's
    generator continues exactly where it was. Not thread-safe (the global state is shared).
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def amg_hierarchy(A: Any, seed: int | None = AMG_SEED, **options: Any) -> Any:
    """A pyamg smoothed-aggregation hierarchy of ``A``, the same bits for the same matrix.

    Parameters
    ----------
    A
        Sparse square matrix (converted to CSR).
    seed
        Seed of numpy's global generator during the setup (restored afterwards); ``None``
        builds with the global generator as it stands (pyamg's own, unrepeatable behaviour).
    **options
        Passed to ``pyamg.smoothed_aggregation_solver``.

    Raises
    ------
    ImportError
        When pyamg is missing (install the ``solvers`` extra: ``pip install pdeml[solvers]``).
    """
    try:
        import pyamg
    except ImportError as err:  # pragma: no cover - depends on the environment
        msg = "the AMG preconditioner needs pyamg: pip install 'pdeml[solvers]'"
        raise ImportError(msg) from err
    # a canonical copy: pyamg sorts indices in place, which changes the summation order of
    # the caller's next products (and of a second build from the same, now sorted, matrix)
    A = sp.csr_matrix(A, copy=True)
    A.sum_duplicates()
    if seed is None:
        return pyamg.smoothed_aggregation_solver(A, **options)
    with numpy_global_seed(seed):
        return pyamg.smoothed_aggregation_solver(A, **options)


def amg(A: Any, cycle: str = "V", seed: int | None = AMG_SEED, **options: Any
        ) -> Preconditioner:
    """One algebraic multigrid cycle (pyamg smoothed aggregation) as a preconditioner.

    Parameters
    ----------
    A
        Sparse (or dense) square matrix; smoothed aggregation suits diffusion-like problems.
    cycle
        ``"V"``, ``"W"``, ``"F"`` or ``"AMLI"``.
    seed
        See :func:`amg_hierarchy` (the default makes the preconditioner bitwise repeatable).
    **options
        Passed to ``pyamg.smoothed_aggregation_solver``.

    Raises
    ------
    ImportError
        When pyamg is missing (install the ``solvers`` extra: ``pip install pdeml[solvers]``).
    """
    A = _require_matrix(A, "AMG").tocsr()
    start = time.perf_counter()
    ml = amg_hierarchy(A, seed, **options)
    op = ml.aspreconditioner(cycle=cycle)
    return Preconditioner(A.shape, A.dtype, op.matvec, "amg", time.perf_counter() - start)


def jacobi(A: Any) -> Preconditioner:
    """Point Jacobi: ``M = diag(A)^{-1}`` (PETSc's ``-pc_type jacobi``).

    Raises
    ------
    ValueError
        When a diagonal entry is zero.
    """
    A = _require_matrix(A, "Jacobi")
    start = time.perf_counter()
    d = A.diagonal()
    if not np.all(d != 0):
        raise ValueError("the Jacobi preconditioner needs a zero-free diagonal")
    inv = 1.0 / d

    def apply(x: np.ndarray) -> np.ndarray:
        return (inv * x.T).T

    return Preconditioner(A.shape, A.dtype, apply, "jacobi", time.perf_counter() - start,
                          apply_block=apply)


def _triangular_solver(T: sp.spmatrix) -> Callable[[np.ndarray], np.ndarray]:
    """Solve with a sparse triangular ``T`` through SuperLU (natural order, no pivoting).

    A triangular matrix is its own LU factor, so SuperLU adds no fill; its compiled solve
    is ~10x faster than ``scipy.sparse.linalg.spsolve_triangular`` at 80^2 unknowns.
    """
    lu = splu(sp.csc_matrix(T), permc_spec="NATURAL", diag_pivot_thresh=0.0,
              options={"SymmetricMode": True})
    return lu.solve


def ssor(A: Any, omega: float = 1.0) -> Preconditioner:
    """One symmetric SOR sweep from a zero guess (PETSc's default ``-pc_type sor``).

    ``M = omega (2 - omega) (D + omega U)^{-1} D (D + omega L)^{-1}`` with ``A = L + D + U``:
    a forward then a backward sweep, as PETSc's ``SOR_LOCAL_SYMMETRIC_SWEEP`` with one
    iteration. ``omega = 1`` (the default, as PETSc's) is symmetric Gauss-Seidel.
    """
    if not 0.0 < omega < 2.0:
        raise ValueError(f"SOR needs 0 < omega < 2, got {omega}")
    A = _require_matrix(A, "SOR").tocsr()
    start = time.perf_counter()
    d = A.diagonal()
    if not np.all(d != 0):
        raise ValueError("the SOR preconditioner needs a zero-free diagonal")
    D = sp.diags(d)
    lower = _triangular_solver(D + omega * sp.tril(A, -1))
    upper = _triangular_solver(D + omega * sp.triu(A, 1))
    scale = omega * (2.0 - omega)

    def apply(x: np.ndarray) -> np.ndarray:
        y = lower(np.ascontiguousarray(x))
        return scale * upper(np.ascontiguousarray((d * y.T).T))

    return Preconditioner(A.shape, A.dtype, apply, "sor", time.perf_counter() - start,
                          apply_block=apply)


def _ilu0_factor(A: sp.csr_matrix) -> np.ndarray:
    """The ILU(0) values on the pattern of ``A`` (IKJ variant, rows in order).

    Row ``i`` is eliminated with the rows ``k < i`` in its pattern, and updates are kept only
    where ``A`` already has an entry (no fill). Python loops over the entries: about 0.1 s
    for 6400 unknowns with a 5-point stencil; fine for benchmarks, not for large systems.
    """
    n = A.shape[0]
    indptr, indices = A.indptr.tolist(), A.indices.tolist()
    vals = A.data.astype(np.result_type(A.dtype, float)).tolist()
    diag = [0] * n
    for i in range(n):
        row = indices[indptr[i]:indptr[i + 1]]
        if i not in row:
            raise ValueError(f"ILU(0) needs a structurally non-zero diagonal (row {i})")
        diag[i] = indptr[i] + row.index(i)
    where: dict[int, int] = {}
    for i in range(n):
        lo, hi = indptr[i], indptr[i + 1]
        where = {indices[p]: p for p in range(lo, hi)}
        for p in range(lo, diag[i]):
            k = indices[p]
            pivot = vals[diag[k]]
            if pivot == 0:
                raise ValueError(f"ILU(0) hit a zero pivot in row {k}")
            lik = vals[p] / pivot
            vals[p] = lik
            for q in range(diag[k] + 1, indptr[k + 1]):
                pos = where.get(indices[q])
                if pos is not None:
                    vals[pos] -= lik * vals[q]
    if vals[diag[-1]] == 0:
        raise ValueError("ILU(0) hit a zero pivot in the last row")
    return np.asarray(vals)


def ilu0(A: Any) -> Preconditioner:
    """Incomplete LU with zero fill, ILU(0) (PETSc's ``-pc_type ilu`` default level 0).

    ``L`` (unit lower) and ``U`` keep exactly the sparsity pattern of ``A``; rows are taken
    in their natural order (no reordering, as PETSc's sequential ILU with natural ordering).

    Raises
    ------
    ValueError
        For a structurally zero diagonal entry or a zero pivot.
    """
    A = _require_matrix(A, "ILU(0)").tocsr()
    A.sort_indices()
    start = time.perf_counter()
    F = sp.csr_matrix((_ilu0_factor(A), A.indices.copy(), A.indptr.copy()), shape=A.shape)
    lower = _triangular_solver(sp.tril(F, -1) + sp.eye(A.shape[0], dtype=F.dtype))
    upper = _triangular_solver(sp.triu(F))

    def apply(x: np.ndarray) -> np.ndarray:
        return upper(lower(np.ascontiguousarray(x)))

    return Preconditioner(A.shape, F.dtype, apply, "ilu0", time.perf_counter() - start,
                          apply_block=apply)


def make_preconditioner(
    kind: str | Callable[[Any], Any] | None, A: Any, **options: Any
) -> Any:
    """Build a preconditioner for ``A`` by name (one of :data:`PRECONDITIONERS`) or builder.

    ``kind`` may also be a callable ``A -> M`` (any preconditioner the solvers accept).
    Returns ``None`` for ``"none"``.
    """
    if kind is None or kind == "none":
        return None
    if callable(kind):
        return kind(A, **options)
    if kind == "ilu":
        return ilu(A, **options)
    if kind == "amg":
        return amg(A, **options)
    builders = {"jacobi": jacobi, "sor": ssor, "ilu0": ilu0}
    if kind in builders:
        return builders[kind](A, **options)
    raise ValueError(f"unknown preconditioner {kind!r}; use one of {', '.join(PRECONDITIONERS)}")
