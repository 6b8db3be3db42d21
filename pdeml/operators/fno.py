"""Fourier Neural Operator (Li et al., ICLR 2021) for 1-, 2- and 3-D grids."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from pdeml.operators.base import OperatorBase
from pdeml.operators.layers import (
    ChannelMLP,
    DomainPadding,
    Pointwise,
    SoftGating,
    SpectralConv,
    grid_embedding,
)

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}
SKIPS = ("linear", "soft-gating", "identity", "none")


def _skip(kind: str, channels: int) -> nn.Module | None:
    if kind == "linear":
        return Pointwise(channels, channels, bias=False)
    if kind == "soft-gating":
        return SoftGating(channels)
    if kind == "identity":
        return nn.Identity()
    return None


class FNO(OperatorBase):
    """Fourier Neural Operator: lift, ``n_layers`` Fourier layers, project.

    Each Fourier layer is ``act(SpectralConv(v) + skip(v))`` (no activation after the last),
    optionally followed by a residual channel MLP.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and output fields.
    n_modes
        Fourier modes kept per spatial axis (positive and negative frequencies together); its
        length sets the dimension (1 to 3).
    hidden_channels
        Width of the Fourier layers.
    n_layers
        Number of Fourier layers.
    lifting_channels
        Hidden width of the lifting MLP; ``0`` (default) lifts with one linear layer.
    projection_channels
        Hidden width of the projection MLP (default ``2 * hidden_channels``).
    domain_padding
        Fraction of each axis zero-padded before the Fourier layers (non-periodic problems).
    positional_embedding
        Append grid coordinates in [0, 1] as input channels.
    skip
        ``linear`` (1x1 conv), ``soft-gating``, ``identity`` or ``none``.
    channel_mlp
        Add a residual two-layer channel MLP (expansion 0.5) after each Fourier layer.
    activation
        ``gelu``, ``relu``, ``tanh`` or ``silu``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_modes: Sequence[int] = (16, 16),
        hidden_channels: int = 32,
        n_layers: int = 4,
        lifting_channels: int = 0,
        projection_channels: int | None = None,
        domain_padding: float = 0.0,
        positional_embedding: bool = True,
        skip: str = "linear",
        channel_mlp: bool = False,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        self.record_config(locals())
        n_modes = tuple(int(m) for m in n_modes)
        if min(in_channels, out_channels, hidden_channels, n_layers) < 1:
            raise ValueError("FNO channel counts and n_layers must be positive")
        if skip not in SKIPS:
            raise ValueError(f"unknown skip '{skip}'; use one of {', '.join(SKIPS)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}'; use {', '.join(ACTIVATIONS)}")
        self.n_dim, self.in_channels = len(n_modes), in_channels
        self.positional_embedding = positional_embedding
        self.act = ACTIVATIONS[activation]()
        lift_in = in_channels + (self.n_dim if positional_embedding else 0)
        self.lifting = (
            ChannelMLP(lift_in, hidden_channels, lifting_channels, self.act)
            if lifting_channels else Pointwise(lift_in, hidden_channels)
        )
        self.padding = DomainPadding(domain_padding)
        self.spectral = nn.ModuleList(
            SpectralConv(hidden_channels, hidden_channels, n_modes) for _ in range(n_layers)
        )
        self.skips = nn.ModuleList(_skip(skip, hidden_channels) for _ in range(n_layers))
        half = max(1, hidden_channels // 2)
        self.mlps = nn.ModuleList(
            ChannelMLP(hidden_channels, hidden_channels, half, self.act) for _ in range(n_layers)
        ) if channel_mlp else None
        proj = projection_channels or 2 * hidden_channels
        self.projection = ChannelMLP(hidden_channels, out_channels, proj, self.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x, self.in_channels)
        sizes = tuple(x.shape[2:])
        if self.positional_embedding:
            x = grid_embedding(x)
        v = self.padding.pad(self.lifting(x))
        for i, spectral in enumerate(self.spectral):
            skip = self.skips[i]
            out = spectral(v) if skip is None else spectral(v) + skip(v)
            if i < len(self.spectral) - 1:
                out = self.act(out)
            if self.mlps is not None:
                out = out + self.mlps[i](out)
            v = out
        return self.projection(self.padding.unpad(v, sizes))
