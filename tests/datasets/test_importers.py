import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch
import xarray as xr

from pdeml.cli import main
from pdeml.datasets import DatasetError, H5Dataset
from pdeml.datasets.importers import (
    import_cfdbench,
    import_dataset,
    import_fno_mat,
    import_neuraloperator_pt,
    import_pdebench,
)
from pdeml.datasets.schema import read_attrs

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


# ------------------------------------------------------------------ FNO .mat, PDEBench, CFDBench

def rng(seed=0):
    return np.random.default_rng(seed)


def test_fno_mat_v5_darcy(tmp_path):
    coeff, sol = rng().random((4, 9, 9)), rng(1).random((4, 9, 9))
    scipy.io.savemat(tmp_path / "darcy.mat", {"coeff": coeff, "sol": sol,
                                              "Kcoeff_x": rng().random((4, 8, 9))})
    path = import_fno_mat(tmp_path / "darcy.mat", tmp_path / "d.h5")
    ds = xr.open_dataset(path, engine="h5netcdf")
    assert ds["sol"].dims == ("sample", "y", "x")
    np.testing.assert_allclose(ds["sol"].values, sol.astype(np.float32))
    np.testing.assert_allclose(ds["x"].values, np.linspace(0, 1, 9))  # bounded node grid
    attrs = read_attrs(path)
    assert json.loads(attrs["input_vars"]) == ["coeff"]
    assert json.loads(attrs["output_vars"]) == ["sol"]
    assert json.loads(attrs["skipped_variables"]) == ["Kcoeff_x"]
    x, y = H5Dataset(path, ["coeff"], ["sol"])[3]
    assert torch.equal(y[0], torch.from_numpy(sol[3].astype(np.float32)))


