"""The Well's metrics in pdeml: VRMSE and the binned spectral errors.

Hand-made arrays whose answers are worked out below, then (with the ``well`` extra) The
Well's own ``VRMSE`` and ``binned_spectral_mse`` on random arrays, to 1e-6 relative.
"""

import importlib.metadata
from types import SimpleNamespace

import h5netcdf
import numpy as np
import pytest
import torch

from pdeml.datasets import TrajectoryDataset
from pdeml.datasets.schema import create_layout
from pdeml.metrics import (
    MetricAccumulator,
    binned_spectral_mse,
    vrmse,
    well_bin_edges,
    well_bin_weights,
)
from pdeml.solvers.problems.base import Variable
from pdeml.trainers.rollout import evaluate_rollout

N = 12
n = np.arange(N)


def wave(k: int) -> torch.Tensor:
    return torch.from_numpy(np.cos(2 * np.pi * k * n / N))


def test_vrmse_by_hand():
    y = torch.tensor([0.0, 1.0, 2.0, 3.0])  # mean 1.5, variance (2.25+0.25+0.25+2.25)/3
    assert vrmse(y + 1, y, 1).item() == pytest.approx(np.sqrt(1 / (5 / 3 + 1e-7)), rel=1e-12)
    flat = torch.full((8,), 3.0)  # zero variance: eps alone in the denominator
    assert vrmse(flat + 1, flat, 1).item() == pytest.approx(1 / np.sqrt(1e-7), rel=1e-12)
    # The Well's VRMSE ignores eps (its issue #75); pdeml's uses it
    assert vrmse(flat + 1, flat, 1, eps=10.0).item() == pytest.approx(np.sqrt(0.1), rel=1e-12)


def test_bins_and_binned_spectral_errors_by_hand():
    # N = 12: edges 0, (2 pi/12) 6^(1/3), (2 pi/12) 6^(2/3), pi + 1e-6; angular wavenumbers
    # 2 pi k / 12 put |k| = 0, 1 in the low bin, 2, 3 in the mid one, 4, 5, 6 in the high one
    edges = well_bin_edges((N,)).double().numpy()
    np.testing.assert_allclose(edges, [0, np.pi / 6 * 6 ** (1 / 3), np.pi / 6 * 6 ** (2 / 3),
                                       np.pi + 1e-6], rtol=1e-6)
    k = np.abs(np.fft.fftfreq(N, 1 / N))
    bins = well_bin_weights((N,)).numpy()
    for j, members in enumerate(([0, 1], [2, 3], [4, 5, 6])):
        assert sorted(set(k[bins[j] > 0].astype(int))) == members
    target = 2 + wave(3) + wave(5)  # energy 4 (mean), 0.5 (k = 3), 0.5 (k = 5)
    pred = target + wave(2)  # error: mode 2 only, mean square 0.5
    mse, nmse = binned_spectral_mse(pred, target, 1)
    np.testing.assert_allclose(mse.numpy(), [0, 0.5, 0], atol=1e-15)
    np.testing.assert_allclose(nmse.numpy(), [0, 0.5 / (0.5 + 1e-7), 0], atol=1e-15)
    # unbiased variance of the target: (0.5 + 0.5) * 12 / 11
    assert vrmse(pred, target, 1).item() == pytest.approx(np.sqrt(0.5 / (12 / 11 + 1e-7)))


def test_accumulator_reports_them_per_step_and_masked():
    target = torch.stack([2 + wave(3) + wave(5), 1 + wave(4)])[None, :, None]  # (1, 2, 1, N)
    pred = target + torch.stack([wave(2), 2 * wave(1)])[None, :, None]
    acc = MetricAccumulator(["u"])
    acc.update(pred, target, time_axis=True)
    m = acc.compute()
    per_step = vrmse(pred, target, 1)[0, :, 0].numpy()
    assert m["vrmse"] == pytest.approx(per_step.mean(), rel=1e-12)
    np.testing.assert_allclose(m["per_step"]["vrmse"], per_step, rtol=1e-12)
    np.testing.assert_allclose(m["per_step"]["bsmse_low"], [0, 2.0], atol=1e-15)
    assert m["bsmse_mid"] == pytest.approx(0.25) and m["bsnmse_mid"] == pytest.approx(
        (0.5 / (0.5 + 1e-7) + 0) / 2)
    mask = torch.ones(1, N)
    mask[0, :3] = 0  # solid: neither error nor variance of those points
    acc = MetricAccumulator(["u"])
    acc.update(pred[:, 0], target[:, 0], mask=mask)
    fluid = vrmse(pred[0, 0, 0, 3:], target[0, 0, 0, 3:], 1).item()
    assert acc.compute()["vrmse"] == pytest.approx(fluid, rel=1e-12)


