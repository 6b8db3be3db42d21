"""MG-TFNO: patching and stitching, multi-grid context windows, chunked inference, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from pdeml.operators import MGTFNO


class TakeLevel(nn.Module):
    """A stand-in backbone returning the channels of one level (checks the plumbing)."""

    def __init__(self, start: int, count: int) -> None:
        super().__init__()
        self.start, self.count = start, count

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z[:, self.start:self.start + self.count]


@pytest.mark.parametrize("boundary", ["circular", "replicate"])
@pytest.mark.parametrize("sizes,patches", [((13,), (3,)), ((13, 10), (3, 2)),
                                           ((7, 8, 9), (2, 2, 2))])
@pytest.mark.parametrize("levels", [0, 2])
def test_patch_and_stitch_is_the_identity(boundary, sizes, patches, levels):
    d = len(sizes)
    net = MGTFNO(2, 2, n_modes=(4,) * d, n_patches=patches, levels=levels,
                 boundary=boundary, positional_embedding=False)
    net.backbone = TakeLevel(0, 2)
    x = torch.randn(2, 2, *sizes)
    assert torch.equal(net(x), x)


def coarse_window_1d(x: np.ndarray, patch: int, margin: int, j: int, level: int) -> np.ndarray:
    """Level-``level`` context of patch ``j``, periodic, written directly from the definition."""
    n, width, s = len(x), patch + 2 * margin, 2 ** level
    # Centred on the patch centre j * patch + patch / 2 (a half point goes to the right).
    start = math.ceil(j * patch + patch / 2 - s * width / 2)
    window = x[(start + np.arange(s * width)) % n]
    return window.reshape(width, s).mean(axis=1)


@pytest.mark.parametrize("n,patches,level", [(16, 2, 1), (16, 4, 2), (24, 3, 1)])
def test_coarse_levels_are_pooled_windows_centred_on_the_patch(n, patches, level):
    net = MGTFNO(1, 1, n_modes=(4,), n_patches=patches, levels=level,
                 positional_embedding=False)
    net.backbone = TakeLevel(level, 1)
    patch, margin = net.geometry((n,))
    x = torch.randn(1, 1, n, dtype=torch.float64)
    # The stand-in returns the coarse window; stitching keeps its central patch part.
    got = net(x)[0, 0].numpy()
    want = np.concatenate([
        coarse_window_1d(x[0, 0].numpy(), patch[0], margin[0], j, level)[
            margin[0]:margin[0] + patch[0]]
        for j in range(patches)])
    assert np.allclose(got, want)


def test_chunked_patches_give_the_same_output():
    torch.manual_seed(0)
    net = MGTFNO(1, 2, n_modes=(6, 6), hidden_channels=8, n_layers=2, levels=1,
                 n_patches=(2, 3)).eval()
    chunked = MGTFNO(1, 2, n_modes=(6, 6), hidden_channels=8, n_layers=2, levels=1,
                     n_patches=(2, 3), patch_batch=4).eval()
    chunked.load_state_dict(net.state_dict())
    x = torch.randn(3, 1, 20, 18)
    with torch.no_grad():
        assert torch.allclose(chunked(x), net(x), atol=1e-6)


def test_global_positional_embedding_tells_patches_apart():
    # Identical content in every patch: without coordinates the patches' outputs coincide.
    torch.manual_seed(0)
    tile = torch.randn(1, 1, 8, 8)
    x = tile.repeat(1, 1, 2, 2)
    same = MGTFNO(1, 1, n_modes=(4, 4), hidden_channels=8, n_layers=1, levels=0,
                  padding_fraction=0.0, positional_embedding=False)(x)
    assert torch.allclose(same[..., :8, :8], same[..., 8:, 8:], atol=1e-6)
    apart = MGTFNO(1, 1, n_modes=(4, 4), hidden_channels=8, n_layers=1, levels=0,
                   padding_fraction=0.0)(x)
    assert not torch.allclose(apart[..., :8, :8], apart[..., 8:, 8:], atol=1e-4)


def test_bad_options_are_one_line_errors():
    with pytest.raises(ValueError, match="n_patches"):
        MGTFNO(1, 1, n_patches=(2, 2, 2))
    with pytest.raises(ValueError, match="unknown boundary"):
        MGTFNO(1, 1, boundary="zeros")
    with pytest.raises(ValueError, match="levels must be"):
        MGTFNO(1, 1, levels=-1)


def test_trains_through_pdeml_train(darcy_dir, tmp_path):
    from pdeml.trainers.fit import train

    cfg = {"seed": 0, "data": {"train": str(darcy_dir / "train.h5"),
                               "test": str(darcy_dir / "test.h5"), "batch_size": 8},
           "model": {"name": "MGTFNO", "n_modes": [6, 6], "hidden_channels": 8,
                     "n_layers": 2, "rank": 0.2, "boundary": "replicate"},
           "module": {"lr": 1e-2}, "trainer": {"max_epochs": 2, "enable_progress_bar": False}}
    result = train(cfg, tmp_path / "run")
    assert math.isfinite(result["test_l2"]) and result["test_l2"] < 1.0


def test_torch_export_with_dynamic_batch():
    net = MGTFNO(1, 1, n_modes=(6, 6), hidden_channels=8, n_layers=2).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(net, (torch.randn(2, 1, 20, 20),),
                                  dynamic_shapes={"x": {0: batch}})
    x = torch.randn(3, 1, 20, 20)
    with torch.no_grad():
        assert torch.allclose(program.module()(x), net(x), atol=1e-5)
