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


# -- the linear problems: darcy's contrast, helmholtz's k0 -----------------------------------

def _darcy(**kw):
    from pdeml.solvers.problems.darcy import DarcyFlow

    return DarcyFlow(**{"resolution": 16, "solver": "direct", **kw})


def _helmholtz(**kw):
    from pdeml.solvers.problems.helmholtz import Helmholtz

    return Helmholtz(**{"resolution": 16, "solver": "direct", **kw})


def _after_one(i):
    rng = sample_rng(0, "train", i)
    rng.random()  # the parameter draw comes first
    return rng


def test_linear_parameter_spaces_and_what_the_file_records():
    darcy = make_problem("darcy", resolution=16, contrast_range=[2, 1000])  # as from YAML
    assert darcy.parameter_space() == {"contrast": ParameterRange(2.0, 1000.0, "log")}
    var = darcy.variables()["contrast"]
    assert var.dims == () and var.units == "1" and "contrast" in var.description
    attrs = darcy.attrs()
    assert attrs["contrast_range"] == [2.0, 1000.0] and (attrs["high"], attrs["low"]) == (12, 3)
    helm = make_problem("helmholtz", resolution=16, k0_range=[0, 12])
    assert helm.parameter_space() == {"k0": ParameterRange(0.0, 12.0, "linear")}
    assert helm.variables()["k0"].dims == () and helm.attrs()["k0_range"] == [0.0, 12.0]
    assert "k0" not in helm.attrs()
    for plain in (_darcy(), _helmholtz()):
        assert plain.parameter_space() == {} and not {"contrast", "k0"} & set(plain.variables())


def test_darcy_contrast_changes_the_values_not_the_pattern():
    prob = _darcy(contrast_range=[2, 1000])
    drawn = prob.sample(sample_rng(0, "train", 3))
    assert 2 <= drawn["contrast"] <= 1000 and drawn["contrast"].shape == ()
    same = prob.sample_with(sample_rng(0, "train", 3), {"contrast": float(drawn["contrast"])})
    assert all(np.array_equal(drawn[k], same[k]) for k in drawn)  # bit for bit
    low, high = (prob.sample_with(sample_rng(0, "train", 3), {"contrast": c}) for c in (4, 400))
    assert np.array_equal(low["a"] > 6, high["a"] > 6) and np.array_equal(low["a"] > 6,
                                                                          drawn["a"] > 6)
    assert set(np.unique(high["a"])) == {120.0, 0.3} and float(high["contrast"]) == 400
    # contrast 4 about m = 6 is the default coefficient (12 / 3) of the rng after the draw
    plain = _darcy()
    assert np.array_equal(low["a"], plain.draw_coefficient(_after_one(3)))
    for s in (low, high):  # and the solution is that of the coefficient
        ref = plain.solve(s["a"])
        assert np.linalg.norm(s["u"] - ref) <= 1e-6 * np.linalg.norm(ref)
    assert not np.allclose(low["u"], high["u"])


def test_helmholtz_k0_changes_the_scale_not_the_pattern():
    prob = _helmholtz(k0_range=[4, 16])
    a, b = (prob.sample_with(sample_rng(0, "train", 1), {"k0": k}) for k in (5.0, 15.0))
    assert float(a["k0"]) == 5 and float(b["k0"]) == 15
    assert np.array_equal(np.sign(a["k"] - 5), np.sign(b["k"] - 15))
    np.testing.assert_allclose(a["k"] / 5, b["k"] / 15, rtol=1e-13)
    for s in (a, b):  # each solves its own system to the configured rtol
        A, rhs = prob.assemble(s["k"])
        x = (s["u_real"] + 1j * s["u_imag"])[1:-1, 1:-1].ravel()
        assert np.linalg.norm(A @ x - rhs) <= 1e-6 * np.linalg.norm(rhs)
    assert not np.allclose(a["u_real"], b["u_real"])


def test_linear_samples_without_a_range_are_unchanged():
    """No range, no extra draw: the inputs are bitwise the fields drawn from a fresh rng."""
    from pdeml.solvers.fields import gaussian_random_field, piecewise_constant, random_source

    got = _darcy(source="random").sample(sample_rng(0, "train", 2))
    rng = sample_rng(0, "train", 2)
    a = piecewise_constant((16, 16), rng, 12.0, 3.0, 2.0, 3.0)
    assert np.array_equal(got["a"], a) and "contrast" not in got
    assert np.array_equal(got["f"], random_source((16, 16), rng, 2.0, 3.0))
    got = _helmholtz().sample(sample_rng(0, "train", 2))
    g = gaussian_random_field((16, 16), sample_rng(0, "train", 2), 2.0, 3.0)
    assert np.array_equal(got["k"], 10.0 * (1.0 + 0.2 * np.tanh(g))) and "k0" not in got


