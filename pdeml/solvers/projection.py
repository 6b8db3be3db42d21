"""Incompressible Navier-Stokes in primitive variables: a staggered (MAC) grid, projection method.

Unknowns live on a marker-and-cell grid of ``ny x nx`` cells of size ``dx x dy``: ``u`` on the
vertical faces ``(ny, nx + 1)``, ``v`` on the horizontal faces ``(ny + 1, nx)``, the pressure at
cell centres ``(ny, nx)``. Cells marked solid (a staircase obstacle) hold no fluid. Each step:

1. explicit momentum predictor, Adams-Bashforth 2 (Euler for the first step): central
   differences for diffusion; for advection central differences blended with donor cell by a
   factor ``upwind`` in [0, 1] (0: second-order central; needed only when the cell Reynolds
   number exceeds 2);
2. pressure Poisson equation ``D G p = D F / dt`` on the fluid cells, solved by a
   :class:`PressurePoisson` (factorization reuse by default: the matrix is fixed per geometry);
3. projection ``u = F - dt G p``, after which the discrete divergence ``D u`` is the Poisson
   solve's residual: round-off with the direct solver.

Boundaries: the four sides take ``"wall"`` (no-slip; ``top``/``bottom`` walls may slide at a
tangential velocity, as the cavity lid), ``"inflow"`` (left/right: a prescribed normal velocity
profile) or ``"outflow"`` (left/right: zero normal gradient of velocity, pressure 0). No-slip on
obstacles and walls is imposed with reflected ghost values (the wall sits on the cell edge).
The pressure is kinematic (divided by density); the density only scales what is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu, spsolve

PRESSURE_METHODS = ("lu", "spsolve", "gcrodr", "gmres", "amg")
SIDES = ("left", "right", "bottom", "top")


@dataclass(frozen=True)
class Boundary:
    """One side of the box.

    ``kind`` is ``"wall"``, ``"inflow"`` or ``"outflow"``. ``velocity`` is the tangential wall
    velocity (a number) for a wall, or the inflow's normal velocity: a number or a function of
    the coordinate along the side (cell-centre positions) returning an array.
    """

    kind: str = "wall"
    velocity: float | Callable[[np.ndarray], np.ndarray] = 0.0


class PressurePoisson:
    """Solves the pressure equation ``A p = b`` many times with one matrix.

    Parameters
    ----------
    A
        The (scaled, symmetric positive definite) pressure matrix.
    method
        ``"lu"``: sparse LU once, two triangular solves per call (factorization reuse);
        ``"spsolve"``: a fresh sparse direct solve each call (no reuse; the baseline);
        ``"gcrodr"``: pdeml's recycling GCRO-DR with an ILU preconditioner built once, the
        previous solution as initial guess and the recycled subspace kept across calls;
        ``"gmres"``: the same without recycling; ``"amg"``: CG preconditioned by one
        smoothed-aggregation V-cycle (pyamg), the hierarchy built once.
    rtol
        Relative tolerance of the Krylov methods (``norm(b - A x) <= rtol * norm(b)``).
    rebuild_factor
        After :meth:`update_matrix` the preconditioner (ILU or AMG hierarchy) of an older
        matrix is kept until a solve needs more than ``rebuild_factor`` times the
        iterations of the first solve after the last build; then it is rebuilt.
        ``rebuild_factor=1`` with ``reuse=False`` rebuilds on every update.
    reuse
        Keep the preconditioner across :meth:`update_matrix` (the default); ``False``
        rebuilds it for every new matrix.
    """

    def __init__(self, A: sp.spmatrix, method: str = "lu", rtol: float = 1e-10,
                 m: int = 30, k: int = 10, rebuild_factor: float = 1.5,
                 reuse: bool = True) -> None:
        if method not in PRESSURE_METHODS:
            raise ValueError(f"unknown pressure solver '{method}'; use one of "
                             f"{', '.join(PRESSURE_METHODS)}")
        self.A, self.method, self.rtol = A.tocsc(), method, rtol
        self.seconds, self.n_solves, self.n_iter = 0.0, 0, 0
        self.rebuild_factor, self.reuse = float(rebuild_factor), bool(reuse)
        self.n_builds, self._baseline = 0, None
        start = time.perf_counter()
        self._lu = splu(self.A) if method == "lu" else None
        self._krylov: Any = None
        self._M: Any = None
        if method in ("gcrodr", "gmres"):
            from pdeml.solvers.krylov import GCRODR, GMRES

            self._krylov = GCRODR(m=m, k=k) if method == "gcrodr" else GMRES(m=m)
        self._build_preconditioner()
        self.setup_seconds = time.perf_counter() - start
        self._x: np.ndarray | None = None

    def _build_preconditioner(self) -> None:
        if self.method in ("gcrodr", "gmres"):
            from pdeml.solvers.krylov import ilu

            self._M = ilu(self.A, drop_tol=1e-3, drop_rule="basic")
        elif self.method == "amg":
            from pdeml.solvers.krylov import amg

            self._M = amg(self.A.tocsr())
        else:
            return
        self.n_builds += 1
        self._baseline = None

    def update_matrix(self, A: sp.spmatrix) -> None:
        """Replace the matrix (e.g. a density that moved); keep what can be kept.

        ``"lu"`` refactorizes; the Krylov methods and ``"amg"`` keep their preconditioner
        (rebuilt per the ``reuse``/``rebuild_factor`` rule) and the previous solution as the
        next initial guess; GCRO-DR keeps its recycled subspace (``C = A U`` is refreshed).
        """
        start = time.perf_counter()
        self.A = A.tocsc()
        if self.method == "lu":
            self._lu = splu(self.A)
        elif not self.reuse:
            self._build_preconditioner()
        self.setup_seconds += time.perf_counter() - start

    def _solve_cg(self, b: np.ndarray) -> tuple[np.ndarray, int, int]:
        from scipy.sparse.linalg import cg

        count = [0]

        def tick(_: Any) -> None:
            count[0] += 1

        x, info = cg(self.A, b, x0=self._x, rtol=self.rtol, atol=0.0,
                     maxiter=20 * self.A.shape[0], M=self._M, callback=tick)
        return x, info, count[0]

    def solve(self, b: np.ndarray) -> np.ndarray:
        """Solve ``A x = b``; Krylov methods start from the previous solution."""
        start = time.perf_counter()
        if self._lu is not None:
            x = self._lu.solve(b)
        elif self.method == "spsolve":
            x = spsolve(self.A, b)
        else:
            if self.method == "amg":
                x, info, iters = self._solve_cg(b)
                resid = float(np.linalg.norm(b - self.A @ x))
            else:
                res = self._krylov.solve(self.A, b, x0=self._x, rtol=self.rtol, M=self._M,
                                         maxiter=20 * self.A.shape[0])
                x, info, iters, resid = res.x, res.info, res.n_iter, res.residual_norm
            if info != 0:
                raise RuntimeError(f"pressure solve ({self.method}) did not converge: "
                                   f"info {info}, residual {resid:.2e}")
            self.n_iter += iters
            self._track_growth(iters)
        self._x = x
        self.seconds += time.perf_counter() - start
        self.n_solves += 1
        return x


    def _track_growth(self, iters: int) -> None:
        """Rebuild a stale preconditioner for the next solve when iterations grew."""
        if self._baseline is None:
            self._baseline = iters
        elif iters > self.rebuild_factor * max(self._baseline, 1):
            self._build_preconditioner()


class ProjectionSolver:
    """Time stepping of incompressible flow in a box with optional solid cells.

    Parameters
    ----------
    nx, ny
        Cells along x and y.
    lx, ly
        Box size; cells are ``lx / nx`` by ``ly / ny``.
    viscosity
        Kinematic viscosity ``nu = mu / rho``.
    boundaries
        ``{"left": Boundary, "right": ..., "bottom": ..., "top": ...}``; missing sides are walls.
    solid
        Boolean ``(ny, nx)`` mask of obstacle cells (none by default).
    dt
        Time step; check it with :meth:`stable_dt`.
    upwind
        Donor-cell share of the advection scheme, in [0, 1].
    pressure_solver, pressure_rtol
        See :class:`PressurePoisson`.
    """

    def __init__(
        self, nx: int, ny: int, lx: float, ly: float, viscosity: float,
        boundaries: dict[str, Boundary] | None = None, solid: np.ndarray | None = None,
        dt: float = 1e-3, upwind: float = 0.0, pressure_solver: str = "lu",
        pressure_rtol: float = 1e-10,
    ) -> None:
        self.nx, self.ny, self.lx, self.ly = int(nx), int(ny), float(lx), float(ly)
        self.dx, self.dy = self.lx / self.nx, self.ly / self.ny
        self.nu, self.dt, self.upwind = float(viscosity), float(dt), float(upwind)
        self.bc = {side: Boundary() for side in SIDES} | dict(boundaries or {})
        _check_boundaries(self.bc)
        self.solid = np.zeros((ny, nx), bool) if solid is None else np.asarray(solid, bool)
        if self.solid.shape != (ny, nx):
            raise ValueError(f"solid mask has shape {self.solid.shape}, expected {(ny, nx)}")
        self.fluid = ~self.solid
        self.x_c = (np.arange(nx) + 0.5) * self.dx
        self.y_c = (np.arange(ny) + 0.5) * self.dy
        self._classify_faces()
        self._build_operators()
        A = -(self.dx * self.dy) * (self.D @ self.G)  # symmetric positive (semi)definite
        if not self.has_dirichlet:
            A = A + sp.csr_matrix(([1.0], ([0], [0])), shape=A.shape)  # pin p in one cell
        self.poisson = PressurePoisson(A, pressure_solver, pressure_rtol)
        self.u = np.zeros((ny, nx + 1))
        self.v = np.zeros((ny + 1, nx))
        self.p = np.zeros((ny, nx))
        self._apply_fixed()
        self.time, self.n_steps = 0.0, 0
        self._h_prev: tuple[np.ndarray, np.ndarray] | None = None

    # ----------------------------------------------------------------- geometry
    def _classify_faces(self) -> None:
        """Free (projected), fixed and ghost (inside a solid) faces of u and v."""
        ny, nx = self.ny, self.nx
        pad = np.zeros((ny + 2, nx + 2), bool)
        pad[1:-1, 1:-1] = self.fluid
        # u-face (j, i) separates cells (j, i-1) and (j, i); outside the box counts as "no cell".
        left, right = pad[1:-1, :-1], pad[1:-1, 1:]
        self.u_free = left & right
        below, above = pad[:-1, 1:-1], pad[1:, 1:-1]
        self.v_free = below & above
        for side, col in (("left", 0), ("right", nx)):
            if self.bc[side].kind == "outflow":
                self.u_free[:, col] = self.fluid[:, 0 if col == 0 else -1]
        self.u_ghost = ~(left | right)
        self.v_ghost = ~(below | above)
        self.u_ghost[:, [0, -1]] = False
        self.v_ghost[[0, -1], :] = False
        self.has_dirichlet = bool(self.u_free[:, 0].any() or self.u_free[:, -1].any())

    def _build_operators(self) -> None:
        """Divergence ``D`` (fluid cells x all faces), gradient ``G`` (free faces x fluid cells).

        ``G`` has rows for every face, zero for the fixed ones, so ``D G`` is the pressure
        Laplacian with homogeneous Neumann conditions on walls, obstacles and inflow, and
        ``p = 0`` on an outflow edge (half a cell from the last pressure node).
        """
        ny, nx, dx, dy = self.ny, self.nx, self.dx, self.dy
        cell = np.full((ny, nx), -1)
        cell[self.fluid] = np.arange(int(self.fluid.sum()))
        n_u = ny * (nx + 1)
        rows, cols, vals = [], [], []
        for j, i in zip(*np.nonzero(self.u_free), strict=True):
            lo = cell[j, i - 1] if i > 0 else -1
            hi = cell[j, i] if i < nx else -1
            h = dx if lo >= 0 and hi >= 0 else dx / 2
            for c, sign in ((hi, 1.0), (lo, -1.0)):
                if c >= 0:
                    rows.append(j * (nx + 1) + i), cols.append(c), vals.append(sign / h)
        for j, i in zip(*np.nonzero(self.v_free), strict=True):
            face = n_u + j * nx + i
            rows += [face, face]
            cols += [cell[j, i], cell[j - 1, i]]
            vals += [1.0 / dy, -1.0 / dy]
        n_faces, n_cells = n_u + (ny + 1) * nx, int(self.fluid.sum())
        self.G = sp.csr_matrix((vals, (rows, cols)), shape=(n_faces, n_cells))
        self.D = self._full_divergence(cell)

    def _full_divergence(self, cell: np.ndarray) -> sp.csr_matrix:
        """Divergence over every face (fixed ones included), rows for fluid cells."""
        ny, nx = self.ny, self.nx
        jj, ii = np.nonzero(self.fluid)
        c = cell[jj, ii]
        n_u = ny * (nx + 1)
        rows = np.concatenate([c, c, c, c])
        cols = np.concatenate([jj * (nx + 1) + ii + 1, jj * (nx + 1) + ii,
                               n_u + (jj + 1) * nx + ii, n_u + jj * nx + ii])
        vals = np.concatenate([np.full(c.size, 1 / self.dx), np.full(c.size, -1 / self.dx),
                               np.full(c.size, 1 / self.dy), np.full(c.size, -1 / self.dy)])
        return sp.csr_matrix((vals, (rows, cols)), shape=(c.size, n_u + (ny + 1) * nx))

    # ------------------------------------------------------------ boundary values
    def _inflow(self, side: str) -> np.ndarray:
        vel = self.bc[side].velocity
        values = vel(self.y_c) if callable(vel) else np.full(self.ny, float(vel))
        return np.asarray(values, float) * self.fluid[:, 0 if side == "left" else -1]

    def _apply_fixed(self) -> None:
        """Set the prescribed normal velocities (walls, obstacles, inflow)."""
        self.u[~self.u_free] = 0.0
        self.v[~self.v_free] = 0.0
        for side, col in (("left", 0), ("right", -1)):
            if self.bc[side].kind == "inflow":
                self.u[:, col] = self._inflow(side)

    def _ghosted(self) -> tuple[np.ndarray, np.ndarray]:
        """u and v padded with ghost values that impose the boundary conditions."""
        u, v = self.u.copy(), self.v.copy()
        _reflect(u, self.u_ghost, axis=0)
        _reflect(v, self.v_ghost, axis=1)
        ue = np.empty((self.ny + 2, self.nx + 3))
        ue[1:-1, 1:-1] = u
        ue[1:-1, 0], ue[1:-1, -1] = u[:, 0], u[:, -1]  # zero gradient (used by outflow only)
        ue[0] = 2 * self._tangential("bottom") - ue[1]
        ue[-1] = 2 * self._tangential("top") - ue[-2]
        ve = np.empty((self.ny + 3, self.nx + 2))
        ve[1:-1, 1:-1] = v
        for side, col, inner in (("left", 0, 1), ("right", -1, -2)):
            sign = 1.0 if self.bc[side].kind == "outflow" else -1.0
            ve[1:-1, col] = sign * ve[1:-1, inner]
        ve[0], ve[-1] = ve[1], ve[-2]
        return ue, ve

    def _tangential(self, side: str) -> float:
        vel = self.bc[side].velocity
        return 0.0 if callable(vel) else float(vel)

    # ------------------------------------------------------------------ stepping
    def _rhs(self) -> tuple[np.ndarray, np.ndarray]:
        """Explicit momentum terms ``nu lap u - (u . grad) u`` on every face."""
        ue, ve = self._ghosted()
        dx, dy, g = self.dx, self.dy, self.upwind
        uc, uE, uW, uN, uS = _stencil(ue)
        vt = 0.5 * (ve[2:-1, :-1] + ve[2:-1, 1:])
        vb = 0.5 * (ve[1:-2, :-1] + ve[1:-2, 1:])
        hu = (self.nu * ((uE - 2 * uc + uW) / dx**2 + (uN - 2 * uc + uS) / dy**2)
              - _flux_diff(uc + uE, uW + uc, uc - uE, uW - uc, 0.5 * (uc + uE),
                           0.5 * (uW + uc), dx, g)
              - _flux_diff(vt, vb, uc - uN, uS - uc, uc + uN, uS + uc, dy, g, half=True))
        vc, vE, vW, vN, vS = _stencil(ve)
        ur = 0.5 * (ue[:-1, 2:-1] + ue[1:, 2:-1])
        ul = 0.5 * (ue[:-1, 1:-2] + ue[1:, 1:-2])
        hv = (self.nu * ((vE - 2 * vc + vW) / dx**2 + (vN - 2 * vc + vS) / dy**2)
              - _flux_diff(ur, ul, vc - vE, vW - vc, vc + vE, vW + vc, dx, g, half=True)
              - _flux_diff(vc + vN, vS + vc, vc - vN, vS - vc, 0.5 * (vc + vN),
                           0.5 * (vS + vc), dy, g))
        return hu, hv

    def step(self) -> None:
        """Advance one time step (predictor, pressure solve, projection)."""
        hu, hv = self._rhs()
        if self._h_prev is None:
            fu, fv = self.u + self.dt * hu, self.v + self.dt * hv
        else:
            fu = self.u + self.dt * (1.5 * hu - 0.5 * self._h_prev[0])
            fv = self.v + self.dt * (1.5 * hv - 0.5 * self._h_prev[1])
        self._h_prev = (hu, hv)
        fu[~self.u_free], fv[~self.v_free] = self.u[~self.u_free], self.v[~self.v_free]
        faces = np.concatenate([fu.ravel(), fv.ravel()])
        rhs = -(self.dx * self.dy) * (self.D @ faces) / self.dt
        p = self.poisson.solve(rhs)
        faces -= self.dt * (self.G @ p)
        n_u = self.u.size
        self.u = faces[:n_u].reshape(self.u.shape)
        self.v = faces[n_u:].reshape(self.v.shape)
        self.p[:] = 0.0
        self.p[self.fluid] = p if self.has_dirichlet else p - p.mean()
        self.time += self.dt
        self.n_steps += 1
        if not (np.isfinite(self.u).all() and np.isfinite(self.v).all()):
            raise FloatingPointError(
                f"flow solver blew up at t={self.time:.4g} (step {self.n_steps}); lower dt "
                f"(now {self.dt:.3g}, stable_dt {self.stable_dt():.3g}) or raise upwind")

    def advance(self, duration: float) -> None:
        """Step until ``duration`` more time has passed (an integer number of steps)."""
        n = int(round(duration / self.dt))
        if abs(n * self.dt - duration) > 1e-9 * max(duration, 1.0):
            raise ValueError(f"duration {duration} is not a multiple of dt {self.dt}")
        for _ in range(n):
            self.step()

    def run_to_steady(self, tol: float = 1e-6, max_time: float = 100.0,
                      check_every: int = 50) -> float:
        """Step until ``max |du/dt| < tol`` (checked every ``check_every`` steps); return t."""
        while self.time < max_time:
            u0, v0 = self.u.copy(), self.v.copy()
            for _ in range(check_every):
                self.step()
            change = max(np.abs(self.u - u0).max(), np.abs(self.v - v0).max())
            if change / (check_every * self.dt) < tol:
                return self.time
        raise RuntimeError(f"no steady state by t={max_time} (tol {tol})")

    # --------------------------------------------------------------- diagnostics
    def stable_dt(self, velocity_scale: float | None = None, cfl: float = 0.3) -> float:
        """A stable step: advective CFL and the AB2 diffusion limit, with safety margins."""
        scale = velocity_scale or max(np.abs(self.u).max(), np.abs(self.v).max(), 1e-12)
        h = min(self.dx, self.dy)
        diffusion = 0.8 / (4 * self.nu * (1 / self.dx**2 + 1 / self.dy**2))
        return min(cfl * h / scale, diffusion)

    def divergence(self) -> np.ndarray:
        """Discrete divergence of the current velocity in each fluid cell."""
        return self.D @ np.concatenate([self.u.ravel(), self.v.ravel()])

    def cell_velocity(self) -> tuple[np.ndarray, np.ndarray]:
        """u and v averaged to cell centres (zero in solid cells)."""
        uc = 0.5 * (self.u[:, :-1] + self.u[:, 1:])
        vc = 0.5 * (self.v[:-1] + self.v[1:])
        return uc * self.fluid, vc * self.fluid


def _stencil(a: np.ndarray) -> tuple[np.ndarray, ...]:
    """Centre, east, west, north and south neighbours of the interior of a ghosted array."""
    return a[1:-1, 1:-1], a[1:-1, 2:], a[1:-1, :-2], a[2:, 1:-1], a[:-2, 1:-1]


def _flux_diff(a_plus: np.ndarray, a_minus: np.ndarray, d_plus: np.ndarray,
               d_minus: np.ndarray, q_plus: np.ndarray, q_minus: np.ndarray, h: float,
               gamma: float, half: bool = False) -> np.ndarray:
    """Difference of convective fluxes across a face pair, central blended with donor cell.

    For ``d(q^2)/dx`` pass the sums ``a = u_c + u_E`` (``half=False``: the transporting
    velocity is ``a / 2``); for ``d(uv)/dy`` pass the transporting velocity itself
    (``half=True``) and the sums of the transported values as ``q``.
    """
    if half:
        flux_p = a_plus * 0.5 * q_plus + gamma * np.abs(a_plus) * 0.5 * d_plus
        flux_m = a_minus * 0.5 * q_minus + gamma * np.abs(a_minus) * 0.5 * d_minus
    else:
        flux_p = 0.5 * a_plus * q_plus + gamma * 0.25 * np.abs(a_plus) * d_plus
        flux_m = 0.5 * a_minus * q_minus + gamma * 0.25 * np.abs(a_minus) * d_minus
    return (flux_p - flux_m) / h


def _reflect(w: np.ndarray, ghost: np.ndarray, axis: int) -> None:
    """Ghost faces inside solids take minus their fluid neighbour's value (no-slip at the edge)."""
    if not ghost.any():
        return
    n = w.shape[axis]
    idx = np.nonzero(ghost)
    values = np.zeros(idx[0].size)
    done = np.zeros(idx[0].size, bool)
    for shift in (1, -1):
        nb = list(idx)
        nb[axis] = idx[axis] + shift
        inside = (nb[axis] >= 0) & (nb[axis] < n)
        nb[axis] = np.clip(nb[axis], 0, n - 1)
        ok = inside & ~ghost[tuple(nb)] & ~done
        values[ok] = -w[tuple(nb)][ok]
        done |= ok
    w[idx] = values


def _check_boundaries(bc: dict[str, Boundary]) -> None:
    unknown = set(bc) - set(SIDES)
    if unknown:
        raise ValueError(f"unknown boundary side(s) {sorted(unknown)}; use {', '.join(SIDES)}")
    for side, b in bc.items():
        if b.kind not in ("wall", "inflow", "outflow"):
            raise ValueError(f"unknown boundary kind '{b.kind}' on {side}")
        if side in ("bottom", "top") and b.kind != "wall":
            raise ValueError(f"the {side} side supports walls only, got '{b.kind}'")
        if b.kind == "wall" and callable(b.velocity):
            raise ValueError(f"the {side} wall takes a constant tangential velocity")
