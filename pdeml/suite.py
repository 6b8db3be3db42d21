"""The CFD benchmark suite behind ``pdeml evaluate --suite cfd``.

For every chosen case (cavity, channel, step, cylinder) and parameter sweep (CFDBench's BC,
PROP and GEO subsets) the suite generates the data (case-level train / val / test split),
trains each chosen operator as a one-step autoregressive surrogate (input: the current
``u, v`` frame, the fluid ``mask`` and the case parameters that vary in the sweep, as constant
channels; output: the next frame), and evaluates it one step ahead (teacher forced) and as a
rollout from the first frame. A persistence baseline (next frame = current frame) gives
every table a floor to beat. Outputs under ``out``: ``results.md``, ``results.csv``,
``results.nc`` (xarray), ``results.json``, ``figures/`` and ``index.html``.

Finished pieces are reused: data files by the generator's resumption, trained runs by their
``metrics.json``; ``overwrite`` retrains.

CFDBench's protocol (``case_list="cfdbench"``): the data are CFDBench's case lists and split
(:mod:`pdeml.solvers.problems.cfdbench_cases`; the sizes cap each split), frames 0.1 s apart,
one-step pairs cut at CFDBench's converged-frame rule where CFDBench's loader of the problem
applies it (:func:`pdeml.solvers.problems.cfdbench_cases.stable_state_diff`: the dam keeps
every pair), and every model gets, next to pdeml's pooled metrics (fluid points only unless
``masked=False``), CFDBench's own scores (:class:`pdeml.metrics.CFDBenchScores`: per-batch
means over batches of 16) in the columns ``cfdbench_nmse/mse/rmse/mae``, with CFDBench's
identity baseline (next frame = input frame) as the row ``identity``. The scored fields
follow CFDBench's ``train_auto.evaluate`` per model family (:func:`cfdbench_fields`: the
identity row on u, pdeml's grid operators on u and v as CFDBench's FNO / U-Net / ResNet;
column ``cfdbench_fields``); ``cfdbench_fields`` of :func:`run_cfd_suite` overrides it for
every row. ``nonauto=True`` adds CFDBench's non-autoregressive task: each operator maps
``(case parameters, t, x, y)`` to ``(u, v)`` frame by frame
(:class:`pdeml.datasets.timeseries.NonAutoDataset`), scored with the same profile (on u, as
CFDBench's ``train.py``) over every frame of the test cases (row ``<operator>-nonauto``).
``cfdbench.md`` holds the scores in CFDBench's table layout (a row per model, a column per
problem x subset x metric), and each problem gets a rollout-error-versus-step plot of all its
subsets and models.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pdeml.progress import note
from pdeml.protocols import (  # noqa: F401  (re-exported: the suite's scoring)
    CFDBENCH_GRID_FIELDS,
    CFDBENCH_U_ONLY,
    _channels,
    cfdbench_fields,
    cfdbench_profile,
    nonauto_profile,
)

CASES = ("cavity", "channel", "step", "cylinder")
TWO_PHASE_CASES = ("tube", "dam")  # volume of fluid; opt-in (--cases tube,dam): slower to generate
SWEEPS = ("bc", "prop", "geo")
BASELINE = "persistence"
SIZES: dict[str, dict[str, Any]] = {
    # small enough for tests and a first look (minutes on a laptop for all 12 combinations)
    "quick": {"options": {"resolution": 32, "cells": 16, "final_time": 1.0, "n_snapshots": 10},
              "splits": {"train": 8, "val": 2, "test": 2}, "epochs": 10, "batch_size": 8,
              "lr": 3e-3, "model": {"FNO": {"n_modes": [12, 12], "hidden_channels": 16,
                                            "n_layers": 3}}},
    # CFDBench's 64x64 grid and 8:1:1 case split; solver settings at the problem defaults
    "full": {"options": {"resolution": 64}, "splits": {"train": 80, "val": 10, "test": 10},
             "epochs": 100, "batch_size": 32, "lr": 1e-3,
             "model": {"FNO": {"n_modes": [16, 16], "hidden_channels": 32, "n_layers": 4}}},
}
METRICS = ("rel_l2", "nrmse", "nmse", "rmse", "mae", "max_error", "brmse",
           "frmse_low", "frmse_mid", "frmse_high")
CFDBENCH_COLUMNS = ("cfdbench_nmse", "cfdbench_mse", "cfdbench_rmse", "cfdbench_mae")
COLUMNS = ("case", "sweep", "operator", "params", "train_s",
           *METRICS, "rollout_rel_l2", "rollout_rmse", "rollout_final_rel_l2",
           *CFDBENCH_COLUMNS, "cfdbench_fields")
IDENTITY = "identity"
def _check_choice(kind: str, values: Sequence[str], allowed: Sequence[str]) -> list[str]:
    values = list(values)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"unknown {kind} {', '.join(bad) or '(none given)'}; choose from "
                         f"{', '.join(allowed)}")
    return values


def _size(size: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(size, dict):
        unknown = sorted(set(size) - set(SIZES["quick"]))
        if unknown:
            raise ValueError(f"unknown suite size setting(s) {', '.join(unknown)}; "
                             f"use {', '.join(SIZES['quick'])}")
        return {**SIZES["quick"], **size}
    if size not in SIZES:
        raise ValueError(f"unknown suite size '{size}'; use quick or full")
    return dict(SIZES[size])


def _data(case: str, sweep: str, size: dict[str, Any], root: Path, seed: int,
          progress: bool, cases: str = "random") -> dict[str, Path]:
    from pdeml.datasets.writer import generate_dataset
    from pdeml.solvers.problems import make_problem

    problem = make_problem(case, sweep=sweep, cases=cases, **size["options"])
    splits = dict(size["splits"])
    if cases == "cfdbench":  # CFDBench's split, each capped by the size's count
        listed = problem.cfdbench_splits()
        splits = {k: min(int(n), len(listed[k])) for k, n in splits.items()}
    name = f"{case}_{sweep}" + ("_cfdbench" if cases == "cfdbench" else "")
    return generate_dataset(problem, root / name, splits, seed=seed, progress=progress)


def rollout_spec(case: str, train: str | Path, cases: str = "random") -> dict[str, Any]:
    """Fields, static channels (mask + the case parameters that vary in ``train``), history;
    with ``cases="cfdbench"`` CFDBench's parameter names and, where CFDBench's loader of the
    problem applies it (cavity, tube / channel, cylinder; not the dam / step), its
    converged-frame rule."""
    import h5py

    from pdeml.solvers.problems.base import make_problem
    from pdeml.solvers.problems.cfdbench_cases import (
        CASE_LISTS,
        STABLE_STATE_DIFF,
        case_list,
        stable_state_diff,
    )

    kind = type(make_problem(case))
    cfdbench = getattr(kind, "CFDBENCH", None)  # the two-phase problems keep their own lists
    names = list(kind.PARAMS) + (list(case_list(cfdbench).defaults) if cfdbench else [])
    with h5py.File(train, "r") as f:
        varying = [p for p in dict.fromkeys(names) if p in f and f[p].ndim == 1
                   and np.ptp(np.asarray(f[p][...], np.float64)) > 0]
    fields = list(getattr(kind, "ROLLOUT_FIELDS", ("u", "v")))  # two-phase flows add alpha
    spec = {"fields": fields, "static": ["mask", *varying], "history": 1, "residual": True}
    if cases == "cfdbench":  # as CFDBench's loader of this problem: the dam keeps every pair
        tol = stable_state_diff(cfdbench or kind.name) if (cfdbench or kind.name) in \
            CASE_LISTS else STABLE_STATE_DIFF
        if tol is not None:
            spec["stable_state_diff"] = tol
    return spec


def _persistence(spec: dict[str, Any]) -> Any:
    """Next frame = newest frame (as a whole-frame or an increment model, per ``spec``)."""
    n, lo = len(spec["fields"]), (spec["history"] - 1) * len(spec["fields"])

    def model(x: torch.Tensor) -> torch.Tensor:
        newest = x[:, lo : lo + n]
        return torch.zeros_like(newest) if spec.get("residual") else newest

    return model


def _train(op: str, paths: dict[str, Path], spec: dict[str, Any], run: Path,
           size: dict[str, Any], kwargs: dict[str, Any], seed: int, progress: bool,
           overwrite: bool) -> tuple[Any, float, int]:
    from pdeml.trainers.checkpoint import load_surrogate
    from pdeml.trainers.fit import train

    if overwrite:
        shutil.rmtree(run, ignore_errors=True)
    done = run / "metrics.json"
    if not done.exists():
        shutil.rmtree(run, ignore_errors=True)  # an unfinished run starts over
        cfg = {"seed": seed,
               "data": {"train": str(paths["train"]), "val": str(paths["val"]),
                        "test": str(paths["test"]), "batch_size": size["batch_size"],
                        "rollout": spec},
               "model": {"name": op, **kwargs},
               "module": {"lr": size["lr"]},
               "trainer": {"max_epochs": size["epochs"], "enable_progress_bar": progress}}
        start = time.perf_counter()
        result = train(cfg, run)
        result["train_s"] = time.perf_counter() - start
        done.write_text(json.dumps(result, indent=2))
    surrogate, _ = load_surrogate(run)
    n_params = sum(p.numel() for p in surrogate.model.parameters())
    return surrogate, float(json.loads(done.read_text())["train_s"]), n_params


def _row(case: str, sweep: str, op: str, n_params: int, train_s: float,
         rep: dict[str, Any]) -> dict[str, Any]:
    one, free = rep["one_step"], rep["rollout"]
    curve = free.get("per_step", {}).get("rel_l2", [free["rel_l2"]])
    bench = {f"cfdbench_{k}": v for k, v in rep.get("cfdbench", {}).items()
             if f"cfdbench_{k}" in CFDBENCH_COLUMNS}
    if "cfdbench_fields" in rep:
        bench["cfdbench_fields"] = ",".join(rep["cfdbench_fields"])
    return {"case": case, "sweep": sweep, "operator": op, "params": n_params,
            "train_s": round(train_s, 2), **{m: one[m] for m in METRICS},
            "rollout_rel_l2": free["rel_l2"], "rollout_rmse": free["rmse"],
            "rollout_final_rel_l2": curve[-1], **bench}


def run_cfd_suite(
    out: str | Path,
    cases: Sequence[str] = CASES,
    sweeps: Sequence[str] = SWEEPS,
    operators: Sequence[str] = ("FNO",),
    size: str | dict[str, Any] = "quick",
    epochs: int | None = None,
    model_kwargs: dict[str, dict[str, Any]] | None = None,
    data_dir: str | Path | None = None,
    seed: int = 0,
    baseline: bool = True,
    overwrite: bool = False,
    progress: bool = False,
    case_list: str = "random",
    nonauto: bool = False,
    masked: bool = True,
    cfdbench_fields: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Train and evaluate ``operators`` on the CFDBench-style cases and write the report.

    Parameters
    ----------
    out
        Report folder (runs go to ``out/runs``, data to ``out/data`` unless ``data_dir``).
    cases, sweeps
        Subsets of :data:`CASES` (plus the two-phase :data:`TWO_PHASE_CASES`) and of
        ``bc, prop, geo, all``.
    operators
        Names known to :func:`pdeml.operators.list_operators`.
    size
        ``"quick"`` (32x32, 8/2/2 cases, 10 epochs) or ``"full"`` (64x64, CFDBench's 80/10/10
        cases, 100 epochs); see :data:`SIZES`. A dict of the same keys is merged over
        ``quick`` (``{"splits": {...}, "options": {...}}`` replace those entries whole).
    epochs
        Override the size's epoch count.
    model_kwargs
        ``{operator: {argument: value}}`` merged over the size's defaults.
    data_dir
        Where the generated datasets live (shared between reports).
    seed
        Seed of data generation and training.
    baseline
        Add the persistence baseline's row.
    overwrite
        Retrain runs that already finished.
    progress
        Show generation and training progress bars.
    case_list
        ``"random"`` (draws in pdeml's ranges) or ``"cfdbench"`` (CFDBench's case lists,
        split, converged-frame rule and score profile; see the module docstring).
    nonauto
        Also train and score each operator on CFDBench's non-autoregressive task.
    masked
        pdeml's metrics over fluid points only (``False``: every grid point).
    cfdbench_fields
        Fields of the CFDBench scores of every row (``["u"]`` or ``["u", "v"]``); ``None``
        (default) scores each model as CFDBench's code scores its family
        (:func:`cfdbench_fields`: identity u; grid operators u and v; the
        non-autoregressive rows u, as CFDBench's ``train.py``).

    Returns
    -------
    dict
        ``rows`` (one per case, sweep and operator) and the paths of the written files.
    """
    from pdeml.operators import list_operators
    from pdeml.solvers.problems.cfdbench import SWEEPS as ALL_SWEEPS

    cases = _check_choice("case", cases, CASES + TWO_PHASE_CASES)
    sweeps = _check_choice("sweep", sweeps, ALL_SWEEPS)
    operators = _check_choice("operator", operators, list_operators())
    _check_model_kwargs(model_kwargs or {}, operators)  # before any data or run is made
    cfg = _size(size)
    cfg["epochs"] = int(epochs or cfg["epochs"])
    if cfg["epochs"] < 1:
        raise ValueError(f"epochs must be positive, got {epochs}")
    out = Path(out)
    if case_list not in ("random", "cfdbench"):
        raise ValueError(f"unknown case_list '{case_list}'; use random or cfdbench")
    if cfdbench_fields is not None:
        cfdbench_fields = tuple(_check_choice("CFDBench field", cfdbench_fields, ("u", "v")))
    ctx = {"cfg": cfg, "out": out, "data": Path(data_dir) if data_dir else out / "data",
           "seed": seed, "progress": progress, "overwrite": overwrite,
           "kwargs": model_kwargs or {}, "cases": case_list, "masked": masked,
           "nonauto": nonauto, "cfdbench_fields": cfdbench_fields}
    models = [BASELINE] * bool(baseline) + operators
    ctx["runs"] = [0, len(cases) * len(sweeps) * len(models)]  # done, total: progress lines
    rows, records, figures = [], [], {}
    for case in cases:
        for sweep in sweeps:
            recs, figs, extra = _case_sweep(case, sweep, models, ctx)
            rows += [_row(*rec) for rec in recs] + extra
            records += [rec[:3] + rec[5:] for rec in recs]
            figures[f"{case} / {sweep}"] = figs
        figures[f"{case}: rollout error"] = [_problem_growth(case, recs_of(records, case),
                                                             out)]
    result = {"rows": rows, **_write(out, rows, records, figures, cfg, size)}
    if case_list == "cfdbench":
        from pdeml.report import cfdbench_table

        (out / "cfdbench.md").write_text(cfdbench_table(rows))
        result["cfdbench"] = str(out / "cfdbench.md")
    return result


