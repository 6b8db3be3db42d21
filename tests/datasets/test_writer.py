import hashlib
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
import xarray as xr

from pdeml.datasets import DatasetError, generate_dataset, generate_split
from pdeml.solvers.problems import DarcyFlow


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def small():
    return DarcyFlow(resolution=16)


def test_file_opens_in_xarray_with_named_dims_and_provenance(tmp_path):
    path = generate_split(small(), tmp_path / "train.h5", 10, seed=3, progress=False)
    ds = xr.open_dataset(path, engine="h5netcdf")
    assert ds["a"].dims == ("sample", "y", "x") and ds["u"].dims == ("sample", "y", "x")
    assert ds["a"].dtype == np.float32 and ds.sizes["sample"] == 10
    assert np.allclose(ds["x"].values, np.linspace(0, 1, 16))
    assert ds.attrs["problem"] == "darcy" and ds.attrs["seed"] == 3
    assert ds.attrs["pdeml_schema_version"] == "2"
    with h5py.File(path) as f:
        assert f["a"].chunks == (1, 16, 16)
        assert f["u"].dims[0][0].name == "/sample"  # an attached HDF5 dimension scale
    ds.close()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = generate_split(small(), tmp_path / "a.h5", 8, seed=1, progress=False)
    b = generate_split(small(), tmp_path / "b.h5", 8, seed=1, progress=False)
    c = generate_split(small(), tmp_path / "c.h5", 8, seed=2, progress=False)
    assert sha(a) == sha(b)
    with h5py.File(a) as fa, h5py.File(c) as fc:
        assert not np.array_equal(fa["a"][...], fc["a"][...])


def test_splits_are_disjoint_draws(tmp_path):
    paths = generate_dataset(small(), tmp_path, {"train": 6, "test": 6}, seed=0, progress=False)
    with h5py.File(paths["train"]) as ft, h5py.File(paths["test"]) as fs:
        for i in range(6):
            assert not np.array_equal(ft["a"][i], fs["a"][i])


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from pdeml.datasets import writer
    from pdeml.solvers.problems import DarcyFlow

    calls = {"n": 0}
    real_savez = np.savez

    def dying_savez(fh, **arrays):
        calls["n"] += 1
        if calls["n"] == int(sys.argv[2]):
            fh.write(b"half a shard")  # die in the middle of writing a shard
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        real_savez(fh, **arrays)

    writer.np.savez = dying_savez
    writer.generate_dataset(DarcyFlow(resolution=16), sys.argv[1], {"train": 20, "test": 7},
                            seed=11, chunk=3, progress=False)
    """
)


@pytest.mark.parametrize("die_at", [2, 9])  # inside train, inside test
def test_killed_job_resumes_to_identical_bytes(tmp_path, die_at):
    ref = generate_dataset(small(), tmp_path / "ref", {"train": 20, "test": 7}, seed=11,
                           chunk=3, progress=False)
    job = tmp_path / "job"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(job), str(die_at)])
    assert proc.returncode == -9  # really killed
    assert list(job.glob("*.parts"))  # partial work left behind
    out = generate_dataset(small(), job, {"train": 20, "test": 7}, seed=11, chunk=3,
                           progress=False)
    for split in ("train", "test"):
        assert sha(out[split]) == sha(ref[split])
    assert not list(job.glob("*.parts")) and not list(job.glob("*.tmp"))


def test_resume_with_other_settings_is_refused(tmp_path):
    parts = tmp_path / "train.h5.parts"
    parts.mkdir()
    (parts / "manifest.json").write_text('{"seed": 99}')
    with pytest.raises(DatasetError, match="other settings"):
        generate_split(small(), tmp_path / "train.h5", 4, seed=0, progress=False)


def test_rerun_of_finished_job_is_a_no_op_and_other_settings_refused(tmp_path):
    p = generate_split(small(), tmp_path / "train.h5", 4, seed=0, progress=False)
    digest = sha(p)
    generate_split(small(), tmp_path / "train.h5", 4, seed=0, progress=False)
    assert sha(p) == digest
    with pytest.raises(DatasetError, match="exists with other settings"):
        generate_split(small(), tmp_path / "train.h5", 5, seed=0, progress=False)
    assert sha(p) == digest  # nothing already written is touched


@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_bad_sample_counts(tmp_path, n):
    with pytest.raises(DatasetError, match="positive integer"):
        generate_split(small(), tmp_path / "x.h5", n, progress=False)
    assert not (tmp_path / "x.h5").exists()
