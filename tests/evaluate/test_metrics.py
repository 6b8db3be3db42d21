"""Metrics on inputs with known answers, and batching invariance of the float64 sums."""

import numpy as np
import pytest
import torch

from pdeml.evaluate import MetricAccumulator, evaluate_model
from pdeml.metrics import band_weights, radial_wavenumber


def mode(kx, ky, n=32):
    y, x = np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij")
    return torch.from_numpy(np.cos(2 * np.pi * (kx * x + ky * y)))


@pytest.mark.parametrize("k, band", [((3, 0), "low"), ((4, 0), "low"), ((0, 5), "mid"),
                                     ((3, 4), "mid"), ((12, 0), "mid"), ((8, 9), "mid"),
                                     ((13, 0), "high"), ((5, 12), "high"), ((10, 10), "high")])
def test_single_fourier_mode_lands_in_its_band(k, band):
    target = torch.zeros(2, 1, 32, 32, dtype=torch.float64)
    pred = target + 0.7 * mode(*k)
    acc = MetricAccumulator(["w"])
    acc.update(pred, target)
    m = acc.compute()
    assert m["rmse"] == pytest.approx(0.7 / np.sqrt(2), rel=1e-12)
    for name in ("low", "mid", "high"):
        expected = m["rmse"] if name == band else 0.0
        assert m[f"frmse_{name}"] == pytest.approx(expected, abs=1e-12), name


def test_bands_partition_the_spectrum_and_follow_pdebench_edges():
    k = radial_wavenumber((32, 32))
    assert k[3, 4] == 5 and k[0, 4] == 4 and k[0, 13] == 13 and k[-1, 0] == 1
    w = band_weights((32, 32))
    assert torch.equal(w.sum(0), torch.ones(32, 32))  # every bin in exactly one band


def test_constant_error_gives_exact_pointwise_metrics():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(5, 3, 2, 16, 12, generator=g, dtype=torch.float64)
    offset = torch.tensor([0.25, -2.0], dtype=torch.float64).view(1, 1, 2, 1, 1)
    acc = MetricAccumulator(["u", "v"])
    acc.update(target + offset, target, time_axis=True)
    m = acc.compute()
    for name, c in (("u", 0.25), ("v", 2.0)):
        per = m["per_variable"][name]
        for key in ("rmse", "mae", "max_error", "brmse", "frmse_low"):
            assert per[key] == pytest.approx(c, rel=1e-12), (name, key)
        assert per["frmse_mid"] == pytest.approx(0, abs=1e-12)
        assert per["mse"] == pytest.approx(c * c, rel=1e-12)
    assert m["mse"] == pytest.approx((0.25**2 + 4.0) / 2, rel=1e-12)
    assert m["max_error"] == pytest.approx(2.0) and m["mae"] == pytest.approx(1.125)


def test_relative_errors_of_a_scaled_prediction():
    target = torch.randn(7, 2, 10, 10, generator=torch.Generator().manual_seed(1)) + 3
    acc = MetricAccumulator()
    acc.update(1.1 * target, target)
    m = acc.compute()
    for key in ("rel_l2", "rel_l2_median", "rel_l2_max", "nrmse"):
        assert m[key] == pytest.approx(0.1, rel=1e-5)
    assert m["nmse"] == pytest.approx(0.01, rel=1e-5)
    assert list(m["per_variable"]) == ["c0", "c1"]


def test_error_versus_step_curves():
    target = torch.zeros(3, 4, 1, 8, 8)
    steps = torch.arange(1.0, 5.0).view(1, 4, 1, 1, 1)
    acc = MetricAccumulator(["h"])
    acc.update(target + steps, target, time_axis=True)
    curves = acc.compute()["per_step"]
    np.testing.assert_allclose(curves["rmse"], [1, 2, 3, 4], rtol=1e-12)
    np.testing.assert_allclose(curves["max_error"], [1, 2, 3, 4])
    ds = acc.to_xarray()
    assert ds["rmse"].dims == ("step", "variable")
    np.testing.assert_allclose(ds["rmse"].sel(variable="h").values, [1, 2, 3, 4])


def reference(pred, target):
    """One-shot float64 numpy definitions, written independently of the accumulator."""
    p, t = pred.double().numpy(), target.double().numpy()
    e = p - t
    edge = np.zeros(p.shape[2:], bool)
    edge[[0, -1], :] = True
    edge[:, [0, -1]] = True
    spec = np.abs(np.fft.fft2(e)) ** 2 / e[0, 0].size
    k = radial_wavenumber(p.shape[2:])
    n = e.size
    per_sample = np.sqrt((e**2).sum((1, 2, 3)) / (t**2).sum((1, 2, 3)))
    return {
        "mse": (e**2).mean(), "mae": np.abs(e).mean(), "max_error": np.abs(e).max(),
        "nmse": (e**2).sum() / (t**2).sum(), "rel_l2": per_sample.mean(),
        "nrmse": np.sqrt((e**2).sum((2, 3)) / (t**2).sum((2, 3))).mean(),
        "brmse": np.sqrt((e[..., edge] ** 2).mean()),
        "frmse_low": np.sqrt(spec[..., k <= 4].sum() / n),
        "frmse_high": np.sqrt(spec[..., k >= 13].sum() / n),
    }


@pytest.mark.parametrize("batch", [1, 3, 64])
def test_batched_float64_accumulation_equals_one_shot(batch):
    g = torch.Generator().manual_seed(2)
    # float32 data with a large offset: float32 running sums would lose ~1e-7 relative
    target = (1e3 + torch.randn(64, 2, 32, 32, generator=g)).float()
    pred = (target + 0.01 * torch.randn(64, 2, 32, 32, generator=g)).float()
    acc = MetricAccumulator()
    for i in range(0, 64, batch):
        acc.update(pred[i : i + batch], target[i : i + batch])
    m, ref = acc.compute(), reference(pred, target)
    for key, value in ref.items():
        assert m[key] == pytest.approx(value, rel=1e-12), key
    bands = sum(m[f"frmse_{b}"] ** 2 for b in ("low", "mid", "high"))
    assert bands == pytest.approx(m["mse"], rel=1e-12)  # Parseval
    assert m["n_samples"] == 64


def test_bad_input_is_reported():
    acc = MetricAccumulator(["u"])
    with pytest.raises(ValueError, match="differ in shape"):
        acc.update(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="1 variable names for 2 channels"):
        acc.update(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
    acc = MetricAccumulator()
    acc.update(torch.zeros(1, 2, 4, 4), torch.ones(1, 2, 4, 4))
    with pytest.raises(ValueError, match="does not match"):
        acc.update(torch.zeros(1, 2, 8, 8), torch.ones(1, 2, 8, 8))
    with pytest.raises(ValueError, match="no samples"):
        MetricAccumulator().compute()


def test_evaluate_model_names_channels_by_output_selectors(darcy_dir):
    from pdeml.datasets import H5Dataset

    ds = H5Dataset(darcy_dir / "test.h5", ["a"], ["u"], in_memory=True)
    m = evaluate_model(lambda x: torch.zeros_like(x), ds, batch_size=3)
    assert list(m["per_variable"]) == ["u"]
    assert m["rel_l2"] == pytest.approx(1.0) and m["nmse"] == pytest.approx(1.0)
