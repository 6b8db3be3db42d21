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
