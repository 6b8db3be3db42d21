"""GNOT's cost against a same-grid FNO: training-step time and saved activations vs points.

For each grid (32², 64², 128² by default) one process times forward + backward + Adam steps
(median over ``--steps`` after a warm-up) of the default ``FNO(1, 1)`` and of ``GNOT(1, 1)``
(with and without activation checkpointing), batch ``--batch``, one torch thread, and counts
the bytes autograd saves for the backward pass (a saved-tensor hook: exact, independent of
the allocator and of machine load). Writes ``<out>/bench_gnot.json`` and prints a table.

``GNOT`` is pdeml's default, the reference code's sizes (``HaoZhongkai/GNOT``, ``args.py``:
one head, one expert with a 4x-wide FFN, 3 residual layers in each encoder and the decoder);
``GNOT (3 gated experts)`` is pdeml's earlier default (4 heads, 3 gated experts of 2x width,
plain 2-layer MLPs).

``--accuracy`` instead trains both on pdeml's Darcy 32² (``--n-train`` / ``--n-test`` samples,
batch 4, AdamW with a one-cycle rate of peak 1e-3 and relative L2 loss, as the reference's
``args.py``) for the same number of optimizer steps and writes their test relative L2 to
``<out>/bench_gnot_accuracy.json``.

    OPENBLAS_NUM_THREADS=1 python scripts/bench_gnot.py --sizes 32 64 128 --steps 5
    OPENBLAS_NUM_THREADS=1 python scripts/bench_gnot.py --accuracy --train-steps 1000
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from pdeml.operators import FNO, GNOT


def saved_bytes(net: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the tensors autograd keeps for the backward of one training forward."""
    total = 0
    seen: set[int] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        key = t.untyped_storage().data_ptr()
        if key not in seen:  # views of one storage count once
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(x).square().mean().backward()
    net.zero_grad(set_to_none=True)
    return total


def step_times(net: torch.nn.Module, x: torch.Tensor, steps: int) -> list[float]:
    """Seconds per training step (forward, backward, Adam), after one warm-up step."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        net(x).square().mean().backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - start)
    return times


# pdeml's GNOT defaults before they became the reference's (args.py: n_head 1, n_experts 1,
# n_inner 4, mlp_layers 3).
GATED = {"n_heads": 4, "n_experts": 3, "mlp_ratio": 2, "mlp_layers": 0}


def models() -> dict[str, Any]:
    variants = {"FNO": lambda: FNO(1, 1), "GNOT": lambda: GNOT(1, 1)}
    params = inspect.signature(GNOT.__init__).parameters
    if "mlp_layers" in params:
        variants["GNOT (3 gated experts)"] = lambda: GNOT(1, 1, **GATED)
    if "checkpoint" in params:
        variants["GNOT (checkpoint)"] = lambda: GNOT(1, 1, checkpoint=True)
    return variants


def accuracy(args: argparse.Namespace) -> None:
    """GNOT's defaults (the reference sizes) vs 3 gated experts at equal steps, Darcy 32²."""
    from pdeml.datasets import generate_dataset
    from pdeml.solvers.problems import DarcyFlow
    from pdeml.trainers.fit import train

    out = Path(args.out)
    data = generate_dataset(DarcyFlow(resolution=32), out / "darcy32",
                            {"train": args.n_train, "test": args.n_test}, seed=0)
    rows = []
    for label, kw in (("GNOT (defaults: reference sizes)", {}),
                      ("GNOT (3 gated experts)", GATED)):
        cfg = {"seed": 0,
               "data": {"train": str(data["train"]), "test": str(data["test"]),
                        "batch_size": 4, "val_fraction": 0.0, "inputs": ["a"],
                        "outputs": ["u"]},
               "model": {"name": "GNOT", **kw},
               "module": {"lr": 1e-3, "weight_decay": 5e-6, "scheduler": "onecycle",
                          "loss": "l2"},
               "trainer": {"max_steps": args.train_steps, "max_epochs": -1,
                           "enable_progress_bar": False}}
        run = out / "runs" / ("gated" if kw else "defaults")
        t0 = time.perf_counter()
        result = train(cfg, run, resume=(run / "checkpoints" / "last.ckpt").exists())
        rows.append({"model": label, "config": kw, "steps": args.train_steps,
                     "test_rel_l2": result["test_l2"],
                     "params": sum(p.numel() for p in GNOT(1, 1, **kw).parameters()),
                     "train_s": time.perf_counter() - t0})
        print(f"{label}: test rel. L2 {rows[-1]['test_rel_l2']:.4f}", flush=True)
    meta = {"n_train": args.n_train, "n_test": args.n_test, "batch": 4,
            "load_avg": os.getloadavg(), "torch": torch.__version__}
    (out / "bench_gnot_accuracy.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                             indent=2))
    print("| model | params | steps | test rel. L2 | train s |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['params']:,} | {r['steps']} | {r['test_rel_l2']:.4f} | "
              f"{r['train_s']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", default="runs/bench_gnot")
    parser.add_argument("--accuracy", action="store_true",
                        help="equal-steps Darcy 32² accuracy instead of the cost table")
    parser.add_argument("--train-steps", type=int, default=1000)
    parser.add_argument("--n-train", type=int, default=500)
    parser.add_argument("--n-test", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.accuracy:
        accuracy(args)
        return
    rows = []
    for n in args.sizes:
        x = torch.randn(args.batch, 1, n, n)
        for name, make in models().items():
            net = make().train()
            mem = saved_bytes(net, x)
            times = step_times(net, x, args.steps)
            rows.append({"grid": n, "points": n * n, "model": name,
                         "params": sum(p.numel() for p in net.parameters()),
                         "step_s": statistics.median(times), "steps": times,
                         "saved_MB": mem / 2**20,
                         "saved_KB_per_point": mem / 1024 / (n * n * args.batch)})
            print(f"grid {n}: {name} {rows[-1]['step_s']:.3f} s/step", flush=True)
    for row in rows:
        fno = next(r for r in rows if r["grid"] == row["grid"] and r["model"] == "FNO")
        row["step_vs_fno"] = row["step_s"] / fno["step_s"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"batch": args.batch, "threads": 1, "load_avg": os.getloadavg(),
            "torch": torch.__version__}
    (out / "bench_gnot.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print("| grid | model | params | s / step | x FNO | saved MB | KB / point |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['grid']}² | {r['model']} | {r['params']:,} | {r['step_s']:.3f} | "
              f"{r['step_vs_fno']:.1f} | {r['saved_MB']:.0f} | {r['saved_KB_per_point']:.1f} |")


if __name__ == "__main__":
    main()
