"""Domain padding: room for non-periodic solutions inside a periodic (Fourier) layer."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class DomainPadding(nn.Module):
    """Zero-pad the end of each spatial axis by a fraction of its size, and crop it back.

    Spectral layers treat the grid as periodic; a margin of zeros after the last point keeps
    a non-periodic field from wrapping around into its first point. Padding only the end of
    each axis keeps the original points at their indices, so cropping is a plain slice and
    odd sizes need no rounding of halves.

    Parameters
    ----------
    fraction
        Points added per axis, as a fraction of its size: ``ceil(fraction * n)``. One value for
        every axis or one per axis. ``0`` disables padding.
    """

    def __init__(self, fraction: float | Sequence[float] = 0.0) -> None:
        super().__init__()
        fractions = [float(f) for f in fraction] if isinstance(fraction, Sequence) else [
            float(fraction)]
        if any(not 0.0 <= f <= 1.0 for f in fractions):
            raise ValueError(f"domain_padding must be in [0, 1], got {fraction}")
        self.fractions = fractions

    def amounts(self, sizes: Sequence[int]) -> list[int]:
        """Points added to each axis of a grid of ``sizes``.

        Parameters
        ----------
        sizes
            Grid points per spatial axis.

        Returns
        -------
        list of int
            ``ceil(fraction * n)`` per axis.
        """
        fractions = self.fractions * len(sizes) if len(self.fractions) == 1 else self.fractions
        if len(fractions) != len(sizes):
            raise ValueError(f"domain_padding has {len(fractions)} values for {len(sizes)} axes")
        # Round the product to 12 digits first, so 0.25 * 12 is 3 and not ceil(3.0000000001).
        return [math.ceil(round(f * n, 12)) for f, n in zip(fractions, sizes, strict=True)]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad the trailing side of every spatial axis of ``(batch, channels, *spatial)``."""
        pads: list[int] = []
        for amount in reversed(self.amounts(x.shape[2:])):
            pads += [0, amount]
        return F.pad(x, pads) if any(pads) else x

    def unpad(self, x: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
        """Crop the spatial axes of a padded tensor back to ``sizes``."""
        return x[(slice(None), slice(None), *(slice(0, n) for n in sizes))]

    def extra_repr(self) -> str:
        return f"fraction={self.fractions if len(self.fractions) > 1 else self.fractions[0]}"
