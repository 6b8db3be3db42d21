"""Spectral-Refiner against the solver it competes with: error against wall time per window.

For each case a space-time FNO (Fourier in t, y, x; windows of 10 -> 10 snapshots 0.2 apart)
is trained on the coarse grid through ``pdeml train``'s path, and every scored test window is
predicted on the fine grid by

- **the FNO alone** (one forward pass on the fine grid);
- **FNO + refiner** (:func:`pdeml.trainers.refine.refine_batch`, one window at a time), with
  each residual (``trapezoid``: between consecutive predicted snapshots from the last input
  snapshot; ``snapshot``: the authors', each snapshot on its own) and several step counts;
- **pdeml's solver** (:func:`pdeml.baselines.spectral_solver`) started from the same last
  input snapshot: on the fine grid with the time step enlarged 1x to 100x (up to one step per
  snapshot interval) and on grids 2x and 4x coarser (the snapshot Fourier-truncated, the
  result Fourier-interpolated back);

all scored on the same windows against the fine reference (relative L2 over the 10 predicted
snapshots, median over windows), times per window (median), one thread each.

Cases (``--cases``):

- ``nu1e-3_128``: the paper's window (nu = 1e-3, t in [30, 50]), trained on 32^2, refined on
  128^2 (``configs/data/ns_turbulence_128.yaml``);
- ``nu1e-4_256``: nu = 1e-4 (128^2 under-resolves it), t in [20, 40], trained on 64^2, refined
  on 256^2 (``configs/data/ns_turbulence_256.yaml``);
- ``unknown_128``: the ``nu1e-3_128`` model and grids, but the test trajectories have viscosity
  1.4e-3 and forcing amplitude 0.09 while the user knows only the nominal 1e-3 and 0.1 (the
  training data's). Both the refiner and the solver are run with the nominal parameters and
  with parameters fitted to each input window by
  :func:`pdeml.trainers.parameter_guard.fit_parameters` (the fit's time is counted in both);
  the solver with the true parameters is shown as an oracle no user has.

For every refiner point the table gives the cheapest solver setting that reaches its error
and the time ratio (``<= 0.5`` is the issue's target). Writes ``pareto.json`` and
``pareto_<case>.png`` under ``--out`` and prints Markdown tables; data, models and measured
points are cached there, so a re-run resumes (``--fresh`` re-measures the points).

    python scripts/bench_refiner_pareto.py --prepare     # data and models (~35 min, untimed)
    OPENBLAS_NUM_THREADS=1 python scripts/bench_refiner_pareto.py            # the timed points
    python scripts/bench_refiner_pareto.py --cases nu1e-3_128 --max-windows 2 --steps 5 10 \\
        --epochs 1 --dt-factors 20 100                                      # a smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pdeml.baselines import spectral_solver  # noqa: E402
from pdeml.config import load_yaml  # noqa: E402
from pdeml.datasets import generate_dataset  # noqa: E402
from pdeml.datasets.schema import read_attrs  # noqa: E402
from pdeml.datasets.spacetime import WindowDataset  # noqa: E402
from pdeml.evaluate import load_surrogate  # noqa: E402
from pdeml.solvers.problems import make_problem  # noqa: E402
from pdeml.solvers.problems.navier_stokes import forcing_field  # noqa: E402
from pdeml.trainers.fit import train  # noqa: E402
from pdeml.trainers.refine import refine_batch  # noqa: E402
from pdeml.trainers.residuals import VorticityResidual, window_residual  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N_IN = N_OUT = 10
CASES: dict[str, dict[str, Any]] = {
    "nu1e-3_128": {"config": "configs/data/ns_turbulence_128.yaml",
                   "model": {"n_modes": [6, 8, 8], "hidden_channels": 12}},
    "nu1e-4_256": {"config": "configs/data/ns_turbulence_256.yaml",
                   "model": {"n_modes": [6, 16, 16], "hidden_channels": 16}},
    "unknown_128": {"config": "configs/data/ns_turbulence_128.yaml", "model_of": "nu1e-3_128",
                    "test_options": {"viscosity": 1.4e-3, "forcing_amplitude": 0.09},
                    "test_seed": 7},
}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/bench/pareto"))
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--steps", type=int, nargs="+", default=[10, 30, 100, 300],
                   help="refiner Adam steps (each a separate run: the schedule depends on it)")
    p.add_argument("--forms", nargs="+", default=["trapezoid", "snapshot"])
    p.add_argument("--snapshot-steps", type=int, nargs="+", default=[10, 50],
                   help="steps for the authors' residual (theirs: 50; each step costs 2-3x a "
                        "trapezoid step, float64)")
    p.add_argument("--dt-factors", type=float, nargs="+", default=[1, 2, 5, 10, 20, 50, 100],
                   help="solver steps as multiples of the data's (capped at one per snapshot)")
    p.add_argument("--coarsen", type=int, nargs="+", default=[1, 2, 4],
                   help="solver grids: the fine grid divided by these")
    p.add_argument("--max-windows", type=int, default=None,
                   help="score the first N test windows (default all)")
    p.add_argument("--fresh", action="store_true", help="re-measure cached points")
    p.add_argument("--prepare", action="store_true",
                   help="only generate the data and train the models (untimed; may share the "
                        "machine), then stop")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args()


# -- data and models ---------------------------------------------------------------------------

def make_data(cfg: Path, out: Path, options: dict[str, Any] | None = None,
              seed: int | None = None, test_only: bool = False) -> dict[str, Path]:
    spec = load_yaml(cfg)
    names = ("test",) if test_only else ("train", "val", "test")
    splits = {s: spec[f"n_{s}"] for s in names if spec.get(f"n_{s}")}
    paths = {s: out / f"{s}.h5" for s in splits}
    if all(p.exists() for p in paths.values()):
        return paths
    problem = make_problem(spec["problem"], **{**spec["options"], **(options or {})})
    return generate_dataset(problem, out, splits, seed=int(spec.get("seed", 0) if seed is None
                                                           else seed), chunk=1, progress=True)


def train_config(paths: dict[str, Path], epochs: int, model: dict[str, Any]) -> dict:
    return {
        "seed": 0,
        "data": {"train": str(paths["train"]), "val": str(paths["val"]),
                 "test": str(paths["test"]), "batch_size": 8,
                 "windows": {"field": "w", "n_in": N_IN, "n_out": N_OUT, "stride": 2}},
        "model": {"name": "FNO", "n_layers": 4, "domain_padding": [0.5, 0.0, 0.0], **model},
        "module": {"lr": 5e-3, "scheduler": "cosine"},
        "trainer": {"max_epochs": epochs, "enable_progress_bar": False},
    }


def trained(case: str, args: argparse.Namespace) -> tuple[Path, dict[str, Path]]:
    spec = CASES[case]
    base = spec.get("model_of", case)
    paths = make_data(ROOT / CASES[base]["config"], args.out / f"data_{base}")
    run = args.out / f"fno_{base}"
    stamp = run / "pareto_train.json"
    if not stamp.exists():
        t0 = time.perf_counter()
        train(train_config(paths, args.epochs, CASES[base]["model"]), run)
        stamp.write_text(json.dumps({"train_s": time.perf_counter() - t0,
                                     "load_average": os.getloadavg()}))
    return run, paths


# -- the methods ---------------------------------------------------------------------------------

def rel_l2(pred: np.ndarray, truth: np.ndarray) -> float:
    d = np.linalg.norm(np.asarray(pred, np.float64) - truth)
    err = float(d / np.linalg.norm(truth))
    return err if math.isfinite(err) else math.inf


def residual_with(attrs: dict[str, Any], n: int, dt: float, viscosity: float | None = None,
                  amplitude_scale: float = 1.0) -> VorticityResidual:
    forcing = forcing_field(attrs.get("forcing", "fno"), attrs.get("forcing_amplitude"),
                            int(attrs.get("forcing_wavenumber", 4)), n)
    nu = float(attrs["viscosity"]) if viscosity is None else viscosity
    return VorticityResidual(nu, dt, torch.from_numpy(forcing * amplitude_scale),
                             float(attrs.get("drag", 0.0)))


def fitted(residual: VorticityResidual, x: torch.Tensor) -> tuple[dict[str, Any], float]:
    from pdeml.trainers.parameter_guard import fit_parameters

    t0 = time.perf_counter()
    fit = fit_parameters(residual, x[:, 0].double())
    return fit, time.perf_counter() - t0


WRONG = {"right": {}, "viscosity x3": {"viscosity": 3.0}, "viscosity /3": {"viscosity": 1 / 3},
         "forcing +20%": {"forcing": 1.2}, "forcing -20%": {"forcing": 0.8},
         "dt +20%": {"dt": 1.2}, "dt -20%": {"dt": 0.8}}


def guard_checks(attrs: dict[str, Any], n: int, dt: float, x: torch.Tensor) -> dict[str, Any]:
    """The parameter guard on these input windows ``(N, 10, n, n)``, with the file's
    parameters and with each wrong setting of issue #28 (data no test generated)."""
    from pdeml.trainers.parameter_guard import check_parameters

    out = {}
    for name, scale in WRONG.items():
        res = residual_with(attrs, n, dt * scale.get("dt", 1.0),
                            float(attrs["viscosity"]) * scale.get("viscosity", 1.0),
                            scale.get("forcing", 1.0))
        rep = check_parameters(res, x.double())
        out[name] = {"ratio": rep["ratio"], "accepted": rep["ok"], "suspects": rep["suspects"]}
    out["all_right"] = out["right"]["accepted"] and not any(
        v["accepted"] for k, v in out.items() if k not in ("right", "all_right"))
    return out


