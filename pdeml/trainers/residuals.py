"""PDE residuals for label-free (physics-informed) fine-tuning.

:class:`VorticityResidual` is the residual of the periodic 2-D Navier-Stokes vorticity equation
for a sequence of snapshots; :func:`residual_for_data` builds it from a pdeml ``navier_stokes``
file and checks that a model's time-as-channels outputs continue its input.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Sequence

import torch
from torch import nn

# The authors' marching step for the snapshot residual (torch-cfd's notebook, ``dt = 1e-6``).
SNAPSHOT_DELTA = 1e-6


class VorticityResidual(nn.Module):
    """Residual of ``w_t + u . grad w = nu Laplacian w - drag w + f`` on the unit torus.

    Given snapshots ``w_0, ..., w_T`` a time ``dt`` apart, the residual of step ``j`` is the
    trapezoidal (Crank-Nicolson) rule of the equation over ``[t_j, t_j+1]``::

        r_j = (w_j+1 - w_j) / dt - (F(w_j) + F(w_j+1)) / 2,
        F(w) = -u . grad w + nu Laplacian w - drag w + f,

    second order in ``dt``: for the true solution it is ``O(dt^2)``. Derivatives are spectral;
    the velocity comes from the streamfunction, ``-Laplacian psi = w``, ``u = (psi_y, -psi_x)``;
    the advection is formed from the 2/3-truncated vorticity and truncated again (the solver's
    de-aliasing). Layout ``(y, x)`` as in the data.

    Parameters
    ----------
    viscosity, dt, drag
        ``nu``, the snapshot spacing, the linear drag.
    forcing
        ``f`` on the ``n x n`` grid.
    """

    def __init__(self, viscosity: float, dt: float, forcing: torch.Tensor,
                 drag: float = 0.0) -> None:
        super().__init__()
        if not (viscosity > 0 and dt > 0 and drag >= 0):
            raise ValueError(f"residual needs viscosity > 0, dt > 0, drag >= 0; got "
                             f"{viscosity}, {dt}, {drag}")
        forcing = torch.as_tensor(forcing, dtype=torch.float64)
        if forcing.ndim != 2 or forcing.shape[0] != forcing.shape[1]:
            raise ValueError(f"forcing must be a square (n, n) field, got {tuple(forcing.shape)}")
        self.viscosity, self.dt, self.drag = float(viscosity), float(dt), float(drag)
        n = forcing.shape[-1]
        ky = torch.fft.fftfreq(n, 1.0 / n, dtype=torch.float64)[:, None]
        kx = torch.fft.rfftfreq(n, 1.0 / n, dtype=torch.float64)[None, :]
        k2 = 4 * math.pi**2 * (kx**2 + ky**2)
        mask = ((ky.abs() < n / 3) & (kx.abs() < n / 3)).to(torch.float64)
        inv_k2 = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, 1.0), 0.0)
        self.n = n
        self.register_buffer("ky", 2 * math.pi * ky, persistent=False)
        self.register_buffer("kx", 2 * math.pi * kx, persistent=False)
        self.register_buffer("k2", k2, persistent=False)
        self.register_buffer("inv_k2", inv_k2, persistent=False)
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("f_hat", torch.fft.rfft2(forcing), persistent=False)

    def rhs_hat(self, w_hat: torch.Tensor) -> torch.Tensor:
        """``F(w)`` in Fourier space (real-FFT layout) from ``w_hat``."""
        n, real = self.n, w_hat.real.dtype
        mask, kx, ky = (t.to(real) for t in (self.mask, self.kx, self.ky))
        wm = w_hat * mask
        psi = wm * self.inv_k2.to(real)
        # (u, v, w_x, w_y) in one batched inverse transform.
        grads = torch.fft.irfft2(torch.stack([1j * ky * psi, -1j * kx * psi, 1j * kx * wm,
                                              1j * ky * wm]), s=(n, n))
        adv = mask * torch.fft.rfft2(grads[0] * grads[2] + grads[1] * grads[3])
        lin = (self.viscosity * self.k2 + self.drag).to(real)
        return -adv - lin * w_hat + self.f_hat.to(w_hat.dtype)

    def forward(self, start: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Residuals ``(batch, T, n, n)`` of ``start`` ``(batch, n, n)`` then ``w`` ``(batch, T,
        n, n)``, computed in the dtype of ``w``."""
        if w.ndim != 4 or w.shape[-2:] != (self.n, self.n) or start.shape != (
                w.shape[0], self.n, self.n):
            raise ValueError(f"residual needs start (batch, {self.n}, {self.n}) and w (batch, T, "
                             f"{self.n}, {self.n}); got {tuple(start.shape)}, {tuple(w.shape)}")
        # float32 suffices: the true solution's residual (~1e-3 of w_t at dt = 0.1) is far above
        # the rounding of the time difference (~1e-7 |w| / dt).
        w_hat = torch.fft.rfft2(torch.cat([start[:, None].to(w.dtype), w], 1))
        f = self.rhs_hat(w_hat)
        r_hat = (w_hat[:, 1:] - w_hat[:, :-1]) / self.dt - 0.5 * (f[:, 1:] + f[:, :-1])
        return torch.fft.irfft2(r_hat, s=(self.n, self.n))

    def snapshot(self, w: torch.Tensor, delta: float = SNAPSHOT_DELTA) -> torch.Tensor:
        """The authors' residual of each snapshot on its own, ``(batch, T, n, n)``, in float64.

        As torch-cfd's ``OutConvFT._fine_tune`` computes it (``fno/finetune.py``, with the
        notebook's ``bdf_weight = (0.5, 0.5)`` and marching step ``dt = 1e-6``): each snapshot
        ``w`` takes one implicit-explicit Crank-Nicolson step of ``+delta`` and one of
        ``-delta`` (advection explicit, diffusion and drag Crank-Nicolson); the two new states
        and the two difference quotients ``(w_s - w) / s`` are averaged into ``wbar`` and
        ``wbar_t``; the residual is ``wbar_t + u(wbar) . grad wbar - nu Laplacian wbar +
        drag wbar - f``, the advection de-aliased as in :meth:`rhs_hat`.

        What it measures: the difference quotient of a Crank-Nicolson step *is* the
        equation's right-hand side, ``F(w) / (1 - a)`` for the step ``+delta`` and ``F(w) /
        (1 + a)`` for ``-delta``, with ``a = delta L / 2`` and ``L = -nu 4 pi^2 |k|^2 -
        drag`` per mode. So the residual is ``-a^2 F(w)`` to leading order, plus the
        advection's linearization applied to ``wbar - w = delta a F / (1 - a^2)`` (9-16% of
        it on broadband 128^2 fields, tested), and float64 rounding of the quotients: about
        ``1e-8`` absolute on that field, as large as the signal itself at the authors'
        ``delta = 1e-6`` (``||a^2 F|| = 1.4e-8``; it scales as ``delta^2`` from ``1e-3`` to
        ``1e-5``). No time spacing enters and consecutive snapshots are never compared: it is
        the equation's right-hand side weighted by ``(nu |k|^2 delta)^2``, which vanishes on a
        steady state, not on a solution trajectory; minimizing it damps the fine-scale part of
        each snapshot's ``w_t``. Float64 throughout: in float32 the signal is rounding.

        Parameters
        ----------
        w
            Snapshots ``(batch, T, n, n)``.
        delta
            The marching step (the authors' ``1e-6``).
        """
        if w.ndim != 4 or w.shape[-2:] != (self.n, self.n):
            raise ValueError(f"snapshot residual needs w (batch, T, {self.n}, {self.n}), got "
                             f"{tuple(w.shape)}")
        if not delta > 0:
            raise ValueError(f"snapshot residual needs delta > 0, got {delta}")
        w_hat = torch.fft.rfft2(w.to(torch.float64))
        lin = -(self.viscosity * self.k2 + self.drag)
        f_hat = self.f_hat
        adv = self.rhs_hat(w_hat) - (lin * w_hat + f_hat)  # -(u . grad w), de-aliased
        states, rates = [], []
        for step in (-delta, delta):
            a = 0.5 * step * lin
            new = (step * adv + step * f_hat + (1.0 + a) * w_hat) / (1.0 - a)
            states.append(new)
            rates.append((new - w_hat) / step)
        w_bar, w_t = 0.5 * (states[0] + states[1]), 0.5 * (rates[0] + rates[1])
        r_hat = w_t - self.rhs_hat(w_bar)
        return torch.fft.irfft2(r_hat, s=(self.n, self.n))


