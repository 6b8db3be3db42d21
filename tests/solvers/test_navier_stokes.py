import warnings

import h5py
import numpy as np
import pytest

from pdeml.cli import main
from pdeml.solvers.problems import NavierStokes2D, make_problem


def grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(n) / n
    return np.meshgrid(x, x)  # (X, Y), arrays indexed (y, x)


def spectral_derivative(f: np.ndarray, axis: int) -> np.ndarray:
    """d/dx (axis=1) or d/dy (axis=0) with numpy's FFT, independent of the solver's code."""
    n = f.shape[axis]
    k = np.fft.fftfreq(n, 1.0 / n)
    shape = [1, 1]
    shape[axis] = n
    return np.fft.ifft2(2j * np.pi * k.reshape(shape) * np.fft.fft2(f)).real


def taylor_green(n: int) -> np.ndarray:
    # psi = sin(2 pi x) sin(2 pi y) / (2 pi): w = -Lap psi is proportional to psi, so the
    # advection J(psi, w) vanishes and w decays as exp(-8 pi^2 nu t); max |u| = 1.
    X, Y = grid(n)
    return 4 * np.pi * np.cos(2 * np.pi * X) * np.cos(2 * np.pi * Y)


def test_taylor_green_error_is_exactly_the_crank_nicolson_error():
    nu, t = 0.01, 1.0
    prob = NavierStokes2D(resolution=16, viscosity=nu, forcing="none", n_terms=3)
    w0 = taylor_green(16)
    errors = []
    for m in (64, 128, 256):
        w = prob.solve(w0, n_steps=m, dt=t / m)[0]
        z = -8 * np.pi**2 * nu * t / m
        cn = ((1 + z / 2) / (1 - z / 2)) ** m  # the scheme's exact amplification here
        assert np.abs(w - cn * w0).max() < 1e-13 * np.abs(w0).max()
        errors.append(np.abs(w - np.exp(-8 * np.pi**2 * nu * t) * w0).max())
    slope = np.polyfit(np.log([t / 64, t / 128, t / 256]), np.log(errors), 1)[0]
    assert abs(slope - NavierStokes2D.order) < 0.05, (slope, errors)


# Time convergence on one fixed grid: the 16-point grid need not resolve the flow in space.
@pytest.mark.filterwarnings("ignore:navier_stokes solution under-resolved")
def test_nonlinear_flow_converges_at_declared_order():
    # Two interacting modes (non-zero advection) with the FNO forcing; reference at tiny dt.
    X, Y = grid(16)
    w0 = taylor_green(16) + 4 * np.sin(2 * np.pi * (X + 2 * Y))
    prob = NavierStokes2D(resolution=16, viscosity=0.01, n_terms=3)
    t = 0.5
    ref = prob.solve(w0, n_steps=1280, dt=t / 1280)[0]
    steps = np.array([40, 80, 160])
    errors = [np.abs(prob.solve(w0, n_steps=m, dt=t / m)[0] - ref).max() for m in steps]
    slope = np.polyfit(np.log(t / steps), np.log(errors), 1)[0]
    assert abs(slope - NavierStokes2D.order) < 0.15, (slope, errors)


@pytest.mark.parametrize(
    "kwargs",
    [{"forcing": "fno"}, {"forcing": "kolmogorov", "forcing_wavenumber": 2, "drag": 0.1}],
)
def test_laminar_steady_state_is_kept_to_round_off(kwargs):
    # Both forcings depend on one direction only, so w = f / (nu |k|^2 + drag) is an exact
    # steady solution with zero advection; Crank-Nicolson has the same fixed point.
    prob = NavierStokes2D(resolution=32, viscosity=0.01, **kwargs)
    f = prob.forcing_field(32)
    k2 = 4 * np.pi**2 * (2 if kwargs["forcing"] == "fno" else 4)
    w_star = f / (prob.viscosity * k2 + prob.drag)
    w = prob.solve(w_star, n_steps=50, dt=0.01)[0]
    assert np.abs(w - w_star).max() < 1e-12 * np.abs(w_star).max()


def test_kolmogorov_forcing_is_curl_of_body_force():
    prob = NavierStokes2D(resolution=32, forcing="kolmogorov", forcing_wavenumber=3,
                          forcing_amplitude=0.7)
    _, Y = grid(32)
    body = 0.7 * np.sin(2 * np.pi * 3 * Y)  # x-component of the force; curl = -d/dy of it
    np.testing.assert_allclose(prob.forcing_field(32), -spectral_derivative(body, 0), atol=1e-12)


