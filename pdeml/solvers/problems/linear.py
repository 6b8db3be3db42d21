"""Linear steady problems ``A(p) u = b(p)`` solved as sequences, with a selectable solver.

:class:`LinearProblem` is the shared base of Darcy, Poisson, Helmholtz and steady heat. A
subclass draws its random inputs (:meth:`LinearProblem.draw_inputs`), assembles one sparse
system per sample (:meth:`LinearProblem.system`) and maps the solution back to grid variables
(:meth:`LinearProblem.outputs`). :meth:`LinearProblem.sample_batch` solves a whole shard as one
sequence: sorted by the distance between the parameter fields, then solved with

- ``"direct"``: sparse LU (SuperLU); a factorization is reused while the matrix is unchanged
  (Poisson: one factorization per shard);
- ``"amg"``: pyamg smoothed aggregation as the preconditioner of CG (GMRES for non-SPD
  systems); the hierarchy is reused along the sorted sequence and rebuilt when the
  iteration count grows 1.5x (:class:`AmgSequence`; ``precond_reuse=False`` builds one per
  system), each system warm-started from its predecessor;
- ``"gmres"``: GMRES(m) with preconditioner reuse and warm start along the sorted sequence;
- ``"gcrodr"``: GCRO-DR(m, k), which in addition recycles a ``k``-dimensional subspace;
- ``"auto"``: the fastest of these for the problem size, from the measurements of
  ``scripts/bench_solvers.py`` and ``scripts/bench_sequences.py`` (see :func:`auto_method`):
  sparse LU for a fixed operator (Poisson) and up to about 200^2 unknowns, AMG + CG above
  for SPD problems, sparse LU for 2-D Helmholtz; the 3-D problems choose AMG + CG (Darcy) and
  recycled GCRO-DR + ILU (Helmholtz). The method is recorded per sample.

Every solution is checked against ``norm(b - A x) <= rtol * norm(b)`` on the true residual. A
system that misses it is retried with a stronger method (a fresh preconditioner, then sparse LU,
then one step of iterative refinement); the retry is reported as a ``RuntimeWarning`` and
recorded per sample (``solver_fallback``). A system that still misses it raises
``RuntimeError``: nothing unverified is written.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from pdeml.solvers.fields import grid_points
from pdeml.solvers.krylov import GCRODR, GMRES, amg, solve_sequence, sort_systems
from pdeml.solvers.krylov.gcrodr import ritz_basis
from pdeml.solvers.problems.base import Problem, Variable, box_boundaries

__all__ = ["LinearProblem", "SOLVERS", "STAT_VARIABLES", "assemble_diffusion", "auto_method"]

SOLVERS = ("direct", "amg", "gmres", "gcrodr", "auto")
PRECONDS = ("auto", "none", "ilu", "amg")
METHOD_CODES = {"direct": 0, "amg": 1, "gmres": 2, "gcrodr": 3, "amg-fresh": 1}
# "amg-fresh" (a planner candidate): AMG with a new hierarchy per system, stored as amg

STAT_VARIABLES = {
    "solver_method": Variable((), "1", "solver used: 0 direct, 1 amg, 2 gmres, 3 gcrodr"),
    "solver_fallback": Variable((), "1", "1 when the first attempt missed rtol and was retried"),
    "solver_iterations": Variable((), "1", "Krylov iterations (0 for the direct solver)"),
    "solver_matvecs": Variable((), "1", "products with the system matrix"),
    "solver_residual": Variable((), "1", "relative true residual norm(b - A u) / norm(b)"),
}

# Unknowns from which `auto` leaves sparse LU for AMG, from scripts/bench_solvers.py on Darcy
# (2 shared CPU cores, OPENBLAS_NUM_THREADS=1, ms per system at rtol 1e-8): LU 24 / 117 / 256 /
# 1728 at 64^2 / 128^2 / 256^2 / 512^2, pyamg SA+CG 56 / 161 / 165 / 981, the best recycling
# variant (GCRO-DR + AMG rebuilt per system) 110 / 114 / 403 / 1811. Independent coefficient
# draws are too far apart for a reused AMG hierarchy or a recycled subspace to pay off.
AUTO_ITERATIVE_FROM = 200 * 200


def auto_method(n_unknowns: int, spd: bool, fixed_operator: bool = False) -> str:
    """The solver ``"auto"`` picks for one 2-D system of ``n_unknowns`` unknowns.

    A fixed operator (Poisson: only ``b`` changes) is factorized once per shard, and every
    further sample costs two triangular solves: nothing iterative competes, so sparse LU.
    Otherwise sparse LU below :data:`AUTO_ITERATIVE_FROM` unknowns (fill-in is still small
    and it needs no iterations); above it, for SPD systems, smoothed-aggregation AMG + CG,
    which was measured fastest there (1.55x faster than LU at 256^2, 1.76x at 512^2).
    Non-SPD 2-D systems (Helmholtz) stay on sparse LU. The 3-D problems override this
    (:meth:`pdeml.solvers.problems.linear3d.Darcy3D.auto_choice`).
    """
    if fixed_operator:
        return "direct"
    if spd and n_unknowns >= AUTO_ITERATIVE_FROM:
        return "amg"
    return "direct"


def assemble_diffusion(
    a: np.ndarray,
    h: float,
    f: np.ndarray | float = 0.0,
    g: np.ndarray | None = None,
    shift: np.ndarray | complex | None = None,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """``-div(a grad u) + shift u = f`` on a node grid with Dirichlet values ``g``, 5-point FV.

    Parameters
    ----------
    a
        Positive coefficient on the ``(s, s)`` node grid (boundary included); the face
        coefficient is the harmonic mean of its two nodes.
    h
        Grid spacing.
    f
        Source on the node grid (or a constant); only interior values are used.
    g
        Dirichlet values on the node grid (only boundary values are used); zero by default.
    shift
        Zeroth-order coefficient on the node grid (real or complex) or a constant.

    Returns
    -------
    tuple
        The CSR matrix on the ``(s - 2)^2`` interior unknowns (row-major) and the right-hand
        side with the boundary values moved to it.
    """
    s = a.shape[0]
    n, inv_h2 = s - 2, 1.0 / h**2
    kx = 2.0 * a[:, :-1] * a[:, 1:] / (a[:, :-1] + a[:, 1:]) * inv_h2  # faces j | j+1
    ky = 2.0 * a[:-1, :] * a[1:, :] / (a[:-1, :] + a[1:, :]) * inv_h2  # faces i | i+1
    diag = kx[1:-1, 1:] + kx[1:-1, :-1] + ky[1:, 1:-1] + ky[:-1, 1:-1]
    if shift is not None:
        diag = diag + np.broadcast_to(shift, a.shape)[1:-1, 1:-1]
    idx = np.arange(n * n).reshape(n, n)
    wx, wy = kx[1:-1, 1:-1].ravel(), ky[1:-1, 1:-1].ravel()
    rows = np.concatenate([idx.ravel(), idx[:, :-1].ravel(), idx[:, 1:].ravel(),
                           idx[:-1, :].ravel(), idx[1:, :].ravel()])
    cols = np.concatenate([idx.ravel(), idx[:, 1:].ravel(), idx[:, :-1].ravel(),
                           idx[1:, :].ravel(), idx[:-1, :].ravel()])
    vals = np.concatenate([diag.ravel(), -wx, -wx, -wy, -wy])
    A = sp.csr_matrix((vals, (rows, cols)), shape=(n * n, n * n))
    f = np.asarray(f)
    b = np.broadcast_to(f, a.shape)[1:-1, 1:-1].astype(np.result_type(A.dtype, f.dtype, float))
    if g is not None:
        gb = np.array(g, dtype=float)
        gb[1:-1, 1:-1] = 0.0  # only boundary nodes couple into the right-hand side
        b = b + (kx[1:-1, :-1] * gb[1:-1, :-2] + kx[1:-1, 1:] * gb[1:-1, 2:]
                 + ky[:-1, 1:-1] * gb[:-2, 1:-1] + ky[1:, 1:-1] * gb[2:, 1:-1])
    return A, np.ascontiguousarray(b.ravel())


def _relres(A: Any, b: np.ndarray, x: np.ndarray) -> float:
    """The written criterion, recomputed independently of every solver."""
    nb = float(np.linalg.norm(b))
    r = float(np.linalg.norm(b - A @ x))
    return r / nb if nb > 0 else r


def _stats(method: str, fallback: bool, iters: int, matvecs: int, res: float) -> dict[str, Any]:
    return {"solver_method": METHOD_CODES[method], "solver_fallback": int(fallback),
            "solver_iterations": int(iters), "solver_matvecs": int(matvecs),
            "solver_residual": float(res)}


def _same_matrix(A: sp.csr_matrix, B: sp.csr_matrix | None) -> bool:
    return (B is not None and A.shape == B.shape and A.nnz == B.nnz
            and np.array_equal(A.indptr, B.indptr) and np.array_equal(A.indices, B.indices)
            and np.array_equal(A.data, B.data))


class _Direct:
    """Sparse LU with the factorization kept while consecutive matrices are identical."""

    def __init__(self) -> None:
        self.A: sp.csr_matrix | None = None
        self.lu: Any = None

    def __call__(self, A: sp.csr_matrix, b: np.ndarray, rtol: float
                 ) -> tuple[np.ndarray, dict[str, Any]]:
        if not _same_matrix(A, self.A):
            self.A, self.lu = A, spla.splu(A.tocsc())
        x = self.lu.solve(b)
        res, fallback, matvecs = _relres(A, b, x), False, 1
        if not res <= rtol:  # one step of iterative refinement with the same factors
            x = x + self.lu.solve(b - A @ x)
            res, fallback, matvecs = _relres(A, b, x), True, 2
        return x, _stats("direct", fallback, 0, matvecs, res)


def seeded_amg(A: Any, **options: Any) -> Any:
    """:func:`pdeml.solvers.krylov.amg`, reproducible bit for bit.

    pyamg estimates spectral radii from ``np.random`` start vectors: unseeded, the same
    matrix gives slightly different hierarchies, and a shard would not be reproducible.
    :func:`~pdeml.solvers.krylov.amg` now fixes the seed itself (locally, the caller's
    generator restored); this name is kept for existing callers.
    """
    return amg(A, **options)


class AmgSequence:
    """AMG-preconditioned CG (GMRES when not SPD) along a sequence, hierarchy reused.

    A smoothed-aggregation hierarchy is built for the first system and kept as the
    preconditioner of the following ones (each solved on its *own* matrix, so the answer is
    exact to ``rtol``; only the preconditioner is stale) until the iteration count exceeds
    ``rebuild_factor`` times the count right after the last build; the next system then gets
    a fresh hierarchy. ``reuse=False`` builds one per system (pyamg's own solve loop). With
    ``warm_start`` the previous solution in the order is the initial guess. A system that
    misses ``rtol`` falls back to sparse LU (recorded as a fallback).
    """

    def __init__(self, rtol: float, spd: bool, direct: _Direct, reuse: bool = True,
                 rebuild_factor: float = 1.5, warm_start: bool = True) -> None:
        self.rtol, self.spd, self.direct, self.reuse = rtol, spd, direct, reuse
        self.rebuild_factor, self.warm_start = rebuild_factor, warm_start
        self.M: Any = None
        self.baseline: int | None = None
        self.previous: np.ndarray | None = None
        self.n_builds = 0

    def _iterate(self, A: sp.csr_matrix, b: np.ndarray, x0: Any) -> tuple[np.ndarray, int]:
        count = [0]

        def tick(_: Any) -> None:
            count[0] += 1

        maxiter = min(500, A.shape[0])
        if self.spd:
            x, _ = spla.cg(A, b, x0=x0, rtol=self.rtol, atol=0.0, maxiter=maxiter, M=self.M,
                           callback=tick)
            return x, count[0]
        res = GMRES(40).solve(A, b, x0=x0, rtol=self.rtol, maxiter=maxiter, M=self.M)
        return res.x, res.n_iter

    def __call__(self, A: sp.csr_matrix, b: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        built = self.M is None or not self.reuse
        if built:
            self.M, self.baseline = seeded_amg(A.tocsr()), None
            self.n_builds += 1
        x0 = self.previous if self.warm_start else None
        x, iters = self._iterate(A, b, x0)
        res = _relres(A, b, x)
        if built:
            self.baseline = iters
        elif self.baseline is not None and iters > self.rebuild_factor * max(self.baseline, 1):
            self.M = None  # stale: the next system gets a fresh hierarchy
        if res <= self.rtol:
            self.previous = x
            return x, _stats("amg", False, iters, iters + 1, res)
        x, st = self.direct(A, b, self.rtol)
        st.update(solver_fallback=1, solver_iterations=iters)
        self.previous = x
        return x, st


def _solve_krylov(As: Sequence[Any], bs: Sequence[np.ndarray], order: np.ndarray, method: str,
                  rtol: float, precond: str, m: int, k: int, reuse: bool = True,
                  after_system: Callable[[int, Any], None] | None = None
                  ) -> tuple[list, list]:
    """One solver object along the sorted sequence: recycling, precond reuse, warm start.

    Classical Gram-Schmidt twice (``cgs2``), the solvers' default: the same iteration counts
    as modified Gram-Schmidt and about half the time per iteration. ``after_system(i,
    solver)`` runs after each system (see :func:`~pdeml.solvers.krylov.solve_sequence`).
    """
    solver = GCRODR(m, k, orthog="cgs2") if method == "gcrodr" else GMRES(m, orthog="cgs2")
    out = solve_sequence(list(As), list(bs), solver, order=order, rtol=rtol,
                         precond=seeded_amg if precond == "amg" else precond,
                         precond_reuse=reuse, after_system=after_system)
    xs, stats = list(out.solutions), []
    for A, b, x, st in zip(As, bs, xs, out.stats, strict=True):
        res = _relres(A, b, x)
        used = {"krylov": method, "krylov+fresh-precond": method}.get(st.method, "direct")
        stats.append(_stats(used, st.method != "krylov", st.n_iter, st.n_matvec, res))
    return xs, stats


# -- random right-hand sides (source="random") ------------------------------------------------


# -- harmonic Ritz vectors as data (save_ritz) ------------------------------------------------

class _RitzRecorder:
    """``after_system`` hook: each system's :func:`ritz_basis` right after its solve."""

    def __init__(self, j: int, sizes: Sequence[int]) -> None:
        self.j, self.sizes = j, list(sizes)
        self.bases: list[np.ndarray | None] = [None] * len(self.sizes)

    def __call__(self, i: int, solver: Any) -> None:
        self.bases[i] = ritz_basis(solver, self.j, self.sizes[i])


class LinearProblem(Problem):
    """Base of the steady linear problems: solver selection and the sorted-sequence batch path.

    Parameters
    ----------
    solver
        ``"direct"``, ``"amg"``, ``"gmres"``, ``"gcrodr"`` or ``"auto"`` (see the module doc).
    rtol
        Relative true-residual tolerance every written sample is checked against.
    precond
        Preconditioner of ``"gmres"``/``"gcrodr"``: ``"none"``, ``"ilu"``, ``"amg"`` or
        ``"auto"`` (AMG for SPD problems, ILU otherwise). It is built for the first system
        of a shard and reused while the iteration count stays within 1.5x of that solve.
    krylov_m, recycle_k
        Search space per cycle ``m`` and recycled vectors ``k`` of GMRES(m) / GCRO-DR(m, k).
    save_ritz
        ``j > 0`` (at most ``recycle_k``): generation solves with GCRO-DR (``solver`` must be
        ``"gcrodr"`` or ``"auto"``) and stores, per sample, the first ``j`` vectors of the
        recycled space right after that sample's solve (:func:`ritz_basis`: orthonormal
        harmonic Ritz vectors of the right-preconditioned operator ``A M``, smallest
        harmonic Ritz values first) on the node grid with a zero boundary, as ``ritz``
        (``ritz_real``/``ritz_imag`` for complex problems) with dims ``("mode", *grid)``.
        The other variables are those of ``solver="gcrodr"`` bit for bit.
    """

    spd: ClassVar[bool] = True
    fixed_operator: ClassVar[bool] = False
    """True when every sample has the same matrix (only ``b`` changes): ``auto`` factorizes
    once, and GCRO-DR's recycled ``C = A U`` stays valid (the fingerprint is by content)."""
    plan: Any = None
    """The job's :class:`pdeml.solvers.planner.Plan` for ``solver="auto"`` (set by the writer
    before a large job; ``None``: the static table)."""
    surrogate: Any = None
    """A trained operator used inside the solves (:meth:`use_surrogate`; ``None``: none)."""
    surrogate_options: dict[str, Any] | None = None
    """How :attr:`surrogate` is used (set by :meth:`use_surrogate`)."""
    precond_reuse: bool = True
    """Keep a preconditioner (AMG hierarchy, ILU) across neighbours of the sorted sequence,
    rebuilt when the iteration count grows 1.5x (``False``: build one per system)."""
    save_ritz: int = 0
    """Recycled vectors stored per sample (see the class doc; 0: none)."""
    complex_valued: ClassVar[bool] = False
    """The unknowns are complex (stored as ``*_real``/``*_imag`` pairs)."""

    def _setup_solver(self, solver: str = "auto", rtol: float = 1e-8, precond: str = "auto",
                      krylov_m: int = 40, recycle_k: int = 20, save_ritz: int = 0) -> None:
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver '{solver}'; use one of {', '.join(SOLVERS)}")
        if precond not in PRECONDS:
            raise ValueError(f"unknown precond '{precond}'; use one of {', '.join(PRECONDS)}")
        if not 0.0 < rtol < 1.0:
            raise ValueError(f"rtol must lie in (0, 1), got {rtol}")
        if not 1 <= int(recycle_k) < int(krylov_m):
            raise ValueError(f"need 1 <= recycle_k < krylov_m, got {recycle_k}, {krylov_m}")
        self.solver, self.rtol, self.precond = solver, float(rtol), precond
        self.krylov_m, self.recycle_k = int(krylov_m), int(recycle_k)
        if int(save_ritz) != save_ritz or not 0 <= save_ritz <= self.recycle_k:
            raise ValueError(f"save_ritz must be an integer in [0, recycle_k={self.recycle_k}], "
                             f"got {save_ritz}")
        if save_ritz and getattr(self, "stride", 1) != 1:
            raise ValueError("save_ritz needs the stored grid to be the solver grid "
                             "(solver_resolution = resolution)")
        self.save_ritz = int(save_ritz)

    @property
    def h(self) -> float:
        """Grid spacing of the node grid (boundary nodes included, as in the FNO data)."""
        return 1.0 / (self.resolution - 1)

    def coords(self) -> dict[str, np.ndarray]:
        x = grid_points(self.resolution, "bounded")
        return {"y": x.copy(), "x": x, **self.ritz_coords()}

    def ritz_coords(self) -> dict[str, np.ndarray]:
        """The ``mode`` coordinate of the stored Ritz vectors (none without ``save_ritz``)."""
        return {"mode": np.arange(self.save_ritz)} if self.save_ritz else {}

    def ritz_variables(self) -> dict[str, Variable]:
        """``ritz`` (or ``ritz_real``/``ritz_imag``) with dims ``("mode", *grid)``."""
        if not self.save_ritz:
            return {}
        dims = ("mode", *self.field_variables()[self.output_vars[0]].dims)
        what = ("harmonic Ritz vectors of the right-preconditioned operator (GCRO-DR's "
                "recycled space), orthonormal, smallest harmonic Ritz values first")
        if self.complex_valued:
            return {"ritz_real": Variable(dims, "1", f"real part of the {what}"),
                    "ritz_imag": Variable(dims, "1", f"imaginary part of the {what}")}
        return {"ritz": Variable(dims, "1", what)}

    def ritz_fields(self, basis: np.ndarray | None, n: int) -> dict[str, np.ndarray]:
        """The ``(n, j)`` basis of :func:`ritz_basis` as ``(j, *grid)`` fields, zero boundary."""
        j = self.save_ritz
        basis = np.zeros((n, j)) if basis is None else basis
        d = len(self.field_variables()[self.output_vars[0]].dims)
        s = self.resolution
        grid = np.zeros((j, *(s,) * d), dtype=basis.dtype)
        grid[(slice(None), *(slice(1, -1),) * d)] = basis.T.reshape(j, *(s - 2,) * d)
        if self.complex_valued:
            return {"ritz_real": grid.real.copy(), "ritz_imag": grid.imag.copy()}
        return {"ritz": grid.real.copy()}

    def boundary_conditions(self) -> dict[str, dict[str, Any]]:
        # u = 0 on the walls; SteadyHeat overrides this with its non-zero walls
        return box_boundaries("dirichlet", self.output_vars, 0.0)

    # -- what a subclass provides -------------------------------------------------------------
    def field_variables(self) -> dict[str, Variable]:
        """Grid variables (inputs and outputs), in writing order."""
        raise NotImplementedError

    def draw_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw the random input fields of one sample."""
        raise NotImplementedError

    def draw_inputs_with(self, rng: np.random.Generator,
                         params: dict[str, float] | None) -> dict[str, np.ndarray]:
        """:meth:`draw_inputs`, with the per-sample parameters given instead of drawn.

        A problem with a :meth:`parameter_space` overrides this: it draws them first
        (:meth:`draw_parameters`) and returns them beside its fields as 0-d arrays
        (:meth:`parameter_variables`). This default refuses ``params``.
        """
        if params is not None:
            self.checked_params(params)  # raises: no per-sample parameters
            raise NotImplementedError(f"{self.name}: parameter_space without draw_inputs_with")
        return self.draw_inputs(rng)

    def stored_inputs(self, rng: np.random.Generator,
                      params: dict[str, float] | None) -> dict[str, np.ndarray]:
        """:meth:`draw_inputs_with` on the stored grid (every ``stride``-th node of the
        solver grid, as :meth:`outputs` stores them)."""
        inputs = self.draw_inputs_with(rng, params)
        k = getattr(self, "stride", 1)
        if k == 1:
            return inputs
        return {v: a[::k, ::k] if v in self.input_vars else a for v, a in inputs.items()}

    def parameter_variables(self) -> dict[str, Variable]:
        """The per-sample parameters stored as 0-d variables (none by default)."""
        return {}

    def system(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """Assemble ``A u = b`` for one sample's inputs."""
        raise NotImplementedError

    def outputs(self, x: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Grid output variables from the solution vector."""
        raise NotImplementedError

    def sort_features(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The parameter field whose distances order the sequence (the first input)."""
        return np.asarray(inputs[self.input_vars[0]], dtype=float)

    # -- shared machinery ----------------------------------------------------------------------
    def variables(self) -> dict[str, Variable]:
        return {**self.field_variables(), **self.ritz_variables(), **self.parameter_variables(),
                **STAT_VARIABLES}

    def solver_attrs(self) -> dict[str, Any]:
        """Solver settings for the file's provenance."""
        attrs = {"solver": self.solver, "rtol": self.rtol, "precond": self.precond,
                 "krylov_m": self.krylov_m, "recycle_k": self.recycle_k}
        if self.surrogate is not None:  # the trained run inside the solves, and how
            opts = dict(self.surrogate_options or {})
            attrs |= {"surrogate": getattr(self, "surrogate_source", "") or "in-memory",
                      **{f"surrogate_{k}": v for k, v in opts.items()}}
        return attrs

    def method_for(self, n_unknowns: int) -> str:
        """The concrete method for systems of this size (resolves ``"auto"``: the job's
        :attr:`plan` where one was made, else :meth:`static_method`)."""
        if self.solver != "auto":
            return self.solver
        if self.plan is not None:
            return self.plan.method
        return self.static_method(n_unknowns)

    def static_method(self, n_unknowns: int) -> str:
        """``auto``'s choice without a plan: the measured table of :func:`auto_method`."""
        return auto_method(n_unknowns, self.spd, self.fixed_operator)

    def make_plan(self, rngs: Sequence[np.random.Generator]) -> None:
        """Plan ``auto`` on the systems ``rngs`` draw (:mod:`pdeml.solvers.planner`)."""
        from pdeml.solvers.planner import plan

        # save_ritz fixes GCRO-DR; a surrogate inside fixes the method around it
        if self.solver == "auto" and not self.save_ritz and self.surrogate is None:
            self.plan = plan(self, list(rngs))

    def use_surrogate(self, surrogate: Any, use: str = "guess", space_mode: str = "augment",
                      every: int = 1, smooth: int = 0, source: str = "") -> None:
        """Solve with a trained operator inside the solver (:mod:`pdeml.solvers.hybrid`).

        ``surrogate`` is a :class:`~pdeml.solvers.hybrid.FieldSurrogate` (named input fields
        to named output fields). ``use``: ``"guess"`` (its prediction of the solution starts
        the iteration), ``"space"`` (its predicted Ritz vectors seed GCRO-DR, combined with the
        recycled space by ``space_mode``) or ``"correct"`` (a neural coarse correction inside
        flexible GCRO-DR, every ``every``-th preconditioner application). ``None`` drops it.
        The stopping test stays on the true residual. Not with a plan: the method is the
        configured one (``"auto"`` resolves by the static table).
        """
        from pdeml.solvers.hybrid import SPACE_MODES, USES

        if surrogate is None:
            self.surrogate, self.surrogate_options = None, None
            return
        if use not in USES:
            raise ValueError(f"unknown surrogate use '{use}'; use one of {', '.join(USES)}")
        if space_mode not in SPACE_MODES:
            raise ValueError(f"unknown space_mode '{space_mode}'; use one of "
                             f"{', '.join(SPACE_MODES)}")
        if int(every) != every or every < 1 or int(smooth) != smooth or smooth < 0:
            raise ValueError(f"every must be >= 1 and smooth >= 0, got {every}, {smooth}")
        if getattr(self, "stride", 1) != 1:
            raise ValueError("a surrogate inside the solver needs the stored grid to be the "
                             "solver grid (solver_resolution = resolution)")
        self.surrogate = surrogate
        self.surrogate_options = {"use": use, "space_mode": space_mode, "every": int(every),
                                  "smooth": int(smooth)}
        self.surrogate_source = str(source)
        self.surrogate_hooks()  # checks that the surrogate's fields fit the use

    def surrogate_hooks(self) -> Any:
        """The :class:`~pdeml.solvers.hybrid.Hooks` of :attr:`surrogate` for this problem
        (:func:`pdeml.solvers.hybrid.problem_hooks`)."""
        from pdeml.solvers.hybrid import problem_hooks

        return problem_hooks(self, self.surrogate,
                             (self.surrogate_options or {}).get("use", "guess"))

    def sample(self, rng: np.random.Generator,
               params: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """One sample (:meth:`sample_batch` of one); ``params`` as in
        :meth:`~pdeml.solvers.problems.base.Problem.sample_with`."""
        return self.sample_batch([rng], None if params is None else [params])[0]

    def sample_batch(self, rngs: Sequence[np.random.Generator],
                     params: Sequence[dict[str, float] | None] | None = None,
                     ) -> list[dict[str, np.ndarray]]:
        """Draw one sample per generator, solve them as one sorted sequence, verify each.

        The result depends on the generators only (a fresh solver per call), so a shard is a
        deterministic unit and a resumed or distributed job reproduces a serial one bit for bit.

        Parameters
        ----------
        rngs
            One generator per sample.
        params
            One entry per generator: the per-sample parameters of that sample
            (:meth:`draw_inputs_with`), or ``None`` to draw them; ``None``: all drawn.
        """
        params = [None] * len(rngs) if params is None else list(params)
        if len(params) != len(rngs):
            raise ValueError(f"{len(params)} parameter sets for {len(rngs)} samples")
        inputs = [self.draw_inputs_with(r, p) for r, p in zip(rngs, params, strict=True)]
        systems = [self.system(inp) for inp in inputs]
        ritz = self._ritz_recorder([A.shape[0] for A, _ in systems])
        xs, stats = self.solve_systems([A for A, _ in systems], [b for _, b in systems],
                                       [self.sort_features(inp) for inp in inputs],
                                       inputs=inputs, **({} if ritz is None else {
                                           "method": "gcrodr", "after_system": ritz}))
        samples = [{**inp, **self.outputs(x, inp), **{k: np.asarray(v) for k, v in st.items()}}
                   for inp, x, st in zip(inputs, xs, stats, strict=True)]
        if ritz is not None:
            for sample, basis, n in zip(samples, ritz.bases, ritz.sizes, strict=True):
                sample.update(self.ritz_fields(basis, n))
        return samples

    def _ritz_recorder(self, sizes: Sequence[int]) -> _RitzRecorder | None:
        """The hook that collects :func:`ritz_basis` per system (``None``: no ``save_ritz``)."""
        if not self.save_ritz:
            return None
        if self.solver not in ("auto", "gcrodr"):
            raise ValueError(f"save_ritz stores GCRO-DR's recycled space: use solver='gcrodr' "
                             f"(or 'auto'), not '{self.solver}'")
        if self.surrogate is not None:
            raise ValueError("save_ritz is not available with a surrogate inside the solver")
        return _RitzRecorder(self.save_ritz, sizes)

    def solve_systems(self, As: Sequence[Any], bs: Sequence[np.ndarray],
                      features: Sequence[np.ndarray], method: str | None = None,
                      inputs: Sequence[dict[str, np.ndarray]] | None = None,
                      after_system: Callable[[int, Any], None] | None = None,
                      ) -> tuple[list[np.ndarray], list[dict]]:
        """Solve a sequence with the configured method (or ``method``); stats per system,
        input order. With a :attr:`surrogate` (and the ``inputs`` it reads) the solves run
        through :func:`pdeml.solvers.hybrid.solve_with_surrogate`."""
        method = method or self.method_for(As[0].shape[0])
        order = (sort_systems(np.stack(features), "fft") if len(As) > 2
                 else np.arange(len(As)))
        if method == "amg-fresh":  # the planner's AMG variant without hierarchy reuse
            method, reuse = "amg", False
        else:
            reuse = self.precond_reuse
        if self.surrogate is not None and inputs is not None:
            return self._solve_hybrid(As, bs, inputs, order, method)
        direct = _Direct()
        amg_seq = AmgSequence(self.rtol, self.spd, direct, reuse=reuse)
        if method in ("gmres", "gcrodr"):
            precond = self.precond if self.precond != "auto" else ("amg" if self.spd else "ilu")
            xs, stats = _solve_krylov(As, bs, order, method, self.rtol, precond, self.krylov_m,
                                      self.recycle_k, reuse,
                                      after_system=after_system)
        else:
            xs, stats = [None] * len(As), [None] * len(As)
            for i in order:
                if method == "amg":
                    xs[i], stats[i] = amg_seq(As[i], bs[i])
                else:
                    xs[i], stats[i] = direct(As[i], bs[i], self.rtol)
        self._check(stats, method)
        return xs, stats

    def _solve_hybrid(self, As: Sequence[Any], bs: Sequence[np.ndarray],
                      inputs: Sequence[dict[str, np.ndarray]], order: np.ndarray, method: str
                      ) -> tuple[list[np.ndarray], list[dict]]:
        """The sequence with the surrogate inside; a system that misses rtol is re-solved by
        sparse LU (recorded as a fallback), as on the classical path."""
        from pdeml.solvers.hybrid import solve_with_surrogate

        opt = dict(self.surrogate_options or {"use": "guess"})
        use = opt.pop("use")
        if method == "direct":
            method = "amg" if self.spd else "gcrodr"
        precond = self.precond if self.precond != "auto" else ("amg" if self.spd else "ilu")
        if method == "amg":
            precond = "amg"
        xs, raw = solve_with_surrogate(
            As, bs, inputs, order, self.surrogate_hooks(), use, method=method, rtol=self.rtol,
            precond=seeded_amg if precond == "amg" else precond, m=self.krylov_m,
            k=self.recycle_k, spd=self.spd, **opt)
        code = "gcrodr" if use != "guess" else method
        direct, stats = _Direct(), []
        for i, st in enumerate(raw):
            if st["converged"]:
                stats.append(_stats(code, False, st["iterations"], st["matvecs"],
                                    st["residual"]))
                continue
            xs[i], fix = direct(As[i], bs[i], self.rtol)
            fix.update(solver_fallback=1, solver_iterations=st["iterations"])
            stats.append(fix)
        self._check(stats, method)
        return xs, stats

    def _check(self, stats: list[dict], method: str) -> None:
        """Report retries; refuse to return a system that misses its criterion."""
        for i, st in enumerate(stats):
            if not st["solver_residual"] <= self.rtol:
                raise RuntimeError(f"{self.name}: system {i} misses rtol={self.rtol:g} even after "
                                   f"retries (residual {st['solver_residual']:.3e}); not written")
            if st["solver_fallback"]:
                warnings.warn(f"{self.name}: system {i} missed rtol with {method} and was retried "
                              f"({st['solver_residual']:.1e} after the retry)", RuntimeWarning,
                              stacklevel=3)