class Window:
    """One scored window: input ``x`` ``(1, 1, 10, n, n)`` and truth ``y`` (10, n, n)."""

    def __init__(self, ds: WindowDataset, k: int) -> None:
        x, y = ds[k]
        self.k, self.x, self.y = k, x[None], y[0].numpy().astype(np.float64)


def fno_point(surrogate: Any, w: Window) -> dict[str, Any]:
    with torch.no_grad():
        surrogate.model(surrogate.in_normalizer.encode(w.x))  # warm
        t0 = time.perf_counter()
        pred = surrogate.out_normalizer.decode(surrogate.model(surrogate.in_normalizer.encode(
            w.x)))
        sec = time.perf_counter() - t0
    return {"error": rel_l2(pred[0, 0].numpy(), w.y), "seconds": sec}


def refine_point(surrogate: Any, w: Window, residual: VorticityResidual, steps: int, form: str,
                 extra_seconds: float = 0.0) -> dict[str, Any]:
    _, after, info = refine_batch(surrogate, w.x, residual, steps=steps, residual_form=form)
    return {"error": rel_l2(after[0, 0].numpy(), w.y),
            "seconds": info["seconds"] + extra_seconds}


def solver_point(solve: Callable[[np.ndarray], np.ndarray], w: Window,
                 extra_seconds: float = 0.0) -> dict[str, Any]:
    start = w.x[:, :, -1].numpy().astype(np.float64)  # (1, 1, n, n): the last input snapshot
    t0 = time.perf_counter()
    try:
        pred = solve(start)
    except ValueError as err:  # a blow-up (the CFL check sees NaN): no answer at this setting
        return {"error": math.inf, "seconds": time.perf_counter() - t0 + extra_seconds,
                "unstable": str(err)}
    return {"error": rel_l2(pred[0], w.y), "seconds": time.perf_counter() - t0 + extra_seconds}


