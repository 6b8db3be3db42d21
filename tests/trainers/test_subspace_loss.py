"""The subspace (projection) loss: invariant to the basis of a span, 1 for orthogonal spans,
blocked complex channels, finite gradients under rank deficiency, trainable."""

import math

import pytest
import torch

from pdeml.trainers.losses import SubspaceLoss, make_loss

GRID = (6, 7)
N = math.prod(GRID)


def _channels(basis: torch.Tensor) -> torch.Tensor:
    """``(batch, n, modes)`` real or complex -> ``(batch, modes * parts, *grid)``, blocked:
    all real parts, then all imaginary parts (the loader's order for ritz_real, ritz_imag)."""
    parts = [basis.real, basis.imag] if basis.is_complex() else [basis]
    cols = torch.cat(parts, dim=-1)
    return cols.transpose(-1, -2).reshape(basis.shape[0], -1, *GRID)


def _random(batch, modes, complex_=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, N, modes, generator=g, dtype=torch.float64)
    if complex_:
        x = torch.complex(x, torch.randn(batch, N, modes, generator=g, dtype=torch.float64))
    return x


@pytest.mark.parametrize("complex_", [False, True])
def test_same_span_in_another_basis_costs_nothing(complex_):
    loss = SubspaceLoss(parts=2 if complex_ else 1)
    V = _random(3, 4, complex_)
    mix = _random(3, 4, complex_, seed=1)[:, :4, :]  # a random (invertible) change of basis
    P = V @ mix * 7.5
    assert float(loss(_channels(P), _channels(V))) < 1e-5
    # a different span is not free
    assert float(loss(_channels(_random(3, 4, complex_, seed=2)), _channels(V))) > 0.5


@pytest.mark.parametrize("complex_", [False, True])
def test_orthogonal_spans_cost_one_and_half_overlap_costs_half(complex_):
    Q = torch.linalg.qr(_random(2, 8, complex_))[0]
    loss = SubspaceLoss(parts=2 if complex_ else 1, reduction="none")
    assert torch.allclose(loss(_channels(Q[..., 4:]), _channels(Q[..., :4])),
                          torch.ones(2, dtype=torch.float64), atol=1e-5)
    half = torch.cat([Q[..., :2], Q[..., 6:]], dim=-1)  # two of the four target directions
    assert torch.allclose(loss(_channels(half), _channels(Q[..., :4])),
                          torch.full((2,), 0.5, dtype=torch.float64), atol=1e-5)


def test_complex_channels_are_blocked_not_interleaved():
    """A complex rotation of the target is free only when real/imag are read as blocked."""
    V = _random(2, 3, True)
    P = V * torch.exp(1j * torch.tensor([0.3, 1.1, 2.0], dtype=torch.float64))
    loss = SubspaceLoss(parts=2)
    assert float(loss(_channels(P), _channels(V))) < 1e-5
    interleaved = torch.stack([P.real, P.imag], dim=-1).reshape(2, N, 6)
    x = interleaved.transpose(-1, -2).reshape(2, 6, *GRID)
    assert float(loss(x, _channels(V))) > 0.1


def test_rank_deficient_prediction_and_padded_target_stay_finite():
    Q = torch.linalg.qr(_random(2, 4))[0]
    P = Q.clone()
    P[..., 1] = P[..., 0]  # two equal predicted vectors
    P[..., 3] = 0.0  # and a zero one
    x = _channels(P).float().requires_grad_()
    value = SubspaceLoss()(x, _channels(Q).float())
    value.backward()
    assert abs(value.item() - 0.5) < 1e-3  # q0 and q2 are in the span, q1 and q3 are not
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0
    # a zero-padded target column (the solver held fewer vectors) is left out
    padded = Q.clone()
    padded[..., 3] = 0.0
    pred = torch.cat([Q[..., :3], _random(2, 1, seed=5)], dim=-1)  # spans q0..q2 (+ noise)
    assert float(SubspaceLoss()(_channels(pred), _channels(padded))) < 1e-5


@pytest.mark.parametrize("parts", [1, 2])
def test_gradient_descent_finds_the_span(parts):
    torch.manual_seed(0)
    V = _random(2, 3, parts == 2, seed=3)
    P = torch.nn.Parameter(_channels(_random(2, 3, parts == 2, seed=4)).float())
    target = _channels(V).float()
    loss = SubspaceLoss(parts=parts)
    opt = torch.optim.Adam([P], lr=0.05)
    start = loss(P, target).item()
    for _ in range(150):
        opt.zero_grad()
        value = loss(P, target)
        value.backward()
        assert torch.isfinite(P.grad).all()
        opt.step()
    assert loss(P, target).item() < 0.05 < start


def test_make_loss_and_config_round_trip():
    assert isinstance(make_loss("subspace"), SubspaceLoss)
    loss = make_loss({"name": "subspace", "parts": 2, "eps": 1e-5})
    assert (loss.parts, loss.eps) == (2, 1e-5)
    again = make_loss(loss.config)
    assert again.config == loss.config
    with pytest.raises(ValueError, match="parts must be 1"):
        make_loss({"name": "subspace", "parts": 3})
    with pytest.raises(ValueError, match="bad settings for loss 'subspace'"):
        make_loss({"name": "subspace", "p": 2})
    with pytest.raises(ValueError, match="do not split into 2 parts"):
        SubspaceLoss(parts=2)(torch.ones(1, 3, 4, 4), torch.ones(1, 3, 4, 4))
