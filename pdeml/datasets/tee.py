"""The stream written to an HDF5 file as it flows (``OnlineDataModule(tee=...)``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pdeml.solvers.problems.base import Problem


class StreamTee:
    """Append streamed samples to a pdeml HDF5 file (schema layout, growing ``sample`` axis).

    The file is written as ``<path>.partial`` and renamed to ``path`` by :meth:`close`; a
    resumed run appends to an existing ``.partial``. The ``sample`` coordinate holds each
    sample's stream index, so samples regenerated after a resume show up as repeated indices.
    Each chunk's cost record (:mod:`pdeml.datasets.costs`) is appended to
    ``<path>.partial.cost.jsonl`` as it comes; :meth:`close` turns it into the sidecar
    ``<path>.cost.json``, as a generated file has.
    """

    def __init__(self, path: str | Path, problem: Problem, seed: int, split: str) -> None:
        import h5netcdf

        from pdeml.datasets.schema import create_layout, provenance

        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.cost_log = self.partial.with_name(self.partial.name + ".cost.jsonl")
        self._seed, self._split = seed, split
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._attrs = {**provenance(problem, seed, split, 0), "online_stream": 1}
        fresh = not self.partial.exists()
        self._f = h5netcdf.File(self.partial, "w" if fresh else "a")
        if fresh:
            create_layout(self._f, None, problem.coords(), problem.variables())
        self._names = list(problem.variables())
        self.n = self._f.dimensions["sample"].size

    def write(self, arrays: dict[str, np.ndarray], indices: Sequence[int],
              cost: dict[str, Any] | None = None) -> None:
        """Append rows ``arrays[name][-len(indices):]`` with their stream ``indices``, and
        their ``cost`` record (:func:`pdeml.datasets.costs.shard_record`) when given."""
        k = len(indices)
        if k == 0:
            return
        if cost is not None:
            with open(self.cost_log, "a") as fh:
                fh.write(json.dumps(cost) + "\n")
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
        if self.cost_log.exists():
            from pdeml.datasets.costs import read_log, write_sidecar

            header = {"problem": self._attrs["problem"], "split": self._split,
                      "seed": self._seed, "online_stream": 1}
            write_sidecar(self.path, read_log(self.cost_log), header)
            self.cost_log.unlink()
