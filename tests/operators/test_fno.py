"""FNO and its layers: shapes, gradients, symmetries, resolution consistency, rebuilding."""

from __future__ import annotations

import io
import itertools
import json
import math

import pytest
import torch

from pdeml.operators import FNO, OperatorBase, build, list_operators
from pdeml.operators.layers import (
    DomainPadding,
    GridEmbedding,
    SpectralConv,
    dft_bases,
    resolved_k_max,
)

TRANSFORMS = ("dft", "fft")


def small_fno(d: int, **kwargs) -> FNO:
    defaults = {"n_modes": (6,) * d, "hidden_channels": 8, "n_layers": 2}
    return FNO(3, 2, **(defaults | kwargs))


def reference_spectral_conv(conv: SpectralConv, x: torch.Tensor) -> torch.Tensor:
    """Mode by mode with a full complex FFT: an independent route to the same operator.

    The weight of frequency ``-k`` (``k`` on the rfft half) is the conjugate of that of ``k``,
    which is what keeping only the rfft half means for a real field.
    """
    d, sizes = conv.n_dim, x.shape[2:]
    ks = resolved_k_max(conv.k_max, sizes)
    xf = torch.fft.fftn(x, dim=tuple(range(2, 2 + d)))
    w = torch.view_as_complex(conv.weight.detach())
    yf = torch.zeros(x.shape[0], conv.out_channels, *sizes, dtype=xf.dtype)
    for freq in itertools.product(*[range(-k, k + 1) for k in ks]):
        sign = 1 if freq[-1] >= 0 else -1
        index = tuple(sign * f + k for f, k in zip(freq[:-1], conv.k_max[:-1], strict=True))
        wk = w[(..., *index, sign * freq[-1])]
        wk = wk if sign > 0 else wk.conj()
        pos = (slice(None), slice(None), *(f % n for f, n in zip(freq, sizes, strict=True)))
        yf[pos] = xf[pos] @ wk
    return torch.fft.ifftn(yf, dim=tuple(range(2, 2 + d))).real


def band_limited(n: int, d: int, k: int, channels: int, seed: int = 0) -> torch.Tensor:
    """Random real trigonometric polynomial, frequencies ``|k_i| <= k``, on an n-point grid."""
    gen = torch.Generator().manual_seed(seed)
    freqs = torch.tensor(list(itertools.product(range(-k, k + 1), repeat=d)), dtype=torch.float64)
    a, b = torch.randn(2, channels, len(freqs), generator=gen, dtype=torch.float64)
    t = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float64) / n] * d,
                                   indexing="ij"))
    phase = 2 * math.pi * torch.einsum("fd,d...->f...", freqs, t)
    return (torch.einsum("cf,f...->c...", a, phase.cos())
            + torch.einsum("cf,f...->c...", b, phase.sin()))[None]


def every_other(y: torch.Tensor) -> torch.Tensor:
    return y[(slice(None), slice(None), *[slice(None, None, 2)] * (y.ndim - 2))]


# ---------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("d,size", [(1, 16), (1, 17), (2, 12), (2, 9), (3, 8), (3, 7)])
def test_fno_shapes_with_odd_and_even_sizes(d, size):
    net = small_fno(d, domain_padding=0.2)
    assert net(torch.randn(2, 3, *[size] * d)).shape == (2, 2, *[size] * d)


def test_fno_mixed_sizes_and_tiny_grids():
    net = FNO(1, 1, n_modes=(16, 16), hidden_channels=4, n_layers=1)
    for sizes in [(1, 1), (2, 3), (5, 64), (33, 4)]:
        assert net(torch.randn(1, 1, *sizes)).shape == (1, 1, *sizes)


@pytest.mark.parametrize("d,size,modes", [(1, 17, 8), (1, 16, 40), (2, 9, 8), (2, 8, 16),
                                          (2, 12, 5), (3, 7, 4), (3, 8, 6)])
def test_spectral_conv_matches_reference_for_both_transforms(d, size, modes):
    conv = SpectralConv(3, 2, (modes,) * d).double()
    x = torch.randn(2, 3, *[size] * d, dtype=torch.float64)
    expected = reference_spectral_conv(conv, x)
    for transform in TRANSFORMS:
        conv.transform = transform
        assert torch.allclose(conv(x), expected, atol=1e-12), transform


