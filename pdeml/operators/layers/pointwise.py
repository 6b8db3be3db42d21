"""Pointwise (1x1) layers, positional embedding and domain padding for any dimension."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class Pointwise(nn.Module):
    """A 1x1 convolution on ``(batch, channels, *spatial)`` for any number of spatial dims."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.flatten(2)).view(x.shape[0], -1, *x.shape[2:])


class ChannelMLP(nn.Module):
    """Two pointwise layers with an activation between them."""

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int,
                 activation: nn.Module) -> None:
        super().__init__()
        self.fc1 = Pointwise(in_channels, hidden_channels)
        self.fc2 = Pointwise(hidden_channels, out_channels)
        self.act = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SoftGating(nn.Module):
    """Per-channel scaling skip connection (neuraloperator's ``soft-gating``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, *([1] * (x.ndim - 2)))


def grid_embedding(x: torch.Tensor) -> torch.Tensor:
    """Append one channel per spatial axis holding the coordinate in [0, 1]."""
    sizes, b = x.shape[2:], x.shape[0]
    axes = [torch.linspace(0.0, 1.0, n, device=x.device, dtype=x.dtype) for n in sizes]
    grids = torch.meshgrid(*axes, indexing="ij")
    coords = torch.stack(grids).unsqueeze(0).expand(b, -1, *sizes)
    return torch.cat([x, coords], dim=1)


class DomainPadding(nn.Module):
    """Zero-pad the end of every spatial axis by a fraction of its size, and crop it back.

    Spectral layers assume periodicity; the padded margin lets a non-periodic solution leave
    one edge without wrapping into the other.
    """

    def __init__(self, fraction: float) -> None:
        super().__init__()
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"domain_padding must be in [0, 1], got {fraction}")
        self.fraction = fraction

    def amounts(self, sizes: tuple[int, ...]) -> list[int]:
        """Points added per axis."""
        return [int(math.ceil(self.fraction * n)) for n in sizes]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Pad the trailing side of each spatial axis."""
        pads: list[int] = []
        for p in reversed(self.amounts(tuple(x.shape[2:]))):
            pads += [0, p]
        return F.pad(x, pads) if any(pads) else x

    def unpad(self, x: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
        """Crop back to the original ``sizes``."""
        index = (slice(None), slice(None), *(slice(0, n) for n in sizes))
        return x[index]
