"""Atomic, resumable dataset generation.

A job writes its samples in shards of ``chunk`` samples under ``<file>.parts/``; each shard is
written to a temporary name and renamed, so a kill leaves only whole shards. Re-running the
same job skips the shards that exist and finishes the rest. Sample ``i`` of a split is drawn
from ``SeedSequence(seed, spawn_key=(split_code, i))``: it depends on nothing else, so the
finished file is bitwise identical to an uninterrupted run. The final HDF5 file is assembled
under a temporary name and renamed into place: it is never seen half-written.

Problems with a ``sample_batch(rngs)`` method (the linear problems) get a whole shard at once,
with the shard's per-sample generators: they sort the shard's systems and solve them as one
sequence (Krylov recycling) with a fresh solver per shard, so a shard is still a deterministic
unit. Recycling therefore works within a shard; a larger ``chunk`` gives longer sequences.

With ``scheduler="local"`` (a ``distributed.LocalCluster``), a scheduler address, or a
``distributed.Client``, each missing shard is one Dask task; the task returns the shard's
arrays and this process writes them, so workers need no shared file system. Shards are
contiguous index slices and their content does not depend on which worker computed them or
in which order they finish: the file is bitwise identical to a serial run, and a job killed
under Dask resumes serially or under Dask alike.

Costs (:mod:`pdeml.datasets.costs`): timings are not reproducible, so they stay out of the
HDF5 file. Each shard keeps the wall and CPU seconds, method and iterations of its samples
(the npz entry ``__cost__``; a Dask task returns it with the arrays), and the finished file
gets a sidecar ``<file>.cost.json`` with one record per sample and the totals, written
atomically after the file's rename (a re-run after a kill in between writes it). Shards kept
from before a kill keep the costs measured then. A failed job leaves no sidecar.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5netcdf
import numpy as np
from tqdm.auto import tqdm

from pdeml.checks import (
    InputError,
    check_int,
    check_memory,
    first_nonfinite,
    format_bytes,
    missing_dirs,
    remove_made,
)
from pdeml.datasets import costs
from pdeml.datasets.schema import DatasetError, create_layout, provenance, read_attrs
from pdeml.solvers.problems.base import Problem

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def split_code(split: str) -> int:
    """A stable integer per split name, used in the per-sample seed."""
    return SPLIT_CODES.get(split, zlib.crc32(split.encode()) + 3)


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator that draws sample ``index`` of ``split``: independent of every other."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(split_code(split), index)))


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _same_job(path: Path, attrs: dict[str, Any]) -> bool:
    """Whether the finished file at ``path`` was made with exactly these settings."""
    try:
        existing = read_attrs(path)
    except DatasetError:
        return False
    return all(existing.get(k) == v for k, v in attrs.items())


def _check_manifest(parts: Path, manifest: dict[str, Any]) -> None:
    mfile = parts / "manifest.json"
    if mfile.exists():
        old = json.loads(mfile.read_text())
        if old != manifest:
            raise DatasetError(
                f"{parts} holds a partial job with other settings; delete it or pass --overwrite"
            )
    else:
        parts.mkdir(parents=True, exist_ok=True)
        tmp = mfile.with_name("manifest.json.tmp")
        tmp.write_text(json.dumps(manifest, sort_keys=True))
        os.replace(tmp, mfile)
    for stale in parts.glob("*.tmp"):
        stale.unlink()


def _solve(problem: Problem, split: str, indices: list[int], rngs: list[np.random.Generator],
           params: Sequence[dict[str, float] | None] | None = None,
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Solve the samples and time them: one at a time, or a whole batch as one sequence.

    ``params`` (one entry per index, ``None`` to draw) fixes per-sample PDE parameters
    (:meth:`~pdeml.solvers.problems.base.Problem.sample_with`); a batch problem takes them
    with its shard (``sample_batch(rngs, params)``) where it has a parameter space."""
    batch = getattr(problem, "sample_batch", None)
    indexed = getattr(problem, "sample_indexed", None)  # listed cases (CFDBench's) by index
    params = [None] * len(indices) if params is None else list(params)
    if len(params) != len(indices):
        raise ValueError(f"{len(params)} parameter sets for {len(indices)} samples")
    given = any(p is not None for p in params)
    if given and (indexed is not None or (batch is not None and not problem.parameter_space())):
        raise ValueError(f"{problem.name}: its samples are solved as a sequence or a listed "
                         "case; per-sample parameters cannot be set")
    if indexed is None and batch is not None:
        # One sorted, recycled sequence: the solver reports no per-system times, so the
        # batch's time is shared evenly (and the records say so).
        samples, wall, cpu = costs.timed(batch, rngs, *([params] if given else []))
        share = [(wall / len(rngs), cpu / len(rngs))] * len(rngs)
        return samples, costs.sample_records(problem, samples, indices, share, "shard_mean")
    samples, seconds = [], []
    for i, r, p in zip(indices, rngs, params, strict=True):
        sample, wall, cpu = (costs.timed(indexed, split, i, r) if indexed is not None
                             else costs.timed(problem.sample_with, r, p))  # p None: drawn
        samples.append(sample)
        seconds.append((wall, cpu))
    return samples, costs.sample_records(problem, samples, indices, seconds, "per_sample")


