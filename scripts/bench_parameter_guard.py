"""Parameter guard for label-free refinement: does the input window tell right from wrong?

Solves small 2-D Navier-Stokes datasets with :class:`NavierStokes2D` (broadband initial
vorticity, windows after a transient) in several settings: FNO forcing with nu = 1e-3 on 64^2
and 128^2 and nu = 1e-4 on 128^2 (resolved there over these windows: no spectral-tail warning),
Kolmogorov forcing with drag, snapshot spacings 0.1, 0.2 and 0.5. Every window of ``--window``
consecutive snapshots (stored as float32, as a pdeml file stores them) is checked by
:func:`pdeml.trainers.parameter_guard.check_parameters` with the right parameters and with wrong
ones (viscosity x3 and /3, forcing amplitude +-20%, snapshot spacing +-20%); the statistic is the
ratio of the residual with the given parameters to the residual with the fitted ones. Reports
min/max over windows per setting, whether every right window is accepted and every wrong one
refused at :data:`~pdeml.trainers.parameter_guard.THRESHOLD`, and whether the named suspect is
the wrong parameter; the same on the pooled batch of each setting's windows. Two informational
rows (not used for the threshold) show the limits: a wrong forcing *shape* (phase-shifted) and
snapshots too far apart. Writes ``bench_parameter_guard.json`` and ``.md`` under ``--out``.

    OPENBLAS_NUM_THREADS=1 python scripts/bench_parameter_guard.py   # ~1 min on one core
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pdeml.solvers.problems.navier_stokes import NavierStokes2D  # noqa: E402
from pdeml.trainers.parameter_guard import THRESHOLD, check_parameters  # noqa: E402
from pdeml.trainers.residuals import VorticityResidual  # noqa: E402

FNO = {"forcing": "fno", "n_terms": 0}
KOLMOGOROV = {"forcing": "kolmogorov", "forcing_amplitude": 0.1, "drag": 0.1, "n_terms": 0}
# name: (problem options, snapshot spacing, start time, informational only)
SETTINGS: dict[str, tuple[dict[str, Any], float, float, bool]] = {
    "fno nu=1e-3 64^2 dt=0.1": ({**FNO, "resolution": 64, "viscosity": 1e-3, "dt": 1e-2}, 0.1, 5.0,
                                False),
    "fno nu=1e-3 64^2 dt=0.2": ({**FNO, "resolution": 64, "viscosity": 1e-3, "dt": 1e-2}, 0.2, 5.0,
                                False),
    "fno nu=1e-3 64^2 dt=0.5": ({**FNO, "resolution": 64, "viscosity": 1e-3, "dt": 1e-2}, 0.5, 5.0,
                                False),
    "fno nu=1e-3 64^2 dt=0.2 t>=30": ({**FNO, "resolution": 64, "viscosity": 1e-3, "dt": 1e-2},
                                      0.2, 30.0, False),
    "fno nu=1e-3 128^2 dt=0.2": ({**FNO, "resolution": 128, "viscosity": 1e-3, "dt": 5e-3}, 0.2,
                                 5.0, False),
    "fno nu=1e-4 128^2 dt=0.1": ({**FNO, "resolution": 128, "viscosity": 1e-4, "dt": 5e-3}, 0.1,
                                 5.0, False),
    "fno nu=1e-4 128^2 dt=0.5": ({**FNO, "resolution": 128, "viscosity": 1e-4, "dt": 5e-3}, 0.5,
                                 5.0, False),
    "kolmogorov nu=1e-3 drag=0.1 64^2 dt=0.2": (
        {**KOLMOGOROV, "resolution": 64, "viscosity": 1e-3, "dt": 5e-3}, 0.2, 5.0, False),
    "kolmogorov nu=1e-3 drag=0.1 64^2 dt=0.5": (
        {**KOLMOGOROV, "resolution": 64, "viscosity": 1e-3, "dt": 5e-3}, 0.5, 5.0, False),
    "(limit) fno nu=1e-3 64^2 dt=2": ({**FNO, "resolution": 64, "viscosity": 1e-3, "dt": 1e-2},
                                      2.0, 30.0, True),
}
# name: (viscosity factor, forcing factor, spacing factor, the parameter the guard should name)
WRONG = {
    "nu x3": (3.0, 1.0, 1.0, "viscosity"), "nu /3": (1 / 3, 1.0, 1.0, "viscosity"),
    "forcing +20%": (1.0, 1.2, 1.0, "forcing_scale"),
    "forcing -20%": (1.0, 0.8, 1.0, "forcing_scale"),
    "dt +20%": (1.0, 1.0, 1.2, "dt"), "dt -20%": (1.0, 1.0, 0.8, "dt"),
}
SHAPE = "forcing shape (info)"  # the file's forcing shifted by 1/16 of the domain in x and y


def solve(options: dict[str, Any], spacing: float, start: float, n_snapshots: int,
          seed: int) -> tuple[np.ndarray, NavierStokes2D, bool]:
    """Snapshots ``(n_snapshots, n, n)`` from ``start``, ``spacing`` apart; under-resolved?"""
    prob = NavierStokes2D(**options, start_time=start, final_time=start + spacing * n_snapshots,
                          n_snapshots=n_snapshots)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        w = prob.solve(prob.draw_initial(np.random.default_rng(seed)))
    return w, prob, any("under-resolved" in str(c.message) for c in caught)


def residuals(prob: NavierStokes2D, spacing: float) -> dict[str, tuple[VorticityResidual, str]]:
    """The right residual, the wrong ones (with the parameter to name) and the wrong shape."""
    n = prob.resolution
    f = torch.from_numpy(prob.forcing_field(n))
    nu, drag = prob.viscosity, prob.drag
    out = {"right": (VorticityResidual(nu, spacing, f, drag), "")}
    for name, (a, b, c, param) in WRONG.items():
        out[name] = (VorticityResidual(nu * a, spacing * c, b * f, drag), param)
    shifted = torch.roll(f, (n // 16, n // 16), (0, 1))
    out[SHAPE] = (VorticityResidual(nu, spacing, shifted, drag), "")
    return out


def run_setting(name: str, args: argparse.Namespace) -> dict[str, Any]:
    options, spacing, start, info = SETTINGS[name]
    t0 = time.perf_counter()
    per_traj = args.windows * args.window
    windows, unresolved = [], False
    for seed in range(args.trajectories):
        w, prob, bad = solve(options, spacing, start, per_traj, seed)
        unresolved |= bad
        w32 = torch.from_numpy(w).float()  # a pdeml file stores float32
        windows += [w32[i * args.window:(i + 1) * args.window] for i in range(args.windows)]
    solve_s = time.perf_counter() - t0
    batch = torch.stack(windows)
    cases: dict[str, Any] = {}
    for case, (res, param) in residuals(prob, spacing).items():
        reps = [check_parameters(res, x[None]) for x in windows]
        pooled = check_parameters(res, batch)
        cases[case] = {
            "expected_suspect": param or None,
            "ratio": [r["ratio"] for r in reps], "pooled_ratio": pooled["ratio"],
            "refused": [not r["ok"] for r in reps], "pooled_refused": not pooled["ok"],
            "suspects": [r["suspects"] for r in reps], "pooled_suspects": pooled["suspects"],
            "relative_residual_given": [r["relative_residual_given"] for r in reps],
            "relative_residual_fitted": [r["relative_residual_fitted"] for r in reps],
            "conclusive": [r["conclusive"] for r in reps],
            "pooled_conclusive": pooled["conclusive"],
            "detectable": [r["detectable"] for r in reps],
            "fitted": [r["fitted"] for r in reps], "pooled_fitted": pooled["fitted"],
            "message": pooled["message"],
        }
    right = cases["right"]
    truth = {"dt": spacing, "viscosity": options["viscosity"], "forcing_scale": 1.0}
    fit_error = max(abs(f[k] / truth[k] - 1) for f in right["fitted"] for k in truth
                    if f[k] is not None)
    return {"options": options, "spacing": spacing, "start_time": start, "informational": info,
            "windows": len(windows), "unresolved_warning": unresolved,
            "solve_seconds": solve_s, "seconds": time.perf_counter() - t0,
            "fit_max_relative_error": fit_error, "cases": cases}


def outcomes(row: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per window and one for the pooled batch: conclusive?, right ratio and verdict,
    and per wrong setting its ratio, whether refused and whether its parameter is named."""
    c = row["cases"]
    out = []
    for i in [*range(row["windows"]), None]:
        def get(case: str, key: str, i: int | None = i) -> Any:
            return c[case][f"pooled_{key}"] if i is None else c[case][key][i]
        out.append({
            "conclusive": get("right", "conclusive"), "right_ratio": get("right", "ratio"),
            "right_accepted": not get("right", "refused"),
            "wrong": {k: {"ratio": get(k, "ratio"), "refused": get(k, "refused"),
                          "named": get(k, "suspects")[:1] == [c[k]["expected_suspect"]],
                          "alone": get(k, "suspects") == [c[k]["expected_suspect"]]}
                      for k in WRONG}})
    return out


