"""The Navier-Stokes vorticity residual the refiner minimizes (trapezoidal rule between
snapshots, H^-1): exact solutions give a small, second-order residual; layouts of stored data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pdeml.solvers.problems.navier_stokes import NavierStokes2D
from pdeml.trainers.losses import sobolev_norm
from pdeml.trainers.residuals import VorticityResidual, residual_for_data

NS_SMALL = {"resolution": 32, "n_terms": 11, "viscosity": 1e-3}


@pytest.fixture(scope="module")
def ns_trajectory():
    """One 32^2 trajectory with snapshots every 0.025 up to t = 0.8."""
    problem = NavierStokes2D(final_time=0.8, n_snapshots=32, **NS_SMALL)
    w0 = problem.draw_initial(np.random.default_rng(3))
    return problem, torch.from_numpy(w0), torch.from_numpy(problem.solve(w0))


def test_residual_of_the_true_solution_is_small_and_second_order(ns_trajectory):
    problem, w0, w = ns_trajectory
    forcing = torch.from_numpy(problem.forcing_field(32))
    ratios, norms = [], []
    for stride in (1, 2, 4):  # dt = 0.025, 0.05, 0.1
        dt = 0.025 * stride
        snaps = w[stride - 1::stride][None]
        res = VorticityResidual(problem.viscosity, dt, forcing)(w0[None], snaps)
        seq = torch.cat([w0[None, None], snaps], 1)
        rate = (seq[:, 1:] - seq[:, :-1]) / dt
        norms.append(float(sobolev_norm(res, -1)))
        ratios.append(norms[-1] / float(sobolev_norm(rate, -1)))
    assert ratios[-1] < 5e-3, ratios  # at dt = 0.1 the residual is < 0.5% of w_t
    orders = [math.log2(b / a) for a, b in zip(norms, norms[1:], strict=False)]
    assert all(1.7 < p < 2.3 for p in orders), orders
    # A 1% perturbation of the snapshots is seen: the residual grows by far more.
    snaps = w[3::4][None]
    noisy = snaps * (1 + 0.01 * torch.randn(snaps.shape, generator=torch.Generator()
                                            .manual_seed(0), dtype=snaps.dtype))
    res = VorticityResidual(problem.viscosity, 0.1, forcing)(w0[None], noisy)
    assert float(sobolev_norm(res, -1)) > 20 * norms[-1]


def test_residual_rejects_bad_shapes():
    res = VorticityResidual(1e-3, 0.1, torch.zeros(8, 8))
    with pytest.raises(ValueError, match="residual needs start"):
        res(torch.zeros(2, 8, 8), torch.zeros(2, 3, 8, 9))
    with pytest.raises(ValueError, match="viscosity > 0"):
        VorticityResidual(0.0, 0.1, torch.zeros(8, 8))


@pytest.fixture(scope="module")
def ns_dir(tmp_path_factory):
    from pdeml.datasets import generate_dataset

    out = tmp_path_factory.mktemp("ns")
    problem = NavierStokes2D(final_time=0.8, n_snapshots=8, **NS_SMALL)
    generate_dataset(problem, out, {"train": 10}, seed=0, progress=False)
    return out


def test_residual_for_data_layouts_and_the_stored_truth(ns_dir, darcy_dir):
    from pdeml.datasets.reader import H5Dataset

    path = ns_dir / "train.h5"
    for inputs, outputs in ((["w0"], ["w[0:6]"]), (["w[0:4]"], ["w[4:8]"]), (["w[3]"], ["w[4:8]"])):
        res = residual_for_data(path, inputs, outputs)
        assert res.dt == pytest.approx(0.1) and res.viscosity == 1e-3
        data = H5Dataset(path, inputs, outputs, in_memory=True)
        x, y = data._cache
        r = res(x[:, -1], y)
        w_t = (y[:, 1:] - y[:, :-1]) / 0.1
        rel = sobolev_norm(r[:, 1:], -1) / sobolev_norm(w_t, -1)
        assert float(rel.max()) < 5e-3, (inputs, rel)
    for inputs, outputs, match in (
            (["w[0:4]"], ["w[5:8]"], "continue the input"),
            (["w0"], ["w[3]"], "consecutive steps"),
            (["w[0:2]", "w0"], ["w[0:3]"], None),
            (["x"], ["w[0:3]"], "end with a vorticity step")):
        if match is None:
            residual_for_data(path, inputs, outputs)  # the last input channel counts
            continue
        with pytest.raises(ValueError, match=match):
            residual_for_data(path, inputs, outputs)
    with pytest.raises(ValueError, match="supports 'navier_stokes'"):
        residual_for_data(darcy_dir / "train.h5", ["a"], ["u"])