def compute_samples_costed(problem: Problem, seed: int, split: str, indices: Sequence[int],
                           params: Sequence[dict[str, float] | None] | None = None,
                           ) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """:func:`compute_samples` and one cost record per sample (:mod:`pdeml.datasets.costs`).

    ``params``: per-sample PDE parameters chosen by a sampler, one entry per index (``None``
    entries draw as usual); the rest of each sample still comes from its own generator."""
    indices = [int(i) for i in indices]
    rngs = [sample_rng(seed, split, i) for i in indices]
    samples, records = _solve(problem, split, indices, rngs, params)
    stacked = {k: np.stack([np.asarray(s[k]) for s in samples]) for k in samples[0]}
    for name, values in stacked.items():
        bad = first_nonfinite(values)
        if bad is not None:
            raise DatasetError(
                f"{problem.name or type(problem).__name__}: sample {indices[bad]} of split "
                f"'{split}' (seed {seed}) has "
                f"NaN or Inf in '{name}' (the solve diverged); nothing of it was written. "
                f"Change the problem options or the seed")
    return stacked, records


def compute_samples(problem: Problem, seed: int, split: str, indices: Sequence[int],
                    params: Sequence[dict[str, float] | None] | None = None,
                    ) -> dict[str, np.ndarray]:
    """Samples ``indices`` of a split, stacked per variable (also the unit of online streaming).

    Raises
    ------
    DatasetError
        When a sample holds a NaN or an infinity (a diverged solve): it is never written or
        streamed. The message names the problem, split, sample index and variable, so the
        sample can be reproduced alone with :func:`sample_rng`.

    ``params`` fixes per-sample PDE parameters (see :func:`compute_samples_costed`).
    """
    return compute_samples_costed(problem, seed, split, indices, params)[0]


def compute_shard(problem: Problem, seed: int, split: str, start: int, stop: int
                  ) -> dict[str, np.ndarray]:
    """Samples ``start .. stop - 1`` of a split, stacked per variable (one shard's arrays).

    The shard's cost record travels with its arrays as the entry ``costs.COST_KEY``: it is
    saved in the shard file and never enters the HDF5 file.
    """
    arrays, records = compute_samples_costed(problem, seed, split, range(start, stop))
    return {**arrays, costs.COST_KEY: costs.pack_shard(records)}


