"""CFDBench folders: exporter -> importer round trip, variable lengths, the converged-frame
rule, the non-autoregressive dataset and CFDBench's profile on an imported file."""

import json

import h5py
import numpy as np
import pytest
import torch

from pdeml.datasets.cfdbench import export_cfdbench, import_cfdbench, import_cfdbench_splits
from pdeml.datasets.schema import DatasetError
from pdeml.datasets.timeseries import (
    NonAutoDataset,
    StepDataset,
    TrajectoryDataset,
    converged_length,
)
from pdeml.datasets.writer import generate_dataset
from pdeml.solvers.problems import make_problem
from pdeml.solvers.problems.cfdbench_cases import cfdbench_split
from pdeml.suite import cfdbench_profile, rollout_spec

TINY = {"resolution": 8, "cells": 8, "final_time": 0.4}


def write_case(folder, case, u, v):
    folder.mkdir(parents=True)
    (folder / "case.json").write_text(json.dumps(case))
    np.save(folder / "u.npy", u)
    np.save(folder / "v.npy", v)


def test_converged_length_follows_cfdbench_rule():
    u = np.zeros((5, 2, 2))
    u[1], u[2], u[3], u[4] = 1.0, 1.5, 1.5005, 1.6  # diffs 1, 0.5, 5e-4 (< 1e-3), 0.1
    assert converged_length(u, 0 * u) == 3  # pairs (0,1), (1,2) kept; stop at (2,3)
    assert converged_length(u, 0 * u, None) == 5
    assert converged_length(u[:2], 0 * u[:2]) == 2


def test_export_import_round_trip(tmp_path):
    cyl = make_problem("cylinder", cases="cfdbench", **{**TINY, "resolution": 16, "cells": 12})
    base = export_cfdbench(cyl, tmp_path, "geo", numbers=[0, 16], stop_below=None,
                           progress=False)
    case = base / "geo" / "case0016"  # radius 0.06: resolved on 16 x 16, so mask.npy
    assert sorted(p.name for p in case.iterdir()) == ["case.json", "mask.npy", "pdeml.json",
                                                      "u.npy", "v.npy"]
    assert set(json.loads((case / "case.json").read_text())) == {
        "vel_in", "density", "viscosity", "radius", "x_min", "x_max", "y_min", "y_max"}
    stamp = (case / "u.npy").stat().st_mtime_ns
    export_cfdbench(cyl, tmp_path, "geo", numbers=[0, 16], progress=False)  # resumes: no redo
    assert (case / "u.npy").stat().st_mtime_ns == stamp
    path = import_cfdbench(base, tmp_path / "c.h5")
    with h5py.File(path) as f:
        assert f["u"].shape == (2, 4, 16, 16)
        np.testing.assert_allclose(f["time"][...], [0.1, 0.2, 0.3, 0.4])
        np.testing.assert_allclose(f["case_number"][...], [0, 16])
        np.testing.assert_allclose(f["radius"][...], [0.02, 0.06])
        solid = 1 - f["mask"][...][:, None]
        assert f["mask"][...].min() == 0 and (f["u"][...] * solid == 0).all()
        assert f["reynolds"][0] <= f["reynolds_cfdbench"][0]
        np.testing.assert_allclose(f["u"][1], np.load(case / "u.npy"))


def test_variable_lengths_are_honoured(tmp_path):
    rng = np.random.default_rng(0)
    for i, n in enumerate((6, 3, 7)):
        u = rng.random((n, 4, 4)) + np.arange(n)[:, None, None]  # never converges
        write_case(tmp_path / "cavity" / "bc" / f"case{i:04d}",
                   {"vel_top": 1.0 + i, "density": 1.0, "viscosity": 1e-3, "height": 0.01,
                    "width": 0.01}, u, 0 * u)
    path = import_cfdbench(tmp_path / "cavity", tmp_path / "c.h5")
    steps = StepDataset(path, ["u", "v"], ["mask"])
    assert len(steps) == 5 + 2 + 6
    i, t = steps.pair_index(5 + 1)
    assert (i, t) == (1, 1)  # the last pair of the 3-frame case, not its padding
    traj = TrajectoryDataset(path, ["u", "v"], ["mask"])
    assert traj.n_steps.tolist() == [5, 2, 6]
    nonauto = NonAutoDataset(path, ["u", "v"], ["vel_top", "mask"])
    assert len(nonauto) == 6 + 3 + 7 and nonauto.in_channels == 5
    x, y = nonauto[6 + 2]  # case 1, frame 2 at t = 0.3 s
    assert x[2].unique().tolist() == [pytest.approx(0.3)] and x[0].unique().tolist() == [2.0]
    torch.testing.assert_close(y, steps.series[1, 2])
    with pytest.raises(DatasetError, match="val split of .* holds no case"):
        import_cfdbench_splits(tmp_path / "cavity", tmp_path / "split")  # 3 cases: 2/0/1


