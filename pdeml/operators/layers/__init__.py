"""Layers shared by the operators (layers apart from models, as in neuraloperator)."""

from pdeml.operators.layers.embedding import GridEmbedding, grid_coordinates
from pdeml.operators.layers.mlp import ChannelMLP, Pointwise, SoftGating, get_activation
from pdeml.operators.layers.padding import DomainPadding
from pdeml.operators.layers.spectral import SpectralConv, dft_bases, resolved_k_max

__all__ = [
    "ChannelMLP",
    "DomainPadding",
    "GridEmbedding",
    "Pointwise",
    "SoftGating",
    "SpectralConv",
    "dft_bases",
    "get_activation",
    "grid_coordinates",
    "resolved_k_max",
]
