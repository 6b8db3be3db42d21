"""LightningDataModule over pdeml HDF5 splits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from pdeml.datasets.normalization import UnitGaussianNormalizer
from pdeml.datasets.reader import H5Dataset
from pdeml.datasets.schema import DatasetError, read_attrs


def default_vars(path: str | Path) -> tuple[list[str], list[str]]:
    """The input and output variables a pdeml file declares in its attributes."""
    attrs = read_attrs(path)
    try:
        return json.loads(attrs["input_vars"]), json.loads(attrs["output_vars"])
    except KeyError:
        raise DatasetError(
            f"{path} does not declare input_vars/output_vars; name them explicitly"
        ) from None


def _check_rollout(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    if not spec:
        return None
    keys = {"fields", "static", "history", "residual", "stable_state_diff", "task"}
    unknown = sorted(set(spec) - keys)
    if unknown or "fields" not in spec:
        raise DatasetError(f"data.rollout takes {', '.join(sorted(keys))} (fields "
                           f"required); got {sorted(spec)}")
    if spec.get("task", "one_step") not in ("one_step", "nonauto"):
        raise DatasetError(f"data.rollout.task must be one_step or nonauto, got {spec['task']!r}")
    out = {"fields": list(spec["fields"]), "static": list(spec.get("static") or []),
           "history": int(spec.get("history", 1)), "residual": bool(spec.get("residual"))}
    # CFDBench's converged-frame rule and its non-autoregressive task (pdeml.suite)
    for key in ("stable_state_diff", "task"):
        if spec.get(key) is not None:
            out[key] = spec[key]
    return out


def eval_sampler(dataset: Any) -> Any:
    """Under DDP, a sampler that gives each rank a disjoint share of an evaluation set.

    Lightning's default ``DistributedSampler`` pads the set with repeated samples so that
    every rank has as many; those would count twice in the validation and test metrics.
    Lightning keeps a ``DistributedSampler`` it finds on a loader, so this one stays, and
    the per-rank metric sums are reduced exactly (see ``OperatorModule``). ``None`` (the
    default sequential order) outside DDP.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return None
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    return UnrepeatedDistributedSampler(dataset, shuffle=False)


def check_eval_files(dm: Any) -> None:
    """Open a grid datamodule's test and validation files now and check them against the
    training file: the same problem (where the files say) and the same channels. A file of
    another problem would otherwise be found only when the test runs, after training. Other
    grids are allowed (zero-shot super-resolution)."""
    if not isinstance(dm, PDEDataModule) or type(dm).setup is not PDEDataModule.setup:
        return
    dm.setup("fit")
    if dm.test_path and dm.test_set is None:
        dm.test_set = dm._dataset(dm.test_path)  # names a missing variable
    train_problem = read_attrs(dm.train_path).get("problem")
    for key, path, ds in (("test", dm.test_path, dm.test_set), ("val", dm.val_path, dm.val_set)):
        if not path or ds is None:
            continue
        problem = read_attrs(path).get("problem")
        if train_problem and problem and problem != train_problem:
            raise DatasetError(f"data.{key} {path} holds {problem} data; data.train holds "
                               f"{train_problem}")
        for what in ("in_channels", "out_channels"):
            theirs, ours = getattr(ds, what), getattr(dm.train_set, what)
            if theirs != ours:
                raise DatasetError(f"data.{key} {path} has {theirs} {what.replace('_', ' ')}; "
                                   f"data.train has {ours}")


