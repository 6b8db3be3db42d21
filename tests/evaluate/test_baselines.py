"""The baseline ledger: pdeml's own solver priced beside the surrogate (issue 26)."""

import json
import warnings

import numpy as np
import pytest
import torch

from pdeml.baselines import (
    Setting,
    darcy_solver,
    interpolation_matrix,
    ledger,
    measure,
    resample,
    rollout_ledger,
    summarize,
    summary_line,
)
from pdeml.cli import main
from pdeml.datasets.writer import compute_samples
from pdeml.solvers.problems import Burgers, DarcyFlow, NavierStokes2D


def test_interpolation_is_exact_for_linear_functions():
    p = interpolation_matrix(5, 17)
    xc, xf = np.linspace(0, 1, 5), np.linspace(0, 1, 17)
    np.testing.assert_allclose(p @ (3 * xc - 1), 3 * xf - 1, atol=1e-14)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(interpolation_matrix(9, 9), np.eye(9), atol=1e-15)


@pytest.fixture(scope="module")
def darcy33():
    """Eight Darcy samples on a 33² node grid (coarsenable by 2, 4, 8)."""
    problem = DarcyFlow(resolution=33, coefficient="lognormal", solver="direct")
    out = compute_samples(problem, 0, "test", range(8))
    return problem, out["a"][:, None], out["u"][:, None]


class CoarseSolve(torch.nn.Module):
    """A 'surrogate' that is the 2x coarser solve plus a checkerboard of relative size
    ``noise`` (deliberately worse: nearly orthogonal to the discretization error)."""

    def __init__(self, attrs, noise=0.0):
        super().__init__()
        self.solve, self.noise = darcy_solver(attrs, 33, 2), noise
        i = np.arange(33)
        self.checker = (-1.0) ** (i[:, None] + i[None, :])
        self.checker[[0, -1], :] = self.checker[:, [0, -1]] = 0.0

    def forward(self, x):
        out = []
        for xi in x:
            u = self.solve(xi[0].double().numpy())
            scale = self.noise * np.linalg.norm(u) / np.linalg.norm(self.checker)
            out.append(u + scale * self.checker)
        return torch.from_numpy(np.stack(out)[:, None]).float()


def _rel(pred, truth):
    d = (pred - truth).reshape(len(truth), -1)
    return float(np.mean(np.linalg.norm(d, axis=1) / np.linalg.norm(truth.reshape(len(truth),
                                                                                   -1), axis=1)))


def _by_label(led):
    return {s["label"]: s for s in led["settings"]}


def test_coarser_settings_are_less_accurate_and_the_stored_grid_is_exact(darcy33):
    problem, a, u = darcy33
    led = ledger(CoarseSolve(problem.attrs()), "darcy", problem.attrs(), a, u,
                 {"training": None}, repeats=1)
    s = _by_label(led)
    assert list(s) == [
        "direct 33² (stored)", "amg 33² (stored)", "gmres 33² (stored)", "gcrodr 33² (stored)",
        "amg rtol 1e-06 33²", "amg rtol 0.0001 33²", "amg rtol 0.01 33²",
        "auto 17²", "auto 11²", "auto 9²", "auto 6²", "auto 5²"]
    assert s["direct 33² (stored)"]["rel_l2"] < 1e-10  # the same discretization as the labels
    for m in ("amg", "gmres", "gcrodr"):  # every method meets the file's rtol 1e-8
        assert s[f"{m} 33² (stored)"]["rel_l2"] < 1e-6
    loose = [s[f"amg rtol {t} 33²"]["rel_l2"] for t in ("1e-06", "0.0001", "0.01")]
    assert loose[0] < loose[1] < loose[2]  # a looser tolerance, a larger error
    coarse = [s[f"auto {m}²"]["rel_l2"] for m in (17, 11, 9, 6, 5)]
    assert coarse == sorted(coarse)  # a converging discretization
    # the surrogate that *is* the 2x coarser solve scores exactly that setting's error
    assert led["surrogate"]["rel_l2"] == pytest.approx(coarse[0], rel=1e-5)