def _check_model_kwargs(model_kwargs: dict[str, Any], operators: Sequence[str]) -> None:
    """``{operator: {argument: value}}``: each operator one of the suite's, each argument one
    it takes, of the right type (``FNO.wings`` named as the user wrote it)."""
    from pdeml.config import validate_section
    from pdeml.operators.base import _REGISTRY

    for op, kwargs in model_kwargs.items():
        if op not in operators:
            raise ValueError(f"--set {op}.ARG: {op} is not among the suite's operators "
                             f"({', '.join(operators)})")
        if not isinstance(kwargs, dict):
            raise ValueError(f"--set takes OPERATOR.argument=value, got {op}={kwargs!r}")
        validate_section(op, kwargs, _REGISTRY[op], skip=("in_channels", "out_channels"))


def recs_of(records: list[tuple], case: str) -> list[tuple]:
    """The ``(case, sweep, operator, report)`` records of one problem."""
    return [r for r in records if r[0] == case]


def _problem_growth(case: str, records: list[tuple], out: Path) -> Path:
    """Rollout error against step of every subset and model of one problem, one plot."""
    from pdeml.report import plot_error_growth

    curves = {f"{sweep} {op}": rep["rollout"].get("per_step", {}).get(
        "rel_l2", [rep["rollout"]["rel_l2"]]) for _, sweep, op, rep in records}
    return plot_error_growth(curves, out / "figures" / f"{case}_rollout_by_subset.png",
                             title=f"{case}: rollout error per subset")


