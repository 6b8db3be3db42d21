"""Atomic, resumable dataset generation.

A job writes its samples in shards of ``chunk`` samples under ``<file>.parts/``; each shard is
written to a temporary name and renamed, so a kill leaves only whole shards. Re-running the
same job skips the shards that exist and finishes the rest. Sample ``i`` of a split is drawn
from ``SeedSequence(seed, spawn_key=(split_code, i))``: it depends on nothing else, so the
finished file is bitwise identical to an uninterrupted run. The final HDF5 file is assembled
under a temporary name and renamed into place: it is never seen half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from pathlib import Path
from typing import Any

import h5netcdf
import numpy as np
from tqdm.auto import tqdm

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


def _solve_shards(
    problem: Problem, parts: Path, n: int, seed: int, split: str, chunk: int, progress: bool
) -> None:
    starts = list(range(0, n, chunk))
    todo = [s for s in starts if not (parts / f"shard_{s:09d}.npz").exists()]
    done = n - sum(min(chunk, n - s) for s in todo)
    bar = tqdm(total=n, initial=done, desc=f"{problem.name}/{split}", unit="sample",
               disable=not progress, dynamic_ncols=True, mininterval=1.0)
    for start in todo:
        samples = [problem.sample(sample_rng(seed, split, i))
                   for i in range(start, min(start + chunk, n))]
        arrays = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
        _atomic_savez(parts / f"shard_{start:09d}.npz", arrays)
        bar.update(len(samples))
    bar.close()


def _assemble(problem: Problem, parts: Path, path: Path, n: int, chunk: int,
              attrs: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with h5netcdf.File(tmp, "w") as f:
        out = create_layout(f, n, problem.coords(), problem.variables())
        for start in range(0, n, chunk):
            with np.load(parts / f"shard_{start:09d}.npz") as shard:
                for name, v in out.items():
                    v[start : start + len(shard[name])] = shard[name].astype(v.dtype)
        f.attrs.update(attrs)
    os.replace(tmp, path)


def generate_split(
    problem: Problem,
    path: str | Path,
    n_samples: int,
    seed: int = 0,
    split: str = "train",
    chunk: int = 16,
    overwrite: bool = False,
    progress: bool = True,
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

    Returns
    -------
    pathlib.Path
        The finished file.
    """
    if int(n_samples) != n_samples or n_samples < 1:
        raise DatasetError(f"the number of samples must be a positive integer, got {n_samples}")
    if chunk < 1:
        raise DatasetError(f"chunk must be positive, got {chunk}")
    path = Path(path)
    parts = path.with_name(path.name + ".parts")
    attrs = provenance(problem, seed, split, n_samples)
    if overwrite:
        shutil.rmtree(parts, ignore_errors=True)
        path.unlink(missing_ok=True)
    elif path.exists():
        if not _same_job(path, attrs):
            raise DatasetError(f"{path} exists with other settings; pass --overwrite to replace it")
        shutil.rmtree(parts, ignore_errors=True)  # killed between the rename and the clean-up
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {**attrs, "chunk": chunk}
    _check_manifest(parts, manifest)
    _solve_shards(problem, parts, int(n_samples), seed, split, chunk, progress)
    _assemble(problem, parts, path, int(n_samples), chunk, attrs)
    shutil.rmtree(parts)
    return path


def generate_dataset(
    problem: Problem,
    out_dir: str | Path,
    splits: dict[str, int],
    seed: int = 0,
    chunk: int = 16,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Path]:
    """Generate several splits (``{"train": 800, "test": 200}``) as ``<out_dir>/<split>.h5``.

    Re-running the same job finishes what a killed run left and skips finished splits.
    """
    out_dir = Path(out_dir)
    return {
        split: generate_split(problem, out_dir / f"{split}.h5", n, seed, split, chunk,
                              overwrite, progress)
        for split, n in splits.items()
    }
