"""HDF5 chunk filters: file size and read speed of the options for pdeml's per-sample chunks.

Writes the same solved samples (Darcy 64x64 piecewise-constant and log-normal coefficients,
Navier-Stokes 64x64 with 10 stored steps) once per filter option through
:func:`pdeml.datasets.schema.create_layout`, then reads every sample back through the lazy
reader path (:func:`pdeml.datasets.reader.read_selection`, one sample at a time, which also
verifies the checksum and finiteness) and in one bulk read. Each timing is the median of
``--repeat`` passes; the page cache is warm, so read times measure decompression and the
checks, not the disk.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/bench_hdf5_filters.py [--n 64] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import h5netcdf
import h5py
import numpy as np

from pdeml.datasets.reader import read_selection
from pdeml.datasets.schema import create_layout
from pdeml.datasets.writer import compute_samples
from pdeml.solvers.problems import make_problem

OPTIONS = {
    "none": {},
    "fletcher32": {"fletcher32": True},
    "shuffle+lzf": {"compression": "lzf", "shuffle": True, "fletcher32": True},
    "gzip1": {"compression": "gzip", "compression_opts": 1, "fletcher32": True},
    "shuffle+gzip1": {"compression": "gzip", "compression_opts": 1, "shuffle": True,
                      "fletcher32": True},
    "shuffle+gzip4": {"compression": "gzip", "compression_opts": 4, "shuffle": True,
                      "fletcher32": True},
}
DATASETS = {
    "darcy-pwc": ("darcy", {"resolution": 64, "solver": "direct"}),
    "darcy-lognormal": ("darcy", {"resolution": 64, "solver": "direct",
                                  "coefficient": "lognormal"}),
    "ns": ("navier_stokes", {"resolution": 64, "final_time": 2.0, "n_snapshots": 10,
                              "dt": 5e-3}),
}


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(problem, samples: dict[str, np.ndarray], path: Path, filters: dict,
            repeat: int) -> dict[str, float]:
    """Write once, then median times of a per-sample and a bulk read of the grid variables."""
    n = len(next(iter(samples.values())))
    t0 = time.perf_counter()
    with h5netcdf.File(path, "w") as f:
        out = create_layout(f, n, problem.coords(), problem.variables(), filters=filters)
        for name, v in out.items():
            v[...] = samples[name].astype(v.dtype)
    write_s = time.perf_counter() - t0
    grid_vars = [k for k, v in problem.variables().items() if v.dims]
    raw = sum(samples[k].astype(np.float32).nbytes for k in grid_vars)

    def per_sample() -> None:
        with h5py.File(path, "r") as f:
            for i in range(n):
                for k in grid_vars:
                    read_selection(f, k, i)

    def bulk() -> None:
        with h5py.File(path, "r") as f:
            for k in grid_vars:
                read_selection(f, k, slice(0, n))

    return {"size_mb": os.path.getsize(path) / 1e6, "ratio": raw / os.path.getsize(path),
            "write_s": write_s, "read_per_sample_s": _median_time(per_sample, repeat),
            "read_bulk_s": _median_time(bulk, repeat), "raw_mb": raw / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="samples per dataset")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default="bench_hdf5_filters.json")
    args = ap.parse_args()
    results: dict[str, dict] = {"load_start": os.getloadavg()[0], "n": args.n, "rows": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (name, options) in DATASETS.items():
            problem = make_problem(name, **options)
            samples = compute_samples(problem, 0, "train", range(args.n))
            for opt, filters in OPTIONS.items():
                row = measure(problem, samples, Path(tmp) / f"{label}-{opt}.h5", filters,
                              args.repeat)
                results["rows"][f"{label}/{opt}"] = row
    results["load_end"] = os.getloadavg()[0]
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"{'dataset/filters':28s} {'MB':>7s} {'ratio':>6s} {'write s':>8s} "
          f"{'read/sample s':>13s} {'bulk s':>7s}  (x none)")
    for key, r in results["rows"].items():
        base = results["rows"][key.split("/")[0] + "/none"]
        print(f"{key:28s} {r['size_mb']:7.2f} {r['ratio']:6.2f} {r['write_s']:8.3f} "
              f"{r['read_per_sample_s']:13.4f} {r['read_bulk_s']:7.4f}  "
              f"({r['read_per_sample_s'] / base['read_per_sample_s']:.2f}x, "
              f"{r['read_bulk_s'] / base['read_bulk_s']:.2f}x)")
    print(f"load average: {results['load_start']:.2f} -> {results['load_end']:.2f}")


if __name__ == "__main__":
    main()
