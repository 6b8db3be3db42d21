"""A real `pdeml train` process: stdout is only JSON, progress is on stderr, SIGTERM saves a
checkpoint and exits non-zero with one line, and --resume finishes the same schedule while
logs/metrics.csv keeps its earlier rows."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH",
                                                                                   "")]))


def _rows(run):
    with open(run / "logs" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_checkpoints_and_resume_continues(darcy_dir, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "pdeml.cli", "train", "--out", str(run),
           "--set", f"data.train={darcy_dir / 'train.h5'}", "--set", "data.batch_size=8",
           "--set", "model.n_modes=[4,4]", "--set", "model.hidden_channels=8",
           "--set", "model.n_layers=2", "--set", "module.scheduler=onecycle",
           "--set", "trainer.max_epochs=10", "--set", "trainer.limit_train_batches=2"]
    err_path = tmp_path / "err.txt"
    with err_path.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=_env(), cwd=tmp_path)
        deadline = time.time() + 600  # generous: the shared test machine can be very slow
        while "epoch 2/10 done" not in err_path.read_text():
            assert proc.poll() is None, err_path.read_text()
            if time.time() > deadline:
                proc.kill()
                pytest.fail("training did not reach epoch 2 in 600 s:\n" + err_path.read_text())
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    stderr = err_path.read_text().strip().splitlines()
    assert proc.returncode == 128 + signal.SIGTERM, "\n".join(stderr[-5:])
    assert out == b""  # nothing but results on stdout, and there is no result
    assert stderr[-1].startswith("pdeml: error: interrupted by SIGTERM at epoch"), stderr[-1]
    assert "--resume" in stderr[-1]
    assert (run / "checkpoints" / "last.ckpt").exists()
    before = _rows(run)
    assert before and not any("Epoch" in line for line in stderr)  # line progress, no bars

    done = subprocess.run(cmd[:6] + ["--resume"], capture_output=True, env=_env(), cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    result = json.loads(done.stdout)  # stdout is exactly one JSON document
    assert Path(result["checkpoint"]).name == "best.ckpt"
    after = _rows(run)
    assert after[:len(before)] == before  # the earlier rows survive the resume
    steps = [int(r["step"]) for r in after if r.get("train_loss")]
    assert steps == sorted(steps) and max(steps) == 10 * 2 - 1  # the whole schedule, once
    assert {int(r["epoch"]) for r in after} == set(range(10)), (before, after)


KILLER = '''
import os, signal
from pathlib import Path
from lightning.pytorch.callbacks import Callback

class KillAt(Callback):
    """Send this process SIGTERM once (a marker file in the working directory) at one
    chosen point of training; the run's config keeps the callback for the resume."""

    def __init__(self, point, epoch):
        self.point, self.epoch = point, epoch

    def _kill(self, point, epoch=None):
        if point == self.point and epoch in (None, self.epoch) and not Path("killed").exists():
            Path("killed").touch()
            os.kill(os.getpid(), signal.SIGTERM)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx + 1 == trainer.num_training_batches:
            self._kill("last_batch", trainer.current_epoch)

    def on_validation_start(self, trainer, module):
        if not trainer.sanity_checking:
            self._kill("validation", trainer.current_epoch)

    def on_test_start(self, trainer, module):
        self._kill("test")
'''


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("point,epoch", [("last_batch", 3), ("validation", 3), ("last_batch", 4),
                                         ("test", 4)])
def test_signal_at_epoch_end_keeps_that_epoch(darcy_dir, tmp_path, point, epoch):
    """A signal during an epoch's last batch or its validation lets that epoch finish (its
    validation, its log row) before stopping; stopping right after the last batch used to
    checkpoint an epoch whose validation and log row a resume never redid (a CI failure: the
    SIGTERM test's timing sometimes landed there)."""
    (tmp_path / "killer.py").write_text(KILLER)
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    run, epochs = tmp_path / "run", 5
    cmd = [sys.executable, "-m", "pdeml.cli", "train", "--out", str(run),
           "--set", f"data.train={darcy_dir / 'train.h5'}", "--set", "data.batch_size=8",
           "--set", "model.n_modes=[4,4]", "--set", "model.hidden_channels=8",
           "--set", "model.n_layers=2", "--set", "module.scheduler=onecycle",
           "--set", f"trainer.max_epochs={epochs}", "--set", "trainer.limit_train_batches=2",
           "--set", "trainer.callbacks=[{class_path: killer.KillAt, point: " + point
           + f", epoch: {epoch}}}]"]
    if point == "test":  # a signal during the test that follows training
        cmd[6:6] = ["--set", f"data.test={darcy_dir / 'test.h5'}"]
    stopped = subprocess.run(cmd, capture_output=True, env=env, cwd=tmp_path, timeout=300)
    err = stopped.stderr.decode().strip().splitlines()
    assert stopped.returncode == 128 + signal.SIGTERM, "\n".join(err[-5:])
    assert stopped.stdout == b""  # stopped before the test finished: no result
    # the epoch in flight finished: stopped at the next one's start (or after the last epoch)
    assert err[-1].startswith(f"pdeml: error: interrupted by SIGTERM at epoch {epoch + 1}, "
                              f"step {2 * (epoch + 1)};"), err[-1]
    assert not (run / "metrics.json").exists()
    before = _rows(run)
    assert {int(r["epoch"]) for r in before if r.get("val_l2")} == set(range(epoch + 1))

    done = subprocess.run(cmd[:6] + ["--resume"], capture_output=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    result = json.loads(done.stdout)
    assert Path(result["checkpoint"]).name == "best.ckpt"
    assert ("test_l2" in result) == (point == "test")  # the resumed run ran the test
    after = _rows(run)
    filled = [{k: v for k, v in r.items() if v} for r in after]  # the test adds columns
    assert filled[:len(before)] == [{k: v for k, v in r.items() if v} for r in before]
    for key in ("val_l2", "train_loss"):  # one row of each per epoch, every epoch
        assert sorted(int(r["epoch"]) for r in after if r.get(key)) == list(range(epochs)), key
    steps = [int(r["step"]) for r in after if r.get("train_loss")]
    assert steps == [2 * e + 1 for e in range(epochs)]
