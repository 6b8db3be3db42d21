"""Real-valued truncated transforms (DCT-II, real DFT) for operators that transform once.

A transform here is a set of ``m`` real basis functions per axis, sampled on the grid; a field
``(batch, channels, *sizes)`` maps to coefficients ``(batch, channels, *m)`` and back, one axis
at a time as dense matrix products (``O(n m)`` per axis: the truncated transform never builds
a full spectrum).

Normalisation: basis functions ``phi_k(t)`` of unit mean square on ``[0, 1)``; coefficients are
``c_k = (1/n) sum_j x_j phi_k(t_j)`` and the inverse is ``x_j = sum_k c_k phi_k(t_j)``. So a
coefficient approximates the continuous projection ``int x phi_k dt`` and is the same at every
resolution, and Parseval reads ``mean_j x_j^2 = sum_k c_k^2`` (full basis).

* ``dct``: DCT-II, ``phi_0 = 1``, ``phi_k = sqrt(2) cos(pi k t)`` at cell centres
  ``t_j = (j + 1/2) / n``; no periodicity assumed (even extension), so non-periodic fields
  keep their energy in few coefficients.
* ``rdft``: the real Fourier basis ``1, sqrt(2) cos(2 pi k t), sqrt(2) sin(2 pi k t)`` at
  ``t_j = j / n`` (index ``2k - 1`` is the cosine of frequency ``k``, ``2k`` its sine).

Basis functions a grid cannot resolve (DCT index ``>= n``, Fourier frequency ``> (n - 1) // 2``,
Nyquist excluded) are zero columns: coefficient shapes never depend on the grid.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

KINDS = ("dct", "rdft")
_AXES = "xyz"
_MODES = "klm"


def basis_frequency(kind: str, index: torch.Tensor) -> torch.Tensor:
    """Oscillation count of basis function ``index`` in units of a full period on [0, 1).

    Parameters
    ----------
    kind
        ``dct`` or ``rdft``.
    index
        Basis indices.

    Returns
    -------
    torch.Tensor
        ``index / 2`` for the DCT (``cos(pi k t)`` has ``k / 2`` periods) and ``(index + 1) // 2``
        for the real DFT.
    """
    if kind == "dct":
        return index.to(torch.float64) / 2
    return torch.div(index + 1, 2, rounding_mode="floor").to(torch.float64)


def basis_matrix(kind: str, n: int, index: Sequence[int]) -> torch.Tensor:
    """Sampled basis functions ``phi_k(t_j)``, float64 ``(n, len(index))``.

    Parameters
    ----------
    kind
        ``dct`` or ``rdft``.
    n
        Grid points.
    index
        Basis indices to sample (any order; unresolved ones give zero columns).

    Returns
    -------
    torch.Tensor
        Columns of unit mean square (``mean_j phi_k(t_j)^2 = 1``) or zero.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown transform '{kind}'; use one of {', '.join(KINDS)}")
    k = torch.as_tensor(list(index), dtype=torch.int64)
    j = torch.arange(n, dtype=torch.float64)[:, None]
    if kind == "dct":
        phase = math.pi * torch.remainder((2 * j + 1) * k, 4 * n) / (2 * n)
        out = math.sqrt(2.0) * torch.cos(phase)
        unresolved = k >= n
    else:
        freq = torch.div(k + 1, 2, rounding_mode="floor")
        phase = 2 * math.pi * torch.remainder(j * freq, n) / n
        out = torch.where(k % 2 == 1, torch.cos(phase), torch.sin(phase)) * math.sqrt(2.0)
        unresolved = freq > (n - 1) // 2
    # torch.where rather than masked assignment: it also traces into ONNX (export path)
    out = torch.where(k == 0, torch.ones_like(out), out)
    return torch.where(unresolved, torch.zeros_like(out), out)


