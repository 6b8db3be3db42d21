from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from pdeml.datasets import DatasetError, H5Dataset
from pdeml.datasets.importers import import_neuraloperator_pt

EXTERNAL = Path(__file__).resolve().parents[3] / "shared" / "external" / "neuraloperator"


@pytest.mark.skipif(not EXTERNAL.exists(), reason="shared/external not present")
def test_external_darcy_imports_losslessly(tmp_path):
    src = EXTERNAL / "darcy_test_16.pt"
    path = import_neuraloperator_pt(src, tmp_path / "d.h5")
    raw = torch.load(src, weights_only=True)
    ds = H5Dataset(path, ["a"], ["u"], in_memory=True)
    assert len(ds) == 50
    x, y = ds[7]
    assert torch.equal(x[0], raw["x"][7].float()) and torch.equal(y[0], raw["y"][7])
    assert xr.open_dataset(path, engine="h5netcdf")["u"].dims == ("sample", "y", "x")


def test_synthetic_burgers_layout(tmp_path):
    src = tmp_path / "b.pt"
    torch.save({"x": torch.randn(5, 8, dtype=torch.float64),
                "y": torch.randn(5, 3, 8, dtype=torch.float64),
                "visc": torch.tensor([[0.01]], dtype=torch.float64)}, src)
    ds = xr.open_dataset(import_neuraloperator_pt(src, tmp_path / "b.h5"), engine="h5netcdf")
    assert ds["u"].dims == ("sample", "time", "x") and ds.attrs["viscosity"] == 0.01
    np.testing.assert_allclose(ds["x"].values, np.arange(8) / 8)


def test_malformed_files(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"inputs": torch.zeros(3)}, bad)
    with pytest.raises(DatasetError, match="needs a dict with 'x' and 'y'"):
        import_neuraloperator_pt(bad, tmp_path / "o.h5")
    torch.save({"x": torch.zeros(3, 4, 4), "y": torch.zeros(3, 5, 5)}, bad)
    with pytest.raises(DatasetError, match="unrecognized shapes"):
        import_neuraloperator_pt(bad, tmp_path / "o.h5")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(DatasetError, match="cannot read"):
        import_neuraloperator_pt(tmp_path / "junk.pt", tmp_path / "o.h5")
    assert not (tmp_path / "o.h5").exists()
