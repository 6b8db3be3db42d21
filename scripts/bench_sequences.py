"""Fastest data generation per problem: preconditioner reuse, 3-D recycling, and `auto`.

Three parts (``--part``), each timing methods side by side on the same systems and checking
every residual ``norm(b - A x) <= rtol norm(b)`` (rtol 1e-8):

- ``reuse``: a slowly varying sequence, ``log a_t = rho log a_{t-1} + sqrt(1 - rho^2) g_t``
  (AR(1) in time, ``g_t`` independent GRFs), of 2-D Darcy (log-normal) systems in time
  order. AMG+CG with the hierarchy rebuilt for every system vs reused (rebuilt when the
  iteration count grows 1.5x), both warm-started; the same for ILU + GMRES(40).
- ``helmholtz3d``: ``--n`` independent draws of 3-D damped Helmholtz (``helmholtz3d``),
  the generator's own sorted order. Sparse LU per system; GMRES(40)+ILU fresh per system;
  GMRES(40)+ILU reused with warm start; GCRO-DR(40,20)+ILU recycled (fresh or reused ILU).
  LU solves are independent, so ``--lu-n`` of them give its time per system.
- ``auto``: for each ``problem@size`` the generator path (``LinearProblem.solve_systems``)
  with every solver, and ``auto``'s choice against the fastest.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/bench_sequences.py --part reuse
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse.linalg as spla

from pdeml.datasets.writer import sample_rng
from pdeml.solvers.fields import gaussian_random_field
from pdeml.solvers.krylov import GCRODR, GMRES, solve_sequence, sort_systems
from pdeml.solvers.problems import DarcyFlow, make_problem
from pdeml.solvers.problems.linear import AmgSequence, _Direct

SOLVER_NAMES = ("direct", "amg", "gmres", "gcrodr")


def _worst(mats: list, rhs: list, xs: list) -> float:
    return max(float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
               for A, b, x in zip(mats, rhs, xs, strict=True))


def ar1_darcy(res: int, n: int, rho: float, seed: int) -> tuple[list, list]:
    """Darcy systems with an AR(1)-in-time log-normal coefficient."""
    prob = DarcyFlow(resolution=res, coefficient="lognormal")
    rng = np.random.default_rng(seed)
    g = gaussian_random_field((res, res), rng)
    mats, rhs = [], []
    for _ in range(n):
        A, b = prob.assemble(np.exp(g))
        mats.append(A)
        rhs.append(b)
        g = rho * g + np.sqrt(1 - rho**2) * gaussian_random_field((res, res), rng)
    return mats, rhs


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def part_reuse(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for rho in args.rho:
        mats, rhs = ar1_darcy(args.res, args.n, rho, args.seed)
        for reuse in (False, True):
            seq = AmgSequence(1e-8, True, _Direct(), reuse=reuse)
            sec, out = timed(lambda seq=seq, mats=mats, rhs=rhs: [
                seq(A, b) for A, b in zip(mats, rhs, strict=True)])
            rows.append({"part": "reuse", "rho": rho, "res": args.res, "n": args.n,
                         "method": f"amg+cg/{'reuse' if reuse else 'rebuild'}",
                         "s_per_system": sec / args.n, "builds": seq.n_builds,
                         "iters_per_system": float(np.mean([s["solver_iterations"]
                                                            for _, s in out])),
                         "worst_relres": _worst(mats, rhs, [x for x, _ in out])})
            print(json.dumps(rows[-1]), flush=True)
            sec, res = timed(lambda reuse=reuse, mats=mats, rhs=rhs: solve_sequence(
                mats, rhs, GMRES(40), precond="ilu", precond_reuse=reuse, rtol=1e-8))
            rows.append({"part": "reuse", "rho": rho, "res": args.res, "n": args.n,
                         "method": f"ilu+gmres40/{'reuse' if reuse else 'rebuild'}",
                         "s_per_system": sec / args.n, "builds": res.n_rebuilds,
                         "iters_per_system": res.n_iter / args.n,
                         "worst_relres": _worst(mats, rhs, list(res.solutions))})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _krylov_loop(mats: list, rhs: list, order: np.ndarray, solver: Any, reuse: bool,
                 warm: bool) -> list:
    out = solve_sequence(mats, rhs, solver, order=order, precond="ilu", precond_reuse=reuse,
                         warm_start=warm, rtol=1e-8)
    return list(out.solutions)


def part_helmholtz3d(args: argparse.Namespace) -> list[dict[str, Any]]:
    prob = make_problem("helmholtz3d", resolution=args.res3d)
    inputs = [prob.draw_inputs(sample_rng(args.seed, "train", i)) for i in range(args.n)]
    systems = [prob.system(inp) for inp in inputs]
    mats, rhs = [A for A, _ in systems], [b for _, b in systems]
    methods = {
        "lu": lambda order: [spla.splu(mats[i].tocsc()).solve(rhs[i])
                             for i in range(args.lu_n)],
        "gmres40+ilu/fresh": lambda order: _krylov_loop(mats, rhs, order, GMRES(40), False,
                                                        False),
        "gmres40+ilu/reuse+warm": lambda order: _krylov_loop(mats, rhs, order, GMRES(40),
                                                             True, True),
        "gcrodr+ilu/fresh-ilu+recycle": lambda order: _krylov_loop(
            mats, rhs, order, GCRODR(40, 20), False, True),
        "gcrodr+ilu/reuse+recycle+warm": lambda order: _krylov_loop(
            mats, rhs, order, GCRODR(40, 20), True, True),
    }
    rows = []
    for label, fn in methods.items():
        if args.methods and label not in args.methods:
            continue

        def run(fn: Any = fn) -> list:
            order = sort_systems(np.stack([inp["k"] for inp in inputs]), "fft")
            return fn(order)
        sec, xs = timed(run)
        n_run = len(xs)  # LU is timed on the first --lu-n systems only (independent solves)
        rows.append({"part": "helmholtz3d", "res": args.res3d, "n": n_run, "method": label,
                     "s_per_system": sec / n_run,
                     "worst_relres": _worst(mats[:n_run], rhs[:n_run], xs)})
        print(json.dumps(rows[-1]), flush=True)
    best = min((r["s_per_system"] for r in rows if not r["method"].startswith("gcrodr")),
               default=float("nan"))
    for r in rows:
        r["speedup_vs_best_nonrecycling"] = best / r["s_per_system"]
    return rows


def part_auto(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for spec in args.cases:
        name, size = spec.split("@")
        n = args.n_auto.get(spec, args.n)
        prob = make_problem(name, resolution=int(size))
        inputs = [prob.draw_inputs(sample_rng(args.seed, "train", i)) for i in range(n)]
        timings = {}
        for solver in (*SOLVER_NAMES, "auto"):
            p = make_problem(name, resolution=int(size), solver=solver)

            def run(p: Any = p, inputs: list = inputs) -> tuple:
                systems = [p.system(inp) for inp in inputs]
                return p.solve_systems([A for A, _ in systems], [b for _, b in systems],
                                       [p.sort_features(inp) for inp in inputs])
            try:
                sec, (_, stats) = timed(run)
            except (RuntimeError, MemoryError) as err:
                print(f"{spec} {solver}: {err}", file=sys.stderr)
                continue
            timings[solver] = sec / n
            chosen = p.method_for(p.system(inputs[0])[0].shape[0])
            rows.append({"part": "auto", "case": spec, "n": n, "solver": solver,
                         "resolved": chosen, "s_per_system": sec / n,
                         "worst_relres": max(float(s["solver_residual"]) for s in stats)})
            print(json.dumps(rows[-1]), flush=True)
        fastest = min(v for k, v in timings.items() if k != "auto")
        for r in rows:
            if r["case"] == spec:
                r["vs_fastest"] = r["s_per_system"] / fastest
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", nargs="+", default=["reuse", "helmholtz3d", "auto"])
    ap.add_argument("--res", type=int, default=128, help="2-D size of the reuse part")
    ap.add_argument("--rho", type=float, nargs="+", default=[0.99, 0.9])
    ap.add_argument("--res3d", type=int, default=32)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--methods", nargs="*", default=[],
                    help="only these methods of the helmholtz3d part (default: all)")
    ap.add_argument("--lu-n", type=int, default=20,
                    help="systems sparse LU is timed on in the helmholtz3d part")
    ap.add_argument("--cases", nargs="+", default=["darcy@64", "darcy@128", "darcy@256",
                                                    "poisson@128", "helmholtz@128",
                                                    "darcy3d@32", "helmholtz3d@32"])
    ap.add_argument("--n-auto", nargs="*", default=[], metavar="CASE=N")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench/bench_sequences.json")
    args = ap.parse_args()
    args.n_auto = {k: int(v) for k, v in (s.rsplit("=", 1) for s in args.n_auto)}
    load0 = os.getloadavg()
    parts = {"reuse": part_reuse, "helmholtz3d": part_helmholtz3d, "auto": part_auto}
    rows = []
    for part in args.part:
        rows += parts[part](args)
    meta = {"args": vars(args), "loadavg_start": load0, "loadavg_end": os.getloadavg(),
            "python": sys.version.split()[0]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"load {load0[0]:.1f} -> {meta['loadavg_end'][0]:.1f}")
    for r in rows:
        extra = {k: r[k] for k in ("vs_fastest", "speedup_vs_best_nonrecycling") if k in r}
        label = r.get("case", r.get("rho", r.get("res")))
        print(f"| {r['part']} | {label} | {r.get('method', r.get('solver'))} | "
              f"{1e3 * r['s_per_system']:.0f} ms | {r['worst_relres']:.1e} | "
              + " ".join(f"{k}={v:.2f}" for k, v in extra.items()) + " |")


if __name__ == "__main__":
    main()
