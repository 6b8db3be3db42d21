"""One-step / trajectory datasets, parameter channels, rollouts and error-vs-step curves."""

import numpy as np
import pytest
import torch

from pdeml.datasets import DatasetError, H5Dataset, PDEDataModule, StepDataset, TrajectoryDataset
from pdeml.datasets.schema import write_arrays
from pdeml.solvers.problems.base import Variable
from pdeml.trainers.rollout import evaluate_rollout, next_frame, rollout

N, T, H, W = 3, 6, 4, 5


@pytest.fixture(scope="module")
def series_file(tmp_path_factory):
    """u[i, t] = 100 i + t and v = -u everywhere: the next frame is the last one plus 1 / -1."""
    base = 100.0 * np.arange(N)[:, None] + np.arange(T)[None, :]
    u = np.broadcast_to(base[:, :, None, None], (N, T, H, W)).astype(np.float32)
    mask = np.ones((N, H, W), np.int8)
    mask[:, 0, 0] = 0
    coords = {"time": np.arange(T, dtype=float), "y": np.arange(H) / H, "x": np.arange(W) / W}
    field = Variable(("time", "y", "x"))
    variables = {"u": (field, u), "v": (field, -u),
                 "mask": (Variable(("y", "x"), dtype="i1"), mask),
                 "reynolds": (Variable(()), np.array([50.0, 100.0, 150.0]))}
    attrs = {"input_vars": '["u[0]", "v[0]", "mask"]', "output_vars": '["u[-1]", "v[-1]"]'}
    return write_arrays(tmp_path_factory.mktemp("ts") / "series.h5", coords, variables, attrs)


def test_step_pairs_cover_every_transition(series_file):
    ds = StepDataset(series_file, ["u", "v"], ["mask", "reynolds"], history=2)
    assert len(ds) == N * (T - 2) and ds.in_channels == 2 * 2 + 2 and ds.out_channels == 2
    x, y = ds[(T - 2) + 1]  # sample 1, newest input frame t = 2
    assert x.shape == (6, H, W) and y.shape == (2, H, W)
    np.testing.assert_array_equal(x[:4, 1, 1], [101, -101, 102, -102])  # frames 1, 2 (u, v)
    assert x[4, 0, 0] == 0 and x[4, 1, 1] == 1  # mask
    assert torch.all(x[5] == 100.0)  # Reynolds number as a constant channel
    np.testing.assert_array_equal(y[:, 2, 3], [103, -103])
    _, dy = StepDataset(series_file, ["u", "v"], history=2, residual=True)[(T - 2) + 1]
    assert torch.all(dy[0] == 1) and torch.all(dy[1] == -1)
    assert len(StepDataset(series_file, ["u"], indices=[2])) == T - 1


def test_trajectories_and_errors(series_file, tmp_path):
    traj = TrajectoryDataset(series_file, ["u", "v"], ["reynolds"])
    x0, y = traj[2]
    assert x0.shape == (3, H, W) and y.shape == (T - 1, 2, H, W) and y[-1, 0, 0, 0] == 205
    with pytest.raises(DatasetError, match="no time axis"):
        StepDataset(series_file, ["mask"])
    with pytest.raises(DatasetError, match="no variable p"):
        StepDataset(series_file, ["u", "p"])
    with pytest.raises(DatasetError, match="leave nothing to predict"):
        StepDataset(series_file, ["u"], history=T)
    with pytest.raises(ValueError, match="history must be a positive integer"):
        StepDataset(series_file, ["u"], history=0)


def test_parameters_as_channels_in_the_plain_reader(series_file):
    ds = H5Dataset(series_file, ["u[0]", "reynolds", "mask"], ["u[-1]"], in_memory=True)
    lazy = H5Dataset(series_file, ["u[0]", "reynolds", "mask"], ["u[-1]"])
    x, y = ds[2]
    assert ds.in_channels == 3 and torch.all(x[1] == 150.0) and y[0, 0, 0] == 205
    assert torch.equal(lazy[2][0], x)
    with pytest.raises(DatasetError, match="no selected variable lives on a grid"):
        H5Dataset(series_file, ["reynolds"], ["reynolds"])


def test_rollout_feeds_predictions_back_and_keeps_static_channels():
    x0 = torch.cat([torch.full((2, 1, 3, 3), 1.0), torch.full((2, 1, 3, 3), 2.0),
                    torch.full((2, 1, 3, 3), 7.0)], dim=1)  # history 2 of one field, 1 static
    seen = []

    def model(x):
        seen.append(x[:, 2].clone())
        return x[:, 0:1] + x[:, 1:2]  # Fibonacci on the two frames

    out = rollout(model, x0, 5, n_fields=1, history=2)
    assert out.shape == (2, 5, 1, 3, 3)
    np.testing.assert_array_equal(out[0, :, 0, 0, 0], [3, 5, 8, 13, 21])
    assert all(torch.all(s == 7.0) for s in seen)
    with pytest.raises(ValueError, match="expected 1"):
        rollout(lambda x: x, x0, 1, n_fields=1, history=2)


def test_error_versus_step_of_a_biased_model(series_file):
    traj = TrajectoryDataset(series_file, ["u", "v"])
    eps = 0.125

    def exact(x):
        return x[:, :2] + torch.tensor([1.0, -1.0]).view(1, 2, 1, 1)

    def biased(x):
        return exact(x) + eps

    assert evaluate_rollout(exact, traj)["metrics"]["max_error"] == 0.0
    free = evaluate_rollout(biased, traj, batch_size=2, keep=2)
    forced = evaluate_rollout(biased, traj, teacher_forcing=True)
    steps = np.arange(1, T)
    np.testing.assert_allclose(free["metrics"]["per_step"]["rmse"], eps * steps, rtol=1e-12)
    np.testing.assert_allclose(forced["metrics"]["per_step"]["rmse"], eps, rtol=1e-12)
    assert free["pred"].shape == (2, T - 1, 2, H, W) and free["metrics"]["n_samples"] == N
    short = evaluate_rollout(biased, traj, n_steps=2)["metrics"]["per_step"]["rmse"]
    np.testing.assert_allclose(short, [eps, 2 * eps])
    with pytest.raises(ValueError, match="n_steps must be in"):
        evaluate_rollout(biased, traj, n_steps=T)


def test_residual_models_step_by_increments(series_file):
    traj = TrajectoryDataset(series_file, ["u", "v"], residual=True)

    def increment(x):
        return torch.tensor([1.0, -1.0]).view(1, 2, 1, 1).expand(len(x), 2, H, W)

    assert evaluate_rollout(increment, traj)["metrics"]["max_error"] == 0.0
    step = next_frame(increment, n_fields=2, history=1, residual=True)
    assert torch.all(step(traj[0][0][None])[0, 0] == 1.0)


def test_datamodule_rollout_mode_splits_by_sample(series_file):
    dm = PDEDataModule(series_file, val_fraction=0.34, rollout={"fields": ["u", "v"],
                                                               "static": ["reynolds"]})
    dm.setup("fit")
    assert len(dm.train_set) == 2 * (T - 1) and len(dm.val_set) == T - 1
    assert dm.in_channels == 3 and dm.out_channels == 2
    assert not set(dm.train_set.indices) & set(dm.val_set.indices)
    with pytest.raises(DatasetError, match="data.rollout takes"):
        PDEDataModule(series_file, rollout={"field": ["u"]})
