import numpy as np
import pytest
import torch

from pdeml.datasets import DatasetError, H5Dataset, PDEDataModule, UnitGaussianNormalizer
from pdeml.datasets.writer import generate_split
from pdeml.solvers.problems import DarcyFlow


@pytest.fixture(scope="module")
def darcy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("d") / "train.h5"
    return generate_split(DarcyFlow(resolution=12), path, 20, seed=0, progress=False)


def test_lazy_and_in_memory_reads_agree(darcy_file):
    lazy = H5Dataset(darcy_file, ["a"], ["u"])
    mem = H5Dataset(darcy_file, ["a"], ["u"], in_memory=True)
    assert len(lazy) == len(mem) == 20
    for i in (0, 7, 19):
        for t_lazy, t_mem in zip(lazy[i], mem[i], strict=True):
            assert t_lazy.shape == (1, 12, 12) and t_lazy.dtype == torch.float32
            assert torch.equal(t_lazy, t_mem)


def test_dataloader_workers_each_open_their_own_handle(darcy_file):
    ds = H5Dataset(darcy_file, ["a"], ["u"])
    ds[0]  # open in the parent first: a fork must not reuse this handle
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2)
    xs = torch.cat([x for x, _ in loader])
    ref = torch.stack([ds[i][0] for i in range(20)])
    assert torch.equal(xs, ref)


def test_missing_variable_and_missing_file(darcy_file, tmp_path):
    with pytest.raises(DatasetError, match="no variable q"):
        H5Dataset(darcy_file, ["a"], ["q"])
    with pytest.raises(DatasetError, match="not found"):
        H5Dataset(tmp_path / "nope.h5", ["a"], ["u"])


def test_truncated_file_is_reported(darcy_file, tmp_path):
    bad = tmp_path / "truncated.h5"
    data = darcy_file.read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(DatasetError, match="truncated|damaged"):
        H5Dataset(bad, ["a"], ["u"], in_memory=True)


def test_normalizer_statistics_and_round_trip():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, 8, 8, generator=g) * torch.tensor([3.0, 0.5]).view(1, 2, 1, 1)
    x = x + torch.tensor([10.0, -2.0]).view(1, 2, 1, 1)
    norm = UnitGaussianNormalizer(2).fit(x.split(10))
    z = norm.encode(x)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(z.std(dim=(0, 2, 3), unbiased=False), torch.ones(2), atol=1e-4)
    assert torch.allclose(norm.decode(z), x, atol=1e-5)
    state = norm.state_dict()
    assert set(state) == {"mean", "std", "fitted"}
    other = UnitGaussianNormalizer(2)
    other.load_state_dict(state)
    assert torch.equal(other.encode(x), z)


def test_datamodule_split_and_channels(darcy_file):
    dm = PDEDataModule(darcy_file, val_fraction=0.25, batch_size=4)
    dm.setup("fit")
    assert dm.in_channels == 1 and dm.out_channels == 1
    assert len(dm.train_set) == 15 and len(dm.val_set) == 5
    assert not set(dm.train_set.indices) & set(dm.val_set.indices)
    assert dm.spatial_shape == (12, 12)
    n_in, n_out = dm.fit_normalizers()
    a = np.stack([dm.train_set[i][0].numpy() for i in range(15)])
    assert abs(float(n_in.mean) - a.mean()) < 1e-5


@pytest.fixture(scope="module")
def series_file(tmp_path_factory):
    from pdeml.solvers.problems import make_problem

    problem = make_problem(
        "navier_stokes", resolution=16, final_time=0.4, n_snapshots=4, n_terms=4, dt=0.01
    )
    path = tmp_path_factory.mktemp("ns") / "train.h5"
    return generate_split(problem, path, 3, seed=0, progress=False)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("w", ("w", None)),
        ("w[3]", ("w", 3)),
        ("w[-1]", ("w", -1)),
        ("w[0:10]", ("w", slice(0, 10))),
        ("w[2:]", ("w", slice(2, None))),
        ("w[:-1]", ("w", slice(None, -1))),
    ],
)
def test_parse_selector(spec, expected):
    from pdeml.datasets.reader import parse_selector

    assert parse_selector(spec) == expected


@pytest.mark.parametrize("bad", ["w[]", "w[a]", "w[1:2:3]", "3w", "w[1"])
def test_bad_selectors_are_rejected(bad):
    from pdeml.datasets.reader import parse_selector

    with pytest.raises(DatasetError, match="bad variable selector"):
        parse_selector(bad)


def test_time_selectors_pick_the_stored_steps(series_file):
    import h5py

    with h5py.File(series_file) as f:
        w0, w = f["w0"][...], f["w"][...]
    for in_memory in (False, True):
        ds = H5Dataset(series_file, ["w0", "w[0:2]"], ["w[-1]"], in_memory=in_memory)
        assert (ds.in_channels, ds.out_channels, ds.spatial_shape) == (3, 1, (16, 16))
        x, y = ds[1]
        np.testing.assert_array_equal(x[0].numpy(), w0[1])
        np.testing.assert_array_equal(x[1:].numpy(), w[1, 0:2])
        np.testing.assert_array_equal(y[0].numpy(), w[1, 3])


def test_time_selector_errors(series_file):
    with pytest.raises(DatasetError, match="different grids"):
        H5Dataset(series_file, ["w0"], ["w"])
    with pytest.raises(DatasetError, match="out of range"):
        H5Dataset(series_file, ["w0"], ["w[4]"])
    with pytest.raises(DatasetError, match="selects no time step"):
        H5Dataset(series_file, ["w0"], ["w[3:3]"])
    with pytest.raises(DatasetError, match="no time axis"):
        H5Dataset(series_file, ["w0[0]"], ["w[0]"])


def test_datamodule_counts_time_channels(series_file):
    dm = PDEDataModule(series_file, inputs=["w[0:2]"], outputs=["w[2:4]"], val_fraction=0.0)
    assert (dm.in_channels, dm.out_channels) == (2, 2)
