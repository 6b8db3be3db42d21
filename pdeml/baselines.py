"""Does the surrogate pay? Its error and cost per query beside pdeml's own solver's.

McGreivy & Hakim (Nature Machine Intelligence 2024) found that most published surrogate
speedups vanish against an *equally accurate* numerical method, usually the same solver on a
coarser grid. pdeml owns the solver that made the data, so every evaluation can price that
baseline on the run's own test inputs, on this machine:

- the **surrogate**: its relative L2 error on the scored samples and its cost per query,
  at batch 1 (latency) and batched over the scored samples (throughput), eager PyTorch with
  this process's threads;
- the **solver's settings**: for each setting of the problem's knobs (:data:`KNOBS`), the
  scored samples re-solved from their stored inputs, the result brought back to the stored
  grid, its error against the test labels and its cost per query: the wall time of solving
  the scored samples as one batch (a sequence, for the linear problems, so recycling and
  preconditioner reuse count) divided by their number, median over repeats;
- **equal accuracy**: the cheapest setting whose error is <= the surrogate's (none when the
  surrogate beats every setting, i.e. it is more accurate than solving on the stored grid);
- **equal time**: the most accurate setting that costs no more per query than the surrogate;
- **breakeven**: the number of queries after which making the data and training the model
  have paid for themselves against the equal-accuracy solve,
  ``(generation + training seconds) / (solver seconds - surrogate seconds)`` per query, and
  ``never`` when the surrogate is not cheaper per query. Generation seconds are the
  training file's recorded solver seconds where it has them (its ``.cost.json``), else the
  training samples times the measured stored-grid solve; training seconds come from the
  run's ``metrics.json`` (``cost``).

Costs per query compare like with like: the surrogate *batched* over the scored samples
against each solver setting solving the same samples as one batch; the batch-1 latency is
reported beside them. A setting that blows up (a time step past its stability limit) is kept
with an infinite error and the note ``unstable``.

Knobs per problem (:data:`KNOBS`):

- ``darcy``, ``darcy3d``, ``helmholtz3d`` (node grids on the unit square/cube): every method
  pdeml offers (sparse LU, AMG-CG/GMRES, GMRES(m), GCRO-DR recycling) at the stored grid and
  the file's tolerance; AMG at looser tolerances; and coarser grids of ``(n - 1) / k + 1``
  nodes per axis, ``k`` = 2, 3, 4, 6, 8, down to 5 (the stored input taken at the nearest
  stored nodes, solved with the problem's ``auto`` method, multilinear interpolation back).
- ``burgers``, ``navier_stokes`` (periodic, pseudo-spectral): the solver grid (the stored
  input Fourier-resampled to it, the result resampled back) from the data's solver grid
  down to a quarter of the stored one, each with the time step enlarged 1-200x (at most one
  step per snapshot interval).
  Time-series runs (the Navier-Stokes rollout) get the same knobs through
  :func:`rollout_ledger`: a query is a whole trajectory from its first input frames.
- ``cavity``, ``channel``, ``cylinder``, ``step`` (CFDBench's flows, pdeml's projection
  solver; rollouts only): the solver cells (the data's, 3/4, 1/2, 1/4; at least 8) times
  the time step (1-3x the data's stable step), each case re-solved from rest from its
  stored parameters.

Other problems say so in one line.
"""

from __future__ import annotations

import inspect
import math
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.signal
import torch

KNOBS = {
    "darcy": "every linear solver at the stored grid, looser AMG tolerance, grid coarsening "
             "by k (auto solver, bilinear interpolation back)",
    "darcy3d": "every linear solver at the stored grid, looser AMG tolerance, grid "
               "coarsening by k (auto solver, trilinear interpolation back)",
    "helmholtz3d": "every linear solver at the stored grid, looser AMG tolerance, grid "
                   "coarsening by k (auto solver, trilinear interpolation back)",
    "burgers": "solver grid (Fourier resampling), time step",
    "navier_stokes": "solver grid (Fourier resampling), time step",
}
LINEAR_METHODS = ("direct", "amg", "gmres", "gcrodr")
LOOSE_RTOLS = (1e-6, 1e-4, 1e-2)
DT_FACTORS = (1, 2, 5, 10, 20, 50, 100, 200)
FLOW_DT_FACTORS = (1, 1.5, 2, 3)
FLOWS = ("cavity", "channel", "cylinder", "step")

