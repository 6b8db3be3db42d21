"""The stream written to an HDF5 file as it flows (``OnlineDataModule(tee=...)``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pdeml.solvers.problems.base import Problem


class StreamTee:
    """Append streamed samples to a pdeml HDF5 file (schema layout, growing ``sample`` axis).

    The file is written as ``<path>.partial`` and renamed to ``path`` by :meth:`close`; a
    resumed run appends to an existing ``.partial``. The ``sample`` coordinate holds each
    sample's stream index, so samples regenerated after a resume show up as repeated indices.
    """

    def __init__(self, path: str | Path, problem: Problem, seed: int, split: str) -> None:
        import h5netcdf

        from pdeml.datasets.schema import create_layout, provenance

        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._attrs = {**provenance(problem, seed, split, 0), "online_stream": 1}
        fresh = not self.partial.exists()
        self._f = h5netcdf.File(self.partial, "w" if fresh else "a")
        if fresh:
            create_layout(self._f, None, problem.coords(), problem.variables())
        self._names = list(problem.variables())
        self.n = self._f.dimensions["sample"].size

    def write(self, arrays: dict[str, np.ndarray], indices: Sequence[int]) -> None:
        """Append rows ``arrays[name][-len(indices):]`` with their stream ``indices``."""
        k = len(indices)
        if k == 0:
            return
        self._f.resize_dimension("sample", self.n + k)
        for name in self._names:
            var = self._f.variables[name]
            var[self.n:self.n + k] = np.asarray(arrays[name][-k:]).astype(var.dtype)
        self._f.variables["sample"][self.n:self.n + k] = np.asarray(indices, np.int64)
        self.n += k
        self._f.flush()

    def close(self) -> None:
        """Finish the file and give it its final name."""
        import os

        if self._f is None:
            return
        self._f.attrs.update({**self._attrs, "n_samples": int(self.n)})
        self._f.close()
        self._f = None
        os.replace(self.partial, self.path)