def write_mat73(path, arrays):
    """An HDF5 file laid out as MATLAB v7.3 writes it (512-byte header, column-major)."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for k, a in arrays.items():
            f[k] = np.asarray(a).T
    with open(path, "r+b") as f:
        # text, subsystem offset, version 0x0200 and the endian mark, as MATLAB writes them
        f.write(b"MATLAB 7.3 MAT-file, written by a pdeml test".ljust(116) + bytes(8)
                + b"\x00\x02IM")


def test_fno_mat_v73_navier_stokes_time_last(tmp_path):
    a, u = rng().random((3, 8, 8)), rng(1).random((3, 8, 8, 5))
    write_mat73(tmp_path / "ns.mat", {"a": a, "u": u, "t": np.arange(1, 6)[None] * 0.5})
    with pytest.raises(NotImplementedError):  # scipy alone cannot read it: h5py path needed
        scipy.io.loadmat(tmp_path / "ns.mat")
    path = import_fno_mat(tmp_path / "ns.mat", tmp_path / "ns.h5", n_samples=2)
    ds = xr.open_dataset(path, engine="h5netcdf")
    assert ds["u"].dims == ("sample", "time", "y", "x") and ds.sizes["sample"] == 2
    np.testing.assert_allclose(ds["u"].values, np.moveaxis(u[:2], -1, 1).astype(np.float32))
    np.testing.assert_allclose(ds["time"].values, [0.5, 1, 1.5, 2, 2.5])
    np.testing.assert_allclose(ds["x"].values, np.arange(8) / 8)  # periodic
    assert json.loads(read_attrs(path)["output_vars"]) == ["u[-1]"]


def test_fno_mat_malformed(tmp_path):
    scipy.io.savemat(tmp_path / "m.mat", {"coef": np.zeros((2, 4, 4)), "x": np.zeros((2, 4))})
    with pytest.raises(DatasetError, match="cannot tell inputs from outputs.*coef, x"):
        import_fno_mat(tmp_path / "m.mat", tmp_path / "o.h5")
    with pytest.raises(DatasetError, match="has no variable 'sol'"):
        import_fno_mat(tmp_path / "m.mat", tmp_path / "o.h5", inputs=["coef"], outputs=["sol"])
    (tmp_path / "junk.mat").write_bytes(b"no MATLAB here" * 20)
    with pytest.raises(DatasetError, match="cannot read .* as a MATLAB file"):
        import_fno_mat(tmp_path / "junk.mat", tmp_path / "o.h5")
    assert not (tmp_path / "o.h5").exists()


def test_pdebench_single_array_2d_cfd(tmp_path):
    vx, rho = rng().random((3, 4, 6, 5)), rng(1).random((3, 4, 6, 5))  # (N, T, X, Y)
    with h5py.File(tmp_path / "cfd.hdf5", "w") as f:
        f["Vx"], f["density"] = vx, rho
        f["x-coordinate"], f["y-coordinate"] = np.linspace(0, 1, 6), np.linspace(0, 2, 5)
        f["t-coordinate"] = np.arange(5) * 0.1  # PDEBench stores one more time than steps
    path = import_pdebench(tmp_path / "cfd.hdf5", tmp_path / "c.h5")
    ds = xr.open_dataset(path, engine="h5netcdf")
    assert ds["Vx"].dims == ("sample", "time", "y", "x") and ds["Vx"].shape == (3, 4, 5, 6)
    np.testing.assert_allclose(ds["Vx"].values, vx.transpose(0, 1, 3, 2).astype(np.float32))
    np.testing.assert_allclose(ds["time"].values, [0, 0.1, 0.2, 0.3])
    np.testing.assert_allclose(ds["y"].values, np.linspace(0, 2, 5))
    attrs = read_attrs(path)
    assert json.loads(attrs["input_vars"]) == ["Vx[0]", "density[0]"]
    assert json.loads(attrs["output_vars"]) == ["Vx[-1]", "density[-1]"]


def test_pdebench_single_array_darcy_drops_unit_time(tmp_path):
    nu, sol = rng().random((4, 7, 7)), rng(1).random((4, 1, 7, 7))
    with h5py.File(tmp_path / "darcy.hdf5", "w") as f:
        f["nu"], f["tensor"] = nu, sol
        f["x-coordinate"] = f["y-coordinate"] = np.linspace(0, 1, 7)
    path = import_pdebench(tmp_path / "darcy.hdf5", tmp_path / "d.h5")
    x, y = H5Dataset(path, ["nu"], ["tensor"])[2]
    np.testing.assert_allclose(y[0].numpy(), sol[2, 0].T.astype(np.float32))
    assert json.loads(read_attrs(path)["input_vars"]) == ["nu"]


def test_pdebench_per_seed_groups(tmp_path):
    data = rng().random((3, 5, 4, 6, 2))  # seeds, (T, X, Y, C)
    with h5py.File(tmp_path / "rd.h5", "w") as f:
        for s in range(3):
            g = f.create_group(f"{s:04d}")
            g["data"] = data[s]
            g["grid/x"], g["grid/y"], g["grid/t"] = (np.linspace(-1, 1, 4),
                                                     np.linspace(-1, 1, 6), np.arange(5.0))
    path = import_pdebench(tmp_path / "rd.h5", tmp_path / "r.h5", names=["a", "b"])
    ds = xr.open_dataset(path, engine="h5netcdf")
    assert ds["b"].dims == ("sample", "time", "y", "x") and ds["b"].shape == (3, 5, 6, 4)
    np.testing.assert_allclose(ds["b"].values, data[..., 1].transpose(0, 1, 3, 2)
                               .astype(np.float32))
    assert read_attrs(path)["layout"] == "per-seed groups"
    with h5py.File(tmp_path / "rd.h5", "a") as f:
        f.create_group("0003")["data"] = np.zeros((5, 4, 5, 2))
    with pytest.raises(DatasetError, match="group '0003' has data of shape"):
        import_pdebench(tmp_path / "rd.h5", tmp_path / "r2.h5")


def test_pdebench_malformed(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["tensor"] = np.zeros((2, 3, 4))
    with pytest.raises(DatasetError, match="no 'x-coordinate'.*has: tensor"):
        import_pdebench(tmp_path / "x.h5", tmp_path / "o.h5")
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f["tensor"], f["x-coordinate"] = np.zeros((2, 3, 4)), np.zeros(5)
    with pytest.raises(DatasetError, match=r"no array of shape \(N, \[T,\] 5\)"):
        import_pdebench(tmp_path / "y.h5", tmp_path / "o.h5")
    with pytest.raises(DatasetError, match="not found"):
        import_pdebench(tmp_path / "none.h5", tmp_path / "o.h5")


def write_case(folder, params, u, v):
    folder.mkdir(parents=True)
    (folder / "case.json").write_text(json.dumps(params))
    np.save(folder / "u.npy", u)
    np.save(folder / "v.npy", v)


def test_cfdbench_case_folders(tmp_path):
    root = tmp_path / "cylinder"
    us = []
    box = {"radius": 0.1, "x_min": -0.5, "x_max": 0.5, "y_min": -0.4, "y_max": 0.4}
    for i, n_time in enumerate((6, 5, 7)):
        u = rng(i).random((n_time, 8, 10)) + 0.1
        u[:, :, 0] = 0.0  # fluid at rest is still fluid
        us.append(u)
        write_case(root / "bc" / f"case{i:04d}", {"vel_in": 1.0 + i, "density": 1.0,
                                                   "name": "x", **box}, u, -u)
    path = import_cfdbench(root, tmp_path / "c.h5")
    ds = xr.open_dataset(path, engine="h5netcdf")
    assert ds["u"].shape == (3, 7, 8, 10)  # every case whole, padded to the longest
    np.testing.assert_allclose(ds["u"].values[2], us[2].astype(np.float32))
    np.testing.assert_allclose(ds["u"].values[1, 5:], np.repeat(us[1][-1:], 2, 0), rtol=1e-6)
    np.testing.assert_allclose(ds["vel_in"].values, [1, 2, 3])
    np.testing.assert_allclose(ds["n_frames"].values, [6, 5, 7])
    np.testing.assert_allclose(ds["time"].values, 0.1 * np.arange(1, 8))  # seconds
    # cells of 0.1 x 0.1 centred at +-0.05: the four around the origin are inside r = 0.1
    assert ds["mask"].values[:, 3:5, 4:6].max() == 0 and ds["mask"].values.sum() == 3 * 76
    assert "name" not in ds
    single = import_cfdbench(root / "bc" / "case0001", tmp_path / "one.h5")
    assert xr.open_dataset(single, engine="h5netcdf").sizes["sample"] == 1


def test_cfdbench_malformed(tmp_path):
    u = np.zeros((3, 4, 4))
    write_case(tmp_path / "a" / "case0", {"vel": 1.0, "visc": 0.1}, u, u)
    write_case(tmp_path / "a" / "case1", {"vel": 2.0}, u, u)
    with pytest.raises(DatasetError, match="case1: case.json lacks visc"):
        import_cfdbench(tmp_path / "a", tmp_path / "o.h5")
    (tmp_path / "a" / "case1" / "v.npy").unlink()
    with pytest.raises(DatasetError, match="case1 has no v.npy"):
        import_cfdbench(tmp_path / "a", tmp_path / "o.h5")
    write_case(tmp_path / "b" / "case0", {"vel": 1.0}, u, np.zeros((3, 4, 5)))
    with pytest.raises(DatasetError, match=r"must both be \(time, height, width\)"):
        import_cfdbench(tmp_path / "b", tmp_path / "o.h5")
    (tmp_path / "c").mkdir()
    with pytest.raises(DatasetError, match="no CFDBench case folder"):
        import_cfdbench(tmp_path / "c", tmp_path / "o.h5")


def test_declared_variables_and_cli(tmp_path, capsys):
    u = rng().random((4, 4, 4))
    write_case(tmp_path / "c" / "case0", {"vel": 1.0}, u, u)
    with pytest.raises(DatasetError, match="no variable for p\\[0\\]"):
        import_dataset("cfdbench", tmp_path / "c", tmp_path / "o.h5", inputs=["p[0]"])
    with pytest.raises(ValueError, match="does not take names"):
        import_dataset("cfdbench", tmp_path / "c", tmp_path / "o.h5", names=["u"])
    code = main(["import", "cfdbench", str(tmp_path / "c"), "--out", str(tmp_path / "o.h5"),
                 "--inputs", "u[0]", "vel", "--outputs", "u[-1]"])
    assert code == 0 and json.loads(read_attrs(tmp_path / "o.h5")["input_vars"]) == ["u[0]", "vel"]
    code = main(["import", "pdebench", str(tmp_path / "nothing.h5"), "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("pdeml: error:") and "not found" in err
