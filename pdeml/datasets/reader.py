"""Lazy torch Dataset over a pdeml HDF5 file."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from pdeml.datasets.schema import DatasetError, check_variables, open_h5, read_checked

_SELECTOR = re.compile(r"^([A-Za-z_][\w.]*)(?:\[\s*(-?\d+)?\s*(:)?\s*(-?\d+)?\s*\])?$")


def parse_selector(spec: str) -> tuple[str, int | slice | None]:
    """Split ``"w[3]"`` / ``"w[0:10]"`` / ``"w"`` into the variable name and a time index.

    An integer picks one time step (one channel); a slice ``a:b`` stacks steps ``a..b-1`` as
    channels (the FNO paper's Navier-Stokes setup maps ``w[0:10]`` to ``w[10:20]``).
    """
    m = _SELECTOR.match(spec.strip())
    if not m or (m.group(3) is None and m.group(2) is None and "[" in spec):
        raise DatasetError(f"bad variable selector '{spec}': use name, name[t] or name[start:stop]")
    name, start, colon, stop = m.groups()
    if colon:
        return name, slice(
            None if start is None else int(start), None if stop is None else int(stop)
        )
    return name, None if start is None else int(start)


def _axis1_is(var: h5py.Dataset, dim: str) -> bool:
    if var.ndim < 3:
        return False
    return any(scale.name.rsplit("/", 1)[-1] == dim for scale in var.dims[1].values())


def has_time_axis(var: h5py.Dataset) -> bool:
    """Whether axis 1 of a variable is the ``time`` dimension (by its dimension scale)."""
    return _axis1_is(var, "time")


def has_mode_axis(var: h5py.Dataset) -> bool:
    """Whether axis 1 of a variable is a ``mode`` dimension: a stack of fields, such as the
    Ritz vectors of ``save_ritz``, that the reader serves as channels (all of them for
    ``"ritz"``, some for ``"ritz[0:4]"``)."""
    return _axis1_is(var, "mode")


def selection_channels(
    shape: tuple[int, ...], index: int | slice | None, spec: str, path: Path, timed: bool = True,
    stacked: bool = False,
) -> tuple[int, tuple[int, ...]]:
    """Channels and spatial shape a selector takes from a variable of ``shape``.

    A per-sample scalar (``shape == (n_samples,)``, e.g. a PDE parameter) has no grid of its
    own: its spatial shape is ``None`` and the reader broadcasts it as a constant channel.
    A ``stacked`` variable (axis 1 is ``mode``, :func:`has_mode_axis`) gives all its modes
    as channels when the selector names no index.
    """
    if index is None and stacked:
        index = slice(None)
    if index is None:
        return 1, (tuple(shape[1:]) if len(shape) > 1 else None)
    if not timed or len(shape) < 3:
        raise DatasetError(f"{path}: '{spec}' selects time steps but the variable has no time axis")
    n_time = shape[1]
    if isinstance(index, slice):
        n = len(range(*index.indices(n_time)))
        if n == 0:
            raise DatasetError(f"{path}: '{spec}' selects no time step (the file has {n_time})")
        return n, tuple(shape[2:])
    if not -n_time <= index < n_time:
        raise DatasetError(f"{path}: '{spec}' is out of range (the file has {n_time} time steps)")
    return 1, tuple(shape[2:])


def read_selection(
    f: h5py.File, spec: str, rows: int | slice | np.ndarray,
    spatial: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Read ``rows`` of a selector as float32 ``(rows..., channels, *spatial)``.

    Stops with a :class:`DatasetError` naming the file and the sample when a chunk fails its
    checksum or a value is NaN or infinite (see :func:`pdeml.datasets.schema.read_checked`).

    A per-sample scalar variable is broadcast to a constant channel on the grid ``spatial``.
    """
    name, index = parse_selector(spec)
    var, path = f[name], f.filename
    if index is None and has_mode_axis(var):  # every mode, one channel each
        index = slice(None)
    if var.ndim == 1:
        values = np.asarray(read_checked(var, rows, path) if not isinstance(rows, np.ndarray)
                            else read_checked(var, ..., path)[rows], np.float32)
        shape = (*values.shape, 1, *(spatial or ()))
        return np.broadcast_to(values.reshape(*values.shape, *[1] * (len(shape) - values.ndim)),
                               shape).copy()
    if isinstance(index, slice):  # h5py wants non-negative bounds
        index = slice(*index.indices(var.shape[1]))
    elif index is not None and index < 0:
        index += var.shape[1]
    if isinstance(rows, np.ndarray):
        key = ... if index is None else (slice(None), index)
        data = np.asarray(read_checked(var, key, path), np.float32)[rows]
    else:
        key = rows if index is None else (rows, index)
        data = np.asarray(read_checked(var, key, path), np.float32)
    lead = 0 if isinstance(rows, int | np.integer) else 1
    if index is None or not isinstance(index, slice):
        data = np.expand_dims(data, lead)
    return data


class H5Dataset(Dataset):
    """Samples ``(x, y)`` of a pdeml HDF5 file as float32 tensors ``(channels, *spatial)``.

    Inputs and outputs are lists of variable selectors stacked along the channel axis: a name
    (``"a"``), one time step of a time series (``"w[-1]"``) or a range of steps as channels
    (``"w[0:10]"``); see :func:`parse_selector`. A variable with a ``mode`` axis
    (``(sample, mode, *grid)``, e.g. ``ritz``) gives one channel per mode, in mode order, and
    ``"ritz[0:2]"`` picks modes; several such variables are concatenated in the order given,
    so ``["ritz_real", "ritz_imag"]`` is *blocked*: all real parts, then all imaginary parts
    (the layout :class:`pdeml.trainers.losses.SubspaceLoss` expects). A per-sample scalar
    such as a PDE parameter (``"reynolds"``) becomes a constant channel. The file is
    opened lazily, once per process (so each DataLoader worker has its own h5py handle), unless
    ``in_memory`` loads the selected variables up front, which is faster for small sets.

    Parameters
    ----------
    path
        The HDF5 file.
    inputs, outputs
        Variable selectors for the model input and target.
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
        parsed = {spec: parse_selector(spec) for spec in self.inputs + self.outputs}
        with open_h5(self.path) as f:
            check_variables(f, sorted({name for name, _ in parsed.values()}), self.path)
            shapes = {spec: f[name].shape for spec, (name, _) in parsed.items()}
            stacked = {spec: has_mode_axis(f[name]) for spec, (name, _) in parsed.items()}
            timed = {spec: has_time_axis(f[name]) or stacked[spec]
                     for spec, (name, _) in parsed.items()}
            try:
                n_total = shapes[self.inputs[0]][0]
                if any(s[0] != n_total for s in shapes.values()):
                    raise DatasetError(f"{self.path}: variables disagree on the sample count")
                self.indices = np.arange(n_total) if indices is None else np.asarray(indices)
                chans = {
                    spec: selection_channels(
                        shapes[spec], parsed[spec][1], spec, self.path, timed[spec],
                        stacked[spec],
                    )
                    for spec in parsed
                }
                spatial = {grid for _, grid in chans.values() if grid is not None}
                if not spatial:
                    raise DatasetError(f"{self.path}: no selected variable lives on a grid")
                if len(spatial) != 1:
                    raise DatasetError(
                        f"{self.path}: inputs and outputs live on different grids "
                        f"{sorted(spatial)}; select time steps with name[t] or name[a:b]"
                    )
                self.spatial_shape = spatial.pop()
                self._n_in = sum(chans[s][0] for s in self.inputs)
                self._n_out = sum(chans[s][0] for s in self.outputs)
                self._cache = self._load(f) if in_memory else None
            except (OSError, RuntimeError) as err:  # h5py raises these on damaged data blocks
                raise DatasetError(f"cannot read {self.path}: file damaged ({err})") from None
        self._file: h5py.File | None = None
        self._pid = -1

    def _load(self, f: h5py.File) -> tuple[torch.Tensor, torch.Tensor]:
        def stack(names: list[str]) -> torch.Tensor:
            arrays = [read_selection(f, n, self.indices, self.spatial_shape) for n in names]
            return torch.from_numpy(np.concatenate(arrays, axis=1))

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
            return torch.from_numpy(np.concatenate(
                [read_selection(f, n, j, self.spatial_shape) for n in names]))

        return stack(self.inputs), stack(self.outputs)

    @property
    def in_channels(self) -> int:
        """Number of input channels."""
        return self._n_in

    @property
    def out_channels(self) -> int:
        """Number of output channels."""
        return self._n_out

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"], state["_pid"] = None, -1  # h5py handles cannot cross processes
        return state
