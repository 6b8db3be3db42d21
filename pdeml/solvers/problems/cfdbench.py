"""CFDBench-style incompressible flows: cavity, channel, step and cylinder.

Each problem draws one *case* per sample (a point in its parameter space), runs the staggered-grid
projection solver (:mod:`pdeml.solvers.projection`) from rest and stores the time series of
``u``, ``v`` and ``p`` at cell centres resampled to ``resolution x resolution``, the fluid
``mask`` and the case parameters. As in CFDBench (Luo et al., 2023) the parameters form three
groups that a ``sweep`` varies while the others stay at their defaults:

- ``bc``: the driving velocity (lid or inflow);
- ``prop``: the fluid's density and dynamic viscosity;
- ``geo``: the domain and obstacle sizes;

``sweep="all"`` varies all of them. Every sample is a whole case, so the train / val / test
files hold disjoint cases (CFDBench's case-level split; 8:1:1 with ``--n-train 80 --n-val 10
--n-test 10``). The default case has Re = 100 (the step's is defined on the channel height).
Reynolds ranges of the sweeps (from the corners of the parameter box):

=========  =======  ========  =======  ========
case       bc       prop      geo      all
=========  =======  ========  =======  ========
cavity     50-200   25-400    50-150   6-1200
channel    50-200   10-400    50-100   2-800
step       50-200   25-400    100      12-800
cylinder   50-150   17-286    60-140   5-600
=========  =======  ========  =======  ========

Above a cell Peclet number of 12 (only ``all``'s corners and the top of ``prop``) the advection
blends in donor cell for stability, at a cost in accuracy.

CFDBench's own cases (``cases="cfdbench"``)
-------------------------------------------
With ``cases="cfdbench"`` a problem solves CFDBench's case lists
(:mod:`pdeml.solvers.problems.cfdbench_cases`; cavity -> cavity, channel -> tube, step ->
dam, cylinder -> cylinder) instead of random draws, ``sweep`` choosing the subsets (``bc``,
``prop``, ``geo``, ``all`` or CFDBench's combined names such as ``prop_bc``), and the
train / val / test files hold CFDBench's split of them (seeded shuffle, 8:1:1). Every case
is stored under CFDBench's parameter names (``vel_top``, ``density``, ``viscosity``, ...)
with the solved values as ``solved_<name>``. A case is solved as CFDBench states it except
for two documented scalings:

1. *Length* (``LENGTH_SCALE``: cavity 100, channel 10, step ``1/height``, cylinder 1). The
   case is solved ``LENGTH_SCALE`` times larger with the kinematic viscosity scaled alike,
   so its Reynolds number and velocities are CFDBench's and its time scale ``L/U`` is
   ``LENGTH_SCALE`` times longer. Reason: CFDBench's 0.01 m cavity at 10 m/s spans 100
   advective times per 0.1 s frame; an explicit solver would need ~20 000 steps per frame.
2. *Reynolds number*, only where the solver grid cannot resolve it: where the cell Peclet
   number ``U h / nu`` exceeds 12 (central differences then go unstable; see
   ``upwind``), the viscosity is raised to make it 12. On 64 cells the cavity resolves
   ``Re <= 768``, on 32 cells ``Re <= 384``: CFDBench's default cavity (``Re = 10^4``) and
   most of its BC subset are solved at that cap. ``reynolds`` is the solved number,
   ``reynolds_cfdbench`` CFDBench's.

Frames are stored every ``frame_dt`` seconds (0.1 s, CFDBench's ``data_delta_time``) of
the solved case. CFDBench's rule that drops one-step pairs once the flow has converged
(``mean |(|u_{t+1}| - |u_t|)| < 1e-3``) is applied by the datasets
(:func:`pdeml.datasets.timeseries.converged_length`) where CFDBench's loader applies it:
cavity, tube (``channel``) and cylinder; its dam loader (``step`` here) keeps every pair
(:func:`pdeml.solvers.problems.cfdbench_cases.stable_state_diff`). Listed cases of the first
three also stop solving there and are padded with their last frame (``n_frames`` keeps each
length), so the default horizon, CFDBench's ``data_max_time`` of 30 s, costs only what a
case needs; ``step`` cases run the whole horizon.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from pdeml.solvers.problems import cfdbench_cases
from pdeml.solvers.problems.base import Problem, Variable, box_boundaries
from pdeml.solvers.projection import PRESSURE_METHODS, Boundary, ProjectionSolver
from pdeml.solvers.spectral import positive_int, positive_numbers, time_grid

SWEEPS = ("bc", "prop", "geo", "all")
PECLET_CENTRAL = 12.0
CFDBENCH_FINAL_TIME = 30.0  # CFDBench's data_max_time (s): the horizon of listed cases


class FlowProblem(Problem):
    """Base of the CFDBench-style problems (not registered itself).

    Parameters
    ----------
    resolution
        Stored grid (``resolution x resolution`` cell centres of the domain, whatever its shape).
    sweep
        Which parameter group varies between cases: ``"bc"``, ``"prop"``, ``"geo"`` or ``"all"``.
    final_time, n_snapshots, frame_dt
        Snapshots at ``final_time * k / n_snapshots``, ``k = 1..n_snapshots`` (the flow starts at
        rest at ``t = 0``, which is not stored); without ``n_snapshots`` one every
        ``frame_dt`` seconds (default 0.1 s, CFDBench's). ``final_time`` defaults to the
        problem's horizon, 30 s with ``cases="cfdbench"``.
    cases
        ``"random"`` (draws in the problem's ranges) or ``"cfdbench"`` (CFDBench's case
        lists and split; see the module docstring).
    split_seed
        Seed of CFDBench's case shuffle (``cases="cfdbench"``).
    cells
        Solver cells across the reference length (the domain height; the cavity width); the
        other direction gets square cells, except in the cavity, which is ``cells x cells``.
    cfl
        Advective Courant number of the time step, on the case's velocity scale.
    upwind
        Donor-cell share of advection; ``None`` picks ``max(0, 1 - 12 / Pe)`` from the cell
        Peclet number ``Pe = U h / nu``: second-order central (0) up to ``Pe = 12``, which
        covers every default case (donor cell costs accuracy: with 0.4 the cylinder's
        Strouhal number drops from 0.299 to 0.265), blending in donor cell above it, where
        central differences go unstable.
    pressure_solver
        ``"lu"`` (factorization reuse), ``"spsolve"``, ``"gcrodr"`` or ``"gmres"``.
    **ranges
        Overrides of a parameter's ``(low, high)`` range, e.g. ``velocity=(0.5, 1.0)``.
    """

    # name -> (default, low, high, group); subclasses fill it
    PARAMS: ClassVar[dict[str, tuple[float, float, float, str]]] = {}
    DEFAULT_CELLS: ClassVar[int] = 32
    DEFAULT_FINAL_TIME: ClassVar[float] = 5.0
    input_vars = ("u[0]", "v[0]", "mask")
    output_vars = ("u[-1]", "v[-1]")

    CFDBENCH: ClassVar[str] = ""  # the CFDBench problem whose case lists this one solves
    LENGTH_SCALE: ClassVar[float] = 1.0

    def __init__(
        self,
        resolution: int = 64,
        sweep: str = "all",
        final_time: float | None = None,
        n_snapshots: int | None = None,
        cells: int | None = None,
        cfl: float = 0.3,
        upwind: float | None = None,
        pressure_solver: str = "lu",
        frame_dt: float = 0.1,
        cases: str = "random",
        split_seed: int = 0,
        **ranges: Any,
    ) -> None:
        p = self.name
        if cases not in ("random", "cfdbench"):
            raise ValueError(f"unknown {p} cases '{cases}'; use random or cfdbench")
        self.cases, self.split_seed = cases, int(split_seed)
        if cases == "cfdbench":
            self.subsets = cfdbench_cases.parse_subsets(sweep)
        elif sweep not in SWEEPS:
            raise ValueError(f"unknown {p} sweep '{sweep}'; use one of {', '.join(SWEEPS)}")
        if pressure_solver not in PRESSURE_METHODS:
            raise ValueError(f"unknown {p} pressure_solver '{pressure_solver}'; use one of "
                             f"{', '.join(PRESSURE_METHODS)}")
        self.sweep, self.pressure_solver = sweep, pressure_solver
        self.resolution = positive_int(resolution, "resolution", p, minimum=4)
        self.cells = positive_int(self.DEFAULT_CELLS if cells is None else cells, "cells", p,
                                  minimum=8)
        default = CFDBENCH_FINAL_TIME if cases == "cfdbench" else self.DEFAULT_FINAL_TIME
        final = default if final_time is None else final_time
        numbers = positive_numbers(p, final_time=final, cfl=cfl, frame_dt=frame_dt)
        self.final_time, self.cfl = numbers["final_time"], numbers["cfl"]
        if n_snapshots is None:
            n_snapshots = max(int(round(self.final_time / numbers["frame_dt"])), 1)
        self.n_snapshots = positive_int(n_snapshots, "n_snapshots", p)
        if self.cfl > 0.5:
            raise ValueError(f"{p} cfl must be at most 0.5 (AB2 with central advection), "
                             f"got {self.cfl}")
        self.upwind = None if upwind is None else float(upwind)
        if self.upwind is not None and not 0.0 <= self.upwind <= 1.0:
            raise ValueError(f"{p} upwind must be in [0, 1], got {upwind}")
        self.ranges = self._check_ranges(ranges)

    def _check_ranges(self, ranges: dict[str, Any]) -> dict[str, tuple[float, float]]:
        p = self.name
        unknown = sorted(set(ranges) - set(self.PARAMS))
        if unknown:
            raise ValueError(f"unknown {p} option(s) {', '.join(unknown)}; parameters are "
                             f"{', '.join(self.PARAMS)}")
        out = {}
        for key, (_, lo, hi, _) in self.PARAMS.items():
            value = ranges.get(key, (lo, hi))
            if isinstance(value, int | float):
                value = (value, value)
            try:
                lo, hi = positive_numbers(p, **{f"{key}_low": value[0],
                                                f"{key}_high": value[1]}).values()
            except (TypeError, IndexError):
                raise ValueError(f"{p} {key} must be a number or [low, high], "
                                 f"got {value!r}") from None
            if lo > hi:
                raise ValueError(f"{p} {key} range is empty: [{lo}, {hi}]")
            out[key] = (lo, hi)
        return out

    # --------------------------------------------------------------- the contract
    def variables(self) -> dict[str, Variable]:
        fields = {
            "u": Variable(("time", "y", "x"), "m/s", "x velocity at cell centres"),
            "v": Variable(("time", "y", "x"), "m/s", "y velocity at cell centres"),
            "p": Variable(("time", "y", "x"), "Pa", "pressure (outflow at 0; cavity mean 0)"),
            "mask": Variable(("y", "x"), "1", "1 in fluid, 0 in solid cells", "i1"),
        }
        params = {k: Variable((), _UNITS.get(k, "m"), f"case parameter {k}")
                  for k in self.PARAMS}
        if self.cases == "cfdbench":
            params = {f"solved_{k}": Variable((), _UNITS.get(k, "m"), f"solved value of {k}")
                      for k in self.PARAMS}
            params |= {k: Variable((), _UNITS.get(k, "m"), f"CFDBench case parameter {k}")
                       for k in cfdbench_cases.case_list(self.CFDBENCH).defaults}
            params |= {
                "n_frames": Variable((), "1", "frames up to convergence (the rest: padding)"),
                "reynolds_cfdbench": Variable((), "1", "Reynolds number of CFDBench's case"),
                "subset": Variable((), "1", "CFDBench subset: 0 bc, 1 prop, 2 geo"),
                "case_number": Variable((), "1", "number of the case in its subset"),
            }
        extra = {
            "reynolds": Variable((), "1", "Reynolds number of the case"),
            "n_steps": Variable((), "1", "time steps taken"),
            "max_divergence": Variable((), "1/s", "max |div u| over fluid cells at the end"),
        }
        return fields | params | extra

    def coords(self) -> dict[str, np.ndarray]:
        x = (np.arange(self.resolution) + 0.5) / self.resolution
        times = self.final_time * np.arange(1, self.n_snapshots + 1) / self.n_snapshots
        return {"time": times, "y": x.copy(), "x": x}

    def coord_units(self) -> dict[str, str]:
        return {"time": "s"}

    def boundary_conditions(self) -> dict[str, dict[str, Any]]:
        walls = {f"y_{s}": {"bc_type": "wall", "dim": "y", "side": s, "fields": ["u", "v"],
                            "value": 0.0} for s in ("lower", "upper")}
        ends = {"x_lower": {"bc_type": "inflow", "dim": "x", "side": "lower",
                            "fields": ["u", "v"], "sample_varying": "velocity" in self.ranges},
                "x_upper": {"bc_type": "outflow", "dim": "x", "side": "upper",
                            "fields": ["u", "v", "p"]}}
        return {**walls, **ends}

    def attrs(self) -> dict[str, Any]:
        return {
            "cases": self.cases, "split_seed": self.split_seed,
            "length_scale": self.LENGTH_SCALE if self.cases == "cfdbench" else 1.0,
            "resolution": self.resolution, "sweep": self.sweep, "final_time": self.final_time,
            "n_snapshots": self.n_snapshots, "cells": self.cells, "cfl": self.cfl,
            "upwind": "auto" if self.upwind is None else self.upwind,
            "pressure_solver": self.pressure_solver,
            "ranges": {k: list(v) for k, v in self.ranges.items()},
            "coordinates": "x, y are fractions of the case's domain length and height",
            "method": "MAC staggered grid, projection, AB2, central/donor-cell advection",
            "solver": f"projection; pressure Poisson: {self.pressure_solver}",
        }

    def draw(self, rng: np.random.Generator) -> dict[str, float]:
        """Case parameters: the swept group uniform in its ranges (viscosity log-uniform)."""
        out = {}
        for key, (default, _, _, group) in self.PARAMS.items():
            lo, hi = self.ranges[key]
            u = rng.random()  # always drawn, so every sweep sees the same stream of numbers
            if self.sweep not in (group, "all"):
                out[key] = min(max(default, lo), hi)
            elif key == "viscosity":
                out[key] = float(np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))))
            else:
                out[key] = float(lo + u * (hi - lo))
        return out

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        if self.cases == "cfdbench":
            raise ValueError(f"{self.name} with cases=cfdbench solves listed cases: use "
                             "sample_indexed(split, index, rng)")
        return self._solve_stored(self.draw(rng))

    # ------------------------------------------------------------ CFDBench's cases
    def cfdbench_splits(self) -> dict[str, list[tuple[str, int, dict[str, float]]]]:
        """CFDBench's train / val / test split of the chosen subsets' cases:
        ``{split: [(subset, case number, case.json dict), ...]}``."""
        cl = cfdbench_cases.case_list(self.CFDBENCH)
        items = [(sub, i, case) for sub in self.subsets
                 for i, case in enumerate(cl.cases(sub))]
        rounding = "round" if self.CFDBENCH == "cavity" else "floor"  # as CFDBench's code
        return cfdbench_cases.cfdbench_split(items, self.split_seed, rounding)

    def sample_indexed(self, split: str, index: int, rng: np.random.Generator
                       ) -> dict[str, np.ndarray]:
        """Sample ``index`` of ``split``: the next case of CFDBench's split (random cases
        draw from ``rng`` instead)."""
        if self.cases != "cfdbench":
            return self.sample(rng)
        chosen = self.cfdbench_splits()[split]
        if index >= len(chosen):
            raise ValueError(f"{self.name} {split} split of CFDBench's {self.sweep} cases "
                             f"has {len(chosen)} cases; asked for case {index + 1}")
        subset, number, case = chosen[index]
        params, reynolds = self.from_cfdbench(case)
        out = self._solve_stored(params)
        out |= {f"solved_{k}": out.pop(k) for k in self.PARAMS}
        out |= {k: np.float32(v) for k, v in case.items()}
        out |= {"reynolds_cfdbench": np.float32(reynolds), "case_number": np.float32(number),
                "subset": np.float32(cfdbench_cases.SUBSETS.index(subset))}
        return out

    def from_cfdbench(self, case: dict[str, float]) -> tuple[dict[str, float], float]:
        """The solved parameters of a CFDBench case (scaled as the module docstring says)
        and CFDBench's Reynolds number of it."""
        params = self.scale_case(case)
        reynolds = self.reynolds(params)
        geo = self.geometry(params)
        h = min(geo["lx"] / geo["nx"], geo["ly"] / geo["ny"])
        nu = params["viscosity"] / params["density"]
        if params["velocity"] * h / nu > PECLET_CENTRAL:  # unresolved: cap the Reynolds number
            params["viscosity"] = params["density"] * params["velocity"] * h / PECLET_CENTRAL
        return params, reynolds

    def scale_case(self, case: dict[str, float]) -> dict[str, float]:
        """CFDBench's case in this problem's parameters, lengths scaled by LENGTH_SCALE."""
        raise NotImplementedError

    def _solve_stored(self, params: dict[str, float]) -> dict[str, np.ndarray]:
        """Solve one case and return the stored variables of the contract. CFDBench's cases
        stop at its convergence test and are padded with their last frame (``n_frames``)."""
        solver = self.build_solver(params)
        listed = self.cases == "cfdbench"
        # stop where CFDBench's loader would drop the rest (not for the dam: it keeps all)
        stop = cfdbench_cases.stable_state_diff(self.CFDBENCH) if listed else None
        frames = self.run(solver, params, stop_below=stop)
        n_frames = len(frames)
        frames += [frames[-1]] * (self.n_snapshots - n_frames)
        mask = _resample_mask(solver.fluid, self.resolution)
        # interpolation bleeds fluid values into solid cells: the stored fields obey the mask
        out = {k: (np.stack([f[k] for f in frames]) * mask).astype(np.float32)
               for k in ("u", "v", "p")}
        out["mask"] = mask
        out |= {k: np.float32(v) for k, v in params.items()}
        out["reynolds"] = np.float32(self.reynolds(params))
        out["n_steps"] = np.float32(solver.n_steps)
        out["max_divergence"] = np.float32(np.abs(solver.divergence()).max())
        if listed:
            out["n_frames"] = np.float32(n_frames)
        return out

    # ------------------------------------------------------------ case building
    def geometry(self, params: dict[str, float]) -> dict[str, Any]:
        """``nx, ny, lx, ly, boundaries, solid`` of a case; subclasses define it."""
        raise NotImplementedError

    def velocity_scale(self, params: dict[str, float]) -> float:
        """The largest velocity expected (sets the time step)."""
        return 2.0 * params["velocity"]

    def reynolds(self, params: dict[str, float]) -> float:
        raise NotImplementedError

    def build_solver(self, params: dict[str, float], **overrides: Any) -> ProjectionSolver:
        """The projection solver of one case, time step set for stability."""
        geo = self.geometry(params)
        nu = params["viscosity"] / params["density"]
        solver = ProjectionSolver(viscosity=nu, pressure_solver=self.pressure_solver, **geo)
        h = min(solver.dx, solver.dy)
        scale = self.velocity_scale(params)
        if self.upwind is None:
            peclet = params["velocity"] * h / nu
            solver.upwind = max(0.0, 1.0 - PECLET_CENTRAL / peclet)
        else:
            solver.upwind = self.upwind
        solver.dt = solver.stable_dt(velocity_scale=scale, cfl=self.cfl)
        for key, value in overrides.items():
            setattr(solver, key, value)
        return solver

    def run(self, solver: ProjectionSolver, params: dict[str, float],
            stop_below: float | None = None) -> list[dict[str, Any]]:
        """March to each snapshot and resample the fields onto the stored grid.

        With ``stop_below``, stop after the first frame whose mean absolute change of speed
        from the previous frame (CFDBench's convergence test) is below it.
        """
        _, steps, dt = time_grid(self.final_time, self.n_snapshots, solver.dt)
        solver.dt = dt
        frames: list[dict[str, Any]] = []
        for _ in range(self.n_snapshots):
            if stop_below is not None and len(frames) >= 2:
                a, b = frames[-2], frames[-1]
                change = np.abs(np.hypot(b["u"], b["v"]) - np.hypot(a["u"], a["v"])).mean()
                if change < stop_below:
                    break
            for _ in range(steps):
                solver.step()
            uc, vc = solver.cell_velocity()
            frames.append({
                "u": _resample(uc, self.resolution),
                "v": _resample(vc, self.resolution),
                "p": _resample(params["density"] * solver.p, self.resolution),
            })
        return frames


