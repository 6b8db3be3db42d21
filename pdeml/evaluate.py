"""Metrics over whole test sets, sample figures, and evaluation of a trained run.

The metric definitions live in :mod:`pdeml.metrics` (:class:`MetricAccumulator`, re-exported
here), figures and tables in :mod:`pdeml.report`, the CFD benchmark suite in
:mod:`pdeml.suite` and rollouts in :mod:`pdeml.trainers.rollout`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from pdeml.baselines import ledger, rollout_ledger, summary_line  # noqa: E402
from pdeml.checks import check_int, check_output  # noqa: E402
from pdeml.config import load_yaml  # noqa: E402
from pdeml.datasets.reader import H5Dataset  # noqa: E402
from pdeml.datasets.schema import (  # noqa: E402
    DatasetError,
    check_problem,
    open_h5,
    read_attrs,
)
from pdeml.metrics import MetricAccumulator  # noqa: E402
from pdeml.progress import track  # noqa: E402
from pdeml.trainers.checkpoint import find_checkpoint, load_surrogate  # noqa: E402
from pdeml.trainers.module import Surrogate  # noqa: E402

# Seconds the baseline ledger may spend solving: fewer test samples are scored (the same ones
# for the surrogate and every solver setting) when all of them would take longer.
LEDGER_BUDGET = 60.0


@torch.no_grad()
def evaluate_model(
    model: Callable[[torch.Tensor], torch.Tensor], dataset: Dataset, batch_size: int = 32,
    names: list[str] | None = None,
) -> dict[str, Any]:
    """Metrics of ``model`` over every sample of ``dataset`` (pairs ``(x, y)``).

    ``names`` label the output channels (by default the dataset's output selectors when
    there is one per channel); see :meth:`MetricAccumulator.compute` for the keys.
    """
    outputs = getattr(dataset, "outputs", None)
    if names is None and outputs and len(outputs) == getattr(dataset, "out_channels", -1):
        names = list(outputs)
    acc = MetricAccumulator(names)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for x, y in track(loader, desc="evaluate", unit="batch"):
        acc.update(model(x), y)
    return acc.compute()


def plot_samples(
    x: np.ndarray, y: np.ndarray, pred: np.ndarray, path: str | Path, titles: tuple = (),
    names: Sequence[str] = ("input", "output"), extent: Sequence[float] | None = None,
    masks: Sequence[np.ndarray | None] | None = None,
) -> Path:
    """Input / truth / prediction / error panels, one row per sample (channel 0; 1-D or 2-D).

    Truth and prediction share one colour scale per sample, the error's is symmetric about
    zero; panels keep the physical aspect (``extent = (x0, x1, y0, y1)``), solid cells are grey
    (``masks``), and titles carry the variable names, the sample and its relative L2 error.
    ``titles`` (legacy) replaces the four column labels.
    """
    from pdeml import report

    n = len(x)
    w, h = report._panel_size(extent)
    fig, axes = plt.subplots(n, 4, figsize=(4 * w, h * n), squeeze=False)
    for i in range(n):
        mask = masks[i] if masks is not None else None
        xin = x[i, 0]
        report.draw_field(axes[i, 0], fig, xin, report._limits(report._masked(xin, mask)),
                          "input", f"sample {i}: {names[0]}", extent, mask)
        report.comparison_row(axes[i, 1:], fig, names[1], y[i, 0], pred[i, 0], extent, mask)
        if titles and i == 0:
            for ax, label in zip(axes[0], titles, strict=False):
                ax.set_title(label)
    return report._save(fig, path)


def field_surrogate(run: str | Path, threads: int | None = None) -> Any:
    """A run's surrogate as a :class:`pdeml.solvers.hybrid.FieldSurrogate` (named fields).

    The input and output names are the run's ``data.inputs``/``data.outputs`` (else its
    training file's declared variables); a variable with a ``mode`` dimension (Ritz
    vectors) becomes one channel per mode, named ``<var>:<i>``, in the loader's order. A run
    trained with the ``subspace`` loss loads its last checkpoint: its best one is chosen by
    ``val_l2``, which compares vectors entry by entry and means nothing for a subspace.
    """
    import h5py

    from pdeml.solvers.hybrid import FieldSurrogate

    ckpt = find_checkpoint(run)
    cfg_path = ckpt.parent.parent / "config.yaml"
    cfg = load_yaml(cfg_path) if cfg_path.exists() else {}  # the weights load once, below
    data_cfg = cfg.get("data", {})
    train = data_cfg.get("train")
    if not train or not Path(train).is_file():
        raise DatasetError(f"{run}: its training file {train!r} is needed to name the "
                           "surrogate's fields and is missing")
    inputs = data_cfg.get("inputs") or json.loads(_attr(train, "input_vars"))
    outputs = data_cfg.get("outputs") or json.loads(_attr(train, "output_vars"))
    loss = cfg.get("module", {}).get("loss")
    name = loss.get("name") if isinstance(loss, dict) else loss
    if name == "subspace" and Path(run).is_dir():
        ckpt = Path(run) / "checkpoints" / "last.ckpt"
    module, _ = load_surrogate(ckpt)
    names = []
    with h5py.File(train, "r") as f:
        field_ndim = f[inputs[0]].ndim if inputs and inputs[0] in f else None
        for v in outputs:
            if v in f and field_ndim is not None and f[v].ndim == field_ndim + 1:
                names += [f"{v}:{i}" for i in range(f[v].shape[1])]  # (sample, mode, *grid)
            else:
                names.append(v)
    return FieldSurrogate(module, inputs, names, threads=threads)


def _refuse_point_clouds(data: str | Path | None, verb: str) -> None:
    """A one-line error for point-cloud data, which ``evaluate``/``export`` do not take yet."""
    from pdeml.datasets.pointcloud import is_pointcloud

    if data is not None and Path(data).exists() and is_pointcloud(data):
        raise DatasetError(f"{data} holds point clouds; pdeml {verb} takes grid runs only "
                           "(the test metrics of a point-cloud run are in its metrics.json)")


def _run_problem(data_cfg: dict[str, Any]) -> str | None:
    """The problem a run was trained on: its online stream's, or its training file's."""
    online = data_cfg.get("online")
    if isinstance(online, dict) and online.get("problem"):
        return str(online["problem"])
    train = data_cfg.get("train")
    if train and Path(train).is_file():
        try:
            return read_attrs(train).get("problem")
        except (DatasetError, OSError):  # moved or damaged since: nothing to compare with
            return None
    return None


def evaluate_run(
    run: str | Path, data: str | Path | None = None, out: str | Path | None = None,
    n_plots: int = 4, batch_size: int = 32, overwrite: bool = False,
    baselines: bool = True,
) -> dict[str, Any]:
    """Evaluate a trained run on a test file: ``metrics.json`` and ``samples.png`` in ``out``.

    An earlier evaluation in ``out`` (its ``metrics.json``) is replaced only with
    ``overwrite``. With ``baselines`` (grid runs), ``metrics["baselines"]`` holds the
    ledger of :mod:`pdeml.baselines` (the surrogate beside pdeml's own solver at equal
    accuracy and equal time, and the breakeven), and ``result["summary"]`` its one line.
    """
    check_int(n_plots, "--n-plots", 0)
    check_int(batch_size, "batch_size", 1)
    if out is not None:
        check_output(Path(out) / "metrics.json", overwrite, "evaluation")
    surrogate, cfg = load_surrogate(run)
    data_cfg = cfg.get("data", {})
    data = data or data_cfg.get("test")
    if data is None:
        raise DatasetError("no test data: pass --data or train with data.test set")
    out = Path(out) if out else Path(run if Path(run).is_dir() else Path(run).parent) / "eval"
    check_output(out / "metrics.json", overwrite, "evaluation")
    _refuse_point_clouds(data, "evaluate")
    check_problem(data, _run_problem(data_cfg), "the run was trained on")
    if (data_cfg.get("rollout") or {}).get("task") == "nonauto":  # CFDBench's task
        from pdeml.protocols import nonauto_profile

        scores = nonauto_profile(surrogate, data, data_cfg["rollout"], batch_size=16)
        metrics = {"data": str(data), "cfdbench": scores["model"], **scores["pooled"]}
        result = {"metrics": metrics, "out": str(out)}
        if baselines:  # a query here is one frame at a time t: the solver has no such knob
            metrics["baselines"] = {"problem": read_attrs(data).get("problem"), "note": (
                "no solver baseline for the non-autoregressive task yet (a solver reaches a "
                "frame only by marching to it; the rollout task has a ledger)")}
            result["summary"] = summary_line(metrics["baselines"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return result
    if data_cfg.get("rollout"):
        report = rollout_report(surrogate, data, data_cfg["rollout"], out,
                                n_plots=min(n_plots, 1), batch_size=batch_size)
        metrics = {"data": str(data), "one_step": report["one_step"],
                   "rollout": report["rollout"]}
        result = {"metrics": metrics, "out": str(out)}
        if baselines:
            metrics["baselines"] = _rollout_ledger(surrogate, data, data_cfg["rollout"], run,
                                                   cfg)
            result["summary"] = summary_line(metrics["baselines"])
        out.mkdir(parents=True, exist_ok=True)  # rollout_report makes it only for figures
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return result
    inputs = data_cfg.get("inputs") or json.loads(_attr(data, "input_vars"))
    outputs = data_cfg.get("outputs") or json.loads(_attr(data, "output_vars"))
    dataset = H5Dataset(data, inputs, outputs)
    metrics = evaluate_model(surrogate, dataset, batch_size)
    metrics["data"] = str(data)
    if baselines:
        metrics["baselines"] = _ledger(surrogate, dataset, data, run, cfg, inputs, outputs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    k = min(n_plots, len(dataset))
    if k:
        xs, ys = zip(*(dataset[i] for i in range(k)), strict=True)
        x, y = torch.stack(xs), torch.stack(ys)
        with torch.no_grad():
            pred = surrogate(x)
        plot_samples(x.numpy(), y.numpy(), pred.numpy(), out / "samples.png",
                     names=(str(inputs[0]), str(outputs[0])), **_geometry(data, k))
    result = {"metrics": metrics, "out": str(out)}
    if baselines:
        result["summary"] = summary_line(metrics["baselines"])
    return result


def _problem_settings(attrs: dict[str, Any]) -> dict[str, Any]:
    """The file's problem settings (``{}`` when unreadable: the knobs then use defaults)."""
    try:
        return json.loads(attrs.get("problem_settings", "{}"))
    except ValueError:
        return {}


