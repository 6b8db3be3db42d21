"""Import outside datasets into the pdeml HDF5 schema.

Formats (``pdeml import FORMAT SRC --out DST.h5``):

- ``neuraloperator``: neuraloperator's ``.pt`` Darcy and Burgers files;
- ``fno-mat``: the FNO paper's MATLAB files, v5 (scipy.io) and v7.3 (HDF5, via h5py);
- ``pdebench``: PDEBench HDF5, single-array files (``tensor`` or ``Vx``/``density``/... with
  ``x-coordinate``...) and per-seed-group files (``0000/data``, ``0000/grid/x``...);
- ``cfdbench``: CFDBench case folders (``case.json``, ``u.npy``, ``v.npy``);
- ``the_well``: The Well's HDF5 files (see :mod:`pdeml.datasets.the_well`).

Every importer declares ``input_vars``/``output_vars`` (overridable with ``inputs`` and
``outputs``), records the source in the root attributes, and writes atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from pdeml import __version__
from pdeml.datasets.declare import declare_io as _declare
from pdeml.datasets.declare import variable_name as _name
from pdeml.datasets.reader import parse_selector
from pdeml.datasets.schema import SCHEMA_VERSION, DatasetError, open_source, write_arrays
from pdeml.solvers.fields import grid_points
from pdeml.solvers.problems.base import Variable


def _load_pt(src: Path) -> dict[str, np.ndarray]:
    if not src.exists():
        raise DatasetError(f"file not found: {src}")
    try:
        data = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged or foreign file
        first = str(err).splitlines()[0]
        raise DatasetError(f"cannot read {src} as a torch file: {first}") from None
    if not isinstance(data, dict) or not {"x", "y"} <= set(data):
        raise DatasetError(f"{src} is not a neuraloperator dataset (needs a dict with 'x' and 'y')")
    return {k: v.numpy() for k, v in data.items() if isinstance(v, torch.Tensor)}


def import_neuraloperator_pt(
    src: str | Path, dst: str | Path, inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
) -> Path:
    """Convert a neuraloperator ``.pt`` dataset (Darcy or Burgers) into a pdeml HDF5 file.

    Darcy files (``x``: ``(N, s, s)`` coefficient mask, ``y``: ``(N, s, s)`` pressure) become
    variables ``a`` and ``u`` on the node grid; Burgers files (``x``: ``(N, s)`` initial
    condition, ``y``: ``(N, T, s)`` trajectory) become ``u0`` and ``u`` on a periodic grid.
    ``inputs``/``outputs`` override the declared variables.
    """
    src, dst = Path(src), Path(dst)
    d = _load_pt(src)
    x, y = d["x"], d["y"]
    attrs = {"title": f"imported from {src.name}", "source": str(src.name),
             "source_format": "neuraloperator .pt", "pdeml_version": __version__,
             "pdeml_schema_version": SCHEMA_VERSION, "n_samples": int(len(x))}
    if x.ndim == 3 and y.shape == x.shape:
        s = x.shape[-1]
        g = grid_points(s, "bounded")
        coords = {"y": g.copy(), "x": g}
        variables = {"a": (Variable(("y", "x"), "1", "coefficient"), x),
                     "u": (Variable(("y", "x"), "1", "solution"), y)}
        attrs |= {"problem": "darcy", "input_vars": json.dumps(["a"]),
                  "output_vars": json.dumps(["u"])}
    elif x.ndim == 2 and y.ndim == 3 and y.shape[2] == x.shape[1]:
        coords = {"time": np.arange(y.shape[1], dtype=float),
                  "x": grid_points(x.shape[1], "periodic")}
        variables = {"u0": (Variable(("x",), "1", "initial condition"), x),
                     "u": (Variable(("time", "x"), "1", "trajectory"), y)}
        attrs |= {"problem": "burgers", "input_vars": json.dumps(["u0"]),
                  "output_vars": json.dumps(["u"])}
        if "visc" in d:
            attrs["viscosity"] = float(np.asarray(d["visc"]).ravel()[0])
    else:
        raise DatasetError(
            f"{src}: unrecognized shapes x{tuple(x.shape)}, y{tuple(y.shape)} "
            "(expected Darcy (N,s,s)/(N,s,s) or Burgers (N,s)/(N,T,s))"
        )
    return write_arrays(dst, coords, variables, attrs)


# ----------------------------------------------------------------------------- common helpers
def _base_attrs(src: Path, fmt: str, n: int) -> dict[str, Any]:
    return {"title": f"imported from {src.name}", "source": src.name, "source_format": fmt,
            "pdeml_version": __version__, "pdeml_schema_version": SCHEMA_VERSION,
            "n_samples": int(n)}


def _spatial_dims(n: int) -> tuple[str, ...]:
    if not 1 <= n <= 3:
        raise DatasetError(f"{n} spatial dimensions are not supported (1 to 3)")
    return ("z", "y", "x")[3 - n :]


def _limit(n: int, n_samples: int | None) -> int:
    if n_samples is None:
        return n
    if int(n_samples) != n_samples or n_samples < 1:
        raise DatasetError(f"n_samples must be a positive integer, got {n_samples}")
    return min(n, int(n_samples))


def _default_io(timed: list[str], static: list[str], outputs_first: Sequence[str] = ()
                ) -> tuple[list[str], list[str]]:
    """Time series map first step (+ static inputs) to last step; else static to static."""
    if timed:
        return [f"{v}[0]" for v in timed] + static, [f"{v}[-1]" for v in timed]
    out = [v for v in outputs_first if v in static][:1] or static[-1:]
    return [v for v in static if v not in out], out


# ------------------------------------------------------------------------------- FNO .mat
def _load_mat(src: Path) -> dict[str, np.ndarray]:
    """Numeric arrays of a MATLAB file, v7.3 (HDF5, axes reversed back) or v5 (scipy)."""
    if not src.exists():
        raise DatasetError(f"file not found: {src}")
    if h5py.is_hdf5(src):
        with h5py.File(src, "r") as f:  # v7.3 stores column-major: h5py sees axes reversed
            return {k: np.asarray(d[()]).transpose() for k, d in f.items()
                    if isinstance(d, h5py.Dataset) and d.dtype.kind in "fiu"}
    import scipy.io

    try:
        data = scipy.io.loadmat(src)
    except Exception as err:  # scipy raises several types for foreign or damaged files
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DatasetError(f"cannot read {src} as a MATLAB file: {first}") from None
    return {k: v for k, v in data.items() if not k.startswith("__")
            and isinstance(v, np.ndarray) and v.dtype.kind in "fiu"}


FNO_PAIRS = (("coeff", "sol", "bounded"), ("a", "u", "periodic"),
             ("input", "output", "periodic"))


def _fno_layout(src: Path, arrays: dict[str, np.ndarray], inputs: Sequence[str] | None,
                outputs: Sequence[str] | None) -> tuple[str, str, str]:
    if inputs and outputs:
        key_in, key_out = parse_selector(inputs[0])[0], parse_selector(outputs[0])[0]
        known = {a: g for a, _, g in FNO_PAIRS}
        return key_in, key_out, known.get(key_in, "periodic")
    for key_in, key_out, grid in FNO_PAIRS:
        if key_in in arrays and key_out in arrays:
            return key_in, key_out, grid
    raise DatasetError(f"{src}: cannot tell inputs from outputs (has: {', '.join(sorted(arrays))}"
                       "; expected coeff/sol, a/u or input/output); pass inputs and outputs")


def import_fno_mat(
    src: str | Path, dst: str | Path, inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None, grid: str = "auto", n_samples: int | None = None,
) -> Path:
    """Convert an FNO-paper ``.mat`` file (MATLAB v5 or v7.3) into a pdeml HDF5 file.

    Every numeric array whose first axis is the sample axis is imported under its own name:
    on the input's grid (Darcy ``coeff``/``sol``, Burgers ``a``/``u``) or as a time series
    when it has one more axis, time last as in the FNO Navier-Stokes files (``u``:
    ``(N, s, s, T)``, stored as ``(sample, time, y, x)``; ``t`` gives the times when its
    length matches). Spatial axes keep their order in the file. Other arrays are skipped
    and listed in the ``skipped_variables`` attribute.

    Parameters
    ----------
    src, dst
        The ``.mat`` file and the HDF5 file to write.
    inputs, outputs
        Declared input/output selectors; by default the recognised pair (``coeff -> sol``,
        ``a -> u`` or ``a -> u[-1]`` for a time series, ``input -> output``).
    grid
        ``"bounded"`` (nodes include both ends, as in the FNO Darcy data), ``"periodic"``, or
        ``"auto"``: bounded for ``coeff``/``sol``, periodic otherwise.
    n_samples
        Import only the first samples.
    """
    src = Path(src)
    arrays = _load_mat(src)
    key_in, key_out, auto_grid = _fno_layout(src, arrays, inputs, outputs)
    for key in (key_in, key_out):
        if key not in arrays:
            raise DatasetError(f"{src} has no variable '{key}' (has: {', '.join(sorted(arrays))})")
    if grid not in ("auto", "bounded", "periodic"):
        raise ValueError(f"grid must be auto, bounded or periodic, got '{grid}'")
    grid = auto_grid if grid == "auto" else grid
    ref = arrays[key_in]
    if ref.ndim < 2:
        raise DatasetError(f"{src}: '{key_in}' has shape {ref.shape}, expected (N, *grid)")
    n, space = _limit(ref.shape[0], n_samples), ref.shape[1:]
    dims = _spatial_dims(len(space))
    coords: dict[str, np.ndarray] = {d: grid_points(s, grid) for d, s in zip(dims, space,
                                                                          strict=True)}
    variables, skipped, n_time = {}, [], None
    for key, a in arrays.items():
        if a.ndim >= 2 and a.shape[0] == ref.shape[0] and a.shape[1:] == space:
            variables[_name(key)] = (Variable(dims, "1", key), a[:n])
        elif a.ndim == len(space) + 2 and a.shape[0] == ref.shape[0] and (
                a.shape[1:-1] == space) and n_time in (None, a.shape[-1]):
            n_time = a.shape[-1]
            variables[_name(key)] = (Variable(("time", *dims), "1", key),
                                     np.moveaxis(a[:n], -1, 1))
        elif key != "t":
            skipped.append(key)
    if key_out not in variables:
        raise DatasetError(f"{src}: '{key_out}' {arrays[key_out].shape} does not match the "
                           f"grid of '{key_in}' {ref.shape}")
    if n_time is not None:
        t = np.asarray(arrays.get("t", [])).ravel()
        coords["time"] = t if t.size == n_time else np.arange(1, n_time + 1, dtype=float)
    attrs = _base_attrs(src, "FNO .mat", n) | {"problem": src.stem,
                                              "skipped_variables": json.dumps(skipped)}
    timed = variables[_name(key_out)][0].dims[0] == "time"
    attrs["input_vars"] = json.dumps([_name(key_in)])
    attrs["output_vars"] = json.dumps([f"{_name(key_out)}[-1]" if timed else _name(key_out)])
    _declare(attrs, src, variables, inputs, outputs)
    return write_arrays(dst, coords, variables, attrs)


# ------------------------------------------------------------------------------- streaming
def _write_stream(
    dst: str | Path, n: int, coords: dict[str, np.ndarray], variables: dict[str, Variable],
    read: Callable[[int, int], dict[str, np.ndarray]], attrs: dict[str, Any], chunk: int = 32,
) -> Path:
    """Write ``n`` samples, ``read(start, stop)`` at a time, atomically (tmp + rename): The
    Well importer's writer without units, variable attributes or boundary conditions."""
    from pdeml.datasets.the_well import write_streamed

    return write_streamed(Path(dst), n, coords, {}, variables, {}, {}, read, attrs, chunk)