Batch = Callable[[np.ndarray], np.ndarray]


@dataclass
class Setting:
    """One solver setting and what it measured."""

    label: str
    rel_l2: float
    seconds: float  # median per query
    note: str = ""


# -- grids ---------------------------------------------------------------------------------


def interpolation_matrix(n_coarse: int, n_fine: int) -> np.ndarray:
    """``(n_fine, n_coarse)`` linear interpolation between node grids on ``[0, 1]``."""
    xc, xf = np.linspace(0.0, 1.0, n_coarse), np.linspace(0.0, 1.0, n_fine)
    j = np.clip(np.searchsorted(xc, xf, side="right") - 1, 0, n_coarse - 2)
    w = (xf - xc[j]) / (xc[j + 1] - xc[j])
    p = np.zeros((n_fine, n_coarse))
    p[np.arange(n_fine), j] = 1.0 - w
    p[np.arange(n_fine), j + 1] += w
    return p


def prolong(u: np.ndarray, p: np.ndarray, ndim: int) -> np.ndarray:
    """Apply the 1-D interpolation ``p`` along each of the trailing ``ndim`` axes of ``u``."""
    for ax in range(u.ndim - ndim, u.ndim):
        u = np.moveaxis(np.tensordot(p, np.moveaxis(u, ax, 0), axes=(1, 0)), 0, ax)
    return u


def resample(u: np.ndarray, n: int, ndim: int) -> np.ndarray:
    """Fourier-resample the trailing ``ndim`` periodic axes of ``u`` to ``n`` points each.

    Exact for a band-limited field the coarser grid resolves; coarsening drops the modes above
    its Nyquist frequency (scipy's :func:`scipy.signal.resample`).
    """
    for ax in range(u.ndim - ndim, u.ndim):
        if u.shape[ax] != n:
            u = scipy.signal.resample(u, n, axis=ax)
    return u


def _problem(name: str, attrs: dict[str, Any], **over: Any) -> Any:
    """The registered problem ``name`` rebuilt from a file's settings, with overrides."""
    from pdeml.solvers.problems.base import Problem

    cls = Problem.registry[name]
    params = {k for k, v in inspect.signature(cls.__init__).parameters.items()
              if v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)}
    kwargs = {k: v for k, v in {**attrs, **over}.items() if k in params}
    return cls(**kwargs)


# -- knobs: linear problems on node grids ----------------------------------------------------


def linear_solver(name: str, attrs: dict[str, Any], n: int, m: int, **over: Any) -> Batch:
    """``inputs (B, C_in, *grid) -> outputs (B, C_out, *grid)``: the problem solved as one
    sorted sequence on ``m`` nodes per axis (inputs at the nearest stored nodes, outputs
    interpolated back to the ``n`` stored ones)."""
    extra = {"solver_resolution": m} if "solver_resolution" in attrs else {}
    problem = _problem(name, attrs, resolution=m, **extra, **over)
    p = interpolation_matrix(m, n)

    def solve(x: np.ndarray) -> np.ndarray:
        ndim = x.ndim - 2
        every = np.ix_(*[nearest_nodes(n, m)] * ndim)
        inputs = [{v: np.asarray(xi[c], np.float64)[every]
                   for c, v in enumerate(problem.input_vars)} for xi in x]
        systems = [problem.system(inp) for inp in inputs]
        sols, _ = problem.solve_systems([a for a, _ in systems], [b for _, b in systems],
                                        [problem.sort_features(inp) for inp in inputs])
        outs = [problem.outputs(s, inp) for s, inp in zip(sols, inputs, strict=True)]
        return np.stack([np.stack([prolong(o[v], p, ndim) for v in problem.output_vars])
                         for o in outs])

    return solve


