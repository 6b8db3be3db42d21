"""What each generated sample cost: solver wall and CPU seconds, method and iterations.

Timings are never reproducible, and a finished HDF5 file is bitwise identical to an
uninterrupted run with the same seed, so costs live *beside* the file, in a sidecar
``<file>.cost.json`` (``train.h5.cost.json``), written atomically when the file is assembled.
While a job runs, each shard under ``<file>.parts/`` carries its own record (the npz entry
:data:`COST_KEY`), so a resumed job keeps the costs measured for the shards made before the
kill, and a Dask task returns its record with its arrays.

One record per sample::

    {"index": 3, "wall_seconds": 0.0123, "cpu_seconds": 0.0121, "timing": "per_sample",
     "method": "direct", "iterations": 0}

``wall_seconds`` (``time.perf_counter``) and ``cpu_seconds`` (``time.process_time`` of the
process that solved it, so BLAS threads add up and a busy Dask worker's own threads count
too) cover drawing the inputs and solving. ``timing`` is ``"per_sample"`` when each sample was
timed alone, ``"shard_mean"`` when a shard was solved as one sequence (the linear problems'
``sample_batch``, with Krylov recycling) and its time divided evenly among its samples.
``method`` is the solver actually used (``direct``, ``amg``, ``gmres``, ``gcrodr`` per sample
for the linear problems; the problem's declared solver otherwise, e.g. the spectral stepper).
``iterations`` counts Krylov iterations (0 for a direct solve), time steps for time steppers,
or is ``null`` where neither applies.

The sidecar adds the totals ``n_samples``, ``wall_seconds_total``, ``cpu_seconds_total``,
``median_wall_seconds``, ``methods`` (samples per method), ``machine`` (``cpu_model``,
``n_threads``: logical CPUs the solving process may use, ``platform``; the machine that solved
most samples, all of them in ``machines``), and ``shards`` (first index, size, machine, when
each was finished, totals). :func:`read_costs` reads it (``None`` for a file without one:
older versions, imports).
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import platform
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pdeml.checks import write_atomic
from pdeml.datasets.schema import DatasetError
from pdeml.solvers.problems.base import Problem
from pdeml.solvers.problems.linear import METHOD_CODES

COST_KEY = "__cost__"  # the shard npz entry holding the shard's cost record (JSON text)
SUFFIX = ".cost.json"
FORMAT, VERSION = "pdeml-costs", 1
_METHOD_NAMES = {code: name for name, code in METHOD_CODES.items()}


def sidecar_path(path: str | Path) -> Path:
    """The cost sidecar of a dataset file: ``<path>.cost.json``."""
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


@functools.lru_cache(maxsize=1)
def machine_info() -> dict[str, Any]:
    """CPU model, logical CPUs this process may use, and the platform (cached per process)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh
                          if line.startswith("model name")), model)
    except OSError:  # not Linux: platform's answer stands
        pass
    threads = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)
    return {"cpu_model": model, "n_threads": threads, "platform": platform.platform(terse=True)}


