"""Generation cost of the time-dependent problems, and where the flow solver spends its time.

Part 1: seconds per sample of every time-dependent problem at its default settings (one sample
each; ``--samples`` for more, median reported).

Part 2: for the four CFDBench-style flows (default case, Re = 100 where defined), the share of
the run spent in pressure solves for each pressure solver, all on the same case:

- ``lu``: sparse LU once per case, reused every step (factorization reuse; the default);
- ``spsolve``: a fresh sparse direct solve every step (no reuse);
- ``gcrodr``: recycled GCRO-DR(30, 10), ILU built once, warm start (subspace recycling);
- ``gmres``: GMRES(30) with the same ILU and warm start, no recycling.

The methods take turns per repeat (noise hits them alike); medians reported. Part 2 runs the
first ``--time-fraction`` of each default horizon, because the no-reuse runs are slow.

Part 3: the two-phase flows ``tube`` and ``dam`` (volume of fluid; the pressure matrix
changes every step with the density), default case, first ``--time-fraction`` of the horizon,
for each method of the variable-coefficient pressure sequence
(:mod:`pdeml.solvers.vof_pressure`); times are CPU seconds of the process (see
:func:`two_phase_run`):

- ``lu``: a fresh sparse LU every step;
- ``amg``: AMG hierarchy rebuilt every step, preconditioned CG, warm start;
- ``amg-reuse``: the hierarchy reused until the CG count grows 1.5x (+2) past its first count;
- ``gcrodr``: recycled GCRO-DR(20, 8) with the same reused-AMG preconditioner.

``--two-phase-only`` skips parts 1 and 2 (and times one 64x64 stored sample of each two-phase
problem instead).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/bench_flows.py [--repeats 3]
        [--time-fraction 0.2] [--samples 1] [--two-phase-only] [--out bench_flows.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Any

import numpy as np

from pdeml.solvers.problems import make_problem
from pdeml.solvers.projection import PRESSURE_METHODS
from pdeml.solvers.vof_pressure import VOF_PRESSURE_METHODS

FLOWS = ("cavity", "channel", "step", "cylinder")
TWO_PHASE = ("tube", "dam")
SERIES = ("burgers", "navier_stokes", *FLOWS, *TWO_PHASE)


def sample_seconds(name: str, n: int) -> float:
    """Median wall time of ``problem.sample`` at default settings."""
    problem = make_problem(name)
    times = []
    for i in range(n):
        start = time.perf_counter()
        problem.sample(np.random.default_rng(i))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pressure_run(name: str, method: str, fraction: float) -> dict[str, Any]:
    """One default case of ``name`` with ``method``: total and pressure-solve seconds."""
    problem = make_problem(name, pressure_solver=method)
    params = {k: v[0] for k, v in problem.PARAMS.items()}
    start = time.perf_counter()
    flow = problem.build_solver(params)
    n_steps = int(round(fraction * problem.final_time / flow.dt))
    for _ in range(n_steps):
        flow.step()
    total = time.perf_counter() - start
    pressure = flow.poisson.seconds + flow.poisson.setup_seconds
    return {"total_s": total, "pressure_s": pressure, "steps": n_steps,
            "unknowns": int(flow.fluid.sum()), "krylov_iterations": flow.poisson.n_iter,
            "max_divergence": float(np.abs(flow.divergence()).max())}


def two_phase_sample_seconds(name: str, n: int) -> dict[str, float]:
    """Median wall and CPU seconds of one stored default sample (CPU time: this process
    only, the honest figure on a shared machine where wall time includes waiting)."""
    problem = make_problem(name)
    wall, cpu = [], []
    for i in range(n):
        start, start_cpu = time.perf_counter(), time.process_time()
        problem.sample(np.random.default_rng(i))
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"wall_s": statistics.median(wall), "cpu_s": statistics.median(cpu)}


def two_phase_run(name: str, method: str, fraction: float) -> dict[str, Any]:
    """One default two-phase case with ``method``: total, pressure seconds, iterations.

    ``total_s`` is CPU time of this process; the pressure share divides the pressure solver's
    wall time by the run's wall time (both inflated alike by waiting on a busy machine)."""
    problem = make_problem(name, pressure_solver=method)
    params = {k: v[0] for k, v in problem.PARAMS.items()}
    start, start_cpu = time.perf_counter(), time.process_time()
    flow = problem.build_solver(params)
    flow.advance_to(fraction * problem.final_time)
    wall = time.perf_counter() - start
    total = time.process_time() - start_cpu
    stats = flow.pressure_stats()
    return {"total_s": total, "wall_s": wall, "pressure_share": stats["seconds"] / wall,
            "pressure_s": stats["seconds"] * total / wall, "steps": flow.n_steps,
            "unknowns": int(flow.fluid.sum()), "krylov_iterations": stats["iterations"],
            "amg_builds": stats["builds"], "water_volume": flow.water_volume(),
            "max_divergence": float(np.abs(flow.divergence()).max())}


