"""Does the surrogate pay? Its error and cost per query beside pdeml's own solver's.

McGreivy & Hakim (Nature Machine Intelligence 2024) found that most published surrogate
speedups vanish against an *equally accurate* numerical method, usually the same solver on a
coarser grid. pdeml owns the solver that made the data, so every evaluation can price that
baseline on the run's own test inputs, on this machine:

- the **surrogate**: its relative L2 error on the scored samples and its latency per query,
  at batch 1 and batched (eager PyTorch, this process's threads);
- the **solver's settings**: for each setting of the problem's knobs (below), the same
  samples re-solved from their stored inputs, the result interpolated back to the stored
  grid, its error against the test labels and its median time per query (solve +
  interpolation);
- **equal accuracy**: the cheapest setting whose error is <= the surrogate's (none when the
  surrogate beats every setting, i.e. it is more accurate than solving on the stored grid);
- **equal time**: the most accurate setting that runs within the surrogate's batch-1 time;
- **breakeven**: the number of queries after which making the data and training the model
  have paid for themselves against the equal-accuracy solve,
  ``(generation + training seconds) / (solver seconds - surrogate seconds)`` per query, and
  ``never`` when the surrogate is not faster per query. Generation seconds are the training
  samples times the measured solve on the stored grid (the files do not record their
  solve times yet); training seconds come from the run's ``metrics.json`` (``cost``).

Knobs per problem (:data:`KNOBS`): ``darcy``: the grid, coarsened by factors ``k`` with
``(n - 1) % k == 0`` down to 5 nodes per axis (the stored coefficient sampled at every
``k``-th node, solved with a sparse direct LU, bilinear interpolation back to the nodes).
The direct solve is pdeml's fastest on these sizes (README, solver table); a looser Krylov
tolerance is not a knob here because it would only be slower. Other problems have no knob
implemented yet: their ledger says so in one line.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

KNOBS = {"darcy": "grid coarsening by k (direct LU solve, bilinear interpolation back)"}


@dataclass
class Setting:
    """One solver setting and what it measured."""

    label: str
    rel_l2: float
    seconds: float  # median per query


def interpolation_matrix(n_coarse: int, n_fine: int) -> np.ndarray:
    """``(n_fine, n_coarse)`` linear interpolation between node grids on ``[0, 1]``."""
    xc, xf = np.linspace(0.0, 1.0, n_coarse), np.linspace(0.0, 1.0, n_fine)
    j = np.clip(np.searchsorted(xc, xf, side="right") - 1, 0, n_coarse - 2)
    w = (xf - xc[j]) / (xc[j + 1] - xc[j])
    p = np.zeros((n_fine, n_coarse))
    p[np.arange(n_fine), j] = 1.0 - w
    p[np.arange(n_fine), j + 1] += w
    return p


def darcy_solver(attrs: dict[str, Any], n: int, factor: int) -> Callable[[np.ndarray],
                                                                          np.ndarray]:
    """``a (n, n) -> u (n, n)``: Darcy solved on the node grid coarsened by ``factor``."""
    from pdeml.solvers.problems import DarcyFlow

    m = (n - 1) // factor + 1
    problem = DarcyFlow(resolution=m, forcing=float(attrs.get("forcing", 1.0)),
                        solver="direct")
    p = interpolation_matrix(m, n)

    def solve(a: np.ndarray) -> np.ndarray:
        return p @ problem.solve(np.asarray(a, np.float64)[::factor, ::factor]) @ p.T

    return solve


def darcy_settings(attrs: dict[str, Any], n: int) -> dict[str, Callable]:
    """The grid knob's settings, finest first: ``{label: a -> u}``."""
    out = {}
    for k in range(1, n):
        if (n - 1) % k == 0 and (n - 1) // k + 1 >= 5:
            out[f"grid {(n - 1) // k + 1}² (1/{k})" if k > 1 else f"grid {n}² (stored)"] = (
                darcy_solver(attrs, n, k))
    return out


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _rel_l2(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean over samples of the relative L2 error (pdeml's ``rel_l2``)."""
    d = (pred - truth).reshape(len(truth), -1)
    t = truth.reshape(len(truth), -1)
    return float(np.mean(np.linalg.norm(d, axis=1) / np.linalg.norm(t, axis=1)))


def surrogate_cost(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                   repeats: int = 5) -> dict[str, float]:
    """Seconds per query at batch 1 (median over samples and repeats) and batched."""
    with torch.no_grad():
        model(x[:1])  # warm-up: first-call allocations and kernel choice
        one = statistics.median(_median_seconds(lambda i=i: model(x[i:i + 1]), repeats)
                                for i in range(min(len(x), 8)))
        batched = _median_seconds(lambda: model(x), repeats) / len(x)
    return {"seconds_batch1": one, "seconds_batched": batched, "batch": len(x)}


def ledger(model: Callable[[torch.Tensor], torch.Tensor], problem: str | None,
           attrs: dict[str, Any], a: np.ndarray, u: np.ndarray,
           offline_seconds: dict[str, float | None], n_train: int | None = None,
           repeats: int = 3) -> dict[str, Any]:
    """The baseline ledger of ``model`` on inputs ``a`` (``(n, 1, *grid)``) and labels ``u``.

    ``offline_seconds``: ``{"training": s}`` (``None`` when unknown); generation seconds are
    estimated as ``n_train`` solves on the stored grid. See the module docstring.
    """
    if problem not in KNOBS:
        return {"problem": problem, "note": f"no solver knob for {problem or 'this data'} yet "
                f"(baselines exist for: {', '.join(KNOBS)})"}
    x = torch.from_numpy(np.ascontiguousarray(a, np.float32))
    with torch.no_grad():
        pred = model(x).numpy()
    sur = {"rel_l2": _rel_l2(pred, u), **surrogate_cost(model, x)}
    n = a.shape[-1]
    settings = []
    for label, solve in darcy_settings(attrs, n).items():
        out = np.stack([solve(ai[0])[None] for ai in a])
        seconds = statistics.median(_median_seconds(lambda ai=ai, f=solve: f(ai[0]), repeats)
                                    for ai in a[:8])
        settings.append(Setting(label, _rel_l2(out, u), seconds))
    return summarize(sur, settings, offline_seconds, n_train, problem)


def summarize(sur: dict[str, Any], settings: list[Setting],
              offline_seconds: dict[str, float | None], n_train: int | None,
              problem: str | None) -> dict[str, Any]:
    """Equal accuracy, equal time and breakeven from measured settings (finest first)."""
    accurate = [s for s in settings if s.rel_l2 <= sur["rel_l2"]]
    eq_acc = min(accurate, key=lambda s: s.seconds) if accurate else None
    fast = [s for s in settings if s.seconds <= sur["seconds_batch1"]]
    eq_time = min(fast, key=lambda s: s.rel_l2) if fast else None
    generation = n_train * settings[0].seconds if n_train and settings else None
    training = offline_seconds.get("training")
    breakeven: float | str | None = "no equally accurate setting"
    if eq_acc is not None:
        breakeven = None  # unknown until both offline costs are known
        gain = eq_acc.seconds - sur["seconds_batch1"]
        if gain <= 0:
            breakeven = "never"
        elif generation is not None and training is not None:
            breakeven = float(np.ceil((generation + training) / gain))
    return {
        "problem": problem, "knobs": KNOBS[problem], "surrogate": sur,
        "settings": [vars(s) for s in settings],
        "equal_accuracy": vars(eq_acc) if eq_acc else None,
        "equal_time": vars(eq_time) if eq_time else None,
        "offline_seconds": {"generation_estimate": generation, "training": training},
        "breakeven_queries": breakeven,
    }


def summary_line(led: dict[str, Any]) -> str:
    """The ledger in one line, for the terminal."""
    if "surrogate" not in led:
        return f"baselines: {led['note']}"
    s = led["surrogate"]
    text = (f"baselines: surrogate rel L2 {s['rel_l2']:.4g} at {1e3 * s['seconds_batch1']:.3g} "
            f"ms/query; ")
    eq = led["equal_accuracy"]
    if eq is None:
        text += "no solver setting is as accurate (the surrogate beats the stored grid's solve)"
    else:
        ratio = eq["seconds"] / s["seconds_batch1"]
        text += (f"equal-accuracy solve {eq['label']}: {eq['rel_l2']:.4g} at "
                 f"{1e3 * eq['seconds']:.3g} ms/query (surrogate {ratio:.3g}x faster)"
                 if ratio >= 1 else
                 f"equal-accuracy solve {eq['label']}: {eq['rel_l2']:.4g} at "
                 f"{1e3 * eq['seconds']:.3g} ms/query (surrogate {1 / ratio:.3g}x slower)")
    et = led["equal_time"]
    text += ("; equal-time solve: none this fast" if et is None else
             f"; equal-time solve {et['label']}: {et['rel_l2']:.4g}")
    b = led["breakeven_queries"]
    text += f"; breakeven: {b if isinstance(b, str) or b is None else f'{b:.0f} queries'}"
    return text.replace("breakeven: None", "breakeven: unknown (no training cost recorded)")