# ------------------------------------------------------------------------------- PDEBench
_COORDS = ("x-coordinate", "y-coordinate", "z-coordinate")




def import_pdebench(
    src: str | Path, dst: str | Path, inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None, names: Sequence[str] | None = None,
    n_samples: int | None = None,
) -> Path:
    """Convert a PDEBench HDF5 file into a pdeml HDF5 file.

    Two layouts are recognised:

    - single-array files: arrays ``(N, [T,] X[, Y[, Z]])`` (``tensor``, ``nu``, ``Vx``,
      ``density``, ...) beside ``x-coordinate`` (``y-``, ``z-``, ``t-coordinate``); a
      time axis of length 1 without ``t-coordinate`` (Darcy's ``tensor``) is dropped;
    - per-seed groups: ``<seed>/data`` of shape ``(T, X[, Y[, Z]], C)`` with
      ``<seed>/grid/x`` (``y``, ``z``, ``t``); channel ``c`` becomes variable ``names[c]``
      (``u`` for one channel, ``u0, u1, ...`` for several by default).

    PDEBench's spatial axes are ``(x, y, z)``; pdeml's are ``(z, y, x)``, so they are
    reversed. Time series declare ``v[0]`` (+ static variables) as inputs and ``v[-1]`` as
    outputs unless ``inputs``/``outputs`` say otherwise; ``n_samples`` keeps the first ones.
    """
    src = Path(src)
    with open_source(src) as f:
        groups = sorted(k for k, v in f.items() if isinstance(v, h5py.Group) and "data" in v)
        if groups:
            plan = _seed_plan(src, f, groups, names, n_samples)
        else:
            plan = _single_plan(src, f, n_samples)
        coords, variables, read, n, timed = plan
        static = [k for k in variables if k not in timed]
        ins, outs = _default_io(timed, static, ("tensor",))
        attrs = _base_attrs(src, "PDEBench HDF5", n) | {
            "problem": src.stem, "layout": "per-seed groups" if groups else "single array",
            "input_vars": json.dumps(ins), "output_vars": json.dumps(outs)}
        _declare(attrs, src, variables, inputs, outputs)
        return _write_stream(dst, n, coords, variables, read, attrs)


