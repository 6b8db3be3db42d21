"""Time-series datasets for autoregressive surrogates: one-step pairs and whole trajectories.

A model that steps a state forward sees, as input channels, the last ``history`` frames of the
``fields`` (oldest first, each frame ``len(fields)`` channels) followed by ``static`` channels
that do not change along a trajectory: grid variables such as the fluid ``mask`` and
per-sample PDE parameters (``reynolds``, ``velocity``, ...) broadcast as constant channels.
Its output is the next frame of the fields. :class:`StepDataset` serves every
``(frames t-history+1..t) -> frame t+1`` pair of every sample (training);
:class:`TrajectoryDataset` serves the first input and the frames that follow it (rollouts);
:class:`NonAutoDataset` serves CFDBench's non-autoregressive task, ``(case parameters, t, x,
y) -> (u, v)``, one whole frame per item.

Variable-length samples: a file with a per-sample ``n_frames`` (CFDBench imports; cases end
at different times and are padded to the longest) has only its first ``n_frames`` frames
used by every dataset here; :attr:`_SeriesBase.n_steps` tells rollouts where each
trajectory ends.

Converged frames (CFDBench, ``src/dataset/cavity.py`` ``CavityFlowAutoDataset.load_data``
of luo-yining/CFDBench): with ``stable_state_diff`` set, a trajectory ends at its first pair
``(frame t, frame t+1)`` with ``mean |(|u_{t+1}| - |u_t|)| < stable_state_diff`` (``|u|`` the
speed ``sqrt(u^2 + v^2)``, mean over the grid); that pair and all later ones are dropped.
CFDBench's default is ``1e-3``. pdeml applies the rule to rollouts as well (CFDBench's
multi-step test reads the raw frames instead); pass ``None`` to keep every frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pdeml.datasets.reader import has_time_axis
from pdeml.datasets.schema import DatasetError, check_variables, open_h5, read_checked


def converged_length(u: np.ndarray, v: np.ndarray, tol: float | None = 1e-3) -> int:
    """Frames of one trajectory ``(time, *grid)`` kept by CFDBench's converged-frame rule.

    The trajectory ends at frame ``t`` where ``(t, t+1)`` is the first pair whose mean
    absolute change of speed is below ``tol`` (so ``t + 1`` frames are kept); all frames when
    no pair is or ``tol`` is ``None``.
    """
    speed = np.sqrt(np.asarray(u, np.float64) ** 2 + np.asarray(v, np.float64) ** 2)
    if tol is None or len(speed) < 2:
        return len(speed)
    diff = np.abs(np.diff(speed, axis=0)).reshape(len(speed) - 1, -1).mean(1)
    hits = np.flatnonzero(diff < tol)
    return int(hits[0]) + 1 if len(hits) else len(speed)


def _read_series(
    path: Path, fields: Sequence[str], static: Sequence[str], indices: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fields ``(n, time, F, *grid)``, static channels ``(n, S, *grid)``, sample indices and
    frames per sample (``n_frames`` where the file has it)."""
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
            frames = (np.asarray(f["n_frames"][...])[rows].astype(np.int64)
                      if "n_frames" in f else np.full(len(rows), series.shape[1]))
        except (OSError, RuntimeError) as err:
            raise DatasetError(f"cannot read {path}: file damaged ({err})") from None
    if (frames < 1).any() or (frames > series.shape[1]).any():
        raise DatasetError(f"{path}: n_frames must be in [1, {series.shape[1]}]")
    empty = np.zeros((len(rows), 0, *grid), np.float32)
    return series, np.concatenate(consts, 1) if consts else empty, rows, frames


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
                 residual: bool = False, stable_state_diff: float | None = None) -> None:
        if int(history) != history or history < 1:
            raise ValueError(f"history must be a positive integer, got {history}")
        self.path, self.fields, self.static = Path(path), list(fields), list(static)
        self.history, self.residual = int(history), bool(residual)
        self.stable_state_diff = stable_state_diff
        series, consts, self.indices, frames = _read_series(self.path, self.fields,
                                                            self.static, indices)
        if stable_state_diff is not None and len(self.fields) >= 2:
            frames = np.array([converged_length(s[:n, 0], s[:n, 1], stable_state_diff)
                               for s, n in zip(series, frames, strict=True)])
        self.n_frames = frames
        if series.shape[1] <= self.history or frames.max() <= self.history:
            raise DatasetError(f"{self.path}: {frames.max()} frames leave nothing to "
                               f"predict after a history of {self.history}")
        self.series, self.consts = torch.from_numpy(series), torch.from_numpy(consts)
        self.n_time = series.shape[1]
        self.spatial_shape = tuple(series.shape[3:])
        self.n_steps = np.maximum(frames - self.history, 0)  # targets of each trajectory
        self._offsets = np.concatenate([[0], np.cumsum(self.n_steps)])

    def mask_of(self, i: Sequence[int]) -> torch.Tensor | None:
        """Fluid masks ``(len(i), *grid)`` of samples ``i`` (``None`` without a mask)."""
        if "mask" not in self.static:
            return None
        return self.consts[list(i), self.static.index("mask")]

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
        return int(self._offsets[-1])

    def pair_index(self, k: int) -> tuple[int, int]:
        """Sample and newest input frame of pair ``k`` (pairs run case by case, in time)."""
        if not -len(self) <= k < len(self):
            raise IndexError(k)
        k %= len(self)
        i = int(np.searchsorted(self._offsets, k, side="right")) - 1
        return i, int(k - self._offsets[i]) + self.history - 1

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i, t = self.pair_index(k)
        target = self.series[i, t + 1] - self.series[i, t] if self.residual else \
            self.series[i, t + 1]
        return self.input_at(i, t), target


