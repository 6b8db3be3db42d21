"""Operator leaderboard: every registered operator under the same CPU budget, two problems.

Problems: piecewise-constant Darcy at 64x64 (``a -> u``) and periodic 2-D Navier-Stokes
(``w0 -> w(T)``). Each operator trains for as many epochs as fit its time budget (estimated
from timed training steps), then its test relative L2, parameter count and measured time per
epoch are recorded. Operators that are not registered (``pdeml.operators.list_operators()``)
are listed as missing. Writes ``<out>/leaderboard.json`` and prints a Markdown table.

    .venv/bin/python scripts/leaderboard.py                # ~15 min on 2 cores
    .venv/bin/python scripts/leaderboard.py --long         # 1000 samples, 10 min per model
    .venv/bin/python scripts/leaderboard.py --budget 60 --models FNO MgNO --problems darcy
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import time
from pathlib import Path
from typing import Any

import torch

from pdeml.datasets import generate_dataset
from pdeml.operators import build, list_operators
from pdeml.solvers.problems import DarcyFlow, NavierStokes2D
from pdeml.trainers.fit import train

OPERATORS = ("FNO", "T1", "TFNO", "MGTFNO", "MgNO", "LSM", "GNOT")
# CPU-sized settings; options an operator does not take are dropped (see model_config).
COMMON = {"n_modes": [12, 12], "hidden_channels": 32, "n_layers": 4}
SETTINGS: dict[str, dict[str, Any]] = {
    "MgNO": {"hidden_channels": 16, "n_layers": 4, "n_levels": 4},
    "LSM": {"hidden_channels": 16, "n_scales": 4, "patch_size": 4},
    "GNOT": {"hidden_channels": 32, "n_layers": 2, "n_heads": 4},
}
# FNO family: 5e-3 (pdeml's Darcy config). GNOT: at 1e-3 it stalled at relative L2 ~1.0 on
# Navier-Stokes (10 epochs), at 3e-4 it reached 0.67.
LR = {"MgNO": 2e-3, "LSM": 1e-3, "GNOT": 3e-4}
PROBLEMS = {
    "darcy": {"problem": lambda: DarcyFlow(resolution=64, coefficient="piecewise_constant"),
              "inputs": ["a"], "outputs": ["u"], "padding": "zeros"},
    "navier_stokes": {
        # nu = 1e-3, w0 -> w(T = 4); solved on 64^2, stored on 32^2 (resolved: no warning).
        "problem": lambda: NavierStokes2D(resolution=32, solver_resolution=64, final_time=4.0,
                                          n_snapshots=1, dt=2e-3),
        "inputs": ["w0"], "outputs": ["w[-1]"], "padding": "circular"},
}


def model_config(name: str, problem: str) -> dict[str, Any]:
    """The model section for ``name``: shared settings it accepts, then its own."""
    cls = type(build({"name": name, "kwargs": {"in_channels": 1, "out_channels": 1}}))
    accepted = inspect.signature(cls.__init__).parameters
    cfg = {k: v for k, v in COMMON.items() if k in accepted}
    cfg.update(SETTINGS.get(name, {}))
    if name == "MgNO":
        cfg["padding"] = PROBLEMS[problem]["padding"]
    return {"name": name, **cfg}


def step_seconds(model: dict[str, Any], shape: tuple[int, ...], batch: int) -> float:
    """Median wall time of a training step (forward, backward, AdamW) on random data."""
    kwargs = {k: v for k, v in model.items() if k != "name"}
    net = build({"name": model["name"], "kwargs": {"in_channels": 1, "out_channels": 1,
                                                   **kwargs}})
    opt = torch.optim.AdamW(net.parameters())
    x = torch.randn(batch, 1, *shape)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        net(x).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    return sorted(times)[1]


def epochs_run(run: Path) -> int:
    """Training epochs the run's CSV log records (test metrics have rows of their own)."""
    with open(run / "logs" / "metrics.csv") as fh:
        epochs = [int(row["epoch"]) for row in csv.DictReader(fh) if row.get("train_loss")]
    return max(epochs) + 1 if epochs else 0


