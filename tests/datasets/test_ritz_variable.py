"""GCRO-DR's recycled space as data (``save_ritz``): orthonormal, ordered, near-invariant
directions that cut iterations when recycled; the solutions are untouched; the ``mode`` dim
goes through the writer, xarray and the loader; and a model trains on it (subspace loss)."""

import json

import h5py
import numpy as np
import pytest
import scipy.linalg as sla
import torch
import xarray as xr

from pdeml.cli import main
from pdeml.datasets import H5Dataset, generate_dataset
from pdeml.datasets.writer import compute_samples, sample_rng
from pdeml.solvers.krylov import GCRODR
from pdeml.solvers.problems import make_problem
from pdeml.trainers import OperatorModule
from pdeml.trainers.losses import SubspaceLoss

J = 4


def _rngs(n=6):
    return [sample_rng(0, "train", i) for i in range(n)]


def _basis(sample, key="ritz"):
    """Stored ``(mode, *grid)`` vectors -> the ``(n_interior, mode)`` basis, complex for
    the real/imaginary pair."""
    v = sample[key] if key in sample else sample["ritz_real"] + 1j * sample["ritz_imag"]
    inner = v[(slice(None), *(slice(1, -1),) * (v.ndim - 1))]
    return inner.reshape(len(v), -1).T


def _defect(A, Q):
    """How far ``A span(Q)`` leaves ``span(Q)`` (0 for an invariant subspace)."""
    AQ = A @ Q
    return np.linalg.norm(AQ - Q @ (Q.conj().T @ AQ)) / np.linalg.norm(AQ)


def _span_loss(V, Q):
    """||V - Q Q^H V||^2 / ||V||^2 for an orthonormal Q."""
    return float(np.linalg.norm(V - Q @ (Q.conj().T @ V)) ** 2 / np.linalg.norm(V) ** 2)


@pytest.fixture(scope="module")
def darcy():
    """Unpreconditioned Darcy on 12^2 nodes: Ritz vectors of A itself, exact ones known."""
    prob = make_problem("darcy", resolution=12, solver="gcrodr", precond="none", krylov_m=20,
                        recycle_k=10, save_ritz=J)
    return prob, prob.sample_batch(_rngs())


def test_ritz_vectors_are_orthonormal_with_a_zero_boundary(darcy):
    prob, samples = darcy
    for s in samples:
        assert s["ritz"].shape == (J, 12, 12)
        assert np.all(s["ritz"][:, 0] == 0) and np.all(s["ritz"][:, :, -1] == 0)
        U = _basis(s)
        np.testing.assert_allclose(U.T @ U, np.eye(J), atol=1e-10)


def test_ritz_vectors_approximate_the_slowest_eigenvectors_in_order(darcy):
    """Smallest harmonic Ritz values first: the first stored vector is the eigenvector of the
    smallest eigenvalue, and the four span nearly the four slowest directions."""
    prob, samples = darcy
    first, four = [], []
    for s in samples:
        A, _ = prob.system(s)
        _, E = sla.eigh(A.toarray())
        U = _basis(s)
        first.append(_span_loss(E[:, :1], U[:, :1]))
        four.append(_span_loss(E[:, :J], U))
        # a reversed order would put a fast direction first
        assert _span_loss(E[:, :1], U[:, -1:]) > 10 * first[-1]
    assert max(first) < 1e-2, first
    assert np.mean(four) < 0.15, four


def test_recycling_the_stored_vectors_cuts_iterations(darcy):
    prob, samples = darcy
    for s in samples:
        A, b = prob.system(s)
        cold = GCRODR(20, 10).solve(A, b, rtol=1e-8)
        seeded = GCRODR(20, 10)
        seeded.seed(_basis(s))
        warm = seeded.solve(A, b, rtol=1e-8)
        assert warm.info == 0 and np.linalg.norm(b - A @ warm.x) <= 1e-8 * np.linalg.norm(b)
        assert warm.n_iter <= 0.85 * cold.n_iter, (warm.n_iter, cold.n_iter)


def test_complex_ritz_vectors_are_near_invariant_for_helmholtz():
    prob = make_problem("helmholtz3d", resolution=8, k0=6.0, solver="gcrodr", precond="none",
                        save_ritz=J)
    samples = prob.sample_batch(_rngs(4))
    noise = np.random.default_rng(0).standard_normal((6**3, J, 2)) @ [1, 1j]
    Z = np.linalg.qr(noise)[0]
    for s in samples:
        Y = _basis(s)
        assert np.iscomplexobj(Y)
        np.testing.assert_allclose(Y.conj().T @ Y, np.eye(J), atol=1e-10)
        A, b = prob.system(s)
        assert _defect(A, Y) < 0.5 * _defect(A, Z)
        seeded = GCRODR(40, 20)
        seeded.seed(Y)
        assert seeded.solve(A, b).n_iter < 0.85 * GCRODR(40, 20).solve(A, b).n_iter