def test_velocity_is_divergence_free_and_its_curl_is_the_vorticity():
    prob = NavierStokes2D(resolution=32)
    w = prob.draw_initial(np.random.default_rng(4))
    u, v = prob.velocity(w)
    div = spectral_derivative(u, 1) + spectral_derivative(v, 0)
    curl = spectral_derivative(v, 1) - spectral_derivative(u, 0)
    assert np.abs(div).max() < 1e-13 * 32 * np.abs(u).max()
    np.testing.assert_allclose(curl, w, atol=1e-12 * np.abs(w).max())


@pytest.mark.parametrize("drag", [0.0, 0.5])
def test_unforced_energy_and_enstrophy_decay_by_their_budgets(drag):
    nu, n = 0.01, 32
    prob = NavierStokes2D(resolution=n, viscosity=nu, forcing="none", drag=drag,
                          final_time=0.4, n_snapshots=20, dt=0.005, n_terms=15)
    w0 = 5 * prob.draw_initial(np.random.default_rng(1))
    w = np.concatenate([w0[None], prob.solve(w0)])
    energy = np.array([0.5 * np.mean(sum(c**2 for c in prob.velocity(s))) for s in w])
    enstrophy = 0.5 * np.mean(w**2, axis=(1, 2))
    assert np.all(np.diff(energy) < 0) and np.all(np.diff(enstrophy) < 0)
    # dE/dt = -2 nu Z - 2 drag E (advection conserves E under the 2/3 rule); Simpson in time.
    rate = 2 * nu * enstrophy + 2 * drag * energy
    h = 0.4 / 20
    integral = h / 3 * (rate[0] + rate[-1] + 4 * rate[1:-1:2].sum() + 2 * rate[2:-1:2].sum())
    assert energy[0] - energy[-1] == pytest.approx(integral, rel=1e-4)


def test_same_seed_gives_same_field_at_two_resolutions():
    def run(solver_resolution: int) -> dict[str, np.ndarray]:
        prob = NavierStokes2D(resolution=32, solver_resolution=solver_resolution, viscosity=0.01,
                              final_time=0.2, n_snapshots=2, dt=0.005)
        return prob.sample(np.random.default_rng(9))

    with pytest.warns(RuntimeWarning, match="under-resolved"):
        a = run(32)  # the GRF's top modes sit at the 2/3 cutoff of a 32-point grid
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b, c = run(64), run(128)
    assert a["w0"].shape == (32, 32) and a["w"].shape == (2, 32, 32)
    scale = np.abs(a["w"]).max()
    np.testing.assert_allclose(a["w0"], b["w0"], atol=1e-13)
    np.testing.assert_allclose(b["w0"], c["w0"], atol=1e-13)
    # 32 points truncate the cascade at |k| < 32/3; 64 already resolves it to round-off.
    np.testing.assert_allclose(a["w"], b["w"], atol=1e-4 * scale)
    np.testing.assert_allclose(b["w"], c["w"], atol=1e-12 * scale)


def test_cfl_violation_raises():
    prob = NavierStokes2D(resolution=16, forcing="none", n_terms=3, dt=0.1, final_time=0.1,
                          n_snapshots=1)
    with pytest.raises(ValueError, match="CFL") as err:
        prob.solve(taylor_green(16))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"forcing": "banana"}, "unknown navier_stokes forcing"),
        ({"viscosity": 0}, "viscosity must be positive"),
        ({"viscosity": -1e-3}, "viscosity must be positive"),
        ({"viscosity": "1e-3x"}, "viscosity must be a number"),
        ({"resolution": 16}, "grid too small"),
        ({"resolution": 32, "solver_resolution": 48}, "multiple"),
        ({"drag": -0.1}, "drag"),
        ({"forcing": "kolmogorov", "forcing_wavenumber": 30}, "grid too small"),
        ({"nonsense": 1}, "bad options"),
    ],
)
def test_bad_options_raise_one_line_errors(kwargs, msg):
    with pytest.raises(ValueError, match=msg) as err:
        make_problem("navier_stokes", **kwargs)
    assert "\n" not in str(err.value)


def test_cli_generates_navier_stokes_files(tmp_path):
    sets = ["viscosity=1e-3", "resolution=32", "solver_resolution=64", "final_time=0.02",
            "n_snapshots=2", "dt=0.01"]
    argv = ["generate", "navier_stokes", "--n-train", "2", "--n-test", "1", "--no-progress",
            "--out", str(tmp_path)]
    assert main(argv + [a for s in sets for a in ("--set", s)]) == 0
    with h5py.File(tmp_path / "test.h5", "r") as f:
        assert f["w0"].shape == (1, 32, 32) and f["w"].shape == (1, 2, 32, 32)
        assert list(f["time"][:]) == pytest.approx([0.01, 0.02])
        assert '"viscosity": 0.001' in f.attrs["problem_settings"]
