"""GNOT: General Neural Operator Transformer (Hao et al., ICML 2023), on point clouds and grids."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pdeml.operators.base import OperatorBase
from pdeml.operators.layers.attention import HeterogeneousCrossAttention, LinearAttention
from pdeml.operators.layers.embedding import grid_coordinates
from pdeml.operators.layers.mlp import get_activation


class TokenMLP(nn.Module):
    """Two linear layers with an activation, on ``(..., in_features)`` tokens."""

    def __init__(self, in_features: int, out_features: int, hidden: int,
                 activation: str = "gelu") -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(in_features, hidden), nn.Linear(hidden, out_features)
        self.activation = get_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(x)))


class GeometricMoE(nn.Module):
    """GNOT's geometric gating mixture of experts: ``sum_e g_e(x) FFN_e(h)``.

    The gate ``g(x) = softmax(G(x))`` is a small MLP of the point's coordinates only, so each
    expert can specialise on a region of the domain (a multi-scale or multi-physics split)
    while every token still gets a smooth, dense mixture.

    Parameters
    ----------
    channels, hidden
        Token width and the experts' hidden width.
    space_dim
        Coordinates per point (the gate's input).
    n_experts
        Number of expert FFNs.
    activation
        Activation name.
    """

    def __init__(self, channels: int, hidden: int, space_dim: int, n_experts: int,
                 activation: str = "gelu") -> None:
        super().__init__()
        self.gate = TokenMLP(space_dim, n_experts, hidden, activation)
        self.n_experts, self.hidden = n_experts, hidden
        scale1, scale2 = channels ** -0.5, hidden ** -0.5
        # Experts side by side: the first layer is one GEMM to n_experts * hidden features and,
        # the gate folded in before it, the second is one GEMM back (no per-expert batches).
        self.w1 = nn.Parameter(torch.empty(channels, n_experts * hidden).uniform_(-scale1, scale1))
        self.b1 = nn.Parameter(torch.zeros(n_experts * hidden))
        self.w2 = nn.Parameter(torch.empty(n_experts * hidden, channels).uniform_(-scale2, scale2))
        self.b2 = nn.Parameter(torch.zeros(n_experts, channels))
        self.activation = get_activation(activation)

    def forward(self, h: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """``h`` ``(batch, n, channels)``, ``coords`` ``(batch, n, space_dim)``."""
        gate = self.gate(coords).softmax(dim=-1)  # (b, n, e)
        z = self.activation(torch.addmm(self.b1, h.reshape(-1, h.shape[-1]), self.w1))
        z = z.view(*h.shape[:-1], self.n_experts, self.hidden) * gate.unsqueeze(-1)
        out = z.flatten(-2) @ self.w2
        return out + gate @ self.b2


class GNOTBlock(nn.Module):
    """Cross-attention to the input functions, then self-attention, each with a gated MoE FFN."""

    def __init__(self, channels: int, n_inputs: int, space_dim: int, n_heads: int,
                 n_experts: int, mlp_ratio: int, activation: str) -> None:
        super().__init__()
        hidden = mlp_ratio * channels
        self.norm_q1, self.norm_q2 = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.norm_q3, self.norm_q4 = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.norm_inputs = nn.ModuleList(nn.LayerNorm(channels) for _ in range(n_inputs))
        self.cross = HeterogeneousCrossAttention(channels, n_inputs, n_heads)
        self.moe1 = GeometricMoE(channels, hidden, space_dim, n_experts, activation)
        self.self_attn = LinearAttention(channels, n_heads)
        self.moe2 = GeometricMoE(channels, hidden, space_dim, n_experts, activation)

    def forward(self, h: torch.Tensor, coords: torch.Tensor, contexts: list[torch.Tensor],
                masks: list[torch.Tensor | None], mask: torch.Tensor | None) -> torch.Tensor:
        normed = [norm(c) for norm, c in zip(self.norm_inputs, contexts, strict=True)]
        h = h + self.cross(self.norm_q1(h), normed, masks)
        h = h + self.moe1(self.norm_q2(h), coords)
        h = h + self.self_attn(self.norm_q3(h), key_mask=mask)
        return h + self.moe2(self.norm_q4(h), coords)


class GNOT(OperatorBase):
    """General Neural Operator Transformer: point clouds (with masks) and grids.

    Query points are embedded by an MLP of their coordinates; the input function (its values
    at the points, with their coordinates) and any extra input functions are embedded by MLPs
    of their own. Each of ``n_layers`` blocks applies heterogeneous normalized cross-attention
    from the queries to all input functions, a geometric-gating mixture-of-experts FFN,
    normalized linear self-attention over the queries and a second gated FFN (pre-norm,
    residual). A final MLP maps each query token to the output channels.

    Calls:

    - point clouds: ``net(coords, features, mask=None, inputs=None)`` with ``coords``
      ``(batch, n, space_dim)``, ``features`` ``(batch, n, in_channels)``, ``mask``
      ``(batch, n)`` (true at real points; padding never enters an attention sum) and
      ``inputs`` a list of ``(values, mask)`` per extra input function, ``values``
      ``(batch, m_l, extra_inputs[l])``; returns ``(batch, n, out_channels)``;
    - grids: ``net(x)`` with ``x`` ``(batch, in_channels, *spatial)`` (``space_dim`` axes);
      points are the grid nodes at coordinates ``j / n``.

    Parameters
    ----------
    in_channels, out_channels
        Input function values and outputs per point.
    space_dim
        Coordinates per point (and spatial axes of a grid input).
    hidden_channels
        Token width.
    n_layers
        Number of blocks.
    n_heads
        Attention heads (divide ``hidden_channels``).
    n_experts
        Experts of each gated FFN.
    mlp_ratio
        Expert hidden width as a multiple of ``hidden_channels``.
    extra_inputs
        Channels of each extra input function (e.g. boundary shapes or parameter vectors);
        each enters the cross-attention as its own token set.
    activation
        Activation name.

    Examples
    --------
    >>> net = GNOT(in_channels=1, out_channels=1)
    >>> net(torch.rand(2, 300, 2), torch.randn(2, 300, 1)).shape
    torch.Size([2, 300, 1])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        space_dim: int = 2,
        hidden_channels: int = 64,
        n_layers: int = 3,
        n_heads: int = 4,
        n_experts: int = 3,
        mlp_ratio: int = 2,
        extra_inputs: Sequence[int] = (),
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        extra_inputs = tuple(int(c) for c in extra_inputs)
        if min(in_channels, out_channels, space_dim, n_layers, n_experts, mlp_ratio) < 1:
            raise ValueError("GNOT sizes (channels, space_dim, n_layers, n_experts, mlp_ratio) "
                             "must be positive")
        if any(c < 1 for c in extra_inputs):
            raise ValueError(f"GNOT extra_inputs must be positive channel counts: {extra_inputs}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.space_dim = self.n_dim = space_dim
        self.extra_inputs = extra_inputs
        width = hidden_channels
        self.query_encoder = TokenMLP(space_dim, width, width, activation)
        self.input_encoders = nn.ModuleList(
            [TokenMLP(space_dim + in_channels, width, width, activation)]
            + [TokenMLP(c, width, width, activation) for c in extra_inputs]
        )
        self.blocks = nn.ModuleList(
            GNOTBlock(width, 1 + len(extra_inputs), space_dim, n_heads, n_experts, mlp_ratio,
                      activation)
            for _ in range(n_layers)
        )
        self.norm_out = nn.LayerNorm(width)
        self.decoder = TokenMLP(width, out_channels, width, activation)

    def forward(
        self,
        x: torch.Tensor,
        features: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        inputs: Sequence[tuple[torch.Tensor, torch.Tensor | None]] | None = None,
    ) -> torch.Tensor:
        """Point clouds ``(coords, features, mask, inputs)`` or a grid ``x``; see the class."""
        if features is None:
            return self._forward_grid(x, inputs)
        return self._forward_points(x, features, mask, inputs)

    def _forward_grid(self, x: torch.Tensor,
                      inputs: Sequence[tuple[torch.Tensor, torch.Tensor | None]] | None
                      ) -> torch.Tensor:
        self.check_input(x, self.in_channels)
        b, sizes = x.shape[0], tuple(x.shape[2:])
        coords = grid_coordinates(sizes, x.dtype, x.device).flatten(1).T
        coords = coords.unsqueeze(0).expand(b, -1, -1)
        out = self._forward_points(coords, x.flatten(2).transpose(1, 2), None, inputs)
        return out.transpose(1, 2).reshape(b, self.out_channels, *sizes)

    def _check_points(self, coords: torch.Tensor, features: torch.Tensor,
                      mask: torch.Tensor | None) -> None:
        d, c = self.space_dim, self.in_channels
        if coords.ndim != 3 or coords.shape[-1] != d:
            raise ValueError(f"GNOT expects coords (batch, n_points, {d}), got "
                             f"{tuple(coords.shape)}")
        if features.shape != (*coords.shape[:2], c):
            raise ValueError(f"GNOT expects features (batch, n_points, {c}) matching coords "
                             f"{tuple(coords.shape)}, got {tuple(features.shape)}")
        if mask is not None and mask.shape != coords.shape[:2]:
            raise ValueError(f"GNOT expects a mask (batch, n_points) = {tuple(coords.shape[:2])}"
                             f", got {tuple(mask.shape)}")

    def _extra_tokens(self, inputs: Sequence[tuple[torch.Tensor, torch.Tensor | None]] | None,
                      batch: int) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        inputs = list(inputs or [])
        if len(inputs) != len(self.extra_inputs):
            raise ValueError(f"GNOT was built for {len(self.extra_inputs)} extra input "
                             f"function(s), got {len(inputs)}")
        tokens, masks = [], []
        for i, ((values, m), c) in enumerate(zip(inputs, self.extra_inputs, strict=True)):
            if values.ndim != 3 or values.shape[0] != batch or values.shape[-1] != c:
                raise ValueError(f"GNOT extra input {i} must be (batch={batch}, tokens, {c}), "
                                 f"got {tuple(values.shape)}")
            tokens.append(self.input_encoders[1 + i](values))
            masks.append(m)
        return tokens, masks

    def _forward_points(self, coords: torch.Tensor, features: torch.Tensor,
                        mask: torch.Tensor | None,
                        inputs: Sequence[tuple[torch.Tensor, torch.Tensor | None]] | None
                        ) -> torch.Tensor:
        self._check_points(coords, features, mask)
        if mask is not None:
            # Padding may hold anything (NaN included): pin it so no arithmetic sees it.
            keep = mask.to(torch.bool).unsqueeze(-1)
            coords = torch.where(keep, coords, torch.zeros((), dtype=coords.dtype,
                                                           device=coords.device))
            features = torch.where(keep, features, torch.zeros((), dtype=features.dtype,
                                                               device=features.device))
        extra, extra_masks = self._extra_tokens(inputs, coords.shape[0])
        contexts = [self.input_encoders[0](torch.cat([coords, features], dim=-1)), *extra]
        masks = [mask, *extra_masks]
        h = self.query_encoder(coords)
        for block in self.blocks:
            h = block(h, coords, contexts, masks, mask)
        return self.decoder(self.norm_out(h))
