"""Bad input: a one-line error on stderr, a non-zero exit, nothing written half-way."""

import subprocess
import sys

import numpy as np
import pytest

from pdeml.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line_error(code, err, pattern):
    assert code != 0
    assert len(err.splitlines()) == 1, err
    assert err.startswith("pdeml: error:")
    assert pattern in err, err


def test_unknown_problem(tmp_path, capsys):
    code, err = run_cli(capsys, "generate", "navier_stokes_99", "--out", str(tmp_path / "d"))
    assert_one_line_error(code, err, "unknown problem 'navier_stokes_99'")
    assert not (tmp_path / "d").exists()


def test_impossible_sizes(tmp_path, capsys):
    code, err = run_cli(capsys, "generate", "darcy", "--set", "resolution=1",
                        "--out", str(tmp_path / "d"))
    assert_one_line_error(code, err, "resolution")
    code, err = run_cli(capsys, "generate", "darcy", "--n-train", "-5",
                        "--out", str(tmp_path / "d"))
    assert_one_line_error(code, err, "n_train must be a non-negative integer")
    assert not (tmp_path / "d").exists()


def test_unknown_model_name(tmp_path, capsys, darcy_dir):
    code, err = run_cli(capsys, "train", "--set", f"data.train={darcy_dir / 'train.h5'}",
                        "--set", "model.name=ResNet9000", "--out", str(tmp_path / "run"))
    assert_one_line_error(code, err, "unknown operator 'ResNet9000'")
    assert not (tmp_path / "run").exists()


def test_bad_model_option_and_bad_section(tmp_path, capsys, darcy_dir):
    code, err = run_cli(capsys, "train", "--set", f"data.train={darcy_dir / 'train.h5'}",
                        "--set", "model.wings=3", "--out", str(tmp_path / "run"))
    assert_one_line_error(code, err, "wings")
    code, err = run_cli(capsys, "train", "--set", "optimizer.lr=1", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "unknown config section")


def test_missing_and_truncated_files(tmp_path, capsys, darcy_dir):
    code, err = run_cli(capsys, "train", "--set", f"data.train={tmp_path / 'none.h5'}",
                        "--out", str(tmp_path / "run"))
    assert_one_line_error(code, err, "not found")
    bad = tmp_path / "bad.h5"
    bad.write_bytes((darcy_dir / "train.h5").read_bytes()[:2000])
    code, err = run_cli(capsys, "train", "--set", f"data.train={bad}", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "cannot read")
    code, err = run_cli(capsys, "evaluate", str(tmp_path / "no_run"))
    assert_one_line_error(code, err, "no checkpoint")
    code, err = run_cli(capsys, "predict", str(tmp_path / "m.pt2"), str(bad),
                        "--out", str(tmp_path / "p.npy"))
    assert_one_line_error(code, err, "not found")


def test_missing_config_file(tmp_path, capsys):
    code, err = run_cli(capsys, "train", "--config", str(tmp_path / "x.yaml"), "--out", "r")
    assert_one_line_error(code, err, "config file not found")


def test_argparse_errors_are_one_line():
    proc = subprocess.run([sys.executable, "-m", "pdeml.cli", "frobnicate"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "invalid choice" in proc.stderr


def test_predict_wrong_shape(tmp_path, capsys, exported_model):
    x = np.zeros((3, 2, 16, 16), dtype=np.float32)  # model expects 1 channel
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    code, err = run_cli(capsys, "predict", str(exported_model), str(tmp_path / "x.npy"),
                        "--out", str(out))
    assert_one_line_error(code, err, "does not fit the model")
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".txt", ".pt"])
def test_predict_unsupported_format(tmp_path, capsys, exported_model, suffix):
    f = tmp_path / f"x{suffix}"
    f.write_text("hello")
    code, err = run_cli(capsys, "predict", str(exported_model), str(f), "--out",
                        str(tmp_path / "y.npy"))
    assert_one_line_error(code, err, "unsupported input format")
