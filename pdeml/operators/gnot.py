"""GNOT: General Neural Operator Transformer (Hao et al., ICML 2023), on point clouds and grids."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from pdeml.operators.base import OperatorBase
from pdeml.operators.layers.attention import HeterogeneousCrossAttention, LinearAttention
from pdeml.operators.layers.embedding import grid_coordinates
from pdeml.operators.layers.mlp import get_activation


class TokenMLP(nn.Module):
    """``n_linear`` linear layers with activations between, on ``(..., in_features)`` tokens.

    ``n_residual`` > 0 inserts that many residual hidden layers ``x + act(W x)`` after the first
    (the reference code's ``MLP(n_layers=...)``).
    """

    def __init__(self, in_features: int, out_features: int, hidden: int,
                 activation: str = "gelu", n_linear: int = 2, n_residual: int = 0) -> None:
        super().__init__()
        sizes = [in_features] + [hidden] * (n_linear - 1) + [out_features]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:],
                                                                    strict=True))
        self.residual = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(n_residual))
        self.activation = get_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers[:-1]):
            x = self.activation(layer(x))
            if i == 0:
                for res in self.residual:
                    x = x + self.activation(res(x))
        return self.layers[-1](x)


class GeometricMoE(nn.Module):
    """GNOT's gated mixture of expert FFNs: ``sum_e g_e(x) FFN_e(h)``, gate given.

    The gate ``g(x) = softmax(G(x))`` comes from the block (:class:`GNOTBlock`): a function of
    the point's coordinates only, shared by the block's two FFNs as in the reference code, so
    each expert can specialise on a region of the domain while every token still gets a
    smooth, dense mixture.

    Parameters
    ----------
    channels, hidden
        Token width and the experts' hidden width.
    n_experts
        Number of expert FFNs.
    activation
        Activation name.
    """

    def __init__(self, channels: int, hidden: int, n_experts: int,
                 activation: str = "gelu") -> None:
        super().__init__()
        self.n_experts, self.hidden = n_experts, hidden
        scale1, scale2 = channels ** -0.5, hidden ** -0.5
        # Expert e owns columns e*hidden:(e+1)*hidden of w1 and the same rows of w2.
        self.w1 = nn.Parameter(torch.empty(channels, n_experts * hidden).uniform_(-scale1, scale1))
        self.b1 = nn.Parameter(torch.zeros(n_experts * hidden))
        self.w2 = nn.Parameter(torch.empty(n_experts * hidden, channels).uniform_(-scale2, scale2))
        self.b2 = nn.Parameter(torch.zeros(n_experts, channels))
        self.activation = get_activation(activation)

    def forward(self, h: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """``h`` ``(batch, n, channels)``, ``gate`` ``(batch or 1, n, n_experts)`` (sums to 1)."""
        flat = h.reshape(-1, h.shape[-1])
        out = gate @ self.b2
        # One expert at a time, the gate applied to its channels-wide output: the elementwise
        # work is n x channels per expert instead of n x hidden (2-4x less) and no copies.
        for e in range(self.n_experts):
            cols = slice(e * self.hidden, (e + 1) * self.hidden)
            z = self.activation(torch.addmm(self.b1[cols], flat, self.w1[:, cols]))
            y = (z @ self.w2[cols]).view_as(h)
            out = out + (y if self.n_experts == 1 else gate[..., e:e + 1] * y)
        return out


class GNOTBlock(nn.Module):
    """Cross-attention to the input functions, then self-attention, each followed by the gated
    expert FFN; attention is pre-norm and each FFN's output is normalized before it is added
    (``h + LN(FFN(h))``), the reference code's arrangement."""

    def __init__(self, channels: int, n_inputs: int, space_dim: int, n_heads: int,
                 n_experts: int, mlp_ratio: int, activation: str) -> None:
        super().__init__()
        hidden = mlp_ratio * channels
        self.norm_q1, self.norm_ffn1 = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.norm_q2, self.norm_ffn2 = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.norm_inputs = nn.ModuleList(nn.LayerNorm(channels) for _ in range(n_inputs))
        self.cross = HeterogeneousCrossAttention(channels, n_inputs, n_heads)
        self.self_attn = LinearAttention(channels, n_heads)
        # The reference's gate: three layers, the experts' hidden width (one per block).
        self.gate = (TokenMLP(space_dim, n_experts, hidden, activation, n_linear=3)
                     if n_experts > 1 else None)
        self.ffn1 = GeometricMoE(channels, hidden, n_experts, activation)
        self.ffn2 = GeometricMoE(channels, hidden, n_experts, activation)

    def forward(self, h: torch.Tensor, coords: torch.Tensor, contexts: list[torch.Tensor],
                masks: list[torch.Tensor | None], mask: torch.Tensor | None) -> torch.Tensor:
        """``coords`` may hold one shared point set ``(1, n, space_dim)`` for the batch."""
        if self.gate is None:  # a single expert: its weight is 1 everywhere
            gate = torch.ones_like(coords[..., :1])
        else:
            gate = self.gate(coords).softmax(dim=-1)
        normed = [norm(c) for norm, c in zip(self.norm_inputs, contexts, strict=True)]
        h = h + self.cross(self.norm_q1(h), normed, masks)
        h = h + self.norm_ffn1(self.ffn1(h, gate))
        h = h + self.self_attn(self.norm_q2(h), key_mask=mask)
        return h + self.norm_ffn2(self.ffn2(h, gate))


class GNOT(OperatorBase):
    """General Neural Operator Transformer: point clouds (with masks) and grids.

    Query points are embedded by an MLP of their coordinates; the input function (its values
    at the points, with their coordinates) and any extra input functions are embedded by MLPs
    of their own. Each of ``n_layers`` blocks applies heterogeneous normalized cross-attention
    from the queries to all input functions, a geometric-gating mixture-of-experts FFN,
    normalized linear self-attention over the queries and a second gated FFN (residual).
    A final MLP maps each query token to the output channels.

    Where pdeml follows the reference code (``HaoZhongkai/GNOT``, ``models/mmgpt.py``): the
    attention output is ``W_o (q~ + sum_l Attn_l)`` (the softmaxed query added, the input
    functions summed, not averaged); attention is pre-norm and each FFN post-normalized
    (``h + LN(FFN(h))``); one gate network per block (a 3-layer MLP of the coordinates with the
    experts' hidden width) serves both FFNs. The default sizes are the reference's ``args.py``
    defaults: width 64, 3 blocks, 1 head, 1 expert with a 4x-wide FFN (so no gate), residual
    encoder and decoder MLPs with 3 hidden layers (``mlp_layers``). pdeml's earlier defaults
    (4 heads, 3 gated experts of 2x width, plain MLPs) reached test relative L2 0.0952 against
    0.0882 for these after 1000 equal steps on Darcy 32² and cost 1.2x per step
    (``scripts/bench_gnot.py``). Where it departs: the experts' weights are stored as one
    matrix per layer and applied one expert at a time (the same function as the reference's
    stacked experts); padded point clouds carry a key mask instead of DGL graphs; on grids
    the coordinate-only work (query encoder, gates) runs once per batch, not once per sample;
    ``checkpoint=True`` recomputes each block in the backward pass instead of storing its
    activations (memory for time).

    Calls:

    - point clouds: ``net(coords, features, mask=None, inputs=None)`` with ``coords``
      ``(batch, n, space_dim)``, ``features`` ``(batch, n, in_channels)``, ``mask``
      ``(batch, n)`` (true at real points; padding never enters an attention sum) and
      ``inputs`` a list of ``(values, mask)`` per extra input function, ``values``
      ``(batch, m_l, extra_inputs[l])``; returns ``(batch, n, out_channels)``;
    - grids: ``net(x)`` with ``x`` ``(batch, in_channels, *spatial)`` (``space_dim`` axes);
      points are the grid nodes at coordinates ``j / n``.

    Precision (issue 29; ``scripts/bench_precision.py``): under ``bf16-mixed`` every linear
    layer and the attention's products run in bf16 GEMMs with fp32 accumulation; layer norms
    and the softmaxes follow autocast's own rules, normalization and loss stay fp32
    (``OperatorModule``). At 64^2 the output is 6.1e-3 from float64 (fp32: 2.8e-7) and the
    gradients 4.0e-2; running the attention (softmaxes, ``k~^T v``, the normalizing sums) in
    fp32 left them at 5.6e-3 and 4.0e-2, so GNOT has no fp32 region of its own. Darcy 64^2
    after 100 equal steps: -0.5% against fp32 (3 seeds). bf16 halves a step's peak memory.

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
        Experts of each gated FFN (with more than one, a gate network of the coordinates
        mixes them: GNOT's geometric gating, for multi-scale or multi-region geometries).
    mlp_ratio
        Expert hidden width as a multiple of ``hidden_channels``.
    extra_inputs
        Channels of each extra input function (e.g. boundary shapes or parameter vectors);
        each enters the cross-attention as its own token set.
    activation
        Activation name.
    checkpoint
        Activation checkpointing per block while training (saves most of the activation
        memory, about one extra forward pass of time).
    mlp_layers
        Residual hidden layers in the query and input encoders and the decoder (the
        reference code's ``--mlp-layers``); 0 gives plain 2-layer MLPs.

    Examples
    --------
    >>> net = GNOT(in_channels=1, out_channels=1)
    >>> net(torch.rand(2, 300, 2), torch.randn(2, 300, 1)).shape
    torch.Size([2, 300, 1])
    """

    # Checkpoints written before ``mlp_layers`` (and ``checkpoint``) existed: plain MLPs.
    legacy_defaults = {"mlp_layers": 0, "checkpoint": False}

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        space_dim: int = 2,
        hidden_channels: int = 64,
        n_layers: int = 3,
        n_heads: int = 1,
        n_experts: int = 1,
        mlp_ratio: int = 4,
        extra_inputs: Sequence[int] = (),
        activation: str = "gelu",
        checkpoint: bool = False,
        mlp_layers: int = 3,
    ) -> None:
        super().__init__()
        extra_inputs = tuple(int(c) for c in extra_inputs)
        if min(in_channels, out_channels, space_dim, n_layers, n_experts, mlp_ratio) < 1:
            raise ValueError("GNOT sizes (channels, space_dim, n_layers, n_experts, mlp_ratio) "
                             "must be positive")
        if mlp_layers < 0:
            raise ValueError(f"GNOT mlp_layers must be >= 0, got {mlp_layers}")
        if any(c < 1 for c in extra_inputs):
            raise ValueError(f"GNOT extra_inputs must be positive channel counts: {extra_inputs}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.space_dim = self.n_dim = space_dim
        self.extra_inputs, self.checkpoint = extra_inputs, checkpoint
        width = hidden_channels
        res = {"n_residual": mlp_layers}
        self.query_encoder = TokenMLP(space_dim, width, width, activation, **res)
        self.input_encoders = nn.ModuleList(
            [TokenMLP(space_dim + in_channels, width, width, activation, **res)]
            + [TokenMLP(c, width, width, activation, **res) for c in extra_inputs]
        )
        self.blocks = nn.ModuleList(
            GNOTBlock(width, 1 + len(extra_inputs), space_dim, n_heads, n_experts, mlp_ratio,
                      activation)
            for _ in range(n_layers)
        )
        self.norm_out = nn.LayerNorm(width)
        self.decoder = TokenMLP(width, out_channels, width, activation, **res)

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
        # One point set for the whole batch: coordinate-only work is done once (shape 1, n, d).
        coords = grid_coordinates(sizes, x.dtype, x.device).flatten(1).T.unsqueeze(0)
        features = x.flatten(2).transpose(1, 2)
        out = self._run(coords, features, None, inputs)
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
        return self._run(coords, features, mask, inputs)

    def _run(self, coords: torch.Tensor, features: torch.Tensor, mask: torch.Tensor | None,
             inputs: Sequence[tuple[torch.Tensor, torch.Tensor | None]] | None) -> torch.Tensor:
        """``coords`` ``(batch or 1, n, d)``: 1 when every sample shares the point set."""
        b = features.shape[0]
        extra, extra_masks = self._extra_tokens(inputs, b)
        shared = coords.expand(b, -1, -1)
        contexts = [self.input_encoders[0](torch.cat([shared, features], dim=-1)), *extra]
        masks = [mask, *extra_masks]
        h = self.query_encoder(coords).expand(b, -1, -1)
        for block in self.blocks:
            if self.checkpoint and self.training and torch.is_grad_enabled():
                h = checkpoint(block, h, coords, contexts, masks, mask, use_reentrant=False)
            else:
                h = block(h, coords, contexts, masks, mask)
        return self.decoder(self.norm_out(h))
