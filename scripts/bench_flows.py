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

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/bench_flows.py [--repeats 3]
        [--time-fraction 0.2] [--samples 1] [--out bench_flows.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import numpy as np

from pdeml.solvers.problems import make_problem
from pdeml.solvers.projection import PRESSURE_METHODS

FLOWS = ("cavity", "channel", "step", "cylinder")
SERIES = ("burgers", "navier_stokes", *FLOWS)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--time-fraction", type=float, default=0.2)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--skip-samples", action="store_true", help="only the pressure study")
    ap.add_argument("--out", default="bench_flows.json")
    args = ap.parse_args()

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
    result = {"machine": platform.processor() or platform.machine(),
              "settings": vars(args), "seconds_per_sample": per_sample, "pressure": table}
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
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
