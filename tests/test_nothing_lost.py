"""Bad input never costs the user a file, and the corrected command then runs (issue 33).

Each row of :data:`ROWS` lays out a user's folder (their own files, and the inputs the bad
command names), runs the bad command in it, and checks: a non-zero exit, one line
``pdeml: error: ...`` naming the input, every file and folder in the user's folder unchanged
byte for byte (nothing deleted, truncated, replaced or left behind), and then, where the row
gives one, that the corrected command succeeds in that same folder.

The table of ``tests/test_bad_inputs.py`` checks that nothing is *created*; this one adds
that nothing the user had is *lost*, on the cases an outside check found misbehaving.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest

from pdeml.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "model.n_modes=[4,4]", "--set", "model.hidden_channels=8",
        "--set", "model.n_layers=2", "--set", "trainer.max_epochs=1",
        "--set", "trainer.enable_progress_bar=false", "--set", "data.batch_size=8"]
GEN = ["--set", "resolution=8", "--n-train", "2", "--n-test", "1", "--no-progress"]


@dataclass
class Row:
    """One bad command: ``argv`` and ``fixed`` are templates over the folders of
    :func:`inputs` (``{darcy}``, ``{run}``, ``{model}``, ...) and ``{tmp}``, the user's folder;
    ``fix`` (optional) repairs the folder before ``fixed`` runs."""

    id: str
    argv: list[str]
    expected: str
    fixed: list[str] | None = None
    fix: Callable[[Path], None] | None = None
    user_files: dict[str, str] = field(default_factory=dict)


def _user_folders(tmp: Path) -> None:
    """A user's own data/, run/ and model/ (the demo once deleted them)."""
    for name in ("data/train.h5", "run/notes.txt", "model/mine.pt2"):
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(f"the user's {name}\n")


def _restore_checkpoint(tmp: Path) -> None:
    shutil.copy(tmp / "fno_last.ckpt", tmp / "run" / "checkpoints" / "last.ckpt")


