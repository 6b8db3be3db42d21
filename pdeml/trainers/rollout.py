"""Autoregressive rollouts of one-step surrogates and their error-versus-step evaluation.

The model's input layout is that of :mod:`pdeml.datasets.timeseries`: ``history`` frames of
``n_fields`` channels each (oldest first), then static channels (mask, PDE parameters) that a
rollout carries along unchanged. Each step feeds the prediction back as the newest frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from pdeml.datasets.timeseries import TrajectoryDataset
from pdeml.metrics import MetricAccumulator

Model = Callable[[torch.Tensor], torch.Tensor]


def next_frame(model: Model, n_fields: int, history: int = 1, residual: bool = False) -> Model:
    """The map from a model input to the next frame.

    ``model`` itself for a model trained on whole frames; for one trained on increments
    (``residual``), the newest input frame plus the model's output.
    """
    if not residual:
        return model
    lo = (history - 1) * n_fields

    def step(x: torch.Tensor) -> torch.Tensor:
        return x[:, lo : lo + n_fields] + model(x)

    return step


@torch.no_grad()
def rollout(
    model: Model, x0: torch.Tensor, n_steps: int, n_fields: int, history: int = 1
) -> torch.Tensor:
    """Step ``model`` forward ``n_steps`` times from the input ``x0``.

    Parameters
    ----------
    model
        Maps ``(batch, history * n_fields + n_static, *grid)`` to ``(batch, n_fields, *grid)``.
    x0
        The first input: ``history`` frames (oldest first), then the static channels.
    n_steps
        Steps to take.
    n_fields, history
        Channels per frame and frames per input.

    Returns
    -------
    torch.Tensor
        Predicted frames ``(batch, n_steps, n_fields, *grid)``.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be positive, got {n_steps}")
    n_dyn = history * n_fields
    if x0.shape[1] < n_dyn:
        raise ValueError(f"input has {x0.shape[1]} channels, fewer than history x fields = "
                         f"{n_dyn}")
    frames, static = x0[:, :n_dyn], x0[:, n_dyn:]
    out = []
    for _ in range(n_steps):
        y = model(torch.cat([frames, static], dim=1))
        if y.shape[1] != n_fields:
            raise ValueError(f"model returned {y.shape[1]} channels, expected {n_fields}")
        out.append(y)
        frames = torch.cat([frames[:, n_fields:], y], dim=1)
    return torch.stack(out, dim=1)


@torch.no_grad()
def teacher_forced(
    model: Model, dataset: TrajectoryDataset, i: Sequence[int], n_steps: int
) -> torch.Tensor:
    """One-step predictions from the true previous frames, ``(batch, n_steps, fields, *grid)``.

    Step ``k`` predicts frame ``history + k`` of trajectories ``i`` from the true frames
    before it.
    """
    h = dataset.history
    steps = []
    for t in range(h - 1, h - 1 + n_steps):
        x = torch.stack([dataset.input_at(j, t) for j in i])
        steps.append(model(x))
    return torch.stack(steps, dim=1)


@torch.no_grad()
def evaluate_rollout(
    model: Model,
    dataset: TrajectoryDataset,
    n_steps: int | None = None,
    batch_size: int = 8,
    teacher_forcing: bool = False,
    keep: int = 0,
    masked: bool = True,
) -> dict[str, Any]:
    """Error of rollouts (or one-step predictions) against every trajectory of ``dataset``.

    Parameters
    ----------
    model
        The one-step surrogate (physical units in and out); with ``dataset.residual`` it
        predicts increments (see :func:`next_frame`).
    dataset
        Trajectories to roll out from their first input.
    n_steps
        Steps to roll out (all the dataset has by default).
    batch_size
        Trajectories per batch.
    teacher_forcing
        Predict each step from the true previous frames (one-step error at every step)
        instead of from the model's own predictions.
    keep
        Return the predictions and targets of the first ``keep`` trajectories (for figures).
    masked
        Score fluid points only where the dataset has a ``mask`` static channel (see
        :meth:`pdeml.metrics.MetricAccumulator.update`); ``False`` scores every grid point.
        Steps past a trajectory's own end (``dataset.n_steps``) are never scored.

    Returns
    -------
    dict
        ``metrics`` (see :meth:`pdeml.metrics.MetricAccumulator.compute`; ``per_step`` holds
        the error-versus-step curves), ``accumulator``, and with ``keep``: ``pred``, ``target``.
    """
    available = int(dataset.n_steps.max())
    n_steps = available if n_steps is None else int(n_steps)
    if not 1 <= n_steps <= available:
        raise ValueError(f"n_steps must be in [1, {available}], got {n_steps}")
    model = next_frame(model, dataset.n_fields, dataset.history, dataset.residual)
    acc = MetricAccumulator(dataset.fields)
    kept: list[tuple[torch.Tensor, torch.Tensor]] = []
    loader = DataLoader(range(len(dataset)), batch_size=batch_size, shuffle=False)
    for idx in loader:
        x0, y = (torch.stack(t) for t in zip(*(dataset[int(j)] for j in idx), strict=True))
        if teacher_forcing:
            pred = teacher_forced(model, dataset, [int(j) for j in idx], n_steps)
        else:
            pred = rollout(model, x0, n_steps, dataset.n_fields, dataset.history)
        y = y[:, :n_steps]
        rows = [int(j) for j in idx]
        acc.update(pred, y, time_axis=True, mask=dataset.mask_of(rows) if masked else None,
                   n_steps=torch.as_tensor(dataset.n_steps[rows]))
        if sum(len(p) for p, _ in kept) < keep:
            kept.append((pred, y))
    result: dict[str, Any] = {"metrics": acc.compute(), "accumulator": acc}
    if keep:
        result["pred"] = torch.cat([p for p, _ in kept])[:keep]
        result["target"] = torch.cat([t for _, t in kept])[:keep]
    return result
