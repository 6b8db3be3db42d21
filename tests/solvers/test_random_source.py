"""Random right-hand sides (``source="random"``): the stored forcing is the one solved for,
the default source is unchanged, and a random-source file trains (coefficient, f) -> u."""

import json

import h5py
import numpy as np
import pytest
import scipy.sparse.linalg as spla
import yaml

from pdeml.cli import main
from pdeml.datasets import generate_dataset
from pdeml.datasets.writer import sample_rng
from pdeml.solvers.fields import gaussian_random_field, grid_points, piecewise_constant
from pdeml.solvers.problems import DarcyFlow, make_problem
from pdeml.solvers.problems.linear3d import assemble_diffusion_nd


def _relres(A, b, x):
    return float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))


def _inner(field):
    return field[(slice(1, -1),) * field.ndim]


def _boundary_is_zero(field):
    return np.all(field[~np.pad(np.ones_like(_inner(field), bool), 1)] == 0)


@pytest.mark.parametrize("name, kw", [
    ("helmholtz3d", {"resolution": 8, "k0": 6.0, "solver": "gcrodr"}),
    ("darcy3d", {"resolution": 8}),
    ("darcy", {"resolution": 16, "solver": "amg"}),
])
def test_random_source_is_the_forcing_that_was_solved(name, kw):
    prob = make_problem(name, source="random", **kw)
    fields = ("f_real", "f_imag") if name == "helmholtz3d" else ("f",)
    assert prob.input_vars[1:] == fields
    samples = prob.sample_batch([sample_rng(0, "train", i) for i in range(4)])
    forcings = []
    for s in samples:
        f = s[fields[0]] + (1j * s[fields[1]] if len(fields) == 2 else 0)
        assert _boundary_is_zero(f)
        assert np.sqrt(np.mean(np.abs(_inner(f)) ** 2)) == pytest.approx(1.0)  # unit RMS
        coef = s[prob.input_vars[0]]
        A, b = prob.assemble(coef, f)  # assembled here from the sample's own fields
        u = s["u_real"] + 1j * s["u_imag"] if name == "helmholtz3d" else s["u"]
        assert _relres(A, b, _inner(u).ravel()) <= prob.rtol * 1.01
        A0, b0 = prob.assemble(coef)  # the default forcing: u is not its solution
        assert _relres(A0, b0, _inner(u).ravel()) > 0.1
        forcings.append(f)
    assert not np.allclose(forcings[0], forcings[1])  # drawn per sample
    if name == "helmholtz3d":  # real and imaginary parts drawn independently
        re, im = _inner(forcings[0].real).ravel(), _inner(forcings[0].imag).ravel()
        assert abs(np.corrcoef(re, im)[0, 1]) < 0.9


def test_the_written_file_satisfies_its_system_and_declares_the_forcing(tmp_path):
    prob = make_problem("helmholtz3d", resolution=8, k0=6.0, source="random")
    path = generate_dataset(prob, tmp_path, {"train": 3}, seed=0, progress=False)["train"]
    with h5py.File(path) as f:
        attrs = dict(f.attrs)
        k, fr, fi, ur, ui = (f[v][...].astype(float)
                             for v in ("k", "f_real", "f_imag", "u_real", "u_imag"))
    assert json.loads(attrs["input_vars"]) == ["k", "f_real", "f_imag"]
    assert json.loads(attrs["output_vars"]) == ["u_real", "u_imag"]
    assert json.loads(attrs["problem_settings"])["source"] == "random"
    for i in range(3):
        A, b = prob.assemble(k[i], fr[i] + 1j * fi[i])
        # float32 storage of k, f and u: far below any other forcing's residual (~1)
        assert _relres(A, b, _inner(ur[i] + 1j * ui[i]).ravel()) < 1e-5


