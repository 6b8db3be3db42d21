"""The surrogate inside the solver against every classical method pdeml has (issue #27).

On a sorted sequence of test systems (3-D Helmholtz at 32³ by default, rtol 1e-8), per system:
iterations and wall time *including inference* for

- ``lu``: sparse LU (SuperLU) per system;
- ``amg``: pdeml's ``amg`` (smoothed aggregation, GMRES(40), hierarchy reused, warm start);
- ``cold``: GMRES(40) with the problem's preconditioner (ILU; AMG for SPD Darcy), each
  system alone from zero (no reuse of anything);
- ``gmres``: pdeml's ``gmres`` (ILU reused, warm start along the sequence);
- ``recycled``: pdeml's ``gcrodr`` (GCRO-DR(40, 20) recycling the previous system's space);
- ``guess`` / ``guess+amg``: the trained solution operator's prediction as the initial guess
  (the better of it and the previous solution by residual) for GCRO-DR and for AMG;
- ``space`` / ``space+recycled``: a trained operator predicts ``J`` harmonic Ritz vectors that
  seed GCRO-DR (alone, or first in the space recycled from the previous system);
- ``correct`` / ``correct/4``: a two-level preconditioner whose coarse level is an operator
  trained on random forcing (HINTS), applied at every (every 4th) preconditioner application
  inside flexible GCRO-DR, ILU as the smoother; ``correct+amg``: AMG V-cycles as the
  smoother around the network;
- ``twosweep`` (classical control): the same two-level step with a zero network, i.e. the
  two smoother sweeps with least-squares weights inside flexible GCRO-DR; ``correct`` is
  compared with it, so that the table shows what the network itself adds;
- ``oracle`` (opt-in, ``--methods ...,oracle``): the same two-level correction with an ideal
  network, the exact inverse perturbed by 10% noise, its own solves off the clock: what a
  better network could reach at best.

The three operators are trained through pdeml itself: ``pdeml generate`` writes their data
(the solution fields; ``source=random``; ``save_ritz=J``) and ``pdeml train`` fits FNOs on it
(losses ``l2``, ``l2``, ``subspace``). Generation and training seconds are reported beside the
per-system costs, with the number of systems after which a method's saving repays them.

Every method stops on the true residual at the same rtol; the benchmark checks each solution.
Methods run round-robin over ``--repeats`` passes (medians); quote the load printed at start
and end. Writes ``--out`` (default ``runs/bench/surrogate_solver.json``), a table, and keeps
the data and runs under ``--work`` so that a second call reuses them (resumable):

    .venv/bin/python scripts/bench_surrogate_solver.py              # ~15 min on 2 cores
    .venv/bin/python scripts/bench_surrogate_solver.py --quick      # smoke run (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from pdeml.datasets import generate_dataset  # noqa: E402
from pdeml.evaluate import load_surrogate  # noqa: E402
from pdeml.solvers.hybrid import FieldSurrogate  # noqa: E402
from pdeml.solvers.krylov import GMRES, make_preconditioner  # noqa: E402
from pdeml.solvers.problems import make_problem  # noqa: E402
from pdeml.solvers.problems.linear import seeded_amg  # noqa: E402
from pdeml.trainers.fit import train  # noqa: E402

PROBLEMS = {
    # name: (the coefficient, solution fields, forcing fields, complex)
    "helmholtz3d": (["k"], ["u_real", "u_imag"], ["f_real", "f_imag"], True),
    "darcy": (["a"], ["u"], ["f"], False),
}
FULL = {"resolution": 32, "n_train": 256, "n_test": 16, "epochs": 30, "repeats": 3,
        "modes": 8, "width": 16, "ritz": 8, "batch_size": 4}
QUICK = {"resolution": 10, "n_train": 8, "n_test": 4, "epochs": 1, "repeats": 1,
         "modes": 3, "width": 4, "ritz": 2, "batch_size": 4}
RTOL = 1e-8
METHODS = ("lu", "amg", "cold", "gmres", "recycled", "twosweep", "guess", "guess+amg",
           "space", "space+recycled", "correct", "correct/4", "correct+amg")
CLASSICAL = ("lu", "amg", "cold", "gmres", "recycled", "twosweep")
# Opt-in (--methods ...,oracle): the two-level correction with an ideal network, the exact
# inverse (sparse LU, factorized before the clock) perturbed by ORACLE_NOISE relative noise;
# its time excludes the oracle's own solves. It bounds what a better network could reach.
OPTIONAL = ("oracle",)
ORACLE_NOISE = 0.1


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load() -> float:
    return os.getloadavg()[0]


# -- data and training, through pdeml ---------------------------------------------------------
def datasets(s: dict[str, Any], work: Path, problem: str) -> dict[str, Path]:
    """The three training files (solution, random forcing, Ritz vectors); cached."""
    base = {"resolution": s["resolution"], "solver": "gcrodr", "rtol": RTOL}
    kinds = {"solution": {}, "forcing": {"source": "random"},
             "ritz": {"save_ritz": s["ritz"]}}
    paths = {}
    for name, extra in kinds.items():
        path = work / "data" / name / "train.h5"
        if not path.exists():
            t0 = time.perf_counter()
            generate_dataset(make_problem(problem, **base, **extra), path.parent,
                             {"train": s["n_train"]}, seed=1, progress=False)
            log(f"generated {name}: {s['n_train']} samples in {time.perf_counter() - t0:.0f} s")
        paths[name] = path
    return paths


def cost_seconds(path: Path) -> float:
    """Generation wall seconds from the file's cost sidecar (0 when absent)."""
    from pdeml.datasets import read_costs

    try:
        return float((read_costs(path) or {}).get("wall_seconds_total", 0.0))
    except (OSError, ValueError, KeyError):
        return 0.0


