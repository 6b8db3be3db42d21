"""Export a time-dependent pdeml dataset as one HDF5 file in The Well's layout.

The mapping is the inverse of :func:`pdeml.datasets.the_well.import_the_well` (see
:mod:`pdeml.datasets.the_well`): variables ``(sample, time, *grid)`` and ``(sample, *grid)``
become t0 fields (components marked ``well_field`` go back into t1/t2 fields), per-sample
variables ``(sample,)`` and ``(sample, time)`` scalars, coordinates ``dimensions``, and the
``boundary_conditions`` group keeps its masks. The result loads in The Well's own
``WellDataset`` (put it in a folder such as ``<name>/data/train/``) and imports back into
pdeml bit for bit.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5netcdf
import h5py
import numpy as np

from pdeml.datasets.schema import BC_GROUP, SAMPLE_DIM, DatasetError, open_h5
from pdeml.datasets.the_well import (
    BC_TO_WELL,
    ORDERS,
    RENAMED,
    WELL_ROOT,
    attr_names,
    chunk_rows,
)


@dataclass
class _Item:
    """One dataset of the Well file and the pdeml variables it is made of."""

    group: str  # t0_fields, t1_fields, t2_fields or scalars
    name: str
    sources: list[str]  # pdeml variables; the components of a tensor field in order
    timed: bool
    space: tuple[str, ...]  # pdeml dimensions it varies along, pdeml order
    constant: bool  # the same for every sample: written once
    dtype: np.dtype
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Export:
    n: int
    grid: tuple[str, ...]  # pdeml order
    root: dict[str, Any]
    coords: dict[str, tuple[np.ndarray, str]]  # name -> (values, units)
    items: list[_Item] = field(default_factory=list)
    time_variable: str | None = None
    bcs: list[tuple[str, dict[str, Any], np.ndarray]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def export_the_well(src: str | Path, dst: str | Path, name: str | None = None,
                    overwrite: bool = False) -> dict[str, Any]:
    """Write the time-dependent pdeml file ``src`` as The Well's HDF5 file ``dst``.

    Parameters
    ----------
    src
        A pdeml HDF5 file with at least one variable ``(sample, time, *grid)``.
    dst
        The Well file to write (atomically; suffix ``.hdf5`` or ``.h5``, which The Well's
        loader looks for).
    name
        The Well's ``dataset_name``; by default the one an imported file came with, else
        the pdeml ``problem``, else the file's stem.
    overwrite
        Replace an existing ``dst``.

    Returns
    -------
    dict
        ``output``, ``dataset_name``, ``n_trajectories``, the ``fields`` and ``scalars``
        written and the variables ``skipped`` (not on the fields' grid).
    """
    from pdeml.checks import check_output

    src, dst = Path(src), Path(dst)
    with open_h5(src) as f:
        if "pdeml_schema_version" not in f.attrs:
            raise DatasetError(f"{src} is not a pdeml file (no pdeml_schema_version "
                               "attribute)")
    with h5netcdf.File(src, "r") as f:
        plan = _plan(src, f, name)
    if dst.suffix not in (".hdf5", ".h5"):
        raise DatasetError(f"{dst}: name the Well file *.hdf5 or *.h5 (The Well's loader "
                           "reads only those)")
    check_output(dst, overwrite, "export target")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    try:
        with h5py.File(src, "r") as f, h5py.File(tmp, "w") as g:
            _write(f, g, plan)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dst)
    fields = [i.name for i in plan.items if i.group != "scalars"]
    return {"output": str(dst), "dataset_name": plan.root["dataset_name"],
            "n_trajectories": plan.n, "fields": fields,
            "scalars": [i.name for i in plan.items if i.group == "scalars"],
            "skipped": plan.skipped}


# ------------------------------------------------------------------------------- planning
def _plan(src: Path, f: h5netcdf.File, name: str | None) -> _Export:
    coords = set(f.dimensions)
    variables = {k: v for k, v in f.variables.items() if k not in coords}
    timed = [v.dimensions for v in variables.values()
             if v.dimensions[:2] == (SAMPLE_DIM, "time") and len(v.dimensions) > 2]
    if not timed:
        raise DatasetError(f"{src} has no time-dependent field (sample, time, *grid); The Well "
                           "stores time series, so a steady dataset cannot be exported")
    grid = max(timed, key=len)[2:]
    attrs = dict(f.attrs)
    # pdeml_schema_version stays behind: the Well file is not a pdeml file (the import sets it)
    root = {k: v for k, v in attrs.items() if not k.startswith("_") and k not in WELL_ROOT
            and k not in RENAMED.values() and k != "pdeml_schema_version"}
    plan = _Export(f.dimensions[SAMPLE_DIM].size, grid, root,
                   {d: (np.asarray(f.variables[d][...]),
                        str(f.variables[d].attrs.get("units", "1"))) for d in ("time", *grid)})
    singles = []
    for vname, var in variables.items():
        item = _item(plan, vname, var)
        if item is None:
            continue
        if "well_field" in var.attrs:
            singles.append((item, var.attrs))
        else:
            plan.items.append(item)
    _group_tensors(plan, singles)
    well_dims = list(reversed(grid))
    scalars = [i.name for i in plan.items if i.group == "scalars" and not i.timed]
    params = attrs.get("well_simulation_parameters")
    plan.root |= {"dataset_name": name or str(attrs.get("well_dataset_name",
                                                         attrs.get("problem", src.stem))),
                  "grid_type": str(attrs.get("well_grid_type", "cartesian")),
                  "n_spatial_dims": len(grid), "n_trajectories": plan.n,
                  "simulation_parameters": json.loads(params) if params else scalars}
    if BC_GROUP in f.groups:
        for bname, g in f.groups[BC_GROUP].groups.items():
            plan.bcs.append(_bc(src, bname, g))
    plan.coords = {d: plan.coords[d] for d in ("time", *well_dims)}
    return plan


def _item(plan: _Export, name: str, var: Any) -> _Item | None:
    dims, a = var.dimensions, var.attrs
    rest = dims[1:]
    timed = rest[:1] == ("time",)
    space = rest[1:] if timed else rest
    if a.get("well_role") == "time" and rest == ("time",):
        plan.time_variable = name
        return None
    on_grid = list(space) == [d for d in plan.grid if d in space]
    if dims[:1] != (SAMPLE_DIM,) or not on_grid or var.dtype.kind not in "fiub":
        plan.skipped.append(name)
        return None
    constant = int(a.get("well_sample_varying", 1)) == 0 and _same_for_all(var)
    attrs = {"units": str(a.get("units", "1")), "long_name": str(a.get("long_name", ""))}
    return _Item("scalars" if not space else "t0_fields", str(a.get("well_name", name)),
                 [name], timed, space, constant, var.dtype, attrs)


def _same_for_all(var: Any) -> bool:
    first = np.asarray(var[0:1])
    return all(np.array_equal(np.asarray(var[i:i + 1]), first, equal_nan=True)
               for i in range(1, var.shape[0]))


def _group_tensors(plan: _Export, singles: list[tuple[_Item, Any]]) -> None:
    """Components of a t1/t2 field back into one item; incomplete sets stay t0 fields."""
    well_dims = list(reversed(plan.grid))
    groups: dict[str, list[tuple[_Item, Any]]] = {}
    for item, attrs in singles:
        groups.setdefault(str(attrs["well_field"]), []).append((item, attrs))
    for fname, members in groups.items():
        order = int(members[0][1].get("well_order", 0))
        comps = ["".join(c) for c in itertools.product(well_dims, repeat=order)]
        by_comp = {str(a.get("well_component")): it for it, a in members}
        first = members[0][0]
        same = all((it.timed, it.space, it.constant, it.dtype, it.attrs) ==
                   (first.timed, first.space, first.constant, first.dtype, first.attrs)
                   for it, _ in members)
        if order not in (1, 2) or sorted(by_comp) != sorted(comps) or not same or \
                len(members) != len(comps):
            plan.items.extend(it for it, _ in members)
            continue
        extra = {f"{k}": bool(members[0][1][f"well_{k}"]) for k in ("symmetric",
                                                                    "antisymmetric")
                 if f"well_{k}" in members[0][1]}
        plan.items.append(_Item(ORDERS[order], fname, [by_comp[c].sources[0] for c in comps],
                                first.timed, first.space, first.constant, first.dtype,
                                first.attrs | extra))


def _bc(src: Path, name: str, g: Any) -> tuple[str, dict[str, Any], np.ndarray]:
    attrs = dict(g.attrs)
    kind = str(attrs.get("bc_type", ""))
    if kind not in BC_TO_WELL or "mask" not in g.variables:
        raise DatasetError(f"{src}: boundary condition '{name}' has bc_type '{kind}' or no "
                           f"mask; The Well needs one of {', '.join(BC_TO_WELL)} and a mask")
    out = {k: _h5_attr(v) for k, v in attrs.items() if k not in ("values",)}
    out |= {"bc_type": BC_TO_WELL[kind], "pdeml_bc_type": kind,
            "associated_dims": _h5_attr(attr_names(attrs.get("associated_dims", []))),
            "associated_fields": _h5_attr(attr_names(attrs.get("associated_fields", []))),
            "sample_varying": bool(attrs.get("sample_varying", 0)),
            "time_varying": bool(attrs.get("time_varying", 0))}
    # The mask's axes: ([sample,] [time,] *associated_dims), as pdeml and The Well store it
    return name, out, np.asarray(g.variables["mask"][...]) != 0


# ------------------------------------------------------------------------------- writing
def _h5_attr(value: Any) -> Any:
    """Lists and arrays of strings as HDF5 variable-length strings (h5py refuses objects)."""
    if isinstance(value, list) or (isinstance(value, np.ndarray) and value.dtype.kind in "OU"):
        if all(isinstance(v, str | bytes) for v in value):
            return np.array(attr_names(value) if len(value) else [],
                            dtype=h5py.string_dtype())
    return value


def _coordinate(values: np.ndarray) -> np.ndarray:
    """float32, the specification's type, where that is exact; else float64."""
    single = values.astype(np.float32)
    return single if np.array_equal(single.astype(values.dtype), values) else values


def _write(f: h5py.File, g: h5py.File, plan: _Export) -> None:
    well_dims = list(reversed(plan.grid))
    for key, value in plan.root.items():
        g.attrs[key] = _h5_attr(value)
    dims = g.create_group("dimensions")
    dims.attrs["spatial_dims"] = _h5_attr(well_dims)
    for d, (values, units) in plan.coords.items():
        if d == "time" and plan.time_variable:
            ds = dims.create_dataset("time", data=f[plan.time_variable][...])
            ds.attrs.update({"sample_varying": True,
                             "units": f[plan.time_variable].attrs.get("units", units)})
            continue
        ds = dims.create_dataset(d, data=_coordinate(values))
        ds.attrs.update({"sample_varying": False, "time_varying": False, "units": units})
    bcs = g.create_group("boundary_conditions")
    for name, attrs, mask in plan.bcs:
        sub = bcs.create_group(name)
        sub.attrs.update(attrs)
        sub.create_dataset("mask", data=mask)
        if "value" in attrs and mask.ndim == len(attrs["associated_dims"]):
            sub.create_dataset("values", data=np.full(int(mask.sum()), attrs["value"],
                                                      np.float32))
    for group in ("scalars", *ORDERS):
        members = [i for i in plan.items if i.group == group]
        g.create_group(group).attrs["field_names"] = np.array(
            [i.name for i in members], dtype=h5py.string_dtype())
    for item in plan.items:
        _write_item(f, g, plan, item, well_dims)


def _write_item(f: h5py.File, g: h5py.File, plan: _Export, item: _Item,
                well_dims: list[str]) -> None:
    order = ORDERS.index(item.group) if item.group in ORDERS else 0
    n_time = len(plan.coords["time"][0])
    # an axis the field does not vary along has length 1: what WellDataset tiles
    space = [len(plan.coords[d][0]) if d in item.space else 1 for d in well_dims] if \
        item.space else []
    shape = (([] if item.constant else [plan.n]) + ([n_time] if item.timed else [])
             + space + [len(well_dims)] * order)
    ds = g[item.group].create_dataset(item.name, shape=tuple(shape), dtype=item.dtype)
    ds.attrs.update({**item.attrs, "sample_varying": not item.constant,
                     "time_varying": item.timed})
    if item.group != "scalars":
        ds.attrs["dim_varying"] = np.array([d in item.space for d in well_dims])
        if order == 2:
            for key in ("symmetric", "antisymmetric"):
                ds.attrs[key] = bool(item.attrs.get(key, False))
    if item.constant:
        ds[...] = _well_layout(f, item, 0, 1, space, order)[0]
        if item.group == "scalars" and not item.timed and item.name not in WELL_ROOT:
            g.attrs[item.name] = ds[()]
        return
    per_sample = int(np.prod(shape[1:], dtype=np.int64)) * ds.dtype.itemsize
    step = chunk_rows(plan.n, per_sample)
    for start in range(0, plan.n, step):
        stop = min(plan.n, start + step)
        ds[start:stop] = _well_layout(f, item, start, stop, space, order)


def _well_layout(f: h5py.File, item: _Item, start: int, stop: int, space: list[int],
                 order: int) -> np.ndarray:
    """Samples ``start:stop`` of ``item`` in The Well's layout: spatial axes reversed (length
    1 where the field does not vary), tensor components last."""
    parts = []
    for source in item.sources:
        a = np.asarray(f[source][start:stop])
        lead = a.ndim - len(item.space)
        a = a.transpose(*range(lead), *range(a.ndim - 1, lead - 1, -1))
        parts.append(a.reshape(*a.shape[:lead], *space))
    a = np.stack(parts, axis=-1) if order else parts[0]
    return a.reshape(*a.shape[: a.ndim - (order > 0)], *[len(space)] * order)