def timed(solve: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """``solve(*args)`` and the wall and CPU seconds it took."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = solve(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _declared(problem: Problem) -> tuple[str, int | None]:
    """The problem's declared solver and fixed step count (steppers with a fixed ``dt``)."""
    try:
        attrs = problem.attrs()
    except NotImplementedError:
        attrs = {}
    method = str(attrs.get("solver") or attrs.get("method") or type(problem).__name__)
    per, n = getattr(problem, "steps_per_snapshot", None), getattr(problem, "n_snapshots", None)
    steps = None
    if per is not None and n is not None:
        steps = int(per) * int(n) + int(getattr(problem, "warmup_steps", 0) or 0)
    return method, steps


def _solver_of(sample: dict[str, Any], declared: tuple[str, int | None]
               ) -> tuple[str, int | None]:
    """Method and iterations of one solved sample (its own statistics where it has them)."""
    method, iterations = declared
    if "solver_method" in sample:
        code = int(np.asarray(sample["solver_method"]))
        method = _METHOD_NAMES.get(code, f"code {code}")
    if "solver_iterations" in sample:
        iterations = int(np.asarray(sample["solver_iterations"]))
    elif "n_steps" in sample:  # adaptive time steppers report the steps they took
        iterations = int(np.asarray(sample["n_steps"]))
    return method, iterations


def sample_records(problem: Problem, samples: Sequence[dict[str, Any]], indices: Sequence[int],
                   seconds: Sequence[tuple[float, float]], timing: str) -> list[dict[str, Any]]:
    """One cost record per solved sample, from its ``(wall, cpu)`` seconds."""
    declared = _declared(problem)
    out = []
    for i, sample, (wall, cpu) in zip(indices, samples, seconds, strict=True):
        method, iterations = _solver_of(sample, declared)
        out.append({"index": int(i), "wall_seconds": round(wall, 6),
                    "cpu_seconds": round(cpu, 6), "timing": timing, "method": method,
                    "iterations": iterations})
    return out


def shard_record(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The cost record of samples solved together: this machine, now, and the records."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {"machine": machine_info(), "finished_at": now.isoformat(timespec="seconds"),
            "samples": records}


def pack_shard(records: list[dict[str, Any]]) -> np.ndarray:
    """A shard's cost record as an npz-storable array (JSON text; no pickle needed)."""
    return np.array(json.dumps(shard_record(records)))


def unpack_shard(npz: Any, start: int, stop: int) -> dict[str, Any]:
    """The cost record of one loaded shard (``timing: "unknown"`` for shards without one)."""
    if COST_KEY in getattr(npz, "files", npz):
        return json.loads(str(npz[COST_KEY]))
    unknown = {"wall_seconds": None, "cpu_seconds": None, "timing": "unknown", "method": None,
               "iterations": None}
    return {"machine": None, "finished_at": None,
            "samples": [{"index": i, **unknown} for i in range(start, stop)]}


def collect_shards(parts: Path, n: int, chunk: int) -> list[dict[str, Any]] | None:
    """Every shard's cost record, in index order; ``None`` unless they cover ``0 .. n - 1``."""
    shards = []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        try:
            with np.load(parts / f"shard_{start:09d}.npz") as npz:
                shards.append(unpack_shard(npz, start, stop))
        except FileNotFoundError:
            return None
    indices = [r["index"] for s in shards for r in s["samples"]]
    return shards if indices == list(range(n)) else None


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Totals of per-sample records (samples with unknown times count in ``n_samples`` only)."""
    walls = [r["wall_seconds"] for r in records if r["wall_seconds"] is not None]
    cpus = [r["cpu_seconds"] for r in records if r["cpu_seconds"] is not None]
    return {"n_samples": len(records), "wall_seconds_total": round(float(np.sum(walls)), 6),
            "cpu_seconds_total": round(float(np.sum(cpus)), 6),
            "median_wall_seconds": round(float(np.median(walls)), 6) if walls else None,
            "methods": dict(Counter(str(r["method"] or "unknown") for r in records))}


def _machines(shards: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int | None]]:
    """Distinct machines with their sample counts, most samples first; each shard's index."""
    keys = [json.dumps(s["machine"], sort_keys=True) if s["machine"] else None for s in shards]
    counts: Counter[str] = Counter()
    for key, s in zip(keys, shards, strict=True):
        if key is not None:
            counts[key] += len(s["samples"])
    order = [k for k, _ in counts.most_common()]
    machines = [{**json.loads(k), "n_samples": counts[k]} for k in order]
    return machines, [order.index(k) if k is not None else None for k in keys]


def read_log(path: Path) -> list[dict[str, Any]]:
    """Shard records from a JSON-lines log; a line cut short by a kill is skipped."""
    shards = []
    for line in path.read_text().splitlines():
        try:
            shards.append(json.loads(line))
        except ValueError:
            continue
    return shards


def write_sidecar(path: str | Path, shards: list[dict[str, Any]],
                  header: dict[str, Any]) -> Path:
    """Write ``<path>.cost.json`` atomically from the shards' records (see the module doc)."""
    path = Path(path)
    samples = [r for s in shards for r in s["samples"]]
    machines, which = _machines(shards)
    table = [{"first_index": s["samples"][0]["index"] if s["samples"] else None,
              "n_samples": len(s["samples"]), "machine": m, "finished_at": s["finished_at"],
              **{k: v for k, v in summarize(s["samples"]).items() if k.endswith("total")}}
             for s, m in zip(shards, which, strict=True)]
    doc = {"format": FORMAT, "version": VERSION, "file": path.name, **header,
           **summarize(samples),
           "machine": ({k: v for k, v in machines[0].items() if k != "n_samples"}
                       if machines else None),
           "machines": machines, "shards": table, "samples": samples}
    text = json.dumps(doc, indent=1).encode()
    return write_atomic(sidecar_path(path), lambda fh: fh.write(text))


def read_costs(path: str | Path) -> dict[str, Any] | None:
    """The cost sidecar of a dataset file (as written by :func:`write_sidecar`).

    Parameters
    ----------
    path
        The dataset file (``train.h5``); its sidecar is ``train.h5.cost.json``.

    Returns
    -------
    dict or None
        The sidecar's content; ``None`` when the file has no sidecar (written by an older
        pdeml, imported, or streamed without a tee).

    Raises
    ------
    DatasetError
        When the sidecar exists but is not a pdeml cost record.
    """
    side = sidecar_path(path)
    try:
        doc = json.loads(side.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise DatasetError(f"{side}: unreadable cost record ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DatasetError(f"{side} is not a pdeml cost record")
    return doc


class CostTotals:
    """Running totals of cost records (online streams keep no per-sample list in memory)."""

    def __init__(self) -> None:
        self.n_samples, self.wall, self.cpu = 0, 0.0, 0.0
        self.methods: Counter[str] = Counter()

    def add(self, record: dict[str, Any]) -> None:
        """Count one sample's record."""
        self.n_samples += 1
        self.wall += record.get("wall_seconds") or 0.0
        self.cpu += record.get("cpu_seconds") or 0.0
        self.methods[str(record.get("method") or "unknown")] += 1

    def as_dict(self) -> dict[str, Any]:
        """``n_samples``, ``wall_seconds_total``, ``cpu_seconds_total``, ``methods``."""
        return {"n_samples": self.n_samples, "wall_seconds_total": round(self.wall, 6),
                "cpu_seconds_total": round(self.cpu, 6), "methods": dict(self.methods)}


def merge_totals(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Sum :meth:`CostTotals.as_dict` results (e.g. of several DDP ranks)."""
    out = CostTotals()
    for p in parts:
        out.n_samples += p["n_samples"]
        out.wall += p["wall_seconds_total"]
        out.cpu += p["cpu_seconds_total"]
        out.methods.update(p["methods"])
    return out.as_dict()


class StreamCosts:
    """The costs of a sample stream, as its records reach the trainer process.

    ``generated`` counts every sample delivered into the buffer (what generation spent for
    this run); ``consumed`` the distinct samples the trainer has drawn since (a reservoir's
    repeated draws count once). A record waits in a table keyed by stream index from its
    delivery to its first draw, so the table holds at most the buffer's samples. Samples
    restored from a checkpoint's buffer were paid for by the earlier run: they are not
    counted again.
    """

    def __init__(self) -> None:
        self.generated, self.consumed = CostTotals(), CostTotals()
        self._waiting: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def delivered(self, record: dict[str, Any]) -> None:
        """A sample entered the buffer."""
        with self._lock:
            self.generated.add(record)
            self._waiting[int(record["index"])] = record

    def drawn(self, indices: Sequence[int]) -> None:
        """The trainer drew these stream indices."""
        with self._lock:
            for i in indices:
                record = self._waiting.pop(int(i), None)
                if record is not None:
                    self.consumed.add(record)

    def as_dict(self) -> dict[str, Any]:
        """``{"generated": totals, "consumed": totals}``."""
        with self._lock:
            return {"generated": self.generated.as_dict(), "consumed": self.consumed.as_dict()}
