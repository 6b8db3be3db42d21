"""scripts/bench_active.py at smoke size: its statistics, table, figure and run cache."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_active", ROOT / "scripts" / "bench_active.py")
bench_active = importlib.util.module_from_spec(_spec)
sys.modules["bench_active"] = bench_active
_spec.loader.exec_module(bench_active)

pytest.importorskip("distributed")
SMOKE = ["--budget", "16", "--epochs", "1", "--batches", "3", "--batch-size", "4",
         "--n-test", "8", "--n-val", "4", "--seeds", "0", "--resolution", "32",
         "--final-time", "0.1", "--nu", "0.02", "0.1", "--period", "4", "--modes", "4",
         "--width", "4"]


def test_stats_are_the_per_sample_quantiles():
    e = np.linspace(0.0, 1.0, 101)
    s = bench_active.stats(e)
    assert s["mean"] == pytest.approx(0.5) and s["max"] == 1.0
    assert s["p50"] == pytest.approx(0.5) and s["p99"] == pytest.approx(0.99)


@pytest.mark.timeout(600)
def test_smoke_run_writes_json_table_figure_and_reuses_runs(tmp_path, capsys):
    out = tmp_path / "active"
    assert bench_active.main([*SMOKE, "--out", str(out)]) == 0
    result = json.loads((out / "active.json").read_text())
    assert set(result["summary"]) == {"uniform", "breed"} and (out / "active.png").exists()
    for run in result["runs"]:
        assert len(run["errors"]) == len(run["param"]) == 8
        assert run["stats"]["mean"] == pytest.approx(np.mean(run["errors"]))
        assert run["n_generated"] == 16  # the whole budget was solved, no more
        assert all(0.02 <= v <= 0.1 for v in run["generated"])
    assert result["summary"]["uniform"]["vs_uniform"]["p99"] == pytest.approx(1.0)
    assert "| breed |" in capsys.readouterr().out
    stamp = (out / "runs" / "breed_seed0" / "metrics.json").stat().st_mtime
    assert bench_active.main([*SMOKE, "--out", str(out)]) == 0  # cached: not retrained
    assert (out / "runs" / "breed_seed0" / "metrics.json").stat().st_mtime == stamp
