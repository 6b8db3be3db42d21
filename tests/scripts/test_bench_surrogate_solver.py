"""scripts/bench_surrogate_solver.py at smoke size: every method solves to rtol, the JSON
holds the comparison against every classical method, and a second call resumes."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_surrogate_solver.py"), "--quick",
         "--out", str(out), *args], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_quick_run_compares_every_method_and_resumes(tmp_path):
    out = tmp_path / "bench.json"
    run(out)
    report = json.loads(out.read_text())
    methods = report["methods"]
    assert set(methods) == {"lu", "amg", "cold", "gmres", "recycled", "twosweep", "guess",
                            "guess+amg",
                            "space", "space+recycled", "correct", "correct/4", "correct+amg"}
    for name, row in methods.items():
        assert row["max_residual"] <= report["rtol"] * (1 + 1e-6), name
        assert row["ms_per_system"] > 0 and len(row["iterations"]) == 4
    assert methods["lu"]["iterations"] == [0, 0, 0, 0]
    assert methods["correct"]["inference_ms"] > 0 and methods["recycled"]["inference_ms"] == 0
    tg = report["targets"]
    classical = {"lu", "amg", "cold", "gmres", "recycled", "twosweep"}
    assert tg["fastest_classical"] in classical
    assert set(tg["per_method"]) == set(methods) - classical
    for row in tg["per_method"].values():
        assert row["offline_seconds"] > 0  # generation and training are on the bill
    for kind in ("solution", "forcing", "ritz"):
        assert report["trained"][kind]["train_seconds"] > 0
    # a second call reuses the data, the runs and the measured passes
    proc = run(out)
    assert "generated" not in proc.stderr and "trained" not in proc.stderr
    assert "pass 1/1" not in proc.stderr
    assert json.loads(out.read_text())["methods"].keys() == methods.keys()