def test_a_surrogate_worse_than_the_2x_coarser_solve_gets_it_as_equal_accuracy(darcy33):
    problem, a, u = darcy33
    e2 = _rel(np.stack([darcy_solver(problem.attrs(), 33, 2)(ai[0])[None] for ai in a]), u)
    e3 = _rel(np.stack([darcy_solver(problem.attrs(), 33, 3)(ai[0])[None] for ai in a]), u)
    assert e2 < e3
    worse = CoarseSolve(problem.attrs(), noise=np.sqrt(((e2 + e3) / 2) ** 2 - e2**2))
    led = ledger(worse, "darcy", problem.attrs(), a, u, {"training": None}, repeats=1)
    es = led["surrogate"]["rel_l2"]
    assert e2 < es < e3  # worse than the 2x coarser solve, better than the 3x one
    accurate = {s["label"] for s in led["settings"] if s["rel_l2"] <= es}
    assert {label for label in accurate if "stored" not in label and "rtol" not in label} == {
        "auto 17²"}
    # the cheapest accurate one: timed here, so the pick is checked against the measured times
    picked = min((s for s in led["settings"] if s["label"] in accurate),
                 key=lambda s: s["seconds"])
    assert led["equal_accuracy"]["label"] == picked["label"]


def test_equal_accuracy_equal_time_and_breakeven_from_given_costs():
    settings = [Setting("full", 1e-8, 0.010), Setting("1/2", 0.02, 0.003),
                Setting("1/4", 0.06, 0.001)]
    sur = {"rel_l2": 0.03, "seconds_batch1": 0.004, "seconds_batched": 0.002}
    led = summarize(sur, settings, {"training": 100.0}, n_train=1000, problem="darcy")
    assert led["equal_accuracy"]["label"] == "1/2"  # cheapest with error <= 0.03
    assert led["equal_time"]["label"] == "1/4"  # most accurate within 2 ms (batched basis)
    # (1000 solves x 10 ms + 100 s training) / (3 ms - 2 ms) per query
    assert led["breakeven_queries"] == pytest.approx(110_000, rel=1e-9)
    slow = summarize({**sur, "seconds_batched": 0.004}, settings, {"training": 100.0}, 1000,
                     "darcy")
    assert slow["breakeven_queries"] == "never" and slow["equal_time"]["label"] == "1/2"
    best = summarize({**sur, "rel_l2": 1e-9}, settings, {"training": 1.0}, 10, "darcy")
    assert best["equal_accuracy"] is None
    assert "no solver setting is as accurate" in summary_line(best)
    assert "never" in summary_line(slow) and "(surrogate 1.33x slower)" in summary_line(slow)


def test_evaluate_prints_the_ledger_and_can_skip_it(trained_run, darcy_dir, tmp_path, capsys):
    assert main(["evaluate", str(trained_run), "--n-plots", "0", "--out",
                 str(tmp_path / "ev")]) == 0
    err = capsys.readouterr().err
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    led = metrics["baselines"]
    assert led["problem"] == "darcy" and len(led["settings"]) >= 2
    assert [line for line in err.splitlines() if line.startswith("baselines: surrogate")]
    train_cost = json.loads((trained_run / "metrics.json").read_text())["cost"]
    assert train_cost["train_wall_seconds"] > 0 and train_cost["threads"] >= 1
    assert led["offline_seconds"]["training"] == train_cost["train_wall_seconds"]
    from pdeml.datasets.costs import read_costs  # generation: the training file's record

    train_file = darcy_dir / "train.h5"
    recorded = read_costs(train_file)
    assert recorded is not None, train_file
    assert led["offline_seconds"]["generation"] == recorded["wall_seconds_total"]
    assert led["offline_seconds"]["generation_estimated"] is False
    assert main(["evaluate", str(trained_run), "--n-plots", "0", "--baselines", "off",
                 "--out", str(tmp_path / "ev2")]) == 0
    assert "baselines" not in json.loads((tmp_path / "ev2" / "metrics.json").read_text())


def test_a_problem_without_a_knob_says_so_in_one_line():
    led = ledger(lambda x: x, "poisson", {}, np.ones((2, 1, 5, 5)), np.ones((2, 1, 5, 5)),
                 {"training": None})
    assert "no solver knob for poisson yet" in summary_line(led)
    assert "\n" not in summary_line(led)


@pytest.fixture(scope="module")
def ns32():
    """Four Navier-Stokes trajectories on 32² (4 snapshots, one time unit apart)."""
    problem = NavierStokes2D(resolution=32, final_time=4.0, n_snapshots=4, dt=1e-2)
    with pytest.warns(RuntimeWarning):  # 32² under-resolves the late snapshots: fine here
        out = compute_samples(problem, 0, "test", range(4))
    return problem, out


