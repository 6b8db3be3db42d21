"""Cost per GMRES(40) iteration: pdeml (cgs2 / dgks / mgs) vs scipy and PETSc, same system.

The system is SKR's Darcy matrix (corrected, ``pdeml.solvers.problems.skr_darcy``) at
``--size`` nodes per axis, unpreconditioned, so that the Krylov kernel and not a
preconditioner is timed. Each solver runs ``--iters`` iterations (the tolerance is out of
reach) ``--repeat`` times; the median seconds / iterations is reported. PETSc runs in a
subprocess of the system Python (``scripts/petsc_gmres_baseline.py``, needs Debian's
``python3-petsc4py``); when it is missing that row is left out and said so. A cProfile of
one pdeml run gives the split of the time per function.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/bench_krylov_cost.py --size 80
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse.linalg as spla

from pdeml.solvers.krylov import GCRODR, GMRES
from pdeml.solvers.problems.skr_darcy import skr_coefficients, skr_darcy_system

PETSC_DIR = "/usr/lib/petscdir/petsc3.18/x86_64-linux-gnu-real"


def pdeml_run(A: Any, b: np.ndarray, iters: int, orthog: str, solver: str) -> tuple[float, int]:
    obj = GMRES(40, orthog=orthog) if solver == "gmres" else GCRODR(40, 20, orthog=orthog)
    start = time.perf_counter()
    res = obj.solve(A, b, rtol=1e-300, maxiter=iters)
    return time.perf_counter() - start, res.n_iter


def scipy_run(A: Any, b: np.ndarray, iters: int) -> tuple[float, int]:
    count = [0]

    def cb(_: Any) -> None:
        count[0] += 1

    start = time.perf_counter()
    spla.gmres(A, b, rtol=1e-300, atol=0.0, restart=40, maxiter=iters // 40,
               callback=cb, callback_type="pr_norm")
    return time.perf_counter() - start, count[0]


def petsc_run(A: Any, b: np.ndarray, iters: int, repeat: int) -> list[tuple[float, int]] | str:
    exe = "/usr/bin/python3"
    script = Path(__file__).with_name("petsc_gmres_baseline.py")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(repeat):
            for key in ("indptr", "indices", "data"):
                np.save(folder / f"A{i}_{key}.npy", getattr(A, key))
            np.save(folder / f"b{i}.npy", b)
        job = {"n_systems": repeat, "restart": 40, "rtol": 1e-300, "max_it": iters,
               "pc": "none", "fixed_iterations": True}
        (folder / "job.json").write_text(json.dumps(job))
        env = {**os.environ, "PETSC_DIR": os.environ.get("PETSC_DIR", PETSC_DIR)}
        try:
            out = subprocess.run([exe, str(script), str(folder)], capture_output=True,
                                 text=True, env=env, timeout=600, check=True)
        except (OSError, subprocess.SubprocessError) as err:
            return f"PETSc baseline unavailable: {err}"
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return [(r["seconds"], r["iterations"]) for r in rows]


def profile_split(A: Any, b: np.ndarray, iters: int, orthog: str) -> list[dict[str, Any]]:
    """Top functions by own time in one pdeml GMRES(40) run."""
    prof = cProfile.Profile()
    prof.enable()
    GMRES(40, orthog=orthog).solve(A, b, rtol=1e-300, maxiter=iters)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    rows = []
    for (file, line, name), v in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(file).name}:{line}({name})", "calls": v[1],
                     "own_s": v[2], "share": v[2] / total})
    return sorted(rows, key=lambda r: -r["own_s"])[:10]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=80, help="SKR grid side S (S-2)^2 unknowns")
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default="runs/bench/bench_krylov_cost.json")
    args = ap.parse_args()
    coef = skr_coefficients(1, args.size, np.random.default_rng(0))[0]
    A, b = skr_darcy_system(coef, corrected=True)
    load0 = os.getloadavg()
    runs: dict[str, list[tuple[float, int]]] = {}
    note = ""
    for _ in range(args.repeat):  # interleaved, so that load changes hit every method
        petsc = petsc_run(A, b, args.iters, 1)
        if isinstance(petsc, str):
            note = petsc
        else:
            runs.setdefault("PETSc 3.18 KSPGMRES(40) (C)", []).extend(petsc)
        for orthog in ("cgs2", "dgks", "mgs"):
            runs.setdefault(f"pdeml GMRES(40) {orthog}", []).append(
                pdeml_run(A, b, args.iters, orthog, "gmres"))
        runs.setdefault("pdeml GCRO-DR(40,20) cgs2", []).append(
            pdeml_run(A, b, args.iters, "cgs2", "gcrodr"))
        runs.setdefault("scipy gmres(restart=40)", []).append(scipy_run(A, b, args.iters))
    rows = []
    for label, vals in runs.items():
        per = [t / max(k, 1) for t, k in vals]
        rows.append({"method": label, "us_per_iter_median": 1e6 * float(np.median(per)),
                     "us_per_iter_all": [1e6 * p for p in per], "iterations": vals[0][1]})
    ref = next((r for r in rows if r["method"].startswith("PETSc")), None)
    for r in rows:
        if ref:
            r["ratio_vs_petsc"] = r["us_per_iter_median"] / ref["us_per_iter_median"]
    meta = {"n": A.shape[0], "nnz": A.nnz, "size": args.size, "iters": args.iters,
            "repeat": args.repeat, "loadavg_start": load0, "loadavg_end": os.getloadavg(),
            "python": sys.version.split()[0], "note": note,
            "threads": os.environ.get("OPENBLAS_NUM_THREADS")}
    prof = profile_split(A, b, args.iters, "cgs2")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows, "profile_cgs2": prof},
                                         indent=1))
    print(f"n = {A.shape[0]}, load {load0[0]:.2f} -> {meta['loadavg_end'][0]:.2f} {note}")
    print("| method | us/iteration (median) | vs PETSc |\n|---|---|---|")
    for r in rows:
        ratio = f"{r['ratio_vs_petsc']:.2f}x" if "ratio_vs_petsc" in r else ""
        print(f"| {r['method']} | {r['us_per_iter_median']:.0f} | {ratio} |")
    print("\nprofile (pdeml GMRES cgs2, own time):")
    for p in prof[:8]:
        print(f"  {p['share']:6.1%}  {p['calls']:6d}  {p['function']}")


if __name__ == "__main__":
    main()