@pytest.mark.parametrize("name, kw", [
    ("darcy", {"resolution": 16}),  # AMG-preconditioned (precond auto)
    ("helmholtz3d", {"resolution": 8}),  # ILU-preconditioned, complex
])
def test_solutions_are_those_of_plain_gcrodr(name, kw):
    plain = compute_samples(make_problem(name, solver="gcrodr", **kw), 0, "train", range(5))
    ritz = compute_samples(make_problem(name, solver="auto", save_ritz=3, **kw), 0, "train",
                           range(5))
    extra = {"ritz"} if name == "darcy" else {"ritz_real", "ritz_imag"}
    assert set(ritz) == set(plain) | extra
    for key, value in plain.items():
        np.testing.assert_array_equal(ritz[key], value, err_msg=key)
    assert np.all(ritz["solver_method"] == 3)  # GCRO-DR


def test_mode_dimension_through_writer_xarray_and_loader(tmp_path):
    prob = make_problem("helmholtz3d", resolution=6, solver="gcrodr", save_ritz=3)
    path = generate_dataset(prob, tmp_path, {"train": 5}, seed=0, progress=False)["train"]
    with h5py.File(path) as f:
        assert json.loads(f.attrs["problem_settings"])["save_ritz"] == 3
        re, im = f["ritz_real"][...], f["ritz_imag"][...]
        assert re.shape == (5, 3, 6, 6, 6) and re.dtype == np.float32
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds["ritz_real"].dims == ("sample", "mode", "z", "y", "x")
        assert ds["mode"].size == 3 and ds["k"].dims == ("sample", "z", "y", "x")
    for in_memory in (True, False):
        data = H5Dataset(path, ["k"], ["ritz_real", "ritz_imag"], in_memory=in_memory)
        assert (data.in_channels, data.out_channels) == (1, 6)
        _, y = data[2]
        # blocked: the modes' real parts, then their imaginary parts
        np.testing.assert_array_equal(y[:3].numpy(), re[2])
        np.testing.assert_array_equal(y[3:].numpy(), im[2])
    picked = H5Dataset(path, ["k"], ["ritz_real[1:3]", "u_real"])
    assert picked.out_channels == 3
    np.testing.assert_array_equal(picked[0][1][:2].numpy(), re[0, 1:3])


def test_save_ritz_options_fail_with_a_message():
    with pytest.raises(ValueError, match=r"save_ritz must be an integer in \[0, recycle_k=5\]"):
        make_problem("darcy", resolution=8, recycle_k=5, krylov_m=10, save_ritz=6)
    with pytest.raises(ValueError, match="save_ritz must be an integer"):
        make_problem("darcy3d", resolution=8, save_ritz=-1)
    with pytest.raises(ValueError, match="solver_resolution = resolution"):
        make_problem("darcy", resolution=9, solver_resolution=17, save_ritz=2)
    direct = make_problem("darcy", resolution=8, solver="direct", save_ritz=2)  # baselines do
    with pytest.raises(ValueError, match="use solver='gcrodr'"):
        direct.sample_batch(_rngs(2))


def test_generate_and_train_ritz_with_the_subspace_loss(tmp_path, capsys):
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["generate", "darcy", "--set", "resolution=16", "--set", "solver=gcrodr",
                 "--set", "save_ritz=4", "--n-train", "24", "--n-test", "6",
                 "--out", str(data), "--no-progress"]) == 0
    assert main(["train", "--set", f"data.train={data / 'train.h5'}",
                 "--set", f"data.test={data / 'test.h5'}", "--set", "data.inputs=[a]",
                 "--set", "data.outputs=[ritz]", "--set", "data.batch_size=8",
                 "--set", "module.loss=subspace", "--set", "module.lr=0.01",
                 "--set", "model.name=FNO", "--set", "model.n_modes=[4,4]",
                 "--set", "model.hidden_channels=8", "--set", "model.n_layers=2",
                 "--set", "trainer.max_epochs=2", "--set", "trainer.enable_progress_bar=false",
                 "--set", "trainer.logger=false", "--out", str(run)]) == 0
    module = OperatorModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt",
                                                 weights_only=False).eval()
    assert isinstance(module.loss_fn, SubspaceLoss)
    test = H5Dataset(data / "test.h5", ["a"], ["ritz"], in_memory=True)
    x, y = (torch.stack(t) for t in zip(*(test[i] for i in range(len(test))), strict=True))
    with torch.no_grad():
        value = float(module.loss_fn(module(x), y))
    assert y.shape == (6, 4, 16, 16) and 0.0 <= value <= 1.0
