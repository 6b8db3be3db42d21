"""Random input fields for PDE datasets.

Gaussian random fields (GRF) with covariance ``sigma^2 (-Laplacian + tau^2)^(-alpha)`` are sampled
as truncated Karhunen-Loeve expansions in the Laplacian's own eigenbasis: cosines for Neumann
boundaries (the FNO Darcy setting), real Fourier modes for periodic ones (Burgers, Navier-Stokes).
Each sample is a function of the random coefficients only, not of the grid, so the same ``rng``
state evaluated at two resolutions gives the same continuous field: this is what makes zero-shot
super-resolution data consistent.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "gaussian_random_field",
    "random_source",
    "piecewise_constant",
    "lognormal",
    "grid_points",
]


def grid_points(n: int, boundary: str) -> np.ndarray:
    """Return the ``n`` sample points on [0, 1] that pdeml uses for each boundary type.

    Periodic grids exclude the right end point (``x_j = j / n``); bounded grids include both
    boundary nodes (``x_j = j / (n - 1)``), as in the FNO Darcy data.
    """
    if n < 2:
        raise ValueError(f"a grid needs at least 2 points per axis, got {n}")
    if boundary == "periodic":
        return np.arange(n) / n
    return np.linspace(0.0, 1.0, n)


def _basis(x: np.ndarray, n_terms: int, boundary: str) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal 1-D eigenfunctions of -d^2/dx^2 on [0, 1] and their eigenvalues."""
    if boundary == "neumann":
        k = np.arange(n_terms)
        phi = np.cos(np.pi * np.outer(x, k)) * np.where(k == 0, 1.0, np.sqrt(2.0))
        return phi, (np.pi * k) ** 2
    if boundary == "periodic":
        freqs = np.arange(1, (n_terms - 1) // 2 + 1)
        cols = [np.ones_like(x)[:, None]]
        lam = [np.zeros(1)]
        arg = 2 * np.pi * np.outer(x, freqs)
        # Interleave cos/sin so that truncation keeps both members of each frequency pair.
        both = np.stack([np.sqrt(2.0) * np.cos(arg), np.sqrt(2.0) * np.sin(arg)], axis=-1)
        cols.append(both.reshape(len(x), -1))
        lam.append(np.repeat((2 * np.pi * freqs) ** 2, 2))
        return np.concatenate(cols, axis=1), np.concatenate(lam)
    raise ValueError(f"unknown boundary '{boundary}'; use 'neumann' or 'periodic'")


def gaussian_random_field(
    shape: int | tuple[int, ...],
    rng: np.random.Generator,
    alpha: float = 2.0,
    tau: float = 3.0,
    sigma: float | None = None,
    boundary: str = "neumann",
    n_terms: int = 64,
) -> np.ndarray:
    """Sample a Gaussian random field with covariance ``sigma^2 (-Laplacian + tau^2)^(-alpha)``.

    Parameters
    ----------
    shape
        Grid size per axis (an int for 1-D). Any dimension count works.
    rng
        The random generator; the field is a deterministic function of its state.
    alpha, tau
        Smoothness and inverse length scale of the covariance.
    sigma
        Amplitude; the default ``tau**(alpha - d/2)`` keeps the variance O(1) as tau changes.
    boundary
        ``"neumann"`` (cosine series) or ``"periodic"`` (Fourier series); the grid is
        :func:`grid_points` of that boundary type.
    n_terms
        Number of 1-D basis functions per axis, independent of the grid so that the same
        random state gives the same continuous field at every resolution.

    Returns
    -------
    numpy.ndarray
        The field on the grid, float64, of the given shape.
    """
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    d = len(shape)
    if alpha * 2 <= d:
        raise ValueError(f"alpha must exceed d/2 = {d / 2} for a well-defined field, got {alpha}")
    if sigma is None:
        sigma = tau ** (alpha - d / 2)
    grid_kind = "periodic" if boundary == "periodic" else "bounded"
    bases, eigs = [], []
    for n in shape:
        phi, lam = _basis(grid_points(n, grid_kind), n_terms, boundary)
        bases.append(phi)
        eigs.append(lam)
    lam_total = sum(np.meshgrid(*eigs, indexing="ij", sparse=True))
    coef = sigma * (lam_total + tau**2) ** (-alpha / 2)
    if boundary == "neumann":
        coef = coef.copy()
        coef.flat[0] = 0.0  # zero mean, as in the FNO data: the threshold then splits ~50/50
    field = coef * rng.standard_normal(coef.shape)
    for axis, phi in enumerate(bases):
        field = np.moveaxis(np.tensordot(phi, field, axes=([1], [axis])), 0, axis)
    return field


def piecewise_constant(
    shape: int | tuple[int, ...],
    rng: np.random.Generator,
    high: float = 12.0,
    low: float = 3.0,
    alpha: float = 2.0,
    tau: float = 3.0,
) -> np.ndarray:
    """The FNO paper's Darcy coefficient: a Neumann GRF thresholded at zero to ``high``/``low``."""
    g = gaussian_random_field(shape, rng, alpha=alpha, tau=tau, boundary="neumann")
    return np.where(g >= 0.0, high, low)


def lognormal(
    shape: int | tuple[int, ...],
    rng: np.random.Generator,
    alpha: float = 2.0,
    tau: float = 3.0,
    sigma: float | None = None,
) -> np.ndarray:
    """A log-normal coefficient ``exp(g)`` with ``g`` a Neumann GRF."""
    return np.exp(gaussian_random_field(shape, rng, alpha=alpha, tau=tau, sigma=sigma))


def random_source(shape: tuple[int, ...], rng: np.random.Generator, alpha: float, tau: float,
                  complex_valued: bool = False) -> np.ndarray:
    """A forcing drawn as a Gaussian random field, zero on the boundary, unit RMS inside.

    The training data of HINTS-style corrections (Kopaničáková and Karniadakis, NMI 2024):
    by linearity an operator fitted on (coefficient, random ``f``) -> ``u`` maps a residual
    ``r`` to the error ``e`` with ``A e = r``. The field is
    :func:`~pdeml.solvers.fields.gaussian_random_field` with the problem's ``alpha, tau``
    (real and imaginary parts drawn independently, in that order, when ``complex_valued``),
    set to zero on the Dirichlet boundary and scaled to unit RMS over the interior nodes,
    the scale a residual is normalized to before the network
    (:func:`pdeml.solvers.hybrid.normalized_correction`).
    """
    f = gaussian_random_field(shape, rng, alpha=alpha, tau=tau)
    if complex_valued:
        f = f + 1j * gaussian_random_field(shape, rng, alpha=alpha, tau=tau)
    inner = (slice(1, -1),) * len(shape)
    out = np.zeros(shape, dtype=f.dtype)
    out[inner] = f[inner]
    rms = float(np.sqrt(np.mean(np.abs(out[inner]) ** 2)))
    return out / rms if rms > 0 else out