def channels(path: Path, var: str) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        return int(f[var].shape[1])


def runs(s: dict[str, Any], work: Path, data: dict[str, Path], problem: str
         ) -> dict[str, dict[str, Any]]:
    """Train the three operators with ``pdeml train``; cached (a finished run is reused)."""
    coef, sol, forcing, cplx = PROBLEMS[problem]
    dim = 3 if problem.endswith("3d") else 2
    specs = {
        "solution": (coef, sol, "l2"),
        "forcing": (coef + forcing, sol, "l2"),
        "ritz": (coef, ["ritz_real", "ritz_imag"] if cplx else ["ritz"],
                 {"name": "subspace", "parts": 2 if cplx else 1}),
    }
    out = {}
    for name, (inputs, outputs, loss) in specs.items():
        folder = work / "runs" / name
        done = folder / "metrics.json"
        t0 = time.perf_counter()
        if not done.exists():
            cfg = {"seed": 0,
                   "data": {"train": str(data[name]), "inputs": inputs, "outputs": outputs,
                            "batch_size": s["batch_size"]},
                   "model": {"name": "FNO", "n_modes": [s["modes"]] * dim,
                             "hidden_channels": s["width"], "n_layers": 4},
                   "module": {"lr": 5e-3, "scheduler": "onecycle", "loss": loss},
                   "trainer": {"max_epochs": s["epochs"]}}
            train(cfg, folder, overwrite=True)
            log(f"trained {name} in {time.perf_counter() - t0:.0f} s")
        metrics = json.loads(done.read_text())
        out[name] = {"run": str(folder), "inputs": inputs, "outputs": outputs,
                     "train_seconds": _train_seconds(metrics),
                     "generate_seconds": cost_seconds(data[name]),
                     "final": _final_losses(folder / "logs" / "metrics.csv")}
    return out


def _final_losses(csv: Path) -> dict[str, float]:
    """The last logged ``train_loss`` (the run's own loss: relative L2, or the subspace loss
    for Ritz vectors) and ``val_l2``."""
    import csv as csvlib

    last: dict[str, float] = {}
    if csv.exists():
        with csv.open() as f:
            for row in csvlib.DictReader(f):
                last |= {k: float(v) for k, v in row.items()
                         if k in ("train_loss", "val_l2") and v not in ("", None)}
    return last


