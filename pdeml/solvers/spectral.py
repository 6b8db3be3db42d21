"""Shared pieces of the periodic pseudo-spectral solvers (Burgers, Navier-Stokes).

Conventions: the domain is the unit torus, grid points are ``x_j = j / n`` (as in
:func:`pdeml.solvers.fields.grid_points`), transforms are real FFTs over the trailing axes with
integer wavenumbers ``k`` (so ``d/dx`` is multiplication by ``2 pi i k``), and 2-D arrays are
laid out ``(y, x)``, so the halved real-FFT axis is ``x``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

__all__ = [
    "wavenumbers",
    "dealias_mask",
    "phi_functions",
    "spectral_tail",
    "time_grid",
    "restrict",
    "real_number",
    "positive_int",
    "positive_numbers",
    "check_grid",
]


def wavenumbers(n: int, ndim: int = 1) -> tuple[np.ndarray, ...]:
    """Integer wavenumbers of an ``n``-point grid in real-FFT layout, broadcastable per axis.

    Returns one array per axis, ``(k,)`` in 1-D and ``(ky, kx)`` in 2-D with shapes
    ``(n, 1)`` and ``(1, n // 2 + 1)``; the last axis is the halved one.
    """
    if ndim not in (1, 2):
        raise ValueError(f"wavenumbers supports 1-D and 2-D grids, got ndim={ndim}")
    kx = np.fft.rfftfreq(n, d=1.0 / n)
    if ndim == 1:
        return (kx,)
    ky = np.fft.fftfreq(n, d=1.0 / n)
    return ky[:, None], kx[None, :]


def dealias_mask(n: int, ndim: int = 1) -> np.ndarray:
    """Orszag's 2/3 rule in real-FFT layout: keep the modes with every ``|k_i| < n / 3``.

    A quadratic product of two fields limited to ``|k| < n/3`` has its aliases, which fold back
    by ``n``, outside that band, so truncating the product to the band removes them exactly.
    The Nyquist mode is always dropped, which also keeps spectral derivatives real.
    """
    ks = wavenumbers(n, ndim)
    mask = np.ones(np.broadcast_shapes(*(k.shape for k in ks)), dtype=bool)
    for k in ks:
        mask &= np.abs(k) < n / 3
    return mask


def spectral_tail(coeffs: np.ndarray, n: int, ndim: int, band: float = 0.85) -> float:
    """How far a spectrum has decayed at the de-aliasing cutoff: a resolution diagnostic.

    The largest ``|coeffs|`` with ``band * n / 3 <= max_i |k_i| < n / 3`` (the top of the kept
    band) relative to the largest overall; ``coeffs`` are real-FFT coefficients of one field
    on an ``n``-point grid. Round-off for a resolved field, ``O(1e-3)`` and up when the grid
    cuts the spectrum (the nonlinearity then piles energy up at the cutoff).
    """
    kmax = functools.reduce(np.maximum, [np.abs(k) for k in wavenumbers(n, ndim)])
    spec = np.abs(coeffs)
    top = spec[np.broadcast_to((kmax >= band * n / 3) & (kmax < n / 3), spec.shape)]
    peak = spec.max()
    return float(top.max(initial=0.0) / peak) if peak > 0 else 0.0


def phi_functions(z: np.ndarray, count: int = 3) -> list[np.ndarray]:
    """The exponential-integrator functions ``phi_1 .. phi_count`` at the points ``z``.

    ``phi_0(z) = e^z`` and ``phi_{j+1}(z) = (phi_j(z) - 1/j!) / z``. The recurrence loses
    ``j`` digits near ``z = 0`` (cancellation), so ``|z| < 1`` uses the Taylor series
    ``phi_j(z) = sum_m z^m / (m + j)!`` instead, which converges to round-off in 20 terms there.
    """
    z = np.asarray(z, dtype=complex)
    small = np.abs(z) < 1.0
    zs = np.where(small, z, 0.0)
    zb = np.where(small, 1.0, z)  # dummy value keeps the division finite where unused
    out, prev = [], np.exp(zb)
    for j in range(1, count + 1):
        prev = (prev - 1.0 / math.factorial(j - 1)) / zb
        series = sum(zs**m / math.factorial(m + j) for m in range(20))
        out.append(np.where(small, series, prev))
    return out


def time_grid(final_time: float, n_snapshots: int, dt: float) -> tuple[np.ndarray, int, float]:
    """Stored times ``T k / n_snapshots`` (``k = 1..n_snapshots``) and the steps between them.

    The step actually taken is the largest one not above ``dt`` that divides the interval
    between two snapshots, so every snapshot falls on a step without interpolation.

    Returns
    -------
    times, steps_per_snapshot, dt_used
    """
    interval = final_time / n_snapshots
    steps = max(1, math.ceil(interval / dt - 1e-9))
    times = final_time * np.arange(1, n_snapshots + 1) / n_snapshots
    return times, steps, interval / steps


def restrict(field: np.ndarray, n: int, ndim: int) -> np.ndarray:
    """Subsample the trailing ``ndim`` axes of a periodic field from its grid to ``n`` points.

    Both grids are ``x_j = j / size``, so the coarse grid is every ``size // n``-th fine point.
    """
    step = field.shape[-1] // n
    index = (Ellipsis,) + (slice(None, None, step),) * ndim
    return field[index]


def real_number(value: Any, name: str, problem: str) -> float:
    """``value`` as a float; strings such as ``"1e-3"`` (YAML 1.1 reads those as text) too."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{problem} {name} must be a number, got {value!r}") from None


def positive_int(value: Any, name: str, problem: str, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``, with a one-line error otherwise."""
    ok = isinstance(value, (int, np.integer, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or int(value) != value or value < minimum:
        raise ValueError(f"{problem} {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def positive_numbers(problem: str, **values: Any) -> dict[str, float]:
    """Each keyword as a float that must be positive (one-line error naming the first bad one)."""
    out = {key: real_number(value, key, problem) for key, value in values.items()}
    for key, value in out.items():
        if not value > 0:
            raise ValueError(f"{problem} {key} must be positive, got {value}")
    return out


def check_grid(
    problem: str, resolution: Any, solver_resolution: Any, top: int, what: str
) -> tuple[int, int]:
    """Validate the stored and solver grids; ``top`` is the highest wavenumber to de-alias.

    Returns
    -------
    resolution, solver_resolution
        As ints; the solver grid defaults to the stored one.
    """
    res = positive_int(resolution, "resolution", problem, minimum=8)
    solver = res if solver_resolution is None else solver_resolution
    solver = positive_int(solver, "solver_resolution", problem, minimum=8)
    if solver % res:
        raise ValueError(
            f"{problem} solver_resolution {solver} must be a multiple of resolution {res}"
        )
    if top >= solver / 3:
        raise ValueError(
            f"{problem} grid too small: solver_resolution {solver} cannot de-alias {what} "
            f"(wavenumber {top}); raise it or lower n_terms"
        )
    return res, solver
