"""Two-phase VOF solver: PLIC geometry, bounded conservative transport, hydrostatics, the
Martin & Moyce dam break, pressure-sequence methods, and the tube / dam problems."""

import inspect

import numpy as np
import pytest
import xarray as xr

from pdeml.datasets.writer import generate_split
from pdeml.solvers.dambreak import (
    MM_FRONT_SMALL_T,
    MM_FRONT_SMALL_Z,
    MM_FRONT_T,
    MM_FRONT_Z,
    MM_HEIGHT_ETA,
    MM_HEIGHT_TAU,
    collapse,
    dam_break,
)
from pdeml.solvers.problems import make_problem
from pdeml.solvers.problems.two_phase import cfdbench_cases
from pdeml.solvers.vof import VOFSolver, plic_constant, plic_volume, sweep
from pdeml.solvers.vof_pressure import VOF_PRESSURE_METHODS


def test_plic_line_constant_inverts_the_volume():
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=2000), rng.normal(size=2000)
    m1[:50] = 0.0  # axis-aligned interfaces
    vol = rng.random(2000)
    vol[:10] = [0.0, 1.0, 0.5, 1e-12, 1 - 1e-12, 0.0, 1.0, 0.25, 0.75, 0.5]
    back = plic_volume(m1, m2, plic_constant(m1, m2, vol))
    assert np.abs(back - vol).max() < 1e-12
    # a known case: the diagonal x + y <= 1/2 cuts off an eighth
    assert plic_volume(np.array([1.0]), np.array([1.0]), np.array([0.5]))[0] == 0.125


SHAPE_TOL = 0.05  # measured 0.0XX


def _disc(n: int, cx: float, cy: float, r: float, sub: int = 8) -> np.ndarray:
    """Area fractions of a disc, by sub-sampling each cell."""
    f = (np.arange(n * sub) + 0.5) / (n * sub)
    X, Y = np.meshgrid(f, f)
    inside = ((X - cx) ** 2 + (Y - cy) ** 2 < r**2).astype(float)
    return inside.reshape(n, sub, n, sub).mean(axis=(1, 3))


def test_split_sweeps_are_bounded_and_conservative_without_clipping():
    n = 32
    alpha = _disc(n, 0.35, 0.4, 0.15)
    volume = alpha.sum()
    fluid = np.ones((n, n), bool)
    none = (np.zeros(n), np.zeros(n))
    # uniform face Courant numbers near Weymouth-Yue's bound 1/2; walls at the box edges
    # (divergent only in the edge cells, which the disc never reaches)
    cx, cy = np.full((n, n + 1), 0.45), np.full((n + 1, n), 0.3)
    cx[:, [0, -1]], cy[[0, -1], :] = 0.0, 0.0
    lo, hi = 0.0, 1.0
    for step in range(20):
        c = (alpha > 0.5).astype(float)
        if step % 2 == 0:
            alpha = sweep(alpha, cx, c, fluid, none)
            lo, hi = min(lo, alpha.min()), max(hi, alpha.max())
            alpha = sweep(alpha.T, cy.T, c.T, fluid.T, none).T
        else:
            alpha = sweep(alpha.T, cy.T, c.T, fluid.T, none).T
            lo, hi = min(lo, alpha.min()), max(hi, alpha.max())
            alpha = sweep(alpha, cx, c, fluid, none)
        lo, hi = min(lo, alpha.min()), max(hi, alpha.max())
    assert lo > -1e-12 and hi < 1 + 1e-12, (lo, hi)
    assert abs(alpha.sum() - volume) < 1e-11 * volume
    # the disc moved by (9, 6) cells and kept its shape (PLIC: error confined to the rim)
    exact = _disc(n, 0.35 + 20 * 0.45 / n, 0.4 + 20 * 0.3 / n, 0.15)
    shape_error = np.abs(alpha - exact).sum() / exact.sum()
    assert shape_error < SHAPE_TOL, shape_error


def test_plane_slab_translates_exactly():
    """A straight interface is reconstructed exactly, so its flux is (corners of a block are
    not: Youngs' 3x3 normal tilts there, a known limit of the reconstruction)."""
    n = 16
    alpha = np.zeros((n, n))
    alpha[:, 3:7] = 1.0
    courant = np.zeros((n, n + 1))
    courant[:, 1:-1] = 0.25
    fluid = np.ones((n, n), bool)
    for _ in range(8):  # two cells
        alpha = sweep(alpha, courant, (alpha > 0.5).astype(float), fluid,
                      (np.zeros(n), np.zeros(n)))
    expected = np.zeros((n, n))
    expected[:, 5:9] = 1.0
    assert np.abs(alpha - expected).max() < 1e-13


def _layer(n: int, level: float) -> np.ndarray:
    edges = np.arange(n + 1) / n
    frac = np.clip((level - edges[:-1]) * n, 0.0, 1.0)
    return np.repeat(frac[:, None], n, axis=1)


