"""The Well (Ohana et al., NeurIPS 2024): import its HDF5 files into pdeml, export pdeml's.

The Well's layout is its ``docs/data_format.md`` and what its loader (``WellDataset`` in
``the_well/data/datasets.py``, the-well 1.2.0) reads: one file holds ``n_trajectories``
trajectories of one dataset, with

- root attributes ``dataset_name``, ``grid_type``, ``n_spatial_dims``, ``n_trajectories`` and
  ``simulation_parameters`` (names, each also a root attribute);
- ``dimensions``: ``time`` (``(T,)``, or ``(B, T)`` when ``sample_varying``) and one
  coordinate per spatial axis, named by the group's ``spatial_dims``;
- ``t0_fields``, ``t1_fields``, ``t2_fields``: scalar, vector and rank-2 tensor fields
  ``([B,] [T,] *space, [D, [D]])`` with ``sample_varying``, ``time_varying`` and
  ``dim_varying`` (the spatial axes stored; the others are constant along them);
- ``scalars``: ``([B,] [T])`` values with ``sample_varying`` and ``time_varying``;
- ``boundary_conditions``: one group per boundary with ``bc_type`` (periodic, wall, open),
  ``associated_dims`` and a boolean ``mask`` along them.

How it maps onto pdeml's schema (:mod:`pdeml.datasets.schema`):

- *Axes.* The Well orders space ``(x, y, z)``, pdeml ``(z, y, x)``: spatial axes are
  reversed both ways, and coordinates keep their names, values and ``units``.
- *Fields.* A t0 field is a variable ``(sample, [time,] *space)``; a t1/t2 field becomes one
  variable per component, named as The Well's loader names its channels (``velocity_x``,
  ``stress_xy``), with ``well_field``/``well_order``/``well_component`` attributes so that
  the export puts them back together. Spatial axes a field does not vary along are left out
  of its dimensions (as in the file).
- *Parameters.* A scalar becomes a variable ``(sample,)`` or ``(sample, time)``. What is
  the same for every trajectory (fields and scalars with ``sample_varying`` false) is
  repeated along ``sample`` and marked ``well_sample_varying = 0``; The Well's root
  attributes (``simulation_parameters`` values among them) become root attributes.
- *Boundary conditions* go to pdeml's ``boundary_conditions`` group, masks as int8 along
  the same dimensions; pdeml's PDE types map onto The Well's three (periodic; dirichlet,
  neumann, wall -> wall; inflow, outflow, open -> open), the original kept in
  ``pdeml_bc_type``, and a constant boundary ``value`` is also written as ``values``.
- *Time.* ``dimensions/time`` is the ``time`` coordinate; a sample-varying time becomes a
  variable ``trajectory_time`` (``well_role = "time"``) on a step-index coordinate.

Departures on export: coordinates are written in float32 (the specification's type) only
where that is exact, float64 otherwise, so a round trip keeps every grid point; datasets
keep their pdeml dtype; every pdeml root attribute travels as a root attribute (the
loader ignores them). Variables on another grid than the fields' (``w_fine``) cannot be
written and are listed in the result.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5netcdf
import h5py
import numpy as np

from pdeml import __version__
from pdeml.datasets.declare import declare_io, variable_name
from pdeml.datasets.schema import (
    BC_GROUP,
    SAMPLE_DIM,
    SCHEMA_VERSION,
    DatasetError,
    create_layout,
    open_source,
)
from pdeml.solvers.problems.base import Variable

ORDERS = ("t0_fields", "t1_fields", "t2_fields")
WELL_ROOT = ("dataset_name", "grid_type", "n_spatial_dims", "n_trajectories",
             "simulation_parameters")
#: pdeml root attributes that hold The Well's root keys of an imported file.
RENAMED = {"dataset_name": "well_dataset_name", "grid_type": "well_grid_type",
           "simulation_parameters": "well_simulation_parameters"}
BC_TO_WELL = {"periodic": "periodic", "wall": "wall", "dirichlet": "wall", "neumann": "wall",
              "inflow": "open", "outflow": "open", "open": "open"}
TIME_VARIABLE = "trajectory_time"
CHUNK_BYTES = 64 * 2**20  # trajectories read and written at a time: about this much


# ------------------------------------------------------------------------------- helpers
def attr_names(value: Any) -> list[str]:
    """An attribute holding one name or a list of names, as a list of ``str``."""
    if isinstance(value, bytes | str):
        value = [value]
    names = [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value)]
    return [v for v in names if v]


def _nc_attr(value: Any) -> Any:
    """An h5py attribute value as one h5netcdf can write (no booleans, strings not bytes)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, bool | np.bool_):
        return int(value)
    a = np.asarray(value)
    if a.dtype == bool:
        return a.astype("i1")
    if a.dtype.kind in "OSU":
        return attr_names(a) if a.ndim else str(a.item())
    return value


