"""``checkpoints/last.ckpt`` holds the last epoch, also when the monitored metric stopped
improving (Lightning's ``save_last`` alone writes it only together with a new best)."""

from __future__ import annotations

import torch

from pdeml.trainers.fit import train


def test_last_checkpoint_is_the_last_epoch(darcy_dir, tmp_path):
    cfg = {"seed": 0, "data": {"train": str(darcy_dir / "train.h5"), "batch_size": 8,
                               "val_fraction": 0.25},
           "model": {"name": "FNO", "n_modes": [2, 2], "hidden_channels": 4, "n_layers": 1},
           "module": {"lr": 0.0},  # nothing changes: val_l2 is best after the first epoch only
           "trainer": {"max_epochs": 3, "enable_progress_bar": False}}
    train(cfg, tmp_path / "run")
    ckpts = tmp_path / "run" / "checkpoints"
    best = torch.load(ckpts / "best.ckpt", map_location="cpu", weights_only=False)
    last = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=False)
    assert best["epoch"] == 0
    assert last["epoch"] == 2 and last["global_step"] == 3 * best["global_step"]
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.ckpt", "last.ckpt"]