def verdicts(row: dict[str, Any]) -> dict[str, Any]:
    """Right accepted everywhere; wrong refused and named on every conclusive window."""
    res = outcomes(row)
    sure = [o for o in res if o["conclusive"]]
    wrong_sure = [w for o in sure for w in o["wrong"].values()]
    wrong_loose = [w for o in res if not o["conclusive"] for w in o["wrong"].values()]
    return {
        "right_accepted": all(o["right_accepted"] for o in res),
        "wrong_refused": all(w["refused"] for w in wrong_sure),
        "suspect_named": all(w["named"] for w in wrong_sure),
        "suspect_alone": all(w["alone"] for w in wrong_sure),
        "conclusive": f"{len(sure)}/{len(res)}",
        "missed_where_inconclusive": f"{sum(not w['refused'] for w in wrong_loose)}/"
                                     f"{len(wrong_loose)}",
    }


def summary(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    counted = {k: r for k, r in rows.items() if not r["informational"]}
    res = [o for r in counted.values() for o in outcomes(r)]
    sure = [o for o in res if o["conclusive"]]
    ratios = {k: [o["wrong"][k]["ratio"] for o in sure] for k in WRONG}
    right = [o["right_ratio"] for o in res]
    every = [w for o in res for w in o["wrong"].values()]
    right_max = max(right)
    wrong_min = min(min(x) for x in ratios.values())
    v = [verdicts(r) for r in counted.values()]
    return {
        "threshold": THRESHOLD,
        "right_min_max": [min(right), right_max],
        "wrong_min_max_conclusive": {k: [min(x), max(x)] for k, x in ratios.items()},
        "wrong_min_all": min(o["wrong"][k]["ratio"] for o in res for k in WRONG),
        "right_max": right_max, "wrong_min": wrong_min,
        "margin_right": THRESHOLD / right_max, "margin_wrong": wrong_min / THRESHOLD,
        "separating_threshold_geometric_mean": math.sqrt(right_max * wrong_min),
        "conclusive_windows": f"{len(sure)}/{len(res)}",
        "wrong_refused_all_windows": f"{sum(w['refused'] for w in every)}/{len(every)}",
        **{k: all(x[k] for x in v) for k in ("right_accepted", "wrong_refused",
                                             "suspect_named", "suspect_alone")},
        "fit_max_relative_error": max(r["fit_max_relative_error"] for r in counted.values()),
        "any_unresolved_warning": any(r["unresolved_warning"] for r in counted.values()),
    }


def table(doc: dict[str, Any]) -> str:
    cases = ["right", *WRONG, SHAPE]
    out = ["| setting | rel. residual (right, fitted) | conclusive | "
           + " | ".join(f"{c} min-max" for c in cases)
           + " | accepted / refused / named | missed where inconclusive |",
           "|" + "---|" * (5 + len(cases))]
    for name, r in doc["rows"].items():
        cells = []
        for c in cases:
            x = [*r["cases"][c]["ratio"], r["cases"][c]["pooled_ratio"]]
            cells.append(f"{min(x):.3g}-{max(x):.3g}")
        rel = r["cases"]["right"]["relative_residual_fitted"]
        v = verdicts(r)
        some = not v["conclusive"].startswith("0/")  # else refused/named say nothing
        flags = "/".join(("yes" if v[k] else "NO") if some or k == "right_accepted" else "n/a"
                         for k in ("right_accepted", "wrong_refused", "suspect_named"))
        out.append(f"| {name}{' (warned)' if r['unresolved_warning'] else ''} "
                   f"| {min(rel):.2g}-{max(rel):.2g} | {v['conclusive']} | " + " | ".join(cells)
                   + f" | {flags} | {v['missed_where_inconclusive']} |")
    s = doc["summary"]
    out.append("")
    out.append(f"Threshold {s['threshold']:g}: right parameters at most {s['right_max']:.3g} "
               f"({s['margin_right']:.2g}x margin), wrong ones on conclusive windows at least "
               f"{s['wrong_min']:.3g} ({s['margin_wrong']:.2g}x margin; "
               f"{s['conclusive_windows']} windows conclusive); right accepted: "
               f"{s['right_accepted']}, wrong refused: {s['wrong_refused']} (on all windows, "
               f"conclusive or not: {s['wrong_refused_all_windows']}; smallest ratio "
               f"{s['wrong_min_all']:.3g}), suspect named first: "
               f"{s['suspect_named']} (alone: {s['suspect_alone']}); fit error with the right "
               f"parameters at most {100 * s['fit_max_relative_error']:.2g}%. Ratios over "
               f"single-trajectory windows and each setting's pooled batch; '(limit)' rows are "
               f"not counted; a window is conclusive when a 15% error in any parameter would be "
               f"refused on it.")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    ap.add_argument("--trajectories", type=int, default=2, help="trajectories per setting")
    ap.add_argument("--windows", type=int, default=2, help="windows per trajectory")
    ap.add_argument("--window", type=int, default=10, help="snapshots per window")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("runs/bench/parameter_guard"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for i, name in enumerate(args.settings, 1):
        rows[name] = run_setting(name, args)
        r = rows[name]
        print(f"[{i}/{len(args.settings)}] {name}: {r['seconds']:.1f} s, right <= "
              f"{max(r['cases']['right']['ratio']):.3g}, wrong >= "
              f"{min(min(r['cases'][k]['ratio']) for k in WRONG):.3g}", flush=True)
    doc = {"settings": {"trajectories": args.trajectories, "windows": args.windows,
                        "window": args.window, "threads": args.threads,
                        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS")},
           "rows": rows}
    doc["summary"] = summary(rows) if any(not r["informational"] for r in rows.values()) else {}
    (args.out / "bench_parameter_guard.json").write_text(json.dumps(doc, indent=2))
    if doc["summary"]:
        text = table(doc)
        (args.out / "bench_parameter_guard.md").write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