def darcy_solver(attrs: dict[str, Any], n: int, factor: int) -> Callable[[np.ndarray],
                                                                          np.ndarray]:
    """``a (n, n) -> u (n, n)``: Darcy solved by sparse LU on the grid coarsened by ``factor``."""
    solve = linear_solver("darcy", attrs, n, (n - 1) // factor + 1, solver="direct")
    return lambda a: solve(np.asarray(a)[None, None])[0, 0]


def linear_settings(name: str, attrs: dict[str, Any], n: int) -> dict[str, Batch]:
    """Every method at the stored grid, looser AMG tolerances, coarser grids (auto)."""
    d = 3 if name.endswith("3d") else 2
    tag = f"{n}{'²' if d == 2 else '³'}"
    rtol = float(attrs.get("rtol", 1e-8))
    out = {f"{m} {tag} (stored)": linear_solver(name, attrs, n, n, solver=m)
           for m in LINEAR_METHODS}
    for tol in (t for t in LOOSE_RTOLS if t > rtol):
        out[f"amg rtol {tol:g} {tag}"] = linear_solver(name, attrs, n, n, solver="amg", rtol=tol)
    for m in coarse_grids(n):
        out[f"auto {m}{tag[-1]}"] = linear_solver(name, attrs, n, m, solver="auto")
    return out


def coarse_grids(n: int) -> list[int]:
    """Coarser node counts per axis, ``(n - 1) / k + 1`` rounded down for k = 2, 3, 4, 6, 8,
    at least 5."""
    return sorted({m for k in (2, 3, 4, 6, 8) if (m := (n - 1) // k + 1) >= 5}, reverse=True)


def nearest_nodes(n: int, m: int) -> np.ndarray:
    """Indices of the stored nodes (``n`` on [0, 1]) nearest to the ``m`` coarse nodes: every
    ``k``-th node when ``(n - 1) % (m - 1) == 0`` (a piecewise-constant coefficient keeps its
    values; interpolating it would smear its jumps)."""
    return np.rint(np.linspace(0, n - 1, m)).astype(int)


# -- knobs: periodic spectral time steppers --------------------------------------------------


def _spectral_problem(name: str, attrs: dict[str, Any], grid: int, dt_factor: float,
                      **over: Any) -> Any:
    """The stepper on ``grid`` points per axis, its step ``dt_factor`` times the data's;
    without the checks that guard data generation (their failures are what is priced)."""
    dt = float(attrs["dt"]) * dt_factor
    kw = {"resolution": grid, "solver_resolution": grid, "dt": dt, "n_terms": 0}
    if name == "navier_stokes":
        kw["max_cfl"] = math.inf  # a blow-up still stops the run (NaN fails the test)
        kw["fine_resolution"] = None
    else:
        kw["n_terms"] = 3  # the stored input is given, nothing is drawn
    return _problem(name, attrs, **{**kw, **over})


def spectral_solver(name: str, attrs: dict[str, Any], n: int, grid: int,
                    dt_factor: float = 1.0, **over: Any) -> Batch:
    """``x (B, 1, *grid) -> (B, T, *grid)``: each sample's initial field stepped on ``grid``."""
    problem = _spectral_problem(name, attrs, grid, dt_factor, **over)
    ndim = 2 if name == "navier_stokes" else 1
    kwargs = {"check": False} if name == "burgers" else {}

    def solve(x: np.ndarray) -> np.ndarray:
        outs = []
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # under-resolved: priced by error
            for xi in x:
                u = problem.solve(resample(np.asarray(xi[0], np.float64), grid, ndim), **kwargs)
                outs.append(resample(u, n, ndim))
        return np.stack(outs)

    return solve


def spectral_settings(name: str, attrs: dict[str, Any], n: int,
                      solver_kwargs: dict[str, Any] | None = None) -> dict[str, Batch]:
    """Every pair of a solver grid (the data's down to ``n / 4``, >= 8) and a step ``dt``
    times :data:`DT_FACTORS` (up to one step per snapshot interval)."""
    kw = solver_kwargs or {}
    tag = "²" if name == "navier_stokes" else ""
    grids = [int(attrs.get("solver_resolution", n))]
    while grids[-1] // 2 >= max(8, n // 4):
        grids.append(grids[-1] // 2)
    final = float(kw.get("final_time", attrs["final_time"]))
    start = float(kw.get("start_time", attrs.get("start_time", 0.0)))
    snaps = int(kw.get("n_snapshots", attrs["n_snapshots"]))
    most = (final - start) / snaps / float(attrs["dt"])  # steps per snapshot interval
    factors = [f for f in DT_FACTORS if f < most] + [most]
    return grid_by_step([f"grid {g}{tag}" for g in grids], grids, factors,
                        lambda g, f: spectral_solver(name, attrs, n, g, f, **kw))


def grid_by_step(names: list[str], grids: list[int], factors: list[float],
                 make: Callable[[int, float], Batch]) -> dict[str, Batch]:
    """``{label: make(grid, factor)}`` for every grid (finest, the data's, first) and every
    time-step factor (``1`` first), labelled ``"<name>, dt x<factor>"``."""
    out = {}
    for name, g in zip(names, grids, strict=True):
        for f in factors:
            label = name + ("" if f == 1 else f", dt x{f:.3g}")
            if g == grids[0] and f == 1:
                label += " (data's)"
            out[label] = make(g, f)
    return out


# -- knobs: CFDBench-style flows (projection solver) -----------------------------------------


def flow_solver(name: str, attrs: dict[str, Any], cells: int, dt_factor: float,
                history: int) -> Callable[[list[dict[str, float]]], np.ndarray]:
    """``cases -> (B, T, 2, R, R)``: each case's flow from rest on ``cells`` solver cells with
    the step ``dt_factor`` times the stable one, the frames after the first ``history``."""
    upwind = attrs.get("upwind")
    problem = _problem(name, attrs, cells=cells, cases="random", sweep="all",
                       upwind=None if upwind == "auto" else upwind)  # the cases are given

    def solve(cases: list[dict[str, float]]) -> np.ndarray:
        out = []
        with np.errstate(all="ignore"):
            for params in cases:
                solver = problem.build_solver(params)
                solver.dt *= dt_factor
                frames = problem.run(solver, params)[history:]
                out.append(np.stack([np.stack([f["u"], f["v"]]) for f in frames]))
        return np.stack(out)

    return solve


def flow_settings(name: str, attrs: dict[str, Any], history: int) -> dict[str, Batch]:
    """Solver cells (the data's, 3/4, 1/2, 1/4; >= 8) times the time step (1-3x the data's)."""
    full = int(attrs["cells"])
    cells = list(dict.fromkeys(c for c in (full, 3 * full // 4, full // 2, full // 4) if c >= 8))
    return grid_by_step([f"{c} cells" for c in cells], cells, list(FLOW_DT_FACTORS),
                        lambda c, f: flow_solver(name, attrs, c, f, history))


def settings_for(problem: str, attrs: dict[str, Any], n: int) -> dict[str, Batch]:
    """The knob settings of ``problem`` for stored grids of ``n`` points per axis."""
    if problem in ("burgers", "navier_stokes"):
        return spectral_settings(problem, attrs, n)
    return linear_settings(problem, attrs, n)


# -- measuring -------------------------------------------------------------------------------


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rel_l2(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean over samples of the relative L2 error (pdeml's ``rel_l2``); ``inf`` if not finite."""
    d = (np.asarray(pred, np.float64) - truth).reshape(len(truth), -1)
    t = np.asarray(truth, np.float64).reshape(len(truth), -1)
    err = float(np.mean(np.linalg.norm(d, axis=1) / np.linalg.norm(t, axis=1)))
    return err if math.isfinite(err) else math.inf


def surrogate_cost(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                   repeats: int = 5) -> dict[str, Any]:
    """Seconds per query at batch 1 (median over samples and repeats) and batched, each the
    better of this process's torch threads and one thread (with the count that gave it):
    small queries often run faster on one thread, and never slower by much."""
    counts = sorted({torch.get_num_threads(), 1}, reverse=True)
    runs = {n: _cost_at(model, x, repeats, n) for n in counts}
    one = min(counts, key=lambda n: runs[n][0])
    many = min(counts, key=lambda n: runs[n][1])
    return {"seconds_batch1": runs[one][0], "seconds_batched": runs[many][1], "batch": len(x),
            "threads_batch1": one, "threads_batched": many}


def _cost_at(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, repeats: int,
             threads: int) -> tuple[float, float]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            model(x[:1])  # warm-up: first-call allocations and kernel choice
            one = statistics.median(_median_seconds(lambda i=i: model(x[i:i + 1]), repeats)
                                    for i in range(min(len(x), 8)))
            batched = _median_seconds(lambda: model(x), repeats) / len(x)
    finally:
        torch.set_num_threads(before)
    return one, batched


def measure(label: str, solve: Batch, x: np.ndarray, u: np.ndarray, repeats: int,
            error: Callable[[np.ndarray, np.ndarray], float] = rel_l2) -> Setting:
    """One setting's ``error`` on ``(x, u)`` and its cost per query (median batch time / B)."""
    t0 = time.perf_counter()
    try:
        out = solve(x)
    except (ValueError, FloatingPointError, ArithmeticError) as err:
        return Setting(label, math.inf, (time.perf_counter() - t0) / len(x),
                       f"unstable: {str(err).splitlines()[0]}")
    first = time.perf_counter() - t0
    err = error(out, u)
    if not math.isfinite(err):
        return Setting(label, math.inf, first / len(x), "unstable: the solution blew up")
    more = [_median_seconds(lambda: solve(x), 1) for _ in range(repeats - 1)
            if first < 2.0]  # repeat only cheap settings: a slow one is measured well once
    return Setting(label, err, statistics.median([first, *more]) / len(x))


def scored_count(settings: dict[str, Batch], x: np.ndarray, budget: float | None) -> int:
    """How many samples every setting can solve within ``budget`` seconds in all (at least
    4), from one timed solve of the data's own setting (the first) on the first sample."""
    if budget is None or len(x) <= 4:
        return len(x)
    t0 = time.perf_counter()
    try:
        next(iter(settings.values()))(x[:1])
    except (ValueError, ArithmeticError):
        return len(x)
    per_sample = max(time.perf_counter() - t0, 1e-6) * len(settings)
    return int(min(len(x), max(4, budget // per_sample)))


def ledger(model: Callable[[torch.Tensor], torch.Tensor], problem: str | None,
           attrs: dict[str, Any], a: np.ndarray, u: np.ndarray,
           offline_seconds: dict[str, float | None], n_train: int | None = None,
           repeats: int = 3, budget: float | None = None,
           select: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, Any]:
    """The baseline ledger of ``model`` on inputs ``a`` (``(n, C_in, *grid)``) and labels ``u``.

    ``select`` picks the labelled channels from a solver's output (a run trained on
    ``u[-1]`` of a trajectory ``u``).

    ``offline_seconds``: ``{"training": s, "generation": s}`` (``None`` when unknown); without
    a recorded generation time it is estimated as ``n_train`` stored-grid solves. ``budget``
    (seconds) scores fewer samples, the same ones for the surrogate and every setting, when
    solving all of them with every setting would take longer. See the module docstring.
    """
    if problem not in KNOBS:
        return no_knob(problem)
    if problem == "burgers" and "viscosity_range" in attrs:
        # the knob solves with the file's one viscosity: it would be the wrong PDE
        return {"problem": problem, "note": "no solver baseline for per-sample viscosity yet "
                "(the solver knob takes the file's fixed parameters)"}
    # darcy's contrast_range needs no such refusal: the knob solves from the stored field a,
    # which carries each sample's contrast (as k carries k0 for helmholtz's k0_range)
    settings = settings_for(problem, attrs, a.shape[-1])
    if select is not None:
        settings = {k: (lambda x, f=f: select(f(x))) for k, f in settings.items()}
    k = scored_count(settings, np.asarray(a, np.float64), budget)
    a, u = np.asarray(a[:k], np.float64), u[:k]
    x = torch.from_numpy(np.ascontiguousarray(a, np.float32))
    with torch.no_grad():
        pred = model(x).numpy()
    sur = {"rel_l2": rel_l2(pred, u), **surrogate_cost(model, x)}
    measured = [measure(label, solve, a, u, repeats) for label, solve in settings.items()]
    return summarize(sur, measured, offline_seconds, n_train, problem)


def rollout_ledger(model: Callable[[torch.Tensor], torch.Tensor], problem: str | None,
                   attrs: dict[str, Any], x0: np.ndarray, y: np.ndarray, history: int,
                   offline_seconds: dict[str, float | None], n_train: int | None = None,
                   repeats: int = 3, budget: float | None = None,
                   cases: list[dict[str, float]] | None = None,
                   n_steps: np.ndarray | None = None,
                   mask: np.ndarray | None = None) -> dict[str, Any]:
    """The ledger of a one-step surrogate rolled out over whole trajectories.

    ``x0`` ``(B, C_in, *grid)``: the first input (``history`` frames of the ``F`` fields, then
    static channels); ``y`` ``(B, T, F, *grid)``: the frames that follow, of which the first
    ``n_steps[i]`` are real (all by default). A query is one trajectory; the error is the
    mean relative L2 over samples and real steps (fluid cells only, with ``mask``), the same
    for the surrogate and the solver. Navier-Stokes steps from the last input frame; the
    CFDBench flows (:data:`FLOWS`) re-solve each case from rest from its parameters
    ``cases`` (the solver cannot start from a stored cell-centred frame), their cost
    therefore including the first ``history`` frames.
    """
    from pdeml.trainers.rollout import rollout

    b, steps, n_fields = y.shape[:3]
    if problem == "navier_stokes" and n_fields == 1:
        interval = float(attrs["final_time"] - attrs["start_time"]) / int(attrs["n_snapshots"])
        over = {"start_time": 0.0, "final_time": interval * steps, "n_snapshots": steps,
                "fine_resolution": None}
        inner = spectral_settings(problem, attrs, x0.shape[-1], over)
        settings = {k: (lambda s, f=f: f(s)[:, :, None]) for k, f in inner.items()}
        start: Any = np.asarray(x0[:, history - 1:history], np.float64)
    elif problem in FLOWS and cases is not None:
        settings = flow_settings(problem, attrs, history)
        start = list(cases)
    else:
        return no_knob(problem) | {"note": f"no rollout solver knob for {problem} yet "
                                   f"(rollout baselines exist for: navier_stokes, "
                                   f"{', '.join(FLOWS)})"}
    k = scored_count(settings, start, budget)
    start, y, x0 = start[:k], np.asarray(y[:k], np.float64), x0[:k]
    real = np.full(k, steps) if n_steps is None else np.asarray(n_steps[:k])
    keep = np.arange(steps)[None, :] < real[:, None]
    fluid = 1.0 if mask is None else np.asarray(mask[:k], np.float64)[:, None, None]
    x = torch.from_numpy(np.ascontiguousarray(x0, np.float32))

    def roll(t: torch.Tensor) -> torch.Tensor:
        return rollout(model, t, steps, n_fields, history)

    def error(pred: np.ndarray, truth: np.ndarray) -> float:  # per real frame, fluid only
        return rel_l2((pred * fluid)[keep], (truth * fluid)[keep])

    with torch.no_grad():
        pred = roll(x).numpy()
    sur = {"rel_l2": error(pred, y), **surrogate_cost(roll, x, repeats=min(repeats, 3))}
    measured = [measure(label, solve, start, y, repeats, error)
                for label, solve in settings.items()]
    return summarize(sur, measured, offline_seconds, n_train, problem) | {
        "query": f"a rollout of {steps} steps", "steps": steps}


def no_knob(problem: str | None) -> dict[str, Any]:
    """The one-line ledger of a problem without a solver knob."""
    return {"problem": problem, "note": f"no solver knob for {problem or 'this data'} yet "
            f"(baselines exist for: {', '.join(KNOBS)})"}


def summarize(sur: dict[str, Any], settings: list[Setting],
              offline_seconds: dict[str, float | None], n_train: int | None,
              problem: str | None) -> dict[str, Any]:
    """Equal accuracy, equal time and breakeven from measured settings (data's own first)."""
    per_query = sur["seconds_batched"]
    accurate = [s for s in settings if s.rel_l2 <= sur["rel_l2"]]
    eq_acc = min(accurate, key=lambda s: s.seconds) if accurate else None
    fast = [s for s in settings if s.seconds <= per_query and math.isfinite(s.rel_l2)]
    eq_time = min(fast, key=lambda s: s.rel_l2) if fast else None
    generation = offline_seconds.get("generation")
    estimated = generation is None and bool(n_train) and bool(settings)
    if estimated:
        generation = n_train * settings[0].seconds
    training = offline_seconds.get("training")
    breakeven: float | str | None = "no equally accurate setting"
    if eq_acc is not None:
        breakeven = None  # unknown until both offline costs are known
        gain = eq_acc.seconds - per_query
        if gain <= 0:
            breakeven = "never"
        elif generation is not None and training is not None:
            breakeven = float(np.ceil((generation + training) / gain))
    return {
        "problem": problem, "knobs": KNOBS.get(problem or "", ""), "surrogate": sur,
        "basis": "seconds per query, the scored samples solved/inferred as one batch",
        "settings": [vars(s) for s in settings],
        "equal_accuracy": vars(eq_acc) if eq_acc else None,
        "equal_time": vars(eq_time) if eq_time else None,
        "offline_seconds": {"generation": generation, "generation_estimated": estimated,
                            "training": training},
        "breakeven_queries": breakeven,
    }


def summary_line(led: dict[str, Any]) -> str:
    """The ledger in one line, for the terminal."""
    if "surrogate" not in led:
        return f"baselines: {led['note']}"
    s = led["surrogate"]
    per_query = s["seconds_batched"]
    text = (f"baselines: surrogate rel L2 {s['rel_l2']:.4g} at {1e3 * per_query:.3g} "
            f"ms/query batched ({1e3 * s['seconds_batch1']:.3g} at batch 1); ")
    eq = led["equal_accuracy"]
    if eq is None:
        text += "no solver setting is as accurate (the surrogate beats the stored grid's solve)"
    else:
        ratio = eq["seconds"] / per_query
        text += (f"equal-accuracy solve {eq['label']}: {eq['rel_l2']:.4g} at "
                 f"{1e3 * eq['seconds']:.3g} ms/query (surrogate "
                 + (f"{ratio:.3g}x faster)" if ratio >= 1 else f"{1 / ratio:.3g}x slower)"))
    et = led["equal_time"]
    text += ("; equal-time solve: none this fast" if et is None else
             f"; equal-time solve {et['label']}: {et['rel_l2']:.4g}")
    b = led["breakeven_queries"]
    text += f"; breakeven: {b if isinstance(b, str) or b is None else f'{b:.0f} queries'}"
    return text.replace("breakeven: None", "breakeven: unknown (no training cost recorded)")
