"""Steady Darcy flow ``-div(a grad u) = f`` on the unit square with ``u = 0`` on the boundary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from pdeml.solvers.fields import lognormal, piecewise_constant, random_source
from pdeml.solvers.problems.base import ParameterRange, Variable, range_option
from pdeml.solvers.problems.linear import LinearProblem

COEFFICIENTS = ("piecewise_constant", "lognormal")
SOURCES = ("constant", "random")
AMG_FRESH_FROM = 160 * 160  # unknowns from which `auto` (without a plan) takes AMG


def harmonic_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Face coefficient between two cells: exact flux continuity for a jump in between."""
    return 2.0 * a * b / (a + b)


class DarcyFlow(LinearProblem):
    """Darcy flow on an ``s x s`` node grid that includes the boundary nodes (as the FNO data).

    Discretization: finite volumes around each interior node (5-point stencil), with the face
    coefficient the harmonic mean of the two node values; second order for smooth ``a``.

    Parameters
    ----------
    resolution
        Nodes per axis, boundary included (at least 4), of the stored fields.
    solver_resolution
        Nodes per axis of the grid the coefficient is drawn and the equation solved on; every
        ``(solver_resolution - 1) / (resolution - 1)``-th node is stored (the FNO paper's data:
        solved at 421, stored at 85 = every 5th node). ``None``: the stored grid.
    coefficient
        ``"piecewise_constant"`` (FNO paper: GRF thresholded to ``high``/``low``) or
        ``"lognormal"`` (``exp`` of a GRF).
    forcing
        Constant right-hand side ``f`` (``source="constant"``).
    source
        ``"constant"`` (``f = forcing``) or ``"random"`` (a new ``f`` per sample, input ``f``).
        A random ``f`` is :func:`~pdeml.solvers.fields.random_source`: a GRF with
        ``alpha, tau``, zero on the boundary, unit RMS, stored as the input variable ``f``.
    alpha, tau
        GRF covariance parameters of the coefficient (and of a random source).
    high, low
        The two values of the piecewise-constant coefficient.
    contrast_range
        ``[low, high]`` with ``1 <= low < high`` (e.g. ``[2, 1000]``): a new contrast ``c``
        per sample, log-uniform in the range, drawn before the coefficient (the family whose
        difficulty varies: the condition number grows with ``c``). The two coefficient
        values become ``m sqrt(c)`` and ``m / sqrt(c)`` with ``m = sqrt(high * low)``, so the
        sample's pattern (which nodes are high) does not depend on ``c``. Stored per sample
        as the variable ``contrast`` and settable by an active sampler
        (:meth:`parameter_space`). Piecewise-constant coefficient only.
    solver, rtol, precond, krylov_m, recycle_k
        How the systems are solved and checked, see
        :class:`~pdeml.solvers.problems.linear.LinearProblem`.
    save_ritz
        GCRO-DR's recycled vectors stored per sample as ``ritz`` (0 = none).
        See :class:`~pdeml.solvers.problems.linear.LinearProblem`.
    """

    name: ClassVar[str] = "darcy"
    order: ClassVar[int] = 2
    input_vars: ClassVar[tuple[str, ...]] = ("a",)
    output_vars: ClassVar[tuple[str, ...]] = ("u",)

    def __init__(
        self,
        resolution: int = 64,
        coefficient: str = "piecewise_constant",
        forcing: float = 1.0,
        alpha: float = 2.0,
        tau: float = 3.0,
        high: float = 12.0,
        low: float = 3.0,
        solver: str = "auto",
        rtol: float = 1e-8,
        precond: str = "auto",
        krylov_m: int = 40,
        recycle_k: int = 20,
        solver_resolution: int | None = None,
        source: str = "constant",
        save_ritz: int = 0,
        contrast_range: Sequence[float] | None = None,
    ) -> None:
        if int(resolution) != resolution or resolution < 4:
            raise ValueError(f"darcy resolution must be an integer >= 4, got {resolution}")
        fine = resolution if solver_resolution is None else solver_resolution
        if int(fine) != fine or fine < resolution or (fine - 1) % (resolution - 1):
            raise ValueError(f"darcy solver_resolution must be an integer with "
                             f"(solver_resolution - 1) a multiple of (resolution - 1) = "
                             f"{resolution - 1}, got {solver_resolution}")
        self.solver_resolution = int(fine)
        self.stride = (self.solver_resolution - 1) // (int(resolution) - 1)
        if coefficient not in COEFFICIENTS:
            raise ValueError(
                f"unknown darcy coefficient '{coefficient}'; use one of {', '.join(COEFFICIENTS)}"
            )
        if not (high > 0 and low > 0):
            raise ValueError("darcy coefficient values must be positive")
        if source not in SOURCES:
            raise ValueError(f"unknown darcy source '{source}'; use one of {', '.join(SOURCES)}")
        self.source = source
        self.contrast_range: ParameterRange | None = None
        if contrast_range is not None:
            if coefficient != "piecewise_constant":
                raise ValueError(f"darcy contrast_range needs coefficient='piecewise_constant', "
                                 f"got '{coefficient}'")
            self.contrast_range = range_option("darcy", "contrast_range", contrast_range, "log",
                                               minimum=1.0)
        self.input_vars = ("a", "f") if source == "random" else ("a",)
        self.resolution = int(resolution)
        self.coefficient = coefficient
        self.forcing = float(forcing)
        self.alpha, self.tau, self.high, self.low = float(alpha), float(tau), high, low
        self._setup_solver(solver, rtol, precond, krylov_m, recycle_k, save_ritz)

    def field_variables(self) -> dict[str, Variable]:
        forcing = {"f": Variable(("y", "x"), "1", "random source (zero on the boundary)")}
        return {
            "a": Variable(("y", "x"), "1", "diffusion coefficient"),
            **(forcing if self.source == "random" else {}),
            "u": Variable(("y", "x"), "1", "solution"),
        }

    @property
    def h(self) -> float:
        """Spacing of the grid the equation is solved on."""
        return 1.0 / (self.solver_resolution - 1)

    def attrs(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "solver_resolution": self.solver_resolution,
            "coefficient": self.coefficient,
            "forcing": self.forcing,
            "source": self.source,
            "save_ritz": self.save_ritz,
            "alpha": self.alpha,
            "tau": self.tau,
            "high": float(self.high),
            "low": float(self.low),
            **({} if self.contrast_range is None else {
                "contrast_range": [self.contrast_range.low, self.contrast_range.high]}),
            "discretization": "finite volume, 5-point, harmonic face averages",
            **self.solver_attrs(),
        }

    def parameter_space(self) -> dict[str, ParameterRange]:
        return {} if self.contrast_range is None else {"contrast": self.contrast_range}

    def parameter_variables(self) -> dict[str, Variable]:
        if self.contrast_range is None:
            return {}
        return {"contrast": Variable((), "1", "coefficient contrast high/low of this sample")}

    def coefficient_values(self, contrast: float | None = None) -> tuple[float, float]:
        """``(high, low)`` of the piecewise-constant coefficient: the configured ones, or
        those of ``contrast`` about their geometric mean (``contrast_range``)."""
        if contrast is None:
            return self.high, self.low
        m, r = np.sqrt(self.high * self.low), np.sqrt(contrast)
        return float(m * r), float(m / r)

    def draw_coefficient(self, rng: np.random.Generator,
                         contrast: float | None = None) -> np.ndarray:
        """Draw one coefficient field on the solver's node grid (with ``contrast`` high/low,
        see :meth:`coefficient_values`)."""
        shape = (self.solver_resolution, self.solver_resolution)
        if self.coefficient == "piecewise_constant":
            high, low = self.coefficient_values(contrast)
            return piecewise_constant(shape, rng, high, low, self.alpha, self.tau)
        return lognormal(shape, rng, self.alpha, self.tau)

    def assemble(
        self, a: np.ndarray, f: np.ndarray | float | None = None
    ) -> tuple[sp.csr_matrix, np.ndarray]:
        """Assemble the SPD system ``A u_interior = b`` for coefficient ``a`` on the node grid."""
        s = self.solver_resolution
        if a.shape != (s, s):
            raise ValueError(f"coefficient must have shape {(s, s)}, got {a.shape}")
        if not np.all(a > 0):
            raise ValueError("the Darcy coefficient must be positive everywhere")
        n, inv_h2 = s - 2, 1.0 / self.h**2
        kx = harmonic_mean(a[:, :-1], a[:, 1:]) * inv_h2  # faces between columns j, j+1
        ky = harmonic_mean(a[:-1, :], a[1:, :]) * inv_h2  # faces between rows i, i+1
        diag = kx[1:-1, 1:] + kx[1:-1, :-1] + ky[1:, 1:-1] + ky[:-1, 1:-1]
        idx = np.arange(n * n).reshape(n, n)
        wx, wy = kx[1:-1, 1:-1], ky[1:-1, 1:-1]
        rows = np.concatenate([idx.ravel(), idx[:, :-1].ravel(), idx[:-1, :].ravel()])
        cols = np.concatenate([idx.ravel(), idx[:, 1:].ravel(), idx[1:, :].ravel()])
        vals = np.concatenate([diag.ravel(), -wx.ravel(), -wy.ravel()])
        upper = sp.coo_matrix((vals, (rows, cols)), shape=(n * n, n * n))
        lower = sp.coo_matrix((vals[n * n :], (cols[n * n :], rows[n * n :])), shape=upper.shape)
        A = (upper + lower).tocsr()
        f = self.forcing if f is None else f
        b = np.broadcast_to(np.asarray(f, dtype=float), (s, s))[1:-1, 1:-1].ravel().copy()
        return A, b

    def embed(self, u_interior: np.ndarray) -> np.ndarray:
        """Put interior values back on the full node grid with the zero boundary."""
        s = self.solver_resolution
        u = np.zeros((s, s))
        u[1:-1, 1:-1] = u_interior.reshape(s - 2, s - 2)
        return u

    def solve(self, a: np.ndarray, f: np.ndarray | float | None = None) -> np.ndarray:
        """Solve for ``u`` on the full node grid with a sparse direct factorization."""
        A, b = self.assemble(a, f)
        return self.embed(spla.spsolve(A.tocsc(), b))

    def static_method(self, n_unknowns: int) -> str:
        """``auto`` without a plan: sparse LU, and from 160² unknowns AMG + CG with a fresh
        hierarchy per system (``amg-fresh``), for both coefficients: independent draws are
        too far apart for a reused hierarchy (``scripts/bench_auto.py``, ms per system:
        piecewise-constant 190² amg-fresh 98 vs LU 133 vs reused AMG 164, 254² 163 vs 279
        vs 273; log-normal 254² 156 vs 296 vs 192; 126² LU 48 vs amg-fresh 51)."""
        return "amg-fresh" if n_unknowns >= AMG_FRESH_FROM else "direct"

    def draw_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return self.draw_inputs_with(rng, None)

    def draw_inputs_with(self, rng: np.random.Generator,
                         params: dict[str, float] | None) -> dict[str, np.ndarray]:
        """The contrast first (with ``contrast_range``; drawn even when given), then the
        coefficient, then a random source."""
        values = self.draw_parameters(rng, params)  # {} without a range; refuses params then
        a = self.draw_coefficient(rng, values.get("contrast"))
        out = {"a": a}
        if self.source == "random":  # drawn after a: the coefficient is that of "constant"
            out["f"] = random_source(a.shape, rng, self.alpha, self.tau)
        return {**out, **{k: np.float64(v) for k, v in values.items()}}

    def system(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        return self.assemble(inputs["a"], inputs.get("f"))

    def outputs(self, x: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        k = self.stride
        if k == 1:
            return {"u": self.embed(x)}
        # Stored on the coarse nodes; "a" (and "f") replace the solver-grid fields in the sample.
        coarse = {v: inputs[v][::k, ::k] for v in self.input_vars}
        return {**coarse, "u": self.embed(x)[::k, ::k]}
