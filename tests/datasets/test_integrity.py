"""Data integrity: checksummed chunks, no non-finite sample written or read, recorded BCs."""

import shutil

import h5py
import numpy as np
import pytest
import xarray as xr

from pdeml.datasets import H5Dataset, generate_split
from pdeml.datasets.schema import (
    CHUNK_FILTERS,
    DatasetError,
    read_boundary_conditions,
    write_arrays,
)
from pdeml.solvers.problems import DarcyFlow, Variable


def flip_chunk(path, name, sample):
    """Invert the middle half of the stored bytes of one sample's chunk, in place."""
    with h5py.File(path, "r") as f:
        info = f[name].id.get_chunk_info_by_coord((sample, 0, 0))
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 4)
        data = fh.read(info.size // 2)
        fh.seek(info.byte_offset + info.size // 4)
        fh.write(bytes(b ^ 0xFF for b in data))


@pytest.fixture
def damaged(tmp_path, darcy_dir):
    path = tmp_path / "damaged.h5"
    shutil.copy(darcy_dir / "train.h5", path)
    flip_chunk(path, "u", 7)
    return path


def test_flipped_bytes_in_a_chunk_fail_the_checksum_naming_file_and_sample(damaged):
    lazy = H5Dataset(damaged, ["a"], ["u"], in_memory=False)
    lazy[6], lazy[8]  # the neighbours still read
    with pytest.raises(DatasetError, match=r"damaged\.h5: sample 7 of 'u' is damaged"):
        lazy[7]
    with pytest.raises(DatasetError, match=r"damaged\.h5: sample 7 of 'u' is damaged"):
        H5Dataset(damaged, ["a"], ["u"], in_memory=True)


def test_chunks_are_checksummed_and_compressed(darcy_dir):
    with h5py.File(darcy_dir / "train.h5") as f:
        for name in ("a", "u"):
            assert f[name].fletcher32 and f[name].shuffle
            assert f[name].compression == CHUNK_FILTERS["compression"]
            assert f[name].chunks == (1, 16, 16)


def test_a_nan_pixel_stops_the_reader_with_file_and_sample(tmp_path, darcy_dir):
    path = tmp_path / "nan.h5"
    shutil.copy(darcy_dir / "train.h5", path)
    with h5py.File(path, "r+") as f:
        f["u"][12, 0, 3] = np.inf
    with pytest.raises(DatasetError, match=r"nan\.h5: sample 12 of 'u' holds NaN or Inf"):
        H5Dataset(path, ["a"], ["u"], in_memory=True)
    lazy = H5Dataset(path, ["a"], ["u"], in_memory=False)
    lazy[11]
    with pytest.raises(DatasetError, match="sample 12 of 'u'"):
        lazy[12]


class DivergingDarcy(DarcyFlow):
    """Darcy whose second shard comes back with a NaN in its second sample (a diverged solve)."""

    name = ""  # not registered

    def sample_batch(self, rngs):
        samples = super().sample_batch(rngs)
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 2:
            samples[1]["u"][2, 2] = np.nan
        return samples


def test_a_non_finite_sample_is_never_written(tmp_path):
    path = tmp_path / "x.h5"
    with pytest.raises(DatasetError, match=r"sample 5 of split 'train' \(seed 3\) has NaN"):
        generate_split(DivergingDarcy(resolution=8), path, 8, seed=3, chunk=4, progress=False)
    assert not path.exists()
    parts = tmp_path / "x.h5.parts"
    assert sorted(p.name for p in parts.iterdir()) == ["manifest.json", "shard_000000000.npz"]


def test_write_arrays_refuses_non_finite_values(tmp_path):
    u = np.zeros((3, 4), np.float32)
    u[2, 1] = np.nan
    with pytest.raises(DatasetError, match="sample 2 of 'u' holds NaN or Inf"):
        write_arrays(tmp_path / "a.h5", {"x": np.arange(4.0)}, {"u": (Variable(("x",)), u)}, {})
    assert not (tmp_path / "a.h5").exists()


def test_coordinates_and_boundary_conditions_are_recorded(darcy_dir):
    with xr.open_dataset(darcy_dir / "train.h5", engine="h5netcdf") as ds:
        assert ds["x"].attrs == {"units": "1", "axis": "X"}
        assert ds["y"].attrs["axis"] == "Y"
    bcs = read_boundary_conditions(darcy_dir / "train.h5")
    assert sorted(bcs) == ["x_lower", "x_upper", "y_lower", "y_upper"]
    assert bcs["x_lower"]["bc_type"] == "dirichlet" and bcs["x_lower"]["value"] == 0.0
    with xr.open_dataset(darcy_dir / "train.h5", engine="h5netcdf",
                         group="boundary_conditions/y_upper") as g:
        assert g["mask"].dims == ("y",)
        assert g["mask"].values.tolist() == [0] * 15 + [1]


def test_periodic_problem_records_periodic_boundaries(tmp_path):
    from pdeml.solvers.problems import make_problem

    problem = make_problem("burgers", resolution=16, n_snapshots=2, final_time=0.1)
    path = generate_split(problem, tmp_path / "b.h5", 1, progress=False)
    bcs = read_boundary_conditions(path)
    assert list(bcs) == ["x_periodic"] and bcs["x_periodic"]["bc_type"] == "periodic"
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds["time"].attrs["axis"] == "T"