def _train_seconds(metrics: dict[str, Any]) -> float:
    return float(metrics.get("cost", {}).get("train_wall_seconds", 0.0))


def surrogates(trained: dict[str, dict[str, Any]], ritz: int) -> dict[str, FieldSurrogate]:
    out = {}
    for name, r in trained.items():
        # The best checkpoint is chosen by val_l2, which means little for Ritz vectors (their
        # loss is the subspace loss): that run's last checkpoint is used.
        module, _ = load_surrogate(Path(r["run"]) / "checkpoints" / "last.ckpt"
                                   if name == "ritz" else r["run"])
        outputs = list(r["outputs"])
        if name == "ritz":  # the loader stacks each variable's modes in turn as channels
            outputs = [f"{v}:{i}" for v in r["outputs"] for i in range(ritz)]
        out[name] = FieldSurrogate(module, r["inputs"], outputs)
    return out


# -- the test sequence and the methods --------------------------------------------------------
def test_sequence(s: dict[str, Any], problem: str) -> tuple[Any, list, list, list, list]:
    p = make_problem(problem, resolution=s["resolution"], rtol=RTOL)
    inputs = [p.draw_inputs(np.random.default_rng(10_000 + i)) for i in range(s["n_test"])]
    systems = [p.system(inp) for inp in inputs]
    return p, inputs, [A for A, _ in systems], [b for _, b in systems], [
        p.sort_features(inp) for inp in inputs]


def run_method(name: str, s: dict[str, Any], seq: tuple, sur: dict[str, FieldSurrogate]
               ) -> dict[str, Any]:
    p, inputs, As, bs, feats = seq
    p = make_problem(p.name, resolution=s["resolution"], rtol=RTOL,
                     solver="gcrodr" if name not in ("lu", "amg", "gmres") else
                     {"lu": "direct"}.get(name, name))
    fs = None
    uses = {"guess": ("solution", "guess", {}), "guess+amg": ("solution", "guess", {}),
            "space": ("ritz", "space", {"space_mode": "replace"}),
            "space+recycled": ("ritz", "space", {"space_mode": "augment"}),
            "correct": ("forcing", "correct", {"every": 1}),
            "correct/4": ("forcing", "correct", {"every": 4}),
            "correct+amg": ("forcing", "correct", {"every": 1})}
    if name in ("oracle", "twosweep"):
        return _oracle(p, inputs, As, bs, feats, zero=name == "twosweep")
    t0 = time.perf_counter()
    if name == "cold":  # the problem's preconditioner, built per system; zero start
        its, xs = [], []
        for A, b in zip(As, bs, strict=True):
            M = seeded_amg(A) if p.spd else make_preconditioner("ilu", A)
            res = GMRES(40, orthog="cgs2").solve(A, b, rtol=RTOL, M=M, maxiter=20_000)
            its.append(res.n_iter)
            xs.append(res.x)
    else:
        if name in uses:
            model, use, opts = uses[name]
            fs = sur[model]
            fs.seconds, fs.calls = 0.0, 0
            if name == "guess+amg":
                p.solver = "amg"
            if name == "correct+amg":  # AMG V-cycles as the smoother around the network
                p.precond = "amg"
            p.use_surrogate(fs, use=use, **opts)
        xs, st = p.solve_systems(As, bs, feats, inputs=inputs)
        its = [int(x["solver_iterations"]) for x in st]
    wall = time.perf_counter() - t0
    res = [float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
           for A, b, x in zip(As, bs, xs, strict=True)]
    if max(res) > RTOL * (1 + 1e-6):
        raise RuntimeError(f"{name}: a solution misses rtol ({max(res):.2e})")
    n = len(As)
    return {"seconds_per_system": wall / n, "iterations": its,
            "inference_per_system": (fs.seconds / n) if fs else 0.0,
            "max_residual": max(res)}


