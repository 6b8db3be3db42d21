"""The CFD suite end to end on a tiny cavity sweep: tables, netCDF, figures, reuse, CLI."""

import csv
import json
import re

import numpy as np
import pytest
import xarray as xr

from pdeml.cli import main
from pdeml.datasets import TrajectoryDataset
from pdeml.evaluate import evaluate_run
from pdeml.suite import run_cfd_suite

TINY = {"options": {"resolution": 16, "cells": 16, "final_time": 0.5, "n_snapshots": 4},
        "splits": {"train": 3, "val": 1, "test": 2}, "epochs": 1, "batch_size": 4,
        "model": {"FNO": {"n_modes": [4, 4], "hidden_channels": 8, "n_layers": 1}}}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    return out, run_cfd_suite(out, cases=["cavity"], sweeps=["bc"], size=TINY)


def persistence_errors(path):
    """Relative L2 of 'next frame = this frame' and of 'every frame = the first', by hand."""
    traj = TrajectoryDataset(path, ["u", "v"])
    one, last = [], []
    for i in range(len(traj)):
        s = traj.series[i].double().numpy()  # (time, 2, y, x)
        one.append(np.sqrt(((s[1:] - s[:-1]) ** 2).sum() / (s[1:] ** 2).sum()))
        last.append(np.sqrt(((s[-1] - s[0]) ** 2).sum() / (s[-1] ** 2).sum()))
    return np.mean(one), np.mean(last)


def test_tables_and_baseline_values(suite):
    out, result = suite
    rows = {r["operator"]: r for r in result["rows"]}
    assert list(rows) == ["persistence", "FNO"]
    one, last = persistence_errors(out / "data" / "cavity_bc" / "test.h5")
    assert rows["persistence"]["rel_l2"] == pytest.approx(one, rel=1e-9)
    assert rows["persistence"]["rollout_final_rel_l2"] == pytest.approx(last, rel=1e-9)
    fno = rows["FNO"]
    assert fno["params"] > 0 and fno["train_s"] > 0
    assert all(np.isfinite(fno[k]) for k in ("rel_l2", "brmse", "frmse_high", "rollout_rmse"))
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["operator"] for r in table] == ["persistence", "FNO"]
    assert float(table[1]["rmse"]) == pytest.approx(fno["rmse"], rel=1e-12)
    md = (out / "results.md").read_text().splitlines()
    assert md[0].startswith("| case | sweep | operator |") and len(md) == 4


def test_netcdf_and_index_page(suite):
    out, result = suite
    ds = xr.open_dataset(out / "results.nc", engine="h5netcdf")
    assert ds["one_step_rmse"].dims == ("case", "sweep", "operator")
    assert ds["rollout_rel_l2_per_step"].dims == ("case", "sweep", "operator", "step")
    assert ds.sizes["step"] == 3 and list(ds["variable"].values) == ["u", "v"]
    fno = result["rows"][1]
    assert float(ds["one_step_rmse"].sel(case="cavity", sweep="bc", operator="FNO")) == \
        pytest.approx(fno["rmse"])
    curve = ds["rollout_rel_l2_per_step"].sel(case="cavity", sweep="bc", operator="FNO").values
    assert curve[-1] == pytest.approx(fno["rollout_final_rel_l2"])
    page = (out / "index.html").read_text()
    targets = re.findall(r"(?:href|src)='([^']+)'", page)
    assert {"results.md", "results.csv", "results.nc", "figures/cavity_bc_growth.png",
            "figures/cavity_bc_FNO_spectrum.png"} <= set(targets)
    for t in targets:
        if t.startswith("data:image/png;base64,"):  # figures are embedded (self-contained page)
            continue
        assert (out / t).stat().st_size > 100, t


def test_rerun_reuses_runs_and_evaluate_reads_rollout_runs(suite):
    out, result = suite
    ckpt = out / "runs" / "cavity_bc" / "FNO" / "checkpoints" / "best.ckpt"
    stamp = ckpt.stat().st_mtime_ns
    again = run_cfd_suite(out, cases=["cavity"], sweeps=["bc"], size=TINY, baseline=False)
    assert ckpt.stat().st_mtime_ns == stamp
    assert again["rows"][0]["rmse"] == pytest.approx(result["rows"][1]["rmse"], rel=1e-12)
    ev = evaluate_run(ckpt.parent.parent, out=out / "ev", n_plots=1)["metrics"]
    assert ev["rollout"]["rel_l2"] == pytest.approx(result["rows"][1]["rollout_rel_l2"])
    assert len(ev["one_step"]["per_step"]["rel_l2"]) == 3
    assert json.loads((out / "ev" / "metrics.json").read_text())["one_step"]["n_samples"] == 2
    assert (out / "ev" / "rollout.png").exists()
    # the baseline ledger re-solves each case from its parameters: the data's own setting
    # reproduces the stored frames (float32), coarser cells do worse
    led = {s["label"]: s for s in ev["baselines"]["settings"]}
    assert led["16 cells (data's)"]["rel_l2"] < 1e-6
    assert led["8 cells"]["rel_l2"] > led["16 cells, dt x1.5"]["rel_l2"] > 0


def test_suite_cli(tmp_path, capsys):
    code = main(["evaluate", "--suite", "cfd", "--cases", "channel", "--sweeps", "prop",
                 "--epochs", "1", "--set", "FNO.hidden_channels=4", "--set", "FNO.n_layers=1",
                 "--set", "FNO.n_modes=[4,4]", "--out", str(tmp_path / "s")])
    assert code == 0, capsys.readouterr().err
    printed = json.loads(capsys.readouterr().out)
    assert printed["markdown"].endswith("results.md")
    cfg = (tmp_path / "s" / "runs" / "channel_prop" / "FNO" / "config.yaml").read_text()
    assert "hidden_channels: 4" in cfg and "density" in cfg and "viscosity" in cfg
    assert "velocity" not in cfg  # constant in the PROP sweep: no parameter channel


@pytest.mark.parametrize("argv, message", [
    (["--suite", "cfd", "--operators", "NoSuchNet"], "unknown operator NoSuchNet"),
    (["--suite", "cfd", "--sweeps", "bcc"], "unknown sweep bcc"),
    (["somerun", "--suite", "cfd"], "--suite trains its own runs"),
])
def test_suite_cli_errors(tmp_path, capsys, argv, message):
    assert main(["evaluate", *argv, "--out", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pdeml: error:") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s").exists()
