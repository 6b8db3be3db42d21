"""The published-protocol leaderboard at smoke size (what CI runs of it)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_paper_protocol_quick_run_writes_both_columns(tmp_path):
    out = tmp_path / "lb"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "leaderboard.py"), "--protocol", "paper",
         "--quick", "--models", "FNO", "MgNO", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "leaderboard.json").read_text())
    assert result["protocol"] == "paper" and result["quick"]
    rows = {(r["problem"], r["operator"]): r for r in result["rows"]}
    assert set(rows) == {(p, m) for p in ("darcy85", "ns1e-3") for m in ("FNO", "MgNO")}
    for row in rows.values():
        for column in ("equal_epochs", "equal_time"):
            assert 0 < row[column]["rel_l2"] < 10 and row[column]["epochs"] >= 1
    assert rows[("darcy85", "FNO")]["paper_rel_l2"] == 0.0108
    assert rows[("darcy85", "MgNO")]["model"]["n_levels"] is None  # derived from the grid
    assert "| darcy85 | FNO |" in proc.stdout