def _case_sweep(case: str, sweep: str, models: list[str],
                ctx: dict[str, Any]) -> tuple[list[tuple], list[Path], list[dict[str, Any]]]:
    """Data, training and evaluation of every model on one case and sweep: the records of
    the one-step models, their figures, and the rows of the non-autoregressive models."""
    from pdeml.report import plot_error_growth

    cfg, cases = ctx["cfg"], ctx["cases"]
    paths = _data(case, sweep, cfg, ctx["data"], ctx["seed"], ctx["progress"], cases)
    spec = rollout_spec(case, paths["train"], cases)
    key, records, figs, curves = f"{case}_{sweep}", [], [], {}
    for op in models:
        ctx["runs"][0] += 1
        note(f"run {ctx['runs'][0]}/{ctx['runs'][1]}: {case}/{sweep} {op}")
        rec = _evaluate_one(case, sweep, op, paths, spec, ctx)
        records.append(rec)
        figs += rec[5]["figures"]
        free = rec[5]["rollout"]
        curves[rec[2]] = free.get("per_step", {}).get("rel_l2", [free["rel_l2"]])
    figs.insert(0, plot_error_growth(curves, ctx["out"] / "figures" / f"{key}_growth.png",
                                     title=f"{case} {sweep}: rollout error"))
    extra = []
    if ctx["nonauto"]:
        extra = [_nonauto_row(case, sweep, op, paths, spec, ctx) for op in models
                 if op != BASELINE]
    return records, figs, extra