def _ledger(surrogate: Surrogate, dataset: H5Dataset, data: str | Path, run: str | Path,
            cfg: dict[str, Any], inputs: list[str], outputs: list[str],
            max_samples: int = 32) -> dict[str, Any]:
    """The baseline ledger on the first ``max_samples`` test samples (see pdeml.baselines)."""
    attrs = read_attrs(data)
    problem = attrs.get("problem")
    settings = _problem_settings(attrs)
    own = (json.loads(attrs.get("input_vars", "null")), json.loads(attrs.get("output_vars",
                                                                          "null")))
    select = _output_selection(inputs, outputs, own)
    if select is False:
        return {"problem": problem, "note": "the run maps other variables than the problem's "
                f"own ({inputs} -> {outputs}): no solver baseline"}
    n = min(len(dataset), max_samples)
    xs, ys = zip(*(dataset[i] for i in range(n)), strict=True)
    offline, n_train = _offline_costs(run, cfg)
    return ledger(surrogate, problem, settings, torch.stack(xs).numpy(),
                  torch.stack(ys).numpy(), offline, n_train=n_train, budget=LEDGER_BUDGET,
                  select=select)


def _output_selection(inputs: Sequence[str], outputs: Sequence[str],
                      own: tuple[list[str] | None, list[str] | None]) -> Any:
    """How the run's outputs pick from the problem's own (``None``: all of them; a function
    of the solver's ``(B, T, *grid)`` output for ``u[t]``/``u[a:b]`` of a single output), or
    ``False`` when the run maps other variables."""
    from pdeml.datasets.reader import parse_selector

    if list(inputs) != own[0] or own[1] is None:
        return False
    if list(outputs) == own[1]:
        return None
    picked = [parse_selector(o) for o in outputs]
    if len(own[1]) != 1 or len(picked) != 1 or picked[0][0] != own[1][0]:
        return False
    sel = picked[0][1]
    return (lambda y: y[:, [sel]]) if isinstance(sel, int) else (lambda y: y[:, sel])


