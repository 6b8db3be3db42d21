"""Normalization that travels with the model (its statistics are buffers in the state_dict)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


class UnitGaussianNormalizer(nn.Module):
    """Per-channel affine map to zero mean and unit variance.

    Statistics are one scalar per channel (pooled over samples and grid points), so the same
    normalizer applies at any resolution. They live in buffers: saved with the checkpoint,
    exported inside the model.

    Parameters
    ----------
    n_channels
        Number of channels (axis 1 of ``(batch, channels, *spatial)``).
    eps
        Floor on the standard deviation; constant channels are then only shifted.
    """

    def __init__(self, n_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(n_channels))
        self.register_buffer("std", torch.ones(n_channels))
        self.register_buffer("fitted", torch.tensor(False))

    def _view(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return t.view(1, -1, *([1] * (x.ndim - 2))).to(x.dtype)

    @torch.no_grad()
    def fit(self, batches: Iterable[torch.Tensor]) -> UnitGaussianNormalizer:
        """Compute the statistics in float64 over an iterable of ``(batch, channels, ...)``."""
        count, total, total_sq = 0, 0.0, 0.0
        for x in batches:
            x = x.to(torch.float64).transpose(0, 1).reshape(x.shape[1], -1)
            count += x.shape[1]
            total = total + x.sum(dim=1)
            total_sq = total_sq + (x * x).sum(dim=1)
        if count == 0:
            raise ValueError("cannot fit a normalizer on an empty dataset")
        mean = total / count
        var = (total_sq / count - mean**2).clamp_min(0.0)
        self.mean.copy_(mean)
        self.std.copy_(var.sqrt().clamp_min(self.eps))
        self.fitted.fill_(True)
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Physical units to normalized."""
        return (x - self._view(self.mean, x)) / self._view(self.std, x)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized to physical units."""
        return x * self._view(self.std, x) + self._view(self.mean, x)