def residual_for_data(
    path: str, inputs: Sequence[str], outputs: Sequence[str]
) -> VorticityResidual:
    """The vorticity residual of a pdeml ``navier_stokes`` file for a time-as-channels task.

    The model's input must end with the time step just before its outputs (``w0`` or a ``w``
    step) and its outputs must be consecutive steps of ``w`` (``w[a:b]``), equally spaced.

    Parameters
    ----------
    path
        The training HDF5 file (its attributes give ``nu``, the forcing and the times).
    inputs, outputs
        The run's variable selectors, e.g. ``["w[0:10]"]`` and ``["w[10:20]"]``.
    """
    import h5py

    from pdeml.datasets.reader import parse_selector
    from pdeml.datasets.schema import open_h5, read_attrs
    from pdeml.solvers.problems.navier_stokes import NavierStokes2D

    attrs = read_attrs(path)
    if attrs.get("problem") != NavierStokes2D.name:
        raise ValueError(f"residual fine-tuning supports '{NavierStokes2D.name}' data; {path} "
                         f"holds '{attrs.get('problem')}'")
    with open_h5(path) as f:
        times = [0.0, *(float(t) for t in f["time"][:])] if isinstance(
            f.get("time"), h5py.Dataset) else None
    if times is None or len(outputs) != 1:
        raise ValueError("residual fine-tuning needs outputs ['w[a:b]'] on a file with times")
    (out_name, out_index), (in_name, in_index) = (parse_selector(outputs[0]),
                                                  parse_selector(inputs[-1]))
    if out_name != "w" or not isinstance(out_index, slice):
        raise ValueError(f"residual fine-tuning needs consecutive steps 'w[a:b]' as outputs, "
                         f"got '{outputs[0]}'")
    steps = [i + 1 for i in range(*out_index.indices(len(times) - 1))]  # +1: w0 is time 0
    if in_name == "w0" and in_index is None:
        start = 0
    elif in_name == "w" and in_index is not None:
        picked = range(*in_index.indices(len(times) - 1)) if isinstance(in_index, slice) else [
            in_index % (len(times) - 1)]
        start = picked[-1] + 1
    else:
        raise ValueError(f"residual fine-tuning needs the input to end with a vorticity step "
                         f"('w0' or 'w[...]'), got '{inputs[-1]}'")
    spacing = [times[b] - times[a] for a, b in zip([start, *steps[:-1]], steps, strict=True)]
    dt = spacing[0]
    if steps[0] != start + 1 or not all(math.isclose(s, dt, rel_tol=1e-6) for s in spacing):
        raise ValueError(f"residual fine-tuning needs outputs that continue the input's last "
                         f"step at equal spacing; got '{inputs[-1]}' -> '{outputs[0]}'")
    settings = json.loads(attrs["problem_settings"])
    allowed = inspect.signature(NavierStokes2D.__init__).parameters
    problem = NavierStokes2D(**{k: v for k, v in settings.items() if k in allowed and k != "dt"})
    forcing = torch.from_numpy(problem.forcing_field(problem.resolution))
    return VorticityResidual(problem.viscosity, dt, forcing, problem.drag)