ROWS = [
    Row("demo-negative-n-train", ["demo", "--out", "{tmp}", "--n-train", "-5"],
        "--n-train: must be a positive integer, got -5", fix=None),
    Row("demo-into-a-users-folder", ["demo", "--out", "{tmp}", "--epochs", "1"],
        "holds data, run, model that `pdeml demo` did not make"),
    Row("resume-foreign-checkpoint", ["train", "--out", "{tmp}/run", "--resume"],
        "holds T1; this run is FNO", fixed=["train", "--out", "{tmp}/run", "--resume"],
        fix=_restore_checkpoint),
    Row("resume-changed-model", ["train", "--out", "{tmp}/run", "--resume", "--set",
                                 "model.hidden_channels=16"],
        "cannot change model.hidden_channels (8 -> 16) on --resume",
        fixed=["train", "--out", "{tmp}/run", "--resume"], fix=_restore_checkpoint),
    Row("generate-nan-option", ["generate", "darcy", "--set", "forcing=.nan", *GEN, "--out",
                                "{tmp}/g"], "darcy.forcing must be a finite number, got nan",
        fixed=["generate", "darcy", "--set", "forcing=1.0", *GEN, "--out", "{tmp}/g"]),
    Row("train-nan-lr", ["train", *TINY, "--set", "module.lr=.nan", "--set",
                         "data.train={darcy}/train.h5", "--out", "{tmp}/r"],
        "module.lr must be a finite number, got nan",
        fixed=["train", *TINY, "--set", "module.lr=0.01", "--set",
               "data.train={darcy}/train.h5", "--out", "{tmp}/r"]),
    Row("train-test-of-another-problem", ["train", *TINY, "--set", "data.train={darcy}/train.h5",
                                          "--set", "data.test={ns}/test.h5", "--out",
                                          "{tmp}/r"],
        "ns/test.h5 has no variable a, u",
        fixed=["train", *TINY, "--set", "data.train={darcy}/train.h5", "--set",
               "data.test={darcy}/test.h5", "--out", "{tmp}/r"]),
    Row("train-test-same-variables-other-problem",
        ["train", *TINY, "--set", "data.train={darcy}/train.h5", "--set",
         "data.test={heat}/test.h5", "--out", "{tmp}/r"],
        "holds heat data; data.train holds darcy",
        fixed=["train", *TINY, "--set", "data.train={darcy}/train.h5", "--out", "{tmp}/r"]),
    Row("train-2d-model-on-3d-data", ["train", *TINY, "--set", "data.train={d3}/train.h5",
                                      "--out", "{tmp}/r"],
        "model FNO is set up for 2-D grids (model.n_modes=[4, 4]) but the data is 3-D",
        fixed=["train", *TINY, "--set", "model.n_modes=[4,4,4]", "--set",
               "data.train={d3}/train.h5", "--out", "{tmp}/r"]),
    Row("train-config-is-hdf5", ["train", "--config", "{darcy}/train.h5", "--out", "{tmp}/r"],
        "train.h5 is not a YAML file (it holds binary data; an HDF5 file goes in data.train)",
        fixed=["train", *TINY, "--set", "data.train={darcy}/train.h5", "--out", "{tmp}/r"]),
    Row("suite-unknown-operator-argument",
        ["evaluate", "--suite", "cfd", "--cases", "cavity", "--sweeps", "bc", "--set",
         "FNO.wings=3", "--out", "{tmp}/cfd"], "unknown setting FNO.wings"),
    Row("import-cfdbench-missing-subset",
        ["import", "cfdbench", "{cfd}/cavity", "--subsets", "prop", "--out", "{tmp}/c.h5"],
        "has no prop subset (it has bc)",
        fixed=["import", "cfdbench", "{cfd}/cavity", "--subsets", "bc", "--out",
               "{tmp}/c.h5"]),
    Row("info-pdebench-file", ["info", "{tmp}/pdebench.hdf5"],
        "pdebench.hdf5 is an HDF5 file but not a pdeml file",
        fixed=["info", "{darcy}/train.h5"]),
    Row("predict-point-clouds", ["predict", "{model}", "{holes}/test.h5", "--out",
                                 "{tmp}/p.npy"],
        "holds point clouds; this FNO model takes grids",
        fixed=["predict", "{model}", "{darcy}/test.h5", "--no-progress", "--out",
               "{tmp}/p.npy"]),
    Row("predict-other-problem", ["predict", "{model}", "{tmp}/heat_test.h5", "--out",
                                  "{tmp}/p.npy"],
        "holds heat data; the model was trained on darcy"),
    Row("predict-grid-below-the-card", ["predict", "{model}", "{tmp}/small.npy", "--out",
                                        "{tmp}/p.npy"],
        "input grid 8x8 is below the smallest the model takes (16x16, per its card)"),
    Row("evaluate-other-problem", ["evaluate", "{run}", "--data", "{tmp}/heat_test.h5",
                                   "--out", "{tmp}/ev"],
        "holds heat data; the run was trained on darcy",
        fixed=["evaluate", "{run}", "--data", "{darcy}/test.h5", "--n-plots", "0", "--out",
               "{tmp}/ev"]),
    Row("export-into-a-file", ["export", "{run}", "--out", "{tmp}/afile/m.pt2"],
        "afile is not a folder", fixed=["export", "{run}", "--out", "{tmp}/m.pt2"]),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, darcy_dir, trained_run, exported_model):
    """The files the rows name, made once: other problems' data, a T1 checkpoint, a
    CFDBench folder with only the bc subset."""
    from pdeml.datasets.writer import generate_dataset
    from pdeml.solvers.problems import make_problem
    from pdeml.trainers.fit import train

    root = tmp_path_factory.mktemp("inputs")
    for name, problem, opts in (
            ("ns", "navier_stokes", {"resolution": 16, "n_terms": 5, "final_time": 0.2,
                                     "n_snapshots": 2}),
            ("d3", "darcy3d", {"resolution": 8}),
            ("holes", "darcy_holes", {})):
        generate_dataset(make_problem(problem, **opts), root / name, {"train": 4, "test": 2},
                         progress=False)
    (root / "heat").mkdir()
    shutil.copy(darcy_dir / "test.h5", root / "heat" / "test.h5")
    with h5py.File(root / "heat" / "test.h5", "r+") as f:
        f.attrs["problem"] = "heat"  # the same variables, another problem's file
    t1 = root / "t1run"
    train({"model": {"name": "T1", "n_modes": [4, 4], "hidden_channels": 8, "n_layers": 2},
           "data": {"train": str(darcy_dir / "train.h5"), "batch_size": 8},
           "trainer": {"max_epochs": 1, "enable_progress_bar": False}}, t1)
    case = root / "cfd" / "cavity" / "bc" / "case0000"
    case.mkdir(parents=True)
    (case / "case.json").write_text('{"vel_top": 1.0, "density": 1.0, "viscosity": 0.001, '
                                    '"height": 0.01, "width": 0.01}')
    rng = np.random.default_rng(0)
    np.save(case / "u.npy", rng.random((4, 4, 4)))
    np.save(case / "v.npy", rng.random((4, 4, 4)))
    return {"darcy": darcy_dir, "run": trained_run, "model": Path(exported_model),
            "ns": root / "ns", "d3": root / "d3", "holes": root / "holes",
            "heat": root / "heat", "t1": t1 / "checkpoints" / "last.ckpt", "cfd": root / "cfd"}


