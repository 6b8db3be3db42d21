"""The CFD suite under CFDBench's protocol (slow: trains two small FNOs)."""

import pytest

from pdeml.suite import run_cfd_suite

TINY = {"options": {"resolution": 16, "cells": 12, "final_time": 0.6},
        "splits": {"train": 4, "val": 1, "test": 2}, "epochs": 1, "batch_size": 8,
        "lr": 3e-3, "model": {"FNO": {"n_modes": [6, 6], "hidden_channels": 8, "n_layers": 2}}}


@pytest.mark.slow
def test_cfdbench_protocol_rows_table_and_figures(tmp_path):
    out = tmp_path / "suite"
    result = run_cfd_suite(out, cases=["cylinder"], sweeps=["geo"], size=TINY,
                           case_list="cfdbench", nonauto=True)
    ops = [r["operator"] for r in result["rows"]]
    assert ops == ["identity", "FNO", "FNO-nonauto"]
    for row in result["rows"]:
        assert row["cfdbench_nmse"] > 0 and row["cfdbench_mse"] > 0
    table = (out / "cfdbench.md").read_text().splitlines()
    assert table[0].startswith("| model | cylinder geo NMSE | cylinder geo MSE")
    assert table[2].startswith("| identity |")
    figures = {p.name for p in (out / "figures").iterdir()}
    assert "cylinder_rollout_by_subset.png" in figures
    assert "cylinder_geo_FNO_fields.png" in figures
    assert "cylinder: rollout error" in (out / "index.html").read_text()
    from pdeml.evaluate import evaluate_run

    again = evaluate_run(out / "runs" / "cylinder_geo" / "FNO-nonauto")["metrics"]
    assert again["cfdbench"]["nmse"] == pytest.approx(result["rows"][2]["cfdbench_nmse"])
    assert "no solver baseline for the non-autoregressive task" in again["baselines"]["note"]
