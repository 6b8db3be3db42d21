"""CFDBench's two-phase flows, ``tube`` and ``dam``, on the volume-of-fluid solver.

Both store ``u``, ``v`` (m/s, cell centres), ``p`` (static gauge pressure, Pa) and ``alpha``
(water volume fraction) as ``(sample, time, y, x)`` resampled to ``resolution x resolution``
over the domain, with the fluid ``mask`` and the case parameters, like the single-phase
:mod:`pdeml.solvers.problems.cfdbench` flows (same ``sweep`` groups, case-level splits, ranges
overridable). The second phase is air (1.225 kg/m^3, 1.79e-5 Pa s, Fluent's defaults).

What CFDBench did (Luo et al. 2023; their Fluent journal scripts and dataset loaders, read for
this module) and where this departs:

``tube`` (CFDBench "tube", generated as "laminar"): a 2-D channel of ``length`` x ``diameter``
(defaults 1 m x 0.1 m), initially full of air at rest; water enters through the whole left side
at ``velocity``; outflow on the right, no-slip walls above and below. CFDBench's case lists:
BC 50 cases ``velocity`` 0.1-5 m/s; PROP 100 cases, ``density`` 10-1000 kg/m^3 x ``viscosity``
0.01-1 Pa s (10 x 10); GEO ``diameter`` 0.05-0.15 m and ``length`` 0.5-1 m; defaults 1 m/s,
100 kg/m^3, 0.1 Pa s. Gravity is off (a horizontal tube; the scripts set none).

``dam`` (CFDBench "dam", generated as "step"): a 1.5 m x 0.4 m channel with a barrier of
``barrier_height`` x ``barrier_width`` (defaults 0.1 m x 0.05 m) standing on the floor at
x = 0.5 m. Water enters through the lower left side up to the barrier's height at
``velocity``; the reservoir before the barrier starts full of water moving at ``velocity``
(Fluent's patched ``region_0``); gravity 9.81 m/s^2; outflow on the right. CFDBench's lists:
BC 70 cases ``velocity`` 0.05-1 m/s (20) and 1.02-2 m/s (50); PROP 100 cases as for the tube;
GEO 50 barrier geometries (its meshes are not public: the ranges here, ``barrier_height``
0.05-0.2 m and ``barrier_width`` 0.025-0.1 m, are ours); defaults 1 m/s, 100 kg/m^3,
0.1 Pa s.

Departures, scaled where the solver's explicit step cannot afford CFDBench's values:

- ``density`` 100-1000 instead of 10-1000 kg/m^3 in the PROP sweeps: at 10 kg/m^3 and 1 Pa s the
  kinematic viscosity 0.1 m^2/s makes the explicit viscous step 40x smaller than the advective
  one (a 30-minute case); with this floor ``nu <= 0.01`` m^2/s. The density ratio to air still
  spans 82:1 to 816:1.
- Above the dam's inflow the left side is a wall, not Fluent's pressure inlet (pdeml's box has
  one condition per side); air can still leave and enter through the outflow.
- Time: ``final_time`` 2 s (tube) and 5 s (dam) by default instead of CFDBench's 10 s, stored
  every ``final_time / n_snapshots``: the water crosses the default tube in 1 s and reaches the
  dam's outlet in about 1.5 s, the rest is near-periodic spilling.
- Solver resolution: ``cells`` across the tube's diameter (16) or the dam's height (32); the
  stored 64 x 64 grid is interpolated from it as CFDBench interpolated Fluent's mesh.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from pdeml.solvers.problems.base import Variable
from pdeml.solvers.problems.cfdbench import (
    FlowProblem,
    _box_cells,
    _centres,
    _resample,
    _resample_mask,
)
from pdeml.solvers.projection import Boundary
from pdeml.solvers.vof import AIR, VALIDATED_UPWIND, VOFSolver
from pdeml.solvers.vof_pressure import VOF_PRESSURE_METHODS

GRAVITY = 9.81


class TwoPhaseProblem(FlowProblem):
    """Base of ``tube`` and ``dam`` (not registered).

    Parameters
    ----------
    resolution, sweep, final_time, n_snapshots, cells, **ranges
        As for :class:`pdeml.solvers.problems.cfdbench.FlowProblem`.
    cfl
        Courant number of the adaptive step (at most 0.5).
    upwind
        Donor-cell share of momentum advection; 0.5 by default
        (:data:`pdeml.solvers.vof.VALIDATED_UPWIND`, also the solver's default), the value
        validated against Martin & Moyce (:mod:`pdeml.solvers.dambreak`). In the harshest
        dam case (1000 kg/m^3, 2 m/s, barrier 0.2 m) the air next to the water reaches
        12-14 m/s within 0.6 s with 0.5 and 11-19 m/s with 1 (pure donor cell): velocity-form
        momentum beside a phase 816x heavier; more upwinding does not cure it, consistent
        mass-momentum transport would.
    pressure_solver
        One of ``lu``, ``amg``, ``amg-reuse``, ``gcrodr`` (see
        :mod:`pdeml.solvers.vof_pressure`).
    """

    input_vars = ("u[0]", "v[0]", "alpha[0]", "mask")
    output_vars = ("u[-1]", "v[-1]", "alpha[-1]")
    ROLLOUT_FIELDS: ClassVar[tuple[str, ...]] = ("u", "v", "alpha")
    gravity: ClassVar[float] = 0.0  # m/s^2 along -y

    def __init__(self, resolution: int = 64, sweep: str = "all", final_time: float | None = None,
                 n_snapshots: int = 10, cells: int | None = None, cfl: float = 0.25,
                 upwind: float | None = VALIDATED_UPWIND, pressure_solver: str = "lu",
                 **ranges: Any) -> None:
        if pressure_solver not in VOF_PRESSURE_METHODS:
            raise ValueError(f"unknown {self.name} pressure_solver '{pressure_solver}'; use one "
                             f"of {', '.join(VOF_PRESSURE_METHODS)}")
        super().__init__(resolution, sweep, final_time, n_snapshots, cells, cfl,
                         VALIDATED_UPWIND if upwind is None else upwind, "lu", **ranges)
        self.pressure_solver = pressure_solver

    def variables(self) -> dict[str, Variable]:
        out = super().variables()
        out["p"] = Variable(("time", "y", "x"), "Pa", "static gauge pressure (0 at the outlet "
                            "floor; tube: outlet)")
        fields = {k: out.pop(k) for k in ("u", "v", "p")}
        fields["alpha"] = Variable(("time", "y", "x"), "1", "water volume fraction")
        extra = {"clipped_volume": Variable((), "m^2", "volume clipped to keep alpha in [0, 1]"),
                 "water_volume": Variable((), "m^2", "water volume at the end")}
        return fields | out | extra

    def attrs(self) -> dict[str, Any]:
        out = super().attrs()
        out.update(method="MAC staggered grid, variable-density projection, AB2, donor-cell "
                          "blended advection; VOF: PLIC + Weymouth-Yue split advection",
                   solver=f"pdeml.solvers.vof; pressure: {self.pressure_solver}",
                   gravity=self.gravity, air=list(AIR))
        return out

    def initial_alpha(self, params: dict[str, float], X: np.ndarray,
                      Y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def build_solver(self, params: dict[str, float], **overrides: Any) -> VOFSolver:
        """The VOF solver of one case (adaptive step; ``overrides`` go to its constructor)."""
        geo = self.geometry(params)
        X, Y = _centres(geo["nx"], geo["ny"], geo["lx"], geo["ly"])
        alpha = self.initial_alpha(params, X, Y)
        options = {"water": (params["density"], params["viscosity"]), "gravity": self.gravity,
                   "upwind": self.upwind, "pressure_method": self.pressure_solver,
                   "cfl": self.cfl, **geo, **overrides}
        solver = VOFSolver(alpha=alpha, **options)
        self.initial_velocity(solver, params)
        return solver

    def initial_velocity(self, solver: VOFSolver, params: dict[str, float]) -> None:
        """Fluid at rest (the inflow is set by the boundary)."""

    def run(self, solver: VOFSolver, params: dict[str, float]) -> list[dict[str, Any]]:
        frames = []
        for k in range(1, self.n_snapshots + 1):
            solver.advance_to(self.final_time * k / self.n_snapshots)
            uc, vc = solver.cell_velocity()
            frames.append({"u": _resample(uc, self.resolution),
                           "v": _resample(vc, self.resolution),
                           "p": _resample(solver.pressure, self.resolution),
                           "alpha": _resample(solver.alpha, self.resolution)})
        return frames

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        params = self.draw(rng)
        solver = self.build_solver(params)
        frames = self.run(solver, params)
        mask = _resample_mask(solver.fluid, self.resolution)
        out = {k: (np.stack([f[k] for f in frames]) * mask).astype(np.float32)
               for k in ("u", "v", "p", "alpha")}
        out["mask"] = mask
        out |= {k: np.float32(v) for k, v in params.items()}
        out["reynolds"] = np.float32(self.reynolds(params))
        out["n_steps"] = np.float32(solver.n_steps)
        out["max_divergence"] = np.float32(np.abs(solver.divergence()).max())
        out["clipped_volume"] = np.float32(solver.clipped)
        out["water_volume"] = np.float32(solver.water_volume())
        return out


class Tube(TwoPhaseProblem):
    """Water filling an air-filled 2-D tube (channel) from the left."""

    name = "tube"
    order = 1
    PARAMS = {
        "velocity": (1.0, 0.1, 5.0, "bc"),
        "density": (100.0, 100.0, 1000.0, "prop"),
        "viscosity": (0.1, 0.01, 1.0, "prop"),
        "diameter": (0.1, 0.05, 0.15, "geo"),
        "length": (1.0, 0.5, 1.0, "geo"),
    }
    DEFAULT_CELLS = 16
    DEFAULT_FINAL_TIME = 2.0

    def geometry(self, params: dict[str, float]) -> dict[str, Any]:
        lx, ly = params["length"], params["diameter"]
        nx, ny = _box_cells(lx, ly, self.cells)
        return {"nx": nx, "ny": ny, "lx": lx, "ly": ly,
                "boundaries": {"left": Boundary("inflow", params["velocity"]),
                               "right": Boundary("outflow")}}

    def initial_alpha(self, params: dict[str, float], X: np.ndarray,
                      Y: np.ndarray) -> np.ndarray:
        return np.zeros_like(X)

    def reynolds(self, params: dict[str, float]) -> float:
        return params["density"] * params["velocity"] * params["diameter"] / params["viscosity"]


class Dam(TwoPhaseProblem):
    """Water flowing over a barrier on the floor of a channel, under gravity."""

    name = "dam"
    order = 1
    PARAMS = {
        "velocity": (1.0, 0.05, 2.0, "bc"),
        "density": (100.0, 100.0, 1000.0, "prop"),
        "viscosity": (0.1, 0.01, 1.0, "prop"),
        "barrier_height": (0.1, 0.05, 0.2, "geo"),
        "barrier_width": (0.05, 0.025, 0.1, "geo"),
    }
    DEFAULT_CELLS = 32
    DEFAULT_FINAL_TIME = 5.0
    LENGTH, HEIGHT, BARRIER_X = 1.5, 0.4, 0.5
    gravity = GRAVITY

    def geometry(self, params: dict[str, float]) -> dict[str, Any]:
        nx, ny = _box_cells(self.LENGTH, self.HEIGHT, self.cells)
        X, Y = _centres(nx, ny, self.LENGTH, self.HEIGHT)
        x0, hb = self.BARRIER_X, params["barrier_height"]
        solid = (X >= x0) & (X <= x0 + params["barrier_width"]) & (Y <= hb)
        speed = params["velocity"]

        def inflow(y: np.ndarray) -> np.ndarray:
            return speed * (y < hb)

        return {"nx": nx, "ny": ny, "lx": self.LENGTH, "ly": self.HEIGHT, "solid": solid,
                "inflow_alpha": lambda y: (y < hb).astype(float),
                "boundaries": {"left": Boundary("inflow", inflow),
                               "right": Boundary("outflow")}}

    def initial_alpha(self, params: dict[str, float], X: np.ndarray,
                      Y: np.ndarray) -> np.ndarray:
        return ((X < self.BARRIER_X) & (Y < params["barrier_height"])).astype(float)

    def initial_velocity(self, solver: VOFSolver, params: dict[str, float]) -> None:
        """The reservoir moves at the inflow velocity (its right end, the barrier, stops it:
        the first projection turns this into a divergence-free start)."""
        water = solver.alpha > 0.5
        faces = np.zeros(solver.u.shape, bool)
        faces[:, 1:-1] = water[:, :-1] & water[:, 1:]
        solver.u[faces & solver.u_free] = params["velocity"]

    def velocity_scale(self, params: dict[str, float]) -> float:
        return params["velocity"] + np.sqrt(2 * GRAVITY * params["barrier_height"])

    def reynolds(self, params: dict[str, float]) -> float:
        return (params["density"] * params["velocity"] * params["barrier_height"]
                / params["viscosity"])


def cfdbench_cases(name: str, sweep: str) -> list[dict[str, float]]:
    """CFDBench's case list of ``tube`` or ``dam`` for ``sweep`` (``bc``, ``prop``, ``geo``),
    scaled into this module's ranges (PROP densities below 100 kg/m^3 are raised to 100; the
    dam's GEO grid, not public, is a 10 x 5 grid over our ranges). Parameters not listed keep
    their defaults."""
    cls = {"tube": Tube, "dam": Dam}[name]
    defaults = {k: v[0] for k, v in cls.PARAMS.items()}
    if sweep == "bc":
        speeds = (np.linspace(0.1, 5.0, 50) if name == "tube"
                  else np.r_[np.linspace(0.05, 1.0, 20), np.linspace(1.02, 2.0, 50)])
        return [defaults | {"velocity": float(s)} for s in speeds]
    if sweep == "prop":
        return [defaults | {"density": float(max(r, 100.0)), "viscosity": float(m)}
                for r in np.linspace(10, 1000, 10) for m in np.linspace(0.01, 1.0, 10)]
    if sweep == "geo":
        if name == "tube":
            d = np.r_[0.1, np.linspace(0.05, 0.09, 5), np.linspace(0.11, 0.15, 5)]
            return ([defaults | {"diameter": float(x)} for x in d]
                    + [defaults | {"length": float(x)} for x in np.linspace(0.5, 0.95, 10)])
        return [defaults | {"barrier_height": float(h), "barrier_width": float(w)}
                for h in np.linspace(0.05, 0.2, 10) for w in np.linspace(0.025, 0.1, 5)]
    raise ValueError(f"unknown sweep '{sweep}'; use bc, prop or geo")