def _lay_out(row: Row, tmp: Path, inputs: dict[str, Path]) -> None:
    """The user's folder for ``row``: their own files plus the inputs it names."""
    if row.id.startswith("demo"):
        _user_folders(tmp)
    if row.id.startswith("resume"):
        shutil.copytree(inputs["run"], tmp / "run")
        shutil.copy(tmp / "run" / "checkpoints" / "last.ckpt", tmp / "fno_last.ckpt")
        if row.id == "resume-foreign-checkpoint":
            shutil.copy(inputs["t1"], tmp / "run" / "checkpoints" / "last.ckpt")
    if row.id == "info-pdebench-file":
        with h5py.File(tmp / "pdebench.hdf5", "w") as f:
            f["tensor"] = np.zeros((3, 5, 8), np.float32)
    if row.id.endswith("other-problem"):
        shutil.copy(inputs["heat"] / "test.h5", tmp / "heat_test.h5")
    if row.id == "predict-grid-below-the-card":
        np.save(tmp / "small.npy", np.ones((2, 1, 8, 8), np.float32))
    if row.id == "export-into-a-file":
        (tmp / "afile").write_text("a file where a folder was expected\n")
    (tmp / "keep.txt").write_text("a file the user cares about\n")


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry below ``folder``: files by content hash, folders by name."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        out[rel] = ("dir" if path.is_dir() else
                    hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse type errors exit with status 2
        code = exit_.code
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_loses_nothing_and_the_corrected_command_runs(row, tmp_path, capsys,
                                                                 inputs, monkeypatch):
    user = tmp_path / "user"
    user.mkdir()
    _lay_out(row, user, inputs)
    names = {**{k: str(v) for k, v in inputs.items()}, "tmp": str(user)}
    monkeypatch.chdir(user)
    before = snapshot(user)
    code, err = run_cli([a.format(**names) for a in row.argv], capsys)
    assert code != 0, f"{row.id}: exit 0"
    assert len(err.splitlines()) == 1 and err.startswith("pdeml: error:"), err
    assert row.expected in err, err
    assert snapshot(user) == before, f"{row.id} changed the user's folder"
    if row.fixed is not None:
        if row.fix is not None:
            row.fix(user)
        code, err = run_cli([a.format(**names) for a in row.fixed], capsys)
        assert code == 0, f"{row.id}: the corrected command failed: {err[-500:]}"


def test_a_failing_solver_leaves_no_partial_job(tmp_path):
    """A solve that fails (not a kill) before any shard is done leaves no manifest that
    would refuse the corrected command, and no folder it made."""
    from faults import FaultyDarcy

    from pdeml.datasets.writer import generate_dataset
    from pdeml.solvers.problems import DarcyFlow

    with pytest.raises(RuntimeError, match="simulated solver crash"):
        generate_dataset(FaultyDarcy("unused", "always", resolution=8), tmp_path / "g",
                         {"train": 2}, progress=False)
    assert list(tmp_path.iterdir()) == []
    generate_dataset(DarcyFlow(resolution=8), tmp_path / "g", {"train": 2}, progress=False)
    assert (tmp_path / "g" / "train.h5").exists()


