"""The dependency direction of DESIGN.md, checked by import-linter (the contracts are in
pyproject.toml): layers, no import cycle between sibling modules, operator families apart."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    # the package under `cwd` is the one analysed (import-linter imports the root package)
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(cwd), "PATH": ""}, timeout=120)


def _planted(tmp_path: Path, plants: dict[str, str]) -> subprocess.CompletedProcess:
    """lint-imports on a copy of the package with a function-level import added per file."""
    shutil.copytree(ROOT / "pdeml", tmp_path / "pdeml",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for path, target in plants.items():
        f = tmp_path / "pdeml" / path
        f.write_text(f.read_text() + f"\n\ndef _planted():\n    import {target}\n\n"
                     f"    return {target}\n")
    return _lint(tmp_path)


def test_the_contracts_are_kept():
    assert LINT.exists(), "lint-imports missing: install the dev extra"
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in done.stdout
    assert "ignore_imports" not in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("plants, message", [
    ({"datasets/schema.py": "pdeml.cli"},  # datasets -> cli: upward, even inside a function
     "pdeml.datasets is not allowed to import pdeml.cli"),
    ({"metrics.py": "pdeml.checks", "checks.py": "pdeml.metrics"},  # siblings both ways
     "No cycles are allowed in pdeml."),
    ({"operators/gnot.py": "pdeml.operators.lsm"},
     "pdeml.operators.gnot is not allowed to import pdeml.operators.lsm"),
])
def test_a_planted_breach_is_caught(tmp_path, plants, message):
    done = _planted(tmp_path, plants)
    assert done.returncode != 0 and message in done.stdout, done.stdout[-2000:]