def test_batching_does_not_change_them():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(6, 2, 10, 12, generator=g, dtype=torch.float64)
    x = y + 0.1 * torch.randn(6, 2, 10, 12, generator=g, dtype=torch.float64)
    whole, parts = MetricAccumulator(), MetricAccumulator()
    whole.update(x, y)
    for i in range(0, 6, 4):
        parts.update(x[i : i + 4], y[i : i + 4])
    a, b = whole.compute(), parts.compute()
    for key in ("vrmse", "bsmse_low", "bsnmse_high"):
        assert a[key] == pytest.approx(b[key], rel=1e-12)
    assert a["vrmse"] == pytest.approx(vrmse(x, y, 2).mean().item(), rel=1e-12)
    bins = sum(a[f"bsmse_{b}"] for b in ("low", "mid", "high"))
    assert bins == pytest.approx(a["mse"], rel=1e-12)  # Parseval


@pytest.mark.parametrize("shape", [(16,), (12, 20), (64, 64), (8, 6, 10), (16, 16, 16)])
def test_equal_to_the_wells_own_functions(shape):
    metrics = pytest.importorskip("the_well.benchmark.metrics")
    g = torch.Generator().manual_seed(len(shape))
    y = 3 + torch.randn(2, 3, *shape, generator=g, dtype=torch.float64)
    x = y + 0.2 * torch.randn(2, 3, *shape, generator=g, dtype=torch.float64)
    meta = SimpleNamespace(n_spatial_dims=len(shape))
    xl, yl = x.movedim(1, -1), y.movedim(1, -1)  # The Well: channels last
    theirs = metrics.VRMSE()(xl, yl, meta)
    ours = vrmse(x, y, len(shape))
    assert torch.allclose(ours, theirs.movedim(-1, 1), rtol=1e-6, atol=0)
    spectral = metrics.binned_spectral_mse()(xl, yl, meta)
    mse, nmse = binned_spectral_mse(x, y, len(shape))
    for j in range(3):
        for key, mine in (("mse", mse), ("nmse", nmse)):
            ref = spectral[f"spectral_error_{key}_per_bin_{j}"].movedim(-1, 1)
            assert torch.allclose(mine[..., j], ref, rtol=1e-6, atol=0), (key, j)
    if importlib.metadata.version("the-well") == "1.2.0":  # issue #75: eps dropped there
        flat = torch.full((1, 8, 1), 3.0, dtype=torch.float64)  # (batch, x, channel)
        one = SimpleNamespace(n_spatial_dims=1)
        assert metrics.VRMSE.eval(flat + 1, flat, one, eps=10.0).item() == pytest.approx(
            vrmse(flat.mT + 1, flat.mT, 1).item())  # its eps=10 gives our eps=1e-7


def test_rollout_metrics_include_them(tmp_path):
    path = tmp_path / "series.h5"
    rng = np.random.default_rng(0)
    u = rng.standard_normal((3, 4, 6, 8))
    with h5netcdf.File(path, "w") as f:
        out = create_layout(f, 3, {"time": np.arange(4.0), "y": np.arange(6.0),
                                   "x": np.arange(8.0)}, {"u": Variable(("time", "y", "x"))})
        out["u"][...] = u
    ds = TrajectoryDataset(path, ["u"])
    result = evaluate_rollout(lambda x: 0.5 * x, ds)["metrics"]
    truth = torch.from_numpy(u[:, 1:, None]).float()
    pred = torch.from_numpy(u[:, :1, None] * 0.5 ** np.arange(1, 4)[None, :, None, None,
                                                                     None]).float()
    expected = vrmse(pred, truth, 2)  # (sample, step, channel)
    np.testing.assert_allclose(result["per_step"]["vrmse"], expected.mean((0, 2)), rtol=1e-6)
    assert {"bsmse_low", "bsnmse_high"} <= set(result)
