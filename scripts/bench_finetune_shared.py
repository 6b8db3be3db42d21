"""Shared-weights spectral fine-tuning on smooth periodic Navier-Stokes (nu = 1e-3, 64^2).

Generates vorticity trajectories (snapshots every 0.1 time units; the model maps steps
``w[0:10] -> w[10:20]`` as channels), trains an FNO for a few epochs, then fine-tunes its last
spectral layer with all modes (a) against the training labels and (b) without labels against
the H^-1 norm of the vorticity-equation residual; each fine-tuning gets a wall-clock budget of
``--budget`` times the training time. Writes JSON and prints a Markdown table.

    python scripts/bench_finetune_shared.py                # default, ~10 min on 2 cores
    python scripts/bench_finetune_shared.py --epochs 30 --budget 0.1 --out runs/bench/finetune30
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

from pdeml.datasets import generate_dataset  # noqa: E402
from pdeml.solvers.problems.navier_stokes import NavierStokes2D  # noqa: E402
from pdeml.trainers.finetune import finetune_run  # noqa: E402
from pdeml.trainers.fit import train  # noqa: E402


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench/finetune")
    p.add_argument("--n-train", type=int, default=200, help="training file (10%% validation)")
    p.add_argument("--n-test", type=int, default=50)
    p.add_argument("--epochs", type=int, default=10, help="FNO training epochs")
    p.add_argument("--budget", type=float, default=0.1, help="fine-tuning time / training time")
    p.add_argument("--modes", default="all", help="refined layer's n_modes ('all' or an int)")
    p.add_argument("--lr", type=float, default=3e-4, help="fine-tuning Adam step")
    p.add_argument("--residual-inputs", default="train", choices=("train", "test", "train+test"))
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args()


def make_data(out: Path, n_train: int, n_test: int) -> dict[str, Path]:
    paths = {"train": out / "data" / "train.h5", "test": out / "data" / "test.h5"}
    if all(p.exists() for p in paths.values()):
        return paths
    problem = NavierStokes2D(resolution=64, viscosity=1e-3, final_time=2.0, n_snapshots=20)
    return generate_dataset(problem, out / "data", {"train": n_train, "test": n_test}, seed=0,
                            progress=False)


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    t0 = time.perf_counter()
    paths = make_data(out, args.n_train, args.n_test)
    gen_s = time.perf_counter() - t0
    cfg = {
        "seed": 0,
        "data": {"train": str(paths["train"]), "test": str(paths["test"]),
                 "inputs": ["w[0:10]"], "outputs": ["w[10:20]"], "batch_size": 16,
                 "val_fraction": 0.1},
        "model": {"name": "FNO", "n_modes": [16, 16], "hidden_channels": 32, "n_layers": 4},
        "module": {"lr": 3e-3, "scheduler": "cosine"},
        "trainer": {"max_epochs": args.epochs, "enable_progress_bar": False},
    }
    for sub in ("fno", "ft_data", "ft_residual"):
        shutil.rmtree(out / sub, ignore_errors=True)
    t0 = time.perf_counter()
    trained = train(cfg, out / "fno")
    train_s = time.perf_counter() - t0
    budget = args.budget * train_s
    modes = args.modes if args.modes == "all" else int(args.modes)
    common = {"n_modes": modes, "lr": args.lr, "epochs": 1000, "patience": 5,
              "max_time": budget}
    runs = {}
    for mode in ("data", "residual"):
        extra = {"residual_inputs": args.residual_inputs} if mode == "residual" else {}
        t0 = time.perf_counter()
        res = finetune_run(out / "fno", out / f"ft_{mode}", mode=mode, **common, **extra)
        res["wall_s"] = time.perf_counter() - t0
        runs[mode] = res
    before = runs["data"]["test_before"]["rel_l2"]
    result = {
        "setup": {"nu": 1e-3, "grid": 64, "task": "w[0:10] -> w[10:20], dt = 0.1",
                  "n_train_file": args.n_train, "n_test": args.n_test, "epochs": args.epochs,
                  "modes": args.modes, "lr": args.lr, "threads": args.threads,
                  "residual_inputs": args.residual_inputs},
        "generate_s": gen_s, "train_s": train_s, "budget_s": budget,
        "test_rel_l2": {"trained": before, "trained_checkpoint_test": trained.get("test_l2")},
    }
    for mode, res in runs.items():
        after = res["test_after"]["rel_l2"]
        result[mode] = {"test_rel_l2": after, "reduction": 1 - after / before,
                        "time_s": res["time_s"], "time_fraction": res["time_s"] / train_s,
                        "epochs": res["epochs"], "best_epoch": res["best_epoch"],
                        "val_history": res["history"]["val_l2"]}
    best = max(("data", "residual"), key=lambda m: result[m]["reduction"])
    result["target"] = {"reduction_min": 0.2, "time_fraction_max": 0.1, "best_mode": best,
                        "met": result[best]["reduction"] >= 0.2
                        and result[best]["time_fraction"] <= 0.1}
    (out / "bench_finetune.json").write_text(json.dumps(result, indent=2))
    print(f"\ntraining: {args.epochs} epochs, {train_s:.0f} s; fine-tuning budget {budget:.1f} s\n")
    print("| model | test rel. L2 | change | time (s) | time / training |")
    print("|---|---|---|---|---|")
    print(f"| FNO ({args.epochs} epochs) | {before:.4f} | – | {train_s:.0f} | 1 |")
    for mode in ("data", "residual"):
        r = result[mode]
        print(f"| + {mode} fine-tuning | {r['test_rel_l2']:.4f} | {-100 * r['reduction']:+.1f}% "
              f"| {r['time_s']:.1f} | {r['time_fraction']:.3f} |")
    print(f"\ntarget (>= 20% lower in <= 10% of training time): "
          f"{'met' if result['target']['met'] else 'missed'}; written {out}/bench_finetune.json")


if __name__ == "__main__":
    main()