def test_a_train_that_fails_before_its_first_checkpoint_leaves_no_run(tmp_path, darcy_dir,
                                                                      monkeypatch, capsys):
    """An error inside ``trainer.fit`` (here a loss that raises) used to leave config.yaml and
    logs/, and the corrected command was refused ("already holds a run")."""
    from pdeml.trainers.module import OperatorModule

    def broken(self, batch, batch_idx):
        raise RuntimeError("a failure inside the first training step")

    argv = ["train", *TINY, "--set", f"data.train={darcy_dir / 'train.h5'}", "--out",
            str(tmp_path / "r")]
    with monkeypatch.context() as m:
        m.setattr(OperatorModule, "training_step", broken)
        with pytest.raises(RuntimeError, match="inside the first training step"):
            main(argv)
    assert not (tmp_path / "r").exists()
    assert main(argv) == 0


def test_unreachable_scheduler_leaves_no_run(tmp_path, capsys, monkeypatch):
    """An online config whose scheduler cannot be reached: one line, no run folder."""
    dask = pytest.importorskip("dask")
    config = tmp_path / "online.yaml"
    config.write_text(
        "data:\n  online: {problem: darcy, options: {resolution: 8, solver: direct}, "
        "buffer: fifo, capacity: 16, batches_per_epoch: 1, scheduler: 'tcp://127.0.0.1:9', "
        "n_workers: 1}\n  batch_size: 2\n"
        "model: {name: FNO, n_modes: [4, 4], hidden_channels: 8, n_layers: 1}\n"
        "trainer: {max_epochs: 1, enable_progress_bar: false}\n")
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        code, err = run_cli(["train", "--config", str(config), "--out", str(tmp_path / "r")],
                            capsys)
    assert code == 1 and len(err.splitlines()) == 1 and "127.0.0.1:9" in err, err
    assert not (tmp_path / "r").exists()


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))  # `ulimit -f 2`: a full disk


def test_a_full_disk_names_the_output_and_leaves_no_temporary(tmp_path, exported_model,
                                                             darcy_dir):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "pdeml.cli", "predict", str(exported_model),
                           str(darcy_dir / "test.h5"), "--no-progress", "--out",
                           str(tmp_path / "out" / "p.npy")], capture_output=True, text=True,
                          env=env, preexec_fn=_limit_file_size, timeout=300)
    err = done.stderr.strip()
    assert done.returncode == 1 and len(err.splitlines()) == 1, err
    assert err.startswith(f"pdeml: error: cannot write {tmp_path / 'out' / 'p.npy'}"), err
    assert list(tmp_path.iterdir()) == []  # neither the partial file nor out/


def test_a_closed_pipe_is_no_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(f"'{sys.executable}' -m pdeml.cli list problems | head -c 0; "
                          "echo ${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.stderr == "" and done.stdout.strip() == "141", (done.stdout, done.stderr)


def test_cfdbench_export_never_replaces_a_case_folder_it_did_not_write(tmp_path):
    """A real CFDBench case folder (no pdeml.json) where the exporter would write: refused,
    not deleted (the exporter used to remove any incomplete case folder first)."""
    from pdeml.datasets.cfdbench import export_cfdbench
    from pdeml.datasets.schema import DatasetError
    from pdeml.solvers.problems import make_problem

    case = tmp_path / "cavity" / "bc" / "case0000"
    case.mkdir(parents=True)
    (case / "case.json").write_text('{"vel_top": 1.0}')
    np.save(case / "u.npy", np.ones((3, 4, 4)))
    before = snapshot(tmp_path)
    problem = make_problem("cavity", resolution=8, cells=8, final_time=0.4)
    with pytest.raises(DatasetError, match="case0000 exists and was not written by pdeml"):
        export_cfdbench(problem, tmp_path, "bc", numbers=[0], progress=False)
    assert snapshot(tmp_path) == before
