"""GNOT's cost against a same-grid FNO: training-step time and saved activations vs points.

For each grid (32², 64², 128² by default) one process times forward + backward + Adam steps
(median over ``--steps`` after a warm-up) of the default ``FNO(1, 1)`` and of ``GNOT(1, 1)``
(with and without activation checkpointing), batch ``--batch``, one torch thread, and counts
the bytes autograd saves for the backward pass (a saved-tensor hook: exact, independent of
the allocator and of machine load). Writes ``<out>/bench_gnot.json`` and prints a table.

    OPENBLAS_NUM_THREADS=1 python scripts/bench_gnot.py --sizes 32 64 128 --steps 5
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


def models() -> dict[str, Any]:
    variants = {"FNO": lambda: FNO(1, 1), "GNOT": lambda: GNOT(1, 1)}
    if "checkpoint" in inspect.signature(GNOT.__init__).parameters:
        variants["GNOT (checkpoint)"] = lambda: GNOT(1, 1, checkpoint=True)
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", default="runs/bench_gnot")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
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