def _evaluate_one(case: str, sweep: str, op: str, paths: dict[str, Path],
                  spec: dict[str, Any], ctx: dict[str, Any]) -> tuple:
    """Train (or reuse) one one-step model and evaluate it: a suite record."""
    from pdeml.evaluate import rollout_report

    cfg, out, key = ctx["cfg"], ctx["out"], f"{case}_{sweep}"
    if op == BASELINE:
        model, train_s, n_params = _persistence(spec), 0.0, 0
    else:
        kwargs = {**cfg["model"].get(op, {}), **ctx["kwargs"].get(op, {})}
        model, train_s, n_params = _train(op, paths, spec, out / "runs" / key / op, cfg,
                                          kwargs, ctx["seed"], ctx["progress"],
                                          ctx["overwrite"])
    rep = rollout_report(model, paths["test"], spec, out / "figures", tag=f"{key}_{op}_",
                         title=f"{case} {sweep} {op}", masked=ctx["masked"])
    name = op
    if ctx["cases"] == "cfdbench":
        chosen = ctx.get("cfdbench_fields")
        fields = chosen or cfdbench_fields(op)
        prof = cfdbench_profile(model, paths["test"], spec, masked=ctx["masked"],
                                fields=fields, identity_fields=chosen or cfdbench_fields(IDENTITY))
        # the baseline's CFDBench scores are CFDBench's identity (unmasked input frame)
        who = "identity" if op == BASELINE else "model"
        rep["cfdbench"], rep["cfdbench_fields"] = prof[who], prof["fields"][who]
        name = IDENTITY if op == BASELINE else op
    return (case, sweep, name, n_params, train_s, rep)