def open_client(scheduler: Any, n_workers: int | None) -> tuple[Any, Any]:
    """A Dask client for ``"local"``, an address or a ready Client; (client, owned cluster).

    Shared by dataset generation and online streaming. ``"local"`` starts a
    ``distributed.LocalCluster`` of ``n_workers`` single-threaded processes that the caller
    owns (and closes), its workers forked from a preloaded server
    (:func:`~pdeml.datasets.supervisor.prefork_workers`); otherwise the returned cluster is
    ``None``.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise DatasetError("parallel generation needs dask: pip install 'dask[distributed]'"
                           ) from err
    if isinstance(scheduler, Client):
        return scheduler, None
    if scheduler == "local":
        from pdeml.datasets.supervisor import prefork_workers

        prefork_workers()  # worker (re)starts fork a preloaded server: no torch import each
        # One thread per worker process: BLAS threads would only compete with the processes.
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        return Client(cluster), cluster
    if isinstance(scheduler, str):
        return Client(scheduler), None
    raise DatasetError(f"scheduler must be None, 'local', an address or a Client: {scheduler!r}")


def sample_bytes(problem: Problem) -> int:
    """Bytes of one stored sample (all variables), from the declared dimensions."""
    coords = problem.coords()
    total = 0
    for var in problem.variables().values():
        size = int(np.prod([len(coords[d]) for d in var.dims], dtype=np.float64))
        total += size * np.dtype(var.dtype or ("f4" if var.dims else "f8")).itemsize
    return total


def check_job(problem: Problem, splits: dict[str, int], seed: Any, chunk: Any,
              scheduler: Any = None, n_workers: Any = None) -> None:
    """Validate a generation job before anything is created (one-line errors).

    Checks the sizes, the seed, the chunk and the worker count, and refuses a job whose
    shards cannot fit in memory: a shard holds ``chunk`` samples twice (the solved samples
    and their stacked copy), and the solver works on at least one sample of float64 fields
    besides, so ``(2 * chunk + 2) * sample_bytes`` is a lower bound of the memory a worker
    needs.
    """
    try:
        for split, n in splits.items():
            check_int(n, f"the number of {split} samples", 1)
        check_int(seed, "seed", 0)
        check_int(chunk, "chunk", 1)
        if n_workers is not None:
            check_int(n_workers, "--n-workers", 1)
    except InputError as err:
        raise DatasetError(str(err)) from None
    if scheduler is not None and not isinstance(scheduler, str) and not hasattr(
            scheduler, "submit"):
        raise DatasetError(f"scheduler must be None, 'local', an address or a Client: "
                           f"{scheduler!r}")
    per_sample = sample_bytes(problem)
    shard = min(int(chunk), max(splits.values()))
    check_memory((2 * shard + 2) * per_sample,
                 f"generating {problem.name} ({format_bytes(per_sample)} per sample, "
                 f"{shard} per shard)")


def _solve_shards(
    problem: Problem, parts: Path, n: int, seed: int, split: str, chunk: int, progress: bool,
    scheduler: Any = None, n_workers: int | None = None,
) -> None:
    starts = list(range(0, n, chunk))
    todo = [s for s in starts if not (parts / f"shard_{s:09d}.npz").exists()]
    done = n - sum(min(chunk, n - s) for s in todo)
    bar = tqdm(total=n, initial=done, desc=f"{problem.name}/{split}", unit="sample",
               disable=not progress, dynamic_ncols=True, mininterval=1.0)
    if scheduler is None:
        for start in todo:
            stop = min(start + chunk, n)
            _atomic_savez(parts / f"shard_{start:09d}.npz",
                          compute_shard(problem, seed, split, start, stop))
            bar.update(stop - start)
    elif todo:
        _solve_shards_dask(problem, parts, n, seed, split, chunk, todo, bar,
                           open_client(scheduler, n_workers))
    bar.close()


def _solve_shards_dask(problem: Problem, parts: Path, n: int, seed: int, split: str, chunk: int,
                       todo: list[int], bar: Any, opened: tuple[Any, Any]) -> None:
    from distributed import as_completed

    client, cluster = opened
    try:
        futures = {client.submit(compute_shard, problem, seed, split, s, min(s + chunk, n),
                                 pure=False): s for s in todo}
        for fut in as_completed(futures):
            start = futures[fut]
            _atomic_savez(parts / f"shard_{start:09d}.npz", fut.result())
            bar.update(min(start + chunk, n) - start)
            fut.release()
    finally:
        if cluster is not None:
            client.close()
            cluster.close()


def _assemble(problem: Problem, parts: Path, path: Path, n: int, chunk: int,
              attrs: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with h5netcdf.File(tmp, "w") as f:
        out = create_layout(f, n, problem.coords(), problem.variables(),
                            problem.coord_units(), problem.boundary_conditions())
        for start in range(0, n, chunk):
            with np.load(parts / f"shard_{start:09d}.npz") as shard:
                for name, v in out.items():
                    v[start : start + len(shard[name])] = shard[name].astype(v.dtype)
        f.attrs.update(attrs)
    os.replace(tmp, path)


def _finish(parts: Path, path: Path, n: int, chunk: int, attrs: dict[str, Any],
            rewrite: bool = True, plan: dict[str, Any] | None = None) -> None:
    """Write the cost sidecar of the finished ``path`` from the shards, then drop the shards.

    The sidecar follows the file's rename, so it never exists without its file. A re-run
    after a kill between the two (``rewrite=False``: the file is done) writes the sidecar
    when it is missing and every shard is still there.
    """
    if parts.is_dir() and (rewrite or not costs.sidecar_path(path).exists()):
        shards = costs.collect_shards(parts, n, chunk)
        if shards is not None:
            header = {k: attrs[k] for k in ("problem", "split", "seed")}
            if plan:
                header["solver_plan"] = plan
            costs.write_sidecar(path, shards, {**header, "chunk": chunk})
    if parts.is_dir():
        shutil.rmtree(parts)


def generate_split(
    problem: Problem,
    path: str | Path,
    n_samples: int,
    seed: int = 0,
    split: str = "train",
    chunk: int = 16,
    overwrite: bool = False,
    progress: bool = True,
    scheduler: Any = None,
    n_workers: int | None = None,
) -> Path:
    """Generate ``n_samples`` of ``problem`` into the HDF5 file ``path``, resuming if possible.

    Parameters
    ----------
    problem
        The configured problem that draws and solves each sample.
    path
        Final file name; ``<path>.parts/`` holds the shards while the job runs.
    n_samples, seed, split
        Size, base seed, and split name (the split enters every sample's seed).
    chunk
        Samples per shard: the granularity of resumption.
    overwrite
        Replace an existing file (and discard a partial job with other settings).
    progress
        Show a progress bar.
    scheduler
        ``None`` (default): serial, in this process. ``"local"``: a Dask ``LocalCluster`` of
        ``n_workers`` processes started for this call; a scheduler address
        (``"tcp://host:8786"``) or a ``distributed.Client``: that cluster. Each missing shard
        is one task; the file is bitwise identical to the serial one.
    n_workers
        Worker processes of the ``"local"`` cluster (Dask's default when ``None``).

    Returns
    -------
    pathlib.Path
        The finished file.
    """
    check_job(problem, {split: n_samples}, seed, chunk, scheduler, n_workers)
    path = Path(path)
    parts = path.with_name(path.name + ".parts")
    attrs = provenance(problem, seed, split, n_samples)
    if overwrite:
        shutil.rmtree(parts, ignore_errors=True)
        path.unlink(missing_ok=True)
        costs.sidecar_path(path).unlink(missing_ok=True)
    elif path.exists():
        if not _same_job(path, attrs):
            raise DatasetError(f"{path} exists with other settings; pass --overwrite to replace it")
        # killed between the rename and the clean-up
        _finish(parts, path, int(n_samples), chunk, attrs, rewrite=False)
        return path
    made = missing_dirs(parts)  # what this call creates, and so may remove again
    path.parent.mkdir(parents=True, exist_ok=True)
    plan = _job_plan(problem, parts, seed, split, int(n_samples))
    manifest = {**attrs, "chunk": chunk, **({"solver_plan": plan} if plan else {})}
    _check_manifest(parts, manifest)
    if plan:
        attrs = {**attrs, "solver_plan": plan["method"]}
    try:
        _solve_shards(problem, parts, int(n_samples), seed, split, chunk, progress, scheduler,
                      n_workers)
    except Exception:
        # A failed solve (not a kill: that is a BaseException) before any shard finished
        # leaves no partial job to resume, only a manifest that would refuse the corrected
        # command: remove what this call made. Finished shards are kept for a resume.
        if parts.absolute() in made and not any(parts.glob("shard_*.npz")):
            remove_made(made)
        raise
    _assemble(problem, parts, path, int(n_samples), chunk, attrs)
    _finish(parts, path, int(n_samples), chunk, attrs, plan=plan)
    return path


def _job_plan(problem: Problem, parts: Path, seed: int, split: str, n: int
              ) -> dict[str, Any] | None:
    """The plan of a ``solver="auto"`` linear job (:mod:`pdeml.solvers.planner`): a resumed
    job's from its manifest (so it finishes as it started), else the problem's own (made
    once, shared by the splits of :func:`generate_dataset`), else a new one for a job of at
    least ``MIN_SAMPLES`` samples, timed on its first draws."""
    from pdeml.solvers.planner import MIN_SAMPLES, TRIAL, Plan

    if getattr(problem, "solver", None) != "auto" or not hasattr(problem, "make_plan"):
        return None
    mfile = parts / "manifest.json"
    if mfile.exists():
        try:
            record = json.loads(mfile.read_text()).get("solver_plan")
        except ValueError:
            record = None  # _check_manifest reports the damaged manifest
        problem.plan = Plan.from_record(record) if record else None
        return record
    if problem.plan is None and n >= MIN_SAMPLES:
        problem.make_plan([sample_rng(seed, split, i) for i in range(min(TRIAL, n))])
    return problem.plan.record() if problem.plan is not None else None


def generate_dataset(
    problem: Problem,
    out_dir: str | Path,
    splits: dict[str, int],
    seed: int = 0,
    chunk: int = 16,
    overwrite: bool = False,
    progress: bool = True,
    scheduler: Any = None,
    n_workers: int | None = None,
) -> dict[str, Path]:
    """Generate several splits (``{"train": 800, "test": 200}``) as ``<out_dir>/<split>.h5``.

    Re-running the same job finishes what a killed run left and skips finished splits.
    ``scheduler`` and ``n_workers`` are those of :func:`generate_split`; a ``"local"``
    cluster is started once and shared by the splits.
    """
    check_job(problem, splits, seed, chunk, scheduler, n_workers)
    out_dir = Path(out_dir)
    made = missing_dirs(out_dir)
    client, cluster = (None, None) if scheduler is None else open_client(scheduler, n_workers)
    try:
        return {
            split: generate_split(problem, out_dir / f"{split}.h5", n, seed, split, chunk,
                                  overwrite, progress, client)
            for split, n in splits.items()
        }
    except Exception:
        remove_made(made, tree=False)  # the out folder it created, if it is still empty
        raise
    finally:
        if cluster is not None:
            client.close()
            cluster.close()