def _space_coords(src: Path, values: list[np.ndarray]) -> dict[str, np.ndarray]:
    dims = _spatial_dims(len(values))
    return {d: np.asarray(v, float).ravel() for d, v in zip(dims, reversed(values), strict=True)}


def _time_coord(t: np.ndarray | None, n_time: int) -> np.ndarray:
    """PDEBench's ``t-coordinate`` may hold one more entry than the stored steps."""
    t = np.asarray([] if t is None else t, float).ravel()
    return t[:n_time] if t.size in (n_time, n_time + 1) else np.arange(n_time, dtype=float)


def _single_plan(src: Path, f: h5py.File, n_samples: int | None) -> tuple:
    present = [c for c in _COORDS if c in f]
    if not present or present != list(_COORDS[: len(present)]):
        raise DatasetError(f"{src}: no 'x-coordinate' dataset and no per-seed groups with "
                           f"'data' (has: {', '.join(sorted(f))}); not a PDEBench file")
    space = tuple(f[c].shape[0] for c in present)
    k = len(space)
    coords = _space_coords(src, [f[c][...] for c in present])
    variables, timed, n_time, sources = {}, [], None, {}
    for key, d in f.items():
        if key in _COORDS or key == "t-coordinate" or not isinstance(d, h5py.Dataset):
            continue
        if d.ndim not in (k + 1, k + 2) or d.shape[-k:] != space:
            continue
        squeeze = d.ndim == k + 2 and d.shape[1] == 1 and "t-coordinate" not in f
        name = _name(key)
        if d.ndim == k + 2 and not squeeze:
            if n_time not in (None, d.shape[1]):
                raise DatasetError(f"{src}: time series disagree on the number of steps "
                                   f"({n_time} vs {d.shape[1]} in '{key}')")
            n_time = d.shape[1]
            timed.append(name)
        sources[name] = (key, squeeze)
    if not sources:
        raise DatasetError(f"{src}: no array of shape (N, [T,] {', '.join(map(str, space))})")
    dims = tuple(coords)
    for name in sources:
        variables[name] = Variable(("time", *dims) if name in timed else dims, "1",
                                   sources[name][0])
    if n_time is not None:
        coords["time"] = _time_coord(f["t-coordinate"][...] if "t-coordinate" in f else None,
                                     n_time)
    counts = {f[key].shape[0] for key, _ in sources.values()}
    if len(counts) != 1:
        raise DatasetError(f"{src}: arrays disagree on the number of samples {sorted(counts)}")
    n = _limit(counts.pop(), n_samples)

    def read(start: int, stop: int) -> dict[str, np.ndarray]:
        out = {}
        with h5py.File(src, "r") as g:
            for name, (key, squeeze) in sources.items():
                a = g[key][start:stop]
                a = a[:, 0] if squeeze else a
                lead = a.ndim - k
                out[name] = a.transpose(*range(lead), *range(a.ndim - 1, lead - 1, -1))
        return out

    return coords, variables, read, n, timed


