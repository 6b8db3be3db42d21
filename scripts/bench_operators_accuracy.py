"""Accuracy of FNO, T1, TFNO and MG-TFNO after the same wall-clock training budget.

Each model trains on the same data with the same optimiser settings (AdamW, relative L2
loss) for ``--budget`` seconds (Lightning's ``max_time``). The learning rate follows a
one-cycle shape in *elapsed time* rather than in steps (warm-up over the first 30% of the
budget, cosine decay to zero at its end), so every model completes its schedule whatever its
speed, and machine load changes the number of steps, not the schedule. Reported: test relative
L2, epochs, training seconds, parameter count.

Data (generate first; NS takes a few minutes):

    pdeml generate darcy --out data/bench/darcy --n-train 400 --n-test 100 --set resolution=64
    pdeml generate navier_stokes --out data/bench/ns --n-train 200 --n-test 50 \\
        --set resolution=64 --set final_time=4 --set n_snapshots=4
    .venv/bin/python scripts/bench_operators_accuracy.py --darcy data/bench/darcy \\
        --ns data/bench/ns [--budget 60] [--only FNO T1] [--out PATH.json]

Navier-Stokes maps the initial vorticity ``w0`` to the last snapshot ``w[-1]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from pdeml.datasets import PDEDataModule
from pdeml.operators import build
from pdeml.trainers import OperatorModule

WIDTH, LAYERS = 32, 4
# name -> operator config (in/out channels are added from the data). Comparable widths.
MODELS: dict[str, dict[str, Any]] = {
    "FNO": {"name": "FNO", "n_modes": [16, 16], "hidden_channels": WIDTH, "n_layers": LAYERS},
    "T1": {"name": "T1", "hidden_channels": WIDTH, "n_layers": LAYERS},
    "TFNO": {"name": "TFNO", "n_modes": [16, 16], "hidden_channels": WIDTH,
             "n_layers": LAYERS, "rank": 0.05},
    "MGTFNO": {"name": "MGTFNO", "n_modes": [16, 16], "hidden_channels": WIDTH,
               "n_layers": LAYERS, "rank": 0.05},
    # The MG-TFNO paper's backbone additions (channel MLP with soft-gating skip, joint
    # Tucker factorization); run with --only to measure whether they help.
    "MGTFNO+": {"name": "MGTFNO", "n_modes": [16, 16], "hidden_channels": WIDTH,
                "n_layers": LAYERS, "rank": 0.05, "channel_mlp": True,
                "joint_factorization": True,
                "backbone_kwargs": {"channel_mlp_skip": "soft-gating"}},
}
DEFAULT_MODELS = ["FNO", "T1", "TFNO", "MGTFNO"]
DATASETS = {
    "darcy": {"inputs": None, "outputs": None, "boundary": "replicate", "transform": "dct"},
    "ns": {"inputs": ["w0"], "outputs": ["w[-1]"], "boundary": "circular",
           "transform": "rdft"},
}


def model_config(name: str, dataset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The operator config for ``name`` on ``dataset`` (periodic data get periodic options)."""
    cfg = dict(MODELS[name])
    if cfg["name"] == "MGTFNO":
        cfg["boundary"] = DATASETS[dataset]["boundary"]
    if cfg["name"] == "T1":
        cfg["transform"] = DATASETS[dataset]["transform"]
    return cfg | overrides


class TimeOneCycle(Callback):
    """One-cycle learning rate as a function of elapsed training time."""

    def __init__(self, budget: float, max_lr: float, warmup: float = 0.3) -> None:
        self.budget, self.max_lr, self.warmup = budget, max_lr, warmup
        self.start = 0.0

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        t = min(1.0, (time.perf_counter() - self.start) / self.budget)
        if t < self.warmup:
            lr = self.max_lr * (0.04 + 0.96 * t / self.warmup)
        else:
            lr = self.max_lr * 0.5 * (1 + math.cos(math.pi * (t - self.warmup)
                                                   / (1 - self.warmup)))
        for group in trainer.optimizers[0].param_groups:
            group["lr"] = lr