def _oracle(p: Any, inputs: list, As: list, bs: list, feats: list, zero: bool = False
            ) -> dict[str, Any]:
    """The two-level method with an ideal network (exact inverse + noise), or with none
    (``zero``: the least-squares-weighted two smoother sweeps alone, the classical control
    that tells what the network itself adds)."""
    import scipy.sparse.linalg as spla

    from pdeml.solvers.hybrid import Hooks, solve_with_surrogate
    from pdeml.solvers.krylov import sort_systems

    lus = {} if zero else {id(inp): spla.splu(A.tocsc())
                           for inp, A in zip(inputs, As, strict=True)}
    rng = np.random.default_rng(0)

    def correct(inp: dict, r: np.ndarray) -> np.ndarray:
        if zero:
            return np.zeros_like(r)
        e = lus[id(inp)].solve(r)
        scale = ORACLE_NOISE * np.linalg.norm(e) / np.sqrt(e.size)
        return e + scale * rng.standard_normal(e.shape)

    hooks = Hooks(correct=correct)
    order = sort_systems(np.stack(feats), "fft")
    t0 = time.perf_counter()
    xs, st = solve_with_surrogate(As, bs, inputs, order, hooks, "correct", rtol=RTOL,
                                  precond=seeded_amg if p.spd else "ilu", spd=p.spd)
    wall = time.perf_counter() - t0 - hooks.seconds
    res = [float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
           for A, b, x in zip(As, bs, xs, strict=True)]
    return {"seconds_per_system": wall / len(As), "iterations": [s["iterations"] for s in st],
            "inference_per_system": 0.0, "max_residual": max(res)}


