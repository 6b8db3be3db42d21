"""SKR's Darcy systems, rebuilt from the authors' code for an honest reproduction.

Wang, Hao, Wang, Geng, Wang, Li, Wu, "Accelerating Data Generation for Neural Operators via
Krylov Subspace Recycling" (SKR), ICLR 2024; code: github.com/wanghong1700/NO-DataGen-SKR
(``code_dracy/exp_generate_mpi_*_sort.py`` builds the systems and the order, ``e.c`` solves
them with PETSc). What this module follows and where it departs, point by point:

- **Coefficient.** Follows: ``a = exp(g)`` with ``g`` a *periodic* Gaussian random field,
  ``alpha = 2.5``, ``tau = 7``, ``sigma = tau^(alpha - d/2)``, sampled on an ``S x S`` grid by
  an inverse FFT of complex normal coefficients scaled by ``S^2 sqrt(2) sigma (4 pi^2 |k|^2 +
  tau^2)^(-alpha/2)`` (zero mean mode), real part kept. Departs: NumPy's generator instead of
  ``torch.randn``, so the draws differ; the statistics are the same.
- **Matrix.** Follows: on the ``s = S - 2`` interior nodes (row-major), ``4 a_p`` on the
  diagonal and ``-a_q`` for each neighbour ``q`` of ``p`` (the neighbour's *own* node value),
  zero Dirichlet data; ``b = h^2 f`` with ``f = 1`` and ``h = 1 / (s - 1)``, the matrix not
  scaled by ``1/h^2`` (all as in the authors' ``build_darcy``). This is ``L diag(a)`` with
  ``L`` the 5-point Laplacian, a discretization of ``-Laplace(a u)``, not of
  ``-div(a grad u)``: it is non-symmetric. pdeml's own ``darcy`` problem is the symmetric
  finite-volume operator and is *not* this matrix.
- **The published slicing.** The authors build the ``-s`` diagonal from
  ``coef[:-2, 1:-1].flatten()[s - 2:]``; ``scipy.sparse.diags`` silently truncates the too
  long array, so row ``p`` gets the north coefficient of node ``p - 2`` instead of ``p``.
  ``corrected=False`` reproduces this (the matrix they solved); ``corrected=True`` uses the
  node's own north neighbour, giving ``L diag(a)``, whose eigenvalues are real and positive
  (it is similar to ``diag(a)^(1/2) L diag(a)^(1/2)``).
- **Mutation.** The authors' slicing writes zeros into two boundary columns of the field
  (``coef_pos[:, -1] = 0`` on a view) before the fields are sorted; here the fields are
  left intact (the zeroed values are never used by the matrix).
- **Order.** Follows: a greedy nearest-neighbour tour in the Frobenius distance of the full
  fields, starting from system 0 (:func:`skr_order`). Departs: none in the tour itself;
  pdeml's :func:`~pdeml.solvers.krylov.sort_systems` (``"fft"``, from the farthest field)
  is offered separately.
- **Solver.** The authors call PETSc's ``KSPHPDDM`` (``-ksp_type hpddm
  -ksp_hpddm_type gcrodr -ksp_gmres_restart 40 -ksp_hpddm_recycle 20``) against
  ``-ksp_type gmres -ksp_gmres_restart 40`` with PETSc's default *left* preconditioning,
  zero initial guess and the preconditioned residual in the stopping test. pdeml's
  benchmark (``scripts/bench_skr.py``) uses right preconditioning and stops on the *true*
  residual ``norm(b - A x) <= rtol norm(b)``, which is what a dataset needs.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["skr_coefficients", "skr_darcy_system", "skr_order"]


def skr_coefficients(n_systems: int, size: int, rng: np.random.Generator,
                     alpha: float = 2.5, tau: float = 7.0) -> np.ndarray:
    """``n_systems`` coefficient fields ``exp(g)`` of shape ``(size, size)`` (SKR's Darcy).

    ``g`` is the periodic GRF described in the module docstring.
    """
    if size < 4 or n_systems < 1:
        raise ValueError("need size >= 4 and n_systems >= 1")
    d = 2
    sigma = tau ** (alpha - d / 2)
    k = np.fft.fftfreq(size, 1.0 / size)
    kx, ky = np.meshgrid(k, k, indexing="ij")
    sqrt_eig = size**2 * np.sqrt(2.0) * sigma * (4 * np.pi**2 * (kx**2 + ky**2)
                                                  + tau**2) ** (-alpha / 2)
    sqrt_eig[0, 0] = 0.0
    xi = (rng.standard_normal((n_systems, size, size))
          + 1j * rng.standard_normal((n_systems, size, size))) / np.sqrt(2.0)
    g = np.fft.ifft2(sqrt_eig * xi, axes=(-2, -1)).real
    return np.exp(g)


def skr_darcy_system(coef: np.ndarray, corrected: bool = False,
                     f: np.ndarray | float = 1.0) -> tuple[sp.csr_matrix, np.ndarray]:
    """SKR's Darcy matrix ``A`` and ``b`` for one coefficient field (see the module docs).

    Parameters
    ----------
    coef
        ``(S, S)`` positive field; the system has ``(S - 2)^2`` unknowns.
    corrected
        ``False``: the matrix as the authors' code builds it (shifted ``-s`` diagonal);
        ``True``: with each node's own north neighbour.
    f
        Source on the ``(S, S)`` grid (or a constant); ``b = h^2 f`` on the interior.
    """
    a = np.asarray(coef, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 4:
        raise ValueError(f"coef must be a square field of side >= 4, got {a.shape}")
    s = a.shape[0] - 2
    n = s * s
    col = np.tile(np.arange(s), s)
    west = np.where(col > 0, a[1:-1, :-2].ravel(), 0.0)  # west neighbour's own value
    east = np.where(col < s - 1, a[1:-1, 2:].ravel(), 0.0)
    south = a[2:, 1:-1].ravel()  # rows p = 0 .. n - s - 1 couple to p + s
    north_field = a[:-2, 1:-1].ravel()  # north_field[p] is node p's north neighbour
    north = north_field[s:] if corrected else north_field[s - 2: n - 2]
    A = sp.diags([-west[1:], -north, 4.0 * a[1:-1, 1:-1].ravel(), -south[: n - s], -east[:-1]],
                 [-1, -s, 0, s, 1], shape=(n, n), format="csr")
    h = 1.0 / (s - 1)
    b = h**2 * np.broadcast_to(np.asarray(f, dtype=float), a.shape)[1:-1, 1:-1].ravel()
    return A, np.ascontiguousarray(b)


def skr_order(fields: np.ndarray) -> np.ndarray:
    """SKR's order: greedy nearest neighbour (Frobenius distance) starting from system 0."""
    from pdeml.solvers.krylov import sort_systems

    return sort_systems(np.asarray(fields), "greedy", start=0)