def train_one(cfg: dict[str, Any], data: dict[str, Any], budget: float, lr: float,
              seed: int) -> dict[str, Any]:
    """Train one model for about ``budget`` seconds; return its test metrics."""
    L.seed_everything(seed, verbose=False)
    dm = PDEDataModule(**data)
    dm.setup("fit")
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    net = build({"name": cfg["name"], "kwargs": kwargs | {"in_channels": dm.in_channels,
                                                          "out_channels": dm.out_channels}})
    module = OperatorModule(net, lr=lr, scheduler="none")
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=100_000,
                        max_time={"seconds": budget}, logger=False,
                        callbacks=[TimeOneCycle(budget, lr)],
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)
    start = time.perf_counter()
    trainer.fit(module, dm)
    seconds = time.perf_counter() - start
    test = trainer.test(module, dm, verbose=False)[0]
    return {"config": cfg, "test_l2": float(test["test_l2"]),
            "epochs_run": int(trainer.current_epoch), "steps": int(trainer.global_step),
            "train_seconds": seconds,
            "params": sum(p.numel() for p in net.parameters())}


def markdown(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Results as a Markdown table, one row per model and dataset."""
    lines = ["| data | model | params | epochs | train s | test rel. L2 | vs FNO |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for data, rows in results.items():
        ref = rows.get("FNO", {}).get("test_l2")
        for name, r in rows.items():
            ratio = f"{r['test_l2'] / ref:.2f}" if ref else "-"
            lines.append(f"| {data} | {name} | {r['params']:,} | {r['epochs_run']} | "
                         f"{r['train_seconds']:.0f} | {r['test_l2']:.4f} | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--darcy", type=Path, help="folder with darcy train.h5 / test.h5")
    ap.add_argument("--ns", type=Path, help="folder with navier_stokes train.h5 / test.h5")
    ap.add_argument("--budget", type=float, default=60.0, help="training seconds per model")
    ap.add_argument("--only", nargs="*", default=DEFAULT_MODELS,
                    help=f"models to run, from {', '.join(MODELS)}")
    ap.add_argument("--set", nargs="*", default=[], metavar="MODEL.KEY=JSON",
                    help='override a model argument, e.g. T1.n_modes=[24,24]')
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: stable on a shared machine)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench/bench_operators_accuracy.json"))
    args = ap.parse_args()
    unknown = sorted(set(args.only) - set(MODELS))
    if unknown:
        ap.error(f"unknown model(s) {unknown}; available: {', '.join(MODELS)}")
    overrides: dict[str, dict[str, Any]] = {name: {} for name in MODELS}
    for item in args.set:
        key, _, value = item.partition("=")
        name, _, arg = key.partition(".")
        if name not in MODELS or not arg:
            ap.error(f"bad --set {item!r}; use MODEL.KEY=JSON")
        overrides[name][arg] = json.loads(value)
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for dataset, folder in (("darcy", args.darcy), ("ns", args.ns)):
        if folder is None:
            continue
        spec = DATASETS[dataset]
        data = {"train": str(folder / "train.h5"), "test": str(folder / "test.h5"),
                "batch_size": args.batch, "val_fraction": 0.0, "seed": args.seed,
                "inputs": spec["inputs"], "outputs": spec["outputs"]}
        results[dataset] = {}
        for name in args.only:
            cfg = model_config(name, dataset, overrides[name])
            results[dataset][name] = train_one(cfg, data, args.budget, args.lr, args.seed)
            print(f"{dataset} {name}: {results[dataset][name]['test_l2']:.4f}", flush=True)
    if not results:
        ap.error("give --darcy and/or --ns")
    report = {"benchmark": "operator_accuracy_equal_time", "budget_s": args.budget,
              "lr": args.lr, "batch": args.batch, "results": results,
              "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                              "python": sys.version.split()[0], "platform": platform.platform(),
                              "loadavg": list(os.getloadavg())}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(markdown(results))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
