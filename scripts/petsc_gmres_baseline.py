"""PETSc GMRES(m) on systems saved by a pdeml benchmark (run with the system Python).

Not part of pdeml: a compiled baseline for ``scripts/bench_krylov_cost.py`` and
``scripts/bench_skr.py``. It needs ``petsc4py`` (Debian: ``apt-get install python3-petsc4py``,
then ``PETSC_DIR=/usr/lib/petscdir/petsc3.18/x86_64-linux-gnu-real``) and NumPy only.

Input: a folder with ``A{i}_indptr.npy``, ``A{i}_indices.npy``, ``A{i}_data.npy``, ``b{i}.npy``
and ``job.json`` (``{"n_systems", "restart", "rtol", "max_it", "pc", "fixed_iterations"}``).
Output on stdout: one JSON line per system with iterations, seconds and the true relative
residual. With ``fixed_iterations`` the tolerance is unreachable, so exactly ``max_it``
iterations run and seconds / iterations is the cost per iteration.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
from petsc4py import PETSc


def load(folder: Path, i: int):
    parts = [np.load(folder / f"A{i}_{k}.npy") for k in ("indptr", "indices", "data")]
    n = len(parts[0]) - 1
    A = PETSc.Mat().createAIJ(size=(n, n), csr=(parts[0].astype(PETSc.IntType),
                                                parts[1].astype(PETSc.IntType), parts[2]))
    A.assemble()
    b = PETSc.Vec().createWithArray(np.load(folder / f"b{i}.npy"))
    return A, b


def main() -> None:
    folder = Path(sys.argv[1])
    job = json.loads((folder / "job.json").read_text())
    for i in range(job["n_systems"]):
        A, b = load(folder, i)
        ksp = PETSc.KSP().create()
        ksp.setOperators(A)
        ksp.setType("gmres")
        ksp.setGMRESRestart(job["restart"])
        ksp.getPC().setType(job["pc"])
        if job["pc"] == "ilu":
            ksp.getPC().setFactorLevels(0)
        if job.get("fixed_iterations"):
            ksp.setTolerances(rtol=1e-300, atol=1e-300, max_it=job["max_it"])
        else:
            ksp.setTolerances(rtol=job["rtol"], atol=0.0, max_it=job["max_it"])
        x = b.duplicate()
        ksp.setUp()
        start = time.perf_counter()
        ksp.solve(b, x)
        seconds = time.perf_counter() - start
        r = b.duplicate()
        A.mult(x, r)
        r.aypx(-1.0, b)
        print(json.dumps({"system": i, "iterations": ksp.getIterationNumber(),
                          "seconds": seconds, "relres": r.norm() / b.norm(),
                          "reason": int(ksp.getConvergedReason())}), flush=True)


if __name__ == "__main__":
    main()
