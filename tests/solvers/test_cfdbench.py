"""CFDBench-style flow problems: sweeps, geometry, storage layout, CLI."""

import numpy as np
import pytest
import xarray as xr

from pdeml.cli import main
from pdeml.datasets.writer import generate_split
from pdeml.solvers.problems import make_problem
from pdeml.solvers.problems.cfdbench import FlowProblem

NAMES = ["cavity", "channel", "step", "cylinder"]
TINY = {"resolution": 16, "cells": 12, "final_time": 0.2, "n_snapshots": 2}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("sweep", ["bc", "prop", "geo"])
def test_a_sweep_varies_its_group_only(name, sweep):
    problem = make_problem(name, sweep=sweep)
    draws = [problem.draw(np.random.default_rng(i)) for i in range(6)]
    for key, (default, lo, hi, group) in problem.PARAMS.items():
        values = np.array([d[key] for d in draws])
        if group == sweep:
            assert np.unique(values).size == 6 and values.min() >= lo and values.max() <= hi
        else:
            assert np.all(values == default), key


@pytest.mark.parametrize("name", NAMES)
def test_default_case_is_reynolds_100_and_resolved_by_central_differences(name):
    problem = make_problem(name)
    params = {k: v[0] for k, v in problem.PARAMS.items()}
    flow = problem.build_solver(params)
    assert flow.upwind == 0.0
    if name != "step":
        assert problem.reynolds(params) == pytest.approx(100.0)


def test_cylinder_mask_area_matches_the_disc():
    problem = make_problem("cylinder", cells=82)
    params = {k: v[0] for k, v in problem.PARAMS.items()}
    flow = problem.build_solver(params)
    area = flow.solid.sum() * flow.dx * flow.dy
    assert area == pytest.approx(np.pi * 0.05**2, rel=0.05)


@pytest.mark.parametrize("name", NAMES)
def test_samples_are_stored_as_time_series_with_mask_and_parameters(name, tmp_path):
    path = generate_split(make_problem(name, **TINY), tmp_path / "train.h5", 2, seed=1,
                          progress=False)
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        for var in ("u", "v", "p"):
            assert ds[var].dims == ("sample", "time", "y", "x")
            assert ds[var].shape == (2, 2, 16, 16)
            assert np.isfinite(ds[var].values).all()
        assert ds["mask"].dtype == np.int8 and ds["mask"].dims == ("sample", "y", "x")
        assert (ds["max_divergence"].values < 1e-9).all()
        assert np.abs(ds["u"].values[:, -1]).max() > 0.05  # the flow moves
        solid = ~ds["mask"].values.astype(bool)
        assert solid.any() == (name in ("step", "cylinder"))
        for var in ("u", "v", "p"):
            assert not np.any(ds[var].values.transpose(1, 0, 2, 3)[:, solid])
        for key in make_problem(name).PARAMS:
            assert ds[key].dims == ("sample",)


def test_samples_are_reproducible_by_seed(tmp_path):
    a = generate_split(make_problem("step", **TINY), tmp_path / "a.h5", 2, seed=3,
                       progress=False)
    b = generate_split(make_problem("step", **TINY), tmp_path / "b.h5", 2, seed=3,
                       progress=False)
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize(
    ("options", "message"),
    [({"sweep": "re"}, "unknown cavity sweep 're'"),
     ({"velocity": [2.0, 1.0]}, "velocity range is empty"),
     ({"velocity": [0.0, 1.0]}, "velocity_low must be positive"),
     ({"lid": 1.0}, "unknown cavity option"),
     ({"cfl": 0.9}, "cfl must be at most 0.5"),
     ({"upwind": 2}, "upwind must be in"),
     ({"pressure_solver": "cg"}, "unknown cavity pressure_solver")],
)
def test_bad_options_fail_clearly(options, message):
    with pytest.raises(ValueError, match=message):
        make_problem("cavity", **options)


def test_range_override_and_fixed_value():
    problem = make_problem("channel", sweep="bc", velocity=0.7)
    assert problem.draw(np.random.default_rng(0))["velocity"] == 0.7


def test_cli_generates_a_case_level_split(tmp_path, capsys):
    out = tmp_path / "cav"
    args = ["generate", "cavity", "--out", str(out), "--n-train", "3", "--n-val", "1",
            "--n-test", "1", "--no-progress"] + [f"--set={k}={v}" for k, v in TINY.items()]
    assert main(args) == 0
    params = []
    for split in ("train", "val", "test"):
        with xr.open_dataset(out / f"{split}.h5", engine="h5netcdf") as ds:
            params += [tuple(row) for row in np.stack([ds[k].values for k in
                                                       ("velocity", "viscosity")], 1)]
    assert len(set(params)) == 5  # every case in exactly one split
    assert main(["generate", "cavity", "--out", str(tmp_path / "x"), "--set", "sweep=re"]) == 1
    assert "unknown cavity sweep" in capsys.readouterr().err


def test_flow_problem_base_is_not_registered():
    assert FlowProblem.name == ""
    with pytest.raises(ValueError, match="unknown problem"):
        make_problem("flow")
