"""Online training benchmark: streaming simulations into Lightning vs data on disk.

Measures, on Darcy (direct solver) with a small FNO:

1. samples per second into the trainer (a near-free model, so the loader is the bottleneck)
   for an in-memory dataset, an HDF5 file read lazily, and the online stream;
2. wall time to train one pass over N fresh samples: online vs generate-to-disk-then-train
   (same Dask workers and torch threads), and the share of time the trainer waits on data;
3. the Melissa experiment in small: at the same wall-clock budget (generation included),
   offline training on a fixed dataset vs online training on ever-new samples (FIRO buffer);
   test relative L2 of each on a fixed test file.

Writes JSON (``--out``) and prints a Markdown table with the targets met or missed::

    OPENBLAS_NUM_THREADS=1 python scripts/bench_online.py            # ~10 min on 2 cores
    OPENBLAS_NUM_THREADS=1 python scripts/bench_online.py --quick    # ~2 min smoke run
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from pdeml.datasets import PDEDataModule, generate_split
from pdeml.datasets.online import DataWaitMonitor, OnlineDataModule
from pdeml.operators import FNO
from pdeml.solvers.problems import make_problem
from pdeml.trainers import OperatorModule


class Deadline(L.Callback):
    """Stop training once the wall clock passes ``deadline`` (``time.perf_counter``)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if time.perf_counter() >= self.deadline:
            trainer.should_stop = True


def fit(dm: L.LightningDataModule, args: argparse.Namespace, epochs: int,
        net: dict[str, Any] | None = None, deadline: float | None = None,
        test: bool = False) -> dict[str, Any]:
    """Train; returns wall time, data-wait share, samples seen and test error."""
    L.seed_everything(0, verbose=False)
    kw = net or {"n_modes": (args.modes, args.modes), "hidden_channels": args.width,
                 "n_layers": 4}
    module = OperatorModule(FNO(in_channels=1, out_channels=1, **kw), lr=args.lr,
                            scheduler="none")
    monitor = DataWaitMonitor()
    callbacks = [monitor] + ([Deadline(deadline)] if deadline else [])
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, num_sanity_val_steps=0,
                        limit_val_batches=0, callbacks=callbacks)
    t0 = time.perf_counter()
    trainer.fit(module, dm)
    t_end = time.perf_counter()
    out = {"t_end": t_end, "fit_s": t_end - t0, "wait_fraction": monitor.fraction,
           "loop_s": monitor.wait + monitor.compute, "batches": monitor.n_batches,
           "samples": monitor.n_batches * args.batch_size}
    if test:
        out["test_l2"] = float(trainer.test(module, dm, verbose=False)[0]["test_l2"])
    return out


def online_dm(args: argparse.Namespace, **kw: Any) -> OnlineDataModule:
    options = {"resolution": args.resolution, "solver": "direct"}
    base = {"batch_size": args.batch_size, "n_workers": args.n_workers, "chunk": 8,
            "capacity": 1024, "seed": 0}
    return OnlineDataModule("darcy", options, **{**base, **kw})


def throughput(args: argparse.Namespace, problem: Any, work: Path) -> dict[str, float]:
    """Samples/s into the trainer with a near-free model, per data source."""
    path = generate_split(problem, work / "tp.h5", args.n_throughput, seed=0, progress=False)
    tiny = {"n_modes": (2, 2), "hidden_channels": 2, "n_layers": 1}
    out = {}
    for name, in_memory in (("in_memory", True), ("offline_hdf5", False)):
        dm = PDEDataModule(path, batch_size=args.batch_size, val_fraction=0.0,
                           in_memory=in_memory)
        r = fit(dm, args, epochs=1, net=tiny)
        out[name] = r["samples"] / r["loop_s"]
    n_batches = args.n_throughput // args.batch_size
    r = fit(online_dm(args, batches_per_epoch=n_batches, buffer="fifo"), args, 1, net=tiny)
    out["online"] = r["samples"] / r["loop_s"]
    return out


def end_to_end(args: argparse.Namespace, problem: Any, work: Path) -> dict[str, Any]:
    """One pass over N fresh samples: online vs generate-to-disk-then-train."""
    n = args.n_fresh // args.batch_size * args.batch_size
    t0 = time.perf_counter()
    path = generate_split(problem, work / "e2e.h5", n, seed=0, progress=False,
                          scheduler="local", n_workers=args.n_workers)
    t_gen = time.perf_counter() - t0
    off = fit(PDEDataModule(path, batch_size=args.batch_size, val_fraction=0.0), args, 1)
    offline = {"generate_s": t_gen, "wall_s": off.pop("t_end") - t0, **off}
    t0 = time.perf_counter()
    on = fit(online_dm(args, batches_per_epoch=n // args.batch_size, buffer="fifo",
                       max_samples=n), args, 1)
    online = {"wall_s": on.pop("t_end") - t0, **on}
    return {"n_samples": n, "offline": offline, "online": online,
            "ratio": online["wall_s"] / offline["wall_s"]}