def solver_settings(attrs: dict[str, Any], n: int, args: argparse.Namespace,
                    **over: Any) -> dict[str, tuple[Callable, dict[str, Any]]]:
    """``label -> (solve, description)`` for grids ``n / c`` and steps ``dt x f``."""
    spacing = (float(attrs["final_time"]) - float(attrs.get("start_time", 0.0))) / float(
        attrs["n_snapshots"])
    most = spacing / float(attrs["dt"])
    window = {"start_time": 0.0, "final_time": spacing * N_OUT, "n_snapshots": N_OUT}
    out = {}
    for c in args.coarsen:
        grid = n // c
        for f in sorted({min(float(f), most) for f in args.dt_factors}):
            label = f"solver {grid}², dt {float(attrs['dt']) * f:.3g}"
            solve = spectral_solver("navier_stokes", attrs, n, grid, f, **window, **over)
            out[label] = (solve, {"grid": grid, "dt": float(attrs["dt"]) * f})
    return out


# -- one case ------------------------------------------------------------------------------------

def measure_case(case: str, args: argparse.Namespace) -> dict[str, Any]:
    spec = CASES[case]
    run, paths = trained(case, args)
    test = paths["test"]
    if "test_options" in spec:
        test = make_data(ROOT / spec["config"], args.out / f"data_{case}", spec["test_options"],
                         seed=spec["test_seed"], test_only=True)["test"]
    surrogate, _ = load_surrogate(run)
    surrogate.eval()
    ds = WindowDataset(test, "w_fine", n_in=N_IN, n_out=N_OUT)
    n = ds.spatial_shape[-1]
    count = len(ds) if args.max_windows is None else min(args.max_windows, len(ds))
    windows = [Window(ds, k) for k in range(count)]
    nominal = json.loads(read_attrs(paths["train"])["problem_settings"])  # what the user knows
    truth = json.loads(read_attrs(test)["problem_settings"])
    res_nominal = window_residual(str(paths["train"]), "w_fine", n)
    dt = res_nominal.dt
    cache_path = args.out / f"points_{case}.json"
    cache = {} if args.fresh or not cache_path.exists() else json.loads(cache_path.read_text())

    def point(label: str, family: str, fn: Callable[[Window], dict[str, Any]],
              **meta: Any) -> None:
        if label in cache:
            return
        rows = []
        for w in windows:
            rows.append({"window": w.k, **fn(w)})
        cache[label] = {"family": family, **meta, "windows": rows,
                        "error": statistics.median(r["error"] for r in rows),
                        "seconds": statistics.median(r["seconds"] for r in rows),
                        "load_average": os.getloadavg()[0]}
        tmp = cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache))
        tmp.replace(cache_path)
        print(f"{case}: {label}: error {cache[label]['error']:.3e}, "
              f"{cache[label]['seconds']:.3f} s/window", flush=True)

    if not spec.get("test_options"):
        inputs = ds.inputs(range(len(ds)))[:, 0]
        cache["_guard"] = guard_checks(truth, n, dt, inputs)
        print(f"{case}: parameter guard on {len(ds)} test windows: " + ", ".join(
            f"{k} {v['ratio']:.3g} {'ok' if v['accepted'] else 'refused'}"
            for k, v in cache["_guard"].items() if k != "all_right"), flush=True)
    point("FNO", "fno", lambda w: fno_point(surrogate, w))
    unknown = "test_options" in spec
    fits: dict[int, tuple[dict[str, Any], float]] = {}
    if unknown:
        from pdeml.trainers.parameter_guard import check_parameters

        for w in windows:
            fits[w.k] = fitted(res_nominal, w.x)
        rep = check_parameters(res_nominal, ds.inputs(range(len(ds)))[:, 0].double())
        guard_nominal = {"ratio": rep["ratio"], "accepted": rep["ok"],
                         "suspects": rep["suspects"], "message": rep["message"]}
        print(f"{case}: parameter guard with the nominal parameters: {rep['message']}",
              flush=True)

    def fit_residual(w: Window) -> VorticityResidual:
        fit = fits[w.k][0]
        return residual_with(nominal, n, dt, fit["viscosity"], fit["forcing_scale"])

    for form in args.forms:
        for steps in (args.snapshot_steps if form == "snapshot" else args.steps):
            tag = f"refiner {form}, {steps} steps"
            if unknown:
                point(f"{tag} (nominal parameters)", f"refiner_{form}",
                      lambda w, s=steps, f=form: refine_point(surrogate, w, res_nominal, s, f),
                      steps=steps, form=form, parameters="nominal")
                point(f"{tag} (fitted parameters)", f"refiner_{form}_fitted",
                      lambda w, s=steps, f=form: refine_point(
                          surrogate, w, fit_residual(w), s, f, fits[w.k][1]),
                      steps=steps, form=form, parameters="fitted")
            else:
                point(tag, f"refiner_{form}",
                      lambda w, s=steps, f=form: refine_point(surrogate, w, res_nominal, s, f),
                      steps=steps, form=form)
    for label, (solve, meta) in solver_settings(nominal, n, args).items():
        point(label + (" (nominal parameters)" if unknown else ""), "solver",
              lambda w, fn=solve: solver_point(fn, w), **meta,
              **({"parameters": "nominal"} if unknown else {}))
    if unknown:
        best = {"coarsen": [1], "dt_factors": args.dt_factors}
        sub = argparse.Namespace(**{**vars(args), **best})
        for label, (_, meta) in solver_settings(nominal, n, sub).items():
            def fitted_solve(w: Window, meta: dict[str, Any] = meta) -> dict[str, Any]:
                fit, sec = fits[w.k]
                over = {"viscosity": fit["viscosity"], "forcing_amplitude": fit["forcing_scale"]
                        * float(nominal.get("forcing_amplitude") or 0.1)}
                factor = meta["dt"] / float(nominal["dt"])
                spacing = dt
                solve = spectral_solver("navier_stokes", nominal, n, meta["grid"], factor,
                                        start_time=0.0, final_time=spacing * N_OUT,
                                        n_snapshots=N_OUT, **over)
                return solver_point(solve, w, sec)
            point(label + " (fitted parameters)", "solver_fitted", fitted_solve, **meta,
                  parameters="fitted")
        for label, (solve, meta) in solver_settings(truth, n, sub).items():
            point(label + " (true parameters: oracle)", "solver_oracle",
                  lambda w, fn=solve: solver_point(fn, w), **meta, parameters="true")
    out = {"case": case, "grid": n, "windows": count, "test": str(test), "run": str(run),
           "nominal": {k: nominal.get(k) for k in ("viscosity", "forcing_amplitude", "dt")},
           "truth": {k: truth.get(k) for k in ("viscosity", "forcing_amplitude")},
           "train_s": json.loads((run / "pareto_train.json").read_text())["train_s"],
           "points": cache}
    if unknown:
        out["fits"] = {str(k): v[0] for k, v in fits.items()}
        out["guard_nominal"] = guard_nominal
    out["pareto"] = compare(cache)
    return out