@functools.lru_cache(maxsize=64)
def _cached(kind: str, n: int, index: tuple[int, ...], dtype: torch.dtype,
            device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode(False), torch.no_grad():
        phi = basis_matrix(kind, n, index)
        return (phi / n).to(device, dtype), phi.T.contiguous().to(device, dtype)


def transform_bases(kind: str, n: int, index: Sequence[int], dtype: torch.dtype,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward ``(n, m)`` and inverse ``(m, n)`` matrices of one axis (cached).

    Parameters
    ----------
    kind
        ``dct`` or ``rdft``.
    n
        Grid points on the axis.
    index
        The ``m`` basis indices kept.
    dtype, device
        Of the matrices.

    Returns
    -------
    forward, inverse
        ``coefficients = x @ forward`` and ``x = coefficients @ inverse`` along the axis.
    """
    index = tuple(int(i) for i in index)
    if torch.compiler.is_compiling():
        phi = basis_matrix(kind, n, index)
        return (phi / n).to(device, dtype), phi.T.contiguous().to(device, dtype)
    return _cached(kind, n, index, dtype, device)


def _apply(z: torch.Tensor, matrices: Sequence[torch.Tensor], inverse: bool) -> torch.Tensor:
    d = len(matrices)
    src, dst = (_MODES, _AXES) if inverse else (_AXES, _MODES)
    for axis in range(d):
        before = "".join(dst[i] if i < axis else src[i] for i in range(d))
        after = "".join(dst[i] if i <= axis else src[i] for i in range(d))
        z = torch.einsum(f"bc{before},{src[axis]}{dst[axis]}->bc{after}", z, matrices[axis])
    return z


def forward_transform(x: torch.Tensor, kind: str,
                      index: Sequence[Sequence[int]]) -> torch.Tensor:
    """Truncated transform of ``(batch, channels, *sizes)`` to ``(batch, channels, *m)``.

    Parameters
    ----------
    x
        Field on a grid.
    kind
        ``dct`` or ``rdft``.
    index
        Per spatial axis, the basis indices kept.

    Returns
    -------
    torch.Tensor
        Coefficients, resolution-independent (see the module notes).
    """
    sizes = x.shape[2:]
    mats = [transform_bases(kind, n, idx, x.dtype, x.device)[0]
            for n, idx in zip(sizes, index, strict=True)]
    return _apply(x, mats, inverse=False)


def inverse_transform(z: torch.Tensor, kind: str, index: Sequence[Sequence[int]],
                      sizes: Sequence[int]) -> torch.Tensor:
    """Field of ``sizes`` points from coefficients ``(batch, channels, *m)``.

    Parameters
    ----------
    z
        Coefficients.
    kind
        ``dct`` or ``rdft``.
    index
        Per spatial axis, the basis indices of ``z``.
    sizes
        Grid of the result.

    Returns
    -------
    torch.Tensor
        ``(batch, channels, *sizes)``.
    """
    mats = [transform_bases(kind, n, idx, z.dtype, z.device)[1]
            for n, idx in zip(sizes, index, strict=True)]
    return _apply(z, mats, inverse=True)


def energy_selection(x: torch.Tensor, kind: str, n_modes: Sequence[int],
                     candidates: Sequence[int]) -> list[list[int]]:
    """Per axis, the ``n_modes[i]`` basis indices of largest mean energy in ``x``.

    The energy of index ``k`` on axis ``i`` is the mean square of the coefficients with that
    index, pooled over samples, channels and the other axes (their first ``candidates`` each).

    Parameters
    ----------
    x
        Sample fields ``(batch, channels, *sizes)``.
    kind
        ``dct`` or ``rdft``.
    n_modes
        Indices to select per axis.
    candidates
        Per axis, the indices ``0..candidates[i]-1`` to choose from.

    Returns
    -------
    list of list of int
        Sorted selected indices per axis.
    """
    index = [list(range(c)) for c in candidates]
    with torch.no_grad():
        power = forward_transform(x.detach().double(), kind, index).pow(2).mean((0, 1))
    out = []
    for axis, m in enumerate(n_modes):
        marginal = power.sum(tuple(i for i in range(power.ndim) if i != axis))
        # Stable order: ties (unresolved indices are all zero) go to the lower index.
        order = sorted(range(len(marginal)), key=lambda k: (-float(marginal[k]), k))
        out.append(sorted(order[:m]))
    return out
