"""Normalization that travels with the model (its statistics are buffers in the state_dict)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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

    def _view(self, t: torch.Tensor, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return t.view(1, -1, *([1] * (x.ndim - 2))).to(dtype)

    def _apply(self, fn: Any, recurse: bool = True) -> UnitGaussianNormalizer:
        # The statistics stay float32 when the model is cast to bf16/fp16 (Lightning's
        # bf16-true, a bf16 export): rounded to 8 bits they would shift every prediction.
        super()._apply(fn, recurse)
        for name in ("mean", "std"):
            buf = getattr(self, name)
            if buf.dtype in (torch.bfloat16, torch.float16):
                setattr(self, name, buf.float())
        return self

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
        """Physical units to normalized, computed in at least float32, returned in ``x``'s
        dtype."""
        wide = torch.promote_types(x.dtype, torch.float32)
        z = (x.to(wide) - self._view(self.mean, x, wide)) / self._view(self.std, x, wide)
        return z.to(x.dtype)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized to physical units, in at least float32: a bf16 network output is
        de-normalized (and the loss taken) in float32."""
        wide = torch.promote_types(x.dtype, torch.float32)
        return x.to(wide) * self._view(self.std, x, wide) + self._view(self.mean, x, wide)
