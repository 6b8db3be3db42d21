"""Active sampling against uniform at an equal number of solver calls (issue 30).

One family whose difficulty varies: periodic Burgers with ``nu`` log-uniform in ``--nu``
(shocks steepen as ``nu`` falls; the model sees ``nu`` as an input channel). For each sampler
and seed, ``pdeml train`` streams exactly ``--budget`` solver calls into a reservoir buffer
that keeps them all (so the samplers differ only in *which* samples were solved) and trains
the same FNO for the same optimizer steps; the sampler steers the later samples with the
training losses of the earlier ones. Every run is scored on one held-out set drawn from the
prior (uniform in ``log nu``): mean, p50, p95, p99 and max of the per-sample relative L2, and
the error binned over ``nu``. The sampler's own seconds are reported as a fraction of the solver
time it steered (``cost.generation.sampler.overhead``).

    OPENBLAS_NUM_THREADS=1 python scripts/bench_active.py                      # ~10 min
    OPENBLAS_NUM_THREADS=1 python scripts/bench_active.py --samplers uniform breed \\
        --seeds 0 1 2 --budget 512 --epochs 20 --out runs/bench/active

Runs are cached under ``--out`` (a finished run is not redone; delete it to redo). Writes
``active.json``, a Markdown table on stdout and ``active.png`` (error against ``nu`` for
uniform and the best other sampler, with the ``nu`` each generated).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

QUANTILES = (50, 95, 99)


def family(args: argparse.Namespace) -> dict[str, Any]:
    """The Burgers options of the benchmark's family."""
    return {"resolution": args.resolution, "final_time": args.final_time, "n_snapshots": 1,
            "viscosity_range": list(args.nu)}


def held_out(args: argparse.Namespace, out: Path) -> dict[str, Path]:
    """The prior's validation and test sets (seeds the streams never use)."""
    from pdeml.datasets import generate_dataset
    from pdeml.solvers.problems.burgers import Burgers

    folder = out / "data"
    paths = {"val": folder / "val.h5", "test": folder / "test.h5"}
    if not all(p.exists() for p in paths.values()):
        generate_dataset(Burgers(**family(args)), folder, {"val": args.n_val, "test": args.n_test},
                         seed=10_000, progress=False)
    return paths