def compare(points: dict[str, Any]) -> list[dict[str, Any]]:
    """Each refiner point beside the cheapest solver setting (with the same knowledge of the
    parameters) reaching its error."""
    rows = []
    for label, p in points.items():
        if label.startswith("_") or not p["family"].startswith("refiner"):
            continue
        fam = "solver_fitted" if p.get("parameters") == "fitted" else "solver"
        reach = [(q["seconds"], name) for name, q in points.items()
                 if not name.startswith("_") and q["family"] == fam and q["error"] <= p["error"]]
        sec, name = min(reach) if reach else (None, None)
        rows.append({"refiner": label, "error": p["error"], "seconds": p["seconds"],
                     "solver": name, "solver_seconds": sec,
                     "ratio": p["seconds"] / sec if sec else None})
    return rows


# -- output --------------------------------------------------------------------------------------

STYLE = {"fno": ("k", "*"), "refiner_trapezoid": ("tab:red", "o"),
         "refiner_snapshot": ("tab:orange", "s"), "refiner_trapezoid_fitted": ("tab:red", "D"),
         "refiner_snapshot_fitted": ("tab:orange", "D"), "solver": ("tab:blue", "^"),
         "solver_fitted": ("tab:cyan", "v"), "solver_oracle": ("tab:gray", "x")}


