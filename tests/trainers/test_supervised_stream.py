"""A generator worker SIGKILLed mid-training on a busy machine: training goes on, no sample lost."""

import logging
import os
import signal

import lightning as L
import pytest
from lightning.pytorch.callbacks import Callback

from pdeml.datasets.online import OnlineDataModule
from pdeml.operators import FNO
from pdeml.trainers import OperatorModule

distributed = pytest.importorskip("distributed")

TINY = {"resolution": 16, "solver": "direct"}
NET = {"n_modes": (4, 4), "hidden_channels": 8, "n_layers": 2}


class KillOnlyWorker(Callback):
    """At ``step``, SIGKILL the cluster's only worker; ``nanny_restarts=False`` first tells
    its nanny not to restart it (a nanny that gives up, whatever its restart time)."""

    def __init__(self, dm, step, nanny_restarts):
        self.dm, self.step, self.nanny_restarts = dm, step, nanny_restarts
        self.killed, self.supervisor = None, None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step != self.step or self.killed is not None:
            return
        self.supervisor = self.dm.supervisor
        cluster = self.dm._cluster
        (pid,) = self.dm.client.run(os.getpid).values()
        if not self.nanny_restarts:
            for nanny in cluster.workers.values():
                nanny.close_gracefully(reason="test: the nanny gives up")
        os.kill(pid, signal.SIGKILL)
        self.killed = pid


def run(tmp_path, nanny_restarts, steps=16):
    L.seed_everything(0, verbose=False)
    dm = OnlineDataModule("darcy", TINY, batch_size=4, batches_per_epoch=steps, buffer="fifo",
                          capacity=8, chunk=2, n_workers=1, data_timeout=180.0,
                          worker_grace=2.0, record_indices=True)
    kill = KillOnlyWorker(dm, step=3, nanny_restarts=nanny_restarts)
    module = OperatorModule(FNO(in_channels=1, out_channels=1, **NET), lr=1e-2)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=tmp_path,
                        callbacks=[kill])
    trainer.fit(module, dm)
    return dm, kill


@pytest.mark.slow
@pytest.mark.parametrize("nanny_restarts", [False, True])
def test_killing_the_only_worker_keeps_training_and_every_sample(
        tmp_path, burnt_core, caplog, nanny_restarts):
    caplog.set_level(logging.WARNING, logger="pdeml.stream")
    dm, kill = run(tmp_path, nanny_restarts)
    assert kill.killed is not None and burnt_core.poll() is None
    assert sorted(sum(dm.train_set.index_log, [])) == list(range(16 * 4))  # count intact
    stats = kill.supervisor.stats
    assert stats["lost"] >= 1 and stats["rejoined"] >= 1
    if not nanny_restarts:  # only a replacement started by the supervisor brings it back
        assert stats["replaced"] == 1
        assert any("starting 1 new worker" in r.getMessage() for r in caplog.records)
    assert any("lost" in r.getMessage() for r in caplog.records)