_UNITS = {"velocity": "m/s", "density": "kg/m^3", "viscosity": "Pa s"}


def _resample(field: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation of a cell-centred field onto ``n x n`` cell centres of the box."""
    ny, nx = field.shape
    if (ny, nx) == (n, n):
        return field.copy()
    target = (np.arange(n) + 0.5) / n
    xs, ys = (np.arange(nx) + 0.5) / nx, (np.arange(ny) + 0.5) / ny
    rows = np.stack([np.interp(target, xs, row) for row in field])
    return np.stack([np.interp(target, ys, col) for col in rows.T], axis=1)


def _resample_mask(fluid: np.ndarray, n: int) -> np.ndarray:
    """Nearest-cell fluid mask on ``n x n`` cell centres."""
    ny, nx = fluid.shape
    j = np.minimum(((np.arange(n) + 0.5) / n * ny).astype(int), ny - 1)
    i = np.minimum(((np.arange(n) + 0.5) / n * nx).astype(int), nx - 1)
    return fluid[np.ix_(j, i)].astype(np.int8)


def _box_cells(lx: float, ly: float, cells: int) -> tuple[int, int]:
    """Square cells: ``cells`` across the height, as many along x as the length needs."""
    return max(int(round(lx / ly * cells)), 4), cells


def _centres(nx: int, ny: int, lx: float, ly: float) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid((np.arange(nx) + 0.5) * lx / nx, (np.arange(ny) + 0.5) * ly / ny)


class Cavity(FlowProblem):
    """Lid-driven cavity: walls all round, the top one sliding at ``velocity``."""

    name = "cavity"
    order = 2
    PARAMS = {
        "velocity": (1.0, 0.5, 2.0, "bc"),
        "density": (1.0, 0.5, 2.0, "prop"),
        "viscosity": (0.01, 0.005, 0.02, "prop"),
        "width": (1.0, 0.5, 1.5, "geo"),
        "height": (1.0, 0.5, 1.5, "geo"),
    }
    DEFAULT_CELLS = 64
    DEFAULT_FINAL_TIME = 10.0
    CFDBENCH, LENGTH_SCALE = "cavity", 100.0

    def scale_case(self, case: dict[str, float]) -> dict[str, float]:
        s = self.LENGTH_SCALE
        return {"velocity": case["vel_top"], "density": case["density"],
                "viscosity": case["viscosity"] * s, "width": case["width"] * s,
                "height": case["height"] * s}

    def boundary_conditions(self) -> dict[str, dict[str, Any]]:
        walls = box_boundaries("wall", ("u", "v"), 0.0)
        walls["y_upper"] = {"bc_type": "wall", "dim": "y", "side": "upper", "fields": ["u", "v"],
                            "sample_varying": True}  # the lid, sliding at the case's velocity
        return walls

    def geometry(self, params: dict[str, float]) -> dict[str, Any]:
        return {"nx": self.cells, "ny": self.cells, "lx": params["width"],
                "ly": params["height"], "boundaries": {"top": Boundary("wall",
                                                                        params["velocity"])}}

    def velocity_scale(self, params: dict[str, float]) -> float:
        return params["velocity"]

    def reynolds(self, params: dict[str, float]) -> float:
        return params["density"] * params["velocity"] * params["width"] / params["viscosity"]


class Channel(FlowProblem):
    """Channel (CFDBench's tube): uniform inflow on the left, outflow right, walls above/below.

    The flow develops towards the Poiseuille profile ``u = 6 U y (H - y) / H^2``.
    """

    name = "channel"
    order = 2
    PARAMS = {
        "velocity": (1.0, 0.5, 2.0, "bc"),
        "density": (1.0, 0.5, 2.0, "prop"),
        "viscosity": (0.01, 0.005, 0.05, "prop"),
        "length": (2.0, 1.5, 3.0, "geo"),
        "height": (1.0, 0.5, 1.0, "geo"),
    }
    DEFAULT_FINAL_TIME = 5.0
    CFDBENCH, LENGTH_SCALE = "tube", 10.0

    def scale_case(self, case: dict[str, float]) -> dict[str, float]:
        s = self.LENGTH_SCALE
        return {"velocity": case["vel_in"], "density": case["density"],
                "viscosity": case["viscosity"] * s, "length": case["width"] * s,
                "height": case["height"] * s}

    def geometry(self, params: dict[str, float]) -> dict[str, Any]:
        lx, ly = params["length"], params["height"]
        nx, ny = _box_cells(lx, ly, self.cells)
        return {"nx": nx, "ny": ny, "lx": lx, "ly": ly,
                "boundaries": {"left": Boundary("inflow", params["velocity"]),
                               "right": Boundary("outflow")}}

    def velocity_scale(self, params: dict[str, float]) -> float:
        return 1.5 * params["velocity"]

    def reynolds(self, params: dict[str, float]) -> float:
        return params["density"] * params["velocity"] * params["height"] / params["viscosity"]


class Step(FlowProblem):
    """Channel flow over a rectangular block on the floor (a single-phase stand-in for
    CFDBench's dam case): uniform inflow, block of ``block_height`` x ``block_width`` at
    ``x = 0.25 * length``."""

    name = "step"
    order = 2
    PARAMS = {
        "velocity": (1.0, 0.5, 2.0, "bc"),
        "density": (1.0, 0.5, 2.0, "prop"),
        "viscosity": (0.01, 0.005, 0.02, "prop"),
        "block_height": (0.3, 0.15, 0.5, "geo"),
        "block_width": (0.2, 0.1, 0.4, "geo"),
    }
    LENGTH, HEIGHT = 3.0, 1.0
    CFDBENCH = "dam"

    def scale_case(self, case: dict[str, float]) -> dict[str, float]:
        """The dam's single-phase stand-in: its domain height scaled to 1; the block stays
        at pdeml's ``x = 0.75`` in a 3-long channel (the dam's barrier is at 0.5 of 1.5)."""
        s = self.HEIGHT / case["height"]
        return {"velocity": case["velocity"], "density": case["density"],
                "viscosity": case["viscosity"] * s,
                "block_height": case["barrier_height"] * s,
                "block_width": case["barrier_width"] * s}

    def geometry(self, params: dict[str, float]) -> dict[str, Any]:
        nx, ny = _box_cells(self.LENGTH, self.HEIGHT, self.cells)
        X, Y = _centres(nx, ny, self.LENGTH, self.HEIGHT)
        x0 = 0.25 * self.LENGTH
        solid = (X >= x0) & (X <= x0 + params["block_width"]) & (Y <= params["block_height"])
        return {"nx": nx, "ny": ny, "lx": self.LENGTH, "ly": self.HEIGHT, "solid": solid,
                "boundaries": {"left": Boundary("inflow", params["velocity"]),
                               "right": Boundary("outflow")}}

    def velocity_scale(self, params: dict[str, float]) -> float:
        return 2.0 * params["velocity"] * self.HEIGHT / (self.HEIGHT - params["block_height"])

    def reynolds(self, params: dict[str, float]) -> float:
        return params["density"] * params["velocity"] * self.HEIGHT / params["viscosity"]


class Cylinder(FlowProblem):
    """Flow past a circular cylinder in a channel (the Schafer-Turek 2D-2 geometry by default:
    2.2 x 0.41, cylinder of diameter 0.1 at (0.2, 0.2), parabolic inflow of mean
    ``velocity``; Re = 100 at the defaults, where the wake sheds vortices at St ~ 0.30)."""

    name = "cylinder"
    order = 2
    PARAMS = {
        "velocity": (1.0, 0.5, 1.5, "bc"),
        "density": (1.0, 0.5, 2.0, "prop"),
        "viscosity": (0.001, 0.0007, 0.003, "prop"),
        "diameter": (0.1, 0.06, 0.14, "geo"),
        "center_y": (0.2, 0.15, 0.26, "geo"),
    }
    DEFAULT_CELLS = 41
    DEFAULT_FINAL_TIME = 4.0
    LENGTH, HEIGHT, CENTER_X = 2.2, 0.41, 0.2
    CFDBENCH = "cylinder"

    def scale_case(self, case: dict[str, float]) -> dict[str, float]:
        size = (case["x_max"] - case["x_min"], case["y_max"] - case["y_min"], -case["x_min"])
        if not np.allclose(size, (self.LENGTH, self.HEIGHT, self.CENTER_X)):
            raise ValueError(f"cylinder solves a {self.LENGTH} x {self.HEIGHT} channel with the "
                             f"cylinder at x = {self.CENTER_X}; the case has {size}")
        return {"velocity": case["vel_in"], "density": case["density"],
                "viscosity": case["viscosity"], "diameter": 2 * case["radius"],
                "center_y": -case["y_min"]}

    def geometry(self, params: dict[str, float]) -> dict[str, Any]:
        nx, ny = _box_cells(self.LENGTH, self.HEIGHT, self.cells)
        X, Y = _centres(nx, ny, self.LENGTH, self.HEIGHT)
        r = params["diameter"] / 2
        solid = (X - self.CENTER_X) ** 2 + (Y - params["center_y"]) ** 2 < r**2
        H, mean = self.HEIGHT, params["velocity"]

        def inflow(y: np.ndarray) -> np.ndarray:
            return 6.0 * mean * y * (H - y) / H**2

        return {"nx": nx, "ny": ny, "lx": self.LENGTH, "ly": H, "solid": solid,
                "boundaries": {"left": Boundary("inflow", inflow),
                               "right": Boundary("outflow")}}

    def velocity_scale(self, params: dict[str, float]) -> float:
        return 2.5 * params["velocity"]

    def reynolds(self, params: dict[str, float]) -> float:
        return (params["density"] * params["velocity"] * params["diameter"]
                / params["viscosity"])
