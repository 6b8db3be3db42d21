"""Poisson ``-Laplace u = f`` on the unit square with ``u = 0`` on the boundary, random source."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from pdeml.solvers.fields import gaussian_random_field
from pdeml.solvers.problems.base import Variable
from pdeml.solvers.problems.linear import LinearProblem, assemble_diffusion


class Poisson(LinearProblem):
    """Poisson's equation with a Gaussian-random-field source on an ``s x s`` node grid.

    The matrix is the same for every sample (only ``b`` changes), so the direct solver
    factorizes once per shard and a recycling solver sees a fixed operator.

    Parameters
    ----------
    resolution
        Nodes per axis, boundary included (at least 4).
    alpha, tau
        GRF covariance parameters of the source ``f`` (Neumann cosine series, zero mean).
    scale
        Multiplies the source.
    solver, rtol, precond, krylov_m, recycle_k
        See :class:`~pdeml.solvers.problems.linear.LinearProblem`.
    """

    name: ClassVar[str] = "poisson"
    order: ClassVar[int] = 2
    input_vars: ClassVar[tuple[str, ...]] = ("f",)
    output_vars: ClassVar[tuple[str, ...]] = ("u",)
    fixed_operator: ClassVar[bool] = True

    def __init__(self, resolution: int = 64, alpha: float = 2.0, tau: float = 3.0,
                 scale: float = 1.0, solver: str = "auto", rtol: float = 1e-8,
                 precond: str = "auto", krylov_m: int = 40, recycle_k: int = 20) -> None:
        if int(resolution) != resolution or resolution < 4:
            raise ValueError(f"poisson resolution must be an integer >= 4, got {resolution}")
        self.resolution, self.alpha, self.tau = int(resolution), float(alpha), float(tau)
        self.scale = float(scale)
        self._setup_solver(solver, rtol, precond, krylov_m, recycle_k)

    def field_variables(self) -> dict[str, Variable]:
        return {"f": Variable(("y", "x"), "1", "source"),
                "u": Variable(("y", "x"), "1", "solution")}

    def attrs(self) -> dict[str, Any]:
        return {"resolution": self.resolution, "alpha": self.alpha, "tau": self.tau,
                "scale": self.scale, "discretization": "5-point finite differences",
                **self.solver_attrs()}

    def assemble(self, f: np.ndarray | float) -> tuple[sp.csr_matrix, np.ndarray]:
        """The SPD system on the interior nodes for source ``f`` on the node grid."""
        s = self.resolution
        return assemble_diffusion(np.ones((s, s)), self.h, f)

    def embed(self, x: np.ndarray) -> np.ndarray:
        """Interior values on the full node grid with the zero boundary."""
        s = self.resolution
        u = np.zeros((s, s), dtype=x.dtype)
        u[1:-1, 1:-1] = x.reshape(s - 2, s - 2)
        return u

    def draw_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        shape = (self.resolution, self.resolution)
        return {"f": self.scale * gaussian_random_field(shape, rng, self.alpha, self.tau)}

    def system(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        return self.assemble(inputs["f"])

    def outputs(self, x: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"u": self.embed(x)}
