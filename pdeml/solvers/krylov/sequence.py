"""Solving many related systems: order them, then recycle across neighbours.

The sorting step follows the idea of Krylov subspace recycling for data generation (SKR: sort
the parameter fields so that consecutive systems are close, then recycle): a greedy
nearest-neighbour tour through the parameter fields, optionally on their low-frequency Fourier
coefficients only, which is much cheaper for many large fields.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from pdeml.solvers.krylov.precond import PRECONDITIONERS, make_preconditioner

__all__ = ["SequenceResult", "SystemStats", "fourier_features", "solve_sequence", "sort_systems"]

SORT_METHODS = ("greedy", "fft")


def fourier_features(params: Any, n_features: int = 64) -> np.ndarray:
    """Low-frequency Fourier coefficients of each parameter field, as real feature vectors.

    ``params`` has shape ``(N, *spatial)``. The lowest ``K`` frequencies per axis (both signs,
    half-spectrum on the last axis) are kept with ``K`` chosen so that about ``n_features`` real
    numbers remain; with the orthonormal FFT and the half-spectrum weights, Euclidean distances
    between features are L2 distances between low-pass-filtered fields.
    """
    X = np.asarray(params)
    if np.iscomplexobj(X):
        raise ValueError("fourier_features needs real parameter fields")
    X = X.astype(float, copy=False)
    if X.ndim == 1:  # one scalar parameter per system
        X = X[:, None]
    spatial = X.shape[1:]
    d = len(spatial)
    K = max(1, int(round((n_features / 2.0 / 2 ** (d - 1)) ** (1.0 / d))))
    F = np.fft.rfftn(X, axes=tuple(range(1, d + 1)), norm="ortho")
    for axis, size in enumerate(spatial[:-1], start=1):
        keep = np.unique(np.r_[np.arange(min(K, size)), -np.arange(1, min(K, size))] % size)
        F = np.take(F, keep, axis=axis)
    last = spatial[-1]
    k_last = np.arange(min(K, last // 2 + 1))
    F = np.take(F, k_last, axis=-1)
    # A half-spectrum coefficient stands for itself and its conjugate twin.
    weight = np.where((k_last == 0) | (2 * k_last == last), 1.0, np.sqrt(2.0))
    F = (F * weight).reshape(len(X), -1)
    return np.concatenate([F.real, F.imag], axis=1)


def _greedy_tour(X: np.ndarray, start: int | None) -> np.ndarray:
    """Nearest-neighbour tour through the rows of ``X``: O(N^2 d) time, O(N d) memory."""
    N = len(X)
    X = X - X.mean(axis=0)  # centring limits cancellation in |x|^2 + |y|^2 - 2 x.y
    sq = np.einsum("ij,ij->i", X, X)
    cur = int(np.argmax(sq)) if start is None else int(start)
    order = np.empty(N, dtype=np.intp)
    visited = np.zeros(N, dtype=bool)
    for pos in range(N):
        order[pos] = cur
        visited[cur] = True
        if pos == N - 1:
            break
        dist = sq - 2.0 * (X @ X[cur])
        dist[visited] = np.inf
        cur = int(np.argmin(dist))
    return order


def sort_systems(
    params: Any, method: str = "greedy", n_features: int = 64, start: int | None = None
) -> np.ndarray:
    """Order systems so that consecutive parameter fields are close.

    Parameters
    ----------
    params
        ``(N, *spatial)`` array (or a sequence of equally shaped arrays): one parameter field
        (or parameter vector) per system.
    method
        ``"greedy"``: nearest-neighbour tour on the raw fields (L2 distance);
        ``"fft"``: the same tour on :func:`fourier_features` (cheap for large N and fields).
    n_features
        Number of real Fourier features for ``"fft"``.
    start
        First system; by default the one farthest from the mean, an end point of the family.

    Returns
    -------
    numpy.ndarray
        A permutation of ``range(N)``: solve system ``order[0]`` first.
    """
    X = np.asarray(params)
    if X.ndim == 0 or len(X) == 0:
        raise ValueError("params must hold at least one parameter field")
    if method not in SORT_METHODS:
        raise ValueError(f"unknown sort method {method!r}; use 'greedy' or 'fft'")
    if start is not None and not 0 <= start < len(X):
        raise ValueError(f"start={start} is out of range for {len(X)} systems")
    if method == "fft":
        feats = fourier_features(X, n_features)
    else:
        feats = X.reshape(len(X), -1)
        feats = np.concatenate([feats.real, feats.imag], 1) if np.iscomplexobj(feats) else feats
    return _greedy_tour(np.asarray(feats, dtype=float), start)


@dataclass
class SystemStats:
    """How one system of a sequence was solved.

    ``method`` is ``"krylov"``, ``"krylov+fresh-precond"`` (retry after a failure) or
    ``"direct"`` (sparse LU as the last resort). ``n_iter``, ``n_matvec``, ``n_precond`` and
    ``time`` add up all attempts; ``n_matvec`` counts the solver's products with ``A`` (the one
    product of the final residual check is not counted), ``n_precond`` its applications of
    the preconditioner. ``rebuilt`` says that a preconditioner was (re)built for
    this system, ``precond_time`` how long that took.
    """

    index: int
    position: int
    n_iter: int = 0
    n_matvec: int = 0
    n_precond: int = 0
    time: float = 0.0
    precond_time: float = 0.0
    method: str = "krylov"
    rebuilt: bool = False
    converged: bool = False
    residual_norm: float = float("nan")
    info: int = 0
    attempts: list[str] = field(default_factory=list)


@dataclass
class SequenceResult:
    """Solutions and per-system statistics, both in the original order of the systems."""

    solutions: np.ndarray | list[np.ndarray]
    stats: list[SystemStats]
    order: np.ndarray

    @property
    def n_matvec(self) -> int:
        """Total products with the matrices over the sequence."""
        return sum(s.n_matvec for s in self.stats)

    @property
    def n_precond(self) -> int:
        """Total applications of the preconditioners."""
        return sum(s.n_precond for s in self.stats)

    @property
    def n_iter(self) -> int:
        """Total inner iterations."""
        return sum(s.n_iter for s in self.stats)

    @property
    def n_rebuilds(self) -> int:
        """How many times a preconditioner was built."""
        return sum(s.rebuilt for s in self.stats)

    @property
    def n_fallbacks(self) -> int:
        """Systems that needed a retry or the direct solver."""
        return sum(s.method != "krylov" for s in self.stats)

    def summary(self) -> dict[str, float]:
        """Totals for reports."""
        return {
            "n_systems": len(self.stats),
            "n_matvec": self.n_matvec,
            "n_iter": self.n_iter,
            "n_precond": self.n_precond,
            "time": sum(s.time for s in self.stats),
            "n_rebuilds": self.n_rebuilds,
            "n_fallbacks": self.n_fallbacks,
        }


def _getter(items: Any) -> Callable[[int], Any]:
    if callable(items) and not isinstance(items, np.ndarray | spla.LinearOperator):
        return items
    return lambda i: items[i]


def _count(systems: Any, rhs: Any, n_systems: int | None) -> int:
    if n_systems is not None:
        return int(n_systems)
    for items in (systems, rhs):
        if not callable(items) and not (isinstance(items, np.ndarray) and items.ndim == 1):
            return len(items)
    raise ValueError("give n_systems when both systems and rhs are callables or shared")


def _rhs_getter(rhs: Any) -> Callable[[int], np.ndarray]:
    if isinstance(rhs, np.ndarray) and rhs.ndim == 1:
        return lambda i: rhs  # one right-hand side shared by all systems
    return _getter(rhs)


def _residual_ok(A: Any, b: np.ndarray, x: np.ndarray, tol: float) -> tuple[bool, float]:
    """The stated criterion, recomputed independently of the solver."""
    rnorm = float(np.linalg.norm(b - A @ x))
    return bool(np.isfinite(rnorm) and rnorm <= tol), rnorm


def _direct(A: Any, b: np.ndarray) -> np.ndarray:
    if sp.issparse(A):
        return np.asarray(spla.spsolve(sp.csc_matrix(A), b)).reshape(-1)
    if isinstance(A, np.ndarray):
        return np.linalg.solve(A, b)
    raise RuntimeError("no direct fallback for a matrix-free operator")


class _SequenceSolver:
    """The state that travels along the sequence: preconditioner, its baseline, last x."""

    def __init__(self, solver: Any, precond: Any, factor: float, options: dict[str, Any],
                 warm_start: bool, solve_kw: dict[str, Any]) -> None:
        self.solver, self.precond, self.factor = solver, precond, factor
        self.options, self.warm_start, self.solve_kw = options, warm_start, solve_kw
        self.M: Any = None
        self.baseline: int | None = None
        self.rebuild_next = True
        self.previous: np.ndarray | None = None
        self.reuse = True

    def _build(self, A: Any, kind: Any, st: SystemStats) -> Any:
        start = time.perf_counter()
        M = make_preconditioner(kind, A, **self.options)
        st.precond_time += time.perf_counter() - start
        st.rebuilt = True
        return M

    def _attempt(self, A: Any, b: np.ndarray, x0: Any, M: Any, st: SystemStats,
                 label: str) -> tuple[np.ndarray, bool]:
        res = self.solver.solve(A, b, x0=x0, M=M, **self.solve_kw)
        st.n_iter += res.n_iter
        st.n_matvec += res.n_matvec
        st.n_precond += res.n_precond
        st.info = res.info
        st.attempts.append(label)
        ok, st.residual_norm = _residual_ok(A, b, res.x, self.tol(b))
        return res.x, ok and res.info == 0

    def tol(self, b: np.ndarray) -> float:
        return max(self.solve_kw["rtol"] * float(np.linalg.norm(b)), self.solve_kw["atol"])

    def solve(self, A: Any, b: np.ndarray, st: SystemStats) -> np.ndarray:
        if self.precond != "none" and self.rebuild_next:
            self.M, self.baseline = self._build(A, self.precond, st), None
        prev = self.previous
        x0 = prev if self.warm_start and prev is not None and prev.shape == b.shape else None
        x, ok = self._attempt(A, b, x0, self.M, st, "krylov")
        if ok:
            st.method = "krylov"
        else:
            x, ok = self._fallback(A, b, x, st)
        if st.rebuilt and self.baseline is None:
            self.baseline = st.n_iter
        self.rebuild_next = not self.reuse or (
            self.baseline is not None and st.n_iter > self.factor * max(self.baseline, 1))
        st.converged = ok
        self.previous = x
        return x

    def _fallback(self, A: Any, b: np.ndarray, x: np.ndarray,
                  st: SystemStats) -> tuple[np.ndarray, bool]:
        """Fresh preconditioner, then a sparse direct solve; the method is recorded."""
        kind = self.precond if self.precond != "none" else "ilu"
        if sp.issparse(A) or isinstance(A, np.ndarray) or kind not in PRECONDITIONERS:
            try:
                M = self._build(A, kind, st)
            except (RuntimeError, ValueError):
                M = None  # e.g. an exactly singular incomplete factor
            if M is not None:
                x0 = x if np.all(np.isfinite(x)) else None
                x_new, ok = self._attempt(A, b, x0, M, st, "krylov+fresh-precond")
                if self.precond != "none":
                    self.M, self.baseline = M, None
                if ok:
                    st.method = "krylov+fresh-precond"
                    return x_new, True
        st.method = "direct"
        st.attempts.append("direct")
        try:
            x = _direct(A, b)
        except RuntimeError as err:
            raise RuntimeError(f"system {st.index} did not converge (info {st.info}, residual "
                               f"{st.residual_norm:.3e}) and {err}") from err
        ok, st.residual_norm = _residual_ok(A, b, x, self.tol(b))
        st.info = 0 if ok else st.info
        if not ok:
            warnings.warn(f"system {st.index}: even the direct solution misses the tolerance "
                          f"(residual {st.residual_norm:.3e}); it is flagged converged=False",
                          RuntimeWarning, stacklevel=3)
        return x, ok


def solve_sequence(
    systems: Sequence[Any] | Callable[[int], Any],
    rhs: Any,
    solver: Any,
    order: Sequence[int] | None = None,
    precond: str | Callable[..., Any] = "none",
    precond_rebuild_factor: float = 1.5,
    warm_start: bool = True,
    rtol: float = 1e-8,
    atol: float = 0.0,
    maxiter: int | None = None,
    progress: bool = False,
    n_systems: int | None = None,
    precond_options: dict[str, Any] | None = None,
    precond_reuse: bool = True,
    after_system: Callable[[int, Any], None] | None = None,
) -> SequenceResult:
    """Solve ``A_i x_i = b_i`` for a sequence of related systems, recycling along the way.

    Systems are solved in ``order`` with one ``solver`` (a :class:`GCRODR` carries its recycled
    subspace from each system to the next; it is not reset here). A preconditioner is built for
    the first system and reused on the following ones until the iteration count exceeds
    ``precond_rebuild_factor`` times the count of the solve right after the last build; it is
    then rebuilt for the next system. With ``warm_start`` the previous solution in the order is
    the initial guess. Every solution is checked against
    ``norm(b - A @ x) <= max(rtol * norm(b), atol)``; a failure is retried with a fresh
    preconditioner (ILU when ``precond="none"``), then with a sparse direct solve, and the
    method used is recorded in the stats.

    Parameters
    ----------
    systems
        Sequence of matrices, or a callable ``i -> A_i`` (assembled on demand).
    rhs
        ``(N, n)`` array or sequence of vectors, one ``(n,)`` vector shared by all systems, or
        a callable ``i -> b_i``.
    solver
        An object with the pdeml ``solve(A, b, x0, rtol, atol, maxiter, M)`` signature.
    order
        Permutation of ``range(N)`` (e.g. from :func:`sort_systems`); identity by default.
    precond
        ``"none"``, ``"ilu"``, ``"amg"`` or a callable ``A -> M``.
    precond_rebuild_factor
        Growth of the iteration count that triggers a rebuild (must be >= 1).
    warm_start
        Start each solve from the previous solution in the order.
    rtol, atol, maxiter
        Passed to ``solver.solve``.
    progress
        Show a tqdm progress bar.
    n_systems
        Number of systems, needed only when neither ``systems`` nor ``rhs`` has a length.
    precond_options
        Keyword arguments of the preconditioner builder (e.g. ``{"drop_tol": 1e-3}``).
    precond_reuse
        ``False`` builds a fresh preconditioner for every system (the baseline that reuse
        is measured against).
    after_system
        Called as ``after_system(i, solver)`` right after system ``i`` (original index) is
        solved and checked, before the next one starts: e.g. to read a
        :class:`GCRODR`'s recycled space ``solver.U`` as it stands for system ``i``. It
        must not change the solver's state.

    Returns
    -------
    SequenceResult
        ``solutions`` (an ``(N, n)`` array when all sizes agree) and ``stats``, both in the
        original order of the systems, and the ``order`` used.

    Raises
    ------
    RuntimeError
        When a matrix-free system does not converge (there is no direct fallback for it).
    """
    N = _count(systems, rhs, n_systems)
    order = np.arange(N) if order is None else np.asarray(order, dtype=np.intp)
    if sorted(order.tolist()) != list(range(N)):
        raise ValueError(f"order must be a permutation of range({N})")
    if not callable(precond) and precond not in PRECONDITIONERS:
        raise ValueError(f"unknown precond {precond!r}; use one of {', '.join(PRECONDITIONERS)}")
    if not precond_rebuild_factor >= 1.0:
        raise ValueError(f"precond_rebuild_factor must be >= 1, got {precond_rebuild_factor}")
    get_A, get_b = _getter(systems), _rhs_getter(rhs)
    state = _SequenceSolver(solver, precond, precond_rebuild_factor, precond_options or {},
                            warm_start, {"rtol": rtol, "atol": atol, "maxiter": maxiter})
    state.reuse = precond_reuse
    positions: Any = range(N)
    if progress:
        from tqdm.auto import tqdm

        positions = tqdm(positions, desc="solve_sequence", total=N)
    solutions: list[Any] = [None] * N
    stats: list[Any] = [None] * N
    for pos in positions:
        i = int(order[pos])
        st = SystemStats(index=i, position=pos)
        start = time.perf_counter()
        A, b = get_A(i), np.asarray(get_b(i)).reshape(-1)
        solutions[i] = state.solve(A, b, st)
        st.time = time.perf_counter() - start
        stats[i] = st
        if after_system is not None:
            after_system(i, solver)
    sizes = {len(x) for x in solutions}
    out = np.stack(solutions) if len(sizes) == 1 else solutions
    return SequenceResult(out, stats, order)
