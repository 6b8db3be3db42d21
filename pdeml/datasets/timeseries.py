"""Time-series datasets for autoregressive surrogates: one-step pairs and whole trajectories.

A model that steps a state forward sees, as input channels, the last ``history`` frames of the
``fields`` (oldest first, each frame ``len(fields)`` channels) followed by ``static`` channels
that do not change along a trajectory: grid variables such as the fluid ``mask`` and
per-sample PDE parameters (``reynolds``, ``velocity``, ...) broadcast as constant channels.
Its output is the next frame of the fields. :class:`StepDataset` serves every
``(frames t-history+1..t) -> frame t+1`` pair of every sample (training);
:class:`TrajectoryDataset` serves the first input and the frames that follow it (rollouts).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pdeml.datasets.reader import has_time_axis
from pdeml.datasets.schema import DatasetError, check_variables, open_h5, read_checked


def _read_series(
    path: Path, fields: Sequence[str], static: Sequence[str], indices: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fields ``(n, time, F, *grid)``, static channels ``(n, S, *grid)`` and sample indices."""
    if not fields:
        raise DatasetError("a time-series dataset needs at least one field")
    with open_h5(path) as f:
        check_variables(f, [*fields, *static], path)
        for name in fields:
            if not has_time_axis(f[name]):
                raise DatasetError(f"{path}: field '{name}' has no time axis "
                                   f"(dims {tuple(f[name].shape)})")
        shapes = {f[name].shape for name in fields}
        if len(shapes) != 1:
            raise DatasetError(f"{path}: fields {list(fields)} differ in shape {sorted(shapes)}")
        n, _, *grid = shapes.pop()
        rows = np.arange(n) if indices is None else np.asarray(indices)
        try:
            series = np.stack([np.asarray(read_checked(f[name], ..., path), np.float32)[rows]
                               for name in fields], 2)
            consts = [_static(f, name, rows, tuple(grid), path) for name in static]
        except (OSError, RuntimeError) as err:
            raise DatasetError(f"cannot read {path}: file damaged ({err})") from None
    empty = np.zeros((len(rows), 0, *grid), np.float32)
    return series, np.concatenate(consts, 1) if consts else empty, rows


def _static(f: object, name: str, rows: np.ndarray, grid: tuple[int, ...],
            path: Path) -> np.ndarray:
    var = f[name]
    if var.ndim == 1:  # a per-sample parameter: a constant channel
        values = np.asarray(read_checked(var, ..., path), np.float32)[rows]
        return np.broadcast_to(values.reshape(-1, 1, *[1] * len(grid)),
                               (len(rows), 1, *grid)).copy()
    if tuple(var.shape[1:]) != grid:
        raise DatasetError(f"{path}: static variable '{name}' has grid {tuple(var.shape[1:])}, "
                           f"the fields have {grid} (time-dependent variables go in fields)")
    return np.asarray(read_checked(var, ..., path), np.float32)[rows][:, None]


class _SeriesBase(Dataset):
    def __init__(self, path: str | Path, fields: Sequence[str], static: Sequence[str] = (),
                 history: int = 1, indices: Sequence[int] | None = None,
                 residual: bool = False) -> None:
        if int(history) != history or history < 1:
            raise ValueError(f"history must be a positive integer, got {history}")
        self.path, self.fields, self.static = Path(path), list(fields), list(static)
        self.history, self.residual = int(history), bool(residual)
        series, consts, self.indices = _read_series(self.path, self.fields, self.static, indices)
        if series.shape[1] <= self.history:
            raise DatasetError(f"{self.path}: {series.shape[1]} time steps leave nothing to "
                               f"predict after a history of {self.history}")
        self.series, self.consts = torch.from_numpy(series), torch.from_numpy(consts)
        self.n_time = series.shape[1]
        self.spatial_shape = tuple(series.shape[3:])

    def input_at(self, i: int, t: int) -> torch.Tensor:
        """Model input whose newest frame is step ``t`` of sample ``i``."""
        frames = self.series[i, t - self.history + 1 : t + 1].flatten(0, 1)
        return torch.cat([frames, self.consts[i]])

    @property
    def n_fields(self) -> int:
        """Channels of one frame."""
        return len(self.fields)

    @property
    def in_channels(self) -> int:
        """Input channels: ``history`` frames plus the static channels."""
        return self.history * self.n_fields + self.consts.shape[1]

    @property
    def out_channels(self) -> int:
        """Output channels: one frame."""
        return self.n_fields


class StepDataset(_SeriesBase):
    """Every one-step pair ``(frames t-history+1..t, static) -> frame t+1`` of a file.

    Parameters
    ----------
    path
        A pdeml HDF5 file with time series ``(sample, time, *grid)``.
    fields
        The time-dependent variables the model steps forward (e.g. ``["u", "v"]``).
    static
        Constant input channels: grid variables ``(sample, *grid)`` or per-sample scalars
        ``(sample,)`` (PDE parameters), broadcast over the grid.
    history
        Frames of the past the model sees.
    indices
        A subset of samples (e.g. a validation split); all by default.
    residual
        Targets are the change ``frame t+1 - frame t`` (a model then learns the increment;
        :func:`pdeml.trainers.rollout.next_frame` adds it back).

    Notes
    -----
    The selected variables are read into memory at construction.
    """

    def __len__(self) -> int:
        return len(self.indices) * (self.n_time - self.history)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= k < len(self):
            raise IndexError(k)
        i, t = divmod(k % len(self), self.n_time - self.history)
        t += self.history - 1
        target = self.series[i, t + 1] - self.series[i, t] if self.residual else \
            self.series[i, t + 1]
        return self.input_at(i, t), target


class TrajectoryDataset(_SeriesBase):
    """Per sample, the first model input and the frames that follow it.

    Item ``i`` is ``(x0, y)`` with ``x0`` the input built from frames ``0..history-1`` and
    ``y`` of shape ``(time - history, n_fields, *grid)``: the targets of a rollout (always
    whole frames; ``residual`` is recorded for :func:`pdeml.trainers.rollout.next_frame`).
    Parameters as in :class:`StepDataset`.
    """

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.input_at(i, self.history - 1), self.series[i, self.history :]
