"""``pdeml generate --surrogate RUN``: a run trained through pdeml works inside the solves."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from pdeml.cli import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs: (k, f) -> u on random forcing, and k -> Ritz vectors."""
    root = tmp_path_factory.mktemp("hybrid_cli")
    small = ["--set", "resolution=8", "--n-test", "0", "--no-progress"]
    assert main(["generate", "helmholtz3d", "--set", "source=random", "--n-train", "8",
                 *small, "--out", str(root / "rhs")]) == 0
    assert main(["generate", "helmholtz3d", "--set", "solver=gcrodr", "--set", "save_ritz=3",
                 "--n-train", "8", *small, "--out", str(root / "ritz")]) == 0
    tiny = ["--set", "model.name=FNO", "--set", "model.n_modes=[3,3,3]", "--set",
            "model.hidden_channels=4", "--set", "trainer.max_epochs=1"]
    assert main(["train", "--set", f"data.train={root / 'rhs' / 'train.h5'}", *tiny,
                 "--out", str(root / "correct")]) == 0
    assert main(["train", "--set", f"data.train={root / 'ritz' / 'train.h5'}",
                 "--set", "data.inputs=[k]", "--set", "data.outputs=[ritz_real, ritz_imag]",
                 "--set", "module.loss={name: subspace, parts: 2}", *tiny,
                 "--out", str(root / "space")]) == 0
    return root


@pytest.mark.parametrize("use, run", [("correct", "correct"), ("space", "space")])
def test_generate_with_a_surrogate_inside(runs, use, run, tmp_path):
    out = tmp_path / use
    assert main(["generate", "helmholtz3d", "--set", "resolution=8", "--set", "solver=gcrodr",
                 "--surrogate", str(runs / run), "--surrogate-use", use, "--n-train", "4",
                 "--n-test", "0", "--no-progress", "--out", str(out)]) == 0
    with h5py.File(out / "train.h5", "r") as f:
        settings = json.loads(f.attrs["problem_settings"])
        residual = f["solver_residual"][:]
        assert np.isfinite(f["u_real"][:]).all()
    assert settings["surrogate_use"] == use and settings["surrogate"] == str(runs / run)
    assert (residual <= 1e-8).all()  # an untrained surrogate costs iterations, never accuracy


def test_bad_surrogate_is_refused_before_writing(runs, tmp_path, capsys):
    out = tmp_path / "never"
    base = ["generate", "helmholtz3d", "--set", "resolution=8", "--n-train", "2",
            "--n-test", "0", "--out", str(out)]
    assert main([*base, "--surrogate", str(tmp_path / "missing")]) != 0
    assert "no such run" in capsys.readouterr().err
    assert main([*base, "--surrogate", str(runs / "correct"), "--surrogate-use", "space"]) != 0
    assert "ritz" in capsys.readouterr().err
    assert main([*base, "--surrogate", str(runs / "space"), "--surrogate-use", "correct"]) != 0
    assert "random forcing" in capsys.readouterr().err
    assert main(["generate", "burgers", "--n-train", "2", "--n-test", "0", "--out", str(out),
                 "--surrogate", str(runs / "correct")]) != 0
    assert "linear solves" in capsys.readouterr().err
    assert not out.exists()