def _offline_costs(run: str | Path, cfg: dict[str, Any]
                   ) -> tuple[dict[str, float | None], int | None]:
    """Training seconds (the run's ``metrics.json``), generation seconds (the training
    file's cost sidecar, or an online run's streamed samples) and the training sample count.

    An online run's generation overlaps its training; both are counted in full, which can
    only delay the breakeven (the conservative side)."""
    from pdeml.datasets.costs import read_costs

    run_dir = find_checkpoint(run).parent.parent
    cost = {}
    if (run_dir / "metrics.json").exists():
        cost = json.loads((run_dir / "metrics.json").read_text()).get("cost", {})
    train = cfg.get("data", {}).get("train")
    n_train, generation = None, None
    if train and Path(train).is_file():
        n_train = read_attrs(train).get("n_samples")
        try:
            generation = (read_costs(train) or {}).get("wall_seconds_total")
        except DatasetError:  # a damaged sidecar: estimate instead
            generation = None
    streamed = (cost.get("generation") or {}).get("streamed") or {}
    if generation is None and streamed.get("n_samples"):
        generation, n_train = streamed.get("wall_seconds_total"), streamed["n_samples"]
    return {"training": cost.get("train_wall_seconds"), "generation": generation}, n_train


def _rollout_ledger(surrogate: Surrogate, data: str | Path, spec: dict[str, Any],
                    run: str | Path, cfg: dict[str, Any], max_samples: int = 16
                    ) -> dict[str, Any]:
    """The baseline ledger of a rollout: one query is one trajectory (pdeml.baselines)."""
    from pdeml.datasets.timeseries import TrajectoryDataset
    from pdeml.solvers.problems.base import Problem
    from pdeml.trainers.rollout import next_frame

    attrs = read_attrs(data)
    problem = attrs.get("problem")
    ds = TrajectoryDataset(data, **{k: v for k, v in spec.items() if k != "task"})
    n = min(len(ds), max_samples)
    x0, y = (torch.stack(t).numpy() for t in zip(*(ds[i] for i in range(n)), strict=True))
    static = list(spec.get("static") or [])
    mask = (x0[:, ds.history * ds.n_fields + static.index("mask")] if "mask" in static
            else None)
    params = getattr(Problem.registry.get(problem or ""), "PARAMS", {})
    cases = None
    if params:
        with open_h5(data) as f:
            rows = np.asarray(ds.indices[:n])
            cases = [{k: float(f[k][int(r)]) for k in params if k in f} for r in rows]
    settings = _problem_settings(attrs)
    offline, n_train = _offline_costs(run, cfg)
    step = next_frame(surrogate, ds.n_fields, ds.history, ds.residual)
    return rollout_ledger(step, problem, settings, x0, y, ds.history, offline,
                          n_train=n_train, budget=LEDGER_BUDGET, cases=cases,
                          n_steps=ds.n_steps[:n], mask=mask)