def test_compute_samples_sets_the_contrast_of_a_batch():
    prob = _darcy(contrast_range=[2, 50])
    out = compute_samples(prob, 0, "train", [0, 1], params=[{"contrast": 5.0}, None])
    alone = compute_samples(prob, 0, "train", [1])
    assert out["contrast"].shape == (2,) and out["contrast"][0] == 5.0
    assert out["contrast"][1] == alone["contrast"][0]
    np.testing.assert_allclose(out["u"][1], alone["u"][0], rtol=1e-10, atol=0)
    assert set(np.unique(out["a"][0])) == {6 * np.sqrt(5), 6 / np.sqrt(5)}
    # stored on a coarser grid: the scalar passes through, the fields are strided
    fine = _darcy(resolution=9, solver_resolution=17, contrast_range=[2, 50])
    s = fine.sample_with(sample_rng(0, "train", 0), {"contrast": 5.0})
    assert s["a"].shape == s["u"].shape == (9, 9) and s["contrast"] == 5.0
    with pytest.raises(ValueError, match="per-sample parameters cannot be set"):
        compute_samples(_darcy(), 0, "train", [0], params=[{"contrast": 5.0}])


def test_bad_linear_parameters_are_refused_in_one_line():
    cases = [({"coefficient": "lognormal", "contrast_range": [2, 10]}, "piecewise_constant"),
             ({"contrast_range": [0.5, 10]}, "low >= 1"),
             ({"contrast_range": [10, 10]}, "low < high"),
             ({"contrast_range": [2, 10, 20]}, r"takes \[low, high\]"),
             ({"contrast_range": [2, "x"]}, r"takes \[low, high\]")]
    for kw, match in cases:
        with pytest.raises(ValueError, match=match) as err:
            _darcy(**kw)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="contrast_range"):
        make_problem("darcy", contrast_range="2,10")
    for kw in ({"k0_range": [-1, 5]}, {"k0_range": [5, 4]}, {"k0_range": 5}):
        with pytest.raises(ValueError, match="k0_range"):
            _helmholtz(**kw)
    rng = np.random.default_rng(0)
    prob = _darcy(contrast_range=[2, 50])
    for params, match in (({"contrast": 100.0}, "outside its range"),
                          ({"k0": 5.0}, "per-sample parameters are contrast")):
        with pytest.raises(ValueError, match=match):
            prob.sample_with(rng, params)
    with pytest.raises(ValueError, match="no per-sample parameters"):
        _darcy().sample_with(rng, {"contrast": 5.0})
    with pytest.raises(ValueError, match="no per-sample parameters"):
        _helmholtz().sample_batch([rng], [{"k0": 5.0}])


def test_darcy_contrast_dataset_plan_and_solver_baseline(tmp_path):
    import xarray as xr

    from pdeml.baselines import linear_solver
    from pdeml.datasets.schema import read_attrs
    from pdeml.solvers.problems.darcy import DarcyFlow

    prob = DarcyFlow(resolution=16, contrast_range=[2, 50])  # solver "auto": planned
    generate_dataset(prob, tmp_path, {"train": 4}, seed=0, progress=False)
    with xr.open_dataset(tmp_path / "train.h5", engine="h5netcdf") as ds:
        c, a, u = ds["contrast"].values, ds["a"].values, ds["u"].values
    assert c.shape == (4,) and ((2 <= c) & (c <= 50)).all() and len(set(c)) == 4
    assert np.allclose(a.max((1, 2)) / a.min((1, 2)), c, rtol=1e-5)
    # the baseline knob solves from the stored a, which carries each sample's contrast
    attrs = read_attrs(tmp_path / "train.h5")
    solve = linear_solver("darcy", attrs, 16, 16, solver="direct")
    np.testing.assert_allclose(solve(a[:, None].astype(np.float64))[:, 0], u, rtol=1e-4,
                               atol=1e-6 * np.abs(u).max())
