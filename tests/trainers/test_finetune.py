"""Spectral fine-tuning: layer expansion, the cached split, the vorticity residual, the loop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from pdeml.datasets.normalization import UnitGaussianNormalizer
from pdeml.operators import FNO, OperatorBase
from pdeml.operators.layers import SpectralConv
from pdeml.solvers.problems.navier_stokes import NavierStokes2D
from pdeml.trainers.finetune import (
    _Split,
    expand_spectral_conv,
    finetune,
    refine_last_spectral_layer,
    spectral_layer_names,
)
from pdeml.trainers.losses import sobolev_norm
from pdeml.trainers.module import OperatorModule, Surrogate
from pdeml.trainers.residuals import VorticityResidual, residual_for_data

NS_SMALL = {"resolution": 32, "n_terms": 11, "viscosity": 1e-3}


def fitted_surrogate(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Surrogate:
    n_in = UnitGaussianNormalizer(x.shape[1]).fit([x])
    n_out = UnitGaussianNormalizer(y.shape[1]).fit([y])
    return Surrogate(net, n_in, n_out)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_expanded_layer_starts_as_the_trained_one(d):
    torch.manual_seed(0)
    layer = SpectralConv(3, 2, (6,) * d, init_std=0.5)
    x = torch.randn(2, 3, *(12,) * d)
    big = expand_spectral_conv(layer, (11,) * d)
    assert big.k_max == (5,) * d and big.weight.shape[2:-1] == (
        *(11,) * (d - 1), 6)
    assert torch.allclose(big(x), layer(x), atol=1e-6)
    # The new weights are exactly the new modes: switching one on changes only that frequency.
    with torch.no_grad():
        big.weight[(0, 0, *(5,) * (d - 1), 5)] = 1.0  # frequency (0, ..., 0, 5)
    with torch.no_grad():
        diff = torch.fft.rfftn(big(x) - layer(x), dim=tuple(range(2, 2 + d)))
    energy = diff.abs().sum(dim=(0, 1))
    index = (*(0,) * (d - 1), 5)
    assert energy[index] > 1e-3
    energy[index] = 0
    assert float(energy.max()) < 1e-4


def test_expand_errors_and_identity():
    layer = SpectralConv(2, 2, (8, 8))
    assert expand_spectral_conv(layer, (8, 8)) is layer
    with pytest.raises(ValueError, match="fewer modes"):
        expand_spectral_conv(layer, (4, 8))
    with pytest.raises(ValueError, match="the layer has 2"):
        expand_spectral_conv(layer, (8,))

    class Factorized(SpectralConv):
        pass

    with pytest.raises(ValueError, match="supports SpectralConv layers"):
        expand_spectral_conv(Factorized(2, 2, (4, 4)), (8, 8))


@pytest.mark.parametrize("kwargs", [{}, {"channel_mlp": True, "skip": "soft-gating"},
                                    {"domain_padding": 0.25, "skip": "none"},
                                    {"norm": "group_norm", "stabilizer": "tanh",
                                     "channel_mlp": True}])
def test_cached_split_equals_the_model(kwargs):
    torch.manual_seed(1)
    net = FNO(2, 3, n_modes=(6, 6), hidden_channels=8, n_layers=3, **kwargs)
    x, y = torch.randn(5, 2, 16, 16), torch.randn(5, 3, 16, 16)
    sur = fitted_surrogate(net, x, y)
    name, modes = refine_last_spectral_layer(net, "all", sur.in_normalizer.encode(x[:1]))
    assert name == "spectral.2" and modes == (15, 15)  # every mode of the 16-point grid
    trainable = [n for n, p in sur.named_parameters() if p.requires_grad]
    assert trainable == ["model.spectral.2.weight"]
    with torch.no_grad():
        net.spectral[2].weight.add_(0.05 * torch.randn_like(net.spectral[2].weight))
    split = _Split(sur, name)
    assert split.fno
    with torch.no_grad():
        assert torch.allclose(split.decode(*split.encode(x), sizes=(16, 16)), sur(x),
                              atol=1e-5)


class TwoSpectral(OperatorBase):
    """A non-FNO operator whose spectral layers are registered in reverse call order."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1) -> None:
        super().__init__()
        self.n_dim = 1
        self.second = SpectralConv(4, out_channels, (4,))
        self.first = SpectralConv(in_channels, 4, (4,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.tanh(self.first(x)))


def test_generic_models_are_refined_at_their_last_called_layer():
    torch.manual_seed(2)
    net = TwoSpectral()
    x = torch.randn(3, 1, 32)
    assert spectral_layer_names(net, x) == ["first", "second"]
    sur = fitted_surrogate(net, x, torch.randn(3, 1, 32))
    before = sur(x).detach()
    name, modes = refine_last_spectral_layer(net, 9, x)
    assert (name, modes, net.second.n_modes) == ("second", (9,), (9,))
    assert torch.allclose(sur(x), before, atol=1e-6)
    split = _Split(sur, name)
    assert not split.fno
    assert torch.allclose(split.decode(*split.encode(x), sizes=(32,)), before, atol=1e-6)
    with pytest.raises(ValueError, match="no SpectralConv layer"):
        refine_last_spectral_layer(nn.Linear(32, 32), "all", x)


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


def quick_fno(x: torch.Tensor, y: torch.Tensor, steps: int, seed: int = 0) -> Surrogate:
    torch.manual_seed(seed)
    net = FNO(x.shape[1], y.shape[1], n_modes=(6, 6), hidden_channels=8, n_layers=2)
    sur = fitted_surrogate(net, x, y)
    opt = torch.optim.Adam(sur.parameters(), lr=5e-3)
    for _ in range(steps):
        loss = ((sur(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return sur.eval()


def test_data_finetuning_lowers_the_validation_error(ns_dir):
    from pdeml.datasets.reader import H5Dataset

    x, y = H5Dataset(ns_dir / "train.h5", ["w[0:2]"], ["w[2:5]"], in_memory=True)._cache
    sur = quick_fno(x[:8], y[:8], steps=20)
    frozen = {k: v.clone() for k, v in sur.state_dict().items() if "spectral.1" not in k}
    tuned, info = finetune(sur, (x[:8], y[:8]), (x[8:], y[8:]), lr=1e-3, epochs=10,
                           batch_size=4, patience=10)
    hist = info["history"]["val_l2"]
    assert info["best_val_l2"] == min(hist) < 0.9 * hist[0], hist
    assert info["refined_modes"] == {"spectral.1": [31, 31]}
    for k, v in tuned.state_dict().items():  # everything else is untouched
        if k in frozen:
            assert torch.equal(v, frozen[k]), k
    assert sur.model.spectral[1].n_modes == (6, 6)  # the original is not modified
    with torch.no_grad():
        assert float((tuned(x[8:]) - y[8:]).norm() / y[8:].norm()) < float(
            (sur(x[8:]) - y[8:]).norm() / y[8:].norm())


def test_residual_finetuning_lowers_the_residual_and_stops_early(ns_dir):
    from pdeml.datasets.reader import H5Dataset

    path = ns_dir / "train.h5"
    x, y = H5Dataset(path, ["w[0:2]"], ["w[2:5]"], in_memory=True)._cache
    sur = quick_fno(x[:8], y[:8], steps=20)
    res = residual_for_data(path, ["w[0:2]"], ["w[2:5]"])
    train, val = (x[:8], None), (x[8:], y[8:])
    tuned, info = finetune(sur, train, val, mode="residual", residual=res, lr=3e-3, epochs=6,
                           batch_size=4, patience=6)
    loss = info["history"]["train_loss"]
    assert loss[-1] < 0.7 * loss[0], loss
    # An absurd step makes validation worse at once: it stops after `patience` epochs and
    # hands back the starting state.
    tuned, info = finetune(sur, train, val, mode="residual", residual=res, lr=10.0, epochs=20,
                           batch_size=4, patience=2)
    assert info["epochs"] == 2 and info["best_epoch"] == 0
    with torch.no_grad():
        assert torch.allclose(tuned(x[8:]), sur(x[8:]), atol=1e-5)
    with pytest.raises(ValueError, match="absolute loss"):
        finetune(sur, train, val, mode="residual", residual=res, loss="h-1")
    with pytest.raises(ValueError, match="needs a residual"):
        finetune(sur, train, val, mode="residual")
    with pytest.raises(ValueError, match="unknown fine-tuning mode"):
        finetune(sur, (x[:8], y[:8]), val, mode="physics")


def test_finetune_run_writes_a_loadable_run(trained_run, tmp_path):
    from pdeml.evaluate import evaluate_run, load_surrogate
    from pdeml.trainers.finetune import finetune_run

    result = finetune_run(trained_run, tmp_path / "ft", epochs=3, lr=1e-3, n_modes=9)
    assert result["test_after"]["rel_l2"] <= result["test_before"]["rel_l2"] * 1.05
    surrogate, cfg = load_surrogate(tmp_path / "ft")
    assert surrogate.model.spectral[-1].n_modes == (9, 9)
    assert cfg["data"]["train"]
    metrics = evaluate_run(tmp_path / "ft")["metrics"]
    assert metrics["rel_l2"] == pytest.approx(result["test_after"]["rel_l2"], rel=1e-5)
    saved = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert saved["refined_modes"] == {"spectral.1": [9, 9]}
    module = OperatorModule.load_from_checkpoint(tmp_path / "ft" / "checkpoints" / "best.ckpt",
                                                 weights_only=False)
    assert module.hparams.refined_modes == {"spectral.1": [9, 9]}


def test_cli_finetune_and_its_errors(trained_run, tmp_path, capsys):
    from pdeml.cli import main

    out = tmp_path / "ft"
    assert main(["finetune", str(trained_run), "--out", str(out), "--epochs", "1",
                 "--modes", "7"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["refined_modes"] == {"spectral.1": [7, 7]}
    assert printed["test_after_rel_l2"] > 0
    for argv, pattern in (
            (["--out", str(out)], "already holds a run"),
            (["--out", str(tmp_path / "r"), "--mode", "residual"], "supports 'navier_stokes'"),
            (["--out", str(tmp_path / "r2"), "--residual-norm", "-1"], "--residual-norm goes"),
            (["--out", str(tmp_path / "r3"), "--modes", "2"], "fewer modes")):
        assert main(["finetune", str(trained_run), *argv]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("pdeml: error:"), err
        assert pattern in err, err
    with pytest.raises(SystemExit) as exc:
        main(["finetune", str(trained_run), "--out", str(tmp_path / "r4"), "--modes", "lots"])
    assert exc.value.code == 2
