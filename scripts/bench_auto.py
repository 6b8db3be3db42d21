"""Is ``solver="auto"`` the fastest? Every linear method pdeml has, per problem and size.

For each case (Darcy 2-D piecewise-constant and log-normal at 128²-256², Darcy 3-D and
Helmholtz 3-D at 24³-48³), one shard's sequence of ``--chunk`` systems is drawn the way a
generation job draws it (the first samples of the train split, seed 0), and solved with a
fresh solver state by each method (sparse LU, AMG-CG/GMRES, GMRES(m), GCRO-DR(m, k) with the
problem's preconditioner, at the problem's rtol 1e-8), as a shard would be: seconds per
system, median of ``--repeats`` (sparse LU, which reuses nothing between different matrices,
on the first two systems only above 20 000 unknowns). Then ``auto`` two ways:

- the **static table** (the choice without a plan: :meth:`static_method`);
- the **planner** (:mod:`pdeml.solvers.planner`), which times the candidates on the job's
  first draws: its choice, its planning time, and its seconds per system amortized over a
  job of ``--job`` samples (planning included).

Each ``auto`` is reported as a ratio to the fastest method (1.00 = the fastest; the target of
issue 27 is <= 1.10). Writes ``<out>/auto.json`` (``--out``, default ``runs/bench/auto``)
after every case (a rerun skips finished cases) and prints a Markdown table.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/bench_auto.py            # ~15 min
    .venv/bin/python scripts/bench_auto.py --cases darcy_pwc_128 helmholtz3d_32 --chunk 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from pdeml.datasets.writer import sample_rng
from pdeml.solvers import planner
from pdeml.solvers.problems import Darcy3D, DarcyFlow, Helmholtz3D

LU_SAMPLE_FROM = 20_000  # unknowns from which sparse LU is timed on two systems only
CASES = {
    **{f"darcy_pwc_{n}": (lambda n=n: DarcyFlow(resolution=n)) for n in (128, 192, 256)},
    **{f"darcy_lognormal_{n}": (lambda n=n: DarcyFlow(resolution=n, coefficient="lognormal"))
       for n in (128, 192, 256)},
    **{f"darcy3d_{n}": (lambda n=n: Darcy3D(resolution=n)) for n in (24, 32, 48)},
    **{f"helmholtz3d_{n}": (lambda n=n: Helmholtz3D(resolution=n)) for n in (24, 32, 48)},
}


def time_methods(problem: Any, chunk: int, repeats: int) -> dict[str, float]:
    """Seconds per system of each candidate on one shard's sequence (fresh state per run)."""
    rngs = [sample_rng(0, "train", i) for i in range(chunk)]
    inputs = [problem.draw_inputs(r) for r in rngs]
    systems = [problem.system(inp) for inp in inputs]
    As, bs = [a for a, _ in systems], [b for _, b in systems]
    feats = [problem.sort_features(inp) for inp in inputs]
    out = {}
    for method in planner.candidates(problem, As[0].shape[0]):
        # sparse LU reuses nothing between different matrices: two systems time it as well
        # as sixteen, and a 3-D factorization costs seconds to minutes each
        k = 2 if method == "direct" and As[0].shape[0] > LU_SAMPLE_FROM else chunk
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            problem.solve_systems(As[:k], bs[:k], feats[:k], method=method)
            runs.append((time.perf_counter() - t0) / k)
        out[method] = statistics.median(runs)
        print(f"  {method}: {1e3 * out[method]:.1f} ms/system", flush=True)
    return out


def run_case(name: str, chunk: int, repeats: int, job: int) -> dict[str, Any]:
    problem = CASES[name]()
    seconds = time_methods(problem, chunk, repeats)
    fastest = min(seconds, key=seconds.get)
    n_unknowns = problem.system(problem.draw_inputs(sample_rng(0, "train", 0)))[0].shape[0]
    static = problem.static_method(n_unknowns)
    plan = planner.plan(problem, [sample_rng(0, "train", i) for i in range(planner.TRIAL)])
    amortized = seconds[plan.method] + plan.planning_seconds / job
    return {
        "case": name, "n_unknowns": n_unknowns, "seconds_per_system": seconds,
        "fastest": fastest, "static_choice": static,
        "static_ratio": seconds[static] / seconds[fastest],
        "planned": plan.method, "planning_seconds": plan.planning_seconds,
        "plan_timings": plan.seconds_per_system,
        "planned_ratio": seconds[plan.method] / seconds[fastest],
        "planned_ratio_with_planning": amortized / seconds[fastest], "job": job,
    }


def table(rows: list[dict[str, Any]]) -> str:
    methods = list(planner.CANDIDATES)
    out = ["| case | unknowns | " + " | ".join(f"{m} ms" for m in methods)
           + " | static auto (ratio) | planned auto (ratio; with planning) |",
           "|" + "---|" * (4 + len(methods))]
    for r in rows:
        s = r["seconds_per_system"]
        cells = " | ".join(f"{1e3 * s[m]:.1f}" if m in s else "-" for m in methods)
        out.append(f"| {r['case']} | {r['n_unknowns']} | {cells} | {r['static_choice']} "
                   f"({r['static_ratio']:.2f}) | {r['planned']} ({r['planned_ratio']:.2f}; "
                   f"{r['planned_ratio_with_planning']:.2f}) |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    ap.add_argument("--chunk", type=int, default=16, help="systems per shard (the writer's)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--job", type=int, default=1000, help="samples the planning amortizes over")
    ap.add_argument("--out", default="runs/bench/auto")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "auto.json"
    doc = json.loads(path.read_text()) if path.exists() else {"rows": {}}
    doc["settings"] = {"chunk": args.chunk, "repeats": args.repeats, "job": args.job,
                       "threads": os.environ.get("OPENBLAS_NUM_THREADS", "default")}
    for i, name in enumerate(args.cases, 1):
        if name in doc["rows"]:
            print(f"[{i}/{len(args.cases)}] {name}: done before, kept", flush=True)
            continue
        print(f"[{i}/{len(args.cases)}] {name} (load {os.getloadavg()[0]:.2f})", flush=True)
        doc["rows"][name] = run_case(name, args.chunk, args.repeats, args.job)
        doc["rows"][name]["load"] = os.getloadavg()[0]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, path)
    rows = [doc["rows"][n] for n in CASES if n in doc["rows"]]
    (out / "auto.md").write_text(table(rows))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
