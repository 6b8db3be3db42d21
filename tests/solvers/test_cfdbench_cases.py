"""CFDBench's case lists, split and the Reynolds-number cap of cases=cfdbench."""

import random

import numpy as np
import pytest

from pdeml.solvers.problems import make_problem
from pdeml.solvers.problems.cfdbench_cases import case_list, cfdbench_split, parse_subsets


@pytest.mark.parametrize("problem, counts", [
    ("cavity", {"bc": 50, "prop": 84, "geo": 25}), ("tube", {"bc": 50, "prop": 100, "geo": 25}),
    ("dam", {"bc": 70, "prop": 100, "geo": 50}), ("cylinder", {"bc": 50, "prop": 115, "geo": 20}),
])
def test_case_counts(problem, counts):
    cl = case_list(problem)
    assert {s: len(cl.cases(s)) for s in counts} == counts


def test_values_read_from_the_generation_scripts():
    cav = case_list("cavity")
    assert [c["vel_top"] for c in cav.cases("bc")] == pytest.approx(np.arange(1, 51))
    prop = cav.cases("prop")
    assert sorted({c["density"] for c in prop}) == pytest.approx([0.1, 0.5, *range(1, 11)])
    assert sorted({c["viscosity"] for c in prop}) == pytest.approx(
        [1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2])
    assert all(c["vel_top"] == 10.0 for c in prop)  # the others stay at the default case
    dam = case_list("dam").cases("bc")
    assert dam[19]["velocity"] == pytest.approx(1.0) and dam[20]["velocity"] == pytest.approx(1.02)
    geo = case_list("dam").cases("geo")
    assert {round(c["barrier_height"], 3) for c in geo} == {0.11, 0.12, 0.13, 0.14, 0.15}


def test_split_is_cfdbenchs_and_leaves_the_global_generator_alone():
    assert parse_subsets("prop_bc") == ["prop", "bc"] and parse_subsets("all")[0] == "prop"
    random.seed(123)
    before = random.random()
    random.seed(123)
    parts = cfdbench_split(list(range(159)), seed=0)
    assert random.random() == before
    assert [len(parts[k]) for k in ("train", "val", "test")] == [127, 16, 16]
    expected = list(range(159))
    random.Random(0).shuffle(expected)  # CFDBench: random.seed(0); random.shuffle(dirs)
    assert parts["train"] + parts["val"] + parts["test"] == expected
    floor = cfdbench_split(list(range(185)), rounding="floor")
    assert [len(floor[k]) for k in ("train", "val", "test")] == [148, 18, 19]


def test_reynolds_cap_only_where_the_grid_cannot_resolve():
    cavity = make_problem("cavity", cases="cfdbench", cells=16, resolution=16)
    params, re_cfdbench = cavity.from_cfdbench(case_list("cavity").defaults)
    assert re_cfdbench == pytest.approx(1e4)
    assert cavity.reynolds(params) == pytest.approx(12 * 16)  # cell Peclet 12 on 16 cells
    channel = make_problem("channel", cases="cfdbench", cells=16, resolution=16)
    slow = {**case_list("tube").defaults, "density": 10.0, "viscosity": 1.0}
    params, re_cfdbench = channel.from_cfdbench(slow)
    assert re_cfdbench == pytest.approx(1.0) == channel.reynolds(params)
    assert params["viscosity"] == pytest.approx(1.0 * channel.LENGTH_SCALE)  # length only


def test_frames_every_tenth_of_a_second_by_default():
    p = make_problem("cavity", final_time=1.0, resolution=8, cells=8)
    assert p.n_snapshots == 10
    np.testing.assert_allclose(p.coords()["time"], 0.1 * np.arange(1, 11))
    assert make_problem("cavity", final_time=1.0, frame_dt=0.25).n_snapshots == 4
    assert make_problem("cavity", cases="cfdbench").n_snapshots == 300  # CFDBench's 30 s
    with pytest.raises(ValueError, match="use random or cfdbench"):
        make_problem("cavity", cases="ours")
    with pytest.raises(ValueError, match="no CFDBench subset"):
        make_problem("cavity", cases="cfdbench", sweep="xyz")
