"""Does a surrogate pay? The baseline ledger of six problems, as a table and a figure.

For each problem: generate train/test data with pdeml's solver (costs recorded beside the
files), train an FNO, export it to ``.pt2`` and ONNX (each card records its latency), and run
``pdeml evaluate``'s baseline ledger (:mod:`pdeml.baselines`): the surrogate's error and cost
per query beside every setting of pdeml's own solver on the same test inputs, the
equal-accuracy and equal-time settings and the breakeven in queries. Problems:

- ``darcy64``, ``darcy128``: piecewise-constant Darcy (the demo's problem), ``a -> u``;
- ``ns64``: Navier-Stokes 64² (nu = 1e-3, FNO forcing), a one-step FNO rolled out over 10
  snapshots half a time unit apart (a query is a whole rollout);
- ``cavity``: CFDBench's lid-driven cavity (BC sweep, 64², pdeml's projection solver), the
  CFD suite's residual one-step FNO rolled out (a query is a whole case);
- ``helmholtz3d``: Helmholtz 3-D on 32³ nodes, ``k -> (Re u, Im u)``, generated with AMG;
- ``burgers``: the FNO paper's Burgers (nu = 0.1, 1024 points), ``u0 -> u(1)``.

Writes ``<out>/baselines.json`` (``--out``, default ``runs/bench/baselines``) after every
problem (a rerun skips problems already there, and generation and training resume),
``<out>/baselines.md`` (the table) and
``<out>/baselines.png`` (error vs cost per query: each solver's settings and their Pareto
front, the surrogate as points). Timings are this machine's, with its threads; compare
within one run.

    .venv/bin/python scripts/bench_baselines.py                      # ~40 min on 2 cores
    .venv/bin/python scripts/bench_baselines.py --problems darcy64 burgers
    .venv/bin/python scripts/bench_baselines.py --quick --out /tmp/b  # smoke sizes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the solvers' BLAS against torch's threads
# Spinning OpenMP threads made 2-thread torch calls 10-60x slower whenever the second core was
# busy (bench_time_to_accuracy.py); passive waiting degrades to one thread's pace instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pdeml.datasets import generate_dataset  # noqa: E402
from pdeml.evaluate import evaluate_run  # noqa: E402
from pdeml.export import card_path_of, export_run  # noqa: E402
from pdeml.solvers.problems import (  # noqa: E402
    Burgers,
    DarcyFlow,
    Helmholtz3D,
    NavierStokes2D,
)
from pdeml.trainers.fit import train  # noqa: E402

FNO2 = {"name": "FNO", "n_modes": [12, 12], "hidden_channels": 32, "n_layers": 4}
MODULE = {"loss": "l2", "lr": 5e-3, "weight_decay": 1e-4, "scheduler": "onecycle"}

# name -> problem factory (quick flag), splits, data/model/epochs of the run
CASES: dict[str, dict[str, Any]] = {
    "darcy64": {
        "problem": lambda q: DarcyFlow(resolution=17 if q else 64),
        "splits": (1000, 100), "quick_splits": (24, 8), "epochs": 30, "batch_size": 16,
        "model": FNO2},
    "darcy128": {
        "problem": lambda q: DarcyFlow(resolution=17 if q else 128),
        "splits": (500, 50), "quick_splits": (24, 8), "epochs": 20, "batch_size": 16,
        "model": FNO2},
    "ns64": {
        "problem": lambda q: NavierStokes2D(resolution=32 if q else 64, final_time=5.0,
                                           n_snapshots=4 if q else 10,
                                           dt=1e-2 if q else 2e-3),
        "splits": (100, 16), "quick_splits": (8, 4), "epochs": 20, "batch_size": 32,
        "model": FNO2,
        "rollout": {"fields": ["w"], "history": 1, "residual": True}},
    "helmholtz3d": {
        "problem": lambda q: Helmholtz3D(resolution=9 if q else 32, solver="amg"),
        "splits": (64, 8), "quick_splits": (8, 4), "epochs": 30, "batch_size": 4,
        "model": {"name": "FNO", "n_modes": [8, 8, 8], "hidden_channels": 16, "n_layers": 4}},
    "burgers": {
        "problem": lambda q: Burgers(resolution=64 if q else 1024, viscosity=0.1,
                                     n_snapshots=1, solver_resolution=256 if q else None,
                                     n_terms=21 if q else 129),
        "splits": (1000, 100), "quick_splits": (24, 8), "epochs": 30, "batch_size": 20,
        "model": {"name": "FNO", "n_modes": [16], "hidden_channels": 64, "n_layers": 4},
        "inputs": ["u0"], "outputs": ["u[-1]"]},
    "cavity": {"suite": True, "quick_splits": (3, 2), "epochs": 20},
}
QUICK_MODEL = {"n_modes": [4, 4], "hidden_channels": 8, "n_layers": 1}


def _model(case: dict[str, Any], quick: bool) -> dict[str, Any]:
    model = dict(case["model"])
    if quick:
        ndim = len(model.get("n_modes", [0, 0]))
        model |= {**QUICK_MODEL, "n_modes": [4] * ndim}
    return model


def run_case(name: str, out: Path, quick: bool) -> dict[str, Any]:
    """Generate, train, export and evaluate one problem; the ledger and the costs."""
    case = CASES[name]
    if case.get("suite"):
        return run_cavity(out, quick)
    n_train, n_test = case["quick_splits" if quick else "splits"]
    problem = case["problem"](quick)
    t0 = time.perf_counter()
    paths = generate_dataset(problem, out / "data" / name, {"train": n_train, "test": n_test},
                             seed=0)
    gen = time.perf_counter() - t0
    run = out / "runs" / name
    data = {"train": str(paths["train"]), "test": str(paths["test"]),
            "batch_size": case["batch_size"], "val_fraction": 0.1}
    if case.get("rollout"):
        data["rollout"] = case["rollout"]
    if case.get("outputs"):
        data |= {"inputs": case["inputs"], "outputs": case["outputs"]}
    cfg = {"seed": 0, "data": data, "model": _model(case, quick), "module": MODULE,
           "trainer": {"max_epochs": 1 if quick else case["epochs"],
                       "enable_progress_bar": False}}
    if not (run / "metrics.json").exists():
        train(cfg, run, overwrite=run.exists())
    return finish(name, run, out, gen)


def run_cavity(out: Path, quick: bool) -> dict[str, Any]:
    """The CFD suite's cavity BC sweep (its own generation and training), then the ledger."""
    from pdeml.suite import run_cfd_suite

    size = None
    if quick:
        size = {"options": {"resolution": 16, "cells": 16, "final_time": 0.5,
                            "n_snapshots": 4},
                "splits": {"train": 3, "val": 1, "test": 2}, "epochs": 1, "batch_size": 4,
                "model": {"FNO": {"n_modes": [4, 4], "hidden_channels": 8, "n_layers": 1}}}
    else:
        size = {"options": {"resolution": 64, "cells": 64, "final_time": 2.0,
                            "n_snapshots": 20},
                "splits": {"train": 40, "val": 5, "test": 8}, "epochs": CASES["cavity"]["epochs"],
                "batch_size": 32,
                "model": {"FNO": {"n_modes": [12, 12], "hidden_channels": 32, "n_layers": 4}}}
    t0 = time.perf_counter()
    run_cfd_suite(out / "cavity_suite", cases=["cavity"], sweeps=["bc"], size=size,
                  operators=["FNO"])
    total = time.perf_counter() - t0
    return finish("cavity", out / "cavity_suite" / "runs" / "cavity_bc" / "FNO", out, total)


