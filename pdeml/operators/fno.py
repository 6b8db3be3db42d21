"""Fourier Neural Operator (Li et al., ICLR 2021) for 1-, 2- and 3-D grids."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pdeml.operators.base import OperatorBase
from pdeml.operators.layers import (
    ChannelMLP,
    DomainPadding,
    GridEmbedding,
    Pointwise,
    SoftGating,
    SpectralConv,
    get_activation,
)

SKIPS = ("linear", "soft-gating", "identity", "none")
NORMS = ("group_norm", "instance_norm")
STABILIZERS = ("tanh",)


def _skip(kind: str | None, channels: int) -> nn.Module | None:
    if kind == "linear":
        return Pointwise(channels, channels, bias=False)
    if kind == "soft-gating":
        return SoftGating(channels)
    if kind == "identity":
        return nn.Identity()
    return None


class FNO(OperatorBase):
    """Fourier Neural Operator: lift, ``n_layers`` Fourier layers, project.

    Fourier layer ``l`` computes ``v <- act(SpectralConv(v) + skip(v))`` (no activation after
    the last layer); with ``channel_mlp`` each layer then adds a residual channel MLP,
    ``v <- v + mlp(v)``. Lifting and projection act pointwise.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and output fields.
    n_modes
        Fourier modes kept per spatial axis, counted like neuraloperator (positive and negative
        frequencies together: ``|k| <= n_modes[i] // 2``); its length (1 to 3) sets the
        spatial dimension. Grids too coarse for the band use what they resolve.
    hidden_channels
        Width of the Fourier layers.
    n_layers
        Number of Fourier layers.
    lifting_channels
        Hidden width of a two-layer lifting MLP; ``None`` (default) lifts with one linear map,
        as the original FNO.
    projection_channels
        Hidden width of the two-layer projection MLP; ``None`` means ``2 * hidden_channels``
        (neuraloperator's default ratio).
    domain_padding
        Fraction of each axis zero-padded (at its end) around the Fourier layers, for
        non-periodic problems; ``0`` for periodic ones.
    positional_embedding
        Append the grid coordinates (``j / n`` in [0, 1)) as input channels.
    skip
        Skip path of each Fourier layer: ``linear`` (1x1 conv, no bias), ``soft-gating``,
        ``identity`` or ``none`` (``None`` too).
    channel_mlp
        Add a residual two-layer channel MLP (hidden width ``hidden_channels // 2``) to each
        Fourier layer. Off by default: it costs about as much as the rest of the layer.
    activation
        ``gelu``, ``relu``, ``silu`` or ``tanh``.
    channel_mlp_skip
        Skip path around the channel MLP (same choices as ``skip``; ``identity`` by default).
    norm
        ``None``, ``group_norm`` (one group: normalises each sample over channels and grid) or
        ``instance_norm`` (per channel); applied after each spectral convolution (and channel
        MLP), as neuraloperator does.
    stabilizer
        ``None`` or ``tanh``: squash the input of each spectral convolution (neuraloperator's
        option for stability at high resolution or in low precision).

    Notes
    -----
    Precision (issue 29; ``scripts/bench_precision.py``). Under ``bf16-mixed`` every matrix
    product runs in bf16: lifting, skips and projection, the DFT stages (bases cached in bf16)
    and the per-mode channel mixing; the GEMMs accumulate in fp32 and round their outputs.
    The FFT transform runs in an fp32 region (no bf16 FFT on CPU; cuFFT's half precision
    takes power-of-two sizes only), so every grid works. No further fp32 region: at 64^2 the
    output is 4.8e-3 from float64 (fp32: 3.4e-7) and the gradients 1.9e-3, bf16's rounding
    (2^-9) times a small factor, and Darcy 64^2 trains to within 0.3% of fp32's test error
    after 200 equal steps (3 seeds). Normalization and loss stay fp32 (``OperatorModule``).

    Examples
    --------
    >>> net = FNO(in_channels=1, out_channels=1, n_modes=(16, 16))
    >>> net(torch.randn(4, 1, 64, 64)).shape
    torch.Size([4, 1, 64, 64])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_modes: Sequence[int] = (16, 16),
        hidden_channels: int = 32,
        n_layers: int = 4,
        lifting_channels: int | None = None,
        projection_channels: int | None = None,
        domain_padding: float | Sequence[float] = 0.0,
        positional_embedding: bool = True,
        skip: str | None = "linear",
        channel_mlp: bool = False,
        activation: str = "gelu",
        channel_mlp_skip: str | None = "identity",
        norm: str | None = None,
        stabilizer: str | None = None,
    ) -> None:
        super().__init__()
        n_modes = tuple(int(m) for m in n_modes)
        if min(in_channels, out_channels, hidden_channels, n_layers) < 1:
            raise ValueError("FNO channel counts and n_layers must be positive")
        for what, value, allowed in (("skip", skip, SKIPS), ("norm", norm, NORMS),
                                     ("channel_mlp_skip", channel_mlp_skip, SKIPS),
                                     ("stabilizer", stabilizer, STABILIZERS)):
            if value is not None and value not in allowed:
                raise ValueError(f"unknown {what} '{value}'; use one of {', '.join(allowed)}"
                                 " or None")
        self.activation = get_activation(activation)
        self.n_dim, self.in_channels, self.out_channels = len(n_modes), in_channels, out_channels
        self.embedding = GridEmbedding(self.n_dim) if positional_embedding else None
        lift_in = in_channels + (self.n_dim if positional_embedding else 0)
        self.lifting = (
            ChannelMLP(lift_in, hidden_channels, lifting_channels, activation)
            if lifting_channels else Pointwise(lift_in, hidden_channels)
        )
        self.padding = DomainPadding(domain_padding)
        self.spectral = self._spectral_layers(hidden_channels, n_modes, n_layers)
        self.skips = nn.ModuleList(_skip(skip, hidden_channels) for _ in range(n_layers))
        self.mlps = nn.ModuleList(
            ChannelMLP(hidden_channels, hidden_channels, max(1, hidden_channels // 2), activation)
            for _ in range(n_layers)
        ) if channel_mlp else None
        self.mlp_skips = nn.ModuleList(
            _skip(channel_mlp_skip, hidden_channels) for _ in range(n_layers)
        ) if channel_mlp else None
        per_layer = 2 if channel_mlp else 1
        self.norms = nn.ModuleList(
            nn.GroupNorm(1 if norm == "group_norm" else hidden_channels, hidden_channels)
            for _ in range(per_layer * n_layers)
        ) if norm else None
        self.stabilizer = stabilizer
        self.projection = ChannelMLP(hidden_channels, out_channels,
                                     projection_channels or 2 * hidden_channels, activation)

    def _spectral_layers(self, channels: int, n_modes: tuple[int, ...],
                         n_layers: int) -> nn.ModuleList:
        """The spectral convolutions; subclasses (TFNO) override this."""
        return nn.ModuleList(SpectralConv(channels, channels, n_modes) for _ in range(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, in_channels, *spatial)`` to ``(batch, out_channels, *spatial)``."""
        self.check_input(x, self.in_channels)
        sizes = tuple(x.shape[2:])
        if self.embedding is not None:
            x = self.embedding(x)
        v = self.padding.pad(self.lifting(x))
        for i in range(len(self.spectral)):
            v = self._layer(i, v)
        return self.projection(self.padding.unpad(v, sizes))

    def _layer(self, i: int, v: torch.Tensor) -> torch.Tensor:
        """Fourier layer ``i``: spectral conv + skip, [norm], activation (not after the last
        layer), then [channel MLP + its skip, [norm]]."""
        per_layer = 2 if self.mlps is not None else 1
        out = self.spectral[i](torch.tanh(v) if self.stabilizer == "tanh" else v)
        if self.skips[i] is not None:
            out = out + self.skips[i](v)
        if self.norms is not None:
            out = self.norms[per_layer * i](out)
        if i < len(self.spectral) - 1:
            out = self.activation(out)
        if self.mlps is None:
            return out
        skip = self.mlp_skips[i]
        res = self.mlps[i](out)
        if skip is not None:
            res = res + skip(out)
        return res if self.norms is None else self.norms[per_layer * i + 1](res)
