"""Steady heat conduction ``-div(kappa grad T) = q`` with random conductivity and hot/cold walls."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from pdeml.solvers.fields import lognormal
from pdeml.solvers.problems.base import Variable, box_boundaries
from pdeml.solvers.problems.linear import LinearProblem, assemble_diffusion


class SteadyHeat(LinearProblem):
    """Steady heat on the unit square: log-normal conductivity, uniform source, Dirichlet walls.

    The wall temperature is ``t_left`` at ``x = 0``, ``t_right`` at ``x = 1`` and varies
    linearly along the top and bottom walls, so the data has a non-zero boundary lift as well
    as a source (unlike Darcy). Discretization: the 5-point finite-volume scheme of Darcy
    (harmonic face averages), second order for smooth ``kappa``.

    Parameters
    ----------
    resolution
        Nodes per axis, boundary included (at least 4).
    source
        Uniform volumetric heat source ``q``.
    t_left, t_right
        Wall temperatures.
    alpha, tau
        GRF covariance parameters of ``log kappa``.
    solver, rtol, precond, krylov_m, recycle_k
        See :class:`~pdeml.solvers.problems.linear.LinearProblem`.
    """

    name: ClassVar[str] = "heat"
    order: ClassVar[int] = 2
    input_vars: ClassVar[tuple[str, ...]] = ("kappa",)
    output_vars: ClassVar[tuple[str, ...]] = ("T",)

    def __init__(self, resolution: int = 64, source: float = 10.0, t_left: float = 1.0,
                 t_right: float = 0.0, alpha: float = 2.0, tau: float = 3.0,
                 solver: str = "auto", rtol: float = 1e-8, precond: str = "auto",
                 krylov_m: int = 40, recycle_k: int = 20) -> None:
        if int(resolution) != resolution or resolution < 4:
            raise ValueError(f"heat resolution must be an integer >= 4, got {resolution}")
        self.resolution, self.source = int(resolution), float(source)
        self.t_left, self.t_right = float(t_left), float(t_right)
        self.alpha, self.tau = float(alpha), float(tau)
        self._setup_solver(solver, rtol, precond, krylov_m, recycle_k)

    def field_variables(self) -> dict[str, Variable]:
        return {"kappa": Variable(("y", "x"), "1", "thermal conductivity"),
                "T": Variable(("y", "x"), "1", "temperature")}

    def boundary_conditions(self) -> dict[str, dict[str, Any]]:
        # t_left / t_right on the side walls, linear in x along the top and bottom ones
        return box_boundaries("dirichlet", ("T",))

    def attrs(self) -> dict[str, Any]:
        return {"resolution": self.resolution, "source": self.source, "t_left": self.t_left,
                "t_right": self.t_right, "alpha": self.alpha, "tau": self.tau,
                "discretization": "finite volume, 5-point, harmonic face averages",
                **self.solver_attrs()}

    def wall_temperature(self) -> np.ndarray:
        """Dirichlet data on the node grid (interior values unused)."""
        x = self.coords()["x"]
        return np.broadcast_to(self.t_left + (self.t_right - self.t_left) * x,
                               (self.resolution, self.resolution)).copy()

    def assemble(self, kappa: np.ndarray, q: np.ndarray | float | None = None,
                 g: np.ndarray | None = None) -> tuple[sp.csr_matrix, np.ndarray]:
        """The SPD interior system; ``q`` and ``g`` default to the configured source and walls."""
        s = self.resolution
        if kappa.shape != (s, s) or not np.all(kappa > 0):
            raise ValueError(f"kappa must be positive with shape {(s, s)}")
        q = self.source if q is None else q
        g = self.wall_temperature() if g is None else g
        return assemble_diffusion(kappa, self.h, q, g)

    def embed(self, x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        """Interior values inside the wall temperature."""
        s = self.resolution
        T = (self.wall_temperature() if g is None else np.array(g, dtype=float)).astype(x.dtype)
        T[1:-1, 1:-1] = x.reshape(s - 2, s - 2)
        return T

    def draw_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        shape = (self.resolution, self.resolution)
        return {"kappa": lognormal(shape, rng, self.alpha, self.tau)}

    def system(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        return self.assemble(inputs["kappa"])

    def outputs(self, x: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"T": self.embed(x)}

    def sort_features(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.log(inputs["kappa"])  # distances between log-fields track the operators
