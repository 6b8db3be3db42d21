"""Datasets: HDF5 schema, atomic resumable writer, lazy reader, normalization, datamodule.

Names are imported on first use so that ``pdeml generate`` (writer only) does not pay for
importing torch and Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DatasetError": "pdeml.datasets.schema",
    "H5Dataset": "pdeml.datasets.reader",
    "OnlineDataModule": "pdeml.datasets.online",
    "PDEDataModule": "pdeml.datasets.datamodule",
    "StepDataset": "pdeml.datasets.timeseries",
    "TrajectoryDataset": "pdeml.datasets.timeseries",
    "UnitGaussianNormalizer": "pdeml.datasets.normalization",
    "generate_dataset": "pdeml.datasets.writer",
    "make_datamodule": "pdeml.datasets.dispatch",
    "generate_split": "pdeml.datasets.writer",
    "read_costs": "pdeml.datasets.costs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pdeml.datasets' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
