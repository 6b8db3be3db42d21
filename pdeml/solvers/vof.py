"""Two-phase (water/air) incompressible flow: volume of fluid on pdeml's MAC projection solver.

State: the MAC velocity ``u, v`` and pressure ``p`` of :mod:`pdeml.solvers.projection`, plus the
water volume fraction ``alpha`` per cell. Density and viscosity follow ``alpha`` linearly
(``rho = alpha rho_w + (1 - alpha) rho_a``), so ratios of 1000:1 sit next to each other.

One step (``dt`` adaptive, see :meth:`VOFSolver.stable_dt`):

1. momentum predictor: advection as in the single-phase solver (central blended with donor
   cell by ``upwind``), viscous term ``(mu_f / rho_f) lap u`` with the face's own mixture
   viscosity and density, gravity; variable-step Adams-Bashforth 2;
2. pressure: ``div((1 / rho_f) grad p) = div(u*) / dt`` with ``rho_f`` the mean of the two
   cells beside a face (:class:`pdeml.solvers.vof_pressure.VariablePoisson`: fresh LU, AMG
   rebuilt, AMG reused, recycled GCRO-DR); projection ``u = u* - dt grad p / rho_f``;
3. interface transport with the new, discretely divergence-free velocity (below).

Interface transport. Geometric PLIC (piecewise-linear interface, normal from Youngs' 3x3
gradient, line constant from the analytic volume/line-constant relations of Scardovelli &
Zaleski 2000) with the directionally split, *mass-conserving* update of Weymouth & Yue (2010,
J. Comput. Phys. 229, 2853-2865): each 1-D sweep is
``alpha -= (F_{i+1/2} - F_{i-1/2}) - c (s_{i+1/2} - s_{i-1/2})`` with ``F`` the geometric flux
of the donor cell's water through a face, ``s = u dt / h`` the face Courant number and
``c = 1[alpha^n > 1/2]`` frozen over the step, sweep order alternating between steps. Why this
one: summed over the two sweeps the ``c`` terms give ``c dt div(u) = 0``, so the water volume is
conserved to round-off (to the pressure solver's residual) in a closed box, and Weymouth & Yue
prove ``0 <= alpha <= 1`` for face Courant numbers up to 1/2; the reconstruction keeps the
interface one to two cells thick where an algebraic scheme (CICSAM, THINC) smears it or needs
a compression parameter. What remains of over/undershoot (round-off) is clipped and the
clipped volume is counted (:attr:`VOFSolver.clipped`).

Read for this: Basilisk's ``src/vof.h`` (Popinet), a public implementation of the same scheme.
Followed: the step-function ``c`` frozen per step, sweep order alternating with the step's
parity, the face Courant bound 1/2, the flux as the donor's water in the strip ``|u| dt``
beside the face. Departed: Youngs' normals instead of Basilisk's mixed Youngs-centred (MYC)
ones (simpler, first-order normals; straight interfaces away from corners stay exact), and
round-off over/undershoot is clipped (Basilisk keeps it).

Following and departing from the reference setups. CFDBench (Luo et al. 2023) generated its
two-phase cases with ANSYS Fluent's VOF (geometric reconstruction, implicit pressure-based
solver, fixed step 0.1 s for the dam, 0.01 s for the tube; their journal scripts are public,
their meshes are not). Here, by contrast: explicit time stepping under a CFL limit; no surface
tension (the CFDBench scripts set none); the viscous stress uses the Laplacian form (the
``grad mu . (grad u)^T`` term at the interface is dropped); the momentum equation is solved in
velocity (non-conservative) form with arithmetic face densities, which is robust here because
the water is the heavy phase and donor-cell blending damps the air's velocity spikes at the
interface. Gravity enters in reduced form: the solver's pressure is ``p + rho_a g y`` (air at
hydrostatic rest has zero reduced pressure, so an outflow at ``p = 0`` lets air leave without
a hydrostatic jump); :attr:`VOFSolver.pressure` returns the static gauge pressure.
"""

from __future__ import annotations

import numpy as np

from pdeml.solvers.projection import Boundary, ProjectionSolver, _flux_diff, _stencil
from pdeml.solvers.vof_pressure import VOF_PRESSURE_METHODS, VariablePoisson

WATER = (1000.0, 1.0e-3)   # density kg/m^3, dynamic viscosity Pa s (20 C)
AIR = (1.225, 1.79e-5)     # Fluent's default air
# donor-cell share of momentum advection validated against Martin & Moyce (1952)
# (pdeml.solvers.dambreak, tests/solvers/test_vof.py); the tube / dam problems pass it too
VALIDATED_UPWIND = 0.5


