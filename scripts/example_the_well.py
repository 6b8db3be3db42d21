"""The Well's ``shear_flow`` at CPU size, end to end, scored in The Well's rollout table layout.

Issue 32, part 5. pdeml cannot make The Well's ``shear_flow`` exactly (no tracer, no
shear-layer initial condition), so this example makes the closest set its solvers can, stores
it in The Well's shape, and scores a model with The Well's numbers. Stages (each cached in
``<out>/stages/<name>.json``; a rerun redoes only what is missing, a killed generation or
training resumes):

1. ``generate``: ``navier_stokes`` (periodic 2-D incompressible flow, vorticity form) driven
   by the Kolmogorov force ``0.2 sin(4 pi y) e_x`` from rest plus a weak random vorticity
   (GRF, ``sigma = 0.5``), ``nu = 2e-3`` (The Well's convention ``Reynolds = 1 / nu = 500``).
   The four shear layers grow, go unstable and roll up into vortices within the stored
   window ``t`` in (5, 10], kept every 0.1 (The Well's step): 50 frames of 64^2 per
   trajectory, 40/4/8 trajectories for train/valid/test.
2. ``derive``: The Well's fields from the vorticity: ``velocity`` (a t1 field, from the
   streamfunction) and ``pressure`` (t0, zero mean, from ``Laplacian p = 2 (u_x v_y - u_y
   v_x)``), the constant scalar ``Reynolds`` and periodic boundary conditions.
3. ``export``: ``pdeml export-data --format the_well`` of every split to
   ``<out>/well/pdeml_shear_flow/data/{train,valid,test}/pdeml_shear_flow.hdf5``.
4. ``well_load``: The Well's ``WellDataset`` reads the test split: field names, constant
   scalars, window count, and its first and last window bitwise against pdeml's frames.
5. ``train``: ``pdeml train --config <out>/shear_fno.yaml --out <out>/run`` (the config is
   written here): a one-step FNO seeing 4 frames (The Well's ``n_steps_input``), trained on
   the increment to the next frame.
6. ``evaluate``: ``pdeml evaluate <out>/run --baselines off`` (``metrics.json``, figures).
7. ``score``: VRMSE per field and step of the FNO and of persistence (the last input frame,
   the trivial baseline), teacher-forced one step ahead and rolled out from the first 4
   frames, from pdeml's metrics; the same VRMSE from The Well's own ``VRMSE`` metric on the
   same predictions and on targets read by ``WellDataset`` (the cross-check column).

The table follows The Well's benchmark tables (its ``docs/benchmarks.md``): one-step VRMSE
(its test table: every one-step window of the test set) and rollout VRMSE averaged over the
windows ``6:12`` and ``13:30``. Those windows appear only in the documentation; The Well's
trainer labels its own time windows ``T=a:b`` for ``loss_values[a:b]``
(``temporal_split_losses`` in ``the_well/benchmark/trainer/training.py``), a Python slice
of the per-step curve with step 0 the first predicted frame, and that reading is used here:
``6:12`` is the 7th to 12th predicted frame. The trainer's own log-spaced windows
(``split_up_losses``: edges ``[0] + int(exp(linspace(0, log T, min(T, 5))))``,
``num_time_intervals = 5``, rollouts capped at ``max_rollout_steps = 100``) are reported as
well. VRMSE is The Well's: ``sqrt(mean (pred - y)^2 / (var y + 1e-7))`` per sample, step and
field, averaged.

    .venv/bin/python scripts/example_the_well.py --threads 1       # ~9 min on one core
    .venv/bin/python scripts/example_the_well.py --smoke --out /tmp/well  # seconds (tests)

Writes ``<out>/example_the_well.json`` and ``<out>/example_the_well.md`` (the tables),
default ``--out runs/the_well_example``. Needs the ``well`` extra (``the-well``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the solver's BLAS against torch's threads
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_time_to_accuracy.py

import h5netcdf  # noqa: E402
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pdeml.config import compose, dump, merge  # noqa: E402
from pdeml.datasets import generate_dataset  # noqa: E402
from pdeml.datasets.schema import create_layout, read_attrs  # noqa: E402
from pdeml.datasets.the_well_export import export_the_well  # noqa: E402
from pdeml.datasets.timeseries import TrajectoryDataset  # noqa: E402
from pdeml.evaluate import evaluate_run  # noqa: E402
from pdeml.solvers.problems import NavierStokes2D, make_problem  # noqa: E402
from pdeml.solvers.problems.base import Variable, box_boundaries  # noqa: E402
from pdeml.trainers.checkpoint import load_surrogate  # noqa: E402
from pdeml.trainers.fit import train  # noqa: E402
from pdeml.trainers.rollout import evaluate_rollout  # noqa: E402

# The Well's channel order: t0 fields, then the t1 field's components (its loader's names).
FIELDS = ["pressure", "velocity_x", "velocity_y"]
GRID = ("time", "y", "x")
VARIABLES = {
    "pressure": Variable(GRID, "1", "kinematic pressure, zero mean (pressure Poisson equation)"),
    "velocity_x": Variable(GRID, "1", "velocity, x component (from the streamfunction)"),
    "velocity_y": Variable(GRID, "1", "velocity, y component (from the streamfunction)"),
    "Reynolds": Variable((), "1", "Reynolds number 1 / viscosity (The Well's convention)"),
}
WELL_SPLITS = {"train": "train", "val": "valid", "test": "test"}
WINDOWS = {"6:12": (6, 12), "13:30": (13, 30)}  # The Well's docs/benchmarks.md
MAX_ROLLOUT = 100  # The Well's trainer default max_rollout_steps
N_INTERVALS = 5  # ... and num_time_intervals
REFERENCE = ("For scale only, a far harder set (256 x 512, Re 1e4-5e5, a tracer): The Well's "
             "FNO on its shear_flow scores one-step 1.189, 6:12 >10, 13:30 >10 "
             "(its docs/benchmarks.md).")

RECIPE: dict[str, Any] = {
    "name": "pdeml_shear_flow",
    "problem": {"resolution": 64, "viscosity": 2e-3, "forcing": "kolmogorov",
                "forcing_amplitude": 0.2, "forcing_wavenumber": 2, "sigma": 0.5,
                "start_time": 5.0, "final_time": 10.0, "n_snapshots": 50, "dt": 5e-3},
    "splits": {"train": 40, "val": 4, "test": 8},
    "seed": 0,
    "history": 4,
    "residual": True,
    "model": {"name": "FNO", "n_modes": [16, 16], "hidden_channels": 32, "n_layers": 4},
    "module": {"lr": 3e-3, "weight_decay": 1e-4, "scheduler": "onecycle"},
    "batch_size": 16,
    "max_epochs": 20,
}
# Smoke sizes (tests): the same path on 16^2 (solved on 32^2), 16 rollout steps.
SMOKE: dict[str, Any] = {
    "problem": {"resolution": 16, "solver_resolution": 32, "viscosity": 1e-2,
                "forcing_amplitude": 1.0, "final_time": 7.0, "n_snapshots": 20},
    "splits": {"train": 4, "val": 1, "test": 2},
    "model": {"n_modes": [4, 4], "hidden_channels": 8, "n_layers": 2},
    "batch_size": 8, "max_epochs": 2,
}


# ------------------------------------------------------------------------------- helpers
def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (a killed run never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def stage(out: Path, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The result of stage ``name``: cached in ``out/stages``, else computed and cached."""
    path = out / "stages" / f"{name}.json"
    if path.exists():
        return {**json.loads(path.read_text()), "cached": True}
    t0 = time.perf_counter()
    result = fn()
    result["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(path, result)
    return {**result, "cached": False}


def check_recipe(out: Path, recipe: dict[str, Any]) -> None:
    """Cached stages are reused only for the recipe that made them."""
    path = out / "recipe.json"
    if path.exists() and json.loads(path.read_text()) != recipe:
        raise SystemExit(f"example_the_well: error: {out} holds a run of another recipe "
                         f"({path}); choose another --out")
    write_json(path, recipe)


def well_file(out: Path, recipe: dict[str, Any], split: str) -> Path:
    name = recipe["name"]
    return out / "well" / name / "data" / WELL_SPLITS[split] / f"{name}.hdf5"


def pressure(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Zero-mean pressure of a periodic incompressible velocity on the unit square.

    Solves ``Laplacian p = 2 (u_x v_y - u_y v_x)`` (the divergence of the momentum equation
    at unit density; the Kolmogorov force is divergence-free) spectrally over the last two
    axes ``(y, x)``.
    """
    n_y, n_x = u.shape[-2:]
    ky = 2 * np.pi * np.fft.fftfreq(n_y, 1.0 / n_y)[:, None]
    kx = 2 * np.pi * np.fft.fftfreq(n_x, 1.0 / n_x)[None, :]
    uh, vh = np.fft.fft2(u), np.fft.fft2(v)

    def grad(fh: np.ndarray, k: np.ndarray) -> np.ndarray:
        return np.fft.ifft2(1j * k * fh).real

    rhs = 2 * (grad(uh, kx) * grad(vh, ky) - grad(uh, ky) * grad(vh, kx))
    k2 = kx**2 + ky**2
    ph = -np.fft.fft2(rhs) / np.where(k2 > 0, k2, 1.0)
    ph[..., 0, 0] = 0.0
    return np.fft.ifft2(ph).real


def trainer_windows(n_steps: int, n_intervals: int = N_INTERVALS) -> dict[str, list[int]]:
    """The time windows The Well's trainer logs for a rollout of ``n_steps`` steps.

    Its ``split_up_losses``: edges ``[0] + [int(exp(x)) for x in linspace(0, log T,
    min(T, n_intervals))]`` (truncation can end the last window one step short); none
    when that makes one window (it then logs ``T=all`` only); windows that hold no step are
    left out here (The Well would log NaN).
    """
    k = min(n_steps, n_intervals)
    edges = [0] + [int(np.exp(x)) for x in np.linspace(0, np.log(n_steps), k)]
    if len(edges) == 2:
        return {}
    return {f"{a}:{b}": [a, b] for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a}


# ------------------------------------------------------------------------------- data
def generate(recipe: dict[str, Any], out: Path) -> dict[str, Any]:
    problem = make_problem("navier_stokes", **recipe["problem"])
    paths = generate_dataset(problem, out / "solver", recipe["splits"], seed=recipe["seed"],
                             progress=False)
    return {"files": {k: str(v) for k, v in paths.items()}, "dt_used": problem.dt_used}


def derive_split(src: Path, dst: Path) -> None:
    """``src``'s vorticity as The Well's fields (see :func:`pressure`), written atomically."""
    with h5py.File(src, "r") as f:
        w = np.asarray(f["w"][...], np.float64)
        coords = {d: np.asarray(f[d][...]) for d in GRID}
    attrs = {k: v for k, v in read_attrs(src).items() if not k.startswith("_")}
    viscosity = json.loads(attrs["problem_settings"])["viscosity"]
    u, v = NavierStokes2D.velocity(w)
    values = {"pressure": pressure(u, v), "velocity_x": u, "velocity_y": v,
              "Reynolds": np.full(len(w), 1.0 / viscosity)}
    attrs |= {"title": f"pdeml shear-flow-like set ({attrs.get('split')}), The Well's fields",
              "input_vars": json.dumps([f"{n}[0]" for n in FIELDS]),
              "output_vars": json.dumps([f"{n}[1]" for n in FIELDS]),
              "derived_from": "w: velocity from the streamfunction, pressure from the "
                              "pressure Poisson equation (scripts/example_the_well.py)"}
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    with h5netcdf.File(tmp, "w") as g:
        made = create_layout(g, len(w), coords, VARIABLES,
                             boundaries=box_boundaries("periodic", FIELDS))
        for name, a in values.items():
            made[name][...] = a.astype(made[name].dtype)
        for c in "xy":  # the components of The Well's t1 field ``velocity``
            made[f"velocity_{c}"].attrs.update({"well_field": "velocity", "well_order": 1,
                                                "well_component": c})
        made["Reynolds"].attrs["well_sample_varying"] = 0  # one value: a constant scalar
        g.attrs.update(attrs)
    os.replace(tmp, dst)


def derive(recipe: dict[str, Any], out: Path) -> dict[str, Any]:
    files = {}
    for split in recipe["splits"]:
        files[split] = str(out / "data" / f"{split}.h5")
        derive_split(out / "solver" / f"{split}.h5", Path(files[split]))
    return {"files": files, "fields": FIELDS}


def export(recipe: dict[str, Any], out: Path) -> dict[str, Any]:
    done = {}
    for split in recipe["splits"]:
        dst = well_file(out, recipe, split)
        src = out / "data" / f"{split}.h5"
        done[split] = export_the_well(src, dst, name=recipe["name"], overwrite=True)
        done[split]["command"] = (f"pdeml export-data {src} --format the_well --out {dst} "
                                  f"--name {recipe['name']}")
    return {"files": done}


def well_dataset(recipe: dict[str, Any], out: Path, **kwargs: Any) -> Any:
    from the_well.data import WellDataset

    return WellDataset(path=str(out / "well" / recipe["name"]), well_split_name="test",
                       n_steps_input=recipe["history"], **kwargs)


def well_load(recipe: dict[str, Any], out: Path) -> dict[str, Any]:
    """The Well's loader on the exported test split, checked against pdeml's frames."""
    h = recipe["history"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = well_dataset(recipe, out, n_steps_output=1)
        meta = ds.metadata
        names = [n for order in sorted(meta.field_names) for n in meta.field_names[order]]
        with h5py.File(out / "data" / "test.h5", "r") as f:
            frames = np.stack([f[n][...] for n in FIELDS], -1).transpose(0, 1, 3, 2, 4)
        per_traj = frames.shape[1] - h
        equal = []
        for k in (0, len(ds) - 1):
            b, t = divmod(k, per_traj)
            item = ds[k]
            equal.append(np.array_equal(item["input_fields"].numpy(), frames[b, t:t + h])
                         and np.array_equal(item["output_fields"][0].numpy(),
                                            frames[b, t + h]))
    checks = {"fields": names == FIELDS, "windows": len(ds) == len(frames) * per_traj,
              "frames_equal": all(equal), "constant_scalars":
              list(meta.constant_scalar_names) == ["Reynolds"]}
    if not all(checks.values()):
        raise RuntimeError(f"The Well's loader disagrees with pdeml's file: {checks}")
    return {"dataset_name": meta.dataset_name, "fields": names, "n_windows": len(ds),
            "spatial_resolution": list(meta.spatial_resolution), "checks": checks,
            "warnings": [str(w.message) for w in caught]}


# ------------------------------------------------------------------------------- model
def train_config(recipe: dict[str, Any], out: Path) -> dict[str, Any]:
    data = out / "data"
    return {
        "seed": recipe["seed"],
        "data": {"train": str(data / "train.h5"), "val": str(data / "val.h5"),
                 "test": str(data / "test.h5"), "batch_size": recipe["batch_size"],
                 "rollout": {"fields": FIELDS, "history": recipe["history"],
                             "residual": recipe["residual"]}},
        "model": recipe["model"],
        "module": recipe["module"],
        "trainer": {"max_epochs": recipe["max_epochs"], "enable_progress_bar": False},
    }


def train_fno(recipe: dict[str, Any], out: Path) -> dict[str, Any]:
    """``pdeml train --config shear_fno.yaml``; a killed run resumes from its last.ckpt."""
    cfg_path, run = out / "shear_fno.yaml", out / "run"
    dump(train_config(recipe, out), cfg_path)
    if (run / "metrics.json").exists():  # trained, but killed before the stage was cached
        metrics = json.loads((run / "metrics.json").read_text())
    elif (run / "checkpoints" / "last.ckpt").exists():
        metrics = train(compose([], []), run, resume=True)
    else:
        metrics = train(compose([cfg_path], []), run, overwrite=True)
    return {"command": f"pdeml train --config {cfg_path} --out {run}", "run": str(run),
            "cost": metrics.get("cost"),
            "test": {k: v for k, v in metrics.items() if k.startswith("test")}}


def evaluate(out: Path, figures: bool) -> dict[str, Any]:
    """``pdeml evaluate RUN --baselines off`` (rollout runs: one-step and rollout metrics)."""
    run = out / "run"
    result = evaluate_run(run, n_plots=int(figures), baselines=False, overwrite=True)
    keys = ("n_samples", "vrmse", "rel_l2", "nrmse", "bsnmse_low", "bsnmse_mid", "bsnmse_high")
    metrics = result["metrics"]
    return {"command": f"pdeml evaluate {run} --baselines off", "out": result["out"],
            **{kind: {k: metrics[kind][k] for k in keys} | {"per_variable": {
                n: metrics[kind]["per_variable"][n]["vrmse"] for n in FIELDS}}
               for kind in ("one_step", "rollout")}}


# ------------------------------------------------------------------------------- scores
def persistence(history: int, n_fields: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The trivial baseline: the next frame is the last input frame."""
    lo = (history - 1) * n_fields
    return lambda x: x[:, lo:lo + n_fields].clone()


def curves(model: Callable, ds: TrajectoryDataset, n_steps: int, forced: bool,
           target: torch.Tensor, meta: Any) -> dict[str, Any]:
    """VRMSE per step and field: pdeml's accumulator and The Well's ``VRMSE`` on the same
    predictions, against pdeml's targets and ``WellDataset``'s (bitwise checked equal)."""
    from the_well.benchmark.metrics import VRMSE

    r = evaluate_rollout(model, ds, n_steps=n_steps, teacher_forcing=forced, keep=len(ds))
    ours = r["accumulator"].to_xarray()["vrmse"].values  # (step, field)
    to_well = (0, 1, 4, 3, 2)  # (B, T, F, y, x) -> (B, T, x, y, F)
    if not torch.equal(r["target"].permute(*to_well), target):
        raise RuntimeError("WellDataset's rollout targets differ from pdeml's")
    theirs = VRMSE()(r["pred"].permute(*to_well).double(), target.double(), meta)
    theirs = theirs.mean(0).numpy()  # mean over trajectories, as The Well's rollout test
    rel = np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-300)
    return {"pdeml": ours.T.tolist(), "the_well": theirs.T.tolist(),
            "max_rel_diff": float(rel.max())}


def score(recipe: dict[str, Any], out: Path) -> dict[str, Any]:
    h = recipe["history"]
    well = well_dataset(recipe, out, full_trajectory_mode=True, max_rollout_steps=MAX_ROLLOUT)
    target = torch.stack([well[i]["output_fields"] for i in range(len(well))])
    n_steps = target.shape[1]
    surrogate, _ = load_surrogate(out / "run")
    models = {"FNO": (surrogate, recipe["residual"]),
              "persistence": (persistence(h, len(FIELDS)), False)}
    test = out / "data" / "test.h5"
    result: dict[str, Any] = {"n_trajectories": len(well), "n_steps": n_steps, "models": {}}
    for name, (model, residual) in models.items():
        ds = TrajectoryDataset(test, FIELDS, history=h, residual=residual)
        result["models"][name] = {
            kind: curves(model, ds, n_steps, forced, target, well.metadata)
            for kind, forced in (("one_step", True), ("rollout", False))}
    return result


def summary(per_step: list[list[float]], n_steps: int) -> dict[str, dict[str, float]]:
    """Window means per field (and over fields, The Well's ``full``) of step curves."""
    rows = {name: np.asarray(c) for name, c in zip(FIELDS, per_step, strict=True)}
    rows["all fields"] = np.mean(list(rows.values()), axis=0)
    windows = {**WINDOWS, "all": (0, n_steps), **trainer_windows(n_steps)}
    return {field: {w: float(c[a:b].mean()) for w, (a, b) in windows.items() if c[a:b].size}
            for field, c in rows.items()}


def tables(scores: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The summaries of every model, and the Markdown tables in The Well's layout."""
    n = scores["n_steps"]
    summaries = {name: {kind: {src: summary(m[kind][src], n) for src in ("pdeml", "the_well")}
                        for kind in ("one_step", "rollout")}
                 for name, m in scores["models"].items()}
    cut = {w: f"{w} ({a}:{min(b, n)})" if b > n else w for w, (a, b) in WINDOWS.items()}
    cols = ["one-step", *(f"rollout {cut[w]}" for w in WINDOWS), f"rollout 0:{n}",
            "vs the_well"]
    lines = [f"| model | field | {' | '.join(cols)} |", "|---|---|" + "---|" * len(cols)]
    for name, s in summaries.items():
        for field in ("all fields", *FIELDS):
            ours, theirs = ([s["one_step"][src][field]["all"],
                             *(s["rollout"][src][field].get(w) for w in WINDOWS),
                             s["rollout"][src][field]["all"]] for src in ("pdeml", "the_well"))
            diff = max((abs(a - b) / abs(b) for a, b in zip(ours, theirs, strict=True)
                        if a is not None), default=0.0)
            cells = ["-" if v is None else f"{v:.4g}" for v in ours]
            lines.append(f"| {name} | {field} | {' | '.join(cells)} | {diff:.1e} |")
    log_windows = list(trainer_windows(n))
    lines += ["", f"| model (all fields) | {' | '.join(f'T={w}' for w in log_windows)} |",
              "|---|" + "---|" * len(log_windows)]
    for name, s in summaries.items():
        values = s["rollout"]["pdeml"]["all fields"]
        lines.append(f"| {name} | {' | '.join(f'{values[w]:.4g}' for w in log_windows)} |")
    return summaries, "\n".join(lines)


# ------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/the_well_example"))
    ap.add_argument("--smoke", action="store_true", help="16x16 smoke sizes (tests)")
    ap.add_argument("--epochs", type=int, help="training epochs (default: the recipe's)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    return ap.parse_args(argv)


def caption(recipe: dict[str, Any], scores: dict[str, Any], well: dict[str, Any]) -> str:
    p = recipe["problem"]
    return (f"{recipe['name']}: VRMSE on the test split ({scores['n_trajectories']} "
            f"trajectories, {p['resolution']}^2, {p['n_snapshots']} frames, "
            f"{recipe['history']} in, {scores['n_steps']} rollout steps; The Well's loader: "
            f"{well['n_windows']} one-step windows). One-step: teacher forced from "
            f"{recipe['history']} true frames, mean over every window (The Well's test "
            "VRMSE). Rollout a:b: steps a to b-1 counted from 0 (Python slice of the "
            "per-step curve, as The Well's trainer labels T=a:b). vs the_well: the largest "
            "relative difference of the row's numbers from The Well's own VRMSE on the same "
            "arrays.")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    recipe = merge(RECIPE, SMOKE) if args.smoke else copy.deepcopy(RECIPE)
    if args.epochs:
        recipe["max_epochs"] = args.epochs
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    out = args.out.resolve()
    check_recipe(out, recipe)
    steps = {"generate": lambda: generate(recipe, out), "derive": lambda: derive(recipe, out),
             "export": lambda: export(recipe, out), "well_load": lambda: well_load(recipe, out),
             "train": lambda: train_fno(recipe, out),
             "evaluate": lambda: evaluate(out, figures=not args.smoke),
             "score": lambda: score(recipe, out)}
    stages = {name: stage(out, name, fn) for name, fn in steps.items()}
    scores = stages.pop("score")
    stages["score"] = {k: scores[k] for k in ("seconds", "cached")}
    summaries, table = tables(scores)
    text = f"{caption(recipe, scores, stages['well_load'])}\n\n{table}\n\n{REFERENCE}\n"
    report = {"example": "the_well", "smoke": args.smoke, "recipe": recipe,
              "windows": WINDOWS, "trainer_windows": trainer_windows(scores["n_steps"]),
              "n_steps": scores["n_steps"], "summary": summaries,
              "max_rel_diff": max(m[k]["max_rel_diff"] for m in scores["models"].values()
                                  for k in ("one_step", "rollout")),
              "per_step": scores["models"], "stages": stages,
              "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                              "python": sys.version.split()[0], "cpu_count": os.cpu_count()}}
    write_json(out / "example_the_well.json", report)
    (out / "example_the_well.md").write_text(text)
    print(text)
    print(f"written to {out / 'example_the_well.json'} and example_the_well.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
