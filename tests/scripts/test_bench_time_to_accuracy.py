"""scripts/bench_time_to_accuracy.py at smoke size: its JSON, and a clock that includes
data generation."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIELDS = {"problem", "target", "reached", "time_to_target_s", "best_rel_l2", "best_at_s",
          "generate_s", "train_s", "eval_s", "n_evals", "total_s", "budget_s", "epochs_run",
          "steps", "params", "recipe", "trajectory", "threads", "load_before", "load_after"}
RECIPE = {"problem", "n_train", "n_test", "model", "lr", "scheduler", "batch_size", "epochs",
          "precision", "threads", "target"}


def run(out: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_time_to_accuracy.py"), "--quick",
         "--out", str(out), *args], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc, json.loads(out.read_text())


def test_quick_run_reports_time_to_target_with_generation_on_the_clock(tmp_path):
    # A target every model meets: reached at the first evaluation, after generation.
    proc, report = run(tmp_path / "tta.json", "--problem", "all", "--target", "100")
    assert report["benchmark"] == "time_to_accuracy" and report["quick"]
    assert set(report["results"]) == {"darcy", "ns"}
    for name, r in report["results"].items():
        assert FIELDS <= set(r), FIELDS - set(r)
        assert RECIPE <= set(r["recipe"]) and r["recipe"]["target"] == 100
        assert r["reached"] and r["problem"] == name
        assert 0 < r["generate_s"] < r["time_to_target_s"] <= r["total_s"]
        first = r["trajectory"][0]
        assert first["t"] == r["time_to_target_s"] and first["rel_l2"] <= 100
        assert r["n_evals"] == len(r["trajectory"]) == 1  # stopped at the hit
        assert r["model_kwargs"]["hidden_channels"] == 8
    assert "| darcy | 100.0 |" in proc.stdout and "darcy recipe:" in proc.stdout


def test_quick_run_not_reached_reports_best_error_and_trajectory(tmp_path):
    proc, report = run(tmp_path / "tta.json", "--target", "1e-9", "--set", "epochs=3",
                       "--set", "model.hidden_channels=6")
    r = report["results"]["darcy"]
    assert not r["reached"] and r["time_to_target_s"] is None
    assert r["epochs_run"] == 3 and r["recipe"]["model"]["hidden_channels"] == 6
    times = [p["t"] for p in r["trajectory"]]
    assert len(times) == 3 and times == sorted(times) and times[0] > r["generate_s"]
    assert r["best_rel_l2"] == min(p["rel_l2"] for p in r["trajectory"])
    assert "not reached" in proc.stdout


def test_unknown_setting_is_refused(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_time_to_accuracy.py"), "--quick",
         "--set", "n_trian=5", "--out", str(tmp_path / "x.json")],
        capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "n_trian" in proc.stderr
    assert not (tmp_path / "x.json").exists()
