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


def test_cfdbench_fields_follow_cfdbench_model_families():
    from pdeml.suite import cfdbench_fields

    assert cfdbench_fields("identity") == cfdbench_fields("persistence") == ("u",)
    for deeponet_style in ("auto_deeponet", "auto_edeeponet", "auto_deeponet_cnn", "auto_ffn"):
        assert cfdbench_fields(deeponet_style) == ("u",)
    for grid in ("FNO", "TFNO", "LSM", "MgNO", "unet", "resnet"):
        assert cfdbench_fields(grid) == ("u", "v")


@pytest.mark.parametrize(("override", "model", "identity"),
                         [(None, ("u", "v"), ("u",)), (("u",), ("u",), ("u",)),
                          (("u", "v"), ("u", "v"), ("u", "v"))])
def test_the_suite_scores_each_family_on_its_fields(monkeypatch, tmp_path, override, model,
                                                     identity):
    """The suite passes each model family's CFDBench fields (or the override) to the profile
    and records them in the row (no training: the run and the reports are stand-ins)."""
    import pdeml.evaluate
    import pdeml.suite as suite

    asked = []

    def profile(model_, data, spec, masked=True, fields=("u", "v"), identity_fields=("u",)):
        asked.append((tuple(fields), tuple(identity_fields)))
        score = {"nmse": 1.0, "mse": 1.0, "rmse": 1.0, "mae": 1.0}
        return {"model": score, "identity": score,
                "fields": {"model": list(fields), "identity": list(identity_fields)}}

    one = {"per_step": {"rel_l2": [0.1]}, "rel_l2": 0.1, "rmse": 0.1,
           **{m: 0.1 for m in suite.METRICS}}
    monkeypatch.setattr(suite, "cfdbench_profile", profile)
    monkeypatch.setattr(suite, "_train", lambda *a, **k: (object(), 0.0, 0))
    monkeypatch.setattr(pdeml.evaluate, "rollout_report",
                        lambda *a, **k: {"one_step": one, "rollout": one, "figures": []})
    ctx = {"cfg": {"model": {}}, "out": tmp_path, "kwargs": {}, "seed": 0, "progress": False,
           "overwrite": False, "cases": "cfdbench", "masked": True, "cfdbench_fields": override}
    paths = {"test": tmp_path / "test.h5"}
    spec = {"fields": ["u", "v"], "static": ["mask"], "history": 1, "residual": True}
    rows = [suite._row(*suite._evaluate_one("cavity", "bc", op, paths, spec, ctx))
            for op in (suite.BASELINE, "FNO")]
    assert asked[1] == (model, identity) and asked[0][1] == identity
    assert [r["operator"] for r in rows] == ["identity", "FNO"]
    assert rows[0]["cfdbench_fields"] == ",".join(identity)
    assert rows[1]["cfdbench_fields"] == ",".join(model)
