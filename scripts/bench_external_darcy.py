"""Train pdeml's FNO on neuraloperator's small Darcy set; test at 16x16 and zero-shot at 32x32.

Outside ground truth: ../shared/external/neuraloperator (MIT). neuraloperator's own FNO reaches
test relative L2 0.097 (16x16) and 0.124 (32x32, zero-shot) after 20 epochs on these files.

    .venv/bin/python scripts/bench_external_darcy.py [--epochs 20] [--out runs/bench]
    .venv/bin/python scripts/bench_external_darcy.py --loss h1 --model '{"n_modes": [12, 12]}'

``--loss`` takes any ``pdeml train`` loss (a name or a JSON mapping), ``--model`` JSON
overrides of the FNO settings, ``--tag`` names the run folder so variants sit side by side.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pdeml.datasets.importers import import_neuraloperator_pt
from pdeml.evaluate import evaluate_run
from pdeml.trainers.fit import train

EXTERNAL = Path(__file__).resolve().parents[1].parent / "shared" / "external" / "neuraloperator"
REFERENCE = {"rel_l2_16": 0.097, "rel_l2_32": 0.124}
TARGET = {"rel_l2_16": 0.08, "rel_l2_32": 0.10}
MODEL = {"name": "FNO", "n_modes": [16, 16], "hidden_channels": 32, "n_layers": 4,
         "domain_padding": 0.25}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--external", type=Path, default=EXTERNAL)
    ap.add_argument("--out", type=Path, default=Path("runs/bench"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--loss", default="l2", help="a loss name or a JSON mapping")
    ap.add_argument("--model", default="{}", help="JSON overrides of the FNO settings")
    ap.add_argument("--tag", default="", help="suffix of the run folder and the JSON")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-3, help="peak of the one-cycle schedule")
    args = ap.parse_args()
    loss = json.loads(args.loss) if args.loss.lstrip().startswith("{") else args.loss
    model = {**MODEL, **json.loads(args.model)}
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = args.out / "external_darcy"
    files = {}
    for name in ("darcy_train_16", "darcy_test_16", "darcy_test_32"):
        files[name] = import_neuraloperator_pt(args.external / f"{name}.pt", data / f"{name}.h5")
    cfg = {
        "seed": args.seed,
        "data": {"train": str(files["darcy_train_16"]), "test": str(files["darcy_test_16"]),
                 "batch_size": args.batch_size, "val_fraction": 0.0},
        "model": model,
        "module": {"loss": loss, "lr": args.lr, "weight_decay": 1e-4, "scheduler": "onecycle"},
        "trainer": {"max_epochs": args.epochs, "enable_progress_bar": False},
    }
    run = data / f"run_seed{args.seed}{args.tag}"
    t0 = time.perf_counter()
    train(cfg, run, resume=(run / "checkpoints" / "last.ckpt").exists())
    t_train = time.perf_counter() - t0
    m16 = evaluate_run(run, data=files["darcy_test_16"], out=run / "eval16")["metrics"]
    m32 = evaluate_run(run, data=files["darcy_test_32"], out=run / "eval32")["metrics"]
    result = {
        "benchmark": "external_darcy", "epochs": args.epochs, "seed": args.seed, "model": model,
        "loss": loss, "batch_size": args.batch_size, "lr": args.lr,
        "train_seconds": t_train, "rel_l2_16": m16["rel_l2"], "rel_l2_32": m32["rel_l2"],
        "reference_neuraloperator": REFERENCE, "target": TARGET,
        "meets_target": (m16["rel_l2"] <= TARGET["rel_l2_16"]
                         and m32["rel_l2"] <= TARGET["rel_l2_32"]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"bench_external_darcy{args.tag}.json").write_text(json.dumps(result, indent=2))
    print("| test set | pdeml FNO | neuraloperator FNO (published) | target |")
    print("|---|---|---|---|")
    for key, label in (("rel_l2_16", "darcy_test_16"), ("rel_l2_32", "darcy_test_32 (zero-shot)")):
        print(f"| {label} | {result[key]:.4f} | {REFERENCE[key]} | <= {TARGET[key]} |")
    print(f"train time {t_train:.0f} s for {args.epochs} epochs")


if __name__ == "__main__":
    main()