class PDEDataModule(L.LightningDataModule):
    """Train / validation / test loaders over pdeml HDF5 files.

    Parameters
    ----------
    train
        Training file. Without ``val``, a ``val_fraction`` of it is held out for validation.
    test, val
        Optional test and validation files.
    inputs, outputs
        Variable names; by default those the training file declares.
    batch_size, num_workers
        DataLoader settings.
    val_fraction
        Share of ``train`` held out when no ``val`` file is given (0 disables validation).
    in_memory
        Load the selected variables into memory (fast for datasets that fit).
    seed
        Seed of the train/validation split.
    rollout
        Train a one-step (autoregressive) model instead: ``{"fields": [...], "static": [...],
        "history": 1, "residual": False}``; every split then serves the pairs of
        :class:`pdeml.datasets.timeseries.StepDataset` and ``inputs``/``outputs`` are unused.
    windows
        Train a spatiotemporal model instead: ``{"field": "w", "n_in": 10, "n_out": 10,
        "stride": 5}``; every split then serves the ``(1, n_in, *grid) -> (1, n_out, *grid)``
        windows of :class:`pdeml.datasets.spacetime.WindowDataset` (time as a grid axis) and
        ``inputs``/``outputs`` are unused.
    """

    def __init__(
        self,
        train: str | Path,
        test: str | Path | None = None,
        val: str | Path | None = None,
        inputs: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        in_memory: bool = True,
        seed: int = 0,
        rollout: dict[str, Any] | None = None,
        windows: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.train_path, self.test_path, self.val_path = train, test, val
        self.rollout = _check_rollout(rollout)
        self.windows = dict(windows) if windows else None
        if self.rollout or self.windows:
            inputs, outputs = inputs or [], outputs or []
        elif inputs is None or outputs is None:
            d_in, d_out = default_vars(train)
            inputs, outputs = inputs or d_in, outputs or d_out
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.val_fraction, self.in_memory, self.seed = val_fraction, in_memory, seed
        self.train_set = self.val_set = self.test_set = None

    def _dataset(self, path: str | Path, indices: np.ndarray | None = None) -> H5Dataset:
        if self.windows:
            from pdeml.datasets.spacetime import WindowDataset

            return WindowDataset(path, indices=indices, **self.windows)
        if self.rollout:
            from pdeml.datasets.timeseries import NonAutoDataset, StepDataset

            spec = dict(self.rollout)
            kind = NonAutoDataset if spec.pop("task", "one_step") == "nonauto" else StepDataset
            return kind(path, indices=indices, **spec)
        return H5Dataset(path, self.inputs, self.outputs, indices, self.in_memory)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            full = self._dataset(self.train_path)
            n = len(full.indices)  # samples (whole trajectories for rollout data), not pairs
            n_val = 0 if self.val_path else int(round(self.val_fraction * n))
            if n - n_val < 1:
                raise DatasetError(f"{self.train_path} has too few samples ({n}) to train on")
            perm = np.random.default_rng(self.seed).permutation(n)
            self.train_set = self._dataset(self.train_path, np.sort(perm[n_val:]))
            if self.val_path:
                self.val_set = self._dataset(self.val_path)
            elif n_val:
                self.val_set = self._dataset(self.train_path, np.sort(perm[:n_val]))
        if self.test_path and self.test_set is None and stage in (None, "test", "predict"):
            self.test_set = self._dataset(self.test_path)

    @property
    def in_channels(self) -> int:
        """Channels of the model input (a time range ``w[a:b]`` counts ``b - a``)."""
        self.setup("fit")
        return self.train_set.in_channels

    @property
    def out_channels(self) -> int:
        """Channels of the model output."""
        self.setup("fit")
        return self.train_set.out_channels

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Grid shape of the training data."""
        self.setup("fit")
        return self.train_set.spatial_shape

    def fit_normalizers(self) -> tuple[UnitGaussianNormalizer, UnitGaussianNormalizer]:
        """Input and output normalizers fitted on the training split only."""
        self.setup("fit")
        loader = DataLoader(self.train_set, batch_size=256, shuffle=False)
        n_in = UnitGaussianNormalizer(self.in_channels).fit(x for x, _ in loader)
        n_out = UnitGaussianNormalizer(self.out_channels).fit(y for _, y in loader)
        return n_in, n_out

    def _loader(self, dataset: H5Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            sampler=None if shuffle else eval_sampler(dataset),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, shuffle=False) if self.val_set is not None else []

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            raise DatasetError("no test file was given")
        return self._loader(self.test_set, shuffle=False)
