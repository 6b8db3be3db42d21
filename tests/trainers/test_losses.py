import math

import pytest
import torch

from pdeml.trainers.losses import LpLoss, make_loss


def test_relative_l2_known_value():
    target = torch.ones(2, 1, 4, 4)
    pred = target.clone()
    pred[0] += 0.5  # 50% everywhere in sample 0, exact in sample 1
    loss = LpLoss(2.0, reduction="none")(pred, target)
    assert torch.allclose(loss, torch.tensor([0.5, 0.0]))
    assert math.isclose(float(LpLoss()(pred, target)), 0.25, rel_tol=1e-6)


def test_absolute_lp_is_resolution_independent():
    # The absolute norm approximates the continuous L2 norm on [0,1]^2:
    # sin(2 pi x) has norm 1/sqrt(2) at every resolution.
    for n in (16, 64):
        x = torch.arange(n) / n
        f = torch.sin(2 * math.pi * x).view(1, 1, 1, n).expand(1, 1, n, n)
        val = LpLoss(2.0, relative=False)(f, torch.zeros_like(f))
        assert abs(float(val) - 1 / math.sqrt(2)) < 1e-6


def test_shape_mismatch_and_bad_names():
    with pytest.raises(ValueError, match="differ"):
        LpLoss()(torch.zeros(1, 1, 4), torch.zeros(1, 1, 5))
    with pytest.raises(ValueError, match="unknown loss 'huber'"):
        make_loss("huber")
    with pytest.raises(ValueError, match="p >= 1"):
        LpLoss(0.5)