def test_cfdbench_split_of_case_folders(tmp_path):
    u = np.ones((2, 2, 2))
    for sub, n in (("bc", 6), ("prop", 4)):
        for i in range(n):
            write_case(tmp_path / "cavity" / sub / f"case{i:04d}", {"vel_top": i,
                       "density": 1.0 + (sub == "prop") * i}, u, u)
    paths = import_cfdbench_splits(tmp_path / "cavity", tmp_path / "s")
    order = [("prop", i) for i in range(4)] + [("bc", i) for i in range(6)]  # prop first
    expected = cfdbench_split(order, seed=0)
    for split, path in paths.items():
        with h5py.File(path) as f:
            got = list(zip(f["subset"][...], f["case_number"][...], strict=True))
        assert got == [(("bc", "prop").index(s) * 1.0, i * 1.0) for s, i in expected[split]]


def test_cases_cfdbench_through_the_generator_and_the_profile(tmp_path):
    p = make_problem("cavity", cases="cfdbench", sweep="geo", **{**TINY, "final_time": 0.3})
    paths = generate_dataset(p, tmp_path / "d", {"train": 2, "test": 1}, seed=0)
    listed = p.cfdbench_splits()
    with h5py.File(paths["train"]) as f:
        np.testing.assert_allclose(f["height"][...], [c["height"] for _, _, c in
                                                       listed["train"][:2]])
        assert f["solved_height"][0] == pytest.approx(100 * f["height"][0])
        assert 1 <= f["n_frames"][0] <= f["u"].shape[1] == 3
    with pytest.raises(ValueError, match="has 3 cases"):
        p.sample_indexed("test", 5, np.random.default_rng(0))
    spec = rollout_spec("cavity", paths["train"], "cfdbench")
    assert spec["static"][0] == "mask" and spec["stable_state_diff"] == 1e-3

    def persistence(x):
        return torch.zeros_like(x[:, :2])

    prof = cfdbench_profile(persistence, paths["test"], spec, fields=("u",))
    # no solid in the cavity: the masked persistence model, scored on u, is CFDBench's identity
    assert prof["model"] == pytest.approx(prof["identity"], rel=1e-12)
    assert prof["model"]["nmse"] > 0 and prof["model"]["n_pairs"] >= 1


def test_profile_scores_the_fields_asked(tmp_path):
    """Default: u and v (CFDBench's FNO / U-Net / ResNet); ``fields=("u",)`` as its
    DeepONet-style models; the identity row stays on u."""
    p = make_problem("cavity", cases="cfdbench", sweep="geo", **{**TINY, "final_time": 0.3})
    paths = generate_dataset(p, tmp_path / "d", {"train": 1, "test": 1}, seed=0)
    spec = rollout_spec("cavity", paths["train"], "cfdbench")

    def still_u_wrong_v(x):  # u: persistence; v: an increment of 10 everywhere
        out = torch.zeros_like(x[:, :2])
        out[:, 1] = 10.0
        return out

    both = cfdbench_profile(still_u_wrong_v, paths["test"], spec)
    u_only = cfdbench_profile(still_u_wrong_v, paths["test"], spec, fields=("u",))
    assert both["fields"] == {"model": ["u", "v"], "identity": ["u"]}
    assert u_only["model"] == pytest.approx(u_only["identity"], rel=1e-12)  # no solid
    assert both["identity"] == u_only["identity"]
    assert both["model"]["mse"] > 10 * u_only["model"]["mse"]
    with pytest.raises(ValueError, match="not all among"):
        cfdbench_profile(still_u_wrong_v, paths["test"], spec, fields=("p",))


def test_converged_pairs_follow_each_cfdbench_loader(tmp_path):
    """CFDBench's cavity, tube and cylinder loaders stop a case at its first converged pair;
    its dam loader keeps every pair: pdeml's dam stand-in (step) neither cuts its pairs nor
    stops solving there, the others do."""
    from pdeml.solvers.problems.cfdbench_cases import stable_state_diff

    assert stable_state_diff("dam") is None
    assert {stable_state_diff(p) for p in ("cavity", "tube", "cylinder")} == {1e-3}
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    assert "stable_state_diff" not in rollout_spec("step", empty, "cfdbench")
    assert "stable_state_diff" not in rollout_spec("dam", empty, "cfdbench")
    for name in ("cavity", "channel", "cylinder"):
        assert rollout_spec(name, empty, "cfdbench")["stable_state_diff"] == 1e-3
    for name, expected in (("step", None), ("channel", 1e-3)):
        problem = make_problem(name, cases="cfdbench", sweep="bc",
                               **{**TINY, "final_time": 0.2})
        stops, run = [], problem.run

        def recording(solver, params, stop_below=None, run=run, stops=stops):
            stops.append(stop_below)
            return run(solver, params, stop_below=stop_below)

        problem.run = recording
        problem.sample_indexed("train", 0, np.random.default_rng(0))  # the generator's solve
        export_cfdbench(problem, tmp_path / name, "bc", numbers=[0], progress=False)
        assert stops == [expected, expected], name


def test_module_doc_cites_the_cylinder_mask_of_the_commit_it_read():
    """The released loader tests (x_min + j dx, y_min + i dy) against (0.5, 0.5); the
    (-x_min, -y_min) centre is a later commit's and is cited as such."""
    import pdeml.datasets.cfdbench as module

    doc = " ".join(module.__doc__.split())
    assert "against a fixed centre at ``(0.5, 0.5)``" in doc and "40f1648" in doc
    assert "tests cells against a centre at ``(-x_min, -y_min)``" not in doc
    assert "later commit (``8978073``" in doc
