"""Import outside datasets into the pdeml HDF5 schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from pdeml import __version__
from pdeml.datasets.schema import SCHEMA_VERSION, DatasetError, write_arrays
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


def import_neuraloperator_pt(src: str | Path, dst: str | Path) -> Path:
    """Convert a neuraloperator ``.pt`` dataset (Darcy or Burgers) into a pdeml HDF5 file.

    Darcy files (``x``: ``(N, s, s)`` coefficient mask, ``y``: ``(N, s, s)`` pressure) become
    variables ``a`` and ``u`` on the node grid; Burgers files (``x``: ``(N, s)`` initial
    condition, ``y``: ``(N, T, s)`` trajectory) become ``u0`` and ``u`` on a periodic grid.
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
