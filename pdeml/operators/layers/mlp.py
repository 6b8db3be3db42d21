"""Pointwise layers: 1x1 linear maps over channels, channel MLPs, activations, soft gating."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "tanh": torch.tanh,
}


def get_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation function called ``name``.

    Parameters
    ----------
    name
        One of ``gelu``, ``relu``, ``silu``, ``tanh``.

    Returns
    -------
    callable
        A tensor-to-tensor function.

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}'; use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class Pointwise(nn.Module):
    """A 1x1 convolution over ``(batch, channels, *spatial)``, any number of spatial dims.

    Implemented as one batched matrix product ``W @ x.view(batch, channels, points)`` with the
    bias fused (``baddbmm``): no per-dimension ``ConvNd`` and no layout change.

    Parameters
    ----------
    in_channels, out_channels
        Channel counts.
    bias
        Learn an additive bias per output channel.

    Notes
    -----
    Initialised like ``nn.Linear`` (uniform, bound ``1 / sqrt(in_channels)``).
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        bound = 1.0 / math.sqrt(in_channels)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels).uniform_(-bound, bound))
        self.bias = (nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))
                     if bias else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, in_channels, *spatial)`` to ``(batch, out_channels, *spatial)``."""
        flat = x.reshape(x.shape[0], self.in_channels, -1)
        weight = self.weight.expand(x.shape[0], -1, -1)
        if self.bias is None:
            out = torch.bmm(weight, flat)
        else:
            out = torch.baddbmm(self.bias[:, None].expand(x.shape[0], -1, flat.shape[-1]),
                                weight, flat)
        return out.view(x.shape[0], self.out_channels, *x.shape[2:])

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, bias={self.bias is not None}"


class ChannelMLP(nn.Module):
    """Two pointwise layers with an activation between them.

    Parameters
    ----------
    in_channels, out_channels
        Channel counts.
    hidden_channels
        Width of the hidden layer.
    activation
        Name of the activation (see :func:`get_activation`).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int,
                 activation: str = "gelu") -> None:
        super().__init__()
        self.fc1 = Pointwise(in_channels, hidden_channels)
        self.fc2 = Pointwise(hidden_channels, out_channels)
        self.activation = get_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, in_channels, *spatial)`` to ``(batch, out_channels, *spatial)``."""
        return self.fc2(self.activation(self.fc1(x)))


class SoftGating(nn.Module):
    """Per-channel scaling, a light skip connection (initialised to the identity).

    Parameters
    ----------
    channels
        Channel count.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each channel of ``(batch, channels, *spatial)``."""
        return x * self.weight.view(1, -1, *([1] * (x.ndim - 2)))
