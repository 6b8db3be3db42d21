"""MgNO: linear operators parameterized by a multigrid V-cycle (He, Liu & Xu, ICLR 2024)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from pdeml.operators.base import OperatorBase
from pdeml.operators.layers.embedding import grid_coordinates
from pdeml.operators.layers.mlp import Pointwise, get_activation
from pdeml.precision import as_float32, full_precision

PADDINGS = {"zeros": "constant", "circular": "circular"}
DEFAULT_LEVELS = 4
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


class GridConv(nn.Module):
    """A bias-free ``3^d`` convolution with explicit zero or circular padding, 1-3 D.

    ``stride=2`` is the restriction (an even axis of ``n`` points gives ``n / 2``);
    ``transpose=True`` is the prolongation, a ``4^d`` transposed convolution with stride 2 that
    doubles each axis. The padding is applied to the input in both cases, so the circular
    (periodic) variant is exactly equivariant to even circular shifts, which
    ``ConvTranspose``'s built-in zero padding could not give.

    Parameters
    ----------
    in_channels, out_channels
        Channel counts.
    n_dim
        Spatial dimensions (1-3).
    padding
        ``"zeros"`` (Dirichlet-like) or ``"circular"`` (periodic).
    stride
        1 (smoother) or 2 (restriction).
    transpose
        Prolongation (stride-2 transposed convolution) instead.
    """

    def __init__(self, in_channels: int, out_channels: int, n_dim: int, padding: str = "zeros",
                 stride: int = 1, transpose: bool = False) -> None:
        super().__init__()
        self.n_dim, self.stride, self.transpose = n_dim, stride, transpose
        self.mode = PADDINGS[padding]
        kernel = (4 if transpose else 3,) * n_dim
        # nn.Conv's default init: uniform with bound 1 / sqrt(fan_in).
        fan_in = (out_channels if transpose else in_channels) * math.prod(kernel)
        bound = 1.0 / math.sqrt(fan_in)
        shape = (in_channels, out_channels) if transpose else (out_channels, in_channels)
        self.weight = nn.Parameter(torch.empty(*shape, *kernel).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.n_dim
        if self.mode == "constant":  # the convolutions' own zero padding is the faster path
            if self.transpose:
                return _CONV_T[d](x, self.weight, stride=2, padding=1)
            return _CONV[d](x, self.weight, stride=self.stride, padding=1)
        x = F.pad(x, (1,) * (2 * d), mode=self.mode)
        if not self.transpose:
            return _CONV[d](x, self.weight, stride=self.stride)
        # Padding one coarse cell per side adds three fine cells per side: crop them.
        y = _CONV_T[d](x, self.weight, stride=2)
        return y[(slice(None), slice(None), *([slice(3, -3)] * d))]


class MultigridConv(nn.Module):
    """The linear operator ``W: f -> u`` of one V-cycle for ``A u = f`` (MgNO's ``MgConv``).

    On level ``l`` (grid ``n / 2^l``): pre-smoothing ``u = S f``, then
    ``u <- u + S (f - A u)``; the residual is restricted, ``f_c = R (f - A u)``, solved by
    the next level, prolongated and added, ``u <- u + P u_c``; post-smoothing as before. Every
    ``A``, ``S``, ``R``, ``P`` is a learned convolution of its own level; no nonlinearity
    inside, so the map is linear in ``f``, as a multigrid solver is.

    Parameters
    ----------
    in_channels, out_channels
        Channels of ``f`` (the layer input) and ``u`` (its output).
    n_dim
        Spatial dimensions.
    n_levels
        Grid levels, the finest included; axes must be divisible by ``2^(n_levels - 1)``.
    n_pre, n_post
        Smoothing steps before and after the coarse correction (``n_pre >= 1``).
    padding
        ``"zeros"`` or ``"circular"``.
    """

    def __init__(self, in_channels: int, out_channels: int, n_dim: int, n_levels: int,
                 n_pre: int = 1, n_post: int = 1, padding: str = "zeros") -> None:
        super().__init__()
        self.n_levels = n_levels

        def conv(cin: int, cout: int, **kw: int | bool) -> GridConv:
            return GridConv(cin, cout, n_dim, padding, **kw)

        def smoothers(count: int) -> nn.ModuleList:
            return nn.ModuleList(conv(in_channels, out_channels) for _ in range(count))

        coarse = [level == n_levels - 1 for level in range(n_levels)]
        # A is only needed where a residual is formed: not on a coarsest level smoothed once.
        self.A = nn.ModuleList(
            conv(out_channels, in_channels) if not last or n_pre > 1 else nn.Identity()
            for last in coarse
        )
        self.pre = nn.ModuleList(smoothers(n_pre) for _ in range(n_levels))
        self.post = nn.ModuleList(smoothers(0 if last else n_post) for last in coarse)
        self.restrict = nn.ModuleList(conv(in_channels, in_channels, stride=2)
                                      for _ in range(n_levels - 1))
        self.prolong = nn.ModuleList(conv(out_channels, out_channels, transpose=True)
                                     for _ in range(n_levels - 1))

    def _smooth(self, u: torch.Tensor, f: torch.Tensor, level: int,
                steps: nn.ModuleList) -> torch.Tensor:
        for S in steps:
            u = u + S(f - self.A[level](u))
        return u

    def _cycle(self, f: torch.Tensor, level: int) -> torch.Tensor:
        pre = self.pre[level]
        u = self._smooth(pre[0](f), f, level, pre[1:])
        if level == self.n_levels - 1:
            return u
        coarse = self._cycle(self.restrict[level](f - self.A[level](u)), level + 1)
        u = u + self.prolong[level](coarse)
        return self._smooth(u, f, level, self.post[level])

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, *spatial)`` to ``(batch, out_channels, *spatial)``."""
        return self._cycle(f, 0)


class MgNO(OperatorBase):
    """Multigrid Neural Operator: layers ``u_i <- act(sum_j W_ij u_j + b_i)``, ``W`` a V-cycle.

    Each layer's linear operator between all input and output channels is one
    :class:`MultigridConv` (multi-channel smoothers, stride-2 restriction, transposed-convolution
    prolongation), plus a pointwise term whose bias is the layer's ``b``; a group norm keeps the
    deep stacks of convolutions trainable. The first layer acts on the input channels directly
    (no lifting), a pointwise map gives the outputs.

    Precision (issue 29; ``scripts/bench_precision.py``): under ``bf16-mixed`` the
    convolutions run in bf16 and so do the V-cycle's sums; the Fourier resampling of circular
    padding runs in an fp32 region (no bf16 FFT on CPU). At 64^2 the output is 1.2e-2 from
    float64 (fp32: 7e-7) and the gradients 5.8e-3. **MgNO is the operator bf16 hurts**: Darcy
    64^2 after 200 equal steps, test error 0.0830 against fp32's 0.0713 (+16.5%, 6 seeds,
    worse on 4 of 6), where fp32 training from weights perturbed by one bf16 rounding
    (2^-9) gives 0.0744 (+4.4%): MgNO's Darcy training is bimodal and a perturbation that
    small already flips one seed, but bf16 adds more. Summing the V-cycle in fp32 (the
    convolutions alone in bf16) gave 0.0817 (+14.7%), no measurable change, so pdeml does
    not do it. Navier-Stokes 64^2: -0.1% (3 seeds). Train MgNO in fp32
    where its error matters.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and output fields.
    hidden_channels
        Channels ("neurons") of the hidden layers.
    n_layers
        Number of multigrid layers.
    n_levels
        Levels of every V-cycle; level ``l`` works on the input grid coarsened ``2^l`` times.
        Any grid is accepted: an axis not divisible by ``2^(n_levels - 1)`` is extended to the
        next multiple and the output cropped back (zero padding: zeros appended at the far end
        and the hidden state kept zero there after every layer, so the operator sees the same
        Dirichlet-like exterior as on an admissible grid; circular padding: band-limited
        Fourier resampling to the admissible size and back, which keeps the periodic
        structure that wrapping around a non-matching period would break). ``None`` (the
        default) takes 4 levels; ``pdeml train`` derives it from the data grid with
        :meth:`levels_for` (a coarsest grid of at least 4 points), as :meth:`link_grid` says.
    n_dim
        Spatial dimensions (1-3).
    padding
        ``"zeros"`` (zero/Dirichlet boundary) or ``"circular"`` (periodic problems).
    n_pre, n_post
        Smoothing steps per level before and after the coarse-grid correction.
    norm
        Group-normalize (one group) each layer before the activation.
    positional_embedding
        Append coordinate fields to the input: ``j / n`` per axis with zero padding,
        ``sin, cos(2 pi j / n)`` with circular padding (continuous across the wrap). The first
        layer's operator applied to them is a sample-independent function: the paper's
        function-valued bias ``B_ij``. Without it the network is translation-equivariant up
        to its padding and cannot learn a fixed forcing pattern (periodic Navier-Stokes with
        the FNO forcing: test relative L2 0.81 against 0.14 with zero padding, 15 epochs).
    activation
        Activation name.

    Examples
    --------
    >>> net = MgNO(in_channels=1, out_channels=1, n_levels=4)
    >>> net(torch.randn(2, 1, 64, 64)).shape
    torch.Size([2, 1, 64, 64])
    """

    # Not traceable with symbolic grid sizes: the V-cycle's level sizes (and the padding to
    # them) follow the grid.
    dynamic_grid_export = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int = 32,
        n_layers: int = 4,
        n_levels: int | None = None,
        n_dim: int = 2,
        padding: str = "zeros",
        n_pre: int = 1,
        n_post: int = 0,
        norm: bool = True,
        positional_embedding: bool = True,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        n_levels = DEFAULT_LEVELS if n_levels is None else n_levels
        if min(in_channels, out_channels, hidden_channels, n_layers, n_levels, n_pre) < 1:
            raise ValueError("MgNO channels, n_layers, n_levels and n_pre must be positive")
        if n_post < 0:
            raise ValueError(f"MgNO n_post must be >= 0, got {n_post}")
        if n_dim not in _CONV:
            raise ValueError(f"MgNO works on 1-3 spatial dims, got n_dim={n_dim}")
        if padding not in PADDINGS:
            raise ValueError(f"unknown MgNO padding '{padding}'; use one of {', '.join(PADDINGS)}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.n_dim, self.n_levels = n_dim, n_levels
        self.activation = get_activation(activation)
        self.periodic = padding == "circular"
        self.n_embed = (2 if self.periodic else 1) * n_dim if positional_embedding else 0
        widths = [in_channels + self.n_embed] + [hidden_channels] * n_layers
        self.cycles = nn.ModuleList(
            MultigridConv(cin, cout, n_dim, n_levels, n_pre, n_post, padding)
            for cin, cout in zip(widths[:-1], widths[1:], strict=True)
        )
        self.pointwise = nn.ModuleList(Pointwise(cin, cout)
                                       for cin, cout in zip(widths[:-1], widths[1:], strict=True))
        self.norms = nn.ModuleList(
            nn.GroupNorm(1, hidden_channels) if norm else nn.Identity() for _ in range(n_layers)
        )
        self.projection = Pointwise(hidden_channels, out_channels)

    @staticmethod
    def levels_for(shape: tuple[int, ...], coarsest: int = 4, pad: bool = False) -> int:
        """The most levels a grid allows with a coarsest grid of at least ``coarsest`` points.

        Parameters
        ----------
        shape
            Grid points per axis.
        coarsest
            Smallest coarsest-level size accepted per axis.
        pad
            Count levels for the padded grid (each axis rounded up to a multiple of
            ``2^(L-1)``, as :meth:`forward` does) instead of requiring exact divisibility.

        Returns
        -------
        int
            ``L >= 1`` with ``ceil(n / 2^(L-1)) >= coarsest`` on every axis and, unless
            ``pad``, every axis divisible by ``2^(L-1)`` (1 when no coarsening fits).
        """
        levels = 1
        while all((pad or n % 2 ** levels == 0) and -(-n // 2 ** levels) >= coarsest
                  for n in shape):
            levels += 1
        return levels

    @classmethod
    def link_grid(cls, kwargs: dict[str, Any], spatial_shape: tuple[int, ...]) -> dict[str, Any]:
        """:meth:`OperatorBase.link_grid`: ``n_levels = levels_for(spatial_shape, pad=True)``
        when the config leaves it missing or ``None``."""
        if kwargs.get("n_levels") is None:
            kwargs = {**kwargs, "n_levels": cls.levels_for(tuple(spatial_shape), pad=True)}
        return kwargs

    def _admissible(self, sizes: tuple[int, ...]) -> tuple[int, ...]:
        factor = 2 ** (self.n_levels - 1)
        return tuple(-(-n // factor) * factor for n in sizes)

    def _coordinates(self, x: torch.Tensor) -> torch.Tensor:
        coords = grid_coordinates(x.shape[2:], x.dtype, x.device)
        if self.periodic:
            coords = torch.cat([torch.sin(2 * math.pi * coords), torch.cos(2 * math.pi * coords)])
        return coords.unsqueeze(0).expand(x.shape[0], -1, *x.shape[2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, in_channels, *spatial)`` to ``(batch, out_channels, *spatial)``."""
        self.check_input(x, self.in_channels)
        sizes = tuple(x.shape[2:])
        grid = self._admissible(sizes)
        if self.n_embed:  # coordinates of the given grid, so padding does not shift them
            x = torch.cat([x, self._coordinates(x)], dim=1)
        mask = None
        if grid != sizes and self.periodic:
            x = fourier_resample(x, grid)
        elif grid != sizes:
            pads = [p for n, m in zip(reversed(sizes), reversed(grid), strict=True)
                    for p in (0, m - n)]
            x = F.pad(x, pads)
            mask = F.pad(torch.ones((1, 1, *sizes), dtype=x.dtype, device=x.device), pads)
        # Channels-last convolutions are 1.5-2x faster on CPU (oneDNN) and fine on GPU.
        v = x.contiguous(memory_format=_CHANNELS_LAST[self.n_dim]) if self.n_dim > 1 else x
        for cycle, pointwise, norm in zip(self.cycles, self.pointwise, self.norms, strict=True):
            v = self.activation(norm(cycle(v) + pointwise(v)))
            if mask is not None:
                v = v * mask
        out = self.projection(v)
        if grid != sizes and self.periodic:
            return fourier_resample(out, sizes)
        if grid != sizes:
            return out[(slice(None), slice(None), *(slice(0, n) for n in sizes))].contiguous()
        return out.contiguous()


def fourier_resample(x: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    """Band-limited (trigonometric) interpolation of periodic fields to another grid.

    Frequencies ``|k| <= (min(n, m) - 1) // 2`` of every axis are kept, so an even axis loses
    its Nyquist bin (the one frequency whose interpolant is not unique); going to a finer grid
    and back returns the input up to that bin and round-off.

    Parameters
    ----------
    x
        ``(batch, channels, *spatial)``, real.
    sizes
        Target grid.

    Returns
    -------
    torch.Tensor
        ``(batch, channels, *sizes)``.
    """
    dtype = x.dtype
    with full_precision(x):  # FFTs in float32 in every precision (no bf16 FFT on CPU)
        return _resample_fp32(as_float32(x)[0], sizes).to(dtype)


def _resample_fp32(x: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    dims = tuple(range(2, x.ndim))
    spec = torch.fft.fftn(x, dim=dims)
    out = torch.zeros((*x.shape[:2], *sizes), dtype=spec.dtype, device=x.device)
    keep = [(min(n, m) - 1) // 2 for n, m in zip(x.shape[2:], sizes, strict=True)]
    # Copy the kept block corner by corner: non-negative or negative frequencies per axis.
    for corner in range(2 ** len(dims)):
        index: list[slice] = [slice(None), slice(None)]
        for axis, k in enumerate(keep):
            if corner >> axis & 1:
                if k == 0:
                    break
                index.append(slice(-k, None))
            else:
                index.append(slice(0, k + 1))
        else:
            out[tuple(index)] = spec[tuple(index)]
    scale = math.prod(sizes) / math.prod(x.shape[2:])
    return torch.fft.ifftn(out, dim=dims).real * scale