def _nonauto_row(case: str, sweep: str, op: str, paths: dict[str, Path],
                 spec: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """Train (or reuse) ``op`` on the non-autoregressive task and score it: a table row."""
    cfg, key = ctx["cfg"], f"{case}_{sweep}"
    task = {"fields": spec["fields"], "static": spec["static"], "task": "nonauto"}
    kwargs = {**cfg["model"].get(op, {}), **ctx["kwargs"].get(op, {})}
    model, train_s, n_params = _train(op, paths, task, ctx["out"] / "runs" / key /
                                      f"{op}-nonauto", cfg, kwargs, ctx["seed"],
                                      ctx["progress"], ctx["overwrite"])
    prof = nonauto_profile(model, paths["test"], task, masked=ctx["masked"],
                           fields=ctx.get("cfdbench_fields") or ("u",))
    pooled = prof["pooled"]
    return {"case": case, "sweep": sweep, "operator": f"{op}-nonauto", "params": n_params,
            "train_s": round(train_s, 2), **{m: pooled[m] for m in METRICS},
            "rollout_rel_l2": float("nan"), "rollout_rmse": float("nan"),
            "rollout_final_rel_l2": float("nan"),
            **{f"cfdbench_{k}": prof["model"][k] for k in ("nmse", "mse", "rmse", "mae")},
            "cfdbench_fields": ",".join(prof["fields"]["model"])}


def _write(out: Path, rows: list[dict[str, Any]], records: list[tuple], figures: dict,
           cfg: dict[str, Any], size: str | dict[str, Any]) -> dict[str, str]:
    from pdeml import report

    files = {"markdown": report.write_markdown(rows, COLUMNS, out / "results.md"),
             "csv": report.write_csv(rows, COLUMNS, out / "results.csv"),
             "netcdf": write_netcdf(records, out / "results.nc")}
    summary = {"size": size if isinstance(size, str) else "custom", "settings": cfg,
               "rows": rows}
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    files["json"] = out / "results.json"
    title = f"pdeml CFD suite ({summary['size']})"
    files["index"] = report.write_index(out / "index.html", title, rows, COLUMNS, figures,
                                        links=[files[k] for k in ("markdown", "csv", "netcdf",
                                                                  "json")],
                                        settings={"size": summary["size"], **cfg})
    return {k: str(v) for k, v in files.items()}


def write_netcdf(records: list[tuple[str, str, str, dict[str, Any]]], path: str | Path) -> Path:
    """Suite metrics as netCDF (h5netcdf): scalars over ``(case, sweep, operator)``,
    per-variable values over ``variable`` and error-versus-step curves over ``step``."""
    import xarray as xr

    axes = {d: sorted({r[i] for r in records}, key=[r[i] for r in records].index)
            for i, d in enumerate(("case", "sweep", "operator"))}
    variables = list(records[0][3]["rollout"]["per_variable"])
    n_steps = max(len(r[3]["rollout"].get("per_step", {}).get("rel_l2", [0])) for r in records)
    shape = tuple(len(v) for v in axes.values())
    data: dict[str, np.ndarray] = {}
    for case, sweep, op, rep in records:
        at = (axes["case"].index(case), axes["sweep"].index(sweep), axes["operator"].index(op))
        for mode in ("one_step", "rollout"):
            m = rep[mode]
            for k in METRICS:
                data.setdefault(f"{mode}_{k}", np.full(shape, np.nan))[at] = m[k]
                per = data.setdefault(f"{mode}_{k}_per_variable",
                                      np.full((*shape, len(variables)), np.nan))
                per[at] = [m["per_variable"][v][k] for v in variables]
            curve = m.get("per_step", {}).get("rel_l2", [m["rel_l2"]])
            data.setdefault(f"{mode}_rel_l2_per_step",
                            np.full((*shape, n_steps), np.nan))[at][: len(curve)] = curve
    dims = {0: tuple(axes), 1: (*axes, "variable")}
    ds = xr.Dataset(
        {k: (dims[0] if v.ndim == 3 else dims[1] if k.endswith("variable") else (*axes, "step"),
             v) for k, v in data.items()},
        coords={**axes, "variable": variables, "step": np.arange(1, n_steps + 1)},
        attrs={"title": "pdeml CFD suite metrics",
               "metrics": "see pdeml.metrics.MetricAccumulator"},
    )
    path = Path(path)
    ds.to_netcdf(path, engine="h5netcdf")
    return path
