"""Positional embedding: grid coordinates appended as channels."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def grid_coordinates(sizes: Sequence[int], dtype: torch.dtype,
                     device: torch.device | None = None) -> torch.Tensor:
    """Normalised coordinates ``j / n`` in [0, 1) of every grid point.

    Point ``j`` of an ``n``-point grid sits at ``j / n`` (the periodic grid the Fourier
    layers assume), so point ``2j`` of a ``2n`` grid has the same coordinate as point ``j``:
    the embedding is consistent across resolutions.

    Parameters
    ----------
    sizes
        Grid points per spatial axis.
    dtype, device
        Of the result.

    Returns
    -------
    torch.Tensor
        ``(len(sizes), *sizes)``: channel ``i`` holds the coordinate along axis ``i``.
    """
    axes = [torch.arange(n, dtype=dtype, device=device) / n for n in sizes]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


class GridEmbedding(nn.Module):
    """Append one channel per spatial axis holding the normalised coordinate (see
    :func:`grid_coordinates`).

    Parameters
    ----------
    n_dim
        Number of spatial dimensions; the layer adds that many channels.
    """

    def __init__(self, n_dim: int) -> None:
        super().__init__()
        self.n_dim = n_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, c, *spatial)`` to ``(batch, c + n_dim, *spatial)``."""
        sizes = x.shape[2:]
        coords = grid_coordinates(sizes, x.dtype, x.device)
        return torch.cat([x, coords.unsqueeze(0).expand(x.shape[0], -1, *sizes)], dim=1)

    def extra_repr(self) -> str:
        return f"n_dim={self.n_dim}"
