"""Figures tell the truth: read back each saved panel's colour limits, extent and title."""

import numpy as np
import pytest

from pdeml import report


def _by_kind(panels):
    out = {}
    for p in panels:
        out.setdefault(p["kind"], []).append(p)
    return out


def test_truth_and_prediction_share_a_scale_and_error_is_symmetric(tmp_path):
    yy, xx = np.meshgrid(np.linspace(0, 1, 24), np.linspace(0, 2, 48), indexing="ij")
    truth = np.stack([np.sin(np.pi * xx) * yy, np.cos(xx) + 3.0])  # (2, 24, 48)
    pred = truth * 0.5  # e.g. a prediction at half the lid velocity
    mask = np.ones((24, 48), bool)
    mask[:6, 10:20] = False  # a solid block
    path = report.plot_fields(truth, pred, ["u", "v"], tmp_path / "f.png", "case",
                              extent=(0.0, 2.0, 0.0, 1.0), mask=mask)
    panels = _by_kind(report.figure_panels(path))
    assert len(panels["truth"]) == len(panels["prediction"]) == len(panels["error"]) == 2
    for t, p, e in zip(panels["truth"], panels["prediction"], panels["error"], strict=True):
        assert t["clim"] == p["clim"]  # one scale: the halved prediction looks halved
        assert e["clim"][0] == pytest.approx(-e["clim"][1]) and e["clim"][1] > 0
        assert e["extent"] == [0.0, 2.0, 0.0, 1.0] and e["aspect"] == 1.0  # physical shape
        assert t["solid_cells"] == 60 and e["solid_cells"] == 60
        assert "rel. L2 0.5" in e["title"]
    assert panels["truth"][0]["title"].startswith("u") and panels["error"][1]["title"][0] == "v"
    # The shared scale covers both fields over the fluid cells only.
    u_fluid = truth[0][mask]
    assert panels["truth"][0]["clim"] == pytest.approx([min(u_fluid.min(), 0.5 * u_fluid.min()),
                                                        u_fluid.max()])


def test_evaluate_samples_figure_reads_back(trained_run, tmp_path):
    from pdeml.evaluate import evaluate_run

    out = evaluate_run(trained_run, out=tmp_path / "ev", n_plots=2)["out"]
    panels = report.figure_panels(f"{out}/samples.png")
    kinds = _by_kind(panels)
    assert len(kinds["input"]) == len(kinds["truth"]) == len(kinds["error"]) == 2
    for t, p, e in zip(kinds["truth"], kinds["prediction"], kinds["error"], strict=True):
        assert t["clim"] == p["clim"]
        assert e["clim"][0] == pytest.approx(-e["clim"][1])
        assert e["xlabel"] == "x" and e["ylabel"] == "y"
        x0, x1, y0, y1 = e["extent"]  # Darcy's node grid on the unit square, as pixel edges
        assert x1 - x0 == pytest.approx(y1 - y0) and x0 < 0 < 1 < x1
        assert "rel. L2" in e["title"] and t["title"].startswith("u: truth")
    assert kinds["input"][0]["title"] == "sample 0: a"


def test_index_page_is_self_contained_styled_and_marks_the_best(tmp_path):
    import re

    truth = np.random.default_rng(0).normal(size=(1, 8, 8))
    figs = [report.plot_fields(truth, truth * 0.9, ["u"], tmp_path / "cavity_bc_FNO_fields.png"),
            report.plot_error_growth({"FNO": [0.1, 0.2]}, tmp_path / "cavity_bc_growth.png")]
    rows = [{"case": "cavity", "sweep": "bc", "operator": "persistence", "rel_l2": 0.3},
            {"case": "cavity", "sweep": "bc", "operator": "FNO", "rel_l2": 0.1},
            {"case": "step", "sweep": "bc", "operator": "FNO", "rel_l2": 0.5}]
    page = report.write_index(tmp_path / "index.html", "suite", rows,
                              ("case", "sweep", "operator", "rel_l2"), {"cavity / bc": figs},
                              settings={"epochs": 3}).read_text()
    assert "<style>" in page and page.count("data:image/png;base64,") == 2
    assert not re.search(r"src='(?!data:)", page)  # nothing outside the page
    assert "<a href='cavity_bc_FNO_fields.png'>png</a>" in page  # and the file beside it
    assert "<td class='best'>0.1</td>" in page and "<td class='best'>0.3</td>" not in page
    assert "<td class='best'>0.5</td>" in page  # best of its own case
    assert "FNO: truth, prediction (one colour scale)" in page and "<figcaption>" in page
    assert "epochs: 3" in page and "mean over samples of ||pred - y||" in page