def run_one(args: argparse.Namespace, out: Path, data: dict[str, Path], sampler: str,
            seed: int) -> dict[str, Any]:
    """Train with one sampler and seed (cached); its test errors per sample."""
    from pdeml.trainers.fit import train

    run = out / "runs" / f"{sampler}_seed{seed}"
    spec: dict[str, Any] = {"name": sampler}
    if sampler != "uniform":
        spec["signal"] = args.signal
    if sampler == "breed":
        spec |= {"period": args.period, "min_observed": args.period, "window": args.budget}
    if not (run / "metrics.json").exists():
        cfg = {
            "seed": seed,
            "data": {
                "online": {"problem": "burgers", "options": family(args), "seed": seed,
                           "buffer": "reservoir", "capacity": args.budget,
                           "watermark": min(64, args.budget),
                           "max_samples": args.budget, "batches_per_epoch": args.batches,
                           "n_workers": 1, "norm_samples": 64, "sampler": spec,
                           "tee": str(run.parent / f"{sampler}_seed{seed}_stream.h5")},
                "val": str(data["val"]), "test": str(data["test"]),
                "batch_size": args.batch_size, "inputs": ["u0", "viscosity"],
                "outputs": ["u[-1]"],
            },
            "model": {"name": "FNO", "n_modes": [args.modes], "hidden_channels": args.width,
                      "n_layers": 3},
            "module": {"lr": args.lr, "scheduler": "onecycle"},
            "trainer": {"max_epochs": args.epochs, "enable_progress_bar": False,
                        "logger": False},
        }
        t0 = time.perf_counter()
        train(cfg, run, overwrite=True)
        print(f"{sampler} seed {seed}: trained in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr, flush=True)
    metrics = json.loads((run / "metrics.json").read_text())
    errors, nu = per_sample_errors(run, data["test"])
    with h5py.File(run.parent / f"{sampler}_seed{seed}_stream.h5") as f:
        generated = np.asarray(f["viscosity"][:], float)
    return {"sampler": sampler, "seed": seed, "errors": errors.tolist(), "nu": nu.tolist(),
            "generated_nu": generated.tolist(), "stats": stats(errors),
            "sampler_report": metrics["cost"]["generation"].get("sampler"),
            "solver_seconds": metrics["cost"]["generation"]["streamed"]["wall_seconds_total"],
            "n_generated": len(generated), "loadavg": [round(v, 2) for v in os.getloadavg()]}


def per_sample_errors(run: Path, test: Path) -> tuple[np.ndarray, np.ndarray]:
    """Relative L2 of every test sample, and its ``nu``."""
    from pdeml.datasets import H5Dataset
    from pdeml.trainers.checkpoint import load_surrogate

    surrogate, _ = load_surrogate(run)
    ds = H5Dataset(test, ["u0", "viscosity"], ["u[-1]"])
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.stack([ds[i][1] for i in range(len(ds))])
    with torch.no_grad():
        pred = surrogate(x)
    err = ((pred - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).numpy()
    with h5py.File(test) as f:
        nu = np.asarray(f["viscosity"][:], float)
    return err, nu


def stats(errors: np.ndarray) -> dict[str, float]:
    """Mean, quantiles and max of per-sample errors."""
    out = {"mean": float(errors.mean()), "max": float(errors.max())}
    out |= {f"p{q}": float(np.percentile(errors, q)) for q in QUANTILES}
    return out


def summarize(runs: list[dict[str, Any]], samplers: list[str]) -> dict[str, Any]:
    """Per sampler: each statistic's mean and spread over seeds, and its ratio to uniform."""
    keys = ["mean", *(f"p{q}" for q in QUANTILES), "max"]
    table: dict[str, Any] = {}
    for s in samplers:
        rows = [r["stats"] for r in runs if r["sampler"] == s]
        if not rows:
            continue
        table[s] = {k: {"mean": statistics.mean(r[k] for r in rows),
                        "sd": statistics.stdev(r[k] for r in rows) if len(rows) > 1 else 0.0,
                        "seeds": [r[k] for r in rows]} for k in keys}
        reps = [r["sampler_report"] for r in runs if r["sampler"] == s and r["sampler_report"]]
        table[s]["overhead"] = (statistics.mean(r["overhead"] for r in reps)
                                if reps and all(r["overhead"] is not None for r in reps)
                                else None)
    if "uniform" in table:
        for s in table:
            table[s]["vs_uniform"] = {k: table["uniform"][k]["mean"] / table[s][k]["mean"]
                                      for k in keys}
    return table


def print_table(table: dict[str, Any], load: list[float]) -> None:
    keys = ["mean", *(f"p{q}" for q in QUANTILES), "max"]
    print("| sampler | " + " | ".join(keys) + " | uniform/sampler p99 | mean | overhead |")
    print("|---|" + "---|" * (len(keys) + 3))
    for s, row in table.items():
        cells = [f"{row[k]['mean']:.4f} ± {row[k]['sd']:.4f}" for k in keys]
        ratio = row.get("vs_uniform", {})
        over = row["overhead"]
        print(f"| {s} | " + " | ".join(cells) + f" | {ratio.get('p99', float('nan')):.2f}x | "
              f"{ratio.get('mean', float('nan')):.2f}x | "
              f"{'-' if over is None else f'{100 * over:.2f}%'} |")
    print(f"\nload average at the end: {load}")


def figure(runs: list[dict[str, Any]], table: dict[str, Any], path: Path) -> Path:
    """Error against nu (binned, mean over seeds) for uniform and the best other sampler, and
    the nu each generated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = [s for s in table if s != "uniform"]
    best = min(others, key=lambda s: table[s]["p99"]["mean"]) if others else None
    shown = ["uniform"] + ([best] if best else [])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    nus = np.array(runs[0]["nu"])
    edges = np.geomspace(nus.min(), nus.max() * (1 + 1e-9), 9)
    mids = np.sqrt(edges[:-1] * edges[1:])
    for s in shown:
        errs = np.array([r["errors"] for r in runs if r["sampler"] == s])
        nu = np.array([r["nu"] for r in runs if r["sampler"] == s][0])
        which = np.digitize(nu, edges) - 1
        for stat, style in (("mean", "-"), ("p95", "--")):
            vals = [(errs[:, which == b].mean() if stat == "mean"
                     else np.percentile(errs[:, which == b], 95)) if (which == b).any()
                    else np.nan for b in range(len(mids))]
            ax1.plot(mids, vals, style, marker="o", label=f"{s} {stat}")
        gen = np.concatenate([r["generated_nu"] for r in runs if r["sampler"] == s])
        ax2.hist(np.log10(gen), bins=20, alpha=0.5, label=s)
    ax1.set(xscale="log", yscale="log", xlabel="viscosity nu", ylabel="test relative L2",
            title="held-out error by nu (all seeds)")
    ax2.set(xlabel="log10 nu of the generated samples", ylabel="samples (all seeds)",
            title="where the solver calls went")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samplers", nargs="+", default=["uniform", "breed"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--budget", type=int, default=512, help="solver calls per run")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batches", type=int, default=50, help="optimizer steps per epoch")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--period", type=int, default=64, help="breed: proposals per generation")
    ap.add_argument("--signal", choices=("every", "first"), default="every",
                    help="the samplers' training-loss signal (see pdeml.datasets.samplers)")
    ap.add_argument("--nu", nargs=2, type=float, default=[1e-2, 1e-1])
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--final-time", type=float, default=1.0)
    ap.add_argument("--modes", type=int, default=16)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--n-val", type=int, default=32)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--out", default="runs/bench/active")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = held_out(args, out)
    runs = [run_one(args, out, data, s, seed) for seed in args.seeds for s in args.samplers]
    table = summarize(runs, args.samplers)
    load = [round(v, 2) for v in os.getloadavg()]
    result = {"settings": vars(args), "family": family(args), "summary": table, "runs": runs,
              "loadavg_end": load}
    tmp = out / "active.json.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out / "active.json")
    print_table(table, load)
    figure(runs, table, out / "active.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
