"""CFDBench's protocol end to end: solver -> CFDBench case folders -> import -> FNO -> scores.

For each problem (cavity, channel = tube stand-in, step = dam stand-in, cylinder) and subset
(bc, prop, geo) the script

1. solves evenly spaced cases of CFDBench's case list with pdeml's projection solver and
   writes them in CFDBench's folder layout (:func:`pdeml.datasets.cfdbench.export_cfdbench`;
   cases stop at CFDBench's converged-frame rule or ``final_time``; ``step``, the dam's
   stand-in, runs to ``final_time``, as CFDBench's dam loader keeps every pair);
2. imports them with CFDBench's seeded 8:1:1 case split
   (:func:`pdeml.datasets.cfdbench.import_cfdbench_splits`);
3. trains a one-step FNO (increment of ``u, v`` from the current frame, the mask and the
   varying case parameters) on the training pairs before convergence;
4. scores it on the test pairs with CFDBench's profile (NMSE/MSE/RMSE/MAE, per-batch means
   over batches of 16; the FNO on u and v, as CFDBench scores its FNO, ``out_chan=2``)
   next to CFDBench's identity baseline (u only), and with pdeml's pooled, fluid-masked
   metrics.

Writes ``<out>/bench_cfdbench.json`` and prints the one-step NMSE table. Every stage resumes
(finished cases, imports and trained runs are reused). Sizes are set for a 2-core machine
(``--cases 20 --resolution 32``, FNO 16 wide, 3 layers, 10 epochs); CFDBench itself uses
every case on 64 x 64.

Usage::

    python scripts/bench_cfdbench.py --out bench_cfdbench
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

# solver cells and horizon (s of the solved case) per problem: coarse enough for 2 cores
SOLVE = {"cavity": {"cells": 16, "final_time": 20.0},
         "channel": {"cells": 16, "final_time": 10.0},
         "step": {"cells": 16, "final_time": 10.0},
         "cylinder": {"cells": 20, "final_time": 6.0}}


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def export(problem: str, subset: str, args: argparse.Namespace) -> Path:
    from pdeml.datasets.cfdbench import export_cfdbench
    from pdeml.solvers.problems import make_problem
    from pdeml.solvers.problems.cfdbench_cases import case_list

    p = make_problem(problem, cases="cfdbench", sweep=subset, resolution=args.resolution,
                     **SOLVE[problem])
    n = len(case_list(p.CFDBENCH).cases(subset))
    numbers = np.unique(np.linspace(0, n - 1, min(args.cases, n)).round().astype(int))
    return export_cfdbench(p, args.out / "cases", subset, numbers=numbers.tolist())


def train_fno(paths: dict[str, Path], spec: dict, run: Path, args: argparse.Namespace) -> float:
    from pdeml.trainers.fit import train

    if (run / "metrics.json").exists():
        return float(json.loads((run / "metrics.json").read_text()).get("train_s", 0.0))
    cfg = {"seed": 0,
           "data": {"train": str(paths["train"]), "val": str(paths["val"]),
                    "batch_size": 16, "rollout": spec},
           "model": {"name": "FNO", "n_modes": [12, 12], "hidden_channels": args.width,
                     "n_layers": args.layers},
           # MSE of the increment: CFDBench trains on (N)MSE; pdeml's default relative L2
           # weights the tiny increments of nearly converged pairs as much as the large ones
           "module": {"lr": 3e-3, "loss": args.loss},
           "trainer": {"max_epochs": args.epochs, "enable_progress_bar": False}}
    start = time.perf_counter()
    result = train(cfg, run)
    result["train_s"] = time.perf_counter() - start
    (run / "metrics.json").write_text(json.dumps(result, indent=2))
    return result["train_s"]


def one(problem: str, subset: str, args: argparse.Namespace) -> dict:
    from pdeml.datasets.cfdbench import import_cfdbench_splits
    from pdeml.datasets.timeseries import StepDataset
    from pdeml.evaluate import load_surrogate
    from pdeml.suite import cfdbench_fields, cfdbench_profile, rollout_spec

    t0 = time.perf_counter()
    base = export(problem, subset, args)
    t1 = time.perf_counter()
    data = args.out / "data" / f"{problem}_{subset}"
    paths = {s: data / f"{s}.h5" for s in ("train", "val", "test")}
    if not all(p.exists() for p in paths.values()):
        paths = import_cfdbench_splits(base, data, subsets=subset)
    spec = rollout_spec(problem, paths["train"], "cfdbench")
    run = args.out / "runs" / f"{problem}_{subset}"
    train_s = train_fno(paths, spec, run, args)
    model, _ = load_surrogate(run)
    prof = cfdbench_profile(model, paths["test"], spec, fields=cfdbench_fields("FNO"))
    sizes = {s: len(StepDataset(p, **spec).indices) for s, p in paths.items()}
    pairs = {s: len(StepDataset(p, **spec)) for s, p in paths.items()}
    return {"problem": problem, "subset": subset, "cases": sizes, "pairs": pairs,
            "static": spec["static"], "fno": prof["model"], "identity": prof["identity"],
            "cfdbench_fields": prof["fields"],
            "fno_pooled_masked": {k: prof["pooled"][k] for k in ("nmse", "mse", "rel_l2")},
            "export_s": round(t1 - t0, 1), "train_s": round(train_s, 1),
            "load_after": load()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_cfdbench"))
    ap.add_argument("--problems", nargs="+", default=list(SOLVE))
    ap.add_argument("--subsets", nargs="+", default=["bc", "prop", "geo"])
    ap.add_argument("--cases", type=int, default=20, help="cases per subset (evenly spaced)")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--width", type=int, default=16, help="FNO hidden channels")
    ap.add_argument("--layers", type=int, default=3, help="FNO layers")
    ap.add_argument("--loss", default="mse", help="training loss (pdeml.trainers.losses)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start, load_start = time.perf_counter(), load()
    rows = []
    for problem in args.problems:
        for subset in args.subsets:
            rows.append(one(problem, subset, args))
            r = rows[-1]
            print(f"{problem:8s} {subset:4s} FNO nmse {r['fno']['nmse']:.3e} identity "
                  f"{r['identity']['nmse']:.3e} (export {r['export_s']} s, train "
                  f"{r['train_s']} s, load {r['load_after']})", flush=True)
    summary = {"settings": {**vars(args), "out": str(args.out), "solve": SOLVE},
               "load_start": load_start, "load_end": load(),
               "wall_s": round(time.perf_counter() - start, 1), "rows": rows}
    (args.out / "bench_cfdbench.json").write_text(json.dumps(summary, indent=2))
    print("\n| problem | subset | cases train/val/test | test pairs | FNO NMSE | identity NMSE "
          "| FNO / identity |\n|---|---|---|---|---|---|---|")
    for r in rows:
        c = r["cases"]
        print(f"| {r['problem']} | {r['subset']} | {c['train']}/{c['val']}/{c['test']} | "
              f"{r['pairs']['test']} | {r['fno']['nmse']:.3e} | {r['identity']['nmse']:.3e} | "
              f"{r['fno']['nmse'] / r['identity']['nmse']:.3f} |")
    print(f"\nwall {summary['wall_s']} s, load {load_start} -> {summary['load_end']}")


if __name__ == "__main__":
    main()
