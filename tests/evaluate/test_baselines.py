"""The baseline ledger: pdeml's own solver priced beside the surrogate (issue 26)."""

import json

import numpy as np
import pytest
import torch

from pdeml.baselines import (
    Setting,
    darcy_solver,
    interpolation_matrix,
    ledger,
    summarize,
    summary_line,
)
from pdeml.cli import main
from pdeml.datasets.writer import compute_samples
from pdeml.solvers.problems import DarcyFlow


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


def test_coarser_settings_are_less_accurate_and_the_stored_grid_is_exact(darcy33):
    problem, a, u = darcy33
    led = ledger(CoarseSolve(problem.attrs()), "darcy", problem.attrs(), a, u,
                 {"training": None}, repeats=1)
    errors = [s["rel_l2"] for s in led["settings"]]
    assert [s["label"] for s in led["settings"]] == [
        "grid 33² (stored)", "grid 17² (1/2)", "grid 9² (1/4)", "grid 5² (1/8)"]
    assert errors[0] < 1e-10  # the same discretization as the labels
    assert errors[1] < errors[2] < errors[3]  # a converging discretization
    # the surrogate that *is* the 2x coarser solve scores exactly that setting's error
    assert led["surrogate"]["rel_l2"] == pytest.approx(errors[1], rel=1e-5)


def test_a_surrogate_worse_than_the_2x_coarser_solve_gets_it_as_equal_accuracy(darcy33):
    problem, a, u = darcy33
    e2 = _rel(np.stack([darcy_solver(problem.attrs(), 33, 2)(ai[0])[None] for ai in a]), u)
    e4 = _rel(np.stack([darcy_solver(problem.attrs(), 33, 4)(ai[0])[None] for ai in a]), u)
    worse = CoarseSolve(problem.attrs(), noise=np.sqrt(((e2 + e4) / 2) ** 2 - e2**2))
    led = ledger(worse, "darcy", problem.attrs(), a, u, {"training": None}, repeats=1)
    es = led["surrogate"]["rel_l2"]
    assert e2 < es < e4  # worse than the 2x coarser solve, better than the 4x one
    accurate = {s["label"] for s in led["settings"] if s["rel_l2"] <= es}
    assert accurate == {"grid 33² (stored)", "grid 17² (1/2)"}
    # the cheaper of the two: timed here, so the pick is checked against the measured times
    picked = min((s for s in led["settings"] if s["label"] in accurate),
                 key=lambda s: s["seconds"])
    assert led["equal_accuracy"]["label"] == picked["label"]


def test_equal_accuracy_equal_time_and_breakeven_from_given_costs():
    settings = [Setting("full", 1e-8, 0.010), Setting("1/2", 0.02, 0.003),
                Setting("1/4", 0.06, 0.001)]
    sur = {"rel_l2": 0.03, "seconds_batch1": 0.002, "seconds_batched": 0.0005}
    led = summarize(sur, settings, {"training": 100.0}, n_train=1000, problem="darcy")
    assert led["equal_accuracy"]["label"] == "1/2"  # cheapest with error <= 0.03
    assert led["equal_time"]["label"] == "1/4"  # most accurate within 2 ms
    # (1000 solves x 10 ms + 100 s training) / (3 ms - 2 ms) per query
    assert led["breakeven_queries"] == pytest.approx(110_000, rel=1e-9)
    slow = summarize({**sur, "seconds_batch1": 0.004}, settings, {"training": 100.0}, 1000,
                     "darcy")
    assert slow["breakeven_queries"] == "never" and slow["equal_time"]["label"] == "1/2"
    best = summarize({**sur, "rel_l2": 1e-9}, settings, {"training": 1.0}, 10, "darcy")
    assert best["equal_accuracy"] is None
    assert "no solver setting is as accurate" in summary_line(best)
    assert "never" in summary_line(slow) and "(surrogate 1.33x slower)" in summary_line(slow)


def test_evaluate_prints_the_ledger_and_can_skip_it(trained_run, tmp_path, capsys):
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
    assert main(["evaluate", str(trained_run), "--n-plots", "0", "--baselines", "off",
                 "--out", str(tmp_path / "ev2")]) == 0
    assert "baselines" not in json.loads((tmp_path / "ev2" / "metrics.json").read_text())


def test_a_problem_without_a_knob_says_so_in_one_line():
    led = ledger(lambda x: x, "poisson", {}, np.ones((2, 1, 5, 5)), np.ones((2, 1, 5, 5)),
                 {"training": None})
    assert "no solver knob for poisson yet" in summary_line(led)
    assert "\n" not in summary_line(led)