# ------------------------------------------------------------------ PLIC geometry
def plic_volume(m1: np.ndarray, m2: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Area fraction of the unit square where ``m1 x + m2 y <= a`` (any signs of m1, m2).

    A zero normal (``m1 = m2 = 0``) is read as ``(0, 1)``: a horizontal line.
    """
    a = a - np.minimum(m1, 0.0) - np.minimum(m2, 0.0)  # reflect onto positive components
    m1, m2 = np.abs(m1), np.abs(m2)
    s = m1 + m2
    flat = s == 0.0
    s = np.where(flat, 1.0, s)
    m1, m2 = np.where(flat, 0.0, m1 / s), np.where(flat, 1.0, m2 / s)
    a = np.clip(a / s, 0.0, 1.0)
    lo, hi = np.minimum(m1, m2), np.maximum(m1, m2)
    prod = np.where(lo > 0.0, 2.0 * m1 * m2, 1.0)
    low = a * a / prod
    mid = (a - 0.5 * lo) / hi
    high = 1.0 - (1.0 - a) ** 2 / prod
    return np.where(a < lo, low, np.where(a <= hi, mid, high))


def plic_constant(m1: np.ndarray, m2: np.ndarray, vol: np.ndarray) -> np.ndarray:
    """The line constant ``a`` with ``plic_volume(m1, m2, a) == vol`` (inverse of the above)."""
    n1, n2 = np.abs(m1), np.abs(m2)
    s = n1 + n2
    flat = s == 0.0
    s = np.where(flat, 1.0, s)
    n1, n2 = np.where(flat, 0.0, n1 / s), np.where(flat, 1.0, n2 / s)
    lo, hi = np.minimum(n1, n2), np.maximum(n1, n2)
    vol = np.clip(vol, 0.0, 1.0)
    v1 = 0.5 * lo / hi
    low = np.sqrt(2.0 * n1 * n2 * vol)
    mid = vol * hi + 0.5 * lo
    high = 1.0 - np.sqrt(2.0 * n1 * n2 * (1.0 - vol))
    a = np.where(vol < v1, low, np.where(vol <= 1.0 - v1, mid, high))
    m1s, m2s = np.where(flat, 0.0, m1), np.where(flat, 1.0, m2)
    return a * s + np.minimum(m1s, 0.0) + np.minimum(m2s, 0.0)


def youngs_normal(alpha: np.ndarray, fluid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interface normal ``-grad alpha`` in cell units (Youngs' weighted 3x3 differences).

    Solid cells take the mean of their fluid neighbours, box edges the nearest value, so that
    walls and obstacles do not look like interfaces.
    """
    filled = alpha.copy()
    if not fluid.all():
        pad_a = np.pad(np.where(fluid, alpha, 0.0), 1)
        pad_f = np.pad(fluid.astype(float), 1)
        total = pad_a[:-2, 1:-1] + pad_a[2:, 1:-1] + pad_a[1:-1, :-2] + pad_a[1:-1, 2:]
        count = pad_f[:-2, 1:-1] + pad_f[2:, 1:-1] + pad_f[1:-1, :-2] + pad_f[1:-1, 2:]
        filled = np.where(fluid, alpha, total / np.maximum(count, 1.0))
    p = np.pad(filled, 1, mode="edge")
    gx = ((p[2:, 2:] + 2 * p[1:-1, 2:] + p[:-2, 2:])
          - (p[2:, :-2] + 2 * p[1:-1, :-2] + p[:-2, :-2]))
    gy = ((p[2:, 2:] + 2 * p[2:, 1:-1] + p[2:, :-2])
          - (p[:-2, 2:] + 2 * p[:-2, 1:-1] + p[:-2, :-2]))
    return -gx, -gy


def sweep(alpha: np.ndarray, courant: np.ndarray, c: np.ndarray, fluid: np.ndarray,
          inflow: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """One Weymouth-Yue sweep along axis 1 (x); transpose the arguments for y.

    Parameters
    ----------
    alpha
        Volume fraction ``(ny, nx)``.
    courant
        ``u dt / dx`` on the faces along the sweep, ``(ny, nx + 1)``.
    c
        The frozen indicator ``alpha^n > 1/2``.
    fluid
        Fluid cells (normals ignore solids).
    inflow
        Water fraction entering through the first and last face of each row when the
        velocity there points inward.
    """
    m1, m2 = youngs_normal(alpha, fluid)
    ny = alpha.shape[0]
    ghost = np.zeros((ny, 1))
    # ghost cells beyond the ends: uniform water fraction, horizontal "interface"
    pm1 = np.hstack([ghost, m1, ghost])
    pm2 = np.hstack([ghost + 1.0, m2, ghost + 1.0])
    pal = np.hstack([inflow[0][:, None], alpha, inflow[1][:, None]])
    pa = plic_constant(pm1, pm2, pal)
    forward = courant > 0.0
    donor = np.arange(alpha.shape[1] + 1)[None, :] + np.where(forward, 0, 1)  # padded index
    rows = np.arange(ny)[:, None]
    d1, d2, da = pm1[rows, donor], pm2[rows, donor], pa[rows, donor]
    s = np.abs(courant)
    # water leaving the donor through its right face (strip [1-s, 1]) or left face ([0, s])
    shift = np.where(forward, d1 * (1.0 - s), 0.0)
    flux = s * plic_volume(d1 * s, d2, da - shift) * np.sign(courant)
    return alpha - (flux[:, 1:] - flux[:, :-1]) + c * (courant[:, 1:] - courant[:, :-1])


# ------------------------------------------------------------------ the solver
class VOFSolver(ProjectionSolver):
    """Water/air flow in a box (optionally with solid cells), volume of fluid.

    Parameters
    ----------
    nx, ny, lx, ly, boundaries, solid
        As for :class:`pdeml.solvers.projection.ProjectionSolver` (``"inflow"`` sides carry
        water where ``inflow_alpha`` says so).
    upwind
        Donor-cell share of momentum advection in [0, 1] (0 central, 1 pure donor cell).
        Default :data:`VALIDATED_UPWIND` (0.5): the value the Martin & Moyce dam break was
        validated with and the ``tube`` / ``dam`` problems use (pure donor cell, 1, was the
        default before and is the more diffusive choice).
    alpha
        Initial water fraction per cell ``(ny, nx)``.
    water, air
        ``(density, dynamic viscosity)`` of each phase.
    gravity
        Acceleration in ``-y`` (m/s^2); 0 for none.
    inflow_alpha
        Water fraction entering through inflow sides: a number or a function of ``y``.
    pressure_method, pressure_rtol
        See :class:`pdeml.solvers.vof_pressure.VariablePoisson`.
    cfl
        Courant number of the adaptive step (at most 0.5, the bound of the VOF sweeps).
    """

    def __init__(
        self, nx: int, ny: int, lx: float, ly: float, alpha: np.ndarray,
        water: tuple[float, float] = WATER, air: tuple[float, float] = AIR,
        gravity: float = 9.81, boundaries: dict[str, Boundary] | None = None,
        solid: np.ndarray | None = None, upwind: float = VALIDATED_UPWIND,
        inflow_alpha: float | object = 1.0, pressure_method: str = "amg-reuse",
        pressure_rtol: float = 1e-10, cfl: float = 0.25, max_dt: float = 1e-2,
    ) -> None:
        if pressure_method not in VOF_PRESSURE_METHODS:
            raise ValueError(f"unknown two-phase pressure method '{pressure_method}'; use "
                             f"one of {', '.join(VOF_PRESSURE_METHODS)}")
        if not 0.0 < cfl <= 0.5:
            raise ValueError(f"cfl must be in (0, 0.5] (VOF boundedness), got {cfl}")
        # "spsolve" builds nothing: the constant-coefficient matrix is never used here
        super().__init__(nx, ny, lx, ly, 0.0, boundaries, solid, dt=max_dt, upwind=upwind,
                         pressure_solver="spsolve")
        self.rho_w, self.mu_w = map(float, water)
        self.rho_a, self.mu_a = map(float, air)
        self.g, self.cfl, self.max_dt = float(gravity), float(cfl), float(max_dt)
        alpha = np.asarray(alpha, float)
        if alpha.shape != (ny, nx):
            raise ValueError(f"alpha has shape {alpha.shape}, expected {(ny, nx)}")
        self.alpha = np.clip(alpha, 0.0, 1.0) * self.fluid
        self.inflow_alpha = inflow_alpha
        self.pressure_solver = VariablePoisson(self.D, self.G, self.dx * self.dy,
                                               not self.has_dirichlet, pressure_method,
                                               pressure_rtol)
        self.clipped = 0.0
        self._dt_prev: float | None = None
        self.dt = self.stable_dt()

    # --------------------------------------------------------------- properties
    def density(self) -> np.ndarray:
        """Cell density ``(ny, nx)``."""
        return self.alpha * self.rho_w + (1.0 - self.alpha) * self.rho_a

    def _face_mean(self, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cell values averaged onto u-faces ``(ny, nx+1)`` and v-faces ``(ny+1, nx)``."""
        px = np.pad(cell, ((0, 0), (1, 1)), mode="edge")
        py = np.pad(cell, ((1, 1), (0, 0)), mode="edge")
        return 0.5 * (px[:, :-1] + px[:, 1:]), 0.5 * (py[:-1] + py[1:])

    def water_volume(self) -> float:
        """Water volume (area in 2-D), ``sum(alpha) dx dy``."""
        return float(self.alpha[self.fluid].sum() * self.dx * self.dy)

    @property
    def pressure(self) -> np.ndarray:
        """Static gauge pressure (Pa) at cell centres, zero in solid cells.

        With an outflow the gauge is 0 where the outflow meets the floor; in a closed box
        (pressure known up to a constant) the top row's mean is 0.
        """
        p = self.p - self.rho_a * self.g * self.y_c[:, None]
        if not self.has_dirichlet:
            top = self.fluid[-1]
            p = p - (p[-1, top].mean() if top.any() else 0.0)
        return p * self.fluid

    def pressure_stats(self) -> dict[str, float]:
        """Seconds in pressure solves (setup included), solves, iterations, AMG builds."""
        return self.pressure_solver.summary()

    def stable_dt(self, velocity_scale: float | None = None, cfl: float | None = None) -> float:
        """Advective CFL on the face velocities, the AB2 viscous limit of the more viscous
        phase (kinematically), a gravity limit ``sqrt(h / g) / 2`` and ``max_dt``."""
        cfl = self.cfl if cfl is None else cfl
        rate = max(np.abs(self.u).max() / self.dx, np.abs(self.v).max() / self.dy, 1e-12)
        if velocity_scale is not None:
            rate = max(rate, velocity_scale / min(self.dx, self.dy))
        nu = max(self.mu_w / self.rho_w, self.mu_a / self.rho_a)
        dt = min(cfl / rate, 0.8 / (4 * nu * (1 / self.dx**2 + 1 / self.dy**2)), self.max_dt)
        if self.g > 0:
            dt = min(dt, 0.5 * np.sqrt(min(self.dx, self.dy) / self.g))
        return float(dt)

    # ------------------------------------------------------------------ stepping
    def _rhs(self) -> tuple[np.ndarray, np.ndarray]:
        """Advection, ``(mu / rho) lap u`` with face properties, and reduced gravity."""
        ue, ve = self._ghosted()
        dx, dy, gam = self.dx, self.dy, self.upwind
        rho_u, rho_v = self._face_mean(self.density())
        mu_cell = self.alpha * self.mu_w + (1.0 - self.alpha) * self.mu_a
        mu_u, mu_v = self._face_mean(mu_cell)
        uc, uE, uW, uN, uS = _stencil(ue)
        vt = 0.5 * (ve[2:-1, :-1] + ve[2:-1, 1:])
        vb = 0.5 * (ve[1:-2, :-1] + ve[1:-2, 1:])
        hu = ((mu_u / rho_u) * ((uE - 2 * uc + uW) / dx**2 + (uN - 2 * uc + uS) / dy**2)
              - _flux_diff(uc + uE, uW + uc, uc - uE, uW - uc, 0.5 * (uc + uE),
                           0.5 * (uW + uc), dx, gam)
              - _flux_diff(vt, vb, uc - uN, uS - uc, uc + uN, uS + uc, dy, gam, half=True))
        vc, vE, vW, vN, vS = _stencil(ve)
        ur = 0.5 * (ue[:-1, 2:-1] + ue[1:, 2:-1])
        ul = 0.5 * (ue[:-1, 1:-2] + ue[1:, 1:-2])
        hv = ((mu_v / rho_v) * ((vE - 2 * vc + vW) / dx**2 + (vN - 2 * vc + vS) / dy**2)
              - _flux_diff(ur, ul, vc - vE, vW - vc, vc + vE, vW + vc, dx, gam, half=True)
              - _flux_diff(vc + vN, vS + vc, vc - vN, vS - vc, 0.5 * (vc + vN),
                           0.5 * (vS + vc), dy, gam)
              - self.g * (1.0 - self.rho_a / rho_v))
        return hu, hv

    def step(self) -> None:
        """Advance by ``self.dt``: predictor, variable-density projection, VOF transport."""
        dt = self.dt
        self._require_finite("velocity u", self.u, dt)
        self._require_finite("velocity v", self.v, dt)
        hu, hv = self._rhs()
        if self._h_prev is None:
            fu, fv = self.u + dt * hu, self.v + dt * hv
        else:
            r = dt / self._dt_prev
            fu = self.u + dt * ((1 + 0.5 * r) * hu - 0.5 * r * self._h_prev[0])
            fv = self.v + dt * ((1 + 0.5 * r) * hv - 0.5 * r * self._h_prev[1])
        self._h_prev, self._dt_prev = (hu, hv), dt
        fu[~self.u_free], fv[~self.v_free] = self.u[~self.u_free], self.v[~self.v_free]
        self._require_finite("predicted velocity u", fu, dt)
        self._require_finite("predicted velocity v", fv, dt)
        rho_u, rho_v = self._face_mean(self.density())
        beta = np.concatenate([(1.0 / rho_u).ravel(), (1.0 / rho_v).ravel()])
        self._require_finite("face coefficient 1/rho (from alpha)", beta, dt)
        faces = np.concatenate([fu.ravel(), fv.ravel()])
        p = self._project(faces, beta, dt)
        n_u = self.u.size
        self.u = faces[:n_u].reshape(self.u.shape)
        self.v = faces[n_u:].reshape(self.v.shape)
        self.p[:] = 0.0
        self.p[self.fluid] = p
        self._transport(dt)
        self.time += dt
        self.n_steps += 1
        if not (np.isfinite(self.u).all() and np.isfinite(self.v).all()):
            raise FloatingPointError(f"two-phase solver blew up at t={self.time:.4g} "
                                     f"(step {self.n_steps}, dt {dt:.3g}); lower cfl")

    def _require_finite(self, name: str, values: np.ndarray, dt: float) -> None:
        """Raise before the pressure solve (an iterative one would spend ``10 n`` iterations
        on a NaN) when ``values`` hold a NaN or an infinity; one line: field, time, step."""
        if not np.isfinite(values).all():
            bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
            raise FloatingPointError(
                f"two-phase solver: {name} is not finite ({bad} of {np.size(values)} values) "
                f"at t={self.time:.4g}, step {self.n_steps + 1} (dt {dt:.3g}), before the "
                f"pressure solve; lower cfl or check the initial fields")

    def _project(self, faces: np.ndarray, beta: np.ndarray, dt: float) -> np.ndarray:
        """Make ``faces`` (predicted velocity, in place) divergence-free; return the pressure."""
        rhs = -(self.dx * self.dy) * (self.D @ faces) / dt
        self._require_finite("pressure right-hand side div(u*)/dt", rhs, dt)
        p = self.pressure_solver.solve(beta, rhs)
        faces -= dt * beta * (self.G @ p)
        return p

    def _inflow_alpha(self, side: str) -> np.ndarray:
        if self.bc[side].kind != "inflow":
            return np.zeros(self.ny)  # outflow backflow brings air
        value = self.inflow_alpha
        out = value(self.y_c) if callable(value) else np.full(self.ny, float(value))
        return np.asarray(out, float)

    def _transport(self, dt: float) -> None:
        """Two Weymouth-Yue sweeps, x first on even steps, y first on odd ones."""
        c = (self.alpha > 0.5).astype(float)
        cx, cy = self.u * dt / self.dx, self.v * dt / self.dy
        x_in = (self._inflow_alpha("left"), self._inflow_alpha("right"))
        y_in = (np.zeros(self.nx), np.zeros(self.nx))
        order = ("x", "y") if self.n_steps % 2 == 0 else ("y", "x")
        alpha = self.alpha
        for axis in order:
            if axis == "x":
                alpha = sweep(alpha, cx, c, self.fluid, x_in)
            else:
                alpha = sweep(alpha.T, cy.T, c.T, self.fluid.T, y_in).T
            low, high = np.minimum(alpha, 0.0), np.maximum(alpha - 1.0, 0.0)
            self.clipped += float(np.abs(low).sum() + high.sum()) * self.dx * self.dy
            alpha = np.clip(alpha, 0.0, 1.0)
        self.alpha = alpha * self.fluid

    def advance_to(self, t_end: float) -> None:
        """Step with the adaptive ``dt`` until ``t_end`` exactly (last step shortened)."""
        while self.time < t_end - 1e-12 * max(1.0, t_end):
            self.dt = min(self.stable_dt(), t_end - self.time)
            self.step()
