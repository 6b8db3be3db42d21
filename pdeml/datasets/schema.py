"""The pdeml HDF5 layout (one file per split), written through h5netcdf.

Writing through h5netcdf gives real HDF5 dimension scales, so the same file opens with plain
``h5py`` and with ``xarray.open_dataset(path, engine="h5netcdf")`` with named dimensions:

- grid data: ``(sample, [time,] y, x)`` float32, one sample per chunk;
- per-sample parameters: 1-D variables along ``sample``;
- coordinates: 1-D variables named like their dimension;
- root attributes: provenance (see :func:`provenance`), ``pdeml_schema_version``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5netcdf
import h5py
import numpy as np

from pdeml.solvers.problems.base import Variable

SCHEMA_VERSION = "1"
SAMPLE_DIM = "sample"


class DatasetError(ValueError):
    """A dataset file is missing, unreadable, or not what the caller asked for."""


def provenance(problem: Any, seed: int, split: str, n_samples: int) -> dict[str, Any]:
    """Root attributes describing how a file was made.

    No timestamps or host names: two runs with the same settings must give identical bytes.
    """
    from pdeml import __version__

    return {
        "title": f"pdeml {problem.name} dataset ({split})",
        "problem": problem.name,
        "problem_settings": json.dumps(problem.attrs(), sort_keys=True),
        "solver": problem.attrs().get("solver", "scipy.sparse.linalg.spsolve"),
        "seed": int(seed),
        "split": split,
        "n_samples": int(n_samples),
        "input_vars": json.dumps(list(problem.input_vars)),
        "output_vars": json.dumps(list(problem.output_vars)),
        "pdeml_version": __version__,
        "pdeml_schema_version": SCHEMA_VERSION,
        "Conventions": "CF-1.8",
    }


def open_h5(path: str | Path) -> h5py.File:
    """Open a pdeml dataset read-only with a one-line error for missing or damaged files."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise DatasetError(f"cannot read {path}: not an HDF5 file or truncated ({err})") from None
    return f


def check_variables(f: h5py.File, names: list[str] | tuple[str, ...], path: str | Path) -> None:
    """Raise :class:`DatasetError` naming the variables that are missing from ``f``."""
    missing = [n for n in names if n not in f]
    if missing:
        have = ", ".join(sorted(k for k in f.keys() if isinstance(f[k], h5py.Dataset)))
        raise DatasetError(f"{path} has no variable {', '.join(missing)} (has: {have})")


def read_attrs(path: str | Path) -> dict[str, Any]:
    """Root attributes of a dataset as plain Python values."""
    with open_h5(path) as f:
        return {k: _plain_attr(v) for k, v in f.attrs.items()}


def _plain_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.item() if value.size == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def create_layout(
    f: h5netcdf.File, n: int | None, coords: dict[str, np.ndarray], variables: dict[str, Variable]
) -> dict[str, h5netcdf.Variable]:
    """Dimensions, coordinates and empty variables of an ``n``-sample file, in schema layout.

    ``n=None`` makes ``sample`` an unlimited dimension (a file that grows, as the online tee);
    the caller then resizes it and fills the ``sample`` coordinate.
    """
    f.dimensions = {SAMPLE_DIM: n, **{d: len(c) for d, c in coords.items()}}
    for d, c in coords.items():
        f.create_variable(d, (d,), "f8", data=np.asarray(c, dtype="f8"))
    f.create_variable(SAMPLE_DIM, (SAMPLE_DIM,), "i8",
                      data=None if n is None else np.arange(n))
    out = {}
    for name, var in variables.items():
        sizes = [len(coords[d]) for d in var.dims]
        out[name] = f.create_variable(
            name,
            (SAMPLE_DIM, *var.dims),
            var.dtype or ("f4" if var.dims else "f8"),
            chunks=(1, *sizes) if var.dims else None,
        )
        out[name].attrs["units"] = var.units
        out[name].attrs["long_name"] = var.description
    return out


def write_arrays(
    path: str | Path,
    coords: dict[str, np.ndarray],
    variables: dict[str, tuple[Variable, np.ndarray]],
    attrs: dict[str, Any],
) -> Path:
    """Write in-memory arrays ``(sample, *dims)`` as a schema file, atomically (tmp + rename)."""
    path = Path(path)
    sizes = {len(a) for _, a in variables.values()}
    if len(sizes) != 1:
        raise DatasetError(f"variables disagree on the number of samples: {sorted(sizes)}")
    for name, (var, a) in variables.items():
        want = tuple(len(coords[d]) for d in var.dims)
        if a.shape[1:] != want:
            raise DatasetError(f"variable '{name}' has shape {a.shape[1:]}, expected {want}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5netcdf.File(tmp, "w") as f:
        out = create_layout(f, sizes.pop(), coords, {k: v for k, (v, _) in variables.items()})
        for name, (_, a) in variables.items():
            out[name][...] = a.astype(out[name].dtype)
        f.attrs.update(attrs)
    os.replace(tmp, path)
    return path
