"""The baseline-ledger benchmark at smoke size: JSON, table and figure, and a rerun resumes."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(out):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_baselines.py"), "--quick",
         "--problems", "darcy64", "burgers", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=900)


def test_quick_run_writes_the_ledger_table_and_figure_and_resumes(tmp_path):
    out = tmp_path / "b"
    proc = _run(out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((out / "baselines.json").read_text())
    assert set(doc["results"]) == {"darcy64", "burgers"}
    for name, r in doc["results"].items():
        led = r["ledger"]
        assert led["problem"] in ("darcy", "burgers")
        assert led["surrogate"]["seconds_batched"] > 0 and len(led["settings"]) >= 5
        # the data's own setting reproduces the stored labels
        assert min(s["rel_l2"] for s in led["settings"]) < 1e-5, name
        assert r["exported_latency"]["seconds_batch1"] > 0
        assert r["summary"].startswith("baselines: surrogate rel L2")
    table = (out / "baselines.md").read_text().splitlines()
    assert table[0].startswith("| problem | surrogate rel L2") and len(table) == 4
    assert (out / "baselines.png").stat().st_size > 10_000
    again = _run(out)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "darcy64: done before, kept" in again.stdout