def test_dft_bases_invert_each_other_on_the_kept_band():
    n, k = 11, 4
    fwd, inv = dft_bases(n, k, last=False, dtype=torch.float64, device=torch.device("cpu"))
    # forward then inverse is the orthogonal projection onto |freq| <= k: idempotent.
    proj = torch.einsum("pnqk,qkrm->pnrm", fwd, inv).reshape(2 * n, 2 * n)
    assert torch.allclose(proj @ proj, proj, atol=1e-12)
    assert torch.isclose(torch.trace(proj), torch.tensor(2.0 * (2 * k + 1), dtype=torch.float64))


# ------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("d", [1, 2, 3])
def test_every_parameter_receives_a_gradient(d):
    net = small_fno(d, lifting_channels=6, channel_mlp=True, domain_padding=0.25)
    net(torch.randn(2, 3, *[7] * d)).pow(2).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("skip", ["soft-gating", "identity", "none"])
def test_other_skips_train(skip):
    net = small_fno(2, skip=skip)
    net(torch.randn(2, 3, 8, 8)).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_inference_mode_first_then_training():
    net = small_fno(2)
    x = torch.randn(2, 3, 10, 10)
    with torch.inference_mode():
        expected = net(x)
    out = net(x)  # cached DFT bases must not be inference tensors
    out.sum().backward()
    assert torch.equal(out.detach(), expected)


# ------------------------------------------------------------------------ symmetries


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("d,size", [(1, 15), (1, 16), (2, 11), (2, 12), (3, 7), (3, 8)])
def test_spectral_conv_commutes_with_circular_shifts(transform, dtype, tol, d, size):
    conv = SpectralConv(3, 2, (6,) * d, transform=transform).to(dtype)
    x = torch.randn(2, 3, *[size] * d, dtype=dtype)
    shifts, dims = tuple(range(2, 2 + d)), tuple(range(2, 2 + d))
    a, b = conv(torch.roll(x, shifts, dims)), torch.roll(conv(x), shifts, dims)
    assert (a - b).abs().max() <= tol * b.abs().max()


@pytest.mark.parametrize("size", [12, 13])
def test_fno_without_embedding_or_padding_commutes_with_shifts(size):
    x = torch.randn(2, 3, size, size)

    @torch.no_grad()
    def shift_error(net: FNO) -> float:
        a, b = net(torch.roll(x, (3, 5), (2, 3))), torch.roll(net(x), (3, 5), (2, 3))
        return float((a - b).abs().max() / b.abs().max())

    torch.manual_seed(0)
    assert shift_error(small_fno(2, positional_embedding=False, domain_padding=0.0)) < 1e-5
    # Control: the coordinate channels break the symmetry, and the test sees it.
    assert shift_error(small_fno(2, positional_embedding=True)) > 1e-3


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("d,n,modes", [(1, 16, 6), (1, 9, 40), (2, 8, 16), (2, 9, 12),
                                       (2, 16, 6), (3, 7, 8)])
def test_band_limited_input_at_n_and_2n_gives_the_same_output(transform, d, n, modes):
    conv = SpectralConv(2, 3, (modes,) * d, transform=transform).double()
    k = (n - 1) // 2  # the band an n-point grid resolves, Nyquist excluded
    coarse = conv(band_limited(n, d, k, 2))
    fine = conv(band_limited(2 * n, d, k, 2))
    assert torch.allclose(every_other(fine), coarse, atol=1e-10)


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("axis", [0, 1])
def test_nyquist_mode_is_never_kept(transform, axis):
    conv = SpectralConv(1, 1, (16, 16), transform=transform).double()
    alternating = torch.cos(math.pi * torch.arange(8, dtype=torch.float64))
    field = alternating[:, None].expand(8, 6) if axis == 0 else alternating.expand(6, 8)
    assert conv(field[None, None].contiguous()).abs().max() < 1e-12


