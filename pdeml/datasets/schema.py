"""The pdeml HDF5 layout (one file per split), written through h5netcdf.

Writing through h5netcdf gives real HDF5 dimension scales, so the same file opens with plain
``h5py`` and with ``xarray.open_dataset(path, engine="h5netcdf")`` with named dimensions:

- grid data: ``(sample, [time,] y, x)`` float32, one sample per chunk;
- per-sample parameters: 1-D variables along ``sample``;
- coordinates: 1-D variables named like their dimension, with ``units`` and ``axis``;
- root attributes: provenance (see :func:`provenance`), ``pdeml_schema_version``;
- a ``boundary_conditions`` group (see :func:`write_boundary_conditions`), where the problem
  declares its boundaries.

Every chunk (one sample of one variable) carries a Fletcher-32 checksum and is compressed
with the byte-shuffle filter and a fast codec (:data:`CHUNK_FILTERS`; the choice is measured
by ``scripts/bench_hdf5_filters.py``). A damaged chunk then fails to read instead of
returning garbage, and the reader names the file and the sample (:func:`read_checked`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5netcdf
import h5py
import numpy as np

from pdeml.solvers.problems.base import Variable

SCHEMA_VERSION = "2"  # 2: checksummed + compressed chunks, coordinate attributes, BC group
SAMPLE_DIM = "sample"
BC_GROUP = "boundary_conditions"
#: HDF5 filters of every per-sample chunk. gzip level 1 after byte shuffling: see
#: ``scripts/bench_hdf5_filters.py`` and the README for the measured size and read speed.
CHUNK_FILTERS: dict[str, Any] = {"compression": "gzip", "compression_opts": 1,
                                 "shuffle": True, "fletcher32": True}
_AXES = {"x": "X", "y": "Y", "z": "Z", "time": "T", "t": "T"}


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


def check_problem(path: str | Path, expected: str | None, whose: str) -> None:
    """Refuse a file of another problem than ``expected`` (``whose``: what expects it, e.g.
    "the model was trained on"); files or runs that do not say their problem pass."""
    problem = read_attrs(path).get("problem")
    if expected and problem and problem != expected:
        raise DatasetError(f"{path} holds {problem} data; {whose} {expected}")


def _plain_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.item() if value.size == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def open_source(src: Path) -> h5py.File:
    """An outside HDF5 file opened for reading, or a one-line :class:`DatasetError` (missing,
    not HDF5, truncated)."""
    if not src.exists():
        raise DatasetError(f"file not found: {src}")
    try:
        return h5py.File(src, "r")
    except OSError as err:
        raise DatasetError(f"cannot read {src}: not an HDF5 file or truncated ({err})") from None


def create_layout(
    f: h5netcdf.File, n: int | None, coords: dict[str, np.ndarray], variables: dict[str, Variable],
    coord_units: dict[str, str] | None = None,
    boundaries: dict[str, dict[str, Any]] | None = None,
    filters: dict[str, Any] | None = None,
) -> dict[str, h5netcdf.Variable]:
    """Dimensions, coordinates and empty variables of an ``n``-sample file, in schema layout.

    ``n=None`` makes ``sample`` an unlimited dimension (a file that grows, as the online tee);
    the caller then resizes it and fills the ``sample`` coordinate. Coordinates get ``units``
    (``coord_units``, ``"1"`` by default: the grids are non-dimensional) and, for ``x``, ``y``,
    ``z`` and ``time``, the CF ``axis``. ``boundaries`` go to
    :func:`write_boundary_conditions`. Gridded variables are chunked one sample per chunk
    with ``filters`` (h5py ``create_dataset`` options; :data:`CHUNK_FILTERS` by default).
    """
    filters = CHUNK_FILTERS if filters is None else filters
    f.dimensions = {SAMPLE_DIM: n, **{d: len(c) for d, c in coords.items()}}
    for d, c in coords.items():
        cv = f.create_variable(d, (d,), "f8", data=np.asarray(c, dtype="f8"))
        cv.attrs["units"] = (coord_units or {}).get(d, "1")
        if d in _AXES:
            cv.attrs["axis"] = _AXES[d]
    f.create_variable(SAMPLE_DIM, (SAMPLE_DIM,), "i8",
                      data=None if n is None else np.arange(n))
    if boundaries:
        write_boundary_conditions(f, boundaries, coords)
    out = {}
    for name, var in variables.items():
        sizes = [len(coords[d]) for d in var.dims]
        out[name] = f.create_variable(
            name,
            (SAMPLE_DIM, *var.dims),
            var.dtype or ("f4" if var.dims else "f8"),
            chunks=(1, *sizes) if var.dims else None,
            **(filters if var.dims else {}),
        )
        out[name].attrs["units"] = var.units
        out[name].attrs["long_name"] = var.description
    return out


BC_TYPES = ("periodic", "dirichlet", "neumann", "wall", "inflow", "outflow", "open")


def write_boundary_conditions(
    f: h5netcdf.File, boundaries: dict[str, dict[str, Any]], coords: dict[str, np.ndarray]
) -> None:
    """Record boundary conditions in a ``boundary_conditions`` group, one subgroup each.

    The idea is The Well's (its files keep a ``boundary_conditions`` group with one group per
    boundary, attributes ``bc_type``, ``associated_dims``, ``associated_fields``,
    ``sample_varying``, ``time_varying`` and a boolean ``mask`` along the boundary's
    dimension). pdeml follows that layout with these departures: ``mask`` is int8 (netCDF
    has no boolean type, and xarray reads the group either way), ``bc_type`` takes the PDE
    names (:data:`BC_TYPES`: ``dirichlet``/``neumann`` besides The Well's
    periodic/wall/open), a constant boundary value is an attribute ``value`` instead of a
    ``values`` array, and ``side`` says which end of the dimension it is.

    Parameters
    ----------
    boundaries
        ``{name: {"bc_type", "dim", "side" ("lower", "upper" or "both"), "fields" (list),
        "value" (optional number), "sample_varying" (bool, default False)}}``.
    """
    group = f.create_group(BC_GROUP)
    for name, bc in boundaries.items():
        if bc["bc_type"] not in BC_TYPES or bc.get("side", "both") not in (
                "lower", "upper", "both"):
            raise DatasetError(f"boundary '{name}': bc_type must be one of {BC_TYPES} and side "
                               f"lower/upper/both, got {bc}")
        sub = group.create_group(name)
        dim, side = bc["dim"], bc.get("side", "both")
        sub.attrs.update({"bc_type": bc["bc_type"], "associated_dims": [dim],
                          "associated_fields": list(bc.get("fields") or []) or [""],
                          "side": side, "sample_varying": int(bc.get("sample_varying", False)),
                          "time_varying": int(bc.get("time_varying", False))})
        if "value" in bc:
            sub.attrs["value"] = float(bc["value"])
        if dim in coords and bc.get("mask", True):
            mask = np.zeros(len(coords[dim]), dtype="i1")
            mask[[0, -1] if side == "both" else [0] if side == "lower" else [-1]] = 1
            sub.create_variable("mask", (dim,), "i1", data=mask)


def read_boundary_conditions(path: str | Path) -> dict[str, dict[str, Any]]:
    """The boundary conditions a file records (``{}`` for files without the group)."""
    with open_h5(path) as f:
        if BC_GROUP not in f:
            return {}
        return {name: {k: _plain_attr(v) for k, v in g.attrs.items()}
                for name, g in f[BC_GROUP].items()}


def read_checked(var: h5py.Dataset, key: Any, path: str | Path) -> np.ndarray:
    """``var[key]`` that stops on a damaged chunk or a non-finite value, naming the sample.

    ``key`` indexes the sample axis first (an int, a slice, an index array or ``...``),
    possibly followed by more axes in a tuple. A chunk whose Fletcher-32 checksum (or
    decompression) fails raises ``OSError`` in h5py; the samples are then re-read one at a
    time to name the first damaged one. The finiteness test costs one pass over data that
    was just read from disk.
    """
    from pdeml.checks import first_nonfinite

    rows = key[0] if isinstance(key, tuple) else key
    name = var.name.lstrip("/")
    try:
        data = np.asarray(var[key])
    except (OSError, RuntimeError) as err:
        bad = next((i for i in _sample_ids(var, rows) if not _readable(var, i)), None)
        where = f"sample {bad}" if bad is not None else "a sample"
        raise DatasetError(f"{path}: {where} of '{name}' is damaged (checksum or decompression "
                           f"failed: {' '.join(str(err).split())[:120]})") from None
    single = isinstance(rows, int | np.integer)
    bad = first_nonfinite(data[None] if single else data)
    if bad is not None:
        index = _sample_ids(var, rows)[bad]
        raise DatasetError(f"{path}: sample {index} of '{name}' holds NaN or Inf values")
    return data


def _sample_ids(var: h5py.Dataset, rows: Any) -> Sequence[int]:
    if rows is Ellipsis:
        return range(var.shape[0])
    if isinstance(rows, slice):
        return range(*rows.indices(var.shape[0]))
    if isinstance(rows, int | np.integer):
        return [int(rows)]
    return [int(r) for r in np.asarray(rows).ravel()]


def _readable(var: h5py.Dataset, i: int) -> bool:
    try:
        var[i]
    except (OSError, RuntimeError):
        return False
    return True


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
    from pdeml.checks import first_nonfinite

    for name, (var, a) in variables.items():
        want = tuple(len(coords[d]) for d in var.dims)
        if a.shape[1:] != want:
            raise DatasetError(f"variable '{name}' has shape {a.shape[1:]}, expected {want}")
        bad = first_nonfinite(a)
        if bad is not None:
            raise DatasetError(f"sample {bad} of '{name}' holds NaN or Inf values; "
                               f"not writing {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5netcdf.File(tmp, "w") as f:
        out = create_layout(f, sizes.pop(), coords, {k: v for k, (v, _) in variables.items()})
        for name, (_, a) in variables.items():
            out[name][...] = a.astype(out[name].dtype)
        f.attrs.update(attrs)
    os.replace(tmp, path)
    return path
