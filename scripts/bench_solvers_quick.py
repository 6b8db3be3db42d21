"""Quick recycling benchmark: GMRES(m) vs GCRO-DR(m, k) on a sequence of related Darcy systems.

Variable-coefficient diffusion ``-div(a grad u) = 1`` on a 64x64 node grid (62^2 unknowns),
``a_i = exp(g0 + s * t_i * g1 + eps * g_i)``: one smooth random log-coefficient ``g0``, moved
along a random direction ``g1`` by a shuffled parameter ``t_i`` and perturbed slightly by
independent ``g_i``. Prints total matvecs, iterations and time per configuration, at rtol 1e-8.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/bench_solvers_quick.py [--n 20] [--res 64]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from pdeml.solvers.fields import gaussian_random_field
from pdeml.solvers.krylov import GCRODR, GMRES, solve_sequence, sort_systems
from pdeml.solvers.problems import DarcyFlow


def make_sequence(n: int, res: int, seed: int, spread: float, eps: float) -> tuple:
    """Coefficient fields (shuffled along the family), matrices and right-hand sides."""
    rng = np.random.default_rng(seed)
    shape = (res, res)
    g0 = gaussian_random_field(shape, rng)
    g1 = gaussian_random_field(shape, rng)
    t = rng.permutation(np.linspace(0.0, 1.0, n))
    fields = np.stack([np.exp(g0 + spread * ti * g1 + eps * gaussian_random_field(shape, rng))
                       for ti in t])
    prob = DarcyFlow(resolution=res, coefficient="lognormal")
    systems = [prob.assemble(a) for a in fields]
    return fields, [A for A, _ in systems], np.stack([b for _, b in systems])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="number of systems")
    ap.add_argument("--res", type=int, default=64, help="nodes per axis")
    ap.add_argument("--m", type=int, default=40)
    ap.add_argument("--k", type=int, nargs="+", default=[20], help="recycled vectors (several ok)")
    ap.add_argument("--spread", type=float, default=0.5, help="size of the family's motion")
    ap.add_argument("--eps", type=float, default=0.05, help="independent perturbation size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precond", nargs="+", default=["ilu", "none"])
    ap.add_argument("--drop-tol", type=float, default=1e-2, help="ILU drop tolerance")
    args = ap.parse_args()
    fields, mats, rhs = make_sequence(args.n, args.res, args.seed, args.spread, args.eps)
    orders = {"given": None, "greedy": sort_systems(fields, "greedy"),
              "fft": sort_systems(fields, "fft", n_features=64)}
    rows = []
    for precond in args.precond:
        for name, order in orders.items():
            solvers = {f"GMRES({args.m})": GMRES(args.m)}
            solvers.update({f"GCRODR({args.m},{k})": GCRODR(args.m, k) for k in args.k})
            for label, solver in solvers.items():
                opts = {"drop_tol": args.drop_tol} if precond == "ilu" else {}
                out = solve_sequence(mats, rhs, solver, order=order, precond=precond, rtol=1e-8,
                                     precond_options=opts)
                row = {"precond": precond, "order": name, "solver": label, **out.summary()}
                row["time"] = round(row["time"], 3)
                rows.append(row)
                print(json.dumps(row))


if __name__ == "__main__":
    main()
