"""3-D steady linear problems: Darcy (log-normal or piecewise constant) and damped Helmholtz.

Both live on the unit cube with ``s`` nodes per axis (boundary included, ``h = 1/(s-1)``) and
zero Dirichlet data, and are written with dims ``(z, y, x)`` in the same schema as the 2-D
problems (the solver statistics per sample included). They reuse the sorted-sequence solving
of :class:`~pdeml.solvers.problems.linear.LinearProblem`; in 3-D sparse LU fills in fast, so
``auto`` picks an iterative method (see :meth:`Darcy3D.auto_choice`,
:meth:`Helmholtz3D.auto_choice`). Discretization: the 7-point finite-volume stencil with
harmonic face averages (:func:`assemble_diffusion_nd`), second order for smooth data.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from pdeml.solvers.fields import (
    gaussian_random_field,
    grid_points,
    lognormal,
    piecewise_constant,
    random_source,
)
from pdeml.solvers.problems.base import Variable
from pdeml.solvers.problems.linear import LinearProblem

__all__ = ["Darcy3D", "Helmholtz3D", "assemble_diffusion_nd"]


def _along(arr: np.ndarray, axis: int, sl: slice) -> np.ndarray:
    index = [slice(None)] * arr.ndim
    index[axis] = sl
    return arr[tuple(index)]


def assemble_diffusion_nd(a: np.ndarray, h: float, f: np.ndarray | float = 0.0,
                          shift: np.ndarray | complex | None = None
                          ) -> tuple[sp.csr_matrix, np.ndarray]:
    """``-div(a grad u) + shift u = f`` with ``u = 0`` on the boundary, in any dimension.

    ``a`` (positive), ``f`` and ``shift`` live on the ``s^d`` node grid (boundary included);
    the face coefficient is the harmonic mean of its two nodes, giving the ``2d + 1``-point
    finite-volume stencil on the ``(s - 2)^d`` interior unknowns (row-major order).
    """
    D, s = a.ndim, a.shape[0]
    if a.shape != (s,) * D or s < 3:
        raise ValueError(f"a must be a cube of side >= 3, got {a.shape}")
    n = s - 2
    idx = np.arange(n**D).reshape((n,) * D)
    diag = np.zeros((n,) * D, dtype=np.result_type(a.dtype, float))
    rows, cols, vals = [], [], []
    for d in range(D):
        # Faces along axis d between grid nodes i and i+1, restricted to interior in the others.
        cut = [slice(1, -1)] * D
        cut[d] = slice(None)
        line = a[tuple(cut)]
        lo, hi = _along(line, d, slice(0, -1)), _along(line, d, slice(1, None))
        k = 2.0 * lo * hi / (lo + hi) / h**2  # s - 1 faces along d
        diag = diag + _along(k, d, slice(0, n)) + _along(k, d, slice(1, n + 1))
        w = _along(k, d, slice(1, n)).ravel()  # faces between interior nodes j and j+1
        i1, i2 = _along(idx, d, slice(0, n - 1)).ravel(), _along(idx, d, slice(1, n)).ravel()
        rows += [i1, i2]
        cols += [i2, i1]
        vals += [-w, -w]
    if shift is not None:
        diag = diag + np.broadcast_to(shift, a.shape)[(slice(1, -1),) * D]
    rows.append(idx.ravel())
    cols.append(idx.ravel())
    vals.append(diag.ravel())
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(n**D, n**D))
    f = np.asarray(f)
    b = np.broadcast_to(f, a.shape)[(slice(1, -1),) * D]
    return A, np.ascontiguousarray(b.ravel().astype(np.result_type(A.dtype, b.dtype)))


class _Cube(LinearProblem):
    """Shared grid handling of the 3-D problems."""

    def _check_resolution(self, resolution: int) -> int:
        if int(resolution) != resolution or resolution < 4:
            raise ValueError(f"{self.name} resolution must be an integer >= 4, got {resolution}")
        return int(resolution)

    def coords(self) -> dict[str, np.ndarray]:
        x = grid_points(self.resolution, "bounded")
        return {"z": x.copy(), "y": x.copy(), "x": x, **self.ritz_coords()}

    def _check_source(self, source: str, sources: tuple[str, ...]) -> str:
        if source not in sources:
            raise ValueError(f"unknown {self.name} source '{source}'; use one of "
                             f"{', '.join(sources)}")
        return source

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.resolution,) * 3

    def embed(self, x: np.ndarray) -> np.ndarray:
        """Interior values on the full node grid with the zero boundary."""
        u = np.zeros(self.shape, dtype=x.dtype)
        u[1:-1, 1:-1, 1:-1] = x.reshape((self.resolution - 2,) * 3)
        return u

    def static_method(self, n_unknowns: int) -> str:
        return self.auto_choice(n_unknowns)

    def auto_choice(self, n_unknowns: int) -> str:
        raise NotImplementedError


class Darcy3D(_Cube):
    """``-div(a grad u) = f`` on the unit cube, ``u = 0`` on the boundary (3-D Darcy flow).

    Parameters
    ----------
    resolution
        Nodes per axis, boundary included (at least 4).
    coefficient
        ``"lognormal"`` (``exp`` of a 3-D GRF) or ``"piecewise_constant"`` (a 3-D GRF
        thresholded to ``high``/``low``).
    forcing
        Constant source ``f`` (``source="constant"``).
    source
        ``"constant"`` (``f = forcing``) or ``"random"`` (a new ``f`` per sample, input ``f``).
        A random ``f`` is :func:`~pdeml.solvers.fields.random_source`: a 3-D GRF
        with ``alpha, tau``, zero on the boundary, unit RMS.
    alpha, tau
        GRF covariance parameters (``alpha > 3/2`` in 3-D).
    high, low
        The two values of the piecewise-constant coefficient.
    solver, rtol, precond, krylov_m, recycle_k
        See :class:`~pdeml.solvers.problems.linear.LinearProblem`.
    save_ritz
        GCRO-DR's recycled vectors stored per sample as ``ritz`` (0 = none).
        See :class:`~pdeml.solvers.problems.linear.LinearProblem`.
    """

    name: ClassVar[str] = "darcy3d"
    order: ClassVar[int] = 2
    input_vars: ClassVar[tuple[str, ...]] = ("a",)
    output_vars: ClassVar[tuple[str, ...]] = ("u",)

    def __init__(self, resolution: int = 32, coefficient: str = "lognormal",
                 forcing: float = 1.0, alpha: float = 2.5, tau: float = 3.0,
                 high: float = 12.0, low: float = 3.0, solver: str = "auto",
                 rtol: float = 1e-8, precond: str = "auto", krylov_m: int = 40,
                 recycle_k: int = 20, source: str = "constant", save_ritz: int = 0) -> None:
        self.resolution = self._check_resolution(resolution)
        self.source = self._check_source(source, ("constant", "random"))
        self.input_vars = ("a", "f") if source == "random" else ("a",)
        if coefficient not in ("lognormal", "piecewise_constant"):
            raise ValueError(f"unknown darcy3d coefficient '{coefficient}'; use lognormal or "
                             "piecewise_constant")
        if not (high > 0 and low > 0 and alpha > 1.5):
            raise ValueError("darcy3d needs high, low > 0 and alpha > 3/2")
        self.coefficient, self.forcing = coefficient, float(forcing)
        self.alpha, self.tau, self.high, self.low = float(alpha), float(tau), high, low
        self._setup_solver(solver, rtol, precond, krylov_m, recycle_k, save_ritz)

    def auto_choice(self, n_unknowns: int) -> str:
        """AMG + CG: fastest for 3-D Darcy at 24³, 32³ and 48³ (``scripts/bench_auto.py``:
        40 / 94 / 361 ms per system against GMRES+AMG 44 / 103 / 389, LU 476 / 3561 / -)."""
        return "amg"

    def field_variables(self) -> dict[str, Variable]:
        dims = ("z", "y", "x")
        forcing = {"f": Variable(dims, "1", "random source (zero on the boundary)")}
        return {"a": Variable(dims, "1", "diffusion coefficient"),
                **(forcing if self.source == "random" else {}),
                "u": Variable(dims, "1", "solution")}

    def attrs(self) -> dict[str, Any]:
        return {"resolution": self.resolution, "coefficient": self.coefficient,
                "forcing": self.forcing, "source": self.source, "save_ritz": self.save_ritz,
                "alpha": self.alpha, "tau": self.tau,
                "high": float(self.high), "low": float(self.low),
                "discretization": "finite volume, 7-point, harmonic face averages",
                **self.solver_attrs()}

    def assemble(self, a: np.ndarray, f: np.ndarray | float | None = None
                 ) -> tuple[sp.csr_matrix, np.ndarray]:
        """The SPD interior system for coefficient ``a`` on the node grid."""
        if a.shape != self.shape or not np.all(a > 0):
            raise ValueError(f"the coefficient must be positive with shape {self.shape}")
        return assemble_diffusion_nd(a, self.h, self.forcing if f is None else f)

    def draw_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        if self.coefficient == "piecewise_constant":
            a = piecewise_constant(self.shape, rng, self.high, self.low, self.alpha, self.tau)
        else:
            a = lognormal(self.shape, rng, self.alpha, self.tau)
        if self.source == "random":  # drawn after a: the coefficient is that of "constant"
            return {"a": a, "f": random_source(self.shape, rng, self.alpha, self.tau)}
        return {"a": a}

    def system(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        return self.assemble(inputs["a"], inputs.get("f"))

    def outputs(self, x: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"u": self.embed(x)}

    def sort_features(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.log(inputs["a"])


class Helmholtz3D(_Cube):
    """``-Laplace u - k(x)^2 (1 + i gamma) u = f`` on the unit cube, ``u = 0`` on the boundary.

    ``k(x) = k0 (1 + contrast tanh(g(x)))`` with ``g`` a 3-D GRF; a Gaussian source at the
    centre (or a random one, ``source="random"``). The damping ``gamma > 0`` keeps every
    draw away from resonances (complex symmetric, indefinite, non-singular), as in the 2-D
    ``helmholtz`` problem. The solution is stored as its real and imaginary parts.

    Parameters
    ----------
    resolution
        Nodes per axis, boundary included (at least 4).
    k0, contrast, gamma, width
        Mean wavenumber, its relative variation, the damping and the source width.
    alpha, tau
        GRF covariance parameters of ``g`` (and of a random source).
    source
        ``"gaussian"`` (a bump at the centre) or ``"random"`` (inputs ``f_real``, ``f_imag``).
        The bump has width ``width`` (:meth:`gaussian_source`); a random ``f = f_real + i
        f_imag`` is drawn per sample (:func:`~pdeml.solvers.fields.random_source`:
        independent 3-D GRFs with ``alpha, tau``, zero on the boundary, unit RMS).
    solver, rtol, precond, krylov_m, recycle_k
        See :class:`~pdeml.solvers.problems.linear.LinearProblem`.
    save_ritz
        GCRO-DR's recycled vectors stored per sample as ``ritz_real``, ``ritz_imag`` (0 = none).
        Dims ``(mode, z, y, x)``; see :class:`~pdeml.solvers.problems.linear.LinearProblem`.
    """

    name: ClassVar[str] = "helmholtz3d"
    order: ClassVar[int] = 2
    spd: ClassVar[bool] = False
    complex_valued: ClassVar[bool] = True
    input_vars: ClassVar[tuple[str, ...]] = ("k",)
    output_vars: ClassVar[tuple[str, ...]] = ("u_real", "u_imag")

    def __init__(self, resolution: int = 32, k0: float = 10.0, contrast: float = 0.2,
                 gamma: float = 0.05, width: float = 0.05, alpha: float = 2.5,
                 tau: float = 3.0, solver: str = "auto", rtol: float = 1e-8,
                 precond: str = "auto", krylov_m: int = 40, recycle_k: int = 20,
                 source: str = "gaussian", save_ritz: int = 0) -> None:
        self.resolution = self._check_resolution(resolution)
        self.source = self._check_source(source, ("gaussian", "random"))
        if source == "random":
            self.input_vars = ("k", "f_real", "f_imag")
        if not (0.0 <= contrast < 1.0 and gamma > 0.0 and k0 >= 0.0 and width > 0.0):
            raise ValueError("helmholtz3d needs 0 <= contrast < 1, gamma > 0, k0 >= 0, "
                             "width > 0")
        self.k0, self.contrast, self.gamma = float(k0), float(contrast), float(gamma)
        self.width, self.alpha, self.tau = float(width), float(alpha), float(tau)
        self._setup_solver(solver, rtol, precond, krylov_m, recycle_k, save_ritz)

    def auto_choice(self, n_unknowns: int) -> str:
        """GCRO-DR + reused ILU below 20 000 unknowns, AMG + GMRES above.

        ``scripts/bench_auto.py`` (16 sorted draws, rtol 1e-8): at 24³ GCRO-DR 141 ms per
        system, GMRES 257, AMG 1212; at 32³ AMG 239, GCRO-DR 515; at 48³ AMG 987, GCRO-DR
        3515. The winner moves with the size (and with the draws): large jobs time the
        candidates instead (:mod:`pdeml.solvers.planner`).
        """
        return "gcrodr" if n_unknowns < 20_000 else "amg"

    def field_variables(self) -> dict[str, Variable]:
        dims = ("z", "y", "x")
        forcing = {"f_real": Variable(dims, "1", "real part of the random source"),
                   "f_imag": Variable(dims, "1", "imaginary part of the random source")}
        return {"k": Variable(dims, "1", "wavenumber"),
                **(forcing if self.source == "random" else {}),
                "u_real": Variable(dims, "1", "real part of the solution"),
                "u_imag": Variable(dims, "1", "imaginary part of the solution")}

    def attrs(self) -> dict[str, Any]:
        return {"resolution": self.resolution, "k0": self.k0, "contrast": self.contrast,
                "gamma": self.gamma, "width": self.width, "source": self.source,
                "save_ritz": self.save_ritz, "alpha": self.alpha,
                "tau": self.tau, "discretization": "7-point finite differences, complex shift",
                **self.solver_attrs()}

    def gaussian_source(self) -> np.ndarray:
        """The Gaussian source centred in the cube, on the node grid (``source="gaussian"``)."""
        x = grid_points(self.resolution, "bounded")
        Z, Y, X = np.meshgrid(x, x, x, indexing="ij")
        r2 = (X - 0.5) ** 2 + (Y - 0.5) ** 2 + (Z - 0.5) ** 2
        return np.exp(-r2 / (2 * self.width**2)) / (2 * np.pi * self.width**2) ** 1.5

    def assemble(self, k: np.ndarray, f: np.ndarray | float | None = None
                 ) -> tuple[sp.csr_matrix, np.ndarray]:
        """The complex symmetric interior system for the wavenumber field ``k``."""
        if k.shape != self.shape:
            raise ValueError(f"the wavenumber must have shape {self.shape}, got {k.shape}")
        shift = -(k**2) * (1.0 + 1j * self.gamma)
        f = self.gaussian_source() if f is None else f
        return assemble_diffusion_nd(np.ones(self.shape), self.h, f, shift=shift)

    def draw_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        g = gaussian_random_field(self.shape, rng, self.alpha, self.tau)
        k = self.k0 * (1.0 + self.contrast * np.tanh(g))
        if self.source == "random":  # drawn after k: the wavenumber is that of "gaussian"
            f = random_source(self.shape, rng, self.alpha, self.tau, complex_valued=True)
            return {"k": k, "f_real": f.real.copy(), "f_imag": f.imag.copy()}
        return {"k": k}

    def system(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        if self.source == "random":
            return self.assemble(inputs["k"], inputs["f_real"] + 1j * inputs["f_imag"])
        return self.assemble(inputs["k"])

    def outputs(self, x: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        u = self.embed(x)
        return {"u_real": u.real.copy(), "u_imag": u.imag.copy()}