def plot(result: dict[str, Any], path: Path | None = None, ax: Any = None) -> None:
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 5))
    seen = set()
    for label, p in result["points"].items():
        if label.startswith("_") or not math.isfinite(p["error"]):
            continue  # unstable settings are listed in the table, not plotted
        fam = p["family"]
        fam_label = fam.replace("_", " ") + (" (nominal)" if p.get("parameters") == "nominal"
                                             and fam.startswith("refiner") else "")
        color, marker = STYLE.get(fam, ("m", "."))
        hollow = p.get("parameters") == "nominal" and fam.startswith("refiner")
        ax.scatter(p["seconds"], max(p["error"], 1e-12), c="none" if hollow else color,
                   edgecolors=color, marker=marker, s=40,
                   label=None if fam_label in seen else fam_label)
        seen.add(fam_label)
        if fam == "solver" and "grid" in p:
            ax.annotate(f"{p['grid']}", (p["seconds"], max(p["error"], 1e-12)), fontsize=6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("seconds per window (one thread)")
    ax.set_ylabel("relative L2 error, 10 snapshots (median)")
    ax.set_title(f"{result['case']}: {result['windows']} windows on {result['grid']}²")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    if fig is not None:
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)


def plot_all(results: dict[str, Any], path: Path) -> None:
    """Every case side by side, one panel each."""
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.5), squeeze=False)
    for ax, result in zip(axes[0], results.values(), strict=True):
        plot(result, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(result: dict[str, Any]) -> str:
    lines = [f"\n### {result['case']} ({result['windows']} windows, {result['grid']}²)\n",
             "| method | error (median) | s / window |", "|---|---|---|"]
    points = {k: v for k, v in result["points"].items() if not k.startswith("_")}
    for label, p in sorted(points.items(), key=lambda kv: kv[1]["seconds"]):
        lines.append(f"| {label} | {p['error']:.2e} | {p['seconds']:.3f} |")
    lines += ["", "| refiner setting | error | s | cheapest solver reaching it | s | ratio |",
              "|---|---|---|---|---|---|"]
    for r in result["pareto"]:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "–"
        sec = f"{r['solver_seconds']:.3f}" if r["solver_seconds"] is not None else "–"
        lines.append(f"| {r['refiner']} | {r['error']:.2e} | {r['seconds']:.3f} | "
                     f"{r['solver'] or 'none'} | {sec} | {ratio} |")
    if "_guard" in result["points"]:
        g = result["points"]["_guard"]
        lines += ["", "| parameters given to the guard | ratio | verdict | suspects |",
                  "|---|---|---|---|"]
        lines += [f"| {k} | {v['ratio']:.3g} | {'accepted' if v['accepted'] else 'refused'} | "
                  f"{', '.join(v['suspects']) or '–'} |" for k, v in g.items() if k != "all_right"]
    return "\n".join(lines)


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"setup": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "load_average_start": os.getloadavg(), "cases": {}}
    if args.prepare:
        for case in args.cases:
            trained(case, args)
            spec = CASES[case]
            if "test_options" in spec:
                make_data(ROOT / spec["config"], args.out / f"data_{case}", spec["test_options"],
                          seed=spec["test_seed"], test_only=True)
        print(f"prepared {', '.join(args.cases)} under {args.out}")
        return
    for case in args.cases:
        results["cases"][case] = result = measure_case(case, args)
        plot(result, args.out / f"pareto_{case}.png")
    results["load_average_end"] = os.getloadavg()
    plot_all(results["cases"], args.out / "pareto.png")
    path = args.out / "pareto.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(path)
    print(f"load average {results['load_average_start'][0]:.1f} -> "
          f"{results['load_average_end'][0]:.1f}")
    for result in results["cases"].values():
        print(table(result))
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
