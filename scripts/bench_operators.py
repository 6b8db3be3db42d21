"""Training-step speed and size of pdeml's spectral operators, and FNO against neuraloperator.

One forward + backward + Adam step per sample, all models in the same process, taking turns
step by step (so machine noise hits every model alike), after a warm-up; medians reported.

Two tables:

* ``spectral``: FNO, T1, TFNO and MG-TFNO at comparable widths (hidden_channels 32, 4 layers,
  16 modes per axis; TFNO / MG-TFNO Tucker rank 0.05) at 64^2, 128^2 and 256^2 (``--sizes``),
  batch ``--spectral-batch``; times relative to pdeml's FNO.
* ``neuraloperator``: 64x64 grid (``--size``), batch 16, in = out = 1 channel, n_modes (16, 16),
  hidden_channels 32, 4 layers; everything else each library's default. Needs the ``bench``
  extra (``pip install neuraloperator``); skipped with a note when it is absent.

    .venv/bin/python scripts/bench_operators.py [--threads 1] [--repeats 40] [--out PATH.json]

``--contractions`` adds a third table: one factorized spectral layer (32 channels, 16 modes),
forward + backward, contracting through the factors against rebuilding the dense weight,
for Tucker / CP / TT at ranks 0.05 and 0.5 (how ``implementation="auto"`` was set).

To add an operator to a table, append a ``(name, factory)`` pair to ``ENTRIES`` or
``SPECTRAL_ENTRIES``.
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

from pdeml.operators import FNO, MGTFNO, T1, TFNO
from pdeml.operators.layers.factorized import FactorizedSpectralConv, factorized_cost

REFERENCE = "neuraloperator FNO"
SPECTRAL_REFERENCE = "FNO"


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


def _spectral(cls: type, **overrides: Any) -> Callable[[dict[str, Any]], nn.Module]:
    def factory(cfg: dict[str, Any]) -> nn.Module:
        kwargs = {"hidden_channels": cfg["hidden_channels"], "n_layers": cfg["n_layers"],
                  "n_modes": tuple(cfg["n_modes"])} | overrides
        return cls(cfg["in_channels"], cfg["out_channels"], **kwargs)

    return factory


# Comparable widths: every model 32 channels, 4 layers, 16 modes per axis (for T1, 16 DCT
# modes, which span the frequencies |k| <= 8 that FNO's n_modes=16 keeps).
SPECTRAL_ENTRIES: list[tuple[str, Callable[[dict[str, Any]], nn.Module]]] = [
    (SPECTRAL_REFERENCE, _spectral(FNO)),
    ("T1", _spectral(T1)),
    ("TFNO (Tucker 0.05)", _spectral(TFNO, rank=0.05)),
    ("TFNO (Tucker 0.05, joint)", _spectral(TFNO, rank=0.05, joint_factorization=True)),
    ("MG-TFNO (2x2 patches, 1 level)", _spectral(MGTFNO, rank=0.05)),
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


def run(cfg: dict[str, Any], repeats: int, warmup: int,
        entries: list[tuple[str, Callable[[dict[str, Any]], nn.Module]]] | None = None,
        reference: str = REFERENCE) -> dict[str, dict[str, Any]]:
    """Time every entry (``ENTRIES`` by default); returns per-entry statistics in ms."""
    entries = ENTRIES if entries is None else entries
    gen = torch.Generator().manual_seed(0)
    shape = (cfg["batch"], cfg["in_channels"], *[cfg["size"]] * len(cfg["n_modes"]))
    x = torch.randn(shape, generator=gen)
    y = torch.randn((shape[0], cfg["out_channels"], *shape[2:]), generator=gen)
    models, steps = {}, {}
    for name, factory in entries:
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
    ref = out[reference]["median_ms"]
    for stats in out.values():
        stats["ratio_to_reference"] = stats["median_ms"] / ref
    return out


def spectral_markdown(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The spectral table: one row per model and size."""
    lines = ["| model | grid | median ms/step | IQR ms | ratio to FNO | params | "
             "FNO params / params |", "|---|---|---:|---:|---:|---:|---:|"]
    for size, rows in results.items():
        ref_params = rows[SPECTRAL_REFERENCE]["params"]["real"]
        for name, s in rows.items():
            lines.append(
                f"| {name} | {size}^2 | {s['median_ms']:.1f} | {s['q1_ms']:.1f}-{s['q3_ms']:.1f} "
                f"| {s['ratio_to_reference']:.2f} | {s['params']['real']:,} | "
                f"{ref_params / s['params']['real']:.1f} |")
    return "\n".join(lines)


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """The results as a Markdown table."""
    lines = ["| model | median ms/step | IQR ms | ratio to neuraloperator | params (real) |",
             "|---|---:|---:|---:|---:|"]
    for name, s in results.items():
        lines.append(f"| {name} | {s['median_ms']:.1f} | {s['q1_ms']:.1f}-{s['q3_ms']:.1f} | "
                     f"{s['ratio_to_reference']:.2f} | {s['params']['real']:,} |")
    return "\n".join(lines)


