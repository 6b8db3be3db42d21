"""CFDBench's metric profile and pdeml's masked pooled metrics on hand-computed arrays."""

import numpy as np
import pytest
import torch

from pdeml.metrics import CFDBenchScores, MetricAccumulator


def pairs():
    """Three (u, v) pairs on a 1 x 2 grid; v carries a large error CFDBench must ignore."""
    y_u = torch.tensor([[1.0, 1.0], [0.0, 2.0], [1.0, 0.0]])
    p_u = torch.tensor([[2.0, 1.0], [0.0, 2.0], [1.0, 3.0]])
    y = torch.stack([y_u, torch.zeros_like(y_u)], 1)[:, :, None]  # (3, 2, 1, 2)
    p = torch.stack([p_u, 100 + torch.zeros_like(p_u)], 1)[:, :, None]
    return p, y


def test_cfdbench_profile_is_a_mean_over_batches_of_u_only():
    p, y = pairs()
    scores = CFDBenchScores(batch_size=2)
    scores.update(p[:1], y[:1])  # pairs may arrive in any chunking; batches are of 2
    scores.update(p[1:], y[1:])
    got = scores.compute()
    # batch A = pairs 0, 1: sum e^2 = 1, |e| = 1, y^2 = 6 over 4 points; batch B = pair 2:
    # e^2 = 9, |e| = 3, y^2 = 1 over 2 points
    assert got["mse"] == pytest.approx((1 / 4 + 9 / 2) / 2, rel=1e-12)
    assert got["mae"] == pytest.approx((1 / 4 + 3 / 2) / 2, rel=1e-12)
    assert got["nmse"] == pytest.approx(((1 / 4) / (6 / 4) + (9 / 2) / (1 / 2)) / 2, rel=1e-12)
    assert got["rmse"] == pytest.approx((0.5 + np.sqrt(4.5)) / 2, rel=1e-12)
    assert (got["n_pairs"], got["n_batches"]) == (3, 2)
    # pdeml's pooled u metrics of the same arrays differ, as defined
    acc = MetricAccumulator(["u", "v"])
    acc.update(p, y)
    u = acc.compute()["per_variable"]["u"]
    assert u["mse"] == pytest.approx(10 / 6, rel=1e-12)
    assert u["nmse"] == pytest.approx(10 / 7, rel=1e-12)
    assert u["mse"] != pytest.approx(got["mse"], rel=1e-3)


def test_cfdbench_mask_zeroes_solid_error_but_keeps_solid_in_the_count():
    p, y = pairs()
    mask = torch.tensor([[1, 1], [1, 1], [1, 0]])[:, None]  # pair 2's error cell is solid
    scores = CFDBenchScores(batch_size=2)
    scores.update(p, y, mask)
    got = scores.compute()
    assert got["mse"] == pytest.approx((1 / 4 + 0 / 2) / 2, rel=1e-12)
    assert got["nmse"] == pytest.approx(((1 / 4) / (6 / 4) + 0.0) / 2, rel=1e-12)
    # batch size 1 (CFDBench's final test call): a mean over single pairs
    one = CFDBenchScores(batch_size=1)
    one.update(p, y)
    assert one.compute()["mse"] == pytest.approx((1 / 2 + 0 + 9 / 2) / 3, rel=1e-12)


def test_pooled_metrics_divide_by_fluid_points_only():
    p, y = pairs()
    mask = torch.tensor([[1, 1], [1, 1], [1, 0]])[:, None]
    acc = MetricAccumulator(["u", "v"])
    acc.update(p, y, mask=mask)
    m = acc.compute()
    u, v = m["per_variable"]["u"], m["per_variable"]["v"]
    assert u["mse"] == pytest.approx(1 / 5, rel=1e-12)  # 5 fluid points, one error of 1
    assert u["mae"] == pytest.approx(1 / 5, rel=1e-12) and u["max_error"] == 1.0
    assert v["mse"] == pytest.approx(100.0**2, rel=1e-12)
    assert u["frmse_low"] ** 2 + u["frmse_mid"] ** 2 + u["frmse_high"] ** 2 == \
        pytest.approx(u["mse"], rel=1e-12)
    unmasked = MetricAccumulator(["u", "v"])
    unmasked.update(p, y)
    assert unmasked.compute()["per_variable"]["u"]["mse"] == pytest.approx(10 / 6)
    with pytest.raises(ValueError, match="no fluid"):
        MetricAccumulator().update(p, y, mask=torch.zeros(3, 1, 2))


def test_padded_steps_of_shorter_trajectories_are_not_scored():
    target = torch.zeros(2, 3, 1, 4, 4, dtype=torch.float64)
    pred = target + 1.0
    pred[1, 1:] = 1e6  # the padding of a 1-step case: must not count
    acc = MetricAccumulator(["u"])
    acc.update(pred, target, time_axis=True, n_steps=torch.tensor([3, 1]))
    m = acc.compute()
    assert m["mse"] == pytest.approx(1.0, rel=1e-12) and m["max_error"] == 1.0
    assert m["per_step"]["rmse"] == pytest.approx([1.0, 1.0, 1.0], rel=1e-12)
    assert m["brmse"] == pytest.approx(1.0, rel=1e-12)


def test_cfdbench_scores_pool_u_and_v_when_asked():
    """CFDBench's grid models (FNO, U-Net, ResNet: ``out_chan=2``) are scored on u and v in
    one mean over every element of the batch, v's error included."""
    p, y = pairs()
    scores = CFDBenchScores(batch_size=2, channels=(0, 1))
    scores.update(p, y)
    got = scores.compute()
    # batch A = pairs 0, 1: e^2 = 1 (u) + 4 * 100^2 (v), y^2 = 6, over 2 x 2 x 2 = 8 points;
    # batch B = pair 2: e^2 = 9 + 2 * 100^2, |e| = 3 + 200, y^2 = 1, over 4 points
    mse = ((1 + 40000) / 8 + (9 + 20000) / 4) / 2
    assert got["mse"] == pytest.approx(mse, rel=1e-12)
    assert got["mae"] == pytest.approx(((1 + 400) / 8 + (3 + 200) / 4) / 2, rel=1e-12)
    assert got["nmse"] == pytest.approx(((40001 / 8) / (6 / 8) + (20009 / 4) / (1 / 4)) / 2,
                                        rel=1e-12)
    with pytest.raises(ValueError, match="channels"):
        CFDBenchScores(channels=(2,)).update(p, y)
    with pytest.raises(ValueError, match="distinct"):
        CFDBenchScores(channels=(0, 0))