def summarize(rows: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, reps in rows.items():
        out[name] = {
            "ms_per_system": 1e3 * statistics.median(r["seconds_per_system"] for r in reps),
            "inference_ms": 1e3 * statistics.median(r["inference_per_system"] for r in reps),
            "iterations_mean": float(np.mean(reps[-1]["iterations"])),
            "iterations": reps[-1]["iterations"], "repeats": len(reps),
            "max_residual": max(r["max_residual"] for r in reps)}
    return out


def targets(summary: dict[str, dict[str, Any]], trained: dict[str, Any]) -> dict[str, Any]:
    classical = {m: summary[m]["ms_per_system"] for m in CLASSICAL if m in summary}
    fastest = min(classical, key=classical.get)
    hybrid = {m: summary[m]["ms_per_system"] for m in summary
              if m not in CLASSICAL + OPTIONAL}
    best = min(hybrid, key=hybrid.get)
    it = {m: summary[m]["iterations_mean"] for m in summary}
    same = {"guess": "recycled", "guess+amg": "amg", "space": "recycled",
            "space+recycled": "recycled", "correct": "twosweep", "correct/4": "recycled",
            "correct+amg": "amg", "oracle": "twosweep"}
    model = {"guess": "solution", "guess+amg": "solution", "space": "ritz",
             "space+recycled": "ritz", "correct": "forcing", "correct/4": "forcing",
             "correct+amg": "forcing", "oracle": "forcing"}
    per = {}
    for m, base in same.items():
        if m not in summary:
            continue
        saving = classical[fastest] - summary[m]["ms_per_system"]
        offline = trained[model[m]]["train_seconds"] + trained[model[m]]["generate_seconds"]
        per[m] = {"iteration_ratio_vs_same_krylov": it[base] / max(it[m], 1e-9),
                  "iteration_ratio_vs_cold": it["cold"] / max(it[m], 1e-9),
                  "speedup_vs_fastest_classical": classical[fastest]
                  / summary[m]["ms_per_system"],
                  "offline_seconds": offline,
                  "breakeven_systems": (offline / (saving / 1e3)) if saving > 0 else None}
    return {"fastest_classical": fastest, "fastest_classical_ms": classical[fastest],
            "best_surrogate": best, "best_surrogate_ms": hybrid[best],
            "speedup": classical[fastest] / hybrid[best], "per_method": per}


def table(summary: dict[str, dict[str, Any]], tg: dict[str, Any]) -> str:
    lines = ["| method | ms/system (incl. inference) | inference ms | mean iterations | "
             "x fastest classical | iterations: same Krylov / this |",
             "|---|---|---|---|---|---|"]
    per = tg["per_method"]
    for m, r in summary.items():
        sp = tg["fastest_classical_ms"] / r["ms_per_system"]
        ratio = per.get(m, {}).get("iteration_ratio_vs_same_krylov")
        lines.append(f"| {m} | {r['ms_per_system']:.0f} | {r['inference_ms']:.0f} | "
                     f"{r['iterations_mean']:.1f} | {sp:.2f} | "
                     f"{'' if ratio is None else f'{ratio:.2f}'} |")
    lines.append(f"\nfastest classical: {tg['fastest_classical']} "
                 f"({tg['fastest_classical_ms']:.0f} ms); best surrogate method: "
                 f"{tg['best_surrogate']} ({tg['best_surrogate_ms']:.0f} ms), "
                 f"{tg['speedup']:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench/surrogate_solver.json"))
    ap.add_argument("--work", type=Path, default=None,
                    help="data and runs (default: next to --out); reused when present")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for the tests")
    ap.add_argument("--problem", choices=sorted(PROBLEMS), default="helmholtz3d")
    ap.add_argument("--prepare", action="store_true",
                    help="only generate the data and train the operators (no timing: it can "
                         "run beside other work), then stop")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help=f"change a setting ({', '.join(FULL)})")
    args = ap.parse_args(argv)
    s = dict(QUICK if args.quick else FULL)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in s or not value:
            ap.error(f"--set takes KEY=VALUE with KEY one of {', '.join(s)}, got {item!r}")
        s[key] = int(value)
    if args.problem == "darcy" and not args.quick and "resolution" not in str(args.set):
        s["resolution"] = 256
    methods = [m for m in args.methods.split(",") if m]
    bad = [m for m in methods if m not in METHODS + OPTIONAL]
    if bad or not set(CLASSICAL) <= set(methods):
        ap.error(f"--methods: unknown {bad} or missing a classical method (need "
                 f"{', '.join(CLASSICAL)})")
    s["problem"] = args.problem
    # the data and runs depend on these settings: one folder per combination
    tag = "{problem}-{resolution}-n{n_train}-m{modes}w{width}e{epochs}b{batch_size}r{ritz}"
    work = (args.work or args.out.with_suffix("")) / tag.format(**s)
    work.mkdir(parents=True, exist_ok=True)
    partial = work / "results.partial.json"
    state = json.loads(partial.read_text()) if partial.exists() else {}
    if state.get("settings") not in (None, s):
        log(f"{partial} was made with other settings: starting over")
        state = {}
    state["settings"] = s
    log(f"load at start {load():.2f}; settings {s}")
    data = datasets(s, work, args.problem)
    trained = runs(s, work, data, args.problem)
    if args.prepare:
        log(f"prepared {work}; run again without --prepare to time the methods")
        return 0
    sur = surrogates(trained, s["ritz"])
    seq = test_sequence(s, args.problem)
    rows: dict[str, list] = state.setdefault("rows", {})
    for rep in range(s["repeats"]):
        for m in methods:
            if len(rows.get(m, [])) > rep or (m == "lu" and rep and rows.get(m)):
                continue  # done; LU (seconds per system, no variance to speak of) runs once
            r = run_method(m, s, seq, sur)
            rows.setdefault(m, []).append(r)
            log(f"pass {rep + 1}/{s['repeats']} {m}: {1e3 * r['seconds_per_system']:.0f} ms/"
                f"system, iterations {r['iterations']}")
            tmp = partial.with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            os.replace(tmp, partial)
    summary = summarize({m: rows[m] for m in methods})
    tg = targets(summary, trained)
    result = {"settings": s, "rtol": RTOL, "problem": args.problem,
              "machine": {"node": platform.node(), "cpus": os.cpu_count(),
                          "load_end": round(load(), 2)},
              "trained": trained, "methods": summary, "targets": tg}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, args.out)
    print(table(summary, tg))
    log(f"load at end {load():.2f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