def _geometry(data: str | Path, n: int) -> dict[str, Any]:
    """Physical extent and solid-cell masks of the first ``n`` samples, for the figures."""
    from pdeml import report

    masks = [report.sample_mask(data, i) for i in range(n)]
    return {"extent": report.physical_extent(data, 0),
            "masks": None if masks[0] is None else masks}


def _curve(metrics: dict[str, Any], key: str = "rel_l2") -> list[float]:
    return metrics.get("per_step", {}).get(key, [metrics[key]])


def rollout_report(
    surrogate: Callable[[torch.Tensor], torch.Tensor], data: str | Path,
    spec: dict[str, Any], out: str | Path, tag: str = "", title: str = "",
    n_plots: int = 1, batch_size: int = 8, max_spectrum_samples: int = 32,
    masked: bool = True,
) -> dict[str, Any]:
    """One-step and rollout metrics of a one-step surrogate on a test file, with figures.

    Parameters
    ----------
    surrogate
        The model (physical units), input layout of :mod:`pdeml.datasets.timeseries`.
    data
        Test file with the trajectories.
    spec
        ``{"fields": [...], "static": [...], "history": h}`` as in training.
    out
        Folder of the figures (``<tag>fields.png``, ``<tag>spectrum.png``,
        ``<tag>rollout.png``).
    tag, title
        File-name prefix and figure title.
    n_plots
        Draw the field panels (0 skips every figure).
    batch_size
        Trajectories per batch.
    max_spectrum_samples
        Trajectories whose final frames enter the energy spectra.
    masked
        Metrics over fluid points only and field figures with the solid blanked out, where
        the spec has a ``mask`` static channel.

    Returns
    -------
    dict
        ``one_step`` (teacher-forced: every step predicted from true frames) and ``rollout``
        (autoregressive from the first frame) metrics with ``per_step`` curves,
        ``accumulators`` (the two :class:`MetricAccumulator`), and ``figures``.
    """
    from pdeml import report
    from pdeml.datasets.timeseries import TrajectoryDataset
    from pdeml.trainers.rollout import evaluate_rollout

    ds = TrajectoryDataset(data, **{k: v for k, v in spec.items() if k != "task"})
    keep = min(len(ds), max_spectrum_samples) if n_plots else 0
    free = evaluate_rollout(surrogate, ds, batch_size=batch_size, keep=keep, masked=masked)
    forced = evaluate_rollout(surrogate, ds, batch_size=batch_size, teacher_forcing=True,
                              masked=masked)
    result = {"one_step": forced["metrics"], "rollout": free["metrics"],
              "accumulators": (forced["accumulator"], free["accumulator"]), "figures": []}
    if not n_plots:
        return result
    out = Path(out)
    title = title or Path(data).stem
    curves = {"rollout": _curve(free["metrics"]), "one step (teacher forced)":
              _curve(forced["metrics"])}
    per_var = free["accumulator"].to_xarray()["rel_l2"]
    curves |= {f"rollout {v}": per_var.sel(variable=v).values.tolist() for v in ds.fields}
    mask = ds.mask_of([0]) if masked else None
    last = min(free["pred"].shape[1], int(ds.n_steps[0])) - 1  # sample 0's own last step
    pred, target = free["pred"][:, last].numpy(), free["target"][:, last].numpy()
    label = f"{title}: sample 0, rollout step {last + 1}"
    result["figures"] = [
        report.plot_fields(target[0], pred[0], ds.fields, out / f"{tag}fields.png", label,
                           extent=report.physical_extent(data, 0),
                           mask=(mask[0].numpy() != 0) if mask is not None
                           else report.sample_mask(data, 0)),
        report.plot_spectra(target, pred, out / f"{tag}spectrum.png",
                            f"{title}: spectrum at the last step"),
        report.plot_error_growth(curves, out / f"{tag}rollout.png", title=title),
    ]
    return result


def _attr(path: str | Path, name: str) -> str:
    from pdeml.datasets.schema import read_attrs

    attrs = read_attrs(path)
    if name not in attrs:
        raise DatasetError(f"{path} has no '{name}' attribute; configure data.inputs/outputs")
    return attrs[name]