def test_default_sources_are_the_committed_ones():
    """The defaults recomputed from their definition (the code before ``source`` existed)."""
    s = 8
    helm = make_problem("helmholtz3d", resolution=s, solver="direct")
    assert helm.source == "gaussian" and helm.input_vars == ("k",)
    rng = sample_rng(0, "train", 0)
    g = gaussian_random_field((s,) * 3, rng, 2.5, 3.0)
    k = 10.0 * (1.0 + 0.2 * np.tanh(g))
    x = grid_points(s, "bounded")
    Z, Y, X = np.meshgrid(x, x, x, indexing="ij")
    bump = np.exp(-((X - .5) ** 2 + (Y - .5) ** 2 + (Z - .5) ** 2) / (2 * .05**2)) / (
        2 * np.pi * .05**2) ** 1.5
    A, b = assemble_diffusion_nd(np.ones((s,) * 3), 1 / (s - 1), bump,
                                 shift=-(k**2) * (1 + 0.05j))
    u = spla.splu(A.tocsc()).solve(b)
    got = helm.sample_batch([sample_rng(0, "train", 0)])[0]
    assert set(got) >= {"k", "u_real", "u_imag"} and "f_real" not in got
    np.testing.assert_array_equal(got["k"], k)
    np.testing.assert_allclose(_inner(got["u_real"] + 1j * got["u_imag"]).ravel(), u,
                               rtol=1e-10, atol=1e-12 * np.abs(u).max())
    # random: the same wavenumber (drawn first), another forcing
    rand = make_problem("helmholtz3d", resolution=s, solver="direct", source="random")
    np.testing.assert_array_equal(rand.sample_batch([sample_rng(0, "train", 0)])[0]["k"], k)

    darcy = DarcyFlow(resolution=16, solver="direct")
    assert darcy.source == "constant" and darcy.input_vars == ("a",)
    a = piecewise_constant((16, 16), sample_rng(0, "train", 1), 12.0, 3.0, 2.0, 3.0)
    A, b = darcy.assemble(a, 1.0)
    got = darcy.sample_batch([sample_rng(0, "train", 1)])[0]
    np.testing.assert_array_equal(got["a"], a)
    np.testing.assert_allclose(_inner(got["u"]).ravel(), spla.spsolve(A.tocsc(), b), rtol=1e-10)
    assert "f" not in got


def test_solver_grid_random_source_is_stored_on_the_coarse_nodes():
    prob = DarcyFlow(resolution=9, solver_resolution=17, source="random", solver="direct")
    fine = DarcyFlow(resolution=17, source="random", solver="direct")
    got, ref = (p.sample_batch([sample_rng(0, "train", 2)])[0] for p in (prob, fine))
    assert got["f"].shape == got["a"].shape == got["u"].shape == (9, 9)
    np.testing.assert_array_equal(got["f"], ref["f"][::2, ::2])
    np.testing.assert_allclose(got["u"], ref["u"][::2, ::2])


@pytest.mark.parametrize("name", ["helmholtz3d", "darcy", "darcy3d"])
def test_an_unknown_source_is_one_line(name):
    with pytest.raises(ValueError, match=f"unknown {name} source 'noise'; use one of") as err:
        make_problem(name, source="noise", resolution=8)
    assert "\n" not in str(err.value)


def test_generate_and_train_coefficient_and_forcing_to_solution(tmp_path, capsys):
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["generate", "darcy", "--set", "resolution=16", "--set", "source=random",
                 "--n-train", "16", "--n-test", "4", "--out", str(data), "--no-progress"]) == 0
    assert main(["train", "--set", f"data.train={data / 'train.h5'}",
                 "--set", f"data.test={data / 'test.h5'}", "--set", "data.batch_size=8",
                 "--set", "model.name=FNO", "--set", "model.n_modes=[4,4]",
                 "--set", "model.hidden_channels=8", "--set", "model.n_layers=2",
                 "--set", "trainer.max_epochs=2", "--set", "trainer.enable_progress_bar=false",
                 "--set", "trainer.logger=false", "--out", str(run)]) == 0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"]["in_channels"] == 2 and cfg["model"]["out_channels"] == 1  # (a, f) -> u
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.isfinite(metrics["test_l2"])
