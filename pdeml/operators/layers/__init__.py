"""Layers shared by the operators."""

from pdeml.operators.layers.pointwise import (
    ChannelMLP,
    DomainPadding,
    Pointwise,
    SoftGating,
    grid_embedding,
)
from pdeml.operators.layers.spectral import SpectralConv, kept_frequencies

__all__ = [
    "ChannelMLP",
    "DomainPadding",
    "Pointwise",
    "SoftGating",
    "SpectralConv",
    "grid_embedding",
    "kept_frequencies",
]
