"""Training-step speed of pdeml operators against neuraloperator's FNO.

One forward + backward + Adam step per sample, all models in the same process, taking turns
step by step (so machine noise hits every model alike), after a warm-up; medians reported.
Default configuration: 64x64 grid, batch 16, in = out = 1 channel, n_modes (16, 16),
hidden_channels 32, 4 layers; everything else each library's default.

    .venv/bin/python scripts/bench_operators.py [--repeats 40] [--out PATH.json]

Needs the ``bench`` extra (``pip install neuraloperator``); without it the script says so and
exits 0. To add an operator to the table, append a ``(name, factory)`` pair to ``ENTRIES``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pdeml.operators import FNO

REFERENCE = "neuraloperator FNO"


def _neuralop_fno(cfg: dict[str, Any]) -> nn.Module:
    from neuralop.models import FNO as NeuralopFNO

    return NeuralopFNO(n_modes=tuple(cfg["n_modes"]), in_channels=cfg["in_channels"],
                       out_channels=cfg["out_channels"], hidden_channels=cfg["hidden_channels"],
                       n_layers=cfg["n_layers"])


def _pdeml_fno(**overrides: Any) -> Callable[[dict[str, Any]], nn.Module]:
    def factory(cfg: dict[str, Any]) -> nn.Module:
        return FNO(cfg["in_channels"], cfg["out_channels"], n_modes=tuple(cfg["n_modes"]),
                   hidden_channels=cfg["hidden_channels"], n_layers=cfg["n_layers"], **overrides)

    return factory


# (table name, factory(config) -> module). The reference must stay in the list.
ENTRIES: list[tuple[str, Callable[[dict[str, Any]], nn.Module]]] = [
    (REFERENCE, _neuralop_fno),
    ("pdeml FNO", _pdeml_fno()),
    # neuraloperator's default adds a channel MLP to every layer; this row matches that.
    ("pdeml FNO, channel_mlp=True", _pdeml_fno(channel_mlp=True)),
]


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Tensor elements, and real degrees of freedom (a complex element counts twice)."""
    params = list(model.parameters())
    return {"numel": sum(p.numel() for p in params),
            "real": sum(p.numel() * (2 if p.is_complex() else 1) for p in params)}


def _make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], float]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> float:
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    return step


def run(cfg: dict[str, Any], repeats: int, warmup: int) -> dict[str, dict[str, Any]]:
    """Time every entry of ``ENTRIES``; returns per-entry statistics in milliseconds."""
    gen = torch.Generator().manual_seed(0)
    shape = (cfg["batch"], cfg["in_channels"], *[cfg["size"]] * len(cfg["n_modes"]))
    x = torch.randn(shape, generator=gen)
    y = torch.randn((shape[0], cfg["out_channels"], *shape[2:]), generator=gen)
    models, steps = {}, {}
    for name, factory in ENTRIES:
        torch.manual_seed(0)
        models[name] = factory(cfg)
        steps[name] = _make_step(models[name], x, y)
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(1e3 * step())
    out = {}
    for name, ts in times.items():
        q1, _, q3 = statistics.quantiles(ts, n=4)
        out[name] = {"median_ms": statistics.median(ts), "q1_ms": q1, "q3_ms": q3,
                     "min_ms": min(ts), "params": parameter_counts(models[name])}
    ref = out[REFERENCE]["median_ms"]
    for stats in out.values():
        stats["ratio_to_reference"] = stats["median_ms"] / ref
    return out


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """The results as a Markdown table."""
    lines = ["| model | median ms/step | IQR ms | ratio to neuraloperator | params (real) |",
             "|---|---:|---:|---:|---:|"]
    for name, s in results.items():
        lines.append(f"| {name} | {s['median_ms']:.1f} | {s['q1_ms']:.1f}-{s['q3_ms']:.1f} | "
                     f"{s['ratio_to_reference']:.2f} | {s['params']['real']:,} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench/bench_operators.json"))
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    try:
        import neuralop
    except ImportError:
        print("neuraloperator is not installed (pip install neuraloperator); skipping")
        return 0
    torch.set_num_threads(args.threads)
    cfg = {"batch": args.batch, "size": args.size, "in_channels": 1, "out_channels": 1,
           "n_modes": [16, 16], "hidden_channels": 32, "n_layers": 4}
    results = run(cfg, args.repeats, args.warmup)
    report = {
        "benchmark": "operator_train_step", "config": cfg, "repeats": args.repeats,
        "warmup": args.warmup, "results": results,
        "environment": {"torch": torch.__version__, "neuraloperator": neuralop.__version__,
                        "threads": torch.get_num_threads(), "python": sys.version.split()[0],
                        "platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "loadavg": list(os.getloadavg())},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(markdown(results))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
