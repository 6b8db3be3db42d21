"""DDP (two gloo CPU ranks): test metrics are the whole test set's, written once by rank 0."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from pdeml.datasets import generate_dataset
from pdeml.datasets.reader import H5Dataset
from pdeml.evaluate import load_surrogate
from pdeml.solvers.problems import DarcyFlow
from pdeml.trainers.losses import LpLoss


@pytest.mark.slow
def test_two_rank_test_metrics_equal_the_single_process_value(tmp_path, darcy_dir):
    # 7 test samples: the ranks get 4 and 3, so a padded sampler or a per-rank mean would
    # both show (Lightning's default pads rank 1 with a repeat of sample 0).
    test = generate_dataset(DarcyFlow(resolution=16), tmp_path / "d", {"test": 7}, seed=5,
                            progress=False)["test"]
    run = tmp_path / "run"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    sets = [f"data.train={darcy_dir / 'train.h5'}", f"data.test={test}", "data.batch_size=2",
            "model.n_modes=[4,4]", "model.hidden_channels=8", "model.n_layers=2",
            "trainer.max_epochs=1", "trainer.devices=2", "trainer.strategy=ddp",
            "trainer.enable_progress_bar=false"]
    cmd = [sys.executable, "-m", "pdeml.cli", "train", "--out", str(run)]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert sorted(p.name for p in run.iterdir() if p.suffix == ".json") == ["metrics.json"]

    surrogate, _ = load_surrogate(run)  # the best checkpoint, as trainer.test used
    data = H5Dataset(test, ["a"], ["u"])
    x = torch.stack([data[i][0] for i in range(len(data))])
    y = torch.stack([data[i][1] for i in range(len(data))])
    with torch.no_grad():
        pred = surrogate(x)
    single_l2 = float(LpLoss(2.0, relative=True, reduction="none")(pred, y).mean())
    single_mse = float(torch.mean((pred - y) ** 2))
    np.testing.assert_allclose(metrics["test_l2"], single_l2, rtol=1e-5)
    np.testing.assert_allclose(metrics["test_mse"], single_mse, rtol=1e-5)
