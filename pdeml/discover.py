"""``pdeml list`` and ``pdeml info``: what the package offers and what a data file holds.

Options, defaults and help texts are read from the signatures and docstrings, so the listing
cannot drift from the code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pdeml.config import _type_name, settings_of

SOLVER_STATS = ("solver_iterations", "solver_matvecs", "solver_residual", "max_divergence",
                "n_steps")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


def _options(cls: Any, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [{"key": r["key"], "type": _type_name(r["type"]), "default": _jsonable(r["default"]),
             "required": r["required"], "help": r["help"]} for r in settings_of(cls, skip)]


def _summary(cls: Any) -> str:
    doc = (cls.__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""


def listing(what: str, name: str | None = None) -> dict[str, Any]:
    """Problems, operators or train settings with their options, defaults and help."""
    if what == "problems":
        from pdeml.solvers.problems import Problem

        registry = dict(Problem.registry)
    elif what == "operators":
        from pdeml.operators.base import _REGISTRY

        registry = dict(_REGISTRY)
    elif what == "samplers":
        from pdeml.datasets.samplers import SAMPLERS

        registry = dict(SAMPLERS)
    elif what == "settings":
        return _settings(name)
    else:
        raise ValueError(f"pdeml list takes problems, operators, samplers or settings, not "
                         f"'{what}'")
    if name is not None:
        if name not in registry:
            known = ", ".join(sorted(registry))
            raise ValueError(f"unknown {what[:-1]} '{name}'; available: {known}")
        registry = {name: registry[name]}
    skip = ("space", "seed") if what == "samplers" else ()  # given by the stream
    return {n: {"summary": _summary(cls), "options": _options(cls, skip)}
            for n, cls in sorted(registry.items())}


def _settings(section: str | None) -> dict[str, Any]:
    import lightning as L

    from pdeml.datasets.datamodule import PDEDataModule
    from pdeml.trainers.fit import DEFAULTS, OWN_TRAINER_KEYS
    from pdeml.trainers.module import OperatorModule

    sections = {
        "data": _options(PDEDataModule),
        "model": [{"key": "name", "type": "str", "default": "FNO", "required": False,
                   "help": "operator (`pdeml list operators` shows each one's arguments; "
                           "in_channels/out_channels are linked from the data)"}],
        "module": _options(OperatorModule, skip=("model",)),
        "trainer": [{"key": "logger", "type": "false | csv | tensorboard | list",
                     "default": "csv", "required": False,
                     "help": "where metrics go (csv: <out>/logs/metrics.csv)"},
                    {"key": "callbacks", "type": "list", "default": [], "required": False,
                     "help": "Lightning callbacks: a name, {class_path, init_args} or "
                             "{name: EarlyStopping, monitor: val_l2, patience: 5}"}]
                   + _options(L.Trainer, skip=OWN_TRAINER_KEYS),
    }
    for key, rows in sections.items():  # pdeml's defaults where they differ from Lightning's
        for row in rows:
            if row["key"] in DEFAULTS.get(key, {}):
                row["default"] = DEFAULTS[key][row["key"]]
    if section is not None:
        if section not in sections:
            raise ValueError(f"unknown section '{section}'; sections: {', '.join(sections)}")
        sections = {section: sections[section]}
    return {s: {"summary": "", "options": rows} for s, rows in sections.items()}


def format_listing(what: str, found: dict[str, Any]) -> str:
    """Human-readable text of :func:`listing`."""
    lines = []
    for name, entry in found.items():
        lines.append(f"{name}" + (f": {entry['summary']}" if entry["summary"] else ""))
        for o in entry["options"]:
            default = "required" if o["required"] else f"default {json.dumps(o['default'])}"
            prefix = f"{name}." if what == "settings" else ""
            lines.append(f"    {prefix}{o['key']} ({o['type']}, {default})"
                         + (f": {o['help']}" if o["help"] else ""))
        lines.append("")
    return "\n".join(lines).rstrip()


def info(path: str | Path) -> dict[str, Any]:
    """Dimensions, variables, provenance and solver statistics of a pdeml HDF5 file."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise ValueError(f"{path} is not an HDF5 file") from None
    with f:
        if "pdeml_schema_version" not in f.attrs:  # PDEBench, FNO .mat v7.3, The Well ...
            well = "n_trajectories" in f.attrs and "dimensions" in f
            raise ValueError(f"{path} is an HDF5 file but not a pdeml file (no "
                             "pdeml_schema_version attribute); " + (
                                 "it looks like The Well's: `pdeml import the_well` converts "
                                 "it" if well else "`pdeml import` converts PDEBench, The "
                                 "Well and neuraloperator files"))
        attrs = {k: _attr(v) for k, v in f.attrs.items() if not k.startswith("_")}
        variables, dims, stats = {}, {}, {}
        for name, ds in f.items():
            if not isinstance(ds, h5py.Dataset):
                continue
            scale = ds.attrs.get("CLASS") in (b"DIMENSION_SCALE", "DIMENSION_SCALE")
            labels = [name] if scale and ds.ndim == 1 else [_dim_name(ds, i)
                                                             for i in range(ds.ndim)]
            for label, n in zip(labels, ds.shape, strict=True):
                dims.setdefault(label, int(n))
            variables[name] = {"dims": labels, "shape": list(ds.shape), "dtype": str(ds.dtype)}
            if name in SOLVER_STATS and ds.ndim == 1 and len(ds):
                v = np.asarray(ds[...], np.float64)
                stats[name] = {"min": float(v.min()), "median": float(np.median(v)),
                               "max": float(v.max())}
        bcs = {name: {k: _attr(v) for k, v in g.attrs.items()}
               for name, g in f.get("boundary_conditions", {}).items()}
    return {"file": str(path), "dims": dims, "variables": variables, "attributes": attrs,
            "solver_stats": stats, "boundary_conditions": bcs}


def _dim_name(ds: Any, axis: int) -> str:
    try:
        dim = ds.dims[axis]
        if len(dim):
            return dim[0].name.rsplit("/", 1)[-1]
        if dim.label:
            return str(dim.label)
    except (RuntimeError, IndexError, KeyError):
        pass
    return f"dim_{axis}"


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.ndarray):
        return value.item() if value.size == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def format_info(found: dict[str, Any]) -> str:
    """Human-readable text of :func:`info`."""
    lines = [found["file"], "  dims: " + ", ".join(f"{k}={v}" for k, v in found["dims"].items()),
             "  variables:"]
    for name, v in found["variables"].items():
        lines.append(f"    {name} ({', '.join(v['dims'])}) {v['dtype']}")
    if found.get("boundary_conditions"):
        lines.append("  boundary conditions:")
        for name, bc in found["boundary_conditions"].items():
            dims = bc.get("associated_dims", "")
            where = ", ".join(dims) if isinstance(dims, list) else dims
            side = f" ({bc['side']})" if "side" in bc else ""
            lines.append(f"    {name}: {bc.get('bc_type', '?')} on {where}{side}")
    lines.append("  provenance:")
    for k, v in found["attributes"].items():
        text = json.dumps(v) if not isinstance(v, str) else v
        lines.append(f"    {k}: {text[:200]}")
    if found["solver_stats"]:
        lines.append("  solver (min / median / max over samples):")
        for k, s in found["solver_stats"].items():
            lines.append(f"    {k}: {s['min']:.4g} / {s['median']:.4g} / {s['max']:.4g}")
    return "\n".join(lines)
