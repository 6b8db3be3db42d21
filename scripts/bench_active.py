"""Active sampling against uniform at an equal number of solver calls (issue 30).

Families whose difficulty varies with a parameter drawn per sample (``--family``):

- ``burgers``: periodic Burgers with ``nu`` log-uniform in ``--range`` (default [1e-2, 1e-1];
  shocks steepen as ``nu`` falls); the model sees ``nu`` as an input channel.
- ``darcy``: piecewise-constant Darcy, solved on 125² and stored on 32², whose coefficient
  contrast high/low is log-uniform in ``--range`` (default [2, 1000]); the model sees the
  coefficient field.
- ``helmholtz``: damped Helmholtz 32² with the mean wavenumber ``k0`` uniform in ``--range``
  (default [2, 24]); the model sees the wavenumber field.

For each sampler, pace and seed, ``pdeml train`` streams exactly ``--budget`` solver calls
into a reservoir buffer that keeps them all (so the runs differ only in *which* samples were
solved) and trains the same FNO for the same optimizer steps; the sampler steers the later
samples with what the trainer learned from the earlier ones. ``--pace P`` releases the budget
over the first ``P`` share of the steps (``data.online.pace``; 0: as fast as the solver goes,
which on these families ends generation early in training). Every run is scored on one
held-out set drawn from the prior: mean, p50, p95, p99 and max of the per-sample relative L2,
and the error binned over the parameter. Ratios are given against uniform at the same pace and
against the best uniform row (lowest mean) of the run. The sampler's own seconds (for
``sbal``: the second ensemble member's training and the pool scoring) are reported as a
fraction of the solver time it steered (``cost.generation.sampler.overhead``).

    OPENBLAS_NUM_THREADS=1 python scripts/bench_active.py --samplers uniform hardness sbal \
        --pace 0 0.6 --seeds 0 1 2 --budget 512 --epochs 40 --batches 300 --out runs/bench/active
    OPENBLAS_NUM_THREADS=1 python scripts/bench_active.py --family darcy ...

Runs are cached under ``--out`` (a finished run is not redone; delete it to redo). Writes
``active.json``, a Markdown table on stdout and ``active.png`` (error against the parameter
for the best uniform row and the best other row, with where each generated).
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


FAMILIES: dict[str, dict[str, Any]] = {
    "burgers": {"problem": "burgers", "param": "viscosity", "range_key": "viscosity_range",
                "range": [1e-2, 1e-1], "log": True, "inputs": ["u0", "viscosity"],
                "outputs": ["u[-1]"], "dims": 1},
    "darcy": {"problem": "darcy", "param": "contrast", "range_key": "contrast_range",
              "range": [2.0, 1000.0], "log": True, "inputs": ["a"], "outputs": ["u"],
              "dims": 2},
    "helmholtz": {"problem": "helmholtz", "param": "k0", "range_key": "k0_range",
                  "range": [2.0, 24.0], "log": False, "inputs": ["k"],
                  "outputs": ["u_real", "u_imag"], "dims": 2},
}


def spec_of(args: argparse.Namespace) -> dict[str, Any]:
    """The family's description, with the range of this run."""
    spec = dict(FAMILIES[args.family])
    if args.range is not None:
        spec["range"] = list(args.range)
    return spec


def family(args: argparse.Namespace) -> dict[str, Any]:
    """The problem options of the benchmark's family."""
    spec = spec_of(args)
    if args.family == "burgers":
        opts = {"resolution": args.resolution, "final_time": args.final_time, "n_snapshots": 1}
    else:
        opts = {"resolution": args.resolution}
        if args.family == "darcy":  # solved on a finer grid, stored on the model's
            opts["solver_resolution"] = args.solver_resolution
    return opts | {spec["range_key"]: list(spec["range"])}


def held_out(args: argparse.Namespace, out: Path) -> dict[str, Path]:
    """The prior's validation and test sets (seeds the streams never use)."""
    from pdeml.datasets import generate_dataset
    from pdeml.solvers.problems import make_problem

    folder = out / "data"
    paths = {"val": folder / "val.h5", "test": folder / "test.h5"}
    if not all(p.exists() for p in paths.values()):
        generate_dataset(make_problem(spec_of(args)["problem"], **family(args)), folder,
                         {"val": args.n_val, "test": args.n_test}, seed=10_000, progress=False)
    return paths


