"""Data-generation solvers on Darcy sequences: recycling vs GMRES(40), gcrotmk, LU and AMG.

Each sequence is ``--n`` Darcy systems (the ``darcy`` generator's own piecewise-constant
coefficients, independent draws) at every ``--sizes`` node resolution and every ``--rtol``.
Methods (``P`` is each preconditioner of ``--preconds``; ``none`` only up to ``--none-max``):

- ``spsolve``: scipy sparse LU per system; ``pyamg``: smoothed aggregation + CG per system;
- ``gmres40/P``: GMRES(40), the SKR baseline: a fresh ``P`` per system, zero initial guess;
- ``gcrotmk/P``: scipy ``gcrotmk`` (m=40, k=20) recycling through ``CU`` (``discard_C``),
  a fresh ``P`` per system;
- ``gcrodr/P/sort+reuse``, ``gcrodr/P/nosort+reuse``, ``gcrodr/P/sort+rebuild``: pdeml
  GCRO-DR(40, 20) with warm start, with/without sorting, with ``P`` reused (rebuilt when the
  iteration count grows 1.5x) or rebuilt for every system;
- ``gmres40/P/sort+reuse``: pdeml GMRES(40) with sorting, ``P`` reuse and warm start.

Matvecs count every product with ``A`` (GCRO-DR's ``k`` products refreshing ``C = A U`` per
new matrix included); time per system includes preconditioner builds and sorting, not
assembly. JSON goes to ``--out``; a Markdown table is printed.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/bench_solvers.py --sizes 64 128 --n 20
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse.linalg as spla

from pdeml.datasets.writer import sample_rng
from pdeml.solvers.krylov import GCRODR, GMRES, make_preconditioner, solve_sequence, sort_systems
from pdeml.solvers.problems import DarcyFlow


def make_systems(res: int, n: int, seed: int) -> tuple[np.ndarray, list, list]:
    """Coefficient fields, matrices and right-hand sides of ``n`` independent Darcy draws."""
    prob = DarcyFlow(resolution=res)
    fields = np.stack([prob.draw_coefficient(sample_rng(seed, "bench", i)) for i in range(n)])
    systems = [prob.assemble(a) for a in fields]
    return fields, [A for A, _ in systems], [b for _, b in systems]


def _counted(A: Any, counter: list[int]) -> spla.LinearOperator:
    def mv(v: np.ndarray) -> np.ndarray:
        counter[0] += 1
        return A @ v
    return spla.LinearOperator(A.shape, matvec=mv, dtype=A.dtype)


def run_direct(mats: list, rhs: list, rtol: float) -> dict[str, Any]:
    start = time.perf_counter()
    xs = [spla.spsolve(A.tocsc(), b) for A, b in zip(mats, rhs, strict=True)]
    return {"time": time.perf_counter() - start, "matvecs": 0, "xs": xs}


def run_pyamg(mats: list, rhs: list, rtol: float) -> dict[str, Any]:
    from pdeml.solvers.krylov.precond import amg_hierarchy  # pyamg's setup, repeatable

    start, matvecs, xs = time.perf_counter(), 0, []
    for A, b in zip(mats, rhs, strict=True):
        res: list[float] = []
        xs.append(amg_hierarchy(A).solve(b, tol=rtol, maxiter=1000, accel="cg",
                                         residuals=res))
        matvecs += len(res)  # one product per CG iteration plus the initial residual
    return {"time": time.perf_counter() - start, "matvecs": matvecs, "xs": xs}


def run_per_system(mats: list, rhs: list, rtol: float, precond: str, kind: str
                   ) -> dict[str, Any]:
    """GMRES(40) (SKR's baseline) or scipy gcrotmk with CU recycling; a fresh P each time."""
    start, counter, xs, cu = time.perf_counter(), [0], [], []
    gmres = GMRES(40)
    for A, b in zip(mats, rhs, strict=True):
        M = make_preconditioner(precond, A)
        if kind == "gmres40":
            res = gmres.solve(A, b, rtol=rtol, M=M)
            counter[0] += res.n_matvec
            xs.append(res.x)
        else:
            x, _ = spla.gcrotmk(_counted(A, counter), b, rtol=rtol, M=M, m=40, k=20,
                                maxiter=100000, CU=cu, discard_C=True)
            xs.append(x)
    return {"time": time.perf_counter() - start, "matvecs": counter[0], "xs": xs}


def run_sequence(fields: np.ndarray, mats: list, rhs: list, rtol: float, precond: str,
                 solver: str, sort: bool, reuse: bool) -> dict[str, Any]:
    """pdeml sequence solving: warm start always; sorting and P reuse as asked."""
    start = time.perf_counter()
    order = sort_systems(fields, "fft") if sort else np.arange(len(mats))
    make = (lambda: GCRODR(40, 20)) if solver == "gcrodr" else (lambda: GMRES(40))
    if reuse or precond == "none":
        out = solve_sequence(mats, rhs, make(), order=order, precond=precond, rtol=rtol)
        return {"time": time.perf_counter() - start, "matvecs": out.n_matvec,
                "xs": list(out.solutions), "fallbacks": out.n_fallbacks}
    # solve_sequence always reuses P; a fresh P per system needs the plain loop.
    solver_obj, xs, prev, n_mv = make(), [None] * len(mats), None, 0
    for i in order:
        res = solver_obj.solve(mats[i], rhs[i], x0=prev, rtol=rtol,
                               M=make_preconditioner(precond, mats[i]))
        xs[i], prev, n_mv = res.x, res.x, n_mv + res.n_matvec
    return {"time": time.perf_counter() - start, "matvecs": n_mv, "xs": xs, "fallbacks": 0}


def methods_for(res: int, preconds: list[str], none_max: int
                ) -> list[tuple[str, Any]]:
    """(label, runner(fields, mats, rhs, rtol)) for one size."""
    out: list[tuple[str, Any]] = [
        ("spsolve", lambda f, m, r, t: run_direct(m, r, t)),
        ("pyamg", lambda f, m, r, t: run_pyamg(m, r, t)),
    ]
    for P in preconds:
        if P == "none" and res > none_max:
            continue
        out += [
            (f"gmres40/{P}", lambda f, m, r, t, P=P: run_per_system(m, r, t, P, "gmres40")),
            (f"gcrotmk/{P}", lambda f, m, r, t, P=P: run_per_system(m, r, t, P, "gcrotmk")),
            (f"gmres40/{P}/sort+reuse",
             lambda f, m, r, t, P=P: run_sequence(f, m, r, t, P, "gmres", True, True)),
            (f"gcrodr/{P}/sort+reuse",
             lambda f, m, r, t, P=P: run_sequence(f, m, r, t, P, "gcrodr", True, True)),
            (f"gcrodr/{P}/nosort+reuse",
             lambda f, m, r, t, P=P: run_sequence(f, m, r, t, P, "gcrodr", False, True)),
        ]
        if P != "none":
            out.append((f"gcrodr/{P}/sort+rebuild",
                        lambda f, m, r, t, P=P: run_sequence(f, m, r, t, P, "gcrodr", True,
                                                             False)))
    return out


def bench_size(res: int, n: int, rtols: list[float], args: argparse.Namespace) -> list[dict]:
    fields, mats, rhs = make_systems(res, n, args.seed)
    rows = []
    for rtol in rtols:
        preconds = args.large_preconds if res >= args.large_from else args.preconds
        for label, runner in methods_for(res, preconds, args.none_max):
            out = runner(fields, mats, rhs, rtol)
            worst = max(float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
                        for A, b, x in zip(mats, rhs, out["xs"], strict=True))
            row = {"res": res, "n_systems": n, "rtol": rtol, "method": label,
                   "ms_per_system": 1e3 * out["time"] / n, "matvecs_per_system": out["matvecs"] / n,
                   "worst_relres": worst, "fallbacks": out.get("fallbacks", 0)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def add_speedups(rows: list[dict]) -> None:
    """Matvec ratio vs GMRES(40) with the same P; time ratio vs the best of spsolve, pyamg."""
    key = {(r["res"], r["rtol"], r["method"]): r for r in rows}
    for r in rows:
        parts = r["method"].split("/")
        base = key.get((r["res"], r["rtol"], "gmres40/" + parts[1])) if len(parts) > 1 else None
        if base and r["matvecs_per_system"]:
            r["matvec_ratio_vs_gmres40"] = base["matvecs_per_system"] / r["matvecs_per_system"]
        best = min(key[(r["res"], r["rtol"], m)]["ms_per_system"] for m in ("spsolve", "pyamg"))
        r["speedup_vs_best_direct_amg"] = best / r["ms_per_system"]


def table(rows: list[dict]) -> str:
    head = ("| N | rtol | method | systems | ms/system | matvecs/system | matvec gain vs "
            "GMRES(40) | speedup vs best(spsolve, pyamg) | worst rel. res. |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        gain = r.get("matvec_ratio_vs_gmres40")
        lines.append(f"| {r['res']}^2 | {r['rtol']:.0e} | {r['method']} | {r['n_systems']} | "
                     f"{r['ms_per_system']:.1f} | {r['matvecs_per_system']:.1f} | "
                     f"{'' if gain is None else f'{gain:.1f}x'} | "
                     f"{r['speedup_vs_best_direct_amg']:.2f}x | {r['worst_relres']:.1e} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    ap.add_argument("--n", type=int, default=100, help="systems per sequence")
    ap.add_argument("--n-at", nargs="*", default=[], metavar="RES=N",
                    help="other sequence lengths per size, e.g. 512=10")
    ap.add_argument("--rtol", type=float, nargs="+", default=[1e-5, 1e-8])
    ap.add_argument("--preconds", nargs="+", default=["none", "ilu", "amg"])
    ap.add_argument("--none-max", type=int, default=128,
                    help="largest size run without a preconditioner")
    ap.add_argument("--large-from", type=int, default=256,
                    help="from this size on only --large-preconds are run")
    ap.add_argument("--large-preconds", nargs="+", default=["amg"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench/bench_solvers.json")
    args = ap.parse_args()
    n_at = {int(k): int(v) for k, v in (item.split("=") for item in args.n_at)}
    rows = []
    for res in args.sizes:
        rows += bench_size(res, n_at.get(res, args.n), args.rtol, args)
    add_speedups(rows)
    meta = {"machine": platform.machine(), "python": platform.python_version(),
            "args": vars(args)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