def run_one(name: str, problem: str, data: dict[str, Path], args: argparse.Namespace,
            shape: tuple[int, ...]) -> dict[str, Any]:
    model = model_config(name, problem)
    n_batches = -(-args.n_train // args.batch_size)
    t_epoch = step_seconds(model, shape, args.batch_size) * n_batches
    epochs = int(max(1, min(args.max_epochs, args.budget // max(t_epoch, 1e-3))))
    spec = PROBLEMS[problem]
    cfg = {
        "seed": args.seed,
        "data": {"train": str(data["train"]), "test": str(data["test"]), "val_fraction": 0.0,
                 "batch_size": args.batch_size, "inputs": spec["inputs"],
                 "outputs": spec["outputs"]},
        "model": model,
        "module": {"lr": LR.get(name, 5e-3), "scheduler": "onecycle"},
        "trainer": {"max_epochs": epochs, "enable_progress_bar": False,
                    "max_time": {"seconds": 2 * args.budget}},
    }
    run = args.out / "runs" / f"{problem}_{name}"
    t0 = time.perf_counter()
    result = train(cfg, run, resume=(run / "checkpoints" / "last.ckpt").exists())
    wall = time.perf_counter() - t0
    done = epochs_run(run)
    kwargs = {k: v for k, v in model.items() if k != "name"}
    net = build({"name": name, "kwargs": {"in_channels": 1, "out_channels": 1, **kwargs}})
    return {"operator": name, "problem": problem, "status": "ok", "model": model,
            "rel_l2": result.get("test_l2"), "params": sum(p.numel() for p in net.parameters()),
            "epochs": done, "seconds_per_epoch": wall / max(done, 1), "train_seconds": wall,
            "estimated_seconds_per_epoch": t_epoch}


def make_data(problem: str, args: argparse.Namespace) -> tuple[dict[str, Path], float]:
    t0 = time.perf_counter()
    paths = generate_dataset(PROBLEMS[problem]["problem"](), args.out / "data" / problem,
                             {"train": args.n_train, "test": args.n_test}, seed=args.seed,
                             progress=False)
    return paths, time.perf_counter() - t0


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| problem | operator | test rel. L2 | params | s / epoch (steps) | s / epoch (wall) "
             "| epochs |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['problem']} | {r['operator']} | {r['status']} | | | | |")
            continue
        lines.append(f"| {r['problem']} | {r['operator']} | {r['rel_l2']:.4f} | "
                     f"{r['params']:,} | {r['estimated_seconds_per_epoch']:.1f} | "
                     f"{r['seconds_per_epoch']:.1f} | {r['epochs']} |")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=None,
                    help="training seconds per operator and problem (default 40, --long 600)")
    ap.add_argument("--long", action="store_true", help="1000/200 samples, 600 s per model")
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-epochs", type=int, default=500)
    ap.add_argument("--models", nargs="+", default=list(OPERATORS))
    ap.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on the shared 2-core box two threads made "
                         "training steps 6-10x slower under load, OpenMP oversubscription)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench/leaderboard"))
    args = ap.parse_args()
    args.budget = args.budget or (600.0 if args.long else 40.0)
    args.n_train = args.n_train or (1000 if args.long else 128)
    args.n_test = args.n_test or (200 if args.long else 32)
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(max(1, args.threads))
    registered = set(list_operators())
    rows, data_seconds = [], {}
    for problem in args.problems:
        data, data_seconds[problem] = make_data(problem, args)
        shape = (64, 64) if problem == "darcy" else (32, 32)
        for name in args.models:
            if name not in registered:
                rows.append({"operator": name, "problem": problem, "status": "missing"})
                continue
            rows.append(run_one(name, problem, data, args, shape))
            print(f"{problem} {name}: {rows[-1]['rel_l2']:.4f}", flush=True)
    result = {"benchmark": "leaderboard", "budget_seconds": args.budget,
              "n_train": args.n_train, "n_test": args.n_test, "batch_size": args.batch_size,
              "data_seconds": data_seconds, "torch_threads": torch.get_num_threads(),
              "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "leaderboard.json").write_text(json.dumps(result, indent=2))
    print(table(rows))


if __name__ == "__main__":
    main()
