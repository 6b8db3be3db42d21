"""Point-cloud (irregular mesh) datasets: padded ``(sample, point, ...)`` with ``n_points``.

A point-cloud file stores per sample the node coordinates ``coords (sample, point, dim)``,
fields ``(sample, point)`` and the count of valid points ``n_points (sample)``; points from
``n_points`` on are padding. Batches are ``(coords, x, y, mask)`` with channels last,
``x (batch, points, in_channels)``, ``y (batch, points, out_channels)`` and ``mask (batch,
points)`` true at real points, trimmed to the longest sample in the batch. Normalizers are fitted
on valid points only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pdeml.datasets.datamodule import PDEDataModule
from pdeml.datasets.normalization import UnitGaussianNormalizer
from pdeml.datasets.schema import DatasetError, check_variables, open_h5, read_checked

COORDS, COUNT = "coords", "n_points"

PointBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def is_pointcloud(path: str | Path) -> bool:
    """Whether a pdeml file holds point clouds (it has ``coords`` and ``n_points``)."""
    with open_h5(path) as f:
        return COORDS in f and COUNT in f and f[COORDS].ndim == 3


class PointCloudDataset(Dataset):
    """Samples ``(coords, x, y, mask)`` of a point-cloud file, read into memory.

    Parameters
    ----------
    path
        The HDF5 file.
    inputs, outputs
        Per-point variables ``(sample, point)`` or ``(sample, point, channels)`` stacked as the
        input and target channels.
    indices
        A subset of sample indices; all by default.
    """

    def __init__(self, path: str | Path, inputs: Sequence[str], outputs: Sequence[str],
                 indices: Sequence[int] | None = None) -> None:
        self.path = Path(path)
        self.inputs, self.outputs = list(inputs), list(outputs)
        with open_h5(self.path) as f:
            check_variables(f, [COORDS, COUNT, *self.inputs, *self.outputs], self.path)
            n_total, capacity = f[COORDS].shape[:2]
            self.indices = np.arange(n_total) if indices is None else np.asarray(indices)
            try:
                self.coords = self._read(f, [COORDS], capacity)
                self.x = self._read(f, self.inputs, capacity)
                self.y = self._read(f, self.outputs, capacity)
                counts = np.asarray(f[COUNT][...])[self.indices]
            except (OSError, RuntimeError) as err:
                raise DatasetError(f"cannot read {self.path}: file damaged ({err})") from None
        if np.any(counts < 1) or np.any(counts > capacity) or np.any(counts != np.round(counts)):
            raise DatasetError(f"{self.path}: n_points must be integers in [1, {capacity}]")
        self.counts = torch.from_numpy(counts.astype(np.int64))
        self.space_dim = self.coords.shape[-1]

    def _read(self, f: h5py.File, names: list[str], capacity: int) -> torch.Tensor:
        parts = []
        for name in names:
            var = f[name]
            if var.ndim < 2 or var.shape[1] != capacity:
                raise DatasetError(f"{self.path}: '{name}' is not a per-point variable "
                                   f"(sample, point[, channels]), shape {var.shape}")
            data = np.asarray(read_checked(var, ..., self.path), np.float32)[self.indices]
            parts.append(data[..., None] if data.ndim == 2 else data.reshape(*data.shape[:2], -1))
        return torch.from_numpy(np.concatenate(parts, axis=-1))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> PointBatch:
        mask = torch.arange(self.coords.shape[1]) < self.counts[i]
        return self.coords[i], self.x[i], self.y[i], mask

    @property
    def in_channels(self) -> int:
        """Input channels per point."""
        return self.x.shape[-1]

    @property
    def out_channels(self) -> int:
        """Output channels per point."""
        return self.y.shape[-1]


def collate_points(samples: list[PointBatch]) -> PointBatch:
    """Stack samples and drop the padding that no sample of the batch needs."""
    coords, x, y, mask = (torch.stack(t) for t in zip(*samples, strict=True))
    n = int(mask.sum(dim=1).max())
    return coords[:, :n], x[:, :n], y[:, :n], mask[:, :n]


def fit_masked(n_channels: int, values: torch.Tensor, counts: torch.Tensor
               ) -> UnitGaussianNormalizer:
    """A per-channel normalizer of ``values (sample, point, channels)`` over valid points."""
    mask = torch.arange(values.shape[1]) < counts[:, None]
    valid = values[mask]  # (n_valid, channels)
    return UnitGaussianNormalizer(n_channels).fit([valid.T.unsqueeze(0)])


class PointCloudDataModule(PDEDataModule):
    """:class:`~pdeml.datasets.datamodule.PDEDataModule` for point-cloud files.

    Same arguments; ``in_memory`` is implied. Batches are ``(coords, x, y, mask)`` (see the
    module docstring); ``space_dim`` is the coordinate count per point.
    """

    def _dataset(self, path: str | Path, indices: np.ndarray | None = None
                 ) -> PointCloudDataset:
        if not is_pointcloud(path):
            raise DatasetError(f"{path} is not a point-cloud file (no coords/n_points)")
        return PointCloudDataset(path, self.inputs, self.outputs, indices)

    @property
    def space_dim(self) -> int:
        """Coordinates per point."""
        self.setup("fit")
        return self.train_set.space_dim

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Padded points per sample (the capacity of the training file)."""
        self.setup("fit")
        return (self.train_set.coords.shape[1],)

    def fit_normalizers(self) -> tuple[UnitGaussianNormalizer, UnitGaussianNormalizer]:
        """Input and output normalizers of the training split, padding left out."""
        self.setup("fit")
        ds = self.train_set
        return (fit_masked(ds.in_channels, ds.x, ds.counts),
                fit_masked(ds.out_channels, ds.y, ds.counts))

    def _loader(self, dataset: PointCloudDataset, shuffle: bool) -> DataLoader:
        from pdeml.datasets.datamodule import eval_sampler

        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle,
                          sampler=None if shuffle else eval_sampler(dataset),
                          num_workers=self.num_workers, collate_fn=collate_points,
                          persistent_workers=self.num_workers > 0)
