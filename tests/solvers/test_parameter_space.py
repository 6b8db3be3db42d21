"""Per-sample PDE parameters (issue 30's families whose difficulty varies): the range, the
draw, the override an active sampler uses, and what reaches the HDF5 file."""

import h5py
import numpy as np
import pytest

from pdeml.datasets import H5Dataset, generate_dataset
from pdeml.datasets.writer import compute_samples, sample_rng
from pdeml.solvers.problems import make_problem
from pdeml.solvers.problems.base import ParameterRange
from pdeml.solvers.problems.burgers import Burgers

# small and quick: 64 stored points on a 256-point solver grid, to t = 0.1
SMALL = {"resolution": 64, "solver_resolution": 256, "final_time": 0.1, "n_snapshots": 2,
         "dt": 1e-3, "n_terms": 17}


def test_range_maps_the_unit_interval_and_draws_its_prior():
    log = ParameterRange(1e-3, 1e-1, "log")
    assert log.from_unit(0) == pytest.approx(1e-3) and log.from_unit(1) == pytest.approx(1e-1)
    assert log.from_unit(0.5) == pytest.approx(1e-2)  # the geometric middle
    for u in (0.0, 0.13, 0.77, 1.0):
        assert log.to_unit(log.from_unit(u)) == pytest.approx(u)
    lin = ParameterRange(2.0, 4.0)
    assert lin.from_unit(0.25) == 2.5 and lin.to_unit(3.0) == 0.5
    draws = np.log10([log.draw(np.random.default_rng(i)) for i in range(400)])
    assert abs(draws.mean() + 2) < 0.1 and draws.min() >= -3 and draws.max() <= -1
    with pytest.raises(ValueError, match="outside its range"):
        log.check("viscosity", 0.5)
    for bad in ((1.0, 1.0, "linear"), (0.0, 1.0, "log"), (0.0, 1.0, "cubic")):
        with pytest.raises(ValueError):
            ParameterRange(*bad)


def test_burgers_viscosity_range_is_a_per_sample_variable(tmp_path):
    prob = make_problem("burgers", viscosity_range=[1e-2, 1e-1], **SMALL)
    assert set(prob.parameter_space()) == {"viscosity"}
    assert "viscosity_range" in prob.attrs() and "viscosity" not in prob.attrs()
    generate_dataset(prob, tmp_path, {"train": 4}, seed=0, progress=False)
    with h5py.File(tmp_path / "train.h5") as f:
        nu = f["viscosity"][:]
    assert nu.shape == (4,) and len(set(nu)) == 4 and ((1e-2 <= nu) & (nu <= 1e-1)).all()
    # a model gets it as a constant channel
    x, _ = H5Dataset(tmp_path / "train.h5", ["u0", "viscosity"], ["u[-1]"])[2]
    assert x.shape == (2, 64) and np.allclose(x[1].numpy(), nu[2])


def test_given_parameters_replace_the_draw_and_nothing_else():
    prob = Burgers(viscosity_range=[1e-2, 1e-1], **SMALL)
    drawn = prob.sample(sample_rng(0, "train", 3))
    same = prob.sample_with(sample_rng(0, "train", 3), {"viscosity": float(drawn["viscosity"])})
    for k in drawn:  # the drawn value given back: the same sample, bit for bit
        assert np.array_equal(drawn[k], same[k])
    other = prob.sample_with(sample_rng(0, "train", 3), {"viscosity": 0.09})
    assert np.array_equal(other["u0"], drawn["u0"])  # the initial condition stays put
    assert float(other["viscosity"]) == 0.09 and not np.allclose(other["u"], drawn["u"])
    # and it is the fixed-viscosity problem's solution of that initial condition
    fixed = Burgers(viscosity=0.09, **SMALL)
    assert np.array_equal(fixed.solve(prob.draw_initial(_after_nu(3)))[:, ::4], other["u"])


def _after_nu(i):
    rng = sample_rng(0, "train", i)
    rng.random()  # the viscosity draw comes first
    return rng


def test_bad_parameters_are_refused_in_one_line():
    prob = Burgers(viscosity_range=[1e-2, 1e-1], **SMALL)
    rng = np.random.default_rng(0)
    for params, match in (({"viscosity": 0.5}, "outside its range"),
                          ({"nu": 0.05}, "per-sample parameters are viscosity"),
                          ({"viscosity": 0.05, "forcing": 1.0}, "per-sample parameters are")):
        with pytest.raises(ValueError, match=match):
            prob.sample_with(rng, params)
    with pytest.raises(ValueError, match="no per-sample parameters"):
        Burgers(**SMALL).sample_with(rng, {"viscosity": 0.05})
    for bad in ([0.1], [0.1, 0.01], [0.0, 0.1], "0.1"):
        with pytest.raises(ValueError, match="viscosity_range"):
            Burgers(viscosity_range=bad, **SMALL)


def test_compute_samples_takes_a_parameter_set_per_index():
    prob = Burgers(viscosity_range=[1e-2, 1e-1], **SMALL)
    out = compute_samples(prob, 0, "train", [5, 6], params=[{"viscosity": 0.02}, None])
    drawn = compute_samples(prob, 0, "train", [6])
    assert out["viscosity"][0] == 0.02 and out["viscosity"][1] == drawn["viscosity"][0]
    assert np.array_equal(out["u"][1], drawn["u"][0])
    with pytest.raises(ValueError, match="2 parameter sets for 1 samples"):
        compute_samples(prob, 0, "train", [5], params=[None, None])


def test_the_solver_baseline_refuses_per_sample_viscosity():
    """The ledger's solver knob would solve every sample with one viscosity: a wrong PDE."""
    from pdeml.baselines import ledger

    attrs = Burgers(viscosity_range=[1e-2, 1e-1], **SMALL).attrs()
    led = ledger(lambda x: x, "burgers", attrs, np.zeros((2, 1, 64)), np.zeros((2, 1, 64)), {})
    assert led["note"].startswith("no solver baseline for per-sample viscosity")
