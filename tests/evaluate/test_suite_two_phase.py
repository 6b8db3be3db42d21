"""The CFD suite on a two-phase case: alpha joins the rollout fields."""

import json

import pytest
import xarray as xr

from pdeml.suite import run_cfd_suite

TINY = {"options": {"resolution": 16, "cells": 8, "final_time": 0.3, "n_snapshots": 3},
        "splits": {"train": 2, "val": 1, "test": 1}, "epochs": 1, "batch_size": 2,
        "model": {"FNO": {"n_modes": [4, 4], "hidden_channels": 8, "n_layers": 1}}}


@pytest.mark.slow  # ~4 min on the loaded 2-core machine (generation + training + rollouts)
def test_suite_runs_the_dam_with_alpha_in_the_rollout(tmp_path):
    result = run_cfd_suite(tmp_path, cases=["dam"], sweeps=["bc"], size=TINY)
    ops = {(row["case"], row["operator"]) for row in result["rows"]}
    assert ops == {("dam", "persistence"), ("dam", "FNO")}
    summary = json.loads((tmp_path / "results.json").read_text())
    assert all(row["case"] == "dam" for row in summary["rows"])
    with xr.open_dataset(tmp_path / "results.nc", engine="h5netcdf") as ds:
        assert "alpha" in list(ds["variable"].values)