def window_residual(path: str, field: str, n: int) -> VorticityResidual:
    """The vorticity residual on an ``n x n`` grid for space-time windows of ``field``.

    Windows (:class:`pdeml.datasets.spacetime.WindowDataset`) are consecutive stored snapshots,
    so the residual's step is the file's snapshot spacing, which must be uniform.

    Parameters
    ----------
    path
        A pdeml ``navier_stokes`` file (its attributes give ``nu``, the forcing and the times).
    field
        The windowed variable, ``w`` or ``w_fine``.
    n
        The grid the residual is evaluated on (the field's).
    """
    import h5py

    from pdeml.datasets.schema import open_h5, read_attrs
    from pdeml.solvers.problems.navier_stokes import NavierStokes2D, forcing_field

    attrs = read_attrs(path)
    if attrs.get("problem") != NavierStokes2D.name:
        raise ValueError(f"refinement supports '{NavierStokes2D.name}' data; {path} holds "
                         f"'{attrs.get('problem')}'")
    if field not in ("w", "w_fine"):
        raise ValueError(f"refinement needs the vorticity 'w' or 'w_fine', got '{field}'")
    with open_h5(path) as f:
        if not isinstance(f.get("time"), h5py.Dataset) or len(f["time"]) < 2:
            raise ValueError(f"{path} has no time coordinate with two or more snapshots")
        times = [float(t) for t in f["time"][:]]
    steps = [b - a for a, b in zip(times[:-1], times[1:], strict=True)]
    if not all(math.isclose(s, steps[0], rel_tol=1e-6) for s in steps):
        raise ValueError(f"{path}: snapshots are not equally spaced")
    settings = json.loads(attrs["problem_settings"])
    forcing = forcing_field(settings.get("forcing", "fno"), settings.get("forcing_amplitude"),
                            int(settings.get("forcing_wavenumber", 4)), n)
    return VorticityResidual(float(settings["viscosity"]), steps[0], torch.from_numpy(forcing),
                             float(settings.get("drag", 0.0)))
