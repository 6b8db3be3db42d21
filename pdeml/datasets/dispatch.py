"""Which datamodule a ``data`` config section gets: grid files, point clouds or an online stream.

The dispatcher lives in its own module, above the datamodules it chooses between: they import
:class:`~pdeml.datasets.datamodule.PDEDataModule` (and its samplers) and this module imports them,
so no two of them import each other (``lint-imports`` checks it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pdeml.datasets.datamodule import PDEDataModule


def make_datamodule(**kwargs: Any) -> PDEDataModule:
    """The datamodule for a ``data`` section.

    Parameters
    ----------
    **kwargs
        The section: with ``online``, samples stream from Dask generators
        (:func:`pdeml.datasets.online.online_datamodule`); otherwise a point-cloud ``train``
        file gets :class:`pdeml.datasets.pointcloud.PointCloudDataModule` and a grid file
        :class:`~pdeml.datasets.datamodule.PDEDataModule`.

    Returns
    -------
    lightning.LightningDataModule
        The datamodule, not yet set up.
    """
    if "online" in kwargs:
        from pdeml.datasets.online import online_datamodule

        return online_datamodule(**kwargs)
    from pdeml.datasets.pointcloud import PointCloudDataModule, is_pointcloud

    train = kwargs.get("train")
    if train is not None and Path(train).exists() and is_pointcloud(train):
        return PointCloudDataModule(**kwargs)
    return PDEDataModule(**kwargs)