def _seed_plan(src: Path, f: h5py.File, groups: list[str], names: Sequence[str] | None,
               n_samples: int | None) -> tuple:
    first = f[groups[0]]
    shape = first["data"].shape
    if len(shape) < 3:
        raise DatasetError(f"{src}: '{groups[0]}/data' has shape {shape}, expected "
                           "(T, X[, Y[, Z]], C)")
    k, n_chan = len(shape) - 2, shape[-1]
    names = list(names) if names else (["u"] if n_chan == 1 else
                                       [f"u{c}" for c in range(n_chan)])
    if len(names) != n_chan:
        raise DatasetError(f"{src}: {len(names)} names for {n_chan} channels")
    for g in groups:
        if f[g]["data"].shape != shape:
            raise DatasetError(f"{src}: group '{g}' has data of shape {f[g]['data'].shape}, "
                               f"the first group {shape}")
    grid = first.get("grid")
    axes = []
    for axis, size in zip("xyz", shape[1:-1], strict=False):
        have = grid is not None and axis in grid
        axes.append(grid[axis][...] if have else np.linspace(0.0, 1.0, size))
    coords = _space_coords(src, axes)
    coords["time"] = _time_coord(grid["t"][...] if grid is not None and "t" in grid else None,
                                 shape[0])
    dims = ("time", *_spatial_dims(k))
    variables = {_name(v): Variable(dims, "1", f"channel {c}") for c, v in enumerate(names)}
    n = _limit(len(groups), n_samples)

    def read(start: int, stop: int) -> dict[str, np.ndarray]:
        with h5py.File(src, "r") as g:
            data = np.stack([g[groups[i]]["data"][...] for i in range(start, stop)])
        # (n, T, X, Y, C) -> per channel (n, T, Y, X)
        data = data.transpose(0, 1, *range(data.ndim - 2, 1, -1), data.ndim - 1)
        return {v: data[..., c] for c, v in enumerate(variables)}

    return coords, variables, read, n, list(variables)


