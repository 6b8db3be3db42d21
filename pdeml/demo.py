"""``pdeml demo``: the whole pipeline on a small Darcy problem, in a few minutes on a laptop."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from pdeml.checks import InputError, check_int
from pdeml.datasets.writer import generate_dataset
from pdeml.evaluate import evaluate_run
from pdeml.export import export_run, predict
from pdeml.solvers.problems import DarcyFlow
from pdeml.trainers.fit import train

RESOLUTION = 64
DEMO_CONFIG: dict[str, Any] = {
    "seed": 0,
    "data": {"batch_size": 16, "val_fraction": 0.1},
    "model": {"name": "FNO", "n_modes": [12, 12], "hidden_channels": 32, "n_layers": 4},
    "module": {"loss": "l2", "lr": 5e-3, "weight_decay": 1e-4, "scheduler": "onecycle"},
    "trainer": {"max_epochs": 15, "enable_progress_bar": True},
}


SUBFOLDERS = ("data", "run", "model")
MARKER = ".pdeml-demo"  # says that the demo made this folder's SUBFOLDERS


def _claim(out: Path) -> None:
    """Clear the demo's own outputs in ``out`` for a fresh run; refuse a folder the demo did
    not make (it may hold a user's ``data/`` or ``run/``), before anything is deleted."""
    ours = (out / MARKER).is_file()
    foreign = [s for s in SUBFOLDERS if (out / s).exists()] if not ours else []
    if foreign:
        raise InputError(f"{out} holds {', '.join(foreign)} that `pdeml demo` did not make; "
                         "choose another --out")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; name a folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `pdeml demo`; it replaces data/, run/ and model/ here\n")
    for sub in SUBFOLDERS:  # the demo's scratch outputs of an earlier run
        shutil.rmtree(out / sub, ignore_errors=True)


def run_demo(out: str | Path, epochs: int | None = None, n_train: int | None = None,
             echo: bool = True) -> dict:
    """Generate Darcy 64x64 data, train an FNO, evaluate, export and predict; print a summary
    (``echo``; it is also returned under ``summary``)."""
    out = Path(out)
    for name, value in (("epochs", epochs), ("n_train", n_train)):
        if value is not None:
            check_int(value, name, 1)
    _claim(out)
    t0 = time.perf_counter()
    problem = DarcyFlow(resolution=RESOLUTION, coefficient="piecewise_constant")
    paths = generate_dataset(problem, out / "data", {"train": n_train or 320, "test": 100}, seed=0)
    t_gen = time.perf_counter() - t0
    cfg = {**DEMO_CONFIG, "data": {**DEMO_CONFIG["data"], "train": str(paths["train"]),
                                   "test": str(paths["test"])}}
    if epochs:
        cfg["trainer"] = {**cfg["trainer"], "max_epochs": epochs}
    train(cfg, out / "run")
    t_train = time.perf_counter() - t0 - t_gen
    evaluation = evaluate_run(out / "run", out=out / "run" / "eval")
    exported = export_run(out / "run", out / "model" / "darcy_fno.pt2")
    pred = predict(exported["program"], paths["test"], out / "model" / "test_prediction.npy")
    m = evaluation["metrics"]
    lines = [
        "",
        "pdeml demo: Darcy flow 64x64, piecewise-constant coefficient, FNO",
        f"  data         {paths['train']}, {paths['test']}  ({t_gen:.0f} s)",
        f"  checkpoint   {out / 'run' / 'checkpoints' / 'best.ckpt'}  ({t_train:.0f} s)",
        f"  metrics      {evaluation['out']}/metrics.json",
        f"  figure       {evaluation['out']}/samples.png",
        f"  exported     {exported['program']} (+ {Path(exported['card']).name})",
        f"  prediction   {pred}",
        f"  test relative L2 = {m['rel_l2']:.4f}   MSE = {m['mse']:.3e}   "
        f"({m['n_samples']} samples)",
    ]
    summary = "\n".join(lines)
    if echo:
        print(summary)
    return {"rel_l2": m["rel_l2"], "mse": m["mse"], "out": str(out), "summary": summary}