class TrajectoryDataset(_SeriesBase):
    """Per sample, the first model input and the frames that follow it.

    Item ``i`` is ``(x0, y)`` with ``x0`` the input built from frames ``0..history-1`` and
    ``y`` of shape ``(time - history, n_fields, *grid)``: the targets of a rollout (always
    whole frames; ``residual`` is recorded for :func:`pdeml.trainers.rollout.next_frame`).
    Only the first ``n_steps[i]`` targets are real (shorter cases are padded).
    Parameters as in :class:`StepDataset`.
    """

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.input_at(i, self.history - 1), self.series[i, self.history :]


class NonAutoDataset(_SeriesBase):
    """CFDBench's non-autoregressive task: ``(case parameters, t, x, y) -> fields``.

    Item ``k`` is one frame ``t`` of one case: the input stacks the ``static`` channels (case
    parameters broadcast over the grid, the mask), the frame's time in the file's time unit
    (seconds for CFDBench imports) and the cell-centre coordinates ``x``, ``y`` as constant /
    coordinate channels; the target is the frame of the ``fields``. A grid operator (FNO)
    then maps the whole query grid at once, which is CFDBench's DeepONet trunk input
    ``(t, x, y)`` evaluated at every cell with the branch input (the parameters) broadcast.

    Where pdeml departs from CFDBench (``src/dataset/cavity.py`` ``CavityFlowDataset``):
    CFDBench feeds the frame *index* as ``t`` and the pixel indices as ``x, y``; pdeml feeds
    seconds and the stored coordinates, so cases of different time step or size share one
    input scale. Frame 0 (the flow at rest) is kept as in CFDBench. Parameters as in
    :class:`StepDataset` (``history``/``residual`` do not apply).
    """

    def __init__(self, path: str | Path, fields: Sequence[str], static: Sequence[str] = (),
                 indices: Sequence[int] | None = None,
                 stable_state_diff: float | None = None, **_: object) -> None:
        super().__init__(path, fields, static, 1, indices, False, stable_state_diff)
        with open_h5(self.path) as f:
            time = np.asarray(f["time"][...], np.float32) if "time" in f else \
                np.arange(self.n_time, dtype=np.float32)
            axes = [np.asarray(f[d][...], np.float32) if d in f else
                    np.linspace(0, 1, n, dtype=np.float32)
                    for d, n in zip(("y", "x"), self.spatial_shape[-2:], strict=True)]
        self.time = torch.from_numpy(time)
        yy, xx = np.meshgrid(*axes, indexing="ij")
        self.coords = torch.from_numpy(np.stack([xx, yy]))
        self._frame_offsets = np.concatenate([[0], np.cumsum(self.n_frames)])

    def __len__(self) -> int:
        return int(self._frame_offsets[-1])

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= k < len(self):
            raise IndexError(k)
        k %= len(self)
        i = int(np.searchsorted(self._frame_offsets, k, side="right")) - 1
        t = int(k - self._frame_offsets[i])
        when = self.time[t].expand(1, *self.spatial_shape)
        return torch.cat([self.consts[i], when, self.coords]), self.series[i, t]

    @property
    def in_channels(self) -> int:
        """Static channels, time, and the two coordinates."""
        return self.consts.shape[1] + 3