def _flag(attrs: Any, key: str, default: bool = True) -> bool:
    return bool(attrs[key]) if key in attrs else default


def chunk_rows(n: int, bytes_per_sample: int) -> int:
    return max(1, min(n, CHUNK_BYTES // max(bytes_per_sample, 1)))




# ------------------------------------------------------------------------------- import
@dataclass
class _Plan:
    """What an import writes: pdeml coordinates, variables, where each comes from."""

    n: int
    n_file: int
    coords: dict[str, np.ndarray] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    variables: dict[str, Variable] = field(default_factory=dict)
    var_attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # name -> (path in the Well file, sample_varying, axes before space once a sample axis is
    # there, per spatial axis of the file: dropped (a length-1 axis it does not vary along),
    # flat tensor component or None)
    sources: dict[str, tuple[str, bool, int, tuple[bool, ...], int | None]] = field(
        default_factory=dict)
    timed: list[str] = field(default_factory=list)
    static: list[str] = field(default_factory=list)
    bcs: dict[str, tuple[dict[str, Any], tuple[str, ...], np.ndarray]] = field(
        default_factory=dict)


def import_the_well(
    src: str | Path, dst: str | Path, inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None, n_samples: int | None = None,
) -> Path:
    """Convert one HDF5 file of The Well into a pdeml HDF5 file (trajectories kept whole).

    See the module docstring for the mapping. By default the model inputs are the first
    step of every time-varying field and the time-constant fields, the outputs the last
    step; a file exported by pdeml gets its own declaration back.

    Parameters
    ----------
    src, dst
        The Well file and the pdeml file to write (atomically).
    inputs, outputs
        Declared input/output selectors (``velocity_x[0]``), overriding the defaults.
    n_samples
        Import only the first trajectories.
    """
    src, dst = Path(src), Path(dst)
    with open_source(src) as f:
        n_file = _check_root(src, f)
        n = n_file
        if n_samples is not None:
            if int(n_samples) != n_samples or n_samples < 1:
                raise DatasetError(f"n_samples must be a positive integer, got {n_samples}")
            n = min(n, int(n_samples))
        plan = _Plan(n, n_file)
        well_dims = _read_dimensions(src, f, plan)
        for order, group in enumerate(ORDERS):
            for name in attr_names(f[group].attrs.get("field_names", [])) if group in f else []:
                _plan_field(src, f, plan, group, name, order, well_dims)
        if not plan.timed:
            raise DatasetError(f"{src}: no time-varying field in t0/t1/t2_fields; "
                               "not a Well file pdeml can import")
        if "scalars" in f:
            for name in attr_names(f["scalars"].attrs.get("field_names", [])):
                _plan_scalar(src, f, plan, name)
        if BC_GROUP in f:
            for name, g in f[BC_GROUP].items():
                plan.bcs[name] = _plan_bc(src, g, name, plan)
        attrs = _import_attrs(src, f, plan, inputs, outputs)
    return _write_pdeml(src, dst, plan, attrs)


def _check_root(src: Path, f: h5py.File) -> int:
    missing = [k for k in ("n_trajectories", "n_spatial_dims") if k not in f.attrs]
    if missing or "dimensions" not in f or not any(g in f for g in ORDERS):
        what = f"attribute {missing[0]}" if missing else "'dimensions' or t0/t1/t2_fields group"
        raise DatasetError(f"{src} is not a Well file: no {what} (has: "
                           f"{', '.join(sorted(f)) or 'nothing'})")
    n = int(f.attrs["n_trajectories"])
    if n < 1:
        raise DatasetError(f"{src}: n_trajectories is {n}; nothing to import")
    return n


def _read_dimensions(src: Path, f: h5py.File, plan: _Plan) -> list[str]:
    """Coordinates into ``plan``; returns the spatial dimensions in The Well's order."""
    dims = f["dimensions"]
    well_dims = attr_names(dims.attrs.get("spatial_dims", []))
    if len(well_dims) != int(f.attrs["n_spatial_dims"]) or not well_dims:
        raise DatasetError(f"{src}: dimensions/spatial_dims {well_dims} does not match "
                           f"n_spatial_dims {int(f.attrs['n_spatial_dims'])}")
    for d in ["time", *well_dims]:
        if d not in dims:
            raise DatasetError(f"{src}: no coordinate dimensions/{d}")
    if set(well_dims) & {"time", SAMPLE_DIM, TIME_VARIABLE}:
        raise DatasetError(f"{src}: spatial dimension names {well_dims} clash with pdeml's")
    t = dims["time"]
    if _flag(t.attrs, "sample_varying", False):
        if t.ndim != 2 or t.shape[0] != plan.n_file:
            raise DatasetError(f"{src}: sample-varying time has shape {t.shape}, expected "
                               f"(n_trajectories, T)")
        plan.coords["time"] = np.arange(t.shape[1], dtype=float)
        plan.variables[TIME_VARIABLE] = Variable(("time",), t.attrs.get("units", "1"),
                                                 "time of each step", t.dtype.str)
        plan.var_attrs[TIME_VARIABLE] = {"well_role": "time"}
        plan.sources[TIME_VARIABLE] = ("dimensions/time", True, 2, (), None)
    else:
        plan.coords["time"] = np.asarray(t[()], float).ravel()
        plan.units["time"] = _nc_attr(t.attrs.get("units", "1"))
    for d in reversed(well_dims):
        c = dims[d]
        if _flag(c.attrs, "sample_varying", False) or _flag(c.attrs, "time_varying", False) \
                or c.ndim != 1:
            raise DatasetError(f"{src}: coordinate dimensions/{d} varies between "
                               "trajectories or in time; pdeml needs one grid per file")
        plan.coords[d] = np.asarray(c[()], float)
        plan.units[d] = _nc_attr(c.attrs.get("units", "1"))
    return well_dims


def _add(src: Path, plan: _Plan, name: str, var: Variable, attrs: dict[str, Any],
         source: tuple[str, bool, int, tuple[bool, ...], int | None]) -> None:
    pdeml_name = variable_name(name)
    if pdeml_name in plan.variables or pdeml_name in plan.coords or pdeml_name == SAMPLE_DIM:
        raise DatasetError(f"{src}: two variables would be named '{pdeml_name}'")
    if pdeml_name != name:
        attrs = attrs | {"well_name": name}
    plan.variables[pdeml_name] = var
    plan.var_attrs[pdeml_name] = attrs
    plan.sources[pdeml_name] = source


def _plan_field(src: Path, f: h5py.File, plan: _Plan, group: str, name: str, order: int,
                well_dims: list[str]) -> None:
    path = f"{group}/{name}"
    if name not in f[group]:
        raise DatasetError(f"{src}: '{path}' is listed in field_names but absent")
    ds = f[path]
    sv, tv = _flag(ds.attrs, "sample_varying"), _flag(ds.attrs, "time_varying")
    varying = [bool(v) for v in np.atleast_1d(ds.attrs.get("dim_varying", [True] * len(
        well_dims)))]
    space = [d for d, v in zip(well_dims, varying, strict=False) if v]
    lead = ([plan.n_file] if sv else []) + ([len(plan.coords["time"])] if tv else [])
    n_dim = len(well_dims)
    # An axis a field does not vary along is stored with length 1 (what WellDataset tiles)
    # or left out (the specification's example and The Well's xarray export): both read.
    full = [len(plan.coords[d]) if v else 1 for d, v in zip(well_dims, varying,
                                                             strict=False)]
    expected = {}
    for grid in (full, [len(plan.coords[d]) for d in space]):
        for tensor in [[(), (n_dim,), (n_dim, n_dim)][order]] + ([(n_dim**2,)] if order == 2
                                                                 else []):
            expected[(*lead, *grid, *tensor)] = tuple(not v for v in varying) if \
                grid is full else (False,) * len(space)
    if len(varying) != n_dim or tuple(ds.shape) not in expected:
        raise DatasetError(f"{src}: '{path}' has shape {tuple(ds.shape)}, expected "
                           f"{next(iter(expected))} (sample_varying {sv}, time_varying "
                           f"{tv}, dim_varying {varying})")
    drop = expected[tuple(ds.shape)]
    dims = (("time",) if tv else ()) + tuple(reversed(space))
    units = _nc_attr(ds.attrs.get("units", "1"))
    comps = ["".join(c) for c in itertools.product(well_dims, repeat=order)]
    description = _nc_attr(ds.attrs.get("long_name", ds.attrs.get("description", "")))
    for k, comp in enumerate(comps):
        attrs: dict[str, Any] = {} if sv else {"well_sample_varying": 0}
        if order:
            attrs |= {"well_field": name, "well_order": order, "well_component": comp}
            for key in ("symmetric", "antisymmetric"):
                if key in ds.attrs:
                    attrs[f"well_{key}"] = int(bool(ds.attrs[key]))
        full = f"{name}_{comp}" if order else name
        _add(src, plan, full, Variable(dims, units, description or
                                       f"{name} (The Well t{order} field)", ds.dtype.str),
             attrs, (path, sv, 1 + tv, drop, k if order else None))
        (plan.timed if tv else plan.static).append(variable_name(full))


def _plan_scalar(src: Path, f: h5py.File, plan: _Plan, name: str) -> None:
    path = f"scalars/{name}"
    if name not in f["scalars"]:
        raise DatasetError(f"{src}: '{path}' is listed in field_names but absent")
    ds = f[path]
    sv, tv = _flag(ds.attrs, "sample_varying", False), _flag(ds.attrs, "time_varying", False)
    lead = ([plan.n_file] if sv else []) + ([len(plan.coords["time"])] if tv else [])
    if ds.shape not in (tuple(lead), (*lead, 1)) or (tv and ds.shape != tuple(lead)):
        raise DatasetError(f"{src}: '{path}' has shape {ds.shape}, which does not fit "
                           f"sample_varying {sv}, time_varying {tv}")
    attrs = {} if sv else {"well_sample_varying": 0}
    var = Variable(("time",) if tv else (), _nc_attr(ds.attrs.get("units", "1")),
                   _nc_attr(ds.attrs.get("long_name", f"{name} (The Well scalar)")),
                   ds.dtype.str)
    _add(src, plan, name, var, attrs, (path, sv, 1 + tv, (), None))


def _plan_bc(src: Path, g: h5py.Group, name: str, plan: _Plan
             ) -> tuple[dict[str, Any], tuple[str, ...], np.ndarray]:
    if "mask" not in g or "bc_type" not in g.attrs:
        raise DatasetError(f"{src}: boundary condition '{name}' has no mask or bc_type")
    assoc = attr_names(g.attrs.get("associated_dims", []))
    sv, tv = _flag(g.attrs, "sample_varying", False), _flag(g.attrs, "time_varying", False)
    dims = ((SAMPLE_DIM,) if sv else ()) + (("time",) if tv else ()) + tuple(assoc)
    mask = np.asarray(g["mask"][: plan.n] if sv else g["mask"][()]).astype("i1")
    want = tuple(plan.n if d == SAMPLE_DIM else len(plan.coords.get(d, ())) for d in dims)
    if mask.shape != want or not all(d in plan.coords for d in assoc):
        raise DatasetError(f"{src}: boundary '{name}' has a mask of shape "
                           f"{g['mask'].shape} on {assoc}, expected {want}")
    attrs = {k: _nc_attr(v) for k, v in g.attrs.items() if k != "pdeml_bc_type"}
    attrs["bc_type"] = str(_nc_attr(g.attrs.get("pdeml_bc_type", g.attrs["bc_type"]))).lower()
    attrs |= {"associated_dims": assoc, "sample_varying": int(sv), "time_varying": int(tv),
              "associated_fields": attr_names(g.attrs.get("associated_fields", [])) or [""]}
    if mask.ndim == 1 and "side" not in attrs and mask.any():
        attrs["side"] = {(1, 1): "both", (1, 0): "lower", (0, 1): "upper"}.get(
            (int(mask[0]), int(mask[-1])), "interior")
    if "values" in g and "value" not in attrs:
        values = np.asarray(g["values"][()], float).ravel()
        if values.size and (values == values[0]).all():
            attrs["value"] = float(values[0])
        elif values.size:
            attrs["values"] = values
    return attrs, dims, mask


def _import_attrs(src: Path, f: h5py.File, plan: _Plan, inputs: Sequence[str] | None,
                  outputs: Sequence[str] | None) -> dict[str, Any]:
    root = {k: _nc_attr(v) for k, v in f.attrs.items() if not k.startswith("_")}
    attrs = {k: v for k, v in root.items() if k not in WELL_ROOT}
    attrs |= {RENAMED[k]: (json.dumps(attr_names(root[k])) if k == "simulation_parameters"
                           else root[k]) for k in RENAMED if k in root}
    attrs.setdefault("title", f"imported from {src.name}")
    attrs.setdefault("problem", str(root.get("dataset_name", src.stem)))
    attrs |= {"source": src.name, "source_format": "The Well HDF5",
              "pdeml_version": __version__, "pdeml_schema_version": SCHEMA_VERSION,
              "n_samples": plan.n}
    if "input_vars" not in attrs or "output_vars" not in attrs:
        spatial = [v for v in plan.static if plan.variables[v].dims]
        attrs["input_vars"] = json.dumps([f"{v}[0]" for v in plan.timed] + spatial)
        attrs["output_vars"] = json.dumps([f"{v}[-1]" for v in plan.timed])
    declare_io(attrs, src, plan.variables, inputs, outputs)
    return attrs


def _read_chunk(src: Path, plan: _Plan, start: int, stop: int) -> dict[str, np.ndarray]:
    """Variables of trajectories ``start:stop`` in pdeml's layout."""
    out, cache = {}, {}
    with h5py.File(src, "r") as f:
        for name, (path, sv, lead, drop, comp) in plan.sources.items():
            if path not in cache:
                ds = f[path]
                a = ds[start:stop] if sv else np.broadcast_to(ds[()], (stop - start,
                                                                       *ds.shape))
                cache[path] = np.asarray(a)
            a = cache[path]
            if any(drop):
                a = a[(slice(None),) * lead + tuple(0 if d else slice(None) for d in drop)]
            keep = lead + len(drop) - sum(drop)
            if comp is not None:
                a = a.reshape(*a.shape[:keep], -1)[..., comp]
            elif a.ndim > keep:  # a constant scalar stored as (1,)
                a = a.reshape(a.shape[:keep])
            out[name] = a.transpose(*range(lead), *range(keep - 1, lead - 1, -1))
    return out


def _write_pdeml(src: Path, dst: Path, plan: _Plan, attrs: dict[str, Any]) -> Path:
    from pdeml.checks import first_nonfinite

    per_sample = sum(np.dtype(v.dtype).itemsize * int(np.prod(
        [len(plan.coords[d]) for d in v.dims])) for v in plan.variables.values())
    chunk = chunk_rows(plan.n, per_sample)

    def read(start: int, stop: int) -> dict[str, np.ndarray]:
        data = _read_chunk(src, plan, start, stop)
        for name, a in data.items():
            bad = first_nonfinite(a)
            if bad is not None:
                raise DatasetError(f"{src}: trajectory {start + bad} of '{name}' holds NaN or "
                                   "Inf values; not importing")
        return data

    return write_streamed(dst, plan.n, plan.coords, plan.units, plan.variables,
                          plan.var_attrs, plan.bcs, read, attrs, chunk)


def write_streamed(
    dst: Path, n: int, coords: dict[str, np.ndarray], units: dict[str, str],
    variables: dict[str, Variable], var_attrs: dict[str, dict[str, Any]],
    bcs: dict[str, tuple[dict[str, Any], tuple[str, ...], np.ndarray]],
    read: Callable[[int, int], dict[str, np.ndarray]], attrs: dict[str, Any], chunk: int,
) -> Path:
    """Write a pdeml file ``chunk`` samples at a time (``read(start, stop)``), atomically.

    ``bcs``: ``{name: (attributes, mask dimensions, int8 mask)}`` of the
    ``boundary_conditions`` group, written as given (any mask dimensions).
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    try:
        with h5netcdf.File(tmp, "w") as f:
            out = create_layout(f, n, coords, variables, coord_units=units)
            for name, extra in var_attrs.items():
                out[name].attrs.update(extra)
            if bcs:
                group = f.create_group(BC_GROUP)
                for name, (bc_attrs, dims, mask) in bcs.items():
                    sub = group.create_group(name)
                    sub.attrs.update(bc_attrs)
                    sub.create_variable("mask", dims, "i1", data=mask)
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                for name, a in read(start, stop).items():
                    out[name][start:stop] = np.asarray(a).astype(out[name].dtype)
            f.attrs.update(attrs)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dst)
    return dst