def test_hydrostatic_layer_has_no_spurious_currents():
    """Water under air (816:1) with the interface inside a cell row: the exact discrete
    balance holds, currents stay at round-off (measured: ~1e-12 m/s after 200 steps)."""
    n, level = 16, 0.43
    flow = VOFSolver(n, n, 1.0, 1.0, _layer(n, level), pressure_method="lu")
    for _ in range(100):
        flow.dt = flow.stable_dt()
        flow.step()
    assert max(np.abs(flow.u).max(), np.abs(flow.v).max()) < 1e-9
    p = flow.pressure[:, n // 2]
    drop = 1000.0 * 9.81 * (level - 0.5 / n) + 1.225 * 9.81 * (1 - 0.5 / n - level)
    assert p[0] - p[-1] == pytest.approx(drop, rel=0.01)


def test_dam_break_conserves_water_and_keeps_alpha_bounded():
    flow = dam_break(8, pressure_method="lu")
    volume = flow.water_volume()
    flow.advance_to(0.16)  # T = 3: the front has run 3.5 column widths
    assert flow.n_steps > 60
    assert abs(flow.water_volume() - volume) < 1e-11 * volume
    assert flow.clipped < 1e-14 * volume  # the bound holds by the scheme, not by clipping
    assert flow.alpha.min() >= 0.0 and flow.alpha.max() <= 1.0
    assert np.abs(flow.divergence()).max() * flow.dt < 1e-9


@pytest.mark.parametrize("method", [m for m in VOF_PRESSURE_METHODS if m != "lu"])
def test_pressure_methods_agree_with_the_direct_solve(method):
    ref = dam_break(4, pressure_method="lu")
    other = dam_break(4, pressure_method=method, pressure_rtol=1e-10)
    for _ in range(6):
        for flow in (ref, other):
            flow.dt = 2e-3
            flow.step()
    assert np.abs(other.u - ref.u).max() < 1e-6 * np.abs(ref.u).max()
    # CG stops on its recursive residual: the true one is checked with a 10x margin
    assert other.pressure_solver.last_residual <= 1e-9
    if method != "amg":
        assert other.pressure_solver.n_builds < 6  # the hierarchy was reused


@pytest.mark.parametrize("method", [m for m in VOF_PRESSURE_METHODS if m != "lu"])
def test_iterative_pressure_methods_are_bitwise_repeatable(method):
    """Two identical runs give identical fields: pyamg's setup draws its spectral-radius start
    vectors from numpy's global generator, so the hierarchy is built under a fixed local seed
    and the caller's generator is left where it was."""
    np.random.seed(1234)
    before = np.random.get_state()

    def run() -> VOFSolver:
        flow = dam_break(4, pressure_method=method)
        for _ in range(6):
            flow.dt = 2e-3
            flow.step()
        return flow

    first, second = run(), run()
    for name in ("u", "v", "p", "alpha"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    after = np.random.get_state()
    assert after[2] == before[2] and np.array_equal(after[1], before[1])


@pytest.mark.parametrize(("where", "name"), [("u", "velocity u"), ("v", "velocity v"),
                                             ("rhs", "predicted velocity u")])
def test_a_nan_velocity_fails_before_the_pressure_solve(where, name):
    """A non-finite velocity (the state, or the predictor's) is reported at once, naming the
    field, time and step; the pressure solver (CG would run 10 n iterations on it) is never
    called."""
    flow = dam_break(4, pressure_method="amg-reuse")
    flow.step()
    if where == "rhs":  # a finite state whose momentum terms overflow
        rhs = flow._rhs
        flow._rhs = lambda: (rhs()[0] * np.inf, rhs()[1])
    else:
        getattr(flow, where)[3, 3] = np.nan
    calls = []
    solve = flow.pressure_solver.solve
    flow.pressure_solver.solve = lambda *a, **k: calls.append(1) or solve(*a, **k)
    with pytest.raises(FloatingPointError) as err:
        flow.step()
    message = str(err.value)
    assert "\n" not in message
    assert f"solver: {name} is not finite" in message, message
    assert "step 2" in message and f"t={flow.time:.4g}" in message
    assert calls == []


def test_default_upwind_is_the_validated_one():
    """The solver's default donor-cell share is what the tube / dam problems pass and what
    Martin & Moyce was validated with (0.5), not pure donor cell."""
    default = inspect.signature(VOFSolver).parameters["upwind"].default
    assert default == 0.5
    assert make_problem("dam").upwind == make_problem("tube").upwind == default
    assert VOFSolver(4, 4, 1.0, 1.0, np.zeros((4, 4))).upwind == default


def _band(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Martin & Moyce's front at ``t``: both column sizes, the lower and upper value."""
    big = np.interp(t, MM_FRONT_T, MM_FRONT_Z)
    small = np.interp(t, MM_FRONT_SMALL_T, MM_FRONT_SMALL_Z)
    return np.minimum(big, small), np.maximum(big, small)


FRONT_TOL = 0.08  # relative, beyond the two column sizes' own spread


def _check_martin_moyce(cells: int) -> tuple[np.ndarray, np.ndarray]:
    T = np.array([2.0, 2.5, 3.0])
    z, eta, _ = collapse(cells, T, pressure_method="lu", upwind=0.5)
    lo, hi = _band(T)
    assert np.all(z > lo * (1 - FRONT_TOL)) and np.all(z < hi * (1 + FRONT_TOL)), (z, lo, hi)
    tau = T / np.sqrt(2.0)
    expected = np.interp(tau, MM_HEIGHT_TAU, MM_HEIGHT_ETA)
    assert np.abs(eta - expected).max() < 0.05, (eta, expected)
    return z, eta


def test_martin_moyce_front_and_height_coarse():
    _check_martin_moyce(8)


@pytest.mark.slow
def test_martin_moyce_front_converges_under_refinement():
    """Z(T = 2.5) at 8, 16, 32 cells per column width: the changes shrink (observed order
    reported in the README) and the finest grid is within the data's band."""
    z = {n: collapse(n, np.array([2.5]), pressure_method="lu", upwind=0.5)[0][0]
         for n in (8, 16, 32)}
    d1, d2 = abs(z[16] - z[8]), abs(z[32] - z[16])
    assert d2 < d1, z
    lo, hi = _band(np.array([2.5]))
    assert lo[0] * (1 - FRONT_TOL) < z[32] < hi[0] * (1 + FRONT_TOL)


@pytest.mark.slow
def test_martin_moyce_front_and_height_fine():
    _check_martin_moyce(16)


# ------------------------------------------------------------------ the problems
TINY = {"resolution": 16, "cells": 8, "final_time": 0.2, "n_snapshots": 2}


@pytest.mark.parametrize("name", ["tube", "dam"])
def test_two_phase_samples_are_stored_with_alpha_and_mask(name, tmp_path):
    path = generate_split(make_problem(name, **TINY), tmp_path / "train.h5", 1, seed=0,
                          progress=False)
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        for var in ("u", "v", "p", "alpha"):
            assert ds[var].dims == ("sample", "time", "y", "x")
            assert ds[var].shape == (1, 2, 16, 16)
            assert np.isfinite(ds[var].values).all()
        alpha = ds["alpha"].values
        assert alpha.min() >= 0.0 and alpha.max() <= 1.0
        assert alpha[0, 1].sum() > alpha[0, 0].sum() > 0  # water flows in
        assert (ds["max_divergence"].values < 1e-6).all()
        solid = ~ds["mask"].values[0].astype(bool)
        assert solid.any() == (name == "dam")
        assert not np.any(alpha[0][:, solid])


def test_tube_front_moves_at_the_inflow_velocity():
    problem = make_problem("tube", cells=8, sweep="bc")
    params = {k: v[0] for k, v in problem.PARAMS.items()}
    flow = problem.build_solver(params)
    flow.advance_to(0.2)
    # all water that entered is still in the tube: volume = U * D * t
    assert flow.water_volume() == pytest.approx(1.0 * 0.1 * 0.2, rel=1e-9)


def test_cfdbench_case_lists_fit_the_ranges():
    counts = {("tube", "bc"): 50, ("tube", "prop"): 100, ("tube", "geo"): 21,
              ("dam", "bc"): 70, ("dam", "prop"): 100, ("dam", "geo"): 50}
    for (name, sweep_), count in counts.items():
        cases = cfdbench_cases(name, sweep_)
        assert len(cases) == count
        params = type(make_problem(name)).PARAMS
        for case in cases:
            for key, value in case.items():
                assert params[key][1] - 1e-12 <= value <= params[key][2] + 1e-12, (name, key)


def test_bad_two_phase_options_fail_with_a_message():
    with pytest.raises(ValueError, match="unknown dam pressure_solver 'cg'"):
        make_problem("dam", pressure_solver="cg")
    with pytest.raises(ValueError, match="cfl must be in"):
        VOFSolver(4, 4, 1.0, 1.0, np.zeros((4, 4)), cfl=0.9)


@pytest.mark.parametrize("name", ["tube", "dam"])
def test_default_config_generates_through_the_cli(name, tmp_path):
    from pathlib import Path

    from pdeml.cli import main

    config = Path(__file__).resolve().parents[2] / "configs" / "data" / f"{name}_bc.yaml"
    args = ["generate", "--config", str(config), "--out", str(tmp_path / "d"), "--n-train", "1",
            "--n-val", "0", "--n-test", "0", "--no-progress"]
    for key, value in {**TINY, "cells": 8, "final_time": 0.1, "n_snapshots": 1}.items():
        args += ["--set", f"{key}={value}"]
    assert main(args) == 0
    with xr.open_dataset(tmp_path / "d" / "train.h5", engine="h5netcdf") as ds:
        assert ds.attrs["problem"] == name
        assert ds["alpha"].shape == (1, 1, 16, 16)


def test_cli_rejects_a_bad_two_phase_option(tmp_path, capsys):
    from pdeml.cli import main

    assert main(["generate", "dam", "--out", str(tmp_path / "x"), "--set",
                 "pressure_solver=cg"]) == 1
    assert "pdeml: error: unknown dam pressure_solver 'cg'" in capsys.readouterr().err
