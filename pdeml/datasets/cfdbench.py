"""CFDBench case folders: export pdeml's solutions into them, import them into pdeml HDF5.

The layout is CFDBench's (Luo et al., 2023; README and ``src/dataset/*.py`` of
luo-yining/CFDBench)::

    <root>/<problem>/<subset>/caseNNNN/{case.json, u.npy, v.npy}

``subset`` is ``bc``, ``prop`` or ``geo``; ``case.json`` holds the case parameters under
CFDBench's names (cavity ``vel_top, density, viscosity, height, width``; tube ``vel_in,
...``; dam ``velocity, ..., barrier_height, barrier_width``; cylinder ``vel_in, density,
viscosity, radius, x_min, x_max, y_min, y_max``); ``u.npy``/``v.npy`` are ``(time, height,
width)`` float arrays, row 0 at the bottom (``y_min``), one frame every 0.1 s.

Where pdeml follows and departs:

- *Extra files.* The exporter writes CFDBench's three files and, next to them, ``pdeml.json``
  (solved parameters, Reynolds numbers, frame spacing and first frame time) and
  ``mask.npy`` (the solver's solid cells on the stored grid: a cylinder smaller than a cell
  may have none, where the geometric test would mark one); CFDBench's loaders ignore both,
  so exported folders
  load in CFDBench unchanged. ``case.json`` holds CFDBench's keys only, because CFDBench's
  ``collate_fn`` turns every key of it (except ``rotated, dx, dy``) into a model input.
- *Variable length.* Cases keep all their frames: shorter ones are padded with their last
  frame and ``n_frames`` records each length; every pdeml time-series consumer reads only
  the first ``n_frames`` (:mod:`pdeml.datasets.timeseries`). CFDBench keeps lists of
  differently long arrays.
- *Mask from geometry.* ``mask.npy`` when present; else the cylinder from ``radius`` and the
  domain box (cell centres inside ``x^2 + y^2 < radius^2`` around the origin, the
  cylinder's centre in CFDBench's coordinates) and the dam's barrier from
  ``barrier_width/height`` at ``x = 0.5`` (cell centres); else all fluid (cavity, tube).
  CFDBench's own loaders differ here. The cylinder loader (``load_case_data`` of
  ``src/dataset/cylinder.py``, as read at commit ``40f1648``; ``0dcc1bc`` is the same)
  tests the cell corners ``(x_min + j dx, y_min + i dy)`` against a fixed centre at
  ``(0.5, 0.5)``, not the origin, while it passes ``center_x = -x_min``,
  ``center_y = -y_min`` on as case parameters; the test against ``(-x_min, -y_min)`` only
  came with a later commit (``8978073``, which also adds a ``load_case_data_fix`` on cell
  centres). The dam loader's slice ``mask[:0:top]`` selects nothing, so its dam mask is all
  ones.
- *No boundary padding.* CFDBench's loaders pad a column of inflow velocity on the left and
  wall rows top and bottom (64 x 64 -> 66 x 65); pdeml keeps the stored grid and carries the
  boundary values in the case parameters.
- *Time in seconds.* ``time`` is ``t0 + k * frame_dt`` with ``frame_dt`` 0.1 s (CFDBench's
  ``data_delta_time``) and ``t0 = frame_dt`` (the first exported frame follows one time step
  of the flow started at rest) unless ``pdeml.json`` says otherwise.
- *Split.* :func:`import_cfdbench_splits` reproduces CFDBench's case-level split (subsets in
  the order prop, bc, geo; case folders sorted by number; ``random.seed(seed)`` shuffle;
  80 / 10 / 10 %).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pdeml import __version__
from pdeml.datasets.declare import declare_io, variable_name
from pdeml.datasets.schema import SCHEMA_VERSION, DatasetError, write_arrays
from pdeml.solvers.problems.base import Variable
from pdeml.solvers.problems.cfdbench_cases import (
    SUBSETS,
    case_list,
    cfdbench_split,
    parse_subsets,
    stable_state_diff,
)

FRAME_DT = 0.1


# ------------------------------------------------------------------------------- export
def export_cfdbench(
    problem: Any, root: str | Path, subsets: str = "all", stride: int = 1,
    max_cases: int | None = None, stop_below: float | None | str = "auto",
    progress: bool = True, numbers: Sequence[int] | None = None,
) -> Path:
    """Solve CFDBench's cases with a pdeml flow problem and write them as case folders.

    Parameters
    ----------
    problem
        A :class:`pdeml.solvers.problems.cfdbench.FlowProblem` (its ``cells``,
        ``resolution``, ``final_time`` and ``frame_dt`` set the solve; its case list is its
        CFDBench problem's).
    root
        Output root; cases go to ``root/<problem.name>/<subset>/caseNNNN`` with CFDBench's
        case number ``NNNN`` (the position in the subset's list).
    subsets
        CFDBench subset name(s): ``bc``, ``prop``, ``geo``, ``prop_bc``, ``all``.
    stride, max_cases
        Every ``stride``-th case of each subset, at most ``max_cases`` per subset.
    numbers
        Instead, these case numbers of each subset (those past its end are skipped).
    stop_below
        Stop a case after the first frame that CFDBench's convergence rule calls converged
        (saves the frames its loader would drop); ``None`` runs to ``final_time``. ``"auto"``
        (default): as CFDBench's loader of the problem, 1e-3 for the cavity, tube and
        cylinder, ``None`` for the dam (its loader keeps every pair).
    progress
        One line per case on stderr.

    Returns
    -------
    Path
        ``root/<problem.name>``. Finished cases are kept; re-running completes the rest (each
        case is written to a temporary folder and renamed, so none is half-written).
    """
    cl = case_list(problem.CFDBENCH)
    if stop_below == "auto":
        stop_below = stable_state_diff(problem.CFDBENCH)
    elif isinstance(stop_below, str):
        raise ValueError(f"stop_below must be a number, None or 'auto', got '{stop_below}'")
    base = Path(root) / problem.name
    todo = []
    for sub in parse_subsets(subsets):
        listed = list(enumerate(cl.cases(sub)))
        chosen = listed[::max(int(stride), 1)][:max_cases] if numbers is None else \
            [listed[i] for i in sorted(set(numbers)) if 0 <= i < len(listed)]
        todo += [(sub, i, c) for i, c in chosen]
    for k, (sub, number, case) in enumerate(todo):
        folder = base / sub / f"case{number:04d}"
        if all((folder / f).exists() for f in ("case.json", "u.npy", "v.npy", "pdeml.json")):
            continue
        if folder.exists():  # ours are renamed into place whole: this one is someone else's
            raise DatasetError(f"{folder} exists and was not written by pdeml (no "
                               "pdeml.json); choose another output folder")
        _write_case(problem, folder, case, stop_below)
        if progress:
            print(f"export {problem.name} {sub}/case{number:04d} [{k + 1}/{len(todo)}]",
                  file=sys.stderr, flush=True)
    return base


def _write_case(problem: Any, folder: Path, case: dict[str, float],
                stop_below: float | None) -> None:
    params, re_cfdbench = problem.from_cfdbench(case)
    solver = problem.build_solver(params)
    frames = problem.run(solver, params, stop_below=stop_below)
    from pdeml.solvers.problems.cfdbench import _resample_mask

    mask = _resample_mask(solver.fluid, problem.resolution)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("u", "v"):
        np.save(tmp / f"{name}.npy", (np.stack([f[name] for f in frames]) * mask)
                .astype(np.float32))
    np.save(tmp / "mask.npy", mask)  # the solver's own solid, even where none is resolved
    dt = problem.final_time / problem.n_snapshots
    (tmp / "case.json").write_text(json.dumps(case, indent=2))
    (tmp / "pdeml.json").write_text(json.dumps({
        "frame_dt": dt, "t0": dt, "solved": params, "reynolds": problem.reynolds(params),
        "reynolds_cfdbench": re_cfdbench, "length_scale": problem.LENGTH_SCALE,
        "cells": problem.cells, "n_steps": solver.n_steps, "pdeml_version": __version__},
        indent=2))
    os.replace(tmp, folder)


# ------------------------------------------------------------------------------- import
def case_folders(src: Path, subsets: str | None = None) -> list[tuple[str, Path]]:
    """``(subset, folder)`` of every case below ``src`` in CFDBench's order.

    ``src`` is a problem folder (with ``bc/``, ``prop/``, ``geo/``; subsets in the order
    prop, bc, geo, folders sorted by case number), a single case folder, or any folder
    above case folders (sorted by path).
    """
    if not src.exists():
        raise DatasetError(f"folder not found: {src}")
    if (src / "case.json").exists():
        return [("", src)]
    present = [s for s in ("prop", "bc", "geo") if (src / s).is_dir()]
    if present:
        chosen = parse_subsets(subsets or "all")
        missing = [c for c in chosen if c not in present]
        if subsets and subsets != "all" and missing:  # never other subsets instead
            raise DatasetError(f"{src} has no {', '.join(missing)} subset (it has "
                               f"{', '.join(present)})")
        out = []
        for sub in (s for s in chosen if s in present):
            dirs = [d for d in (src / sub).glob("case*")
                    if d.is_dir() and d.name[4:].isdigit()]
            out += [(sub, d) for d in sorted(dirs, key=lambda d: int(d.name[4:]))]
        if out:
            return out
        if subsets:
            raise DatasetError(f"{src}/{'/'.join(chosen)} holds no case folder (caseN)")
    dirs = sorted({p.parent for p in src.rglob("case.json")})
    if not dirs:
        raise DatasetError(f"{src} holds no CFDBench case folder (none has a case.json)")
    return [("", d) for d in dirs]


def _read(folder: Path) -> dict[str, Any]:
    for name in ("case.json", "u.npy", "v.npy"):
        if not (folder / name).exists():
            raise DatasetError(f"CFDBench case {folder} has no {name}")
    try:
        case = json.loads((folder / "case.json").read_text())
        u, v = np.load(folder / "u.npy"), np.load(folder / "v.npy")
        extra = json.loads((folder / "pdeml.json").read_text()) \
            if (folder / "pdeml.json").exists() else {}
        mask = np.load(folder / "mask.npy") if (folder / "mask.npy").exists() else None
    except (ValueError, OSError) as err:
        raise DatasetError(f"cannot read CFDBench case {folder}: {err}") from None
    if not isinstance(case, dict):
        raise DatasetError(f"{folder / 'case.json'} must hold an object of case parameters")
    if u.ndim != 3 or u.shape != v.shape or not len(u):
        raise DatasetError(f"CFDBench case {folder}: u {u.shape} and v {v.shape} must both be "
                           "(time, height, width) with at least one frame")
    numeric = {k: float(x) for k, x in case.items()
               if isinstance(x, int | float) and not isinstance(x, bool)}
    return {"case": numeric, "u": u, "v": v, "extra": extra, "mask": mask}


def geometry_mask(case: dict[str, float], shape: tuple[int, int]) -> np.ndarray:
    """Fluid mask (1 fluid, 0 solid) of a case from its geometry keys (see module doc)."""
    h, w = shape
    if {"radius", "x_min", "x_max", "y_min", "y_max"} <= set(case):
        x = case["x_min"] + (np.arange(w) + 0.5) * (case["x_max"] - case["x_min"]) / w
        y = case["y_min"] + (np.arange(h) + 0.5) * (case["y_max"] - case["y_min"]) / h
        X, Y = np.meshgrid(x, y)
        return (X**2 + Y**2 >= case["radius"] ** 2).astype(np.int8)
    if {"barrier_height", "barrier_width", "height", "width"} <= set(case):
        x = (np.arange(w) + 0.5) * case["width"] / w
        y = (np.arange(h) + 0.5) * case["height"] / h
        X, Y = np.meshgrid(x, y)
        solid = (X >= 0.5) & (X <= 0.5 + case["barrier_width"]) & (Y <= case["barrier_height"])
        return (~solid).astype(np.int8)
    return np.ones(shape, np.int8)


def import_cfdbench(
    src: str | Path, dst: str | Path, inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None, n_samples: int | None = None,
    subsets: str | None = None, split: str | None = None, seed: int = 0,
) -> Path:
    """Convert CFDBench case folders into one pdeml HDF5 file (one case per sample).

    Parameters
    ----------
    src
        A problem folder (``bc/``, ``prop/``, ``geo/`` below it), one case folder, or any
        folder above case folders.
    dst
        The HDF5 file to write.
    inputs, outputs
        Override the declared variables (default ``u[0], v[0], mask -> u[-1], v[-1]``).
    n_samples
        Import only the first cases.
    subsets
        CFDBench subset name (``bc``, ``prop_bc``, ``all``, ...) of a problem folder.
    split, seed
        Keep only CFDBench's ``train``, ``val`` (its ``dev``) or ``test`` cases of the
        seeded 8:1:1 split (see :func:`import_cfdbench_splits`).

    Returns
    -------
    Path
        ``dst``: ``u``, ``v`` ``(sample, time, y, x)`` padded to the longest case with each
        case's last frame, ``n_frames``, ``mask`` from geometry, ``time`` in seconds, every
        ``case.json`` number under its own name, ``subset`` (0 bc, 1 prop, 2 geo, -1 none),
        ``case_number`` and, from ``pdeml.json``, ``solved_*`` values and ``reynolds``.
    """
    src = Path(src)
    items = case_folders(src, subsets)
    if split is not None:
        if split not in ("train", "val", "test"):
            raise DatasetError(f"split must be train, val or test, got '{split}'")
        rounding = "round" if src.name == "cavity" else "floor"  # as CFDBench's code
        items = cfdbench_split(items, seed, rounding)[split]
        if not items:
            raise DatasetError(f"CFDBench's {split} split of {src} holds no case")
    items = items[: n_samples if n_samples is not None else None]
    cases = [_read(d) for _, d in items]
    keys = list(cases[0]["case"])
    grid = cases[0]["u"].shape[1:]
    for (_, d), c in zip(items, cases, strict=True):
        if c["u"].shape[1:] != grid:
            raise DatasetError(f"CFDBench case {d} has a {c['u'].shape[1:]} grid, the first "
                               f"{grid}")
        missing = [k for k in keys if k not in c["case"]]
        if missing:
            raise DatasetError(f"CFDBench case {d}: case.json lacks {', '.join(missing)}")
    variables, coords = _variables(items, cases, keys, grid)
    attrs = {"title": f"CFDBench cases imported from {src.name}", "source": str(src.name),
             "source_format": "CFDBench case folders", "pdeml_version": __version__,
             "pdeml_schema_version": SCHEMA_VERSION, "n_samples": len(cases),
             "problem": src.name, "split": split or "", "split_seed": seed,
             "cases": json.dumps([str(d.relative_to(src)) if d != src else "."
                                  for _, d in items]),
             "input_vars": json.dumps(["u[0]", "v[0]", "mask"]),
             "output_vars": json.dumps(["u[-1]", "v[-1]"]), "time_units": "s"}
    declare_io(attrs, src, variables, inputs, outputs)
    return write_arrays(dst, coords, variables, attrs)


def _variables(items: list[tuple[str, Path]], cases: list[dict[str, Any]], keys: list[str],
               grid: tuple[int, ...]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    n_time = max(len(c["u"]) for c in cases)

    def padded(name: str) -> np.ndarray:
        return np.stack([np.concatenate([c[name], np.repeat(c[name][-1:], n_time - len(c[name]),
                                                            0)]) for c in cases]
                        ).astype(np.float32)

    masks = [np.asarray(c["mask"], np.int8) if c["mask"] is not None
             else geometry_mask(c["case"], grid) for c in cases]
    dts = {float(c["extra"].get("frame_dt", FRAME_DT)) for c in cases}
    if len(dts) > 1:
        raise DatasetError(f"cases have different frame spacings {sorted(dts)}")
    dt = dts.pop()
    t0 = float(cases[0]["extra"].get("t0", dt))
    h, w = grid
    coords = {"time": t0 + dt * np.arange(n_time), "y": (np.arange(h) + 0.5) / h,
              "x": (np.arange(w) + 0.5) / w}
    variables: dict[str, tuple[Variable, np.ndarray]] = {
        "u": (Variable(("time", "y", "x"), "m/s", "x velocity"), padded("u")),
        "v": (Variable(("time", "y", "x"), "m/s", "y velocity"), padded("v")),
        "mask": (Variable(("y", "x"), "1", "1 in fluid, 0 in solid cells (geometry)", "i1"),
                 np.stack(masks)),
        "n_frames": (Variable((), "1", "frames of the case (the rest is padding)"),
                     np.array([len(c["u"]) for c in cases], float)),
        "subset": (Variable((), "1", "CFDBench subset: 0 bc, 1 prop, 2 geo, -1 none"),
                   np.array([SUBSETS.index(s) if s in SUBSETS else -1 for s, _ in items],
                            float)),
        "case_number": (Variable((), "1", "case number in its subset"),
                        np.array([float(d.name[4:]) if d.name[4:].isdigit() else -1
                                  for _, d in items])),
    }
    for k in keys:
        variables[variable_name(k)] = (Variable((), "1", f"CFDBench case parameter {k}"),
                        np.array([c["case"][k] for c in cases]))
    solved = [c["extra"].get("solved") for c in cases]
    if all(solved):
        for k in solved[0]:
            variables[f"solved_{k}"] = (Variable((), "1", f"solved value of {k}"),
                                        np.array([s[k] for s in solved]))
        for k in ("reynolds", "reynolds_cfdbench"):
            variables[k] = (Variable((), "1", k.replace("_", " ")),
                            np.array([c["extra"][k] for c in cases]))
    return variables, coords


def import_cfdbench_splits(src: str | Path, out: str | Path, subsets: str = "all",
                           seed: int = 0) -> dict[str, Path]:
    """CFDBench's train / val / test split of a problem folder as three HDF5 files
    ``out/{train,val,test}.h5`` (subsets ordered prop, bc, geo; seeded shuffle; 8:1:1)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return {s: import_cfdbench(src, out / f"{s}.h5", subsets=subsets, split=s, seed=seed)
            for s in ("train", "val", "test")}