def _environment() -> dict[str, Any]:
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": sys.version.split()[0], "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "loadavg": list(os.getloadavg())}


def _spectral_suite(args: argparse.Namespace) -> dict[str, Any]:
    cfg = {"batch": args.spectral_batch, "in_channels": 1, "out_channels": 1,
           "n_modes": [16, 16], "hidden_channels": 32, "n_layers": 4}
    results = {}
    for size in args.sizes:
        # Fewer repeats on big grids keep the default run within a few minutes.
        repeats = max(5, args.repeats * 64 * 64 // (size * size))
        results[str(size)] = run(cfg | {"size": size}, repeats, min(args.warmup, 2),
                                 SPECTRAL_ENTRIES, SPECTRAL_REFERENCE)
        print(f"spectral {size}^2 done", flush=True)
    return {"config": cfg, "sizes": args.sizes, "results": results}


def contraction_suite(repeats: int = 10) -> list[dict[str, Any]]:
    """Time both contraction paths of a factorized spectral layer (see the module notes)."""
    rows = []
    for size, batch in ((64, 16), (128, 4)):
        x = torch.randn(batch, 32, size, size, requires_grad=True)
        convs = {}
        for kind in ("tucker", "cp", "tt"):
            for rank in (0.05, 0.5):
                for impl in ("factorized", "reconstructed"):
                    torch.manual_seed(0)
                    convs[kind, rank, impl] = FactorizedSpectralConv(
                        32, 32, (16, 16), factorization=kind, rank=rank, implementation=impl)
        times: dict[Any, list[float]] = {key: [] for key in convs}
        for _ in range(repeats):
            for key, conv in convs.items():
                start = time.perf_counter()
                conv(x).square().mean().backward()
                times[key].append(1e3 * (time.perf_counter() - start))
        for kind in ("tucker", "cp", "tt"):
            for rank in (0.05, 0.5):
                fact, recon = (statistics.median(times[kind, rank, impl][2:])
                               for impl in ("factorized", "reconstructed"))
                conv = convs[kind, rank, "factorized"]
                model = factorized_cost(kind, conv.factors.parts(None, conv._slices(conv.k_max)),
                                        batch)
                rows.append({"grid": size, "batch": batch, "factorization": kind, "rank": rank,
                             "factorized_ms": fact, "reconstructed_ms": recon,
                             "cost_model_ratio": model[0] / model[1]})
    return rows


def contraction_markdown(rows: list[dict[str, Any]]) -> str:
    """The contraction table."""
    lines = ["| grid, batch | factorization | rank | factorized ms | reconstructed ms | ratio | "
             "cost-model ratio |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['grid']}^2, {r['batch']} | {r['factorization']} | {r['rank']} | "
                     f"{r['factorized_ms']:.1f} | {r['reconstructed_ms']:.1f} | "
                     f"{r['factorized_ms'] / r['reconstructed_ms']:.2f} | "
                     f"{r['cost_model_ratio']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench/bench_operators.json"))
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--sizes", type=int, nargs="*", default=[64, 128, 256],
                    help="grids of the spectral table (none: skip it)")
    ap.add_argument("--spectral-batch", type=int, default=8)
    ap.add_argument("--contractions", action="store_true",
                    help="also time the factorized-layer contraction paths")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"benchmark": "operator_train_step", "environment": _environment()}
    if args.sizes:
        report["spectral"] = _spectral_suite(args)
    if args.contractions:
        report["contractions"] = contraction_suite()
    try:
        import neuralop
    except ImportError:
        neuralop = None
        print("neuraloperator is not installed (pip install neuraloperator); skipping the "
              "comparison with it")
    if neuralop is not None:
        cfg = {"batch": args.batch, "size": args.size, "in_channels": 1, "out_channels": 1,
               "n_modes": [16, 16], "hidden_channels": 32, "n_layers": 4}
        report |= {"config": cfg, "repeats": args.repeats, "warmup": args.warmup,
                   "results": run(cfg, args.repeats, args.warmup)}
        report["environment"]["neuraloperator"] = neuralop.__version__
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    if "spectral" in report:
        print(spectral_markdown(report["spectral"]["results"]))
    if "contractions" in report:
        print(contraction_markdown(report["contractions"]))
    if "results" in report:
        print(markdown(report["results"]))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