# ------------------------------------------------------------------------------- CFDBench
def import_cfdbench(
    src: str | Path, dst: str | Path, inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None, n_samples: int | None = None,
    subsets: str | None = None, split: str | None = None, seed: int = 0,
) -> Path:
    """CFDBench case folders into one pdeml HDF5 file: see
    :func:`pdeml.datasets.cfdbench.import_cfdbench` (cases kept whole, mask from geometry,
    time in seconds, CFDBench's parameter names, optional CFDBench split)."""
    from pdeml.datasets.cfdbench import import_cfdbench as _import

    return _import(src, dst, inputs, outputs, n_samples, subsets, split, seed)


def import_the_well(
    src: str | Path, dst: str | Path, inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None, n_samples: int | None = None,
) -> Path:
    """One HDF5 file of The Well into a pdeml HDF5 file: see
    :func:`pdeml.datasets.the_well.import_the_well` (trajectories kept whole, tensor fields
    split into components, scalars as parameters, boundary conditions, units, coordinates)."""
    from pdeml.datasets.the_well import import_the_well as _import

    return _import(src, dst, inputs, outputs, n_samples)


IMPORTERS: dict[str, Callable[..., Path]] = {
    "fno-mat": import_fno_mat, "pdebench": import_pdebench,
    "neuraloperator": import_neuraloperator_pt, "cfdbench": import_cfdbench,
    "the_well": import_the_well,
}


def import_dataset(fmt: str, src: str | Path, dst: str | Path, overwrite: bool = False,
                   **options: Any) -> Path:
    """Import ``src`` of format ``fmt`` (a key of :data:`IMPORTERS`) into ``dst``.

    ``options`` go to the format's importer (``inputs``, ``outputs``, ``n_samples``, ...).
    An existing ``dst`` is replaced only with ``overwrite``.
    """
    import inspect

    from pdeml.checks import check_int, check_output

    check_output(dst, overwrite, "import target")
    if options.get("n_samples") is not None:
        check_int(options["n_samples"], "--limit", 1)

    if fmt not in IMPORTERS:
        raise ValueError(f"unknown import format '{fmt}'; use one of {', '.join(IMPORTERS)}")
    options = {k: v for k, v in options.items() if v is not None}
    accepted = inspect.signature(IMPORTERS[fmt]).parameters
    extra = sorted(set(options) - set(accepted))
    if extra:
        raise ValueError(f"format '{fmt}' does not take {', '.join(extra)}")
    return IMPORTERS[fmt](src, dst, **options)
