"""``solver="auto"`` plans large jobs by timing the candidates on the job's own systems."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np

from pdeml.datasets import generate_dataset, read_costs
from pdeml.datasets.writer import generate_split, sample_rng
from pdeml.solvers import planner
from pdeml.solvers.problems import DarcyFlow, Helmholtz3D, Poisson
from pdeml.solvers.problems.linear import METHOD_CODES

ROOT = Path(__file__).resolve().parents[2]


def test_the_plan_is_the_fastest_candidate_by_its_own_timings():
    problem = DarcyFlow(resolution=24, coefficient="lognormal")
    plan = planner.plan(problem, [sample_rng(0, "train", i) for i in range(4)])
    assert set(plan.seconds_per_system) == set(planner.CANDIDATES)
    trialled = {m: t for m, t in plan.seconds_per_system.items() if m not in plan.probed_only}
    assert plan.method == min(trialled, key=trialled.get)
    assert plan.static_choice == "direct" and plan.trial == 4
    assert all(v > 0 for v in plan.seconds_per_system.values())
    # a candidate dropped after its probe was hopeless against the best full trial
    for m in plan.probed_only:
        assert plan.seconds_per_system[m] > planner.PROBE_FACTOR * min(trialled.values())
    assert plan.planning_seconds >= sum(trialled.values()) * 4 * 0.99


def test_candidates_follow_what_the_problem_allows():
    assert planner.candidates(Poisson(resolution=16), 196) == ["direct"]  # one factorization
    big = planner.DIRECT_LIMIT[2] + 1
    assert "direct" not in planner.candidates(DarcyFlow(resolution=16), big)
    assert "direct" in planner.candidates(DarcyFlow(resolution=16), 100)
    cube = Helmholtz3D(resolution=8)
    assert "direct" in planner.candidates(cube, planner.DIRECT_LIMIT[3])
    assert "direct" not in planner.candidates(cube, planner.DIRECT_LIMIT[3] + 1)


def _methods(path):
    with h5py.File(path) as f:
        return set(np.asarray(f["solver_method"]).tolist()), f.attrs.get("solver_plan")


def test_a_large_auto_job_is_planned_and_records_its_plan(tmp_path, monkeypatch):
    monkeypatch.setattr(planner, "MIN_SAMPLES", 8)  # a job 'large' enough, quickly
    out = generate_dataset(DarcyFlow(resolution=16), tmp_path, {"train": 8, "test": 3},
                           seed=0, chunk=4, progress=False)
    codes, chosen = _methods(out["train"])
    plan = read_costs(out["train"])["solver_plan"]
    assert chosen == plan["method"] and codes == {METHOD_CODES[chosen]}
    assert set(plan["seconds_per_system"]) == set(planner.CANDIDATES)
    # the test split (too small to plan) shares the job's plan
    assert _methods(out["test"]) == ({METHOD_CODES[chosen]}, chosen)


def test_a_small_job_keeps_the_static_table(tmp_path):
    out = generate_split(DarcyFlow(resolution=16), tmp_path / "t.h5", 5, progress=False)
    codes, chosen = _methods(out)
    assert chosen is None and codes == {METHOD_CODES["direct"]}
    assert "solver_plan" not in read_costs(out)


def test_a_resumed_job_keeps_its_partial_runs_plan(tmp_path, monkeypatch):
    """Whatever timing would say now, the plan in the manifest finishes the job."""
    monkeypatch.setattr(planner, "MIN_SAMPLES", 8)
    killer = textwrap.dedent("""
        import os, signal, sys
        import numpy as np
        from pdeml.datasets import writer
        from pdeml.solvers import planner
        from pdeml.solvers.problems import DarcyFlow

        planner.MIN_SAMPLES = 8
        real_plan = planner.plan
        def forced(problem, rngs, repeats=3):  # pretend GMRES won the timing
            p = real_plan(problem, rngs, repeats=1)
            p.method = "gmres"
            return p
        planner.plan = forced
        real = np.savez
        calls = {"n": 0}
        def dying(fh, **arrays):
            calls["n"] += 1
            if calls["n"] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            real(fh, **arrays)
        writer.np.savez = dying
        writer.generate_split(DarcyFlow(resolution=16), sys.argv[1], 12, chunk=4,
                              progress=False)
    """)
    path = tmp_path / "train.h5"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", killer, str(path)], env=env)
    assert proc.returncode == -signal.SIGKILL
    manifest = json.loads((tmp_path / "train.h5.parts" / "manifest.json").read_text())
    assert manifest["solver_plan"]["method"] == "gmres"
    out = generate_split(DarcyFlow(resolution=16), path, 12, chunk=4, progress=False)
    assert _methods(out) == ({METHOD_CODES["gmres"]}, "gmres")


def test_a_pinned_solver_is_never_planned(tmp_path, monkeypatch):
    monkeypatch.setattr(planner, "MIN_SAMPLES", 1)
    out = generate_split(DarcyFlow(resolution=16, solver="amg"), tmp_path / "t.h5", 4,
                         progress=False)
    assert _methods(out) == ({METHOD_CODES["amg"]}, None)


def test_amg_fresh_builds_one_hierarchy_per_system(monkeypatch):
    """The planner's ``amg-fresh`` candidate: AMG without reusing the hierarchy along the
    sequence (stored as ``amg``), against ``amg``, which reuses it while it stays good."""
    from pdeml.solvers.problems import linear

    built = []
    real = linear.seeded_amg
    monkeypatch.setattr(linear, "seeded_amg", lambda A, **kw: built.append(1) or real(A, **kw))
    problem = DarcyFlow(resolution=24, solver="amg")
    rngs = [sample_rng(0, "train", i) for i in range(5)]
    inputs = [problem.draw_inputs(r) for r in rngs]
    systems = [problem.system(inp) for inp in inputs]
    args = ([A for A, _ in systems], [b for _, b in systems],
            [problem.sort_features(inp) for inp in inputs])
    xs, stats = problem.solve_systems(*args, method="amg-fresh")
    assert len(built) == 5
    assert {s["solver_method"] for s in stats} == {METHOD_CODES["amg"]}
    assert all(s["solver_residual"] <= problem.rtol for s in stats)
    built.clear()
    problem.solve_systems(*args, method="amg")
    assert 1 <= len(built) < 5  # reused along the sorted sequence
    assert "amg-fresh" in planner.candidates(problem, 24 * 24)
