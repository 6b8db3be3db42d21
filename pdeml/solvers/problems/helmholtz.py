"""Damped Helmholtz ``-Laplace u - k(x)^2 (1 + i gamma) u = f`` with a random wavenumber field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from pdeml.solvers.fields import gaussian_random_field
from pdeml.solvers.problems.base import ParameterRange, Variable, range_option
from pdeml.solvers.problems.linear import LinearProblem, assemble_diffusion


class Helmholtz(LinearProblem):
    """Helmholtz on the unit square, ``u = 0`` on the boundary, a Gaussian source at the centre.

    The wavenumber ``k(x) = k0 (1 + contrast tanh(g(x)))`` (``g`` a GRF) stays within
    ``k0 (1 +- contrast)``. Two choices keep every draw solvable: a moderate ``k0`` (the
    default 10 gives about 1.6 wavelengths across the domain and over 20 nodes per wavelength
    at 64^2), and the damping ``gamma > 0``: the complex shift moves the spectrum off the
    real axis, so no draw of ``k`` hits a Dirichlet resonance and the system is complex
    symmetric, indefinite and non-singular. It is not SPD, so ``auto`` uses sparse LU and the
    Krylov solvers default to an ILU preconditioner. The solution is stored as its real and
    imaginary parts. Second order (5-point stencil).

    Parameters
    ----------
    resolution
        Nodes per axis, boundary included (at least 4).
    k0, contrast
        Mean wavenumber and relative variation (``0 <= contrast < 1``).
    k0_range
        ``[low, high]`` with ``0 <= low < high``: a new ``k0`` per sample, uniform in the
        range, drawn before the wavenumber field (so the field's pattern does not depend on
        it). Stored per sample as the variable ``k0`` and settable by an active sampler
        (:meth:`parameter_space`); it replaces ``k0``. Mind the grid: ``high (1 + contrast)``
        sets the nodes per wavelength (no check, as for ``k0``).
    gamma
        Damping (imaginary part of the relative shift), ``> 0``.
    width
        Standard deviation of the Gaussian source ``f``.
    alpha, tau
        GRF covariance parameters of ``g``.
    solver, rtol, precond, krylov_m, recycle_k
        See :class:`~pdeml.solvers.problems.linear.LinearProblem`.
    """

    name: ClassVar[str] = "helmholtz"
    order: ClassVar[int] = 2
    spd: ClassVar[bool] = False
    input_vars: ClassVar[tuple[str, ...]] = ("k",)
    output_vars: ClassVar[tuple[str, ...]] = ("u_real", "u_imag")

    def __init__(self, resolution: int = 64, k0: float = 10.0, contrast: float = 0.2,
                 gamma: float = 0.05, width: float = 0.05, alpha: float = 2.0,
                 tau: float = 3.0, solver: str = "auto", rtol: float = 1e-8,
                 precond: str = "auto", krylov_m: int = 40, recycle_k: int = 20,
                 k0_range: Sequence[float] | None = None) -> None:
        if int(resolution) != resolution or resolution < 4:
            raise ValueError(f"helmholtz resolution must be an integer >= 4, got {resolution}")
        if not (0.0 <= contrast < 1.0 and gamma > 0.0 and k0 >= 0.0 and width > 0.0):
            raise ValueError("helmholtz needs 0 <= contrast < 1, gamma > 0, k0 >= 0, width > 0")
        self.resolution, self.k0, self.contrast = int(resolution), float(k0), float(contrast)
        self.gamma, self.width = float(gamma), float(width)
        self.alpha, self.tau = float(alpha), float(tau)
        self.k0_range: ParameterRange | None = None
        if k0_range is not None:
            self.k0_range = range_option("helmholtz", "k0_range", k0_range, "linear",
                                         minimum=0.0)
        self._setup_solver(solver, rtol, precond, krylov_m, recycle_k)

    def field_variables(self) -> dict[str, Variable]:
        return {"k": Variable(("y", "x"), "1", "wavenumber"),
                "u_real": Variable(("y", "x"), "1", "real part of the solution"),
                "u_imag": Variable(("y", "x"), "1", "imaginary part of the solution")}

    def parameter_space(self) -> dict[str, ParameterRange]:
        return {} if self.k0_range is None else {"k0": self.k0_range}

    def parameter_variables(self) -> dict[str, Variable]:
        if self.k0_range is None:
            return {}
        return {"k0": Variable((), "1", "mean wavenumber k0 of this sample")}

    def attrs(self) -> dict[str, Any]:
        rng = self.k0_range
        k0 = {"k0": self.k0} if rng is None else {"k0_range": [rng.low, rng.high]}
        return {"resolution": self.resolution, **k0, "contrast": self.contrast,
                "gamma": self.gamma, "width": self.width, "alpha": self.alpha, "tau": self.tau,
                "discretization": "5-point finite differences, complex shift",
                **self.solver_attrs()}

    def source(self) -> np.ndarray:
        """The Gaussian source centred in the domain, on the node grid."""
        x = self.coords()["x"]
        X, Y = np.meshgrid(x, x)
        r2 = (X - 0.5) ** 2 + (Y - 0.5) ** 2
        return np.exp(-r2 / (2 * self.width**2)) / (2 * np.pi * self.width**2)

    def assemble(self, k: np.ndarray, f: np.ndarray | float | None = None
                 ) -> tuple[sp.csr_matrix, np.ndarray]:
        """The complex symmetric interior system for wavenumber field ``k``."""
        s = self.resolution
        if k.shape != (s, s):
            raise ValueError(f"wavenumber must have shape {(s, s)}, got {k.shape}")
        shift = -(k**2) * (1.0 + 1j * self.gamma)
        f = self.source() if f is None else f
        return assemble_diffusion(np.ones((s, s)), self.h, f, shift=shift)

    def embed(self, x: np.ndarray) -> np.ndarray:
        """Interior values (complex) on the full node grid with the zero boundary."""
        s = self.resolution
        u = np.zeros((s, s), dtype=complex)
        u[1:-1, 1:-1] = x.reshape(s - 2, s - 2)
        return u

    def draw_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return self.draw_inputs_with(rng, None)

    def draw_inputs_with(self, rng: np.random.Generator,
                         params: dict[str, float] | None) -> dict[str, np.ndarray]:
        """``k0`` first (with ``k0_range``; drawn even when given), then the field ``g``."""
        values = self.draw_parameters(rng, params)  # {} without a range; refuses params then
        shape = (self.resolution, self.resolution)
        g = gaussian_random_field(shape, rng, self.alpha, self.tau)
        k0 = values.get("k0", self.k0)
        return {"k": k0 * (1.0 + self.contrast * np.tanh(g)),
                **{k: np.float64(v) for k, v in values.items()}}

    def system(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        return self.assemble(inputs["k"])

    def outputs(self, x: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        u = self.embed(x)
        return {"u_real": u.real.copy(), "u_imag": u.imag.copy()}
