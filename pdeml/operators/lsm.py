"""Latent Spectral Models (Wu et al., ICML 2023): multi-scale neural spectral blocks, 1-3 D."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from pdeml.operators.base import OperatorBase
from pdeml.operators.layers.embedding import GridEmbedding
from pdeml.operators.layers.mlp import ChannelMLP, Pointwise

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_UPSAMPLE = {1: "linear", 2: "bilinear", 3: "trilinear"}


class DoubleConv(nn.Module):
    """Two ``3^d`` convolutions, each with batch norm and GELU (the U-Net stage)."""

    def __init__(self, in_channels: int, out_channels: int, n_dim: int,
                 mid_channels: int | None = None) -> None:
        super().__init__()
        conv, norm = _CONV[n_dim], _NORM[n_dim]
        mid = out_channels if mid_channels is None else mid_channels
        self.net = nn.Sequential(
            conv(in_channels, mid, 3, padding=1, bias=False), norm(mid),
            nn.GELU(),
            conv(mid, out_channels, 3, padding=1, bias=False), norm(out_channels),
            nn.GELU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v)


class NeuralSpectralBlock(nn.Module):
    """LSM's neural spectral block on one scale: patches -> latent tokens -> spectral -> grid.

    The map is cut into ``patches`` per axis. In each patch, ``n_tokens`` learned latent tokens
    attend to the patch's points (multi-head softmax attention, keys and values a pointwise
    map of the features). Each token channel ``z`` then passes the latent spectral transition
    ``z <- z + sum_k (a_k sin(k pi z / K) + b_k cos(k pi z / K))``, ``k = 1..K``, weights
    per channel: a learned nonlinear operator written in a trigonometric basis, as in the
    paper's latent "neural spectral" solver. The points then attend to the updated tokens
    (queries a pointwise map of the features), residually.

    Parameters
    ----------
    channels
        Feature width.
    n_dim
        Spatial dimensions.
    patches
        Patches per axis (every axis must be divisible by it; :class:`LSM` pads to make it so),
        or ``None`` to cut patches of ``patch_size`` points per axis instead (the paper's
        meaning: the patch count then follows the grid).
    n_tokens, n_basis, n_heads
        Latent tokens per patch, sin/cos basis size ``K``, attention heads.
    patch_size
        Points per patch along every axis, used when ``patches`` is ``None``.
    """

    def __init__(self, channels: int, n_dim: int, patches: int | None, n_tokens: int,
                 n_basis: int, n_heads: int, patch_size: int | None = None) -> None:
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"LSM width {channels} is not divisible by n_heads={n_heads}")
        if (patches is None) == (patch_size is None):
            raise ValueError("give the neural spectral block either patches or patch_size")
        self.n_dim, self.patches, self.patch_size = n_dim, patches, patch_size
        self.n_heads = n_heads
        head = channels // n_heads
        self.tokens = nn.Parameter(torch.rand(n_heads, n_tokens, head) / channels)
        self.encode_kv = Pointwise(channels, 2 * channels)
        self.decode_q = Pointwise(channels, channels)
        self.register_buffer("freqs", torch.arange(1, n_basis + 1) * (math.pi / n_basis),
                             persistent=False)
        self.spectral = nn.Parameter(torch.rand(channels, 2 * n_basis) / channels)

    def _counts(self, sizes: tuple[int, ...]) -> list[int]:
        if self.patches is not None:
            return [self.patches] * len(sizes)
        return [n // self.patch_size for n in sizes]

    def _patchify(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """``(b, c, *sizes)`` to ``(b * patches, heads, points per patch, c / heads)``."""
        b, c, *sizes = x.shape
        counts, d = self._counts(tuple(sizes)), self.n_dim
        split = [s for n, p in zip(sizes, counts, strict=True) for s in (p, n // p)]
        x = x.reshape(b, c, *split)
        # (b, c, p1, s1, p2, s2, ...) -> (b, p1, p2, ..., s1, s2, ..., c)
        order = [0, *range(2, 2 + 2 * d, 2), *range(3, 3 + 2 * d, 2), 1]
        x = x.permute(order).reshape(b * math.prod(counts), -1, self.n_heads, c // self.n_heads)
        return x.transpose(1, 2), tuple(sizes)

    def _unpatchify(self, t: torch.Tensor, b: int, sizes: tuple[int, ...]) -> torch.Tensor:
        counts, d = self._counts(sizes), self.n_dim
        c = t.shape[1] * t.shape[3]
        t = t.transpose(1, 2).reshape(b, *counts,
                                      *[n // p for n, p in zip(sizes, counts, strict=True)], c)
        order = [0, 2 * d + 1]
        for axis in range(d):
            order += [1 + axis, 1 + d + axis]
        return t.permute(order).reshape(b, c, *sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        k, v = self.encode_kv(x).chunk(2, dim=1)
        k, sizes = self._patchify(k)
        v, _ = self._patchify(v)
        tokens = self.tokens.unsqueeze(0).expand(k.shape[0], -1, -1, -1)
        z = tokens + _attention(tokens, k, v)  # (B', heads, tokens, head)
        # Spectral transition, per channel (head, head-channel) of each token.
        zc = z.transpose(2, 3).reshape(z.shape[0], -1, z.shape[2])  # (B', c, tokens)
        angles = zc.unsqueeze(-1) * self.freqs
        basis = torch.cat([angles.sin(), angles.cos()], dim=-1)
        zc = zc + torch.einsum("bctk,ck->bct", basis, self.spectral)
        z = zc.reshape(z.shape[0], self.n_heads, -1, z.shape[2]).transpose(2, 3)
        q, _ = self._patchify(self.decode_q(x))
        return x + self._unpatchify(_attention(q, z, z), b, sizes)


class LSM(OperatorBase):
    """Latent Spectral Model: a U-Net whose skip at every scale is a neural spectral block.

    Lift (pointwise, grid coordinates appended), encode at ``n_scales`` scales (each halves the
    grid and doubles the width, max-pool + double convolution; the coarsest keeps the width of
    the one above), apply a :class:`NeuralSpectralBlock` at every scale, decode from coarse to
    fine (upsample, concatenate, double convolution with a middle width of half its input,
    each decoder handing on the width of the scale above), project with a channel MLP. The
    widths are the reference code's (``thuml/Latent-Spectral-Models``, ``LSM_2D.py`` with its
    default bilinear upsampling): 64, 128, 256, 512, 512 for ``hidden_channels=64`` and 5
    scales (34.7M parameters if the coarsest doubled as well).

    Grids are zero-padded at the end of each axis to the next multiple of :meth:`multiple`
    (the coarsest grid and the patches must divide evenly) and cropped back, so any size works.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and output fields.
    n_dim
        Spatial dimensions (1-3).
    hidden_channels
        Width at the finest scale (doubled per scale but the coarsest).
    n_scales
        Number of scales, the finest included.
    n_tokens, n_basis, n_heads
        Latent tokens per patch, sin/cos basis size, attention heads (divides the widths).
    patches
        Patches per axis at the finest scale, halved per coarser scale (at least 1); ``None``
        (the default) cuts patches of ``patch_size`` points instead.
    patch_size
        Points per patch along every axis at every scale, as the paper's ``--patch-size``
        (its code: the patch count follows the grid). The default of 4 on a 64 grid with 4
        scales gives 16 x 16 patches at the finest scale and 2 x 2 at the coarsest, the
        paper's finest latent resolution (Darcy: 96 grid, 6-point patches, 16 x 16); 6 would
        pad 64 to 96 with 4 scales (2.25x the points), so 4 is the CPU-friendly equivalent.
    positional_embedding
        Append grid coordinates to the input.

    Notes
    -----
    Precision (issue 29; ``scripts/bench_precision.py``). Under ``bf16-mixed`` the
    convolutions, pointwise maps, patch attention (the CPU flash kernel accumulates in fp32)
    and the transition's basis contraction run in bf16; batch-norm statistics are accumulated
    in fp32 from the bf16 activations and the running statistics stay fp32. At
    initialisation LSM amplifies rounding about 10x more than the spectral operators (fp32:
    3.3e-6 from float64 at 64^2; bf16: 2.8e-2 on the output, 1.2e-1 on the gradients). At
    32^2, running the U-Net's convolutions in fp32 halved the output error but not the
    gradients', and the spectral blocks in fp32 changed neither; training does not see it: test
    error after 100 equal steps -1.3% (Darcy 64^2) and +0.3% (Navier-Stokes 64^2) against
    fp32, 3 seeds. So no fp32 region beyond the shared ones (normalization, loss).

    Examples
    --------
    >>> net = LSM(in_channels=1, out_channels=1)
    >>> net(torch.randn(2, 1, 50, 50)).shape
    torch.Size([2, 1, 50, 50])
    """

    # Not traceable with symbolic grid sizes: the patch split at every scale follows the grid.
    dynamic_grid_export = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_dim: int = 2,
        hidden_channels: int = 32,
        n_scales: int = 4,
        n_tokens: int = 4,
        n_basis: int = 12,
        n_heads: int = 8,
        patches: int | None = None,
        positional_embedding: bool = True,
        patch_size: int = 4,
    ) -> None:
        super().__init__()
        if n_dim not in _CONV:
            raise ValueError(f"LSM works on 1-3 spatial dims, got n_dim={n_dim}")
        if min(in_channels, out_channels, hidden_channels, n_scales, n_tokens, n_basis,
               n_heads, patch_size, 1 if patches is None else patches) < 1:
            raise ValueError("LSM sizes (channels, n_scales, n_tokens, n_basis, n_heads, "
                             "patches, patch_size) must be positive")
        self.in_channels, self.out_channels, self.n_dim = in_channels, out_channels, n_dim
        self.n_scales, self.patches, self.patch_size = n_scales, patches, patch_size
        widths = [hidden_channels * 2 ** min(s, max(n_scales - 2, 0)) for s in range(n_scales)]
        # What each decoder hands on: the width of the scale above (the finest: its own).
        out = [widths[max(s - 1, 0)] for s in range(n_scales - 1)] + [widths[-1]]
        self.embedding = GridEmbedding(n_dim) if positional_embedding else None
        self.lifting = Pointwise(in_channels + (n_dim if positional_embedding else 0), widths[0])
        self.encoders = nn.ModuleList(
            DoubleConv(widths[max(s - 1, 0)], widths[s], n_dim) for s in range(n_scales)
        )
        self.spectral = nn.ModuleList(
            NeuralSpectralBlock(w, n_dim, self._patches_at(s), n_tokens, n_basis, n_heads,
                                None if patches is not None else patch_size)
            for s, w in enumerate(widths)
        )
        self.decoders = nn.ModuleList(
            DoubleConv(widths[s] + out[s + 1], out[s], n_dim, (widths[s] + out[s + 1]) // 2)
            for s in range(n_scales - 1)
        )
        self.projection = ChannelMLP(widths[0], out_channels, 4 * widths[0])

    def _patches_at(self, scale: int) -> int | None:
        return None if self.patches is None else max(1, self.patches // 2**scale)

    def multiple(self) -> int:
        """Every axis is padded to a multiple of this: each scale's grid must split into its
        patches after ``n_scales - 1`` halvings."""
        if self.patches is None:
            return 2 ** (self.n_scales - 1) * self.patch_size
        return math.lcm(*(2**s * self._patches_at(s) for s in range(self.n_scales)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, in_channels, *spatial)`` to ``(batch, out_channels, *spatial)``."""
        self.check_input(x, self.in_channels)
        sizes = tuple(x.shape[2:])
        if self.embedding is not None:
            x = self.embedding(x)
        m = self.multiple()
        pad = [(-n) % m for n in sizes]
        v = self.lifting(x)
        if any(pad):
            # F.pad lists the last axis first; pad only the end so cropping is a slice.
            v = F.pad(v, [p for amount in reversed(pad) for p in (0, amount)])
        skips = []
        for s, (encode, spectral) in enumerate(zip(self.encoders, self.spectral, strict=True)):
            v = encode(v if s == 0 else _POOL[self.n_dim](v, 2))
            skips.append(spectral(v))
        v = skips[-1]
        for s in reversed(range(self.n_scales - 1)):
            up = F.interpolate(v, size=skips[s].shape[2:], mode=_UPSAMPLE[self.n_dim],
                               align_corners=False)
            v = self.decoders[s](torch.cat([skips[s], up], dim=1))
        v = v[(slice(None), slice(None), *(slice(0, n) for n in sizes))]
        return self.projection(v)
