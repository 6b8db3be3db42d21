"""Space-time windows of a time series, for spatiotemporal operators (Fourier in t, y, x).

A spatiotemporal FNO (the model of Spectral-Refiner, Cao et al., ICLR 2025) maps a window of
past snapshots to a window of future snapshots, with time as a grid axis rather than as
channels. :class:`WindowDataset` serves such pairs from a pdeml file with a ``(sample, time,
*grid)`` variable: item ``(x, y)`` has ``x`` of shape ``(1, n_in, *grid)`` (snapshots
``s .. s+n_in-1``) and ``y`` of shape ``(1, n_out, *grid)`` (the ``n_out`` snapshots after
them), for every window start ``s = 0, stride, 2 stride, ...`` that fits in each trajectory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pdeml.datasets.reader import has_time_axis
from pdeml.datasets.schema import DatasetError, check_variables, open_h5


class WindowDataset(Dataset):
    """Input/output windows ``(1, n_in, *grid) -> (1, n_out, *grid)`` of one field.

    Parameters
    ----------
    path
        A pdeml HDF5 file.
    field
        A variable with a time axis, e.g. ``"w"`` (or ``"w_fine"``, the same trajectories on a
        finer grid).
    n_in, n_out
        Snapshots in the input and the output window.
    stride
        Distance between window starts within a trajectory (default ``n_in + n_out``:
        non-overlapping windows).
    indices
        Trajectories (samples) to use; all by default. Windows never mix trajectories, so a
        train/validation split by sample keeps them apart.
    """

    def __init__(self, path: str | Path, field: str = "w", n_in: int = 10, n_out: int = 10,
                 stride: int | None = None, indices: Sequence[int] | None = None) -> None:
        self.path, self.field = Path(path), field
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.stride = self.n_in + self.n_out if stride is None else int(stride)
        if min(self.n_in, self.n_out, self.stride) < 1:
            raise ValueError(f"n_in, n_out and stride must be positive, got {n_in}, {n_out}, "
                             f"{stride}")
        with open_h5(self.path) as f:
            check_variables(f, [field], self.path)
            if not has_time_axis(f[field]):
                raise DatasetError(f"{self.path}: '{field}' has no time axis")
            n_total, n_time = f[field].shape[:2]
            self.indices = np.arange(n_total) if indices is None else np.asarray(indices)
            try:
                data = np.asarray(f[field][...], np.float32)[self.indices]
            except (OSError, RuntimeError) as err:
                raise DatasetError(f"cannot read {self.path}: file damaged ({err})") from None
        span = self.n_in + self.n_out
        if span > n_time:
            raise DatasetError(f"{self.path}: windows of {self.n_in} + {self.n_out} snapshots do "
                               f"not fit in '{field}' ({n_time} time steps)")
        self.starts = np.arange(0, n_time - span + 1, self.stride)
        self.series = torch.from_numpy(data)
        self.n_time, self.spatial_shape = n_time, (self.n_in, *data.shape[2:])

    def __len__(self) -> int:
        return len(self.indices) * len(self.starts)

    def locate(self, k: int) -> tuple[int, int]:
        """``(sample, first input snapshot)`` of item ``k``."""
        i, j = divmod(k, len(self.starts))
        return int(self.indices[i]), int(self.starts[j])

    def inputs(self, items: Sequence[int]) -> torch.Tensor:
        """The input windows ``(len(items), 1, n_in, *grid)`` of ``items``, and nothing else
        (label-free consumers such as refinement read only this)."""
        out = []
        for k in items:
            i, j = divmod(int(k) % len(self), len(self.starts))
            s = int(self.starts[j])
            out.append(self.series[i, None, s:s + self.n_in])
        return torch.stack(out)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= k < len(self):
            raise IndexError(k)
        i, j = divmod(k % len(self), len(self.starts))
        s = int(self.starts[j])
        w = self.series[i]
        return w[None, s:s + self.n_in], w[None, s + self.n_in:s + self.n_in + self.n_out]

    @property
    def in_channels(self) -> int:
        """One channel: the field (time is a grid axis)."""
        return 1

    @property
    def out_channels(self) -> int:
        """One channel: the field."""
        return 1