def finish(name: str, run: Path, out: Path, gen_seconds: float) -> dict[str, Any]:
    """Export (.pt2 and ONNX: the cards' latency), evaluate with the ledger, the record."""
    exported = {fmt: _export(run, out / "models" / f"{name}.{fmt}") for fmt in ("pt2", "onnx")}
    ev = evaluate_run(run, out=out / "eval" / name, n_plots=0, overwrite=True)
    led = ev["metrics"]["baselines"]
    print(f"{name}: {ev['summary']}", flush=True)
    return {"problem": name, "ledger": led, "exported_latency": exported["pt2"],
            "onnx_latency": exported["onnx"],
            "generation_wall_seconds_this_run": gen_seconds, "summary": ev["summary"]}


def _export(run: Path, model: Path) -> dict[str, Any]:
    """The latency an export's card records (exported once; an error is recorded)."""
    try:
        if not card_path_of(model).exists():
            export_run(run, model, overwrite=model.exists())
        return json.loads(card_path_of(model).read_text()).get("latency") or {}
    except (ValueError, OSError) as err:  # an operator that does not export: say so
        return {"error": str(err).splitlines()[0]}


# -- report ----------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1e3 * seconds:.3g}"


def _per_query(latency: dict[str, Any] | None, led: dict[str, Any]) -> dict[str, Any]:
    """An export's latency per query: one step times the steps of a rollout query."""
    steps = int(led.get("steps", 1))
    return {k: v * steps for k, v in (latency or {}).items() if k.startswith("seconds")}