def label(sampler: str, pace: float) -> str:
    """A row's name: the sampler, and its pace when paced."""
    return sampler if not pace else f"{sampler}@{pace:g}"


def run_one(args: argparse.Namespace, out: Path, data: dict[str, Path], sampler: str,
            pace: float, seed: int) -> dict[str, Any]:
    """Train with one sampler, pace and seed (cached); its test errors per sample."""
    from pdeml.trainers.fit import train

    spec = spec_of(args)
    name = f"{label(sampler, pace).replace('@', '_pace')}_seed{seed}"
    run = out / "runs" / name
    sampler_spec: dict[str, Any] = {"name": sampler}
    if sampler in ("breed", "hardness"):
        sampler_spec["signal"] = args.signal
    if sampler == "hardness":
        sampler_spec |= {"beta": args.hardness_beta, "floor": args.floor}
    if sampler == "breed":
        sampler_spec |= {"period": args.period, "min_observed": args.period,
                         "window": args.budget}
    if sampler == "sbal":
        sampler_spec |= {"pool": args.pool, "min_steps": args.min_steps}
    if sampler == "tilted":
        sampler_spec["weights"] = list(args.weights)
    n_modes = [args.modes] * spec["dims"]
    tee = run.parent / f"{name}_stream.h5"
    if not (run / "metrics.json").exists():
        online = {"problem": spec["problem"], "options": family(args), "seed": seed,
                  "buffer": "reservoir", "capacity": args.budget,
                  "watermark": min(64, args.budget), "max_samples": args.budget,
                  "batches_per_epoch": args.batches, "n_workers": 1, "norm_samples": 64,
                  "sampler": sampler_spec, "tee": str(tee)}
        if pace:
            online["pace"] = pace
        cfg = {
            "seed": seed,
            "data": {"online": online, "val": str(data["val"]), "test": str(data["test"]),
                     "batch_size": args.batch_size, "inputs": spec["inputs"],
                     "outputs": spec["outputs"]},
            "model": {"name": "FNO", "n_modes": n_modes, "hidden_channels": args.width,
                      "n_layers": args.layers},
            "module": {"lr": args.lr, "scheduler": "onecycle"},
            "trainer": {"max_epochs": args.epochs, "enable_progress_bar": False,
                        "logger": False},
        }
        t0 = time.perf_counter()
        train(cfg, run, overwrite=True)
        print(f"{name}: trained in {time.perf_counter() - t0:.0f} s", file=sys.stderr,
              flush=True)
    metrics = json.loads((run / "metrics.json").read_text())
    errors, value = per_sample_errors(run, data["test"], spec)
    with h5py.File(tee) as f:
        generated = np.asarray(f[spec["param"]][:], float)
    return {"sampler": sampler, "pace": pace, "label": label(sampler, pace), "seed": seed,
            "errors": errors.tolist(), "param": value.tolist(),
            "generated": generated.tolist(), "stats": stats(errors),
            "sampler_report": metrics["cost"]["generation"].get("sampler"),
            "solver_seconds": metrics["cost"]["generation"]["streamed"]["wall_seconds_total"],
            "train_seconds": metrics["cost"].get("train_wall_seconds"),
            "n_generated": len(generated), "loadavg": [round(v, 2) for v in os.getloadavg()]}


