"""Per-trajectory, label-free spectral refinement (Spectral-Refiner, Cao et al., ICLR 2025).

A trained spatiotemporal operator (a window of past snapshots ``(1, n_in, y, x)`` in, a window
of future snapshots ``(1, n_out, y, x)`` out) predicts a test trajectory; refinement then
improves that one prediction, at inference, without labels: the network is frozen, its output
on the fine grid is computed once and cached, and only an output spectral layer (per-mode
weights and a learnable spectral bias, with every mode the fine grid resolves) is optimized
for a fixed number of Adam steps against the ``H^-1`` norm of the Navier-Stokes residual of
the predicted trajectory. Each trajectory gets its own layer; nothing is shared or kept.

How this follows or departs from the authors' code (torch-cfd, ``fno/finetune.py``
``OutConvFT``, ``fno/sfno.py`` ``OutConv``/``SpectralConvT``, ``fno/losses.py``
``SobolevLoss``, and the notebook ``examples/ex2_SFNO_finetune_fnodata.ipynb``), read, not
copied:

* Data, followed: FNO-paper forcing ``0.1 (sin 2 pi (x + y) + cos 2 pi (x + y))``,
  ``nu = 1e-3``, GRF initial vorticity (``alpha = 2.5, tau = 7``, all modes), the window
  ``t in [30, 50]`` after the transient, 100 snapshots; McWilliams decaying turbulence as an
  initial condition. Departed (scale only): the authors solve 1280 trajectories of
  ``t in [30, 50]`` on 256^2 with ``dt = 1e-3``, train on 64^2 and refine on 256^2; the pdeml
  benchmark solves 7 trajectories of ``t in [30, 70]`` on 64^2 (``nu = 1e-3`` is resolved there)
  with ``dt = 1e-2`` and trains on 16^2, keeping their 4x ratio of refinement to training grid.
* Model, departed: the authors' SFNO maps ``n_in`` steps to ``n_out`` steps with a temporal
  FFT, a learned skip from the last input frame and a trained 1-channel output spectral layer.
  pdeml uses its FNO in 3-D (Fourier in t, y, x) with ``n_in = n_out``; it has no trained
  output spectral layer, so the refiner adds one, initialized to zero (the refined model starts
  exactly as the trained one), on the model's normalized output.
* What is optimized, followed: only the output layer, frozen everything else, latent cached
  (here the frozen network's output), weights and spectral bias with separate learning rates
  (theirs: bias 0.2, weight 1e-4, in unnormalized FFT units; ours are in mode amplitudes of the
  normalized field), more modes than training (theirs 64x64 of a 256^2 grid vs 12x12; ours
  every mode the fine grid resolves below Nyquist), batch of one trajectory, Adam, a fixed
  number of steps (theirs 50) and no validation. Departed: their spectral bias spans
  space-time modes of a time-padded window (``modes_t = 6``); ours is one spatial spectrum per
  output snapshot (every frame its own bias) with the per-mode weight shared over time: in an
  exploratory comparison (one true window with a smooth 3.7% perturbation, 100 constant Adam
  steps of 1e-3) the per-snapshot spatial bias reached 1.0% error, the time-padded space-time
  bias 4.8%, a bias on grid values 3.2% (README). Ours decays the step size on a cosine
  schedule (theirs is constant) to damp the late oscillation seen with a constant step.
* Residual, both offered (``residual_form``). ``"snapshot"``, followed: the authors' residual
  (``OutConvFT._fine_tune`` with ``get_temporal_derivative`` and ``update_residual`` of
  ``fno/data_gen/solvers.py``; the notebook's ``bdf_weight = (0.5, 0.5)`` and marching step
  ``1e-6``, float64): each predicted snapshot's time derivative is the difference quotient of
  one implicit-explicit Crank-Nicolson step of ``+-1e-6`` from it, so ``w_t`` is the
  equation's right-hand side at that snapshot, and the residual is taken at the averaged
  state; consecutive snapshots are never compared and the input window is not read.
  Departed in one detail: the advection is formed from the 2/3-truncated vorticity (the
  solver's de-aliasing), theirs from the full field then truncated.
  :meth:`~pdeml.trainers.residuals.VorticityResidual.snapshot` works out what this residual
  is: ``-a^2 F(w)`` to leading order, ``a = 1e-6 nu 4 pi^2 |k|^2 / 2`` -- the right-hand side
  weighted by ``(nu |k|^2 delta)^2``, zero on steady states, blind to large scales, and
  within a factor of a few of float64 rounding on the grids measured here (tested).
  ``"trapezoid"`` (the default), departed: the trapezoidal (Crank-Nicolson) residual
  *between consecutive snapshots* of the predicted trajectory, starting from the last input
  snapshot (:class:`~pdeml.trainers.residuals.VorticityResidual`), so the true trajectory
  has a residual orders of magnitude below a prediction's (tested). Minimized by Adam it
  *is* a Crank-Nicolson solve with the snapshot spacing as its step, the FNO only its first
  guess: ``scripts/bench_refiner_pareto.py`` prices it against pdeml's solver started from
  the same last input snapshot (README, "When refinement pays").
  Norm, followed: ``||(alpha - Laplacian)^(-1/2) r||`` with ``alpha = 10^(-3/2)``, the square
  averaged over the snapshots (their ``time_average``), spectral with the 2/3 de-aliasing of the
  advection.
* Parameters, added: the residual takes viscosity, forcing and snapshot spacing from the
  file; :mod:`pdeml.trainers.parameter_guard` first checks that the known input windows
  satisfy the equation with them and refuses (``force=True`` / ``--force`` to go on), since
  a wrong parameter makes refinement converge to the wrong equation without a word.
* Grid, followed: the refinement and its residual live on the fine grid (4x the training grid);
  the frozen model is evaluated there directly (an FNO is resolution-independent).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from pdeml.trainers.losses import sobolev_norm
from pdeml.trainers.residuals import VorticityResidual

RESIDUAL_ALPHA = 10 ** -1.5  # the authors' alpha in (alpha - Laplacian)^(-1/2)


class OutputSpectralLayer(nn.Module):
    """``z + irfft2(W * rfft2(z) + b)`` on the kept spatial modes, per trajectory and snapshot.

    ``z`` is ``(batch, channels, time, n, n)``; the transforms are over ``(n, n)`` in amplitude
    units (``norm="forward"``: a coefficient is the amplitude of its Fourier mode). ``W`` (one
    complex number per trajectory, channel and mode) scales the spectrum of ``z``; ``b`` (one
    per trajectory, channel, snapshot and mode) is the spectral bias. Both start at zero, so
    the layer starts as the identity.

    Parameters
    ----------
    shape
        ``(batch, channels, time, n, n)`` of the fields it refines.
    n_modes
        ``"all"`` (every mode below the Nyquist frequency) or the modes kept per axis, counted
        like the FNO's ``n_modes`` (``|k| <= n_modes // 2``).
    """

    def __init__(self, shape: Sequence[int], n_modes: str | int = "all") -> None:
        super().__init__()
        b, c, t, ny, nx = (int(s) for s in shape)
        if ny != nx:
            raise ValueError(f"the output spectral layer needs a square grid, got {ny}x{nx}")
        top = (nx - 1) // 2 if n_modes == "all" else min(int(n_modes) // 2, (nx - 1) // 2)
        ky = torch.fft.fftfreq(nx, 1.0 / nx).abs()[:, None]
        kx = torch.fft.rfftfreq(nx, 1.0 / nx)[None, :]
        self.register_buffer("mask", ((ky <= top) & (kx <= top)).float())
        self.n, self.top = nx, top
        self.weight = nn.Parameter(torch.zeros(b, c, 1, nx, nx // 2 + 1, 2))
        self.bias = nn.Parameter(torch.zeros(b, c, t, nx, nx // 2 + 1, 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z_hat = torch.fft.rfft2(z, norm="forward")
        w, b = torch.view_as_complex(self.weight), torch.view_as_complex(self.bias)
        update = self.mask * (w * z_hat + b)
        return z + torch.fft.irfft2(update, s=(self.n, self.n), norm="forward")


def residual_norm(residual: torch.Tensor) -> torch.Tensor:
    """``H^-1`` norm per trajectory of residuals ``(batch, time, n, n)``: the square of
    ``||(alpha - Laplacian)^(-1/2) r(t)||`` averaged over the snapshots, then the root."""
    return sobolev_norm(residual, s=-1.0, weighting="angular", alpha=RESIDUAL_ALPHA)


# The residuals refinement can minimize (``residual_form``); see the module docstring.
RESIDUAL_FORMS = ("trapezoid", "snapshot")


def trajectory_residual(residual: VorticityResidual, x: torch.Tensor, pred: torch.Tensor,
                        form: str = "trapezoid") -> torch.Tensor:
    """Residual of the predicted window ``pred`` ``(batch, 1, T, n, n)`` after the input
    window ``x`` ``(batch, 1, T_in, n, n)``: ``"trapezoid"``, between consecutive snapshots
    from the last input snapshot (:meth:`VorticityResidual.forward`); ``"snapshot"``, the
    authors' residual of each predicted snapshot on its own
    (:meth:`VorticityResidual.snapshot`, which reads no input)."""
    if x.ndim != 5 or pred.ndim != 5 or x.shape[1] != 1 or pred.shape[1] != 1:
        raise ValueError(f"refinement needs (batch, 1, time, n, n) windows, got input "
                         f"{tuple(x.shape)} and prediction {tuple(pred.shape)}")
    if form == "trapezoid":
        return residual(x[:, 0, -1], pred[:, 0])
    if form == "snapshot":
        return residual.snapshot(pred[:, 0])
    raise ValueError(f"unknown residual form '{form}'; use one of {', '.join(RESIDUAL_FORMS)}")


class _Refinement:
    """One batch of trajectories: the cached frozen output and its output layer."""

    def __init__(self, surrogate: nn.Module, x: torch.Tensor, n_modes: str | int) -> None:
        with torch.no_grad():
            self.z = surrogate.model(surrogate.in_normalizer.encode(x))  # the cached latent
        self.decode = surrogate.out_normalizer.decode
        self.layer = OutputSpectralLayer(self.z.shape, n_modes)

    def prediction(self) -> torch.Tensor:
        return self.decode(self.layer(self.z))


def _schedule(step: int, steps: int) -> float:
    """Cosine decay of the step size from 1 to 0 over ``steps`` Adam steps."""
    return 0.5 * (1.0 + math.cos(math.pi * step / steps))


def refine_batch(
    surrogate: nn.Module, x: torch.Tensor, residual: VorticityResidual, steps: int = 100,
    lr: float = 2e-3, lr_weight: float = 1e-4, n_modes: str | int = "all",
    callback: Callable[[int, torch.Tensor], None] | None = None,
    residual_form: str = "trapezoid",
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Refine the predictions of a batch of input windows; each trajectory independently.

    Parameters
    ----------
    surrogate
        A trained :class:`~pdeml.trainers.module.Surrogate` of a spatiotemporal operator; it is
        not modified.
    x
        Input windows ``(batch, 1, T_in, n, n)`` on the refinement grid, physical units. The
        only data read: no target, no label.
    residual
        The Navier-Stokes residual on that grid (snapshot spacing of the data).
    steps, lr, lr_weight, n_modes
        Adam steps, step sizes of the spectral bias and of the per-mode weights (both decayed
        on a cosine schedule), modes of the output layer.
    callback
        Called as ``callback(step, prediction)`` after each step (``step = 0``: before any),
        e.g. to record an error curve outside; it must not feed back into the refinement.
    residual_form
        ``"trapezoid"`` (default) or ``"snapshot"`` (the authors'), see
        :func:`trajectory_residual`.

    Returns
    -------
    before, after, info
        The frozen model's prediction, the refined one (both ``(batch, 1, T, n, n)``) and
        ``residual_before``/``residual_after`` per trajectory, ``history`` (mean residual
        norm per step), ``seconds``.
    """
    if steps < 0 or lr < 0 or lr_weight < 0:
        raise ValueError("steps, lr and lr_weight must be non-negative")
    if residual_form not in RESIDUAL_FORMS:
        raise ValueError(f"unknown residual form '{residual_form}'; use one of "
                         f"{', '.join(RESIDUAL_FORMS)}")
    t0 = time.perf_counter()
    surrogate = surrogate.eval()  # frozen: only used under no_grad
    ref = _Refinement(surrogate, x, n_modes)
    opt = torch.optim.Adam([{"params": [ref.layer.bias], "lr": lr},
                            {"params": [ref.layer.weight], "lr": lr_weight}])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, max(steps, 1)))
    before = ref.prediction().detach()
    if callback is not None:
        callback(0, before)
    history, start = [], None
    for step in range(1, steps + 1):
        norms = residual_norm(trajectory_residual(residual, x, ref.prediction(), residual_form))
        if start is None:
            start = norms.detach()
        opt.zero_grad(set_to_none=True)
        norms.sum().backward()  # a sum: every trajectory gets its own, unscaled gradient
        opt.step()
        sched.step()
        history.append(float(norms.detach().mean()))
        if callback is not None:
            with torch.no_grad():
                callback(step, ref.prediction())
    with torch.no_grad():
        after = ref.prediction()
        final = residual_norm(trajectory_residual(residual, x, after, residual_form))
    if start is None:
        start = final
    return before, after, {"residual_before": start.tolist(), "residual_after": final.tolist(),
                           "history": history, "seconds": time.perf_counter() - t0}


