"""Low-rank spectral weights (Tucker, CP, tensor train) and the factorized spectral convolution.

A spectral weight is a real tensor ``(in, out, *modes, 2)`` (the trailing pair holds real and
imaginary parts, as in :class:`~pdeml.operators.layers.SpectralConv`); with ``joint`` layers
a leading layer axis ``(n_layers, in, out, *modes, 2)`` is factorized as one tensor, so the
layers share factors (the TFNO paper's version). ``rank`` is a fraction of the dense
tensor's parameter count, as in TensorLy.

The layer either rebuilds the dense weight from its factors and mixes as usual
(``reconstructed``), or contracts the data with the factors one by one (``factorized``); see
:data:`AUTO_FACTORIZED_BELOW` for how ``auto`` chooses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from pdeml.operators.layers.spectral import SpectralConv

FACTORIZATIONS = ("dense", "tucker", "cp", "tt")
IMPLEMENTATIONS = ("auto", "factorized", "reconstructed")
# ``auto`` contracts through the factors when it needs fewer multiply-adds than rebuilding the
# weight and mixing densely, with this margin (the factorized path runs more, smaller kernels).
AUTO_FACTORIZED_BELOW = 1.0


def _bisect(cost: callable, target: float, lo: float, hi: float) -> float:
    """Largest ``a`` in ``[lo, hi]`` with ``cost(a) <= target`` (cost non-decreasing)."""
    if cost(lo) > target:
        return lo
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cost(mid) <= target else (lo, mid)
    return lo


def factor_ranks(factorization: str, dims: Sequence[int], rank: float) -> list[int]:
    """Ranks giving about ``rank * prod(dims)`` parameters.

    Parameters
    ----------
    factorization
        ``tucker`` (one rank per dim; dims of size 1 or 2 are not compressed), ``cp`` (one
        rank) or ``tt`` (``len(dims) - 1`` inner ranks).
    dims
        Shape of the dense tensor.
    rank
        Fraction of the dense parameter count, in (0, 1].

    Returns
    -------
    list of int
        The ranks.
    """
    if not 0.0 < rank <= 1.0:
        raise ValueError(f"rank must be a fraction in (0, 1], got {rank}")
    dims = [int(d) for d in dims]
    target = rank * math.prod(dims)
    if factorization == "cp":
        return [max(1, round(target / sum(dims)))]
    if factorization == "tucker":
        # Axes of size <= 2 (the real/imaginary pair) stay full: rank 1 there would give every
        # mode the same phase.
        def tucker(a: float) -> list[int]:
            return [d if d <= 2 else max(1, min(d, round(a * d))) for d in dims]

        a = _bisect(lambda a: math.prod(tucker(a)) + sum(
            d * r for d, r in zip(dims, tucker(a), strict=True)), target, 0.0, 1.0)
        return tucker(a)
    # TT: one inner rank, capped at what each cut can hold.
    caps = [min(math.prod(dims[:k + 1]), math.prod(dims[k + 1:])) for k in range(len(dims) - 1)]

    def tt(r: float) -> list[int]:
        return [max(1, min(c, round(r))) for c in caps]

    def tt_count(r: float) -> float:
        full = [1, *tt(r), 1]
        return sum(full[k] * d * full[k + 1] for k, d in enumerate(dims))

    return tt(_bisect(tt_count, target, 1.0, float(max(caps))))


class FactorizedWeight(nn.Module):
    """A real tensor stored as Tucker, CP or TT factors (or densely).

    Parameters
    ----------
    dims
        Shape of the represented tensor.
    factorization
        ``dense``, ``tucker``, ``cp`` or ``tt``.
    rank
        Fraction of the dense parameter count (ignored for ``dense``).
    std
        Standard deviation of the represented entries at initialisation.
    """

    def __init__(self, dims: Sequence[int], factorization: str = "tucker", rank: float = 0.05,
                 std: float = 0.02) -> None:
        super().__init__()
        if factorization not in FACTORIZATIONS:
            raise ValueError(f"unknown factorization '{factorization}'; "
                             f"use one of {', '.join(FACTORIZATIONS)}")
        self.dims, self.factorization = tuple(int(d) for d in dims), factorization
        n = len(self.dims)
        if factorization == "dense":
            self.ranks: list[int] = []
            self.factors = nn.ParameterList([nn.Parameter(std * torch.randn(self.dims))])
            return
        self.ranks = factor_ranks(factorization, self.dims, rank)
        if factorization == "tucker":
            # Factors of variance 1 / r keep the entries at the core's variance.
            params = [std * torch.randn(self.ranks)]
            params += [torch.randn(d, r) / r ** 0.5 for d, r in zip(self.dims, self.ranks,
                                                                   strict=True)]
        elif factorization == "cp":
            r = self.ranks[0]
            s = (std ** 2 / r) ** (1 / (2 * n))
            params = [s * torch.randn(d, r) for d in self.dims]
        else:
            full = [1, *self.ranks, 1]
            params = [torch.randn(full[k], d, full[k + 1]) / full[k] ** 0.5
                      for k, d in enumerate(self.dims)]
            params[0] = params[0] * std
        self.factors = nn.ParameterList([nn.Parameter(p) for p in params])

    def parts(self, index: int | None, slices: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
        """Factors of the sub-tensor ``T[index]`` (if ``index`` is given) narrowed along the
        remaining dims by ``slices`` (``(start, length)`` per dim, trailing dims may be
        omitted), in the layout of a factorization of that sub-tensor."""
        f = list(self.factors)
        kind = self.factorization
        if index is not None:
            f = self._drop_first(f, index)
        if kind == "dense":
            w = f[0]
            for dim, (start, length) in enumerate(slices):
                w = w.narrow(dim, start, length)
            return [w]
        offset = 1 if kind == "tucker" else 0
        for dim, (start, length) in enumerate(slices):
            t = f[offset + dim]
            f[offset + dim] = t.narrow(1 if kind == "tt" else 0, start, length)
        return f

    def _drop_first(self, f: list[torch.Tensor], index: int) -> list[torch.Tensor]:
        kind = self.factorization
        if kind == "dense":
            return [f[0][index]]
        if kind == "tucker":
            core = torch.tensordot(f[1][index], f[0], dims=([0], [0]))
            return [core, *f[2:]]
        if kind == "cp":
            return [f[1] * f[0][index], *f[2:]]
        first = f[0][:, index, :] @ f[1].flatten(1)  # (1, d1 * r2)
        return [first.view(1, f[1].shape[1], f[1].shape[2]), *f[2:]]

    def reconstruct(self, index: int | None = None,
                    slices: Sequence[tuple[int, int]] = ()) -> torch.Tensor:
        """The dense (sub-)tensor; see :meth:`parts` for ``index`` and ``slices``."""
        return reconstruct(self.factorization, self.parts(index, slices))

    def extra_repr(self) -> str:
        return f"dims={self.dims}, factorization={self.factorization!r}, ranks={self.ranks}"


def reconstruct(kind: str, f: Sequence[torch.Tensor]) -> torch.Tensor:
    """Dense tensor from the factors ``f`` of a ``kind`` factorization."""
    if kind == "dense":
        return f[0]
    if kind == "tucker":
        w = f[0]
        for dim, u in enumerate(f[1:]):
            w = torch.movedim(torch.tensordot(w, u, dims=([dim], [1])), -1, dim)
        return w
    if kind == "cp":
        # Khatri-Rao of all but the first factor, then one GEMM: never a (size x rank) buffer
        # bigger than needed.
        kr = f[-1]
        for u in reversed(f[1:-1]):
            kr = (u[:, None, :] * kr[None, :, :]).reshape(-1, kr.shape[-1])
        w = f[0] @ kr.T
        return w.view(*(u.shape[0] for u in f))
    return _tt_chain(f)[0]


def _tt_chain(cores: Sequence[torch.Tensor]) -> torch.Tensor:
    """Contract TT cores ``(r_k, d_k, r_k+1)`` into ``(r_0, d_0, ..., d_n)`` (last rank 1)."""
    w = cores[0].reshape(-1, cores[0].shape[-1])
    for core in cores[1:]:
        w = (w @ core.reshape(core.shape[0], -1)).reshape(-1, core.shape[-1])
    return w.view(cores[0].shape[0], *(c.shape[1] for c in cores))


def _complex_operand(z: torch.Tensor) -> torch.Tensor:
    """``(b, i, 2, *m)`` to ``(b, i, q, s, *m)`` with ``y_s = sum_q zq_s W_q``: the complex
    product ``(zr + i zi)(wr + i wi)`` written as a real contraction over ``q``."""
    zr, zi = z[:, :, 0], z[:, :, 1]
    return torch.stack([torch.stack([zr, zi], 2), torch.stack([-zi, zr], 2)], 2)


def contract_factorized(kind: str, f: Sequence[torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """Spectral mixing ``(b, i, 2, *m) -> (b, o, 2, *m)`` through the factors of the weight
    ``(i, o, *m, 2)``, without rebuilding it."""
    d = z.ndim - 3
    modes = "klm"[:d]
    zq = _complex_operand(z)
    if kind == "cp":
        a_in, a_out, *a_m, a_q = f
        t = torch.einsum(f"biqs{modes},ir->brqs{modes}", zq, a_in)
        t = torch.einsum(f"brqs{modes},qr->brs{modes}", t, a_q)
        for axis, u in enumerate(a_m):
            shape = [1, u.shape[1], 1] + [1] * d
            shape[3 + axis] = u.shape[0]
            t = t * u.T.reshape(shape)
        return torch.einsum(f"brs{modes},or->bos{modes}", t, a_out)
    if kind == "tucker":
        core, u_in, u_out, *u_m, u_q = f
        # The core with the mode and part factors applied: (r_in, r_out, *m, 2).
        c = reconstruct("tucker", [core, torch.eye(core.shape[0], dtype=z.dtype,
                                                   device=z.device),
                                   torch.eye(core.shape[1], dtype=z.dtype, device=z.device),
                                   *u_m, u_q])
        t = torch.einsum(f"biqs{modes},ix->bxqs{modes}", zq, u_in)
        t = torch.einsum(f"bxqs{modes},xy{modes}q->bys{modes}", t, c)
        return torch.einsum(f"bys{modes},oy->bos{modes}", t, u_out)
    if kind == "tt":
        g_in, g_out, *rest = f
        tail = _tt_chain(rest)  # (r, *m, 2)
        t = torch.einsum(f"biqs{modes},ia->baqs{modes}", zq, g_in[0])
        t = torch.einsum(f"baqs{modes},c{modes}q->bacs{modes}", t, tail)
        return torch.einsum(f"bacs{modes},aoc->bos{modes}", t, g_out)
    raise ValueError(f"no factorized contraction for '{kind}'")


def factorized_cost(kind: str, f: Sequence[torch.Tensor], batch: int) -> tuple[float, float]:
    """Multiply-adds of (factorized, reconstructed) mixing for a batch, roughly."""
    dims = [t.shape[0] if kind in ("cp", "tucker") else t.shape[1] for t in
            (f[1:] if kind == "tucker" else f)]
    n_in, n_out, m = dims[0], dims[1], math.prod(dims[2:-1])
    dense = batch * n_in * n_out * 4 * m
    if kind == "cp":
        r = f[0].shape[1]
        rebuild = math.prod(dims) * r
        factorized = batch * 4 * m * r * (n_in + 2) + batch * 2 * m * r * n_out
    elif kind == "tucker":
        rin, rout = f[0].shape[:2]
        rebuild = math.prod(dims) * (rin + rout) + rin * rout * 2 * m * f[0].shape[2:].numel()
        factorized = batch * 4 * m * (n_in * rin + rin * rout) + batch * 2 * m * rout * n_out
        factorized += rin * rout * 2 * m * f[0].shape[2:].numel()
    else:
        ra, rc = f[0].shape[2], f[1].shape[2]
        rebuild = math.prod(dims) * max(ra, rc)
        factorized = batch * 4 * m * (n_in * ra + ra * rc) + batch * 2 * m * ra * rc * n_out
    return float(factorized), float(dense + rebuild)


class FactorizedSpectralConv(SpectralConv):
    """:class:`SpectralConv` whose weight is low rank (or a slice of a jointly factorized one).

    Parameters
    ----------
    in_channels, out_channels, n_modes, transform
        As for :class:`SpectralConv`.
    factorization
        ``tucker``, ``cp``, ``tt`` or ``dense``.
    rank
        Fraction of the dense weight's parameters.
    implementation
        ``factorized``, ``reconstructed`` or ``auto`` (per call, by :func:`factorized_cost`).
    shared
        A :class:`FactorizedWeight` of shape ``(n_layers, in, out, *modes, 2)`` owned by the
        model; this layer uses slice ``layer`` of it (joint factorization). ``None``: the layer
        owns its factors.
    layer
        Index into ``shared``.
    """

    def __init__(self, in_channels: int, out_channels: int, n_modes: Sequence[int],
                 transform: str = "auto", factorization: str = "tucker", rank: float = 0.05,
                 implementation: str = "auto", shared: FactorizedWeight | None = None,
                 layer: int | None = None) -> None:
        super().__init__(in_channels, out_channels, n_modes, transform)
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"unknown implementation '{implementation}'; "
                             f"use one of {', '.join(IMPLEMENTATIONS)}")
        std = float(self.weight.detach().std())
        shape = tuple(self.weight.shape)
        del self.weight  # the factors replace the dense weight
        self.implementation = implementation
        if shared is None:
            self.factors = FactorizedWeight(shape, factorization, rank, std)
            self.layer = None
        else:
            if layer is None or not 0 <= layer < shared.dims[0]:
                raise ValueError(f"a shared weight needs a layer index in [0, {shared.dims[0]})")
            if shared.dims[1:] != shape:
                raise ValueError(f"shared weight {shared.dims} does not fit layer {shape}")
            self.__dict__["_shared"] = shared  # owned (and saved) by the model, not this layer
            self.layer = layer

    def _source(self) -> FactorizedWeight:
        return self.factors if self.layer is None else self.__dict__["_shared"]

    def _slices(self, ks: tuple[int, ...]) -> list[tuple[int, int]]:
        out = [(0, self.in_channels), (0, self.out_channels)]
        d = self.n_dim
        for axis, (k, k_full) in enumerate(zip(ks, self.k_max, strict=True)):
            out.append((0, k + 1) if axis == d - 1 else (k_full - k, 2 * k + 1))
        return out

    def _mix(self, z: torch.Tensor, ks: tuple[int, ...]) -> torch.Tensor:
        source = self._source()
        # In the weights' dtype or z's: bf16 factors meet fp32 modes in the FFT path's fp32
        # region (bf16-true), fp32 factors meet bf16 modes under autocast.
        parts = [p.to(z.dtype) for p in source.parts(self.layer, self._slices(ks))]
        kind = source.factorization
        if kind != "dense" and self._factorized(kind, parts, z.shape[0]):
            return contract_factorized(kind, parts, z)
        w = reconstruct(kind, parts)
        return self._mix_weight(z, w)

    def _factorized(self, kind: str, parts: list[torch.Tensor], batch: int) -> bool:
        if self.implementation != "auto":
            return self.implementation == "factorized"
        if torch.compiler.is_compiling():
            batch = 16  # a nominal batch: branching on a traced batch size would freeze it
        fact, rebuild = factorized_cost(kind, parts, batch)
        return fact < AUTO_FACTORIZED_BELOW * rebuild

    def extra_repr(self) -> str:
        return super().extra_repr() + f", implementation={self.implementation!r}"
