"""generate -> train -> evaluate -> export -> predict, through the API and the CLI."""

import json

import numpy as np
import torch

from pdeml.cli import main
from pdeml.datasets import H5Dataset
from pdeml.evaluate import load_surrogate
from pdeml.export import load_exported
from pdeml.trainers import OperatorModule


def test_train_writes_run_and_metrics(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert {"test_l2", "test_mse", "checkpoint"} <= set(metrics)
    assert (trained_run / "checkpoints" / "best.ckpt").exists()
    assert (trained_run / "config.yaml").exists()


def test_checkpoint_round_trip_keeps_normalization_and_outputs(trained_run, darcy_dir):
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    a = OperatorModule.load_from_checkpoint(ckpt, weights_only=False).eval()
    b = OperatorModule.load_from_checkpoint(ckpt, weights_only=False).eval()
    assert bool(a.surrogate.in_normalizer.fitted)
    assert float(a.surrogate.out_normalizer.std) != 1.0  # statistics came from the data
    x = H5Dataset(darcy_dir / "test.h5", ["a"], ["u"])[0][0][None]
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_evaluate_cli_writes_metrics_and_figure(trained_run, capsys):
    assert main(["evaluate", str(trained_run), "--out", str(trained_run / "ev")]) == 0
    metrics = json.loads((trained_run / "ev" / "metrics.json").read_text())
    assert metrics["n_samples"] == 10 and 0 < metrics["rel_l2"] < 1.5
    assert (trained_run / "ev" / "samples.png").stat().st_size > 1000
    # The CLI metric agrees with the one Lightning logged during `trainer.test`.
    logged = json.loads((trained_run / "metrics.json").read_text())["test_l2"]
    assert abs(metrics["rel_l2"] - logged) < 1e-4


def test_export_matches_eager_and_has_dynamic_batch(trained_run, exported_model, darcy_dir):
    module, card = load_exported(exported_model)
    surrogate, _ = load_surrogate(trained_run)
    assert card["operator"]["name"] == "FNO" and card["grid"] == [16, 16]
    assert card["inputs"] == ["a"] and card["training_data"]["problem"] == "darcy"
    for batch in (1, 3, 7):
        x = torch.rand(batch, 1, 16, 16) * 9 + 3
        with torch.no_grad():
            assert torch.allclose(module(x), surrogate(x), atol=1e-5)


def test_predict_cli_on_hdf5_and_npy(exported_model, darcy_dir, tmp_path, trained_run):
    out = tmp_path / "pred.npy"
    assert main(["predict", str(exported_model), str(darcy_dir / "test.h5"), "--out", str(out),
                 "--batch-size", "4", "--no-progress"]) == 0
    pred = np.load(out)
    assert pred.shape == (10, 1, 16, 16)
    ds = H5Dataset(darcy_dir / "test.h5", ["a"], ["u"], in_memory=True)
    surrogate, _ = load_surrogate(trained_run)
    with torch.no_grad():
        ref = surrogate(torch.stack([ds[i][0] for i in range(10)])).numpy()
    np.testing.assert_allclose(pred, ref, atol=1e-5)
    np.save(tmp_path / "x.npy", np.stack([ds[i][0][0].numpy() for i in range(3)]))  # no channel
    assert main(["predict", str(exported_model), str(tmp_path / "x.npy"), "--out",
                 str(tmp_path / "p2.npy"), "--no-progress"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "p2.npy"), ref[:3], atol=1e-5)


def test_resume_continues_training(trained_run, tmp_path, darcy_dir):
    from conftest import TINY_RUN

    from pdeml.trainers.fit import train

    # Extending a run needs a schedule that does not depend on the step count.
    cfg = {**TINY_RUN, "data": {"train": str(darcy_dir / "train.h5"), "batch_size": 8},
           "module": {"lr": 1e-2, "scheduler": "none"}}
    train(cfg, tmp_path / "r")
    train({"trainer": {"max_epochs": 3}}, tmp_path / "r", resume=True)
    ckpt = torch.load(tmp_path / "r" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["epoch"] == 2  # epochs 0, 1 then one more after the resume


def test_demo_cli_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--epochs", "1", "--n-train", "24"]) == 0
    out = capsys.readouterr().out
    assert "test relative L2 =" in out
    assert (tmp_path / "demo" / "model" / "darcy_fno.pt2").exists()
    assert np.load(tmp_path / "demo" / "model" / "test_prediction.npy").shape == (100, 1, 64, 64)