# ----------------------------------------------------------------------------------------------
# Runs (`pdeml finetune RUN --per-trajectory`)
# ----------------------------------------------------------------------------------------------

def _window_settings(cfg: dict[str, Any], run: Any) -> dict[str, Any]:
    from pdeml.config import ConfigError

    windows = (cfg.get("data") or {}).get("windows")
    if not windows:
        raise ConfigError(f"{run} is not a spatiotemporal run (its config has no data.windows); "
                          "per-trajectory refinement needs (1, T, y, x) windows")
    return dict(windows)


def _fine_field(path: Any, field: str | None, base: str) -> str:
    from pdeml.datasets.schema import open_h5

    with open_h5(path) as f:
        if field is None:
            return f"{base}_fine" if f"{base}_fine" in f else base
        if field not in f:
            raise ValueError(f"{path} has no variable '{field}'")
    return field


def _refine_all(surrogate: nn.Module, ds: Any, residual: VorticityResidual, parts: Any,
                batch_size: int, options: dict[str, Any]) -> None:
    """Refine every window in batches; one atomic ``.pt`` part per batch, skipped when done."""
    import sys

    n = len(ds)
    for first in range(0, n, batch_size):
        items = list(range(first, min(first + batch_size, n)))
        part = parts / f"{first:06d}.pt"
        if part.exists():
            continue
        before, after, info = refine_batch(surrogate, ds.inputs(items), residual, **options)
        tmp = part.with_suffix(".tmp")
        torch.save({"items": items, "before": before, "after": after, "info": info}, tmp)
        tmp.replace(part)
        print(f"refine: {items[-1] + 1}/{n} trajectories, residual "
              f"{sum(info['residual_before']) / len(items):.3e} -> "
              f"{sum(info['residual_after']) / len(items):.3e}, {info['seconds']:.1f} s",
              file=sys.stderr, flush=True)


