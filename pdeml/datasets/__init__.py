"""Datasets: HDF5 schema, atomic resumable writer, lazy reader, normalization, datamodule."""

from pdeml.datasets.datamodule import PDEDataModule
from pdeml.datasets.normalization import UnitGaussianNormalizer
from pdeml.datasets.reader import H5Dataset
from pdeml.datasets.schema import DatasetError
from pdeml.datasets.writer import generate_dataset, generate_split

__all__ = [
    "DatasetError",
    "H5Dataset",
    "PDEDataModule",
    "UnitGaussianNormalizer",
    "generate_dataset",
    "generate_split",
]
