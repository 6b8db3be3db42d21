"""Training losses on ``(batch, channels, *spatial)`` fields."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn


def safe_root(x: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """``x ** (1 / p)`` for ``x >= 0`` with the gradient 0 (not NaN) where ``x == 0``.

    The root's derivative is infinite at 0, and autograd's ``0 * inf`` is NaN: a prediction
    that equals its target exactly would poison a whole batch's gradient.
    """
    positive = x > 0
    safe = torch.where(positive, x, torch.ones_like(x))
    return torch.where(positive, safe.pow(1.0 / p), torch.zeros_like(x))


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


class LpLoss(nn.Module):
    """Lp distance between fields, relative (per sample) or absolute.

    The relative form is ``||pred - target||_p / ||target||_p`` per sample, channels and grid
    points pooled (or, with ``per_channel``, per channel and then averaged over channels, as
    neuraloperator does); the absolute form is the discrete Lp norm on the unit cube,
    ``(mean |pred - target|^p)^(1/p)`` (the grid spacing cancels into the mean). Both have a
    zero (not NaN) gradient where the prediction equals the target.

    Parameters
    ----------
    p
        Order of the norm (``p >= 1``).
    relative
        Divide by the target's norm, per sample.
    reduction
        ``"mean"``, ``"sum"`` or ``"none"`` over the batch.
    eps
        Guards the division for an all-zero target.
    per_channel
        Relative form: the error of each channel relative to that channel's norm, averaged
        over channels (channels of very different scales then weigh equally).
    """

    def __init__(
        self, p: float = 2.0, relative: bool = True, reduction: str = "mean", eps: float = 1e-12,
        per_channel: bool = False,
    ) -> None:
        super().__init__()
        if p < 1:
            raise ValueError(f"Lp loss needs p >= 1, got {p}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"unknown reduction '{reduction}'; use mean, sum or none")
        self.p, self.relative, self.reduction, self.eps = float(p), relative, reduction, eps
        self.per_channel = bool(per_channel)

    @property
    def config(self) -> dict[str, Any]:
        """Plain settings that :func:`make_loss` turns back into this loss."""
        return {"name": "lp", "p": self.p, "relative": self.relative,
                "reduction": self.reduction,
                **({"per_channel": True} if self.per_channel else {})}

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(
                f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ"
            )
        if self.relative and self.per_channel and pred.ndim > 2:
            diff, ref = (pred - target).flatten(2), target.flatten(2)
            num = safe_root(diff.abs().pow(self.p).sum(-1), self.p)
            den = ref.abs().pow(self.p).sum(-1).pow(1.0 / self.p)
            return _reduce((num / (den + self.eps)).mean(1), self.reduction)
        diff = (pred - target).flatten(1)
        if self.relative:
            num = safe_root(diff.abs().pow(self.p).sum(dim=1), self.p)
            den = torch.linalg.vector_norm(target.flatten(1), ord=self.p, dim=1)
            per_sample = num / (den + self.eps)
        else:
            per_sample = safe_root(diff.abs().pow(self.p).mean(dim=1), self.p)
        return _reduce(per_sample, self.reduction)


# ----------------------------------------------------------------------------------------------
# Sobolev norms
# ----------------------------------------------------------------------------------------------

WEIGHTINGS = ("integer", "angular")
METHODS = ("spectral", "fd")
GRIDS = ("node", "cell")
_H_NAME = re.compile(r"^[hH](-?\d+(?:\.\d*)?|-?\.\d+)$")


def _per_axis(value: Any, d: int, what: str) -> tuple:
    if isinstance(value, (list, tuple)):
        if len(value) != d:
            raise ValueError(f"{what} has {len(value)} entries for {d} spatial dims")
        return tuple(value)
    return (value,) * d


def _weight_params(weighting: str, alpha: float) -> tuple[float, float]:
    """``(a, b)`` of the symbol ``(a + b |xi|^2)^s`` in the angular wavenumber ``xi``."""
    if weighting == "integer":  # (1 + |k|^2)^s with k = xi / 2 pi, cycles per unit length
        return 1.0, 1.0 / (4.0 * math.pi**2)
    return float(alpha), 1.0


def _mirror(x: torch.Tensor, dim: int, grid: str) -> torch.Tensor:
    """Even reflection along ``dim``: its Fourier series is the cosine series of ``x``.

    A node grid (both end points stored) is mirrored about the end points, a DCT-I, period
    ``2 (n - 1)``; a cell-centred grid is mirrored about the cell faces, a DCT-II, period ``2n``.
    """
    inner = x.narrow(dim, 1, x.shape[dim] - 2) if grid == "node" else x
    return torch.cat([x, inner.flip(dim)], dim)


def _spectral_norm_sq(x: torch.Tensor, s: float, a: float, b: float, periodic: tuple,
                      grid: str, lengths: tuple) -> torch.Tensor:
    """Squared ``H^s`` norm per (sample, channel): mean-normalized Parseval sum."""
    d = x.ndim - 2
    xi_sq = 0.0
    for i in range(d):
        n, dim = x.shape[2 + i], 2 + i
        if periodic[i]:
            h = lengths[i] / n
        else:
            h = lengths[i] / (n - 1 if grid == "node" else n)
            x = _mirror(x, dim, grid)
        m = x.shape[dim]
        freq = (torch.fft.rfftfreq if i == d - 1 else torch.fft.fftfreq)(
            m, d=h, dtype=torch.float64, device=x.device)
        shape = [1] * d
        shape[i] = -1
        xi_sq = xi_sq + (2 * math.pi * freq).square().view(shape)
    base = a + b * xi_sq
    safe = torch.where(base > 0, base, torch.ones_like(base))
    # a = alpha = 0 makes the symbol vanish at k = 0: the homogeneous seminorm (the mean is
    # dropped), also for s < 0 where the symbol would be infinite there.
    weight = torch.where(base > 0, safe.pow(s), torch.full_like(base, 1.0 if s == 0 else 0.0))
    m_last = x.shape[-1]
    # The half spectrum stores each k_last in 1..ceil(m/2)-1 for itself and its mirror -k_last.
    mult = torch.full((m_last // 2 + 1,), 2.0, dtype=torch.float64, device=x.device)
    mult[0] = 1.0
    if m_last % 2 == 0:
        mult[-1] = 1.0
    coeff = torch.fft.rfftn(x, dim=tuple(range(2, 2 + d))) / math.prod(x.shape[2:])
    power = coeff.real.square() + coeff.imag.square()
    return (power * (weight * mult).to(power.dtype)).flatten(2).sum(-1)


def _fd_derivative(x: torch.Tensor, axis: int, periodic: bool, h: float) -> torch.Tensor:
    dim = 2 + axis
    if periodic:
        return (x.roll(-1, dim) - x.roll(1, dim)) / (2 * h)
    return torch.gradient(x, spacing=h, dim=dim, edge_order=2)[0]


def _fd_mean(y: torch.Tensor, periodic: tuple, grid: str) -> torch.Tensor:
    """Mean over the grid: the trapezoid rule on node-grid axes, the midpoint rule otherwise."""
    for i in reversed(range(y.ndim - 2)):
        dim, n = 2 + i, y.shape[2 + i]
        if periodic[i] or grid == "cell":
            y = y.mean(dim)
        else:
            y = (y.sum(dim) - 0.5 * (y.select(dim, 0) + y.select(dim, n - 1))) / (n - 1)
    return y


def _fd_norm_sq(x: torch.Tensor, s: int, a: float, b: float, periodic: tuple, grid: str,
                lengths: tuple) -> torch.Tensor:
    """``sum_j C(s, j) a^(s-j) b^j sum_{|beta|=j} (j! / beta!) ||d^beta x||^2``.

    The binomial and multinomial expansion of ``(a + b |xi|^2)^s``, so it is the same norm as
    the spectral one, with second-order central differences (one-sided at walls).
    """
    d = x.ndim - 2
    h = [lengths[i] / (x.shape[2 + i] - (0 if periodic[i] or grid == "cell" else 1))
         for i in range(d)]
    derivs: dict[tuple[int, ...], torch.Tensor] = {(0,) * d: x}
    total = x.new_zeros(x.shape[:2])
    for j in range(s + 1):
        for beta in itertools.product(range(j + 1), repeat=d):
            if sum(beta) != j:
                continue
            if beta not in derivs:
                axis = next(i for i, bi in enumerate(beta) if bi)
                parent = tuple(bi - (i == axis) for i, bi in enumerate(beta))
                derivs[beta] = _fd_derivative(derivs[parent], axis, periodic[axis], h[axis])
            coef = math.comb(s, j) * a ** (s - j) * b**j * math.factorial(j)
            coef /= math.prod(math.factorial(bi) for bi in beta)
            total = total + coef * _fd_mean(derivs[beta].square(), periodic, grid)
    return total


def sobolev_norm(
    x: torch.Tensor,
    s: float = 1.0,
    weighting: str = "integer",
    alpha: float = 1.0,
    periodic: bool | Sequence[bool] = True,
    method: str = "spectral",
    grid: str = "node",
    length: float | Sequence[float] = 1.0,
    per_channel: bool = False,
) -> torch.Tensor:
    """The ``H^s`` norm of each sample of ``x`` (``(batch, channels, *spatial)``, 1-3 D).

    ``||f||^2 = (1 / |Omega|) sum_k w(k) |f_k|^2`` over the Fourier (or cosine) coefficients,
    averaged over channels (as the absolute :class:`LpLoss` does), with the symbol

    * ``weighting="integer"``: ``w = (1 + |k|^2)^s``, ``k`` the integer wavenumber (cycles per
      unit length; ``d/dx`` is ``2 pi i k``), the Fourier-series definition;
    * ``weighting="angular"``: ``w = (alpha + 4 pi^2 |k|^2)^s = (alpha + |xi|^2)^s``, the
      symbol of ``(alpha - Laplacian)^s``; ``alpha = 0`` gives the homogeneous seminorm (the
      mean is left out, for any ``s``).

    On the unit cube the norm is exactly the textbook one (``s = 0``: the L2 norm, equal to the
    absolute :class:`LpLoss`; ``s = 1``, angular: ``alpha ||f||^2 + ||grad f||^2``); on other
    domains it is the mean-normalized one (integrals divided by the volume).

    Parameters
    ----------
    x
        Fields ``(batch, channels, *spatial)``.
    s
        Any real order: positive (derivatives weigh more), 0, or negative (dual norms).
    weighting, alpha
        The symbol, see above.
    periodic
        Per axis or for all: periodic axes hold ``x_j = j L / n``.
    method
        ``spectral``: FFT on periodic axes and, on non-periodic ones, the cosine transform of
        the data (the Fourier series of its even reflection). Any real ``s``. The reflection
        is continuous, so the cosine norm equals the ``H^s(0, L)`` norm for ``s <= 1`` (for
        ``s = 1`` exactly: reflection doubles every integral) and is the dual norm for
        ``s < 0``; for ``s >= 3/2`` it also penalizes a non-zero normal derivative at a wall (the
        reflection's kink), so there it grows with resolution unless the data satisfy
        Neumann conditions. ``fd``: second-order finite differences (one-sided at walls),
        non-negative integer ``s`` only: use it for ``H^2`` and higher on non-periodic data.
    grid
        Non-periodic axes: ``node`` (end points stored, spacing ``L / (n - 1)``, trapezoid
        weights) or ``cell`` (cell centres, spacing ``L / n``).
    length
        Domain length per axis (or for all).
    per_channel
        Return the norm of each channel, ``(batch, channels)``, instead of their mean square.

    Returns
    -------
    torch.Tensor
        ``(batch,)`` norms (``(batch, channels)`` with ``per_channel``).
    """
    _check_sobolev(float(s), weighting, float(alpha), method, grid, length)
    d = x.ndim - 2
    if not 1 <= d <= 3:
        raise ValueError(f"Sobolev norm needs (batch, channels, 1-3 spatial dims), got "
                         f"shape {tuple(x.shape)}")
    periodic = tuple(bool(p) for p in _per_axis(periodic, d, "periodic"))
    lengths = tuple(float(v) for v in _per_axis(length, d, "length"))
    a, b = _weight_params(weighting, alpha)
    small = [n for n, p in zip(x.shape[2:], periodic, strict=True) if not p and n < 3]
    if small:
        raise ValueError(f"a non-periodic axis needs at least 3 points, got {small[0]}")
    if method == "fd":
        sq = _fd_norm_sq(x, int(s), a, b, periodic, grid, lengths)
    else:
        sq = _spectral_norm_sq(x, float(s), a, b, periodic, grid, lengths)
    return safe_root((sq if per_channel else sq.mean(1)).clamp_min(0.0))


def _check_sobolev(s: float, weighting: str, alpha: float, method: str, grid: str,
                   length: Any) -> None:
    if not math.isfinite(s):
        raise ValueError(f"Sobolev order s must be a finite real number, got {s}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting '{weighting}'; use one of {', '.join(WEIGHTINGS)}")
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a finite non-negative number, got {alpha}")
    if method not in METHODS:
        raise ValueError(f"unknown Sobolev method '{method}'; use one of {', '.join(METHODS)}")
    if method == "fd" and (s < 0 or s != int(s)):
        raise ValueError(f"method 'fd' needs a non-negative integer s, got {s}; "
                         "use method 'spectral' for fractional or negative orders")
    if grid not in GRIDS:
        raise ValueError(f"unknown grid '{grid}'; use one of {', '.join(GRIDS)}")
    if any(not float(v) > 0 for v in (length if isinstance(length, (list, tuple)) else [length])):
        raise ValueError(f"domain length must be positive, got {length}")


class SobolevLoss(nn.Module):
    """``H^s`` distance between fields, relative (per sample) or absolute, any real ``s``.

    The loss is ``||pred - target||_{H^s}``, divided by ``||target||_{H^s}`` per sample when
    ``relative``; see :func:`sobolev_norm` for the norm, the two weightings and the methods.
    The gradient is zero, not NaN, where the prediction equals the target.

    Parameters
    ----------
    s
        Sobolev order: e.g. ``1`` (H1, penalizes gradient errors), ``0`` (L2), ``-1`` (H^-1,
        the natural norm of PDE residuals).
    relative
        Divide by the target's norm, per sample.
    weighting, alpha, periodic, method, grid, length
        Passed to :func:`sobolev_norm`.
    reduction
        ``"mean"``, ``"sum"`` or ``"none"`` over the batch.
    eps
        Guards the division for an all-zero target.
    per_channel
        Relative form: each channel's error relative to that channel's norm, averaged over
        channels (neuraloperator's convention) instead of pooling the channels.

    Examples
    --------
    >>> loss = SobolevLoss(s=-1.0, relative=False)
    >>> float(loss(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8)))
    0.0
    """

    def __init__(
        self,
        s: float = 1.0,
        relative: bool = True,
        weighting: str = "integer",
        alpha: float = 1.0,
        periodic: bool | Sequence[bool] = True,
        method: str = "spectral",
        grid: str = "node",
        length: float | Sequence[float] = 1.0,
        reduction: str = "mean",
        eps: float = 1e-12,
        per_channel: bool = False,
    ) -> None:
        super().__init__()
        _check_sobolev(float(s), weighting, float(alpha), method, grid, length)
        self.per_channel = bool(per_channel)
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"unknown reduction '{reduction}'; use mean, sum or none")
        self.s, self.relative, self.reduction, self.eps = float(s), bool(relative), reduction, eps
        self.norm_kwargs = {"s": self.s, "weighting": weighting, "alpha": float(alpha),
                            "periodic": periodic, "method": method, "grid": grid,
                            "length": length}

    @property
    def config(self) -> dict[str, Any]:
        """Plain settings that :func:`make_loss` turns back into this loss."""
        periodic, length = self.norm_kwargs["periodic"], self.norm_kwargs["length"]
        return {"name": "sobolev", "relative": self.relative, "reduction": self.reduction,
                **({"per_channel": True} if self.per_channel else {}), **self.norm_kwargs,
                "periodic": list(periodic) if isinstance(periodic, (list, tuple)) else periodic,
                "length": list(length) if isinstance(length, (list, tuple)) else length}

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(
                f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ"
            )
        split = self.relative and self.per_channel
        per_sample = sobolev_norm(pred - target, **self.norm_kwargs, per_channel=split)
        if self.relative:
            ref = sobolev_norm(target, **self.norm_kwargs, per_channel=split)
            per_sample = per_sample / (ref + self.eps)
            if split:
                per_sample = per_sample.mean(1)
        return _reduce(per_sample, self.reduction)


# ----------------------------------------------------------------------------------------------
# Subspaces
# ----------------------------------------------------------------------------------------------


def _as_bases(x: torch.Tensor, parts: int) -> torch.Tensor:
    """``(batch, modes * parts, *grid)`` -> ``(batch, n, modes)`` column bases (complex when
    ``parts == 2``: channels blocked as all real parts, then all imaginary parts)."""
    b, c = x.shape[:2]
    if c % parts:
        raise ValueError(f"subspace loss: {c} channels do not split into {parts} parts")
    v = x.reshape(b, parts, c // parts, -1).transpose(-1, -2)  # (b, parts, n, modes)
    return torch.complex(v[:, 0], v[:, 1]) if parts == 2 else v[:, 0]


def _sq(x: torch.Tensor) -> torch.Tensor:
    """``|x|^2`` with a finite gradient at 0 also for complex ``x`` (``abs`` has none)."""
    return x.real.square() + x.imag.square() if x.is_complex() else x.square()


class SubspaceLoss(nn.Module):
    """Distance between the spans of predicted and target bases (NeurKItt's projection loss).

    Each sample's channels are ``modes * parts`` fields, read as ``modes`` vectors on the
    grid: ``parts=1`` real, ``parts=2`` complex with the channels *blocked* (modes real parts,
    then modes imaginary parts), which is how the data loader stacks ``["ritz_real",
    "ritz_imag"]`` (:class:`pdeml.datasets.reader.H5Dataset`). Per sample, with ``V`` the
    target basis orthonormalized and ``Q`` the predicted one,

        ``loss = ||V - Q Q^H V||_F^2 / ||V||_F^2``,

    the mean squared sine of the principal angles: 0 when ``span(V)`` lies in the predicted
    span (any rotation or scaling of the same vectors), 1 when the spans are orthogonal.

    Follows Luo et al., "Neural Krylov Iteration for Accelerating Linear System Solving"
    (NeurIPS 2024; ``smart-JLuo/NeurKItt``, ``loss.py`` ``ProjectionLoss``): the prediction
    is orthonormalized by QR (torch's, differentiable; complex for complex systems) and the
    loss is the part of the target basis outside its span. Departs from it:

    - the QR is taken here, not inside the network, so any pdeml operator (and the
      normalizers around it) is used unchanged;
    - squared Frobenius norm over the target's norm, instead of the sum of the column
      residual norms: bounded in [0, 1] and free of the non-smooth square root at 0;
    - the target is orthonormalized too (NeurKItt's eigenvectors already are; stored float32
      Ritz vectors nearly are), and target columns beyond its numerical rank (zero padding
      where the solver held fewer vectors) are left out;
    - rank deficiency of the prediction: each predicted vector is scaled to unit norm and the
      QR is of ``[P; sqrt(eps) I]`` (a Tikhonov-regularized QR), so ``Q Q^H =
      P (P^H P + eps I)^(-1) P^H``: the span's projector when ``P`` is well conditioned,
      finite with finite gradients when two predicted vectors coincide or one is zero.

    Parameters
    ----------
    parts
        1 (real vectors) or 2 (complex, blocked real/imaginary channels).
    eps
        The regularization of the prediction's QR (relative to unit vectors).
    rank_tol
        Target columns whose QR diagonal is below ``rank_tol`` times the largest are left out.
    reduction
        ``"mean"``, ``"sum"`` or ``"none"`` over the batch.
    """

    def __init__(self, parts: int = 1, eps: float = 1e-6, rank_tol: float = 1e-4,
                 reduction: str = "mean") -> None:
        super().__init__()
        if parts not in (1, 2):
            raise ValueError(f"subspace loss: parts must be 1 (real) or 2 (complex), got {parts}")
        if not eps > 0 or not rank_tol > 0:
            raise ValueError(f"subspace loss: eps and rank_tol must be positive, got {eps}, "
                             f"{rank_tol}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"unknown reduction '{reduction}'; use mean, sum or none")
        self.parts, self.eps, self.rank_tol = int(parts), float(eps), float(rank_tol)
        self.reduction = reduction

    @property
    def config(self) -> dict[str, Any]:
        """Plain settings that :func:`make_loss` turns back into this loss."""
        return {"name": "subspace", "parts": self.parts, "eps": self.eps,
                "rank_tol": self.rank_tol, "reduction": self.reduction}

    def _target(self, target: torch.Tensor) -> torch.Tensor:
        """Orthonormal target bases; columns past the numerical rank are zero."""
        with torch.no_grad():
            Q, R = torch.linalg.qr(_as_bases(target, self.parts))
            d = torch.diagonal(R, dim1=-2, dim2=-1).abs()
            keep = d > self.rank_tol * d.amax(-1, keepdim=True).clamp_min(1e-30)
        return Q * keep.unsqueeze(-2)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(
                f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ"
            )
        V = self._target(target.detach())
        P = _as_bases(pred, self.parts)
        P = P / _sq(P).sum(-2, keepdim=True).add(1e-30).sqrt()
        k = P.shape[-1]
        reg = math.sqrt(self.eps) * torch.eye(k, dtype=P.dtype, device=P.device)
        R = torch.linalg.qr(torch.cat([P, reg.expand(P.shape[0], k, k)], dim=-2))[1]
        Q = torch.linalg.solve_triangular(R, P, upper=True, left=False)  # P R^{-1}
        residual = V - Q @ (Q.mH @ V)
        num = _sq(residual).flatten(1).sum(1)
        den = _sq(V).flatten(1).sum(1)
        return _reduce(num / den.clamp_min(1.0), self.reduction)


LOSSES = {"l2": lambda: LpLoss(2.0), "l1": lambda: LpLoss(1.0), "mse": nn.MSELoss,
          "subspace": SubspaceLoss}


# neuraloperator's H1Loss: ||u||^2 + ||grad u||^2 (relative), central differences on a periodic
# grid. pdeml's ``h1`` is the Fourier-series norm (1 + |k|^2)-weighted, k in cycles per length.
NEURALOP_H1 = {"s": 1.0, "weighting": "angular", "alpha": 1.0, "method": "fd"}


def _loss_from_name(name: str, kwargs: dict[str, Any]) -> nn.Module:
    match = _H_NAME.match(name)
    try:
        if name == "h1-neuralop":
            return SobolevLoss(**{**NEURALOP_H1, **kwargs})
        if match:
            return SobolevLoss(s=float(match.group(1)), **kwargs)
        if name == "sobolev":
            return SobolevLoss(**kwargs)
        if name in ("l2", "l1", "lp"):
            return LpLoss(**({"p": float(name[1])} if name != "lp" else {}), **kwargs)
        if name == "mse":
            return nn.MSELoss(**kwargs)
        if name == "subspace":
            return SubspaceLoss(**kwargs)
    except TypeError as err:
        raise ValueError(f"bad settings for loss '{name}': {err}") from None
    known = ", ".join([*LOSSES, "lp", "sobolev", "h1-neuralop", "h<s> (e.g. h1, h-1, h0.5)"])
    raise ValueError(f"unknown loss '{name}'; available: {known}")


def make_loss(spec: str | Mapping[str, Any] | nn.Module) -> nn.Module:
    """A loss module from a name, a settings mapping, or passed through as is.

    Parameters
    ----------
    spec
        A name: ``l2`` (relative L2, the default), ``l1``, ``mse``, or ``h<s>`` for the
        relative ``H^s`` loss (``h1``, ``h-1``, ``h0.5``: periodic, integer weighting, i.e.
        ``(1 + |k|^2)^s``), or ``h1-neuralop``, neuraloperator's relative H1 loss
        ``(||e||^2 + ||grad e||^2)^(1/2) / (||y||^2 + ||grad y||^2)^(1/2)`` (periodic central
        differences), or ``subspace`` (:class:`SubspaceLoss`, real bases). Or a
        mapping with ``name`` (any of those, ``lp`` or ``sobolev``) and the loss's arguments,
        e.g. ``{"name": "sobolev", "s": -1, "relative": False, "weighting": "angular",
        "alpha": 0, "periodic": False}`` or ``{"name": "subspace", "parts": 2}``; the
        ``config`` of :class:`LpLoss`, :class:`SobolevLoss` and :class:`SubspaceLoss` is such
        a mapping. Or an ``nn.Module``.

    Returns
    -------
    nn.Module
        The loss, called as ``loss(pred, target)``.
    """
    if isinstance(spec, nn.Module):
        return spec
    if isinstance(spec, Mapping):
        kwargs = dict(spec)
        name = kwargs.pop("name", None)
        if not isinstance(name, str):
            raise ValueError(f"a loss mapping needs a 'name', got {dict(spec)}")
        return _loss_from_name(name.lower(), kwargs)
    if not isinstance(spec, str):
        raise ValueError(f"a loss is a name, a mapping or a module, got {type(spec).__name__}")
    if spec in LOSSES:
        return LOSSES[spec]()
    return _loss_from_name(spec.lower(), {})
