"""The parameter guard of label-free refinement: fit, accept, refuse, name the suspect."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pdeml.solvers.problems.navier_stokes import NavierStokes2D
from pdeml.trainers import parameter_guard as pg
from pdeml.trainers.parameter_guard import (
    THRESHOLD,
    ParameterMismatch,
    check_parameters,
    fit_parameters,
    guard,
)
from pdeml.trainers.refine import RESIDUAL_ALPHA, residual_norm
from pdeml.trainers.residuals import VorticityResidual

SPACING = 0.1
# Small developed flows on 32^2 (nu = 1e-3 is resolved there), snapshots SPACING apart after t=2.
FLOWS = {
    "fno": {"forcing": "fno"},
    # k = 2: the default k = 4 is under-resolved on 32^2 (the solver warns)
    "kolmogorov": {"forcing": "kolmogorov", "forcing_amplitude": 0.1, "forcing_wavenumber": 2,
                   "drag": 0.1},
    "none": {"forcing": "none"},
}
# wrong setting: (viscosity factor, forcing factor, spacing factor, the parameter to name)
WRONG = {
    "nu x3": (3.0, 1.0, 1.0, "viscosity"), "nu /3": (1 / 3, 1.0, 1.0, "viscosity"),
    "forcing +20%": (1.0, 1.2, 1.0, "forcing_scale"),
    "forcing -20%": (1.0, 0.8, 1.0, "forcing_scale"),
    "dt +20%": (1.0, 1.0, 1.2, "dt"), "dt -20%": (1.0, 1.0, 0.8, "dt"),
}


def solve(kind: str, seeds: tuple[int, ...] = (0,)) -> tuple[torch.Tensor, NavierStokes2D]:
    prob = NavierStokes2D(resolution=32, viscosity=1e-3, n_terms=0, start_time=2.0,
                          final_time=2.0 + 10 * SPACING, n_snapshots=10, dt=1e-2, **FLOWS[kind])
    w = np.stack([prob.solve(prob.draw_initial(np.random.default_rng(s))) for s in seeds])
    return torch.from_numpy(w).float(), prob  # float32, as a pdeml file stores them


@pytest.fixture(scope="module")
def fno():
    return solve("fno", (0, 1))


@pytest.fixture(scope="module")
def kolmogorov():
    return solve("kolmogorov")


def residual_of(prob: NavierStokes2D, nu: float = 1.0, force: float = 1.0,
                dt: float = 1.0) -> VorticityResidual:
    f = torch.from_numpy(prob.forcing_field(prob.resolution)) * force
    return VorticityResidual(prob.viscosity * nu, SPACING * dt, f, prob.drag)


# ------------------------------------------------------------------------------------------------
# The fit
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flow", ["fno", "kolmogorov"])
def test_fit_recovers_the_parameters(flow, request):
    w, prob = request.getfixturevalue(flow)
    # Whatever parameters the residual carries, the fit finds those of the data.
    for nu, force, dt in [(1.0, 1.0, 1.0), (3.0, 0.8, 1.2)]:
        fit = fit_parameters(residual_of(prob, nu, force, dt), w)
        assert fit["fitted"] == ["dt", "viscosity", "forcing_scale"]
        assert fit["dt"] == pytest.approx(SPACING, rel=1e-2)
        assert fit["viscosity"] == pytest.approx(prob.viscosity, rel=2e-2)
        assert fit["forcing_scale"] * force == pytest.approx(1.0, rel=2e-2)
        assert len(fit["per_trajectory"]) == len(w)
        for t in fit["per_trajectory"]:
            assert t["viscosity"] == pytest.approx(prob.viscosity, rel=2e-2)
    right = fit_parameters(residual_of(prob), w)
    assert right["relative_residual_fitted"] <= right["relative_residual_given"] < 1e-3
    assert right["ratio"] == pytest.approx(right["relative_residual_given"] / max(
        right["relative_residual_fitted"], pg.RESIDUAL_FLOOR))


def test_relative_residual_is_refinements_norm(fno):
    """``||r|| / ||D / dt||`` in the H^-1 norm of refinement (refine.residual_norm)."""
    w, prob = fno
    assert pg.RESIDUAL_ALPHA == RESIDUAL_ALPHA
    res = residual_of(prob, nu=3.0)
    w64 = w.double()
    r = res(w64[:, 0], w64[:, 1:])
    rate = (w64[:, 1:] - w64[:, :-1]) / res.dt
    expect = math.sqrt(float((residual_norm(r) ** 2).mean() / (residual_norm(rate) ** 2).mean()))
    assert fit_parameters(res, w)["relative_residual_given"] == pytest.approx(expect, rel=1e-6)


def test_statistic_does_not_depend_on_scale_or_layout(fno):
    """The ratio is unchanged by the batch order and by a longer, pooled batch."""
    w, prob = fno
    res = residual_of(prob, nu=3.0)
    one = [check_parameters(res, w[i:i + 1])["ratio"] for i in range(len(w))]
    both = check_parameters(res, w)["ratio"]
    flipped = check_parameters(res, w.flip(0))["ratio"]
    assert flipped == pytest.approx(both, rel=1e-9)
    assert min(one) * 0.5 < both < max(one) * 2


def test_zero_forcing():
    w, prob = solve("none")
    fit = fit_parameters(residual_of(prob), w)
    assert fit["forcing_scale"] is None and fit["fitted"] == ["dt", "viscosity"]
    assert any("forcing is zero" in note for note in fit["notes"])
    assert fit["viscosity"] == pytest.approx(prob.viscosity, rel=2e-2)
    assert check_parameters(residual_of(prob), w)["ok"]
    with pytest.raises(ParameterMismatch, match="suspect viscosity"):
        guard(residual_of(prob, nu=3.0), w)


# ------------------------------------------------------------------------------------------------
# Accept, refuse, name
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flow", ["fno", "kolmogorov"])
def test_right_parameters_accepted(flow, request):
    w, prob = request.getfixturevalue(flow)
    for batch in (w[:1], w):
        report = guard(residual_of(prob), batch)
        assert report["ok"] and report["suspects"] == [] and report["message"] is None
        assert report["ratio"] < THRESHOLD and report["conclusive"]
        # not only thanks to the floor: the unfloored ratio passes too
        assert report["relative_residual_given"] < THRESHOLD * report["relative_residual_fitted"]


@pytest.mark.parametrize("flow", ["fno", "kolmogorov"])
@pytest.mark.parametrize("wrong", list(WRONG))
def test_wrong_parameters_refused_and_named(flow, wrong, request):
    w, prob = request.getfixturevalue(flow)
    nu, force, dt, name = WRONG[wrong]
    res = residual_of(prob, nu, force, dt)
    with pytest.raises(ParameterMismatch) as err:
        guard(res, w[:1])
    message = str(err.value)
    report = err.value.report
    assert isinstance(err.value, ValueError) and "\n" not in message
    assert report["suspects"] == [name] and report["ratio"] > THRESHOLD
    label = pg.LABELS[name]
    assert f"suspect {label}: file " in message and "use --force" in message
    given, fitted = report["given"][name], report["fitted"][name]
    assert f"file {pg._format(name, given)}, window fits {pg._format(name, fitted)}" in message
    truth = {"dt": SPACING, "viscosity": prob.viscosity, "forcing_scale": 1.0 / force}
    assert fitted == pytest.approx(truth[name], rel=2e-2)
    # forced: the report comes back instead
    forced = guard(res, w[:1], force=True)
    assert not forced["ok"] and forced["message"] == report["message"]


def test_two_wrong_parameters_both_named(fno):
    w, prob = fno
    with pytest.raises(ParameterMismatch) as err:
        guard(residual_of(prob, nu=3.0, force=1.2), w)
    assert err.value.report["suspects"] == ["viscosity", "forcing_scale"]
    assert "suspect viscosity: file 3.0e-03, window fits 1.0e-03; forcing scale: file 1.000x, " \
        "window fits 0.833x (use" in str(err.value)


def test_viscosity_message_reads_well(fno):
    w, prob = fno
    with pytest.raises(ParameterMismatch) as err:
        guard(residual_of(prob, nu=3.0), w)
    msg = str(err.value)
    assert msg.startswith("parameter guard: the input window does not satisfy the equation with "
                          "the file's parameters (residual ")
    assert "suspect viscosity: file 3.0e-03, window fits 1.0e-03 (use --force to refine anyway)" \
        in msg


def test_threshold_is_used(fno):
    w, prob = fno
    res = residual_of(prob, force=1.03)  # under the consistency floor (5%): only the ratio decides
    ratio = check_parameters(res, w)["ratio"]
    assert not check_parameters(res, w, threshold=ratio * 0.9)["ok"]
    assert check_parameters(res, w, threshold=ratio * 1.1)["ok"]
    for bad in (0.5, math.nan, math.inf):
        with pytest.raises(ValueError, match="threshold"):
            check_parameters(res, w, threshold=bad)


@pytest.mark.parametrize("name", ["forcing_scale", "viscosity"])
def test_detectable_error_is_the_refusal_boundary(fno, name):
    """An error just above the reported detectable size is refused, just below accepted."""
    w, prob = fno
    right = check_parameters(residual_of(prob), w)
    delta = right["detectable"][name]
    assert 0 < delta < pg.DETECTABLE
    fit = right["fitted"][name] / right["given"][name]  # the data's value, in given units
    for factor, refused in [(1.05, True), (0.95, False)]:
        c = fit * (1 + factor * delta)  # given = fit (1 + factor delta)
        res = residual_of(prob, force=c) if name == "forcing_scale" else residual_of(prob, nu=c)
        report = check_parameters(res, w)
        assert report["ok"] is not refused
        if refused:
            assert report["suspects"] == [name]


def test_prediction_is_reported_not_judged(fno):
    w, prob = fno
    res = residual_of(prob)
    window, truth = w[:, :5], w[:, 5:]
    good = check_parameters(res, window, prediction=truth)["prediction"]
    # The true continuation's first step is as good as the window's own steps.
    assert good["vs_window"] < 3 and len(good["per_trajectory"]) == len(w)
    bad = truth + 0.05 * truth.std() * torch.randn(truth.shape, generator=torch.Generator()
                                                   .manual_seed(0))
    report = guard(res, window, prediction=bad)  # informational: not refused
    assert report["ok"]
    assert report["prediction"]["relative_residual_first_step"] > 10 * good[
        "relative_residual_first_step"]


# ------------------------------------------------------------------------------------------------
# Bad inputs
# ------------------------------------------------------------------------------------------------

def test_bad_inputs(fno):
    w, prob = fno
    res = residual_of(prob)
    with pytest.raises(ValueError, match="at least 2 consecutive snapshots"):
        fit_parameters(res, w[:, :1])
    with pytest.raises(ValueError, match=r"\(batch, T, 32, 32\)"):
        fit_parameters(res, w[0])
    with pytest.raises(ValueError, match=r"\(batch, T, 32, 32\)"):
        check_parameters(res, w[..., :16, :16])
    with pytest.raises(ValueError, match="NaN"):
        guard(res, torch.full_like(w, math.nan))
    with pytest.raises(ValueError, match="real floating point"):
        fit_parameters(res, w.to(torch.complex64))
    with pytest.raises(ValueError, match="batch"):
        check_parameters(res, w, prediction=w[:1])
    with pytest.raises(ValueError, match=r"prediction as \(batch, T, 32, 32\)"):
        check_parameters(res, w, prediction=w[:, 0])
    with pytest.raises(ValueError, match="VorticityResidual"):
        fit_parameters(object(), w)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", list(WRONG))
def test_fits_far_from_the_file_are_refused_when_the_ratio_cannot_see_them(fno, case):
    """The second test alone (the ratio's threshold out of reach, as when snapshots far apart
    hide the parameters' terms under the time-discretization error): every wrong setting is
    refused on its fitted value, the right one accepted."""
    w, prob = fno
    right = check_parameters(residual_of(prob), w, threshold=1e9)
    assert right["ok"] and all(v["ok"] for v in right["consistency"].values())
    nu, force, dt, name = WRONG[case]
    wrong = check_parameters(residual_of(prob, nu, force, dt), w, threshold=1e9)
    assert not wrong["ok"] and wrong["suspects"] == [name]
    assert "fits other parameters" in wrong["message"]
    c = wrong["consistency"][name]
    assert c["departure"] > c["tolerance"] >= pg.CONSISTENCY_FLOOR


def test_the_second_test_is_skipped_on_under_resolved_snapshots():
    """32^2 at nu = 1e-4 is under-resolved (the solver warns): fits there are biased, so only
    the residual ratio decides, and the report says so."""
    prob = NavierStokes2D(resolution=32, viscosity=1e-4, n_terms=0, start_time=2.0,
                          final_time=10.0, n_snapshots=8, dt=2e-2)
    with pytest.warns(RuntimeWarning, match="under-resolved"):
        w = torch.from_numpy(prob.solve(prob.draw_initial(np.random.default_rng(0)))[None])
    f = torch.from_numpy(prob.forcing_field(32))
    rep = check_parameters(VorticityResidual(1e-4 / 3, 1.0, f), w.float())
    assert rep["consistency"] == {}
    assert any("barely resolved" in note for note in rep["notes"])
