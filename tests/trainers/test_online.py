"""Online training through Lightning: config entry point, exact resume, workers, DDP."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from pdeml.datasets.online import DataWaitMonitor, OnlineDataModule
from pdeml.operators import FNO
from pdeml.trainers import OperatorModule
from pdeml.trainers.fit import train

distributed = pytest.importorskip("distributed")

TINY = {"resolution": 16, "solver": "direct"}
NET = {"n_modes": (4, 4), "hidden_channels": 8, "n_layers": 2}


def test_train_online_from_a_config(tmp_path, darcy_dir):
    cfg = {
        "seed": 0,
        "data": {
            # seed 1: the stream never repeats darcy_dir/train.h5 (seed 0), used to validate
            "online": {"problem": "darcy", "options": TINY, "buffer": "firo", "capacity": 64,
                       "watermark": 16, "seed": 1, "batches_per_epoch": 4, "n_workers": 1},
            "val": str(darcy_dir / "train.h5"), "test": str(darcy_dir / "test.h5"),
            "batch_size": 8,
        },
        "model": {"name": "FNO", **NET, "n_modes": [4, 4]},
        "module": {"lr": 1e-2},
        "trainer": {"max_epochs": 2, "enable_progress_bar": False},
    }
    result = train(cfg, tmp_path / "run")
    assert 0 < result["test_l2"] < 1.5
    # what the stream's solvers spent is recorded beside the training cost
    gen = json.loads((tmp_path / "run" / "metrics.json").read_text())["cost"]["generation"]
    assert gen["streams_counted"] == 1 and gen["consumed"]["n_samples"] == 64  # 2 x 4 x 8
    assert gen["streamed"]["n_samples"] >= 64 and gen["streamed"]["methods"].keys() == {"direct"}
    assert gen["streamed"]["wall_seconds_total"] >= gen["consumed"]["wall_seconds_total"] > 0
    assert gen["normalize"]["n_samples"] >= 64  # norm_samples (default 64) and the probe
    logs = (tmp_path / "run" / "logs" / "metrics.csv").read_text()
    assert "val_l2" in logs
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    (rank_state,) = ckpt["OnlineDataModule"]["ranks"]
    assert rank_state["restorable"] and rank_state["feeder"]["next_k"] >= 64


def test_online_errors_are_one_line(darcy_dir):
    with pytest.raises(ValueError, match="unknown buffer"):
        OnlineDataModule("darcy", TINY, buffer="lifo")
    with pytest.raises(ValueError, match="not both"):
        train({"data": {"online": {"problem": "darcy"}, "train": "x.h5"}}, "unused")
    dm = OnlineDataModule("darcy", {"resolution": 8, "solver": "direct"},
                          val=darcy_dir / "test.h5")
    with pytest.raises(ValueError, match="same problem options") as err:
        dm.setup("fit")
    assert "\n" not in str(err.value)


class KillDaskWorker(Callback):
    """SIGKILL one Dask worker process at a given step (the cluster restarts it)."""

    def __init__(self, dm, step):
        self.dm, self.step, self.killed = dm, step, False

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == self.step and not self.killed:
            pid = next(iter(self.dm.client.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)
            self.killed = True


class Crash(Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("trainer killed")


def online_dm(client):
    return OnlineDataModule("darcy", TINY, batch_size=4, batches_per_epoch=4, buffer="fifo",
                            capacity=16, scheduler=client, chunk=2, record_indices=True)


def fit_online(tmp_path, client, epochs, callbacks=(), ckpt_path=None):
    L.seed_everything(0, verbose=False)
    dm = online_dm(client)
    module = OperatorModule(FNO(in_channels=1, out_channels=1, **NET), lr=1e-2)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, callbacks=list(callbacks))
    trainer.fit(module, dm, ckpt_path=ckpt_path)
    return dm.train_set.index_log, module


def test_resume_mid_epoch_after_a_worker_kill_continues_the_same_stream(tmp_path, client):
    ref_log, ref = fit_online(tmp_path / "a", client, epochs=3)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", filename="{step}", every_n_train_steps=6,
                           save_top_k=-1)
    holder = {}

    def run_b():
        L.seed_everything(0, verbose=False)
        dm = holder["dm"] = online_dm(client)
        kill = KillDaskWorker(dm, step=3)
        holder["kill"] = kill
        module = OperatorModule(FNO(in_channels=1, out_channels=1, **NET), lr=1e-2)
        trainer = L.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[ckpt, kill, Crash(step=7)])
        trainer.fit(module, dm)

    with pytest.raises(RuntimeError, match="trainer killed"):
        run_b()
    assert holder["kill"].killed
    head = holder["dm"].train_set.index_log[:6]  # the six steps before the checkpoint
    tail_log, resumed = fit_online(tmp_path / "c", client, epochs=3,
                                   ckpt_path=tmp_path / "ck" / "step=6.ckpt")
    assert head + tail_log == ref_log
    assert sorted(sum(ref_log, [])) == list(range(48))
    for p, q in zip(ref.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_dataloader_workers_draw_disjoint_streams(tmp_path, client):
    L.seed_everything(0, verbose=False)
    dm = OnlineDataModule("darcy", TINY, batch_size=4, batches_per_epoch=6, buffer="fifo",
                          capacity=16, scheduler=client, num_workers=2,
                          tee=tmp_path / "tee.h5")
    module = OperatorModule(FNO(in_channels=1, out_channels=1, **NET), lr=1e-2)
    monitor = DataWaitMonitor()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, callbacks=[monitor])
    trainer.fit(module, dm)
    assert monitor.n_batches == 6 and 0 <= monitor.fraction < 1
    seen = {}
    for w in range(2):
        with h5py.File(tmp_path / f"tee.stream{w}of2.h5") as f:
            seen[w] = f["sample"][...]
    assert len(seen[0]) >= 12 and len(seen[1]) >= 12  # 3 batches of 4 from each worker
    assert np.all(seen[0] % 2 == 0) and np.all(seen[1] % 2 == 1)
    assert len(np.unique(seen[0])) == len(seen[0])


SCRIPT = Path(__file__).with_name("ddp_online_script.py")


@pytest.mark.slow
def test_ddp_two_cpu_ranks_draw_disjoint_samples_and_resume(tmp_path):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}

    def run(*args):
        subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), *args], check=True,
                       env=env, timeout=300, cwd=tmp_path)

    run("1")
    run("2", "--resume")
    logs = {(r, k): json.loads((tmp_path / f"log_{k}_rank{r}.json").read_text())
            for r in range(2) for k in ("1", "2")}
    for r in range(2):
        flat = sum(logs[r, "1"] + logs[r, "2"], [])
        assert flat == list(range(r, 2 * len(flat), 2))  # rank r: r, r+2, ... without a gap
    assert len(sum(logs[0, "2"], [])) == len(sum(logs[0, "1"], [])) == 3 * 4
