"""``solver="auto"`` as a planner: time the candidate methods on the job's own systems.

Which linear solver is fastest moves with the data, not only with the problem and its size:
on 3-D Helmholtz at 32³ AMG beat recycled GCRO-DR by 1.9x on one draw of wavenumber fields
and lost on another; on 2-D Darcy sparse LU wins for piecewise-constant coefficients up to
about 200² and AMG from 160² for log-normal ones. A fixed table cannot follow that. FFTW's
planner can: before a job, it times the candidate algorithms on the job's own problem and
keeps the fastest. pdeml does the same for a generation job:

- the first ``trial`` samples of the split are drawn and assembled (the same draws the job's
  first shard solves; their planning solutions are discarded);
- each candidate method (:data:`CANDIDATES`: LU, AMG with its hierarchy reused along the
  sequence and AMG with a fresh one per system, GMRES, GCRO-DR; minus those the problem
  rules out: sparse LU above :data:`DIRECT_LIMIT` unknowns, 300 000 in 2-D and 30 000 in
  3-D, where its fill-in costs minutes and gigabytes per system) solves them as one sorted
  sequence with a fresh solver state, exactly as a shard would, at the
  job's tolerance; its score is the wall time per system (medians of ``repeats`` runs when
  the trial is cheap). The static choice runs first; a later candidate first solves one
  system alone, and one that costs :data:`PROBE_FACTOR` times the best per-system time so far
  even so (cold, without the recycling or reuse the rest of a sequence gets) is dropped
  there (``probed_only``), which keeps LU on 3-D systems from dominating the planning;
- the fastest is the job's method. The choice is recorded in the file (root attribute
  ``solver_plan``) and the timings in the cost sidecar. A resumed job reuses the plan of
  its partial run (from the job's manifest), so its file is bitwise identical to an
  uninterrupted run's; two *separate* runs can plan differently when their timings differ,
  which changes the solutions only within the tolerance (pin ``solver`` to reproduce one).

Drift inside a shard is left to the methods' own deterministic rules (AMG and ILU are rebuilt
when the iteration count grows 1.5x along the sorted sequence), because a time-based switch
mid-job would make the file depend on the machine's load.

Jobs smaller than :data:`MIN_SAMPLES` keep the static table (:meth:`auto_method` and the 3-D
``auto_choice``): planning them would cost more than it could save. The planning time is
part of the job's cost (recorded with the plan).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CANDIDATES = ("direct", "amg", "amg-fresh", "gmres", "gcrodr")
# "amg-fresh" is AMG with a new hierarchy for every system instead of one reused along the
# sorted sequence: on independent piecewise-constant Darcy draws at 256² the reused hierarchy
# goes stale (9 -> 49 CG iterations) and a fresh one per system was 1.6x faster
# (scripts/bench_surrogate_solver.py --problem darcy: 175 vs 276 ms per system).
# Unknowns above which sparse LU is not tried: its fill-in grows like n^1.5 in 2-D but n^2 in
# 3-D (measured: complex 3-D Helmholtz LU 1.1 s per system at 24³, where GCRO-DR took 0.18 s).
DIRECT_LIMIT = {2: 300_000, 3: 30_000}
MIN_SAMPLES = 64  # smaller jobs keep the static table
TRIAL = 6  # systems per candidate
CHEAP = 0.5  # seconds: a trial this cheap is repeated (median of 3)
PROBE_FACTOR = 4.0  # a candidate whose first (cold) system costs this many times the best
# per-system time so far is not given the whole trial


@dataclass
class Plan:
    """The method a job uses and what planning measured."""

    method: str
    seconds_per_system: dict[str, float] = field(default_factory=dict)
    static_choice: str = ""
    trial: int = 0
    planning_seconds: float = 0.0
    probed_only: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """JSON-ready, for the manifest and the cost sidecar."""
        return {"method": self.method, "seconds_per_system": self.seconds_per_system,
                "static_choice": self.static_choice, "trial": self.trial,
                "planning_seconds": self.planning_seconds, "probed_only": self.probed_only}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Plan:
        return cls(rec["method"], dict(rec.get("seconds_per_system", {})),
                   rec.get("static_choice", ""), int(rec.get("trial", 0)),
                   float(rec.get("planning_seconds", 0.0)), list(rec.get("probed_only", [])))


def candidates(problem: Any, n_unknowns: int) -> list[str]:
    """The methods worth timing for ``problem``'s systems of ``n_unknowns`` unknowns."""
    if getattr(problem, "fixed_operator", False):
        return ["direct"]  # one factorization per shard: nothing iterative competes
    ndim = len(getattr(problem, "shape", (0, 0)))
    return [m for m in CANDIDATES if m != "direct" or n_unknowns <= DIRECT_LIMIT[ndim]]


def plan(problem: Any, rngs: list[np.random.Generator], repeats: int = 3) -> Plan:
    """Time every candidate on the systems drawn by ``rngs``; the fastest per system wins."""
    t_start = time.perf_counter()
    inputs = [problem.draw_inputs(r) for r in rngs]
    systems = [problem.system(inp) for inp in inputs]
    As, bs = [a for a, _ in systems], [b for _, b in systems]
    feats = [problem.sort_features(inp) for inp in inputs]
    n_unknowns = As[0].shape[0]
    static = problem.static_method(n_unknowns)
    seconds: dict[str, float] = {}
    probed: list[str] = []
    # the static choice first: the others are measured against it
    for method in sorted(candidates(problem, n_unknowns), key=lambda m: m != static):
        best = min(seconds.values(), default=np.inf)
        if best < np.inf and len(As) > 1:
            t0 = time.perf_counter()
            problem.solve_systems(As[:1], bs[:1], feats[:1], method=method)
            first = time.perf_counter() - t0
            if first > PROBE_FACTOR * best:  # hopeless even allowing for a cold start
                seconds[method] = first
                probed.append(method)
                continue
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            problem.solve_systems(As, bs, feats, method=method)
            runs.append((time.perf_counter() - t0) / len(As))
            if runs[-1] * len(As) > CHEAP or runs[-1] > 2 * best:
                break  # a slow trial is measured well once; a clear loser needs no repeat
        seconds[method] = statistics.median(runs)
    method = min((m for m in seconds if m not in probed), key=seconds.get)
    return Plan(method, seconds, static, len(As), time.perf_counter() - t_start, probed)