def test_spectral_knobs_reproduce_the_data_and_show_second_order_in_time(ns32):
    problem, out = ns32
    led = ledger(lambda x: torch.from_numpy(out["w"][:len(x)]).float(), "navier_stokes",
                 problem.attrs(), out["w0"][:, None], out["w"], {"training": None}, repeats=1)
    s = _by_label(led)
    assert s["grid 32² (data's)"]["rel_l2"] < 1e-6  # float32 storage of the same solve
    assert s["grid 16²"]["rel_l2"] < s["grid 8²"]["rel_l2"]
    # Crank-Nicolson/Heun is second order: 2x the step, ~4x the (dt-dominated) error
    ratio = s["grid 32², dt x10"]["rel_l2"] / s["grid 32², dt x5"]["rel_l2"]
    assert 3.0 < ratio < 5.5, ratio
    assert all(np.isfinite(v["seconds"]) and v["seconds"] > 0 for v in s.values())


class CoarseStepper(torch.nn.Module):
    """A one-step 'surrogate' that is the solver on 16² for one snapshot interval."""

    def __init__(self, problem):
        super().__init__()
        self.problem = NavierStokes2D(resolution=16, final_time=1.0, n_snapshots=1,
                                      dt=problem.dt_used, n_terms=0)

    def forward(self, x):
        w = x[:, 0].double().numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # 16² is under-resolved: on purpose
            out = [resample(self.problem.solve(resample(wi, 16, 2))[0], 32, 2) for wi in w]
        return torch.from_numpy(np.stack(out)[:, None]).float()


def test_a_rollout_of_the_16_grid_stepper_scores_the_16_grid_setting(ns32):
    problem, out = ns32
    w = out["w"]
    led = rollout_ledger(CoarseStepper(problem), "navier_stokes", problem.attrs(), w[:, :1],
                         w[:, 1:, None], 1, {"training": 5.0}, n_train=10, repeats=1)
    s = _by_label(led)
    assert led["query"] == "a rollout of 3 steps"
    assert led["surrogate"]["rel_l2"] == pytest.approx(s["grid 16²"]["rel_l2"], rel=1e-3)
    assert s["grid 32² (data's)"]["rel_l2"] < 1e-6
    # every setting at least as accurate as the surrogate is a candidate; the cheapest wins
    accurate = [v for v in s.values() if v["rel_l2"] <= led["surrogate"]["rel_l2"]]
    assert led["equal_accuracy"]["label"] == min(accurate, key=lambda v: v["seconds"])["label"]


def test_burgers_knobs_and_a_blow_up_is_priced_not_raised():
    problem = Burgers(resolution=64, viscosity=0.1, final_time=0.5, n_snapshots=2,
                      solver_resolution=256, n_terms=21)
    out = compute_samples(problem, 0, "test", range(3))
    led = ledger(lambda x: torch.from_numpy(out["u"][:len(x)]).float(), "burgers",
                 problem.attrs(), out["u0"][:, None], out["u"], {"training": None}, repeats=1)
    s = _by_label(led)
    assert s["grid 256 (data's)"]["rel_l2"] < 1e-6
    assert s["grid 256, dt x200"]["rel_l2"] > s["grid 256, dt x20"]["rel_l2"]
    assert {"grid 128", "grid 64", "grid 32", "grid 16"} <= set(s)

    def raises(x):
        raise ValueError("CFL number 3 exceeds max_cfl\nmore")

    x, u = out["u0"][:, None], out["u"]
    for solve, note in ((raises, "unstable: CFL number 3 exceeds max_cfl"),
                        (lambda x: np.full(u.shape, np.nan), "unstable: the solution blew up")):
        st = measure("x", solve, x, u, repeats=1)
        assert st.rel_l2 == np.inf and st.note == note and st.seconds >= 0
    led = summarize({"rel_l2": 1e-3, "seconds_batch1": 1.0, "seconds_batched": 1.0},
                    [st], {"training": None}, None, "burgers")
    assert led["equal_time"] is None and led["equal_accuracy"] is None


def test_an_export_keeps_its_measured_latency(exported_model):
    from pdeml.export import card_path_of, load_exported

    _, embedded = load_exported(exported_model)
    card = json.loads(card_path_of(exported_model).read_text())
    assert embedded["latency"] == card["latency"]
    lat = card["latency"]
    assert lat["seconds_batch1"] > 0 and lat["seconds_batched"] > 0 and lat["batch"] == 16
    assert lat["grid"] == card["grid"] and lat["threads"] >= 1
