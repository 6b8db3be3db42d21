"""T1 (Transform Once): transforms against scipy/numpy, resolution behaviour, frequency selection,
variance-preserving init, transform-space loss, training through the pdeml pipeline."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import scipy.fft
import torch

from pdeml.operators import T1, build
from pdeml.operators.layers.mode_mixing import AxisMixing, PerModeLinear
from pdeml.operators.layers.transforms import (
    basis_matrix,
    energy_selection,
    forward_transform,
    inverse_transform,
)
from pdeml.operators.t1 import TransformSpaceLoss


@pytest.mark.parametrize("kind", ["dct", "rdft"])
@pytest.mark.parametrize("n", [9, 16])
def test_basis_is_orthonormal_in_the_grid_mean(kind, n):
    m = n if kind == "dct" else 2 * ((n - 1) // 2) + 1
    phi = basis_matrix(kind, n, range(m))
    assert torch.allclose(phi.T @ phi / n, torch.eye(m, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("n", [7, 16])
def test_dct_matches_scipy_orthonormal_dct(n):
    x = np.random.default_rng(0).standard_normal((2, 3, n))
    ours = forward_transform(torch.from_numpy(x), "dct", [list(range(n))]).numpy()
    # Ours is scipy's orthonormal DCT-II scaled by 1 / sqrt(n) (resolution-free coefficients).
    ref = scipy.fft.dct(x, type=2, norm="ortho", axis=-1) / math.sqrt(n)
    assert np.allclose(ours, ref, atol=1e-12)


@pytest.mark.parametrize("n", [9, 12])
def test_rdft_matches_numpy_rfft(n):
    x = np.random.default_rng(1).standard_normal((1, 2, n))
    k = (n - 1) // 2
    ours = forward_transform(torch.from_numpy(x), "rdft", [list(range(2 * k + 1))]).numpy()
    f = np.fft.rfft(x, axis=-1) / n
    assert np.allclose(ours[..., 0], f[..., 0].real)
    assert np.allclose(ours[..., 1::2], math.sqrt(2) * f[..., 1:k + 1].real)
    assert np.allclose(ours[..., 2::2], -math.sqrt(2) * f[..., 1:k + 1].imag)


@pytest.mark.parametrize("kind", ["dct", "rdft"])
def test_unresolved_modes_are_zero_and_shapes_fixed(kind):
    x = torch.randn(1, 1, 6, 5, dtype=torch.float64)
    z = forward_transform(x, kind, [list(range(10)), list(range(10))])
    assert z.shape == (1, 1, 10, 10)
    limit = 6 if kind == "dct" else 5  # DCT: n indices; real DFT: up to frequency (n-1)//2
    assert z[:, :, limit:].abs().max() == 0


@pytest.mark.parametrize("kind", ["dct", "rdft"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_output_at_n_and_2n_agree_for_band_limited_inputs(kind, d):
    net = T1(2, 3, n_modes=(5,) * d, hidden_channels=8, n_layers=2, transform=kind,
             positional_embedding=False).double().eval()
    index = [list(range(5))] * d
    gen = torch.Generator().manual_seed(0)
    coef = torch.randn(1, 2, *([5] * d), generator=gen, dtype=torch.float64)
    coarse, fine = (inverse_transform(coef, kind, index, [n] * d) for n in (8, 16))
    with torch.no_grad():
        # Same coefficients at both resolutions, so the same function, sampled on either grid.
        assert torch.allclose(net.encode(coarse), net.encode(fine), atol=1e-12)
        upsampled = net.decode(net.spectrum(coarse), [16] * d)
        assert torch.allclose(upsampled, net(fine), atol=1e-10)


def test_energy_selection_finds_the_energetic_modes():
    n = 32
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    field = sum(a * torch.cos(math.pi * k * t) for k, a in ((0, 1.0), (3, 2.0), (11, 1.5)))
    field = field[:, None] * (1 + torch.cos(math.pi * 5 * t))[None, :]
    chosen = energy_selection(field[None, None], "dct", (3, 2), (16, 16))
    assert chosen == [[0, 3, 11], [0, 5]]


def test_energy_selection_happens_in_training_and_survives_a_checkpoint():
    net = T1(1, 1, n_modes=(4, 3), hidden_channels=4, n_layers=1, frequency_selection="energy")
    n = 24
    t = (torch.arange(n) + 0.5) / n
    x = (torch.cos(math.pi * 7 * t)[:, None] + torch.cos(math.pi * 9 * t)[None, :])[None, None]
    net.train()
    net(x.expand(2, 1, n, n))
    assert 7 in net.index[0] and 9 in net.index[1]
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    clone = build(net.config)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    assert clone.index == net.index
    with torch.no_grad():
        assert torch.equal(clone.eval()(x), net.eval()(x))


def test_lowest_selection_ignores_data():
    net = T1(1, 1, n_modes=(4, 4), hidden_channels=4, n_layers=1).train()
    net(torch.randn(2, 1, 16, 16))
    assert net.index == ((0, 1, 2, 3), (0, 1, 2, 3))


def test_variance_preserving_init_keeps_the_mean_square():
    torch.manual_seed(0)
    z = torch.randn(64, 32, 12, 10)
    mixed = AxisMixing(32, (12, 10))(z)
    assert 0.8 < mixed.pow(2).mean() / z.pow(2).mean() < 1.25
    block = T1(1, 1, n_modes=(12, 10), hidden_channels=32, n_layers=4).blocks[0]
    branch = block.activation(block.channel(block.axis(z)))
    # The residual branch carries 1 / n_layers of the input's mean square.
    assert 0.8 < 4 * branch.pow(2).mean() / z.pow(2).mean() < 1.25
    standard = T1(1, 1, n_modes=(12, 10), hidden_channels=32, n_layers=4,
                  init="standard").blocks[0]
    branch = standard.activation(standard.channel(standard.axis(z)))
    assert 4 * branch.pow(2).mean() / z.pow(2).mean() < 0.5


def test_per_mode_linear_is_a_separate_matrix_per_mode():
    layer = PerModeLinear(3, 2, (4, 5), bias=False).double()
    z = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    ref = torch.einsum("bikl,klio->bokl", z, layer.weight)
    assert torch.allclose(layer(z), ref)


def test_transform_space_loss_is_the_loss_of_the_projections():
    net = T1(1, 1, n_modes=(6, 6), hidden_channels=4, n_layers=1).double()
    y = torch.randn(3, 1, 16, 16, dtype=torch.float64)
    pred = net(torch.randn(3, 1, 16, 16, dtype=torch.float64))
    loss = TransformSpaceLoss(net)(pred, y)
    # Parseval: the coefficients' norm is the grid RMS of the band-limited projection.
    proj = net.decode(net.encode(y), (16, 16))
    ref = ((pred - proj).flatten(1).norm(dim=1) / proj.flatten(1).norm(dim=1)).mean()
    assert torch.allclose(loss, ref)
    assert list(TransformSpaceLoss(net).parameters()) == []


def test_bad_options_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown transform 'fft'"):
        T1(1, 1, transform="fft")
    with pytest.raises(ValueError, match="unknown frequency_selection"):
        T1(1, 1, frequency_selection="random")
    with pytest.raises(ValueError, match="unknown init"):
        T1(1, 1, init="xavier")
    with pytest.raises(ValueError, match="1 input channels, got 2"):
        T1(1, 1)(torch.randn(1, 2, 8, 8))


def test_torch_export_with_dynamic_batch():
    net = T1(3, 2, n_modes=(6, 6), hidden_channels=8, n_layers=2).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(net, (torch.randn(2, 3, 12, 12),),
                                  dynamic_shapes={"x": {0: batch}})
    x = torch.randn(5, 3, 12, 12)
    with torch.no_grad():
        assert torch.allclose(program.module()(x), net(x), atol=1e-5)


def test_learns_a_smoothing_operator():
    # y = a fixed low-pass of x: reachable by T1, so a few hundred steps must cut the error.
    torch.manual_seed(0)
    x = torch.randn(32, 1, 16, 16)
    y = forward_transform(x, "dct", [list(range(4))] * 2)
    y = inverse_transform(y * 0.5, "dct", [list(range(4))] * 2, (16, 16))
    net = T1(1, 1, n_modes=(6, 6), hidden_channels=8, n_layers=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = ((net(x) - y).norm() / y.norm())
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 < losses[0]


def test_trains_through_pdeml_train(darcy_dir, tmp_path):
    from pdeml.trainers.fit import train

    cfg = {"seed": 0, "data": {"train": str(darcy_dir / "train.h5"),
                               "test": str(darcy_dir / "test.h5"), "batch_size": 8},
           "model": {"name": "T1", "n_modes": [8, 8], "hidden_channels": 8, "n_layers": 2},
           "module": {"lr": 1e-2}, "trainer": {"max_epochs": 2, "enable_progress_bar": False}}
    result = train(cfg, tmp_path / "run")
    assert math.isfinite(result["test_l2"]) and result["test_l2"] < 1.0
