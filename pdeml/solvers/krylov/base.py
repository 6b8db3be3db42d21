"""Shared pieces of the Krylov solvers: the result, argument checks, the convergence test.

Every solver in :mod:`pdeml.solvers.krylov` stops on the *true* residual of its returned iterate::

    norm(b - A @ x) <= max(rtol * norm(b), atol)

Inner iterations use the cheap residual estimate of the Arnoldi least-squares problem; when it
claims convergence the residual is recomputed as ``b - A @ x`` and the iteration goes on if the
test above does not hold yet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

__all__ = [
    "INFO_BREAKDOWN",
    "INFO_CONVERGED",
    "INFO_NONFINITE",
    "SolveResult",
]

INFO_CONVERGED = 0
"""``info`` of a converged solve; a positive ``info`` is the iteration count of a failed one."""
INFO_BREAKDOWN = -1
"""``info`` when the Krylov process broke down (singular projected least-squares problem)."""
INFO_NONFINITE = -2
"""``info`` when ``A`` or ``M`` produced NaN or inf."""

SIDES = ("right", "left")
CALLBACK_TYPES = ("pr_norm", "x")
ORTHOGONALIZATIONS = ("cgs2", "dgks", "mgs")
# Consecutive restart cycles with no measurable decrease of the true residual after which a
# restarted method is declared stagnated (a cycle that changes nothing would repeat forever).
STAGNATION_CYCLES = 3
STAGNATION_DECREASE = 1e-10


@dataclass
class SolveResult:
    """Outcome of one linear solve.

    Attributes
    ----------
    x
        The approximate solution, shape ``(n,)``.
    info
        ``0`` converged; ``> 0`` not converged, the number of iterations done (``maxiter`` was
        reached or the restarted iteration stagnated); ``< 0`` breakdown (``-1`` singular
        least-squares problem, ``-2`` NaN or inf produced by ``A`` or ``M``).
    n_iter
        Inner (Arnoldi) iterations.
    n_matvec
        Products with ``A``, including residual recomputations and, for GCRO-DR, the products
        ``A @ U`` that refresh the recycled subspace after a matrix change.
    residual_norms
        ``residual_norms[0]`` is the true initial residual norm ``norm(b - A @ x0)``; each later
        entry is the least-squares residual estimate after one inner iteration. With right
        preconditioning (the default) it estimates the true residual norm; with left
        preconditioning it estimates the preconditioned norm ``norm(M @ (b - A @ x))``.
    residual_norm
        The true residual norm ``norm(b - A @ x)`` of the returned ``x``.
    n_precond
        Applications of the preconditioner (one per column for block applications).
    message
        A human-readable reason for a non-zero ``info``.
    """

    x: np.ndarray
    info: int
    n_iter: int
    n_matvec: int
    residual_norms: list[float] = field(default_factory=list)
    residual_norm: float = float("nan")
    n_precond: int = 0
    message: str = ""

    @property
    def converged(self) -> bool:
        """True when ``info == 0``."""
        return self.info == INFO_CONVERGED


def _shape_of(obj: Any) -> tuple[int, ...] | None:
    shape = getattr(obj, "shape", None)
    return tuple(shape) if shape is not None else None


def _block_apply(apply: Callable[[np.ndarray], np.ndarray], X: np.ndarray) -> np.ndarray:
    """Apply a vector-only operator to the columns of ``X`` one by one."""
    return np.stack([np.asarray(apply(X[:, i])).ravel() for i in range(X.shape[1])], axis=1)


def _csr_kernel(op: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """``op @ v`` for a CSR matrix through scipy's compiled kernel, without the Python layers.

    ``A @ v`` on a scipy sparse matrix spends tens of microseconds in argument checks per
    call, as much as the product itself at 10^4 unknowns; the Krylov loop calls it once per
    iteration with arguments it has already checked. Falls back to ``None`` (use ``A @ v``)
    for anything but a CSR matrix of a float64/complex128 dtype or when scipy's private
    kernel is not there.
    """
    if not (sp.issparse(op) and op.format == "csr" and op.ndim == 2):
        return None
    if op.dtype not in (np.float64, np.complex128):
        return None
    try:
        from scipy.sparse import _sparsetools
        kernel = _sparsetools.csr_matvec
    except (ImportError, AttributeError):  # pragma: no cover - other scipy layouts
        return None
    n_row, n_col = op.shape
    indptr, indices, data, dtype = op.indptr, op.indices, op.data, op.dtype

    def matvec(v: np.ndarray) -> np.ndarray:
        if v.dtype != dtype:
            return op @ v
        out = np.zeros(n_row, dtype)
        kernel(n_row, n_col, indptr, indices, data, np.ascontiguousarray(v), out)
        return out

    return matvec


def _operator_functions(
    op: Any, name: str
) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """Vector and block (columns) application of a matrix, LinearOperator or callable."""
    if sp.issparse(op) or isinstance(op, np.ndarray):
        return _csr_kernel(op) or (lambda v: op @ v), (lambda X: op @ X)
    fast = getattr(op, "fast_matvec", None)
    if isinstance(op, LinearOperator):
        return fast or op.matvec, op.matmat
    if callable(op):
        return op, (lambda X: _block_apply(op, X))
    raise ValueError(f"{name} must be a sparse matrix, ndarray, LinearOperator or callable")


def fingerprint(op: Any) -> tuple[Any, ...]:
    """Key of an operator that changes exactly when the operator does.

    A dense or sparse matrix is keyed by its shape, type and a digest of its entries (and
    sparsity pattern), not by its identity: a sequence whose matrix never changes (Poisson
    with a new right-hand side per sample) is recognised as one operator even when every
    sample assembles a new object, and an in-place edit is seen. Linear operators and
    callables have no inspectable content and are keyed by identity, unless the object
    declares its own key in a non-callable ``fingerprint`` attribute.
    """
    if op is None:
        return (None,)
    own = getattr(op, "fingerprint", None)
    if own is not None and not callable(own):
        return ("declared", own)
    parts: list[np.ndarray] = []
    if isinstance(op, np.ndarray):
        parts = [op]
    elif sp.issparse(op):
        parts = [getattr(op, a) for a in ("data", "indices", "indptr", "row", "col", "offsets")
                 if hasattr(op, a)]
    if not parts:
        return ("identity", id(op), _shape_of(op))
    digest = hashlib.blake2b(digest_size=16)
    for p in parts:
        arr = np.ascontiguousarray(p)
        digest.update(str((arr.dtype.str, arr.shape)).encode())
        digest.update(arr.view(np.uint8).ravel())
    return ("content", type(op).__name__, _shape_of(op), digest.hexdigest())


class LinearSystem:
    """``A``, ``b`` and the preconditioner ``M`` on a fixed side, with operation counters.

    The Krylov methods iterate on ``op = A M`` (right) or ``op = M A`` (left); a correction ``z``
    found in that space becomes ``M z`` (right) or ``z`` (left) in the space of ``x``.
    """

    def __init__(self, A: Any, b: np.ndarray, M: Any, side: str, dtype: np.dtype) -> None:
        self.A, self.M, self.b, self.side, self.dtype = A, M, b, side, dtype
        self.n = b.shape[0]
        self._a_vec, self._a_block = _operator_functions(A, "A")
        if M is None:
            self._m_vec = self._m_block = None
        else:
            self._m_vec, self._m_block = _operator_functions(M, "M")
        self.n_matvec = 0
        self.n_precond = 0

    def matvec(self, v: np.ndarray) -> np.ndarray:
        self.n_matvec += 1
        return np.asarray(self._a_vec(v)).reshape(-1)

    def matvec_copy(self, v: np.ndarray) -> np.ndarray:
        """``A v`` as a fresh, writable array of the system's dtype."""
        w = self.matvec(v)
        if w.dtype != self.dtype or not w.flags.writeable or w.base is not None:
            w = np.array(w, dtype=self.dtype, copy=True)
        return w

    def precond(self, v: np.ndarray) -> np.ndarray:
        if self._m_vec is None:
            return v
        self.n_precond += 1
        return np.asarray(self._m_vec(v)).reshape(-1)

    def op(self, v: np.ndarray) -> np.ndarray:
        """One product with the preconditioned operator (a fresh, writable array)."""
        if self.side == "right":
            w = self.matvec(self.precond(v))
        else:
            w = self.precond(self.matvec(v))
        if w.dtype != self.dtype or not w.flags.writeable or w.base is not None:
            w = np.array(w, dtype=self.dtype, copy=True)
        return w

    def op_rows(self, X: np.ndarray) -> np.ndarray:
        """The preconditioned operator applied to each row of ``X`` (block products)."""
        if self.side == "right":
            return self.matmat_rows(self.precond_rows(X))
        return self.precond_rows(self.matmat_rows(X))

    def matmat_rows(self, X: np.ndarray) -> np.ndarray:
        """``A`` applied to each row of ``X``, as rows."""
        return np.ascontiguousarray(np.asarray(self._matmat(X.T), dtype=self.dtype).T)

    def precond_rows(self, X: np.ndarray) -> np.ndarray:
        """``M`` applied to each row of ``X``, as rows (``X`` itself without ``M``)."""
        if self._m_block is None:
            return X
        return np.ascontiguousarray(np.asarray(self._precond_block(X.T), dtype=self.dtype).T)

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        self.n_matvec += X.shape[1]
        return np.asarray(self._a_block(X)).reshape(X.shape[0], -1)

    def _precond_block(self, X: np.ndarray) -> np.ndarray:
        if self._m_block is None:
            return X
        self.n_precond += X.shape[1]
        return np.asarray(self._m_block(X)).reshape(X.shape[0], -1)

    def correction(self, z: np.ndarray) -> np.ndarray:
        """Map a correction of the preconditioned iteration to a correction of ``x``."""
        return self.precond(z) if self.side == "right" else z

    def residual(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """The residual the iteration works with and the true residual norm."""
        r = self.b - self.matvec(x) if np.any(x) else self.b.astype(self.dtype, copy=True)
        rnorm = float(np.linalg.norm(r))
        r_hat = r if self.side == "right" else np.asarray(self.precond(r), dtype=self.dtype)
        return np.asarray(r_hat, dtype=self.dtype), rnorm


def _as_vector(v: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(v)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.shape != (n,):
        raise ValueError(f"{name} has shape {arr.shape} but A is {n}x{n}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _dtype_of(op: Any) -> np.dtype | None:
    dtype = getattr(op, "dtype", None)
    return np.dtype(dtype) if dtype is not None else None


def check_system(
    A: Any, b: Any, x0: Any, rtol: float, atol: float, maxiter: int | None, M: Any, side: str
) -> tuple[LinearSystem, np.ndarray, float, int]:
    """Validate the arguments of ``solve``; return the system, a writable ``x``, tol, maxiter.

    Raises
    ------
    ValueError
        With a one-line message for a non-square ``A``, mismatched shapes, NaN or inf in ``b``
        or ``x0``, negative tolerances or a non-positive ``maxiter``.
    """
    shape = _shape_of(A)
    if shape is None or len(shape) != 2:
        raise ValueError("A must be a 2-D matrix or LinearOperator")
    if shape[0] != shape[1]:
        raise ValueError(f"A must be square, got shape {shape}")
    n = shape[0]
    b = _as_vector(b, n, "b")
    if M is not None and _shape_of(M) not in (None, (n, n)):
        raise ValueError(f"M has shape {_shape_of(M)} but A is {n}x{n}")
    if not (np.isfinite(rtol) and np.isfinite(atol) and rtol >= 0 and atol >= 0):
        raise ValueError(f"rtol and atol must be finite and >= 0, got {rtol}, {atol}")
    if maxiter is None:
        maxiter = max(10 * n, 100)
    elif int(maxiter) != maxiter or maxiter < 1:
        raise ValueError(f"maxiter must be a positive integer, got {maxiter}")
    dtypes = [np.dtype(np.float64), b.dtype]
    dtypes += [d for d in (_dtype_of(A), _dtype_of(M)) if d is not None]
    x = None if x0 is None else _as_vector(x0, n, "x0")
    if x is not None:
        dtypes.append(x.dtype)
    dtype = np.result_type(*dtypes)
    if dtype.kind not in "fc":
        raise ValueError(f"unsupported dtype {dtype}")
    x = np.zeros(n, dtype) if x is None else x.astype(dtype, copy=True)
    tol = max(float(rtol) * float(np.linalg.norm(b)), float(atol))
    system = LinearSystem(A, b.astype(dtype, copy=False), M, side, dtype)
    return system, x, tol, int(maxiter)


class Run:
    """Mutable state of one solve: iterate, residual, counters, stopping decisions."""

    def __init__(
        self,
        system: LinearSystem,
        x: np.ndarray,
        tol: float,
        maxiter: int,
        callback: Callable[[Any], Any] | None,
        callback_type: str,
    ) -> None:
        self.system, self.x, self.tol, self.maxiter = system, x, tol, maxiter
        self.callback, self.callback_type = callback, callback_type
        self.n_iter = 0
        self.info: int | None = None
        self.message = ""
        self.safety = 1.0  # shrinks when the inner estimate claimed convergence too early
        self.stagnant_cycles = 0
        self.r_hat, self.rnorm = system.residual(x)
        self.residual_norms = [self.rnorm]
        if self.rnorm <= tol:
            self.info = INFO_CONVERGED

    @property
    def done(self) -> bool:
        return self.info is not None

    @property
    def remaining(self) -> int:
        return self.maxiter - self.n_iter

    def inner_target(self, beta: float) -> float:
        """Tolerance for the least-squares estimate of the cycle that starts from ``beta``."""
        if self.system.side == "left" and self.rnorm > 0:
            # Estimates measure M r; scale the target by the observed ratio |M r| / |r|.
            return self.tol * self.safety * beta / self.rnorm
        return self.tol * self.safety

    def record(self, estimate: float) -> None:
        """Bookkeeping after one inner iteration."""
        self.n_iter += 1
        self.residual_norms.append(float(estimate))
        if self.callback is not None and self.callback_type == "pr_norm":
            self.callback(float(estimate))

    def stop(self, info: int, message: str) -> None:
        self.info, self.message = info, message

    def end_cycle(self, dx: np.ndarray | None, claimed: bool, singular: bool) -> None:
        """Add the correction ``dx`` of a cycle, recompute the true residual and decide.

        ``claimed`` says that the cycle's estimate met its target, ``singular`` that its
        least-squares problem was singular.
        """
        previous = self.rnorm
        if dx is not None:
            self.x += dx
        self.r_hat, self.rnorm = self.system.residual(self.x)
        if self.callback is not None and self.callback_type == "x":
            self.callback(self.x.copy())
        if not np.isfinite(self.rnorm):
            self.stop(INFO_NONFINITE, "the residual became NaN or inf (check A and M)")
        elif self.rnorm <= self.tol:
            self.stop(INFO_CONVERGED, "")
        elif singular:
            self.stop(INFO_BREAKDOWN, "breakdown: singular least-squares problem")
        elif self.remaining <= 0:
            self.stop(self.n_iter, f"maxiter={self.maxiter} reached, residual {self.rnorm:.3e}")
        else:
            self._check_progress(previous, claimed)

    def _check_progress(self, previous: float, claimed: bool) -> None:
        if self.rnorm > previous * (1.0 - STAGNATION_DECREASE):
            self.stagnant_cycles += 1
        else:
            self.stagnant_cycles = 0
        if self.stagnant_cycles >= STAGNATION_CYCLES:
            self.stop(self.n_iter, f"stagnated at residual {self.rnorm:.3e} > tol {self.tol:.3e}")
        elif claimed:
            # The estimate drifted from the true residual: ask the next cycle for more.
            self.safety *= min(0.5, max(1e-3, self.tol / self.rnorm))

    def result(self) -> SolveResult:
        info = self.info if self.info is not None else self.n_iter
        return SolveResult(
            x=self.x,
            info=int(info),
            n_iter=self.n_iter,
            n_matvec=self.system.n_matvec,
            residual_norms=self.residual_norms,
            residual_norm=self.rnorm,
            n_precond=self.system.n_precond,
            message=self.message,
        )


def check_options(m: int, side: str, orthog: str, callback_type: str) -> None:
    """Validate the constructor options shared by the solvers."""
    if int(m) != m or m < 1:
        raise ValueError(f"m must be a positive integer, got {m}")
    if side not in SIDES:
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    if orthog not in ORTHOGONALIZATIONS:
        raise ValueError(f"orthog must be 'cgs2', 'dgks' or 'mgs', got {orthog!r}")
    if callback_type not in CALLBACK_TYPES:
        raise ValueError(f"callback_type must be 'pr_norm' or 'x', got {callback_type!r}")


def zero_solution(system: LinearSystem) -> SolveResult:
    """The answer for ``b = 0``: ``x = 0`` exactly, no iteration."""
    return SolveResult(np.zeros(system.n, system.dtype), INFO_CONVERGED, 0, 0, [0.0], 0.0)


class KrylovSolver:
    """Common front end: argument checks, trivial cases, the result. Subclasses iterate.

    Parameters
    ----------
    m
        Inner iterations per restart cycle.
    side
        ``"right"`` (default) preconditions as ``A M y = b, x = M y``, so that the Arnoldi
        residual estimates the true residual; ``"left"`` solves ``M A x = M b``.
    orthog
        ``"cgs2"`` (default): classical Gram-Schmidt applied twice, each pass two BLAS-2
        products with the whole basis; ``"dgks"``: classical Gram-Schmidt, repeated only when
        cancellation is detected (the norm drops below ``1/sqrt(2)`` of its value before,
        Daniel-Gragg-Kaufman-Stewart); ``"mgs"``: modified Gram-Schmidt with the same
        conditional second pass, one Python step per basis vector (slowest; kept for
        comparison). All three give the same iteration counts to rounding on the test cases.
    callback_type
        ``"pr_norm"``: ``callback(residual_estimate)`` after every inner iteration;
        ``"x"``: ``callback(x)`` after every restart cycle.
    """

    def __init__(
        self, m: int = 40, side: str = "right", orthog: str = "cgs2", callback_type: str = "pr_norm"
    ) -> None:
        check_options(m, side, orthog, callback_type)
        self.m, self.side, self.orthog, self.callback_type = int(m), side, orthog, callback_type

    def solve(
        self,
        A: Any,
        b: Any,
        x0: Any = None,
        rtol: float = 1e-8,
        atol: float = 0.0,
        maxiter: int | None = None,
        M: Any = None,
        callback: Callable[[Any], Any] | None = None,
    ) -> SolveResult:
        """Solve ``A x = b`` until ``norm(b - A @ x) <= max(rtol * norm(b), atol)``.

        Parameters
        ----------
        A
            Square sparse matrix, dense ndarray or ``LinearOperator``, real or complex.
        b
            Right-hand side, shape ``(n,)`` or ``(n, 1)``.
        x0
            Initial guess (zeros by default).
        rtol, atol
            Relative and absolute tolerances of the true-residual test above.
        maxiter
            Maximum number of inner iterations in total (default ``max(10 n, 100)``).
        M
            Preconditioner approximating ``A^{-1}``: matrix, ``LinearOperator`` or callable.
        callback
            Called as described by the ``callback_type`` constructor option.

        Returns
        -------
        SolveResult
            ``x``, ``info`` (0 converged, > 0 iterations done without convergence, < 0
            breakdown), counters and residual history.
        """
        system, x, tol, maxiter = check_system(A, b, x0, rtol, atol, maxiter, M, self.side)
        if not np.any(system.b):
            return zero_solution(system)
        run = Run(system, x, tol, maxiter, callback, self.callback_type)
        if not run.done:
            self._iterate(run)
        return run.result()

    def _iterate(self, run: Run) -> None:
        raise NotImplementedError