def test_grid_embedding_is_consistent_across_resolutions():
    coarse = GridEmbedding(2)(torch.zeros(1, 1, 5, 6))[:, 1:]
    fine = GridEmbedding(2)(torch.zeros(1, 1, 10, 12))[:, 1:]
    assert torch.allclose(every_other(fine), coarse)
    assert coarse.min() == 0 and coarse.max() < 1


def test_domain_padding_round_trip_on_odd_sizes():
    pad = DomainPadding(0.25)
    x = torch.randn(1, 2, 13, 7)
    padded = pad.pad(x)
    assert padded.shape == (1, 2, 17, 9)
    assert torch.equal(pad.unpad(padded, (13, 7)), x)
    assert DomainPadding([0.0, 0.5]).pad(x).shape == (1, 2, 13, 11)


# ----------------------------------------------------------------- config and errors


def test_config_round_trip_rebuilds_the_same_model():
    net = FNO(2, 1, n_modes=(5, 6), hidden_channels=8, n_layers=3, domain_padding=0.1,
              lifting_channels=4, channel_mlp=True).eval()
    config = json.loads(json.dumps(net.config))
    assert config == net.config and config["name"] == "FNO"
    assert config["kwargs"]["n_modes"] == [5, 6] and config["kwargs"]["skip"] == "linear"
    clone = build(config).eval()
    assert clone.state_dict().keys() == net.state_dict().keys()
    clone.load_state_dict(net.state_dict())
    x = torch.randn(2, 2, 11, 12)
    with torch.no_grad():
        assert torch.equal(clone(x), net(x))


def test_builds_from_channels_alone():
    net = build({"name": "FNO", "kwargs": {"in_channels": 2, "out_channels": 3}})
    assert net.n_dim == 2 and "FNO" in list_operators()
    assert net(torch.randn(1, 2, 16, 16)).shape == (1, 3, 16, 16)


def test_unknown_operator_is_a_one_line_value_error():
    with pytest.raises(ValueError, match=r"^unknown operator 'nope'; available: .*FNO") as err:
        build({"name": "nope", "kwargs": {}})
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="name"):
        build({"kwargs": {}})


def test_state_dict_round_trip_through_torch_save():
    net = small_fno(2, domain_padding=0.25).eval()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    clone = small_fno(2, domain_padding=0.25).eval()
    clone.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.randn(2, 3, 9, 10)
    with torch.no_grad():
        assert torch.equal(clone(x), net(x))


def test_subclass_config_records_defaults_and_its_own_name():
    class Base(OperatorBase):
        def __init__(self, in_channels: int, out_channels: int, width: tuple = (1, 2)) -> None:
            super().__init__()
            self.n_dim = 1

    class Child(Base):
        def __init__(self, in_channels: int, out_channels: int, depth: int = 3) -> None:
            super().__init__(in_channels, out_channels)

    assert Base(1, 2).config == {"name": "Base", "kwargs": {
        "in_channels": 1, "out_channels": 2, "width": [1, 2]}}
    assert Child(1, out_channels=2).config == {"name": "Child", "kwargs": {
        "in_channels": 1, "out_channels": 2, "depth": 3}}
    assert "Child" not in list_operators()  # classes local to a function do not register


def test_wrong_input_rank_or_channels_are_one_line_value_errors():
    net = FNO(1, 1, n_modes=(4, 4))
    with pytest.raises(ValueError, match=r"expects \(batch, channels, 2 spatial dims\)"):
        net(torch.randn(1, 1, 8))
    with pytest.raises(ValueError, match="expects 1 input channels, got 3"):
        net(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="unknown skip"):
        FNO(1, 1, skip="sideways")
    with pytest.raises(ValueError, match="unknown activation"):
        FNO(1, 1, activation="swish")
    with pytest.raises(ValueError, match="n_modes"):
        SpectralConv(1, 1, (4, 4, 4, 4))


def test_torch_export_with_dynamic_batch():
    net = small_fno(2, domain_padding=0.25).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(net, (torch.randn(2, 3, 12, 12),),
                                  dynamic_shapes={"x": {0: batch}})
    x = torch.randn(5, 3, 12, 12)
    with torch.no_grad():
        assert torch.allclose(program.module()(x), net(x), atol=1e-6)
