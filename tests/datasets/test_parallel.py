"""Dask-parallel generation: identical bytes to the serial path, resumable across both."""

import hashlib

import h5py
import numpy as np
import pytest

from pdeml.datasets import DatasetError, generate_dataset, generate_split, writer
from pdeml.solvers.problems import DarcyFlow, Poisson

distributed = pytest.importorskip("distributed")


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recycling():
    return DarcyFlow(resolution=16, solver="gcrodr")  # a shard is one recycled sequence


def test_dask_output_is_bitwise_identical_to_serial(tmp_path, client):
    kw = dict(seed=5, chunk=4, progress=False)
    serial = generate_dataset(recycling(), tmp_path / "serial", {"train": 14, "test": 5}, **kw)
    dask = generate_dataset(recycling(), tmp_path / "dask", {"train": 14, "test": 5},
                            scheduler=client, **kw)
    for split in serial:
        assert sha(serial[split]) == sha(dask[split])
    with h5py.File(dask["train"]) as f:
        assert np.all(f["solver_residual"][...] <= 1e-8)
        assert np.all(f["solver_method"][...] == 3) and f["solver_iterations"][...].min() > 0


def test_job_interrupted_serially_resumes_under_dask(tmp_path, client, monkeypatch):
    ref = generate_split(Poisson(resolution=12), tmp_path / "ref.h5", 11, seed=2, chunk=3,
                         progress=False)
    real, calls = writer._atomic_savez, {"n": 0}

    def dying(path, arrays):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the job stops after two whole shards
        real(path, arrays)

    monkeypatch.setattr(writer, "_atomic_savez", dying)
    with pytest.raises(KeyboardInterrupt):
        generate_split(Poisson(resolution=12), tmp_path / "job.h5", 11, seed=2, chunk=3,
                       progress=False)
    monkeypatch.setattr(writer, "_atomic_savez", real)
    assert len(list((tmp_path / "job.h5.parts").glob("shard_*.npz"))) == 2
    out = generate_split(Poisson(resolution=12), tmp_path / "job.h5", 11, seed=2, chunk=3,
                         progress=False, scheduler=client)
    assert sha(out) == sha(ref)


def test_local_cluster_by_name(tmp_path):
    serial = generate_split(Poisson(resolution=10), tmp_path / "s.h5", 6, seed=1, chunk=2,
                            progress=False)
    local = generate_split(Poisson(resolution=10), tmp_path / "l.h5", 6, seed=1, chunk=2,
                           progress=False, scheduler="local", n_workers=1)
    assert sha(serial) == sha(local)


def test_bad_scheduler_is_a_one_line_error(tmp_path):
    with pytest.raises(DatasetError, match="scheduler must be") as err:
        generate_split(Poisson(resolution=10), tmp_path / "x.h5", 2, progress=False,
                       scheduler=42)
    assert "\n" not in str(err.value)