def table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown: the surrogate beside its equal-accuracy and equal-time solves."""
    head = ("| problem | surrogate rel L2 | surrogate ms/query batched (batch 1; .pt2; ONNX, "
            "batched) "
            "| equal-accuracy solve: ms/query | surrogate speed-up | equal-time solve: rel L2 "
            "| breakeven (queries) |")
    rows = [head, "|" + "---|" * 7]
    for name, r in results.items():
        led = r["ledger"]
        if "surrogate" not in led:
            rows.append(f"| {name} | {led.get('note', '')} |||||| ")
            continue
        s, eq, et = led["surrogate"], led["equal_accuracy"], led["equal_time"]
        ex, ox = (_per_query(r.get(k), led) for k in ("exported_latency", "onnx_latency"))
        b = led["breakeven_queries"]
        speed = "-" if eq is None else f"{eq['seconds'] / s['seconds_batched']:.3g}x"
        rows.append(
            f"| {name} | {s['rel_l2']:.3g} | {_ms(s['seconds_batched'])} "
            f"({_ms(s['seconds_batch1'])}; {_ms(ex.get('seconds_batched'))}; "
            f"{_ms(ox.get('seconds_batched'))}) | "
            + ("none as accurate" if eq is None else f"{eq['label']}: {_ms(eq['seconds'])}")
            + f" | {speed} | "
            + ("none as fast" if et is None else f"{et['label']}: {et['rel_l2']:.3g}")
            + f" | {b if isinstance(b, str) or b is None else f'{b:.3g}'} |")
    return "\n".join(rows) + "\n"


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (cost, error) points no other point beats in both."""
    front, best = [], math.inf
    for cost, err in sorted(points):
        if err < best:
            front.append((cost, err))
            best = err
    return front


def figure(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Error vs cost per query, one panel per problem."""
    names = [n for n, r in results.items() if "surrogate" in r["ledger"]]
    cols = min(3, max(len(names), 1))
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        led = results[name]["ledger"]
        pts = [(s["seconds"], max(s["rel_l2"], 1e-12)) for s in led["settings"]
               if math.isfinite(s["rel_l2"])]
        ax.scatter(*zip(*pts, strict=True), s=12, c="0.6", label="solver settings")
        ax.plot(*zip(*pareto(pts), strict=True), c="k", lw=1, drawstyle="steps-post",
                label="solver Pareto front")  # best error for at most this cost
        s = led["surrogate"]
        ax.scatter([s["seconds_batched"]], [s["rel_l2"]], c="C3", marker="*", s=120,
                   label="surrogate, batched")
        ax.scatter([s["seconds_batch1"]], [s["rel_l2"]], c="C1", marker="o", s=40,
                   label="surrogate, batch 1")
        for fmt, key, c in (("pt2", "exported_latency", "C0"), ("ONNX", "onnx_latency", "C2")):
            ex = _per_query(results[name].get(key), led)
            if "seconds_batched" in ex:
                ax.scatter([ex["seconds_batched"]], [s["rel_l2"]], c=c, marker="D", s=30,
                           label=f"{fmt}, batched")
        ax.set(xscale="log", yscale="log", title=name, xlabel="seconds per query",
               ylabel="relative L2")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no crowded labels
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if names:
        axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/bench/baselines")
    parser.add_argument("--problems", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--quick", action="store_true", help="smoke sizes (tests)")
    parser.add_argument("--rerun", action="store_true",
                        help="evaluate again problems already in the JSON")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "baselines.json"
    doc = json.loads(path.read_text()) if path.exists() else {"results": {}}
    doc["machine"] = {"cpus": os.cpu_count(), "load_at_start": os.getloadavg()[0]}
    for i, name in enumerate(args.problems, 1):
        if name in doc["results"] and not args.rerun:
            print(f"[{i}/{len(args.problems)}] {name}: done before, kept", flush=True)
            continue
        print(f"[{i}/{len(args.problems)}] {name} ...", flush=True)
        doc["results"][name] = run_case(name, out, args.quick)
        doc["load_at_end"] = os.getloadavg()[0]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=str))
        os.replace(tmp, path)
    results = {n: doc["results"][n] for n in CASES if n in doc["results"]}
    (out / "baselines.md").write_text(table(results))
    figure(results, out / "baselines.png")
    print(table(results))
    print(f"wrote {path}, {out / 'baselines.md'}, {out / 'baselines.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
