"""Spectral convolution for 1-, 2- and 3-D grids through one code path."""

from __future__ import annotations

import torch
from torch import nn


def kept_frequencies(n: int, k_max: int, last: bool) -> torch.Tensor:
    """FFT bins of frequencies ``|k| <= k_max`` on an axis of ``n`` points.

    ``k_max`` is clamped to ``(n - 1) // 2`` so the Nyquist bin is never kept: it would alias
    between resolutions and be counted twice as +n/2 and -n/2. The last (rfft) axis holds
    non-negative frequencies only.
    """
    k = min(k_max, (n - 1) // 2)
    if last:
        return torch.arange(k + 1)
    return torch.cat([torch.arange(k + 1), torch.arange(n - k, n)])


class SpectralConv(nn.Module):
    """``x -> irfft(W(k) rfft(x)(k))`` over the lowest frequencies, 1-D to 3-D.

    Parameters
    ----------
    in_channels, out_channels
        Channel counts.
    n_modes
        Modes kept per axis, counting positive and negative frequencies (neuraloperator's
        convention): frequencies ``|k| <= n_modes[i] // 2`` are kept. On a grid too coarse
        for them the kept band shrinks to what the grid resolves, so the layer runs at any
        resolution.
    """

    def __init__(self, in_channels: int, out_channels: int, n_modes: tuple[int, ...]) -> None:
        super().__init__()
        if not 1 <= len(n_modes) <= 3 or any(m < 1 for m in n_modes):
            raise ValueError(f"n_modes must hold 1 to 3 positive ints, got {tuple(n_modes)}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.k_max = tuple(m // 2 for m in n_modes)
        shape = [2 * k + 1 for k in self.k_max[:-1]] + [self.k_max[-1] + 1]
        # The original FNO's small uniform init: layers start close to the skip path.
        scale = 1.0 / (in_channels * out_channels)
        self.weight = nn.Parameter(scale * torch.rand(in_channels, out_channels, *shape, 2))

    def _weight_block(self, sizes: list[int]) -> torch.Tensor:
        """The complex weights of the frequencies this grid resolves, in FFT bin order."""
        w = torch.view_as_complex(self.weight)
        for axis, (n, k) in enumerate(zip(sizes, self.k_max)):
            k_eff = min(k, (n - 1) // 2)
            dim = axis + 2
            last = axis == len(sizes) - 1
            if last:
                w = w.narrow(dim, 0, k_eff + 1)
            elif k_eff < k:
                # Weights are stored as [0..k, -k..-1]; keep [0..k_eff] and [-k_eff..-1].
                keep = torch.cat([torch.arange(k_eff + 1), torch.arange(2 * k + 1 - k_eff, 2 * k + 1)])
                w = w.index_select(dim, keep.to(w.device))
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = len(self.k_max)
        sizes = list(x.shape[-d:])
        dims = tuple(range(-d, 0))
        xf = torch.fft.rfftn(x, dim=dims, norm="forward")
        idx = [kept_frequencies(n, k, i == d - 1) for i, (n, k) in enumerate(zip(sizes, self.k_max))]
        block = xf
        for axis, ix in enumerate(idx):
            block = block.index_select(axis + 2, ix.to(x.device))
        w = self._weight_block(sizes)
        letters = "xyz"[:d]
        out_block = torch.einsum(f"bi{letters},io{letters}->bo{letters}", block, w)
        full_shape = [x.shape[0], self.out_channels, *sizes[:-1], sizes[-1] // 2 + 1]
        out = out_block
        for axis in reversed(range(d)):
            target = list(out.shape)
            target[axis + 2] = full_shape[axis + 2]
            expanded = out.new_zeros(target)
            out = expanded.index_copy(axis + 2, idx[axis].to(x.device), out)
        return torch.fft.irfftn(out, s=sizes, dim=dims, norm="forward")

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, k_max={self.k_max}"

