"""scripts/example_the_well.py at smoke size: The Well's table, its cross-check, the cache."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("example_the_well",
                                               ROOT / "scripts" / "example_the_well.py")
example = importlib.util.module_from_spec(_spec)
sys.modules["example_the_well"] = example
_spec.loader.exec_module(example)


def test_pressure_of_taylor_green_vortex():
    # u = sin(2 pi x) cos(2 pi y), v = -cos(2 pi x) sin(2 pi y): p = (cos 4 pi x + cos 4 pi y) / 4
    x = np.arange(32) / 32
    X, Y = np.meshgrid(x, x)  # arrays (y, x), as pdeml stores them
    u = np.sin(2 * np.pi * X) * np.cos(2 * np.pi * Y)
    v = -np.cos(2 * np.pi * X) * np.sin(2 * np.pi * Y)
    want = (np.cos(4 * np.pi * X) + np.cos(4 * np.pi * Y)) / 4
    assert np.abs(example.pressure(u, v) - want).max() < 1e-12


def test_trainer_windows_are_the_well_trainers():
    # split_up_losses with num_time_intervals = 5 over its max_rollout_steps = 100
    assert list(example.trainer_windows(100)) == ["0:1", "1:3", "3:10", "10:31", "31:100"]
    assert list(example.trainer_windows(16))[-1] == "7:15"  # int() truncates exp(log 16)
    assert example.trainer_windows(1) == {}  # one window: The Well logs T=all only


@pytest.mark.timeout(300)
def test_smoke_run_writes_the_well_table_and_reuses_its_stages(tmp_path, capsys):
    pytest.importorskip("the_well")
    out = tmp_path / "well"
    assert example.main(["--smoke", "--out", str(out)]) == 0
    report = json.loads((out / "example_the_well.json").read_text())
    table = (out / "example_the_well.md").read_text()
    assert report["smoke"] and report["n_steps"] == 16  # 20 frames, 4 of them inputs
    assert report["max_rel_diff"] < 1e-6  # pdeml's VRMSE == The Well's on the same arrays
    assert set(report["summary"]) == {"FNO", "persistence"}
    for name in ("FNO", "persistence"):
        for field in ("all fields", "pressure", "velocity_x", "velocity_y"):
            assert f"| {name} | {field} |" in table
        s = report["summary"][name]["rollout"]
        assert s["pdeml"]["all fields"]["6:12"] == pytest.approx(
            s["the_well"]["all fields"]["6:12"], rel=1e-6)
        assert set(s["pdeml"]["pressure"]) >= {"6:12", "13:30", "all", "0:1", "7:15"}
    assert "rollout 13:30 (13:16)" in table and "| T=7:15 |" in table
    well = report["stages"]["well_load"]
    assert well["fields"] == ["pressure", "velocity_x", "velocity_y"]
    assert all(well["checks"].values()) and well["n_windows"] == 2 * 16
    evaluated = report["stages"]["evaluate"]["rollout"]["vrmse"]  # pdeml evaluate's number
    assert evaluated == pytest.approx(report["summary"]["FNO"]["rollout"]["pdeml"]
                                      ["all fields"]["all"], rel=1e-9)
    assert (out / "well" / "pdeml_shear_flow" / "data" / "valid" /
            "pdeml_shear_flow.hdf5").exists()
    assert "| persistence | all fields |" in capsys.readouterr().out

    # A rerun redoes nothing and writes the same table.
    assert example.main(["--smoke", "--out", str(out)]) == 0
    again = json.loads((out / "example_the_well.json").read_text())
    assert all(s["cached"] for s in again["stages"].values())
    assert (out / "example_the_well.md").read_text() == table
    with pytest.raises(SystemExit, match="another recipe"):
        example.main(["--smoke", "--epochs", "3", "--out", str(out)])
