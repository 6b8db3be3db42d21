import h5py
import numpy as np
import pytest
from scipy.linalg import expm

from pdeml.cli import main
from pdeml.solvers.problems import Burgers, make_problem
from pdeml.solvers.spectral import phi_functions

NU = 0.1
A0 = 2.0  # > sum |a_k|, so phi > 0 and the Cole-Hopf solution is smooth
MODES = [(1, 1.0, 0.3), (2, 0.5, 1.1), (3, 0.25, -0.4)]  # (k, a_k, theta_k)


def cole_hopf(x: np.ndarray, t: float) -> np.ndarray:
    """Exact Burgers solution u = -2 nu phi_x / phi, phi a heat-equation Fourier sum."""
    phi, phi_x = np.full_like(x, A0), np.zeros_like(x)
    for k, a, theta in MODES:
        decay = a * np.exp(-NU * (2 * np.pi * k) ** 2 * t)
        phi += decay * np.cos(2 * np.pi * k * x + theta)
        phi_x -= 2 * np.pi * k * decay * np.sin(2 * np.pi * k * x + theta)
    return -2 * NU * phi_x / phi


def cole_hopf_error(n: int, steps: int, t: float = 0.25) -> float:
    prob = Burgers(resolution=n, solver_resolution=n, viscosity=NU, n_terms=3)
    x = np.arange(n) / n
    u = prob.solve(cole_hopf(x, 0.0), n_steps=steps, dt=t / steps)[0]
    return float(np.abs(u - cole_hopf(x, t)).max())


def test_cole_hopf_time_error_converges_at_declared_order():
    steps = np.array([8, 16, 32, 64])
    errors = np.array([cole_hopf_error(64, m) for m in steps])
    slope = np.polyfit(np.log(0.25 / steps), np.log(errors), 1)[0]
    assert abs(slope - Burgers.order) < 0.3, (slope, errors)
    assert errors[-1] < 1e-7


def test_cole_hopf_space_error_is_round_off_once_resolved():
    # dt small enough that the fourth-order time error is below round-off too.
    coarse, fine = cole_hopf_error(32, 1000), cole_hopf_error(64, 1000)
    scale = np.abs(cole_hopf(np.arange(64) / 64, 0.0)).max()
    assert fine < 1e-12 * scale, fine
    assert coarse > 1e3 * fine  # spectral, not trivially exact: 32 points do not resolve it


def test_phi_functions_match_matrix_exponential():
    # phi_1..3(z) are the first row of exp of the augmented 4x4 matrix [[z, 1, 0, 0], ...].
    for z in [0.0, -1e-6, 0.3j - 0.5, -0.999, -1.0, -1.001, -7.5, -400.0]:
        m = np.diag([z, 0, 0, 0]).astype(complex) + np.diag([1.0, 1.0, 1.0], 1)
        want = expm(m)[0, 1:]
        got = [p.item() for p in phi_functions(np.array([z]))]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_sample_layout_mass_and_determinism():
    prob = Burgers(resolution=32, solver_resolution=256, final_time=0.2, n_snapshots=4)
    out = prob.sample(np.random.default_rng(0))
    assert out["u0"].shape == (32,) and out["u"].shape == (4, 32)
    np.testing.assert_allclose(prob.coords()["time"], [0.05, 0.1, 0.15, 0.2])
    # Mass is conserved on the solver grid (a subsampled grid aliases the fine modes).
    u0 = prob.draw_initial(np.random.default_rng(0))
    np.testing.assert_array_equal(u0[::8], out["u0"])
    assert abs(u0.mean()) < 1e-15 and np.abs(prob.solve(u0).mean(axis=1)).max() < 1e-15
    again = prob.sample(np.random.default_rng(0))
    assert all(np.array_equal(out[k], again[k]) for k in out)
    assert prob.attrs()["dt"] == pytest.approx(1e-3) and prob.attrs()["viscosity"] == NU


def test_same_seed_gives_same_continuous_solution_at_two_resolutions():
    coarse = Burgers(resolution=64, solver_resolution=256, final_time=0.2, n_snapshots=2)
    fine = Burgers(resolution=64, solver_resolution=512, final_time=0.2, n_snapshots=2)
    a, b = coarse.sample(np.random.default_rng(3)), fine.sample(np.random.default_rng(3))
    np.testing.assert_allclose(a["u0"], b["u0"], atol=1e-13)
    np.testing.assert_allclose(a["u"], b["u"], atol=1e-10)


def test_default_grid_and_step_follow_viscosity():
    assert Burgers(viscosity=0.1).solver_resolution == 1024
    low = Burgers(viscosity="1e-3")  # YAML 1.1 reads 1e-3 as text; accept it
    assert low.solver_resolution == 8192 and low.attrs()["dt"] == pytest.approx(1e-4)


def test_under_resolved_and_unstable_runs_raise():
    shock = Burgers(resolution=256, solver_resolution=256, viscosity=1e-3, final_time=0.5,
                    n_snapshots=1)
    with pytest.raises(ValueError, match="under-resolved"):
        shock.sample(np.random.default_rng(0))
    coarse_dt = Burgers(resolution=256, viscosity=1e-3, final_time=0.4, n_snapshots=1, dt=0.2)
    with pytest.raises(ValueError, match="unstable"):
        coarse_dt.sample(np.random.default_rng(0))


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"viscosity": 0.0}, "viscosity must be positive"),
        ({"viscosity": -0.1}, "viscosity must be positive"),
        ({"viscosity": "thick"}, "viscosity must be a number"),
        ({"resolution": 4}, "resolution"),
        ({"resolution": 96, "solver_resolution": 1024}, "multiple"),
        ({"solver_resolution": 128, "resolution": 64}, "grid too small"),
        ({"dt": 0}, "dt must be positive"),
        ({"n_snapshots": 0}, "n_snapshots"),
        ({"nonsense": 1}, "bad options"),
    ],
)
def test_bad_options_raise_one_line_errors(kwargs, msg):
    with pytest.raises(ValueError, match=msg) as err:
        make_problem("burgers", **kwargs)
    assert "\n" not in str(err.value)


def test_cli_generates_burgers_files(tmp_path):
    sets = ["viscosity=0.1", "resolution=64", "final_time=0.05", "n_snapshots=2"]
    argv = ["generate", "burgers", "--n-train", "2", "--n-test", "1", "--no-progress",
            "--out", str(tmp_path)]
    assert main(argv + [a for s in sets for a in ("--set", s)]) == 0
    with h5py.File(tmp_path / "train.h5", "r") as f:
        assert f["u0"].shape == (2, 64) and f["u"].shape == (2, 2, 64)
        np.testing.assert_allclose(f["time"][:], [0.025, 0.05])
        assert f.attrs["problem"] == "burgers"
        assert np.isfinite(f["u"][:]).all()
