"""2-D incompressible Navier-Stokes in vorticity form on the periodic unit torus.

``w_t + u . grad(w) = nu Laplacian(w) - drag w + f``, with the velocity ``u = (psi_y, -psi_x)``
from the streamfunction ``-Laplacian(psi) = w``, so that ``w = v_x - u_y`` and ``div u = 0``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import numpy as np
import scipy.fft

from pdeml.solvers.fields import gaussian_random_field, grid_points
from pdeml.solvers.problems.base import Problem, Variable, box_boundaries
from pdeml.solvers.spectral import (
    check_grid,
    dealias_mask,
    positive_int,
    positive_numbers,
    real_number,
    restrict,
    spectral_tail,
    time_grid,
    wavenumbers,
)

FORCINGS = ("fno", "kolmogorov", "none")
INITIALS = ("grf", "mcwilliams")
DEFAULT_AMPLITUDE = {"fno": 0.1, "kolmogorov": 1.0, "none": 0.0}
AXES = (-2, -1)
# Warn when the vorticity spectrum at the top of the kept band exceeds this fraction of its peak
# (see spectral_tail). Only a warning: at nu <= 1e-4 the FNO data are themselves truncated
# (implicit LES) at 256^2, and 64^2 data of that kind are still a well-defined dataset.
TAIL_TOLERANCE = 1e-4


def forcing_field(kind: str, amplitude: float | None, wavenumber: int, n: int) -> np.ndarray:
    """The vorticity forcing of :class:`NavierStokes2D` on the ``n x n`` grid, ``(y, x)``.

    ``kind`` is one of :data:`FORCINGS`; ``amplitude=None`` takes the forcing's default.
    """
    if kind not in FORCINGS:
        raise ValueError(f"unknown navier_stokes forcing '{kind}'; use one of "
                         f"{', '.join(FORCINGS)}")
    a = DEFAULT_AMPLITUDE[kind] if amplitude is None else float(amplitude)
    x = grid_points(n, "periodic")
    X, Y = np.meshgrid(x, x)
    if kind == "fno":
        return a * (np.sin(2 * np.pi * (X + Y)) + np.cos(2 * np.pi * (X + Y)))
    if kind == "kolmogorov":
        return -2 * np.pi * wavenumber * a * np.cos(2 * np.pi * wavenumber * Y)
    return np.zeros((n, n))


class NavierStokes2D(Problem):
    """Vorticity of 2-D Navier-Stokes on the unit torus, the FNO paper's benchmark: ``w0 -> w(t)``.

    Discretization: Fourier pseudo-spectral on a ``solver_resolution``-squared grid, the
    advection ``u . grad(w)`` evaluated on the grid and truncated by the 2/3 rule (which also
    makes the truncated inviscid dynamics conserve energy and enstrophy). Time stepping: the
    FNO paper's Crank-Nicolson / Heun scheme, Crank-Nicolson for the diffusion and drag and
    Heun's explicit trapezoid (predictor-corrector) for advection: second order in time
    (``order = 2``). The step is fixed; every step checks the advective CFL number
    ``dt * (max|u| + max|v|) * solver_resolution`` against ``max_cfl`` and raises if exceeded.
    Each snapshot checks that the spectrum has decayed at the de-aliasing cutoff and warns
    (``RuntimeWarning``) if not: on 64^2, ``nu = 1e-3`` is resolved (tail ~1e-7 to t = 50),
    ``nu = 1e-4`` and ``1e-5`` are not after t ~ 10 (FNO solved those on 256^2).

    Parameters
    ----------
    resolution
        Stored grid points per axis (``x_j = j / resolution``); arrays are ``(y, x)``.
    viscosity
        ``nu`` (FNO: 1e-3, 1e-4, 1e-5).
    forcing
        ``"fno"``: ``f = A (sin 2 pi (x + y) + cos 2 pi (x + y))``, ``A = 0.1`` by default;
        ``"kolmogorov"``: the curl of the body force ``A sin(2 pi k y) e_x``, i.e.
        ``f = -2 pi k A cos(2 pi k y)``, ``A = 1`` by default; ``"none"``: decaying flow.
    final_time, n_snapshots
        Snapshots at ``t_k = final_time * k / n_snapshots``, ``k = 1..n_snapshots`` (FNO stores
        every time unit: ``final_time = n_snapshots``); ``w0`` holds ``t = 0``.
    dt
        Largest time step; the step used divides the snapshot interval (``attrs()["dt"]``).
        The default 1e-3 is 10x the FNO data's step: in the default setting it changes the
        stored snapshots by under 3e-8 (relative, max norm) from ``dt = 1e-4``, below float32
        precision, for a tenth of the cost.
    solver_resolution
        Solver grid per axis, a multiple of ``resolution`` (default: ``resolution``).
    forcing_amplitude, forcing_wavenumber
        ``A`` of the forcing (default per forcing, see above) and the Kolmogorov ``k``.
    drag
        Linear (Rayleigh) drag coefficient, ``>= 0``.
    max_cfl
        The largest advective CFL number allowed.
    alpha, tau, sigma, n_terms
        Initial vorticity: a zero-mean periodic GRF with covariance
        ``sigma^2 (-Laplacian + tau^2)^(-alpha)`` (FNO: ``alpha = 2.5``, ``tau = 7``,
        ``sigma = 7^1.5``, the default for ``None``) in ``n_terms`` real Fourier modes per axis.
        (The FNO code's generator draws complex coefficients, which gives ``sqrt(2)`` times this
        amplitude; ``sigma = sqrt(2) * 7**1.5`` matches its data.) ``n_terms = 0`` keeps every
        mode the solver grid resolves below its 2/3 cutoff (a broadband field).
    start_time
        Store the window after a transient: snapshots at ``t_k = start_time + (final_time -
        start_time) k / n_snapshots``; ``w0`` still holds ``t = 0`` (Spectral-Refiner: FNO
        data on ``[30, 50]``, McWilliams on ``[4.5, 10]`` in its time units).
    fine_resolution
        Also store ``w0_fine`` and ``w_fine`` on this grid (dimensions ``y_fine, x_fine``), from
        the same solve: one job gives the training grid and the grid a refiner works on.
    initial
        ``"grf"`` (above) or ``"mcwilliams"``: decaying-turbulence initial vorticity with the
        streamfunction spectrum ``|psi_k|^2 ~ |k|^-1 (1 + (|k| / peak_wavenumber)^4)^-1``
        (McWilliams 1984, as torch-cfd draws it), random phases, scaled to an rms velocity of
        ``velocity_rms``.
    peak_wavenumber, velocity_rms
        McWilliams settings (integer wavenumber of the energy peak, rms speed). torch-cfd's
        setting (domain ``2 pi``, ``nu = 1e-3``, unit energy) is on this unit torus
        ``velocity_rms = 1 / (2 pi)``-ish with ``nu = 1e-3 / (4 pi^2)``, times unchanged.
    """

    name: ClassVar[str] = "navier_stokes"
    order: ClassVar[int] = 2
    input_vars: ClassVar[tuple[str, ...]] = ("w0",)
    output_vars: ClassVar[tuple[str, ...]] = ("w",)

    def __init__(
        self,
        resolution: int = 64,
        viscosity: float = 1e-3,
        forcing: str = "fno",
        final_time: float = 10.0,
        n_snapshots: int = 10,
        dt: float = 1e-3,
        solver_resolution: int | None = None,
        forcing_amplitude: float | None = None,
        forcing_wavenumber: int = 4,
        drag: float = 0.0,
        max_cfl: float = 0.5,
        alpha: float = 2.5,
        tau: float = 7.0,
        sigma: float | None = None,
        n_terms: int = 21,
        start_time: float = 0.0,
        fine_resolution: int | None = None,
        initial: str = "grf",
        peak_wavenumber: float = 6.0,
        velocity_rms: float = 1.0,
    ) -> None:
        p = self.name
        if initial not in INITIALS:
            raise ValueError(f"unknown {p} initial '{initial}'; use one of {', '.join(INITIALS)}")
        self.initial = initial
        self.peak_wavenumber = real_number(peak_wavenumber, "peak_wavenumber", p)
        self.velocity_rms = real_number(velocity_rms, "velocity_rms", p)
        if not (self.peak_wavenumber > 0 and self.velocity_rms > 0):
            raise ValueError(f"{p} peak_wavenumber and velocity_rms must be positive")
        if forcing not in FORCINGS:
            raise ValueError(f"unknown {p} forcing '{forcing}'; use one of {', '.join(FORCINGS)}")
        self.forcing = forcing
        numbers = positive_numbers(p, viscosity=viscosity, final_time=final_time, dt=dt,
                                   max_cfl=max_cfl)
        self.viscosity, self.final_time = numbers["viscosity"], numbers["final_time"]
        self.dt, self.max_cfl = numbers["dt"], numbers["max_cfl"]
        self.drag = real_number(drag, "drag", p)
        if not self.drag >= 0:
            raise ValueError(f"{p} drag must be non-negative, got {self.drag}")
        amp = DEFAULT_AMPLITUDE[forcing] if forcing_amplitude is None else forcing_amplitude
        self.forcing_amplitude = real_number(amp, "forcing_amplitude", p)
        self.forcing_wavenumber = positive_int(forcing_wavenumber, "forcing_wavenumber", p)
        self.n_snapshots = positive_int(n_snapshots, "n_snapshots", p)
        self.alpha, self.tau = real_number(alpha, "alpha", p), real_number(tau, "tau", p)
        # The fields module's default amplitude in 2-D, tau^(alpha - 1): FNO's 7^1.5.
        self.sigma = real_number(self.tau ** (self.alpha - 1) if sigma is None else sigma,
                                 "sigma", p)
        self.n_terms = 0 if n_terms == 0 else positive_int(n_terms, "n_terms", p, minimum=3)
        top, what = max(1, (self.n_terms - 1) // 2), "the initial vorticity"
        if forcing == "kolmogorov" and self.forcing_wavenumber > top:
            top, what = self.forcing_wavenumber, "the forcing"
        self.resolution, self.solver_resolution = check_grid(
            p, resolution, solver_resolution, top, what
        )
        self.start_time = real_number(start_time, "start_time", p)
        if not 0 <= self.start_time < self.final_time:
            raise ValueError(f"{p} start_time must be in [0, final_time), got {start_time}")
        self.fine_resolution = None
        if fine_resolution is not None:
            fine = positive_int(fine_resolution, "fine_resolution", p, minimum=2)
            if self.solver_resolution % fine or fine <= self.resolution:
                raise ValueError(f"{p} fine_resolution must exceed resolution and divide "
                                 f"solver_resolution ({self.solver_resolution}), got {fine}")
            self.fine_resolution = fine
        times, self.steps_per_snapshot, self.dt_used = time_grid(
            self.final_time - self.start_time, self.n_snapshots, self.dt
        )
        self.times = self.start_time + times
        # The transient is stepped with its own step (<= dt) that lands on start_time exactly.
        self.warmup_steps = math.ceil(self.start_time / self.dt - 1e-9)

    def variables(self) -> dict[str, Variable]:
        out = {
            "w0": Variable(("y", "x"), "1", "initial vorticity"),
            "w": Variable(("time", "y", "x"), "1", "vorticity at the stored times"),
        }
        if self.fine_resolution:
            out["w0_fine"] = Variable(("y_fine", "x_fine"), "1", "initial vorticity, fine grid")
            out["w_fine"] = Variable(("time", "y_fine", "x_fine"), "1",
                                     "vorticity at the stored times, fine grid")
        return out

    def coords(self) -> dict[str, np.ndarray]:
        x = grid_points(self.resolution, "periodic")
        out = {"time": self.times.copy(), "y": x.copy(), "x": x}
        if self.fine_resolution:
            xf = grid_points(self.fine_resolution, "periodic")
            out.update({"y_fine": xf.copy(), "x_fine": xf})
        return out

    def boundary_conditions(self) -> dict[str, dict[str, Any]]:
        return box_boundaries("periodic", ("w0", "w"))

    def attrs(self) -> dict[str, Any]:
        keys = ("viscosity", "forcing", "forcing_amplitude", "forcing_wavenumber", "drag",
                "resolution", "solver_resolution", "final_time", "n_snapshots", "max_cfl",
                "alpha", "tau", "sigma", "n_terms", "start_time", "initial", "peak_wavenumber",
                "velocity_rms")
        return {
            **{k: getattr(self, k) for k in keys},
            **({"fine_resolution": self.fine_resolution} if self.fine_resolution else {}),
            "dt": self.dt_used,
            "solver": "Fourier pseudo-spectral, 2/3 de-aliasing, Crank-Nicolson/Heun (order 2)",
        }

    def forcing_field(self, n: int) -> np.ndarray:
        """The vorticity forcing ``f`` on the ``n x n`` grid, ``(y, x)``."""
        return forcing_field(self.forcing, self.forcing_amplitude, self.forcing_wavenumber, n)

    def draw_initial(self, rng: np.random.Generator) -> np.ndarray:
        """Draw the initial vorticity on the solver grid (zero mean, as on any torus)."""
        n = self.solver_resolution
        if self.initial == "mcwilliams":
            return self._mcwilliams(rng, n)
        # 0 terms: every mode below the 2/3 cutoff, odd so the band is symmetric
        terms = self.n_terms or 2 * ((n - 1) // 3) + 1
        w0 = gaussian_random_field((n, n), rng, self.alpha, self.tau, self.sigma, "periodic",
                                   terms)
        return w0 - w0.mean()  # exact: the grid resolves the field's Fourier modes

    def _mcwilliams(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """McWilliams (1984) vorticity: filtered white noise, rms velocity ``velocity_rms``."""
        ky, kx = wavenumbers(n, 2)
        k = np.hypot(kx, ky)
        safe = np.where(k > 0, k, 1.0)
        density = np.where(k > 0, 1.0 / (safe * (1.0 + (safe / self.peak_wavenumber) ** 4)), 0.0)
        noise = scipy.fft.rfft2(rng.standard_normal((n, n)))
        # |psi_k|^2 follows the density (torch-cfd multiplies the noise by the density itself)
        psi_hat = noise * np.sqrt(density) * dealias_mask(n, 2)
        w_hat = 4 * np.pi**2 * k**2 * psi_hat
        u, v = self.velocity(scipy.fft.irfft2(w_hat, s=(n, n)))
        scale = self.velocity_rms / np.sqrt(np.mean(u**2 + v**2))
        return scale * scipy.fft.irfft2(w_hat, s=(n, n))

    @staticmethod
    def velocity(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Velocity ``(u, v) = (psi_y, -psi_x)`` of a vorticity field ``w`` on an ``n x n`` grid."""
        n = w.shape[-1]
        ky, kx = wavenumbers(n, 2)
        k2 = 4 * np.pi**2 * (kx**2 + ky**2)
        k2[0, 0] = 1.0
        psi = scipy.fft.rfft2(w, axes=AXES) / k2
        psi[..., 0, 0] = 0.0
        u = scipy.fft.irfft2(2j * np.pi * ky * psi, s=(n, n), axes=AXES)
        v = scipy.fft.irfft2(-2j * np.pi * kx * psi, s=(n, n), axes=AXES)
        return u, v

    def _operators(self, n: int, h: float) -> dict[str, np.ndarray]:
        """Spectral operators on the ``n x n`` grid for the step ``h``."""
        ky, kx = wavenumbers(n, 2)
        mask = dealias_mask(n, 2)
        k2 = 4 * np.pi**2 * (kx**2 + ky**2)
        inv_k2 = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
        dx, dy = 2j * np.pi * kx, 2j * np.pi * ky
        # (u, v, w_x, w_y) from w-hat in one batched product: u = psi_y, v = -psi_x.
        grads = np.stack(np.broadcast_arrays(dy * inv_k2, -dx * inv_k2, dx, dy)) * mask
        lin = -self.viscosity * k2 - self.drag
        denom = 1.0 - 0.5 * h * lin
        f_hat = scipy.fft.rfft2(self.forcing_field(n)) * mask
        return {"grads": grads, "mask": mask, "a": (1.0 + 0.5 * h * lin) / denom,
                "b": h / denom, "bf": h * f_hat / denom}

    def solve(
        self, w0: np.ndarray, n_steps: int | None = None, dt: float | None = None
    ) -> np.ndarray:
        """Integrate from the vorticity ``w0`` (``n x n``, ``(y, x)``) and return the snapshots.

        By default the snapshots are at :attr:`times` with this problem's step (the transient
        up to ``start_time`` first); tests pass ``n_steps`` and ``dt`` to get the single state
        after ``n_steps`` steps instead.

        Returns
        -------
        numpy.ndarray
            ``(n_snapshots, n, n)`` on the grid of ``w0`` (``(1, n, n)`` with ``n_steps``).
        """
        w0 = np.asarray(w0, dtype=float)
        n = w0.shape[-1]
        if w0.shape != (n, n):
            raise ValueError(f"{self.name} initial vorticity must be square, got {w0.shape}")
        h = self.dt_used if dt is None else float(dt)
        chunks, steps = (self.n_snapshots, self.steps_per_snapshot) if n_steps is None else (
            1, int(n_steps))
        wh = scipy.fft.rfft2(w0)
        if n_steps is None and self.warmup_steps:
            hw = self.start_time / self.warmup_steps
            ops = self._operators(n, hw)
            wh = wh * ops["mask"]
            for j in range(self.warmup_steps):
                wh = self._step(wh, ops, hw, n, hw * j)
        ops = self._operators(n, h)
        wh = wh * ops["mask"]
        t0 = self.start_time if n_steps is None else 0.0
        out = np.empty((chunks, n, n))
        warned = False
        for i in range(chunks):
            for j in range(steps):
                wh = self._step(wh, ops, h, n, t0 + h * (i * steps + j))
            out[i] = scipy.fft.irfft2(wh, s=(n, n))
            if not warned and spectral_tail(wh, n, 2) > TAIL_TOLERANCE:
                warned = True  # the message is fixed, so Python shows it once per setting
                warnings.warn(f"{self.name} solution under-resolved (vorticity spectrum not "
                              f"decayed at the 2/3 cutoff); raise solver_resolution (now {n})",
                              RuntimeWarning, stacklevel=2)
        return out

    def _advection(
        self, wh: np.ndarray, ops: dict[str, np.ndarray], n: int
    ) -> tuple[np.ndarray, float]:
        """``-(u . grad w)`` de-aliased in Fourier space, and ``max|u| + max|v|``."""
        u, v, wx, wy = scipy.fft.irfft2(ops["grads"] * wh, s=(n, n), axes=AXES)
        adv = scipy.fft.rfft2(u * wx + v * wy)
        return -(ops["mask"] * adv), np.abs(u).max() + np.abs(v).max()

    def _step(self, wh: np.ndarray, ops: dict[str, np.ndarray], h: float, n: int,
              t: float) -> np.ndarray:
        """One Crank-Nicolson / Heun step: explicit trapezoid for advection, CN for the rest."""
        n0, speed = self._advection(wh, ops, n)
        cfl = h * speed * n
        if not cfl <= self.max_cfl:  # also catches NaN from a blow-up
            raise ValueError(f"{self.name} CFL number {cfl:.3g} exceeds max_cfl {self.max_cfl} "
                             f"at t={t:.4g}; reduce dt (now {h:.3g})")
        base = ops["a"] * wh + ops["bf"]
        predicted = base + ops["b"] * n0
        n1, _ = self._advection(predicted, ops, n)
        return base + ops["b"] * (0.5 * (n0 + n1))

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        w0 = self.draw_initial(rng)
        w = self.solve(w0)
        out = {"w0": restrict(w0, self.resolution, 2), "w": restrict(w, self.resolution, 2)}
        if self.fine_resolution:
            out["w0_fine"] = restrict(w0, self.fine_resolution, 2)
            out["w_fine"] = restrict(w, self.fine_resolution, 2)
        return out
