"""TFNO and factorized spectral weights: ranks, reconstructions against plain einsum, both
contraction paths, joint factorization, equivalence with FNO, FNO's layer options."""

from __future__ import annotations

import math

import pytest
import torch

from pdeml.operators import FNO, TFNO
from pdeml.operators.layers import SpectralConv
from pdeml.operators.layers.factorized import (
    FactorizedSpectralConv,
    FactorizedWeight,
)

KINDS = ("tucker", "cp", "tt")


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rank", [0.05, 0.2])
def test_rank_fraction_sets_the_parameter_count(kind, rank):
    dims = (32, 32, 17, 9, 2)
    weight = FactorizedWeight(dims, kind, rank)
    assert abs(n_params(weight) / math.prod(dims) - rank) < 0.25 * rank


def reference(kind: str, f: list[torch.Tensor]) -> torch.Tensor:
    """The represented tensor by one explicit einsum per factorization (5-D)."""
    if kind == "tucker":
        return torch.einsum("pqrst,ap,bq,cr,ds,et->abcde", *f)
    if kind == "cp":
        return torch.einsum("ar,br,cr,dr,er->abcde", *f)
    return torch.einsum("xap,pbq,qcr,rds,set->abcde", *f)


@pytest.mark.parametrize("kind", KINDS)
def test_reconstruction_matches_an_explicit_einsum(kind):
    weight = FactorizedWeight((3, 4, 5, 3, 2), kind, 0.5).double()
    f = [p.detach() for p in weight.factors]
    assert torch.allclose(weight.reconstruct(), reference(kind, f))
    # A slice of the first axis (joint factorization) is that slice of the tensor.
    assert torch.allclose(weight.reconstruct(index=2), reference(kind, f)[2])


@pytest.mark.parametrize("kind", (*KINDS, "dense"))
@pytest.mark.parametrize("d,size", [(1, 11), (2, 10), (2, 7), (3, 6)])
def test_both_contractions_equal_a_dense_conv_with_the_rebuilt_weight(kind, d, size):
    conv = FactorizedSpectralConv(3, 4, (6,) * d, factorization=kind, rank=0.3).double()
    dense = SpectralConv(3, 4, (6,) * d).double()
    dense.weight.data = conv.factors.reconstruct().detach()
    x = torch.randn(2, 3, *[size] * d, dtype=torch.float64)
    for impl in ("factorized", "reconstructed", "auto"):
        conv.implementation = impl
        assert torch.allclose(conv(x), dense(x), atol=1e-12), impl


@pytest.mark.parametrize("kind", KINDS)
def test_joint_factorization_shares_one_tensor_across_layers(kind):
    net = TFNO(1, 1, n_modes=(6, 6), hidden_channels=8, n_layers=3, factorization=kind,
               rank=0.2, joint_factorization=True).double()
    keys = [k for k in net.state_dict() if "factors" in k]
    assert keys and all(k.startswith("shared_weight.") for k in keys)
    full = net.shared_weight.reconstruct().detach()
    x = torch.randn(2, 8, 10, 10, dtype=torch.float64)
    for i, conv in enumerate(net.spectral):
        dense = SpectralConv(8, 8, (6, 6)).double()
        dense.weight.data = full[i]
        assert torch.allclose(conv(x), dense(x), atol=1e-12)
    net(torch.randn(2, 1, 10, 10, dtype=torch.float64)).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in net.shared_weight.parameters())


def test_dense_tfno_is_an_fno():
    fno = FNO(2, 1, n_modes=(6, 6), hidden_channels=8, n_layers=2).double()
    tfno = TFNO(2, 1, n_modes=(6, 6), hidden_channels=8, n_layers=2,
                factorization="dense").double()
    state = {k.replace(".weight", ".factors.factors.0") if k.startswith("spectral.") else k: v
             for k, v in fno.state_dict().items()}
    tfno.load_state_dict(state)
    x = torch.randn(2, 2, 12, 12, dtype=torch.float64)
    assert torch.allclose(tfno(x), fno(x), atol=1e-12)


def test_default_tfno_compresses_more_than_tenfold():
    assert n_params(FNO(1, 1)) > 10 * n_params(TFNO(1, 1))


@pytest.mark.parametrize("kwargs", [
    {"skip": None}, {"skip": "identity", "channel_mlp": True, "channel_mlp_skip": "soft-gating"},
    {"channel_mlp": True, "channel_mlp_skip": "linear", "norm": "group_norm"},
    {"norm": "instance_norm", "stabilizer": "tanh", "domain_padding": 0.2},
])
def test_fno_layer_options_run_and_train(kwargs):
    net = TFNO(2, 1, n_modes=(6, 6), hidden_channels=8, n_layers=2, rank=0.5, **kwargs)
    net(torch.randn(3, 2, 11, 13)).square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_channel_mlp_skip_identity_keeps_the_former_fno():
    # The default channel-MLP skip is the identity: v + mlp(v), as FNO computed before the
    # option existed.
    torch.manual_seed(0)
    net = FNO(1, 1, n_modes=(6, 6), hidden_channels=8, n_layers=1, channel_mlp=True).double()
    x = torch.randn(2, 1, 10, 10, dtype=torch.float64)
    v = net.lifting(net.embedding(x))
    v = net.spectral[0](v) + net.skips[0](v)
    expected = net.projection(v + net.mlps[0](v))
    assert torch.allclose(net(x), expected, atol=1e-12)


def test_bad_options_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown factorization"):
        TFNO(1, 1, factorization="svd")
    with pytest.raises(ValueError, match="rank must be a fraction"):
        TFNO(1, 1, rank=0.0)
    with pytest.raises(ValueError, match="unknown implementation"):
        TFNO(1, 1, implementation="fast")
    with pytest.raises(ValueError, match="unknown norm"):
        FNO(1, 1, norm="batch_norm")
    with pytest.raises(ValueError, match="unknown channel_mlp_skip"):
        FNO(1, 1, channel_mlp_skip="gated")


@pytest.mark.parametrize("joint", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_trains_through_pdeml_train(darcy_dir, tmp_path, joint):
    from pdeml.trainers.fit import train

    cfg = {"seed": 0, "data": {"train": str(darcy_dir / "train.h5"),
                               "test": str(darcy_dir / "test.h5"), "batch_size": 8},
           "model": {"name": "TFNO", "n_modes": [6, 6], "hidden_channels": 8, "n_layers": 2,
                     "rank": 0.2, "joint_factorization": joint},
           "module": {"lr": 1e-2}, "trainer": {"max_epochs": 2, "enable_progress_bar": False}}
    result = train(cfg, tmp_path / "run")
    assert math.isfinite(result["test_l2"]) and result["test_l2"] < 1.0
