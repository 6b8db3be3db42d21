"""Viscous Burgers ``u_t + (u^2 / 2)_x = nu u_xx`` on the periodic unit interval."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.fft

from pdeml.solvers.fields import gaussian_random_field, grid_points
from pdeml.solvers.problems.base import ParameterRange, Problem, Variable, box_boundaries
from pdeml.solvers.spectral import (
    check_grid,
    dealias_mask,
    phi_functions,
    positive_int,
    positive_numbers,
    real_number,
    restrict,
    spectral_tail,
    time_grid,
    wavenumbers,
)

# A resolved spectrum has decayed this far, relative to its peak, at the top of the kept band
# (see spectral_tail); a cut shock instead rings (Gibbs), so the data would be wrong.
TAIL_TOLERANCE = 1e-4
# Viscous Burgers obeys a maximum principle, so growth past this factor means instability.
GROWTH_LIMIT = 1.05


def default_solver_resolution(resolution: int, viscosity: float) -> int:
    """Smallest power of two ``>= max(resolution, 1024, 8 / viscosity)``.

    A shock of jump ``du`` has width ``~ 4 nu / du`` and its spectrum falls like
    ``exp(-pi^2 width k)``; for GRF initial data (``du`` up to about 4) ``8 / nu`` points put
    the 2/3 cutoff well into the decayed part. This gives 1024 for ``nu >= 0.01`` and 8192,
    the FNO paper's grid, for ``nu = 1e-3``.
    """
    need = max(resolution, 1024, int(np.ceil(8.0 / viscosity)))
    return 1 << (need - 1).bit_length()


class Burgers(Problem):
    """Periodic viscous Burgers, the FNO paper's 1-D benchmark: ``u0 -> u(t)``.

    Discretization: Fourier pseudo-spectral on ``solver_resolution`` points with the 2/3 rule
    on the flux ``u^2 / 2``; time stepping by the exponential time-differencing fourth-order
    Runge-Kutta scheme of Cox & Matthews (ETDRK4), which integrates the stiff diffusion exactly.
    The trajectory is subsampled to ``resolution`` points. Each solve checks that the spectrum
    has decayed at the de-aliasing cutoff (else the grid is too coarse) and that ``max |u|``
    did not grow (the maximum principle; else ``dt`` is too large), and raises otherwise.

    Parameters
    ----------
    resolution
        Stored grid points (``x_j = j / resolution``).
    viscosity
        ``nu`` (FNO: 0.1 and 1e-3).
    final_time, n_snapshots
        Snapshots are stored at ``t_k = final_time * k / n_snapshots``, ``k = 1..n_snapshots``;
        ``u0`` holds ``t = 0``.
    dt
        Largest time step; the step used divides the snapshot interval (see ``attrs()["dt"]``).
        Default ``min(1e-3, viscosity / 10)``: 1e-4 (the FNO data's step) for ``nu = 1e-3``;
        measured on GRF data, the time error is then about 1e-7, the float32 storage precision.
    solver_resolution
        Solver grid, a multiple of ``resolution``; default :func:`default_solver_resolution`.
    alpha, tau, sigma, n_terms
        Initial condition: a zero-mean periodic GRF with covariance
        ``sigma^2 (-Laplacian + tau^2)^(-alpha)`` (FNO: ``625 (-Laplacian + 25)^-2``) in
        ``n_terms`` real Fourier modes (frequencies up to ``(n_terms - 1) // 2``).
    viscosity_range
        ``[low, high]``: a new ``nu`` per sample, log-uniform in the range (issue 30's family
        whose difficulty varies: shocks steepen as ``nu`` falls), stored per sample as the
        variable ``viscosity`` (a model gets it as a channel with ``data.inputs: [u0,
        viscosity]``) and settable by an active sampler (:meth:`parameter_space`). It replaces
        ``viscosity``; the default solver grid and step are sized for ``low``, the hardest
        sample.
    """

    name: ClassVar[str] = "burgers"
    order: ClassVar[int] = 4
    input_vars: ClassVar[tuple[str, ...]] = ("u0",)
    output_vars: ClassVar[tuple[str, ...]] = ("u",)

    def __init__(
        self,
        resolution: int = 1024,
        viscosity: float = 0.1,
        final_time: float = 1.0,
        n_snapshots: int = 10,
        dt: float | None = None,
        solver_resolution: int | None = None,
        alpha: float = 2.0,
        tau: float = 5.0,
        sigma: float = 25.0,
        n_terms: int = 129,
        viscosity_range: Sequence[float] | None = None,
    ) -> None:
        p = self.name
        self.viscosity_range = None
        if viscosity_range is not None:
            bounds = list(viscosity_range) if isinstance(viscosity_range, Sequence) else []
            if len(bounds) != 2:
                raise ValueError(f"{p}: viscosity_range takes [low, high], got "
                                 f"{viscosity_range!r}")
            low, high = positive_numbers(p, viscosity_range_low=bounds[0],
                                         viscosity_range_high=bounds[1]).values()
            if not low < high:
                raise ValueError(f"{p}: viscosity_range needs low < high, got {bounds}")
            self.viscosity_range = ParameterRange(low, high, "log")
            viscosity = low
        self.viscosity = positive_numbers(p, viscosity=viscosity)["viscosity"]
        numbers = positive_numbers(
            p, final_time=final_time, dt=min(1e-3, self.viscosity / 10) if dt is None else dt
        )
        self.final_time, self.dt = numbers["final_time"], numbers["dt"]
        self.n_snapshots = positive_int(n_snapshots, "n_snapshots", p)
        self.alpha, self.tau = real_number(alpha, "alpha", p), real_number(tau, "tau", p)
        self.sigma = real_number(sigma, "sigma", p)
        self.n_terms = positive_int(n_terms, "n_terms", p, minimum=3)
        if solver_resolution is None:
            res = positive_int(resolution, "resolution", p, minimum=8)
            solver_resolution = default_solver_resolution(res, self.viscosity)
        self.resolution, self.solver_resolution = check_grid(
            p, resolution, solver_resolution, (self.n_terms - 1) // 2, "the initial condition"
        )
        self.times, self.steps_per_snapshot, self.dt_used = time_grid(
            self.final_time, self.n_snapshots, self.dt
        )

    def variables(self) -> dict[str, Variable]:
        out = {
            "u0": Variable(("x",), "1", "initial condition"),
            "u": Variable(("time", "x"), "1", "solution at the stored times"),
        }
        if self.viscosity_range is not None:
            out["viscosity"] = Variable((), "1", "viscosity nu of this sample")
        return out

    def parameter_space(self) -> dict[str, ParameterRange]:
        return {} if self.viscosity_range is None else {"viscosity": self.viscosity_range}

    def coords(self) -> dict[str, np.ndarray]:
        return {"time": self.times.copy(), "x": grid_points(self.resolution, "periodic")}

    def boundary_conditions(self) -> dict[str, dict[str, Any]]:
        return box_boundaries("periodic", ("u0", "u"), dims=("x",))

    def attrs(self) -> dict[str, Any]:
        per_sample = self.viscosity_range is not None
        return {
            **({"viscosity_range": [self.viscosity_range.low, self.viscosity_range.high]}
               if per_sample else {"viscosity": self.viscosity}),
            "resolution": self.resolution,
            "solver_resolution": self.solver_resolution,
            "final_time": self.final_time,
            "n_snapshots": self.n_snapshots,
            "dt": self.dt_used,
            "alpha": self.alpha,
            "tau": self.tau,
            "sigma": self.sigma,
            "n_terms": self.n_terms,
            "solver": "Fourier pseudo-spectral, 2/3 de-aliasing, ETDRK4 (Cox-Matthews)",
        }

    def draw_initial(self, rng: np.random.Generator) -> np.ndarray:
        """Draw a zero-mean GRF initial condition on the solver grid."""
        u0 = gaussian_random_field(
            self.solver_resolution, rng, self.alpha, self.tau, self.sigma, "periodic", self.n_terms
        )
        # The grid mean is the exact mean: the field is a trigonometric polynomial the grid
        # resolves. Zero mean as in the FNO data (a mean is only a Galilean shift).
        return u0 - u0.mean()

    def _etdrk4_coefficients(self, n: int, h: float, nu: float) -> dict[str, np.ndarray]:
        """Diagonal ETDRK4 weights for ``L = -nu (2 pi k)^2`` and step ``h`` (all real)."""
        (k,) = wavenumbers(n)
        lh = -nu * (2 * np.pi * k) ** 2 * h
        p1h, _, _ = phi_functions(lh / 2)
        p1, p2, p3 = phi_functions(lh)
        return {
            "e": np.exp(lh),
            "e2": np.exp(lh / 2),
            "q": (h / 2 * p1h).real,
            "f1": (h * (p1 - 3 * p2 + 4 * p3)).real,
            "f2": (h * (p2 - 2 * p3)).real,
            "f3": (h * (4 * p3 - p2)).real,
            # -(u^2 / 2)_x in Fourier space, truncated to the 2/3 band.
            "flux": -1j * np.pi * k * dealias_mask(n),
        }

    def solve(
        self, u0: np.ndarray, n_steps: int | None = None, dt: float | None = None,
        check: bool = True, viscosity: float | None = None,
    ) -> np.ndarray:
        """Integrate from ``u0`` (on an ``n``-point periodic grid) and return the snapshots.

        By default the snapshots are at :attr:`times` with this problem's step; tests pass
        ``n_steps`` and ``dt`` instead to get the single state after ``n_steps`` steps.
        ``check=False`` skips the resolution and stability checks: the solver baselines of
        :mod:`pdeml.baselines` price deliberately under-resolved settings by their error.
        ``viscosity`` replaces the problem's ``nu`` (a sample of ``viscosity_range``).

        Returns
        -------
        numpy.ndarray
            ``(n_snapshots, n)`` on the grid of ``u0`` (``(1, n)`` with ``n_steps``).
        """
        u0 = np.asarray(u0, dtype=float)
        n = u0.shape[-1]
        h = self.dt_used if dt is None else float(dt)
        if n_steps is None:
            chunks, n_steps = self.n_snapshots, self.steps_per_snapshot
        else:
            chunks = 1
        c = self._etdrk4_coefficients(n, h, self.viscosity if viscosity is None else viscosity)
        mask = dealias_mask(n)
        uh = scipy.fft.rfft(u0) * mask

        def flux(vh: np.ndarray) -> np.ndarray:
            return c["flux"] * scipy.fft.rfft(scipy.fft.irfft(vh, n) ** 2)

        out = np.empty((chunks, n))
        umax0 = np.abs(u0).max()
        for i in range(chunks):
            for _ in range(n_steps):
                n_u = flux(uh)
                a = c["e2"] * uh + c["q"] * n_u
                n_a = flux(a)
                b = c["e2"] * uh + c["q"] * n_a
                n_b = flux(b)
                cc = c["e2"] * a + c["q"] * (2 * n_b - n_u)
                uh = c["e"] * uh + c["f1"] * n_u + 2 * c["f2"] * (n_a + n_b) + c["f3"] * flux(cc)
            out[i] = scipy.fft.irfft(uh, n)
            if check:
                self._check(uh, out[i], umax0, h, h * n_steps * (i + 1))
        return out

    def _check(self, uh: np.ndarray, u: np.ndarray, umax0: float, h: float, t: float) -> None:
        """Raise if ``max |u|`` grew (unstable step) or the spectrum is cut (too coarse)."""
        umax = np.abs(u).max()
        if not np.isfinite(umax) or umax > GROWTH_LIMIT * umax0 + 1e-12:
            raise ValueError(
                f"burgers time stepping unstable at t={t:.3g} (max|u| {umax0:.3g} -> {umax:.3g});"
                f" reduce dt (now {h:.3g})"
            )
        tail = spectral_tail(uh, len(u), 1)
        if tail > TAIL_TOLERANCE:
            raise ValueError(
                f"burgers solution under-resolved at t={t:.3g}: spectrum at the 2/3 cutoff is "
                f"{tail:.1e} of its peak; raise solver_resolution ({len(u)})"
            )

    def _draw(self, rng: np.random.Generator,
              params: dict[str, float] | None) -> tuple[float | None, np.ndarray]:
        """``nu`` (``None`` without ``viscosity_range``) and the initial condition on the
        solver grid, in the order :meth:`sample` draws them."""
        nu = None
        if self.viscosity_range is not None:
            nu = self.viscosity_range.draw(rng)  # drawn even when given: the IC stays put
            if params is not None:
                nu = self.viscosity_range.check("viscosity", params["viscosity"])
        elif params is not None:
            raise ValueError(f"{self.name}: no per-sample parameters to set (got "
                             f"{', '.join(sorted(params))})")
        return nu, self.draw_initial(rng)

    def stored_inputs(self, rng: np.random.Generator,
                      params: dict[str, float] | None) -> dict[str, np.ndarray]:
        nu, u0 = self._draw(rng, params)
        out = {"u0": restrict(u0, self.resolution, 1)}
        if nu is not None:
            out["viscosity"] = np.float64(nu)
        return out

    def sample(self, rng: np.random.Generator,
               params: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """One sample; with ``viscosity_range``, ``nu`` is drawn first (or taken from
        ``params``, see :meth:`~pdeml.solvers.problems.base.Problem.sample_with`) and the
        initial condition after it, from the same generator."""
        nu, u0 = self._draw(rng, params)
        u = self.solve(u0, viscosity=nu)
        out = {"u0": restrict(u0, self.resolution, 1), "u": restrict(u, self.resolution, 1)}
        if nu is not None:
            out["viscosity"] = np.float64(nu)
        return out
