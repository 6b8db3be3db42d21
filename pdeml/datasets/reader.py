"""Lazy torch Dataset over a pdeml HDF5 file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from pdeml.datasets.schema import DatasetError, check_variables, open_h5


class H5Dataset(Dataset):
    """Samples ``(x, y)`` of a pdeml HDF5 file as float32 tensors ``(channels, *spatial)``.

    Inputs and outputs are lists of variable names stacked along the channel axis. The file is
    opened lazily, once per process (so each DataLoader worker has its own h5py handle), unless
    ``in_memory`` loads the selected variables up front, which is faster for small sets.

    Parameters
    ----------
    path
        The HDF5 file.
    inputs, outputs
        Variable names for the model input and target.
    indices
        A subset of sample indices (e.g. a validation split); all samples by default.
    in_memory
        Read the whole selection into memory at construction.
    """

    def __init__(
        self,
        path: str | Path,
        inputs: Sequence[str],
        outputs: Sequence[str],
        indices: Sequence[int] | None = None,
        in_memory: bool = False,
    ) -> None:
        self.path = Path(path)
        self.inputs, self.outputs = list(inputs), list(outputs)
        with open_h5(self.path) as f:
            check_variables(f, self.inputs + self.outputs, self.path)
            shapes = {n: f[n].shape for n in self.inputs + self.outputs}
            try:
                n_total = f[self.inputs[0]].shape[0]
                if any(s[0] != n_total for s in shapes.values()):
                    raise DatasetError(f"{self.path}: variables disagree on the sample count")
                self.indices = np.arange(n_total) if indices is None else np.asarray(indices)
                spatial = {s[1:] for s in shapes.values()}
                if len(spatial) != 1:
                    raise DatasetError(f"{self.path}: inputs and outputs live on different grids")
                self.spatial_shape = spatial.pop()
                self._cache = self._load(f) if in_memory else None
            except (OSError, RuntimeError) as err:  # h5py raises these on damaged data blocks
                raise DatasetError(f"cannot read {self.path}: file damaged ({err})") from None
        self._file: h5py.File | None = None
        self._pid = -1

    def _load(self, f: h5py.File) -> tuple[torch.Tensor, torch.Tensor]:
        def stack(names: list[str]) -> torch.Tensor:
            arrays = [np.asarray(f[n][...], dtype=np.float32)[self.indices] for n in names]
            return torch.from_numpy(np.stack(arrays, axis=1))

        return stack(self.inputs), stack(self.outputs)

    def __len__(self) -> int:
        return len(self.indices)

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = open_h5(self.path)
            self._pid = os.getpid()
        return self._file

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is not None:
            return self._cache[0][i], self._cache[1][i]
        f, j = self._handle(), int(self.indices[i])

        def stack(names: list[str]) -> torch.Tensor:
            return torch.from_numpy(np.stack([np.asarray(f[n][j], np.float32) for n in names]))

        return stack(self.inputs), stack(self.outputs)

    @property
    def in_channels(self) -> int:
        """Number of input channels."""
        return len(self.inputs)

    @property
    def out_channels(self) -> int:
        """Number of output channels."""
        return len(self.outputs)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"], state["_pid"] = None, -1  # h5py handles cannot cross processes
        return state