def two_phase_table(repeats: int, fraction: float) -> list[dict[str, Any]]:
    """Part 3: every variable-density pressure method on tube and dam, medians of repeats."""
    runs = {(f, m): [] for f in TWO_PHASE for m in VOF_PRESSURE_METHODS}
    for rep in range(repeats):
        for name in TWO_PHASE:
            for method in VOF_PRESSURE_METHODS:
                runs[name, method].append(two_phase_run(name, method, fraction))
        print(f"two-phase repeat {rep + 1}/{repeats} done", flush=True)
    table = []
    for (name, method), rows in runs.items():
        total = statistics.median(r["total_s"] for r in rows)
        pressure = statistics.median(r["pressure_s"] for r in rows)
        table.append({"problem": name, "method": method, "total_s": total,
                      "pressure_s": pressure,
                      "pressure_share": statistics.median(r["pressure_share"] for r in rows),
                      "wall_s": statistics.median(r["wall_s"] for r in rows),
                      **{k: rows[0][k] for k in ("steps", "unknowns", "krylov_iterations",
                                                 "amg_builds", "water_volume")},
                      "max_divergence": max(r["max_divergence"] for r in rows)})
    for name in TWO_PHASE:
        rows = [r for r in table if r["problem"] == name]
        best = min(rows, key=lambda r: r["total_s"])
        for r in rows:
            r["winner"] = r is best
    return table


def print_two_phase(table: list[dict[str, Any]]) -> None:
    print(f"\n{'problem':7s} {'method':10s} {'unknowns':>8s} {'steps':>6s} {'CPU s':>8s} "
          f"{'pressure s':>10s} {'share':>6s} {'vs lu':>6s} {'iters/step':>10s} "
          f"{'builds':>6s} {'max div':>8s}")
    for row in table:
        lu = next(r for r in table if r["problem"] == row["problem"] and r["method"] == "lu")
        mark = " *" if row["winner"] else ""
        print(f"{row['problem']:7s} {row['method']:10s} {row['unknowns']:8d} {row['steps']:6d} "
              f"{row['total_s']:8.2f} {row['pressure_s']:10.2f} {row['pressure_share']:6.0%} "
              f"{row['total_s'] / lu['total_s']:6.2f} "
              f"{row['krylov_iterations'] / row['steps']:10.1f} {row['amg_builds']:6d} "
              f"{row['max_divergence']:8.1e}{mark}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--time-fraction", type=float, default=0.2)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--skip-samples", action="store_true", help="only the pressure study")
    ap.add_argument("--two-phase-only", action="store_true",
                    help="only tube and dam: one stored sample each and the pressure methods")
    ap.add_argument("--out", default="bench_flows.json")
    args = ap.parse_args()

    if args.two_phase_only:
        main_two_phase(args)
        return
    per_sample = {}
    if not args.skip_samples:
        for name in SERIES:
            per_sample[name] = sample_seconds(name, args.samples)
            print(f"{name:14s} {per_sample[name]:7.2f} s/sample", flush=True)

    runs: dict[str, dict[str, list[dict[str, Any]]]] = {f: {m: [] for m in PRESSURE_METHODS}
                                                         for f in FLOWS}
    for rep in range(args.repeats):
        for name in FLOWS:
            for method in PRESSURE_METHODS:
                runs[name][method].append(pressure_run(name, method, args.time_fraction))
        print(f"repeat {rep + 1}/{args.repeats} done", flush=True)

    table = []
    for name in FLOWS:
        for method in PRESSURE_METHODS:
            rows = runs[name][method]
            total = statistics.median(r["total_s"] for r in rows)
            pressure = statistics.median(r["pressure_s"] for r in rows)
            table.append({"problem": name, "method": method, "total_s": total,
                          "pressure_s": pressure, "pressure_share": pressure / total,
                          "steps": rows[0]["steps"], "unknowns": rows[0]["unknowns"],
                          "krylov_iterations": rows[0]["krylov_iterations"],
                          "max_divergence": max(r["max_divergence"] for r in rows)})
    two_phase = two_phase_table(args.repeats, args.time_fraction)
    result = {"machine": platform.processor() or platform.machine(),
              "settings": vars(args), "seconds_per_sample": per_sample, "pressure": table,
              "two_phase_pressure": two_phase}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)

    print(f"\n{'problem':9s} {'method':8s} {'unknowns':>8s} {'steps':>6s} {'total s':>8s} "
          f"{'pressure s':>10s} {'share':>6s} {'vs lu':>6s} {'iters/step':>10s} {'max div':>8s}")
    for row in table:
        lu = next(r for r in table if r["problem"] == row["problem"] and r["method"] == "lu")
        print(f"{row['problem']:9s} {row['method']:8s} {row['unknowns']:8d} {row['steps']:6d} "
              f"{row['total_s']:8.2f} {row['pressure_s']:10.2f} {row['pressure_share']:6.0%} "
              f"{row['total_s'] / lu['total_s']:6.2f} "
              f"{row['krylov_iterations'] / row['steps']:10.1f} {row['max_divergence']:8.1e}")
    print_two_phase(two_phase)
    print(f"\nwritten {args.out}")


def main_two_phase(args: argparse.Namespace) -> None:
    """Seconds per stored 64x64 sample of tube and dam, then the pressure-method table."""
    load = [os.getloadavg()[0]]
    per_sample = {}
    if not args.skip_samples:
        for name in TWO_PHASE:
            per_sample[name] = two_phase_sample_seconds(name, args.samples)
            print(f"{name:14s} {per_sample[name]['cpu_s']:7.2f} CPU s/sample "
                  f"({per_sample[name]['wall_s']:.1f} s wall)", flush=True)
    table = two_phase_table(args.repeats, args.time_fraction)
    load.append(os.getloadavg()[0])
    result = {"machine": platform.processor() or platform.machine(), "settings": vars(args),
              "load_average_start_end": load, "seconds_per_sample": per_sample,
              "two_phase_pressure": table}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print_two_phase(table)
    print(f"\nload average (1 min) at start / end: {load[0]:.1f} / {load[1]:.1f}")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