def per_sample_errors(run: Path, test: Path, spec: dict[str, Any]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Relative L2 of every test sample, and its parameter value."""
    from pdeml.datasets import H5Dataset
    from pdeml.trainers.checkpoint import load_surrogate

    surrogate, _ = load_surrogate(run)
    ds = H5Dataset(test, spec["inputs"], spec["outputs"])
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.stack([ds[i][1] for i in range(len(ds))])
    with torch.no_grad():
        pred = torch.cat([surrogate(part) for part in torch.split(x, 64)])
    err = ((pred - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).numpy()
    with h5py.File(test) as f:
        value = np.asarray(f[spec["param"]][:], float)
    return err, value


def stats(errors: np.ndarray) -> dict[str, float]:
    """Mean, quantiles and max of per-sample errors."""
    out = {"mean": float(errors.mean()), "max": float(errors.max())}
    out |= {f"p{q}": float(np.percentile(errors, q)) for q in QUANTILES}
    return out


def summarize(runs: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    """Per row (sampler and pace): each statistic's mean and spread over seeds, its ratio to
    uniform at the same pace and to the best uniform row (lowest mean error)."""
    keys = ["mean", *(f"p{q}" for q in QUANTILES), "max"]
    table: dict[str, Any] = {}
    for lab in labels:
        rows = [r["stats"] for r in runs if r["label"] == lab]
        if not rows:
            continue
        pace = next(r["pace"] for r in runs if r["label"] == lab)
        sampler = next(r["sampler"] for r in runs if r["label"] == lab)
        table[lab] = {k: {"mean": statistics.mean(r[k] for r in rows),
                          "sd": statistics.stdev(r[k] for r in rows) if len(rows) > 1 else 0.0,
                          "seeds": [r[k] for r in rows]} for k in keys}
        table[lab] |= {"sampler": sampler, "pace": pace}
        reps = [r["sampler_report"] for r in runs if r["label"] == lab and r["sampler_report"]]
        table[lab]["overhead"] = (statistics.mean(r["overhead"] for r in reps)
                                  if reps and all(r["overhead"] is not None for r in reps)
                                  else None)
    uniforms = [lab for lab in table if table[lab]["sampler"] == "uniform"]
    best = min(uniforms, key=lambda lab: table[lab]["mean"]["mean"]) if uniforms else None
    for row in table.values():
        same = label("uniform", row["pace"])
        if same in table:
            row["vs_uniform"] = {k: table[same][k]["mean"] / row[k]["mean"] for k in keys}
        if best is not None:
            row["vs_best_uniform"] = {k: table[best][k]["mean"] / row[k]["mean"] for k in keys}
            row["best_uniform"] = best
    return table


def print_table(table: dict[str, Any], load: list[float]) -> None:
    keys = ["mean", *(f"p{q}" for q in QUANTILES), "max"]
    best = next((row["best_uniform"] for row in table.values() if "best_uniform" in row), None)
    print("| sampler | " + " | ".join(keys) + " | uniform/sampler p99 | mean | "
          f"best uniform ({best})/sampler p99 | mean | overhead |")
    print("|---|" + "---|" * (len(keys) + 5))
    nan = float("nan")
    for lab, row in table.items():
        cells = [f"{row[k]['mean']:.4f} ± {row[k]['sd']:.4f}" for k in keys]
        same, top = row.get("vs_uniform", {}), row.get("vs_best_uniform", {})
        over = row["overhead"]
        print(f"| {lab} | " + " | ".join(cells) + f" | {same.get('p99', nan):.2f}x | "
              f"{same.get('mean', nan):.2f}x | {top.get('p99', nan):.2f}x | "
              f"{top.get('mean', nan):.2f}x | "
              f"{'-' if over is None else f'{100 * over:.2f}%'} |")
    print(f"\nload average at the end: {load}")


def figure(runs: list[dict[str, Any]], table: dict[str, Any], spec: dict[str, Any],
           path: Path) -> Path:
    """Error against the parameter (binned, mean over seeds) for the best uniform row and the
    best other row (lowest p99), and where each generated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    uniforms = [lab for lab in table if table[lab]["sampler"] == "uniform"]
    others = [lab for lab in table if table[lab]["sampler"] != "uniform"]
    shown = []
    if uniforms:
        shown.append(min(uniforms, key=lambda lab: table[lab]["mean"]["mean"]))
    if others:
        shown.append(min(others, key=lambda lab: table[lab]["p99"]["mean"]))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    values = np.array(runs[0]["param"])
    lo, hi = values.min(), values.max() * (1 + 1e-9)
    edges = np.geomspace(lo, hi, 9) if spec["log"] else np.linspace(lo, hi, 9)
    mids = np.sqrt(edges[:-1] * edges[1:]) if spec["log"] else (edges[:-1] + edges[1:]) / 2
    name = spec["param"]
    for lab in shown:
        errs = np.array([r["errors"] for r in runs if r["label"] == lab])
        which = np.digitize(np.array(next(r["param"] for r in runs if r["label"] == lab)),
                            edges) - 1
        for stat, style in (("mean", "-"), ("p95", "--")):
            vals = [(errs[:, which == b].mean() if stat == "mean"
                     else np.percentile(errs[:, which == b], 95)) if (which == b).any()
                    else np.nan for b in range(len(mids))]
            ax1.plot(mids, vals, style, marker="o", label=f"{lab} {stat}")
        gen = np.concatenate([r["generated"] for r in runs if r["label"] == lab])
        ax2.hist(np.log10(gen) if spec["log"] else gen, bins=20, alpha=0.5, label=lab)
    ax1.set(xscale="log" if spec["log"] else "linear", yscale="log", xlabel=name,
            ylabel="test relative L2", title="held-out error by parameter (all seeds)")
    ax2.set(xlabel=f"log10 {name}" if spec["log"] else name,
            ylabel="samples (all seeds)", title="where the solver calls went")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", choices=list(FAMILIES), default="burgers")
    ap.add_argument("--range", nargs=2, type=float, default=None,
                    help="the parameter's range (default: the family's)")
    ap.add_argument("--nu", nargs=2, type=float, default=None,
                    help="burgers: the viscosity range (same as --range)")
    ap.add_argument("--samplers", nargs="+", default=["uniform", "breed"])
    ap.add_argument("--pace", nargs="+", type=float, default=[0.0],
                    help="shares of the steps the budget is released over (0: unpaced)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--budget", type=int, default=512, help="solver calls per run")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batches", type=int, default=50, help="optimizer steps per epoch")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--period", type=int, default=64, help="breed: proposals per generation")
    ap.add_argument("--signal", choices=("every", "first"), default="every",
                    help="breed/hardness: the training-loss signal (pdeml.datasets.samplers)")
    ap.add_argument("--hardness-beta", type=float, default=1.0,
                    help="hardness: exponent on a cell's average loss")
    ap.add_argument("--floor", type=float, default=0.3, help="hardness: share from the prior")
    ap.add_argument("--pool", type=int, default=64, help="sbal: candidates per sample")
    ap.add_argument("--weights", nargs="+", type=float, default=[4.0, 2.0, 1.0],
                    help="tilted: weights of equal bins of the (unit) range, low to high")
    ap.add_argument("--min-steps", type=int, default=200,
                    help="sbal: optimizer steps before the ensemble chooses")
    ap.add_argument("--resolution", type=int, default=None,
                    help="grid (default: burgers 128, darcy and helmholtz 32)")
    ap.add_argument("--final-time", type=float, default=1.0, help="burgers")
    ap.add_argument("--solver-resolution", type=int, default=125,
                    help="darcy: the grid solved on ((n - 1) a multiple of resolution - 1)")
    ap.add_argument("--modes", type=int, default=None, help="default: 16 (1-D), 12 (2-D)")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--layers", type=int, default=None, help="default: 3 (1-D), 4 (2-D)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--n-val", type=int, default=32)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--out", default="runs/bench/active")
    args = ap.parse_args(argv)
    if args.nu is not None:
        if args.family != "burgers" or args.range is not None:
            ap.error("--nu is burgers' --range; give one of them")
        args.range = args.nu
    paces = args.pace + [float(t.partition("@")[2]) for t in args.samplers if "@" in t]
    if any(not 0 <= p <= 1 for p in paces):
        ap.error("--pace takes shares in [0, 1]")
    one_d = FAMILIES[args.family]["dims"] == 1
    args.resolution = args.resolution or (128 if one_d else 32)
    args.modes = args.modes or (16 if one_d else 12)
    args.layers = args.layers or (3 if one_d else 4)
    return args


def rows_of(args: argparse.Namespace) -> list[tuple[str, float]]:
    """(sampler, pace) rows: ``name@P`` runs at pace ``P``; a bare name at every ``--pace``."""
    rows = []
    for token in args.samplers:
        name, _, pace = token.partition("@")
        for p in ([float(pace)] if pace else args.pace):
            if (name, p) not in rows:
                rows.append((name, p))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = held_out(args, out)
    rows = rows_of(args)
    runs = [run_one(args, out, data, s, pace, seed) for seed in args.seeds for s, pace in rows]
    labels = [label(s, pace) for s, pace in rows]
    table = summarize(runs, labels)
    load = [round(v, 2) for v in os.getloadavg()]
    spec = spec_of(args)
    result = {"settings": vars(args), "family": family(args), "spec": spec, "summary": table,
              "runs": runs, "loadavg_end": load}
    tmp = out / "active.json.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out / "active.json")
    print_table(table, load)
    figure(runs, table, spec, out / "active.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