def melissa(args: argparse.Namespace, problem: Any, work: Path, test: Path) -> dict[str, Any]:
    """Equal wall-clock budget: offline on a fixed dataset vs online on fresh samples."""
    t0 = time.perf_counter()
    path = generate_split(problem, work / "fixed.h5", args.offline_size, seed=0,
                          progress=False, scheduler="local", n_workers=args.n_workers)
    t_gen = time.perf_counter() - t0
    dm = PDEDataModule(path, test=test, batch_size=args.batch_size, val_fraction=0.0)
    off = fit(dm, args, epochs=10**6, deadline=t0 + args.budget, test=True)
    offline = {"dataset": args.offline_size, "generate_s": t_gen,
               "wall_s": off.pop("t_end") - t0, **off}
    offline["epochs"] = off["samples"] / args.offline_size
    res = {"budget_s": args.budget, "offline": offline}
    for buffer in args.melissa_buffers:
        t0 = time.perf_counter()
        dm = online_dm(args, test=test, batches_per_epoch=64, buffer=buffer,
                       watermark=args.watermark)
        on = fit(dm, args, epochs=10**6, deadline=t0 + args.budget, test=True)
        res[f"online_{buffer}"] = {"wall_s": on.pop("t_end") - t0, **on}
    return res


def table(res: dict[str, Any]) -> str:
    tp, e2e, mel = res["throughput"], res["end_to_end"], res["melissa"]
    off = mel["offline"]
    wait = e2e["online"]["wait_fraction"]
    rows = [
        "| measure | result | target |",
        "|---|---|---|",
        f"| samples/s into the trainer | in-memory {tp['in_memory']:.0f}, HDF5 "
        f"{tp['offline_hdf5']:.0f}, online {tp['online']:.0f} | - |",
        f"| wall time, {e2e['n_samples']} fresh samples | online {e2e['online']['wall_s']:.1f} s"
        f" vs generate {e2e['offline']['generate_s']:.1f} s + train = "
        f"{e2e['offline']['wall_s']:.1f} s: **{e2e['ratio']:.2f}x** | <= 0.8x: "
        f"{'met' if e2e['ratio'] <= 0.8 else 'missed'} |",
        f"| trainer waits on data (online) | **{100 * wait:.1f}%** (offline "
        f"{100 * e2e['offline']['wait_fraction']:.1f}%) | < 10%: "
        f"{'met' if wait < 0.1 else 'missed'} |",
        f"| test rel. L2 at {mel['budget_s']:.0f} s, offline | {off['dataset']} samples, "
        f"{off['epochs']:.1f} epochs: {off['test_l2']:.4f} | - |",
    ]
    for key in (k for k in mel if k.startswith("online_")):
        on = mel[key]
        rows.append(
            f"| test rel. L2 at {mel['budget_s']:.0f} s, online {key[7:]} | {on['samples']} "
            f"draws, waits {100 * on['wait_fraction']:.0f}%: **{on['test_l2']:.4f}** | "
            f"online < offline: {'met' if on['test_l2'] < off['test_l2'] else 'missed'} |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--n-workers", type=int, default=1, help="Dask generator processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the trainer")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--modes", type=int, default=12)
    p.add_argument("--width", type=int, default=24)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--n-throughput", type=int, default=1024)
    p.add_argument("--n-fresh", type=int, default=2048)
    p.add_argument("--offline-size", type=int, default=512)
    p.add_argument("--watermark", type=int, default=256)
    p.add_argument("--budget", type=float, default=120.0, help="Melissa budget, seconds")
    p.add_argument("--melissa-buffers", nargs="+", default=["firo", "reservoir"])
    p.add_argument("--n-test", type=int, default=256)
    p.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    p.add_argument("--out", default="runs/bench/bench_online.json")
    args = p.parse_args()
    if args.quick:
        args.n_throughput, args.n_fresh, args.offline_size = 256, 256, 128
        args.budget, args.n_test, args.watermark = 45.0, 64, 64
    torch.set_num_threads(args.threads)
    for name in ("distributed", "lightning.pytorch", "pdeml.stream"):
        logging.getLogger(name).setLevel(logging.ERROR)
    problem = make_problem("darcy", resolution=args.resolution, solver="direct")
    work = Path(tempfile.mkdtemp(prefix="bench_online_"))
    try:
        test = generate_split(problem, work / "test.h5", args.n_test, seed=0, split="test",
                              progress=False)
        res = {"settings": {k: v for k, v in vars(args).items() if k != "out"},
               "throughput": throughput(args, problem, work),
               "end_to_end": end_to_end(args, problem, work),
               "melissa": melissa(args, problem, work, test)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(table(res))
    print(f"\n(JSON: {out})")


if __name__ == "__main__":
    main()