def _rel_l2(pred: torch.Tensor, y: torch.Tensor) -> list[float]:
    return ((pred - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).tolist()


def _collect(ds: Any, residual: VorticityResidual, parts: Any,
             form: str = "trapezoid") -> tuple[dict, list[dict]]:
    """Predictions and per-trajectory metrics; labels are read here, after all refinement."""
    arrays: dict[str, list] = {"prediction": [], "refined": []}
    rows: list[dict[str, Any]] = []
    for part in sorted(parts.glob("*.pt")):
        got = torch.load(part, weights_only=False)
        items, info = got["items"], got["info"]
        y = torch.stack([ds[k][1] for k in items])
        truth_res = residual_norm(trajectory_residual(residual, ds.inputs(items), y,
                                                      form)).tolist()
        errs = zip(_rel_l2(got["before"], y), _rel_l2(got["after"], y), strict=True)
        for j, (k, (e0, e1)) in enumerate(zip(items, errs, strict=True)):
            sample, start = ds.locate(k)
            rows.append({"item": k, "sample": sample, "start": start, "rel_l2_before": e0,
                         "rel_l2_after": e1, "residual_before": info["residual_before"][j],
                         "residual_after": info["residual_after"][j],
                         "residual_truth": truth_res[j], "steps": len(info["history"]),
                         "seconds": info["seconds"] / len(items)})
        arrays["prediction"].append(got["before"])
        arrays["refined"].append(got["after"])
    return {k: torch.cat(v).numpy() for k, v in arrays.items()}, rows


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    import statistics

    def mean(key: str) -> float:
        return statistics.fmean(r[key] for r in rows)

    ratios = [r["rel_l2_after"] / r["rel_l2_before"] for r in rows if r["rel_l2_before"] > 0]
    return {"n_trajectories": len(rows), "rel_l2_before": mean("rel_l2_before"),
            "rel_l2_after": mean("rel_l2_after"),
            "median_error_ratio": statistics.median(ratios) if ratios else None,
            "residual_before": mean("residual_before"), "residual_after": mean("residual_after"),
            "residual_truth": mean("residual_truth"), "seconds_per_trajectory": mean("seconds")}


def _write_h5(path: Any, arrays: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    import h5py
    import numpy as np

    tmp = path.with_suffix(".tmp")
    with h5py.File(tmp, "w") as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=value.astype(np.float32))
        f.create_dataset("sample", data=np.array([r["sample"] for r in rows]))
        f.create_dataset("start", data=np.array([r["start"] for r in rows]))
    tmp.replace(path)


def _guard_summary(report: dict[str, Any], force: bool) -> dict[str, Any]:
    """The parameter guard's verdict for ``metrics.json``."""
    keep = ("ok", "ratio", "threshold", "given", "fitted", "suspects", "conclusive", "message")
    return {**{k: report.get(k) for k in keep}, "forced": bool(force and not report["ok"])}


def refine_run(run: Any, out: Any, data: Any = None, field: str | None = None,
               batch_size: int = 1, force: bool = False, **options: Any) -> dict[str, Any]:
    """Refine every test window of a spatiotemporal run, each on its own; write ``out``.

    ``out`` gets ``refined.h5`` (``prediction`` and ``refined``, ``(N, 1, T, n, n)``, with
    each window's ``sample`` and ``start`` snapshot) and ``metrics.json`` (per trajectory: the
    relative L2 error before and after, the residual norm before and after and of the true
    trajectory, steps, seconds; and their summary). A killed job re-run with the same command
    resumes: finished batches are kept under ``out/refined.parts``. Labels are read only to
    score the result, after every trajectory is refined.

    Parameters
    ----------
    run
        A run folder (or checkpoint) of a model trained on ``data.windows``.
    out
        Output folder.
    data
        The test file (default: the run's ``data.test``).
    field
        The windowed variable on the refinement grid (default ``<field>_fine`` when the file
        has it, else the training field).
    batch_size
        Trajectories refined together (each with its own layer and gradient; Adam acts per
        parameter, so a batch refines exactly as one trajectory at a time would).
    force
        Refine even when the parameter guard (:func:`pdeml.trainers.parameter_guard.guard`,
        run on every input window before anything is written) finds that the windows do not
        satisfy the equation with the file's viscosity, forcing and snapshot spacing; without
        it that raises :class:`~pdeml.trainers.parameter_guard.ParameterMismatch`, one line
        naming the suspect parameter. The report goes to ``metrics.json``
        (``parameter_guard``).
    **options
        :func:`refine_batch` settings: ``steps``, ``lr``, ``lr_weight``, ``n_modes``,
        ``residual_form``.
    """
    import json
    import sys
    from pathlib import Path

    from pdeml.datasets.spacetime import WindowDataset
    from pdeml.trainers.checkpoint import load_surrogate
    from pdeml.trainers.parameter_guard import guard
    from pdeml.trainers.residuals import window_residual

    surrogate, cfg = load_surrogate(run)
    win = _window_settings(cfg, run)
    test = data or cfg["data"].get("test")
    if not test:
        raise ValueError(f"{run} has no data.test; pass the test file (--data)")
    fine = _fine_field(test, field, win.get("field", "w"))
    ds = WindowDataset(test, field=fine, n_in=win.get("n_in", 10), n_out=win.get("n_out", 10))
    residual = window_residual(str(test), fine, ds.spatial_shape[-1])
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    form = options.get("residual_form", "trapezoid")
    if form not in RESIDUAL_FORMS:
        raise ValueError(f"unknown residual form '{form}'; use one of {', '.join(RESIDUAL_FORMS)}")
    checked = guard(residual, ds.inputs(range(len(ds)))[:, 0], force=force)
    if not checked["ok"]:
        print(f"refine: --force given, refining anyway: {checked['message']}", file=sys.stderr,
              flush=True)
    out = Path(out)
    parts = out / "refined.parts"
    parts.mkdir(parents=True, exist_ok=True)
    job = {"run": str(run), "data": str(test), "field": fine, "batch_size": int(batch_size),
           "options": {k: options[k] for k in sorted(options)}}
    manifest = parts / "job.json"
    if manifest.exists() and json.loads(manifest.read_text()) != job:
        raise ValueError(f"{out} holds a refinement with other settings; choose another --out")
    manifest.write_text(json.dumps(job))
    _refine_all(surrogate, ds, residual, parts, int(batch_size), options)
    arrays, rows = _collect(ds, residual, parts, options.get("residual_form", "trapezoid"))
    _write_h5(out / "refined.h5", arrays, rows)
    result = {"run": str(run), "data": str(test), "field": fine, "grid": list(ds.spatial_shape),
              "options": options, "parameter_guard": _guard_summary(checked, force),
              **_summary(rows), "trajectories": rows}
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result
