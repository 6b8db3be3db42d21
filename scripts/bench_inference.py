"""Inference speed of a surrogate (eager, torch.export .pt2, ONNX Runtime) against the solver,
and Krylov warm starts from the surrogate's prediction.

1. Darcy 64²: the demo pipeline (generate, train an FNO, export) unless ``--run`` names a
   trained Darcy run; Navier-Stokes 64²: an FNO of the same architecture mapping w0 -> w(T)
   (timing only: latency does not depend on the weights, so it is not trained here).
2. Per-sample latency at batch 1 and per-sample cost at batch 32 for each backend, the backends
   taking turns (machine noise hits all alike); medians over ``--repeats``. Against the
   numerical solver for one sample: Darcy sparse LU and pyamg; Navier-Stokes the pseudo-spectral
   solver to T = 10 (its default, the FNO paper's horizon).
3. Warm starts on Darcy test samples: GMRES(40) with ILU, cold (x0 = 0) vs warm (x0 = the
   surrogate's prediction), rtol 1e-8 on the true residual; medians of the iteration counts.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/bench_inference.py [--run RUN] [--out F]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse.linalg as spla
import torch

from pdeml.datasets.reader import H5Dataset
from pdeml.evaluate import load_surrogate
from pdeml.export import export_module, load_exported
from pdeml.operators import FNO
from pdeml.solvers.krylov import amg
from pdeml.solvers.problems import DarcyFlow, make_problem
from pdeml.solvers.warmstart import interior, warm_start_gain


def backends(module: torch.nn.Module, example: torch.Tensor, folder: Path) -> dict[str, Any]:
    """The eager module and its .pt2 and ONNX exports, loaded back."""
    out = {"eager": module.eval()}
    for fmt in ("pt2", "onnx"):
        path = folder / f"model.{fmt}"
        export_module(module, example, path)
        out[fmt] = load_exported(path)[0]
    return out


@torch.no_grad()
def latencies(models: dict[str, Any], shape: tuple[int, ...], repeats: int) -> dict[str, Any]:
    """Median seconds per sample at batch 1 and at batch 32, backends in turn."""
    result: dict[str, Any] = {}
    for batch in (1, 32):
        x = torch.randn(batch, *shape)
        times: dict[str, list[float]] = {k: [] for k in models}
        for model in models.values():
            model(x)  # warm-up
        for _ in range(repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model(x)
                times[name].append((time.perf_counter() - start) / batch)
        result[f"batch{batch}"] = {k: statistics.median(v) for k, v in times.items()}
    return result


def darcy_solver_seconds(n: int = 5) -> dict[str, float]:
    problem = DarcyFlow(resolution=64)
    lu, pyamg_t = [], []
    for i in range(n):
        A, b = problem.assemble(problem.draw_coefficient(np.random.default_rng(i)))
        start = time.perf_counter()
        spla.spsolve(A.tocsc(), b)
        lu.append(time.perf_counter() - start)
        start = time.perf_counter()
        M = amg(A)
        spla.cg(A, b, M=M, rtol=1e-8)
        pyamg_t.append(time.perf_counter() - start)
    return {"sparse_lu": statistics.median(lu), "amg_cg": statistics.median(pyamg_t)}


def ns_solver_seconds(n: int = 2) -> float:
    problem = make_problem("navier_stokes", resolution=64)
    times = []
    for i in range(n):
        start = time.perf_counter()
        problem.sample(np.random.default_rng(i))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def darcy_run(folder: Path, run: str | None) -> Path:
    if run:
        return Path(run)
    from pdeml.demo import run_demo

    run_demo(folder / "demo")
    return folder / "demo" / "run"


def warm_starts(run: Path, n: int) -> dict[str, Any]:
    surrogate, cfg = load_surrogate(run)
    surrogate.eval()
    test = H5Dataset(cfg["data"]["test"], ["a"], ["u"])
    problem = DarcyFlow(resolution=test.spatial_shape[0])
    systems, guesses, errors = [], [], []
    for i in range(min(n, len(test))):
        x, y = test[i]
        with torch.no_grad():
            pred = surrogate(x[None])[0, 0].numpy().astype(float)
        A, b = problem.assemble(x[0].numpy().astype(float))
        systems.append((A, b))
        guesses.append(interior(pred))
        errors.append(float(np.linalg.norm(pred - y[0].numpy()) / np.linalg.norm(y[0].numpy())))
    rows = warm_start_gain(systems, guesses, method="gmres", precond="ilu", rtol=1e-8)
    out: dict[str, Any] = {"n": len(rows),
                           "prediction_rel_l2_median": statistics.median(errors), "rows": rows}
    for key in ("cold", "warm", "smoothed"):
        for what in ("iterations", "seconds"):
            out[f"{key}_{what}_median"] = statistics.median(r[f"{key}_{what}"] for r in rows)
    for key in ("guess_residual", "smoothed_residual"):
        out[f"{key}_median"] = statistics.median(r[key] for r in rows)
    for key in ("warm", "smoothed"):
        out[f"{key}_iteration_reduction"] = (1 - out[f"{key}_iterations_median"]
                                             / out["cold_iterations_median"])
    return out


def latency_study(run: Path, folder: Path, repeats: int) -> dict[str, Any]:
    surrogate, _ = load_surrogate(run)
    darcy = latencies(backends(surrogate, torch.randn(2, 1, 64, 64), folder / "darcy"),
                      (1, 64, 64), repeats)
    ns_net = FNO(1, 1, n_modes=(12, 12), hidden_channels=32, n_layers=4)
    ns = latencies(backends(ns_net, torch.randn(2, 1, 64, 64), folder / "ns"),
                   (1, 64, 64), repeats)
    solver = {"darcy": darcy_solver_seconds(), "navier_stokes": ns_solver_seconds()}
    return {"darcy": darcy, "navier_stokes": ns, "solver_seconds": solver}


def print_latency(result: dict[str, Any]) -> None:
    solver = result["solver_seconds"]
    print(f"\n{'problem':14s} {'backend':7s} {'batch 1 ms':>10s} {'batch 32 ms/sample':>19s} "
          f"{'solver / surrogate (batch 1)':>29s}")
    for name, lat, ref in (("darcy 64²", result["darcy"], solver["darcy"]["sparse_lu"]),
                           ("NS 64² T=10", result["navier_stokes"], solver["navier_stokes"])):
        for backend in lat["batch1"]:
            b1, b32 = lat["batch1"][backend], lat["batch32"][backend]
            print(f"{name:14s} {backend:7s} {1e3 * b1:10.2f} {1e3 * b32:19.3f} "
                  f"{ref / b1:29.0f}x")
    print(f"solvers: darcy LU {1e3 * solver['darcy']['sparse_lu']:.1f} ms, AMG-CG "
          f"{1e3 * solver['darcy']['amg_cg']:.1f} ms; NS {solver['navier_stokes']:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="a trained Darcy 64x64 run (default: train the demo)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warm-samples", type=int, default=20)
    ap.add_argument("--out", default="bench_inference.json")
    ap.add_argument("--warm-only", action="store_true", help="only the warm-start study")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run = darcy_run(folder, args.run)
        result: dict[str, Any] = {"settings": vars(args), "torch_threads": 1}
        if not args.warm_only:
            result |= latency_study(run, folder, args.repeats)
        result["warm_start"] = warm = warm_starts(run, args.warm_samples)
    Path(args.out).write_text(json.dumps(result, indent=2))
    if not args.warm_only:
        print_latency(result)
    print(f"warm start (GMRES(40)+ILU, rtol 1e-8, {warm['n']} Darcy test samples, prediction "
          f"rel L2 {warm['prediction_rel_l2_median']:.3f}): median iterations cold "
          f"{warm['cold_iterations_median']:.0f}, raw prediction "
          f"{warm['warm_iterations_median']:.0f} ({warm['warm_iteration_reduction']:.0%} fewer; "
          f"its residual {warm['guess_residual_median']:.2f} |b|), smoothed prediction "
          f"{warm['smoothed_iterations_median']:.0f} ({warm['smoothed_iteration_reduction']:.0%}"
          f" fewer; residual {warm['smoothed_residual_median']:.3f} |b|); ms cold / raw / "
          f"smoothed {1e3 * warm['cold_seconds_median']:.1f} / "
          f"{1e3 * warm['warm_seconds_median']:.1f} / {1e3 * warm['smoothed_seconds_median']:.1f}")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
