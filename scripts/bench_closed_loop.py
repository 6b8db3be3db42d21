"""The closed loop, online: does the surrogate being trained speed up its own generators?

The same online training runs twice: once plain (``off``) and once with ``surrogate_every``
(``on``): every ``--every`` optimizer steps the Dask generator workers receive the current
surrogate and start each Krylov solve from its prediction (smoothed by ``--smooth``
Gauss-Seidel sweeps; the better start by residual wins, and the solve still stops on the true
residual at ``--rtol``). Generation throughput comes from each run's ``metrics.json``
(``cost.generation.throughput``: the four quarters of the run by wall time). The issue's
target: in the ``on`` run, samples/s in the last quarter >= 1.3x the first quarter's; the
``off`` run is the control (its ratio is what load and noise alone give), and ``on`` vs
``off`` in the last quarter is the like-for-like comparison.

Problem (defaults): Darcy with a log-normal coefficient on 64² nodes, GCRO-DR(40, 20) + ILU
(the generator's recycling solver), ``rtol`` 1e-6 (looser than the generator's default 1e-8:
a warm start saves a larger share of the iterations at a looser tolerance; stated in the
JSON). One Dask worker (one core) generates; the trainer uses one torch thread (the other
core); a ``reservoir`` buffer lets training reuse samples while generation lags, so
generation runs unthrottled (``blocked_seconds``, the time the feeder waited on a full buffer,
shows whether it did). The FNO is small (12 modes, width 16, 3 layers: ~3 ms per prediction).

Writes ``<out>/closed_loop.json`` after each run (a rerun skips runs already there;
``--rerun`` redoes them) and ``<out>/closed_loop.md``; progress lines (with
``gen_samples_per_s``) go to stderr. Timings are this machine's: the JSON records the load
average before and after each run.

    .venv/bin/python scripts/bench_closed_loop.py                 # ~8 min on 2 shared cores
    .venv/bin/python scripts/bench_closed_loop.py --rtol 1e-8     # the generator's default
    .venv/bin/python scripts/bench_closed_loop.py --quick --out /tmp/cl   # smoke sizes
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the solvers' BLAS against torch's threads
# Spinning OpenMP threads made 2-thread torch calls 10-60x slower whenever the second core was
# busy (bench_time_to_accuracy.py); passive waiting degrades to one thread's pace instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from pdeml.trainers.fit import train  # noqa: E402

RUNS = ("off", "on")
MODEL = {"name": "FNO", "n_modes": [12, 12], "hidden_channels": 16, "n_layers": 3}
QUICK_MODEL = {"name": "FNO", "n_modes": [4, 4], "hidden_channels": 8, "n_layers": 2}


def config(args: argparse.Namespace, closed: bool) -> dict[str, Any]:
    """The run's config: identical for ``off`` and ``on`` but for ``surrogate_every``."""
    options = {"resolution": args.resolution, "coefficient": "lognormal",
               "solver": args.solver, "rtol": args.rtol}
    bpe = max(1, min(100, args.steps // 4))
    online = {"problem": "darcy", "options": options, "buffer": "reservoir",
              "capacity": 1024, "watermark": 16 if args.quick else 64, "seed": 1,
              "batches_per_epoch": bpe, "n_workers": 1,
              "norm_samples": 16 if args.quick else 64,
              "surrogate_every": args.every if closed else 0, "surrogate_smooth": args.smooth}
    return {"seed": 0, "data": {"online": online, "batch_size": 16},
            "model": QUICK_MODEL if args.quick else MODEL,
            "module": {"lr": 3e-3},
            "trainer": {"max_epochs": -(-args.steps // bpe), "max_steps": args.steps,
                        "log_every_n_steps": max(1, args.steps // 30),
                        "enable_progress_bar": True, "accelerator": "cpu"}}


def last_train_loss(run: Path) -> float | None:
    """The last ``train_loss`` in the run's CSV log."""
    try:
        with open(run / "logs" / "metrics.csv") as fh:
            values = [r["train_loss"] for r in csv.DictReader(fh) if r.get("train_loss")]
    except (OSError, KeyError):
        return None
    return float(values[-1]) if values else None


def run_one(name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Train one run (or reuse a finished one) and extract its throughput record."""
    run = out / "runs" / name
    load_before = os.getloadavg()
    if not (run / "metrics.json").exists() or args.rerun:
        train(config(args, name == "on"), run, overwrite=run.exists())
    metrics = json.loads((run / "metrics.json").read_text())
    gen = metrics["cost"]["generation"]
    (tp,) = gen["throughput"]
    return {"run": name, "quarters": tp["quarters"], "total": tp["total"],
            "last_over_first_quarter": tp["last_over_first_quarter"],
            "windows": tp["windows"], "published": gen.get("surrogate_published", []),
            "versions_seen_by_workers": len(tp["surrogate_versions"]),
            "streamed_samples": gen["streamed"]["n_samples"],
            "train_wall_seconds": metrics["cost"]["train_wall_seconds"],
            "global_step": metrics["cost"]["global_step"],
            "train_loss_last": last_train_loss(run),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()]}


def _f(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def table(doc: dict[str, Any]) -> str:
    """Markdown: first vs last quarter of each run, and the target."""
    head = ("| run | samples/s Q1 | samples/s Q4 | Q4/Q1 | iterations/sample Q1 -> Q4 "
            "| worker ms/sample Q1 -> Q4 | surrogate ms/sample Q4 | surrogate share Q4 "
            "| blocked s | load (1 min) before -> after |")
    rows = [head, "|" + "---|" * 10]
    res = doc["results"]
    for name in RUNS:
        if name not in res:
            continue
        r = res[name]
        q1, q4 = r["quarters"][0], r["quarters"][3]
        ms = [None if q["worker_seconds_per_sample"] is None else
              1e3 * q["worker_seconds_per_sample"] for q in (q1, q4)]
        sur = q4["surrogate_seconds_per_sample"]
        rows.append(
            f"| {name} | {_f(q1['samples_per_s'])} | {_f(q4['samples_per_s'])} | "
            f"{_f(r['last_over_first_quarter'])} | {_f(q1['iterations_per_sample'])} -> "
            f"{_f(q4['iterations_per_sample'])} | {_f(ms[0])} -> {_f(ms[1])} | "
            f"{_f(None if sur is None else 1e3 * sur)} | {_f(q4['surrogate_share'])} | "
            f"{_f(r['total']['blocked_seconds'])} | {r['load_before'][0]} -> "
            f"{r['load_after'][0]} |")
    text = "\n".join(rows) + "\n"
    if set(RUNS) <= set(res):
        on, off = res["on"], res["off"]
        vs = on["quarters"][3]["samples_per_s"] / off["quarters"][3]["samples_per_s"]
        ratio = on["last_over_first_quarter"]
        verdict = "met" if ratio is not None and ratio >= 1.3 else "missed"
        text += (f"\nTarget (on: Q4 >= 1.3x Q1): {_f(ratio)}x, **{verdict}**; on vs off in the "
                 f"last quarter: {vs:.3g}x; off's own Q4/Q1 (control): "
                 f"{_f(off['last_over_first_quarter'])}x.\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/bench/closed_loop")
    parser.add_argument("--steps", type=int, default=1500, help="optimizer steps per run")
    parser.add_argument("--every", type=int, default=100, help="surrogate_every (steps)")
    parser.add_argument("--smooth", type=int, default=2, help="Gauss-Seidel sweeps")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--solver", default="gcrodr", choices=["gcrodr", "gmres", "amg"])
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--threads", type=int, default=1, help="trainer torch threads")
    parser.add_argument("--quick", action="store_true", help="smoke sizes (tests)")
    parser.add_argument("--rerun", action="store_true", help="redo runs already done")
    args = parser.parse_args(argv)
    if args.quick:
        args.resolution, args.steps, args.every = 16, min(args.steps, 40), min(args.every, 10)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "closed_loop.json"
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "rerun")}
    doc = json.loads(path.read_text()) if path.exists() else {"results": {}}
    if doc.get("settings", settings) != settings:
        print("settings changed since the JSON was written: redoing both runs", flush=True)
        doc, args.rerun = {"results": {}}, True
    doc["settings"] = settings
    doc["machine"] = {"cpus": os.cpu_count(), "dask_workers": 1, "trainer_threads": args.threads}
    for i, name in enumerate(RUNS, 1):
        if name in doc["results"] and not args.rerun:
            print(f"[{i}/{len(RUNS)}] {name}: done before, kept", flush=True)
            continue
        print(f"[{i}/{len(RUNS)}] closed loop {name}: {args.steps} steps ...", flush=True)
        t0 = time.perf_counter()
        doc["results"][name] = run_one(name, args, out)
        print(f"[{i}/{len(RUNS)}] {name}: {time.perf_counter() - t0:.0f} s", flush=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, path)
    text = table(doc)
    (out / "closed_loop.md").write_text(text)
    print(text)
    print(f"wrote {path} and {out / 'closed_loop.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
