"""The Well in and out: import its HDF5 layout, export pdeml's, checked with its own loader.

Fixtures are written here: by hand to The Well's ``docs/data_format.md`` (``write_spec_file``)
and by pdeml's own schema helpers (``write_pdeml_file``). Tests marked with the oracle need
the ``well`` extra (``the-well``) and compare with its ``WellDataset``.
"""

import json
import warnings
from pathlib import Path

import h5netcdf
import h5py
import numpy as np
import pytest
import torch

from pdeml.cli import main
from pdeml.datasets import DatasetError, H5Dataset, StepDataset
from pdeml.datasets.importers import import_dataset
from pdeml.datasets.schema import create_layout, read_attrs, read_boundary_conditions
from pdeml.datasets.the_well import import_the_well
from pdeml.datasets.the_well_export import export_the_well
from pdeml.solvers.problems.base import Variable

B, T, NX, NY = 3, 5, 6, 4


def write_spec_file(path: Path, seed: int = 0, short: bool = False) -> dict[str, np.ndarray]:
    """A 2-D Well file with every kind of entry of the specification; returns its arrays.

    ``height`` does not vary along y: stored ``(x, 1)`` as WellDataset reads it, or with
    ``short`` ``(x,)`` as in the specification's example."""
    rng = np.random.default_rng(seed)
    a = {
        "x": np.linspace(0, 1, NX, dtype=np.float32), "y": np.linspace(-1, 1, NY,
                                                                       dtype=np.float32),
        "time": np.arange(T, dtype=np.float32) * 0.25,
        "density": rng.random((B, T, NX, NY), dtype=np.float32),
        "height": rng.random((NX,) if short else (NX, 1), dtype=np.float32),
        "velocity": rng.random((B, T, NX, NY, 2), dtype=np.float32),
        "stress": rng.random((B, T, NX, NY, 2, 2), dtype=np.float32),
        "reynolds": rng.random(B).astype(np.float32), "energy": rng.random((B, T)),
        "forcing": rng.random(T).astype(np.float32),
    }
    with h5py.File(path, "w") as f:
        f.attrs.update({"dataset_name": "spec_flow", "grid_type": "cartesian",
                        "n_spatial_dims": 2, "n_trajectories": B,
                        "simulation_parameters": ["gamma"], "gamma": 1.4})
        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = ["x", "y"]
        for d in ("time", "x", "y"):
            dims.create_dataset(d, data=a[d]).attrs.update(
                {"sample_varying": False, "time_varying": False, "units": "m" if d != "time"
                 else "s"})
        bcs = f.create_group("boundary_conditions")
        xmask = np.zeros(NX, bool)
        xmask[[0, -1]] = True
        ymask = np.zeros(NY, bool)
        ymask[0] = True
        for name, kind, dim, mask in (("x_periodic", "PERIODIC", "x", xmask),
                                      ("y_wall", "WALL", "y", ymask)):
            g = bcs.create_group(name)
            g.attrs.update({"associated_dims": dim, "associated_fields": [], "bc_type": kind,
                            "sample_varying": False, "time_varying": False})
            g.create_dataset("mask", data=mask)
        g.create_dataset("values", data=np.zeros(1, np.float32))
        sc = f.create_group("scalars")
        sc.attrs["field_names"] = ["gamma", "reynolds", "energy", "forcing"]
        for name, data, sv, tv in (("gamma", np.array(1.4), False, False),
                                   ("reynolds", a["reynolds"], True, False),
                                   ("energy", a["energy"], True, True),
                                   ("forcing", a["forcing"], False, True)):
            sc.create_dataset(name, data=data).attrs.update(
                {"sample_varying": sv, "time_varying": tv})
        for group, entries in (
                ("t0_fields", [("density", a["density"], True, True, [True, True]),
                               ("height", a["height"], False, False, [True, False])]),
                ("t1_fields", [("velocity", a["velocity"], True, True, [True, True])]),
                ("t2_fields", [("stress", a["stress"], True, True, [True, True])])):
            g = f.create_group(group)
            g.attrs["field_names"] = [e[0] for e in entries]
            for name, data, sv, tv, dv in entries:
                ds = g.create_dataset(name, data=data)
                ds.attrs.update({"sample_varying": sv, "time_varying": tv,
                                 "dim_varying": np.array(dv)})
                if group == "t2_fields":
                    ds.attrs.update({"symmetric": False, "antisymmetric": False})
        f["t0_fields/density"].attrs["units"] = "kg/m^3"
    return a


def write_pdeml_file(path: Path, n: int = 3) -> Path:
    """A time-dependent pdeml file: two fields, a mask, parameters, units, Dirichlet BCs."""
    rng = np.random.default_rng(1)
    coords = {"time": np.linspace(0.1, 0.7, 4), "y": np.linspace(0, 1, 5) / 3,
              "x": np.arange(7) / 7.0}
    variables = {
        "u": Variable(("time", "y", "x"), "m/s", "velocity u"),
        "v": Variable(("time", "y", "x"), "m/s", "velocity v"),
        "mask": Variable(("y", "x"), "1", "fluid mask", "i1"),
        "viscosity": Variable((), "m^2/s", "viscosity of this sample"),
        "inflow": Variable(("time",), "m/s", "inflow speed"),
        "profile": Variable(("x",), "1", "a field constant along y"),
    }
    bcs = {"left": {"bc_type": "dirichlet", "dim": "x", "side": "lower", "fields": ["u"],
                    "value": 1.5},
           "y_periodic": {"bc_type": "periodic", "dim": "y", "side": "both"}}
    with h5netcdf.File(path, "w") as f:
        out = create_layout(f, n, coords, variables, {"time": "s", "y": "m", "x": "m"},
                            boundaries=bcs)
        for name, var in variables.items():
            shape = (n, *[len(coords[d]) for d in var.dims])
            data = rng.standard_normal(shape)
            out[name][...] = (data > 0) if name == "mask" else data
        f.attrs.update({"title": "a pdeml test set", "problem": "channel", "seed": 3,
                        "pdeml_schema_version": "2", "input_vars": json.dumps(["u[0]", "mask"]),
                        "output_vars": json.dumps(["u[-1]"]), "n_samples": n})
    return path


def well_dataset(folder: Path, **kwargs):
    the_well = pytest.importorskip("the_well.data")
    return the_well.WellDataset(path=str(folder), **kwargs)


def same_file(a: Path, b: Path) -> None:
    """Every variable bitwise equal (values, dtype, dims), with the same attributes."""
    with h5netcdf.File(a, "r") as f, h5netcdf.File(b, "r") as g:
        assert sorted(f.variables) == sorted(g.variables)
        for name, v in f.variables.items():
            w = g.variables[name]
            assert v.dimensions == w.dimensions and v.dtype == w.dtype, name
            assert np.array_equal(v[...], w[...]), name
            assert {k: v.attrs[k] for k in ("units", "long_name") if k in v.attrs} == \
                {k: w.attrs[k] for k in ("units", "long_name") if k in v.attrs}, name
    assert read_boundary_conditions(a) == read_boundary_conditions(b)
    before, after = read_attrs(a), read_attrs(b)
    assert {k: after.get(k) for k in before if k != "pdeml_version"} == \
        {k: v for k, v in before.items() if k != "pdeml_version"}


# ------------------------------------------------------------------------------- import
@pytest.mark.parametrize("short", [False, True])
def test_import_spec_file_keeps_values_components_parameters(tmp_path, short):
    a = write_spec_file(tmp_path / "spec.hdf5", short=short)
    out = import_dataset("the_well", tmp_path / "spec.hdf5", tmp_path / "p.h5")
    with h5py.File(out, "r") as f:
        assert np.array_equal(f["density"][...], a["density"].transpose(0, 1, 3, 2))
        assert f["density"].attrs["units"] == "kg/m^3" and f["x"].attrs["units"] == "m"
        for k, c in enumerate("xy"):
            assert np.array_equal(f[f"velocity_{c}"][...],
                                  a["velocity"][..., k].transpose(0, 1, 3, 2))
        for i, j in np.ndindex(2, 2):
            assert np.array_equal(f[f"stress_{'xy'[i]}{'xy'[j]}"][...],
                                  a["stress"][..., i, j].transpose(0, 1, 3, 2))
        assert f["stress_xy"].attrs["well_field"] == "stress"
        assert np.array_equal(f["height"][...], np.broadcast_to(a["height"].ravel(), (B, NX)))
        assert f["height"].attrs["well_sample_varying"] == 0
        assert np.array_equal(f["reynolds"][...], a["reynolds"])
        assert np.array_equal(f["energy"][...], a["energy"])
        assert np.array_equal(f["forcing"][...], np.broadcast_to(a["forcing"], (B, T)))
        assert np.array_equal(f["gamma"][...], np.full(B, 1.4))
        for d in ("x", "y", "time"):
            assert np.array_equal(f[d][...], a[d].astype(np.float64))
    attrs = read_attrs(out)
    assert attrs["gamma"] == 1.4 and attrs["well_dataset_name"] == "spec_flow"
    assert json.loads(attrs["input_vars"])[:2] == ["density[0]", "velocity_x[0]"]
    bcs = read_boundary_conditions(out)
    assert bcs["x_periodic"]["bc_type"] == "periodic" and bcs["x_periodic"]["side"] == "both"
    assert bcs["y_wall"]["bc_type"] == "wall" and bcs["y_wall"]["side"] == "lower"
    assert bcs["y_wall"]["value"] == 0.0
    x, y = H5Dataset(out, ["density[0]", "velocity_x[0]", "reynolds"], ["density[-1]"])[1]
    assert x.shape == (3, NY, NX) and torch.equal(y[0], torch.from_numpy(a["density"][1, -1].T))


def test_imported_values_equal_the_well_loader(tmp_path):
    """The Well's WellDataset and pdeml's import read the same numbers from one file."""
    (tmp_path / "w").mkdir()
    write_spec_file(tmp_path / "w" / "spec.hdf5")
    ds = well_dataset(tmp_path / "w", n_steps_input=1, n_steps_output=1)
    out = import_the_well(tmp_path / "w" / "spec.hdf5", tmp_path / "p.h5")
    names = [n for order in range(3) for n in ds.metadata.field_names[order]]
    assert names[:3] == ["density", "velocity_x", "velocity_y"]
    with h5py.File(out, "r") as f:
        fields = np.stack([f[n][...] for n in names], -1).transpose(0, 1, 3, 2, 4)
        const = f["height"][0]
        scalars = np.stack([f[n][...] for n in ds.metadata.scalar_names], -1)
        fixed = np.stack([f[n][...] for n in ds.metadata.constant_scalar_names], -1)
    for k in range(len(ds)):
        b, t = divmod(k, T - 1)
        s = ds[k]
        assert np.array_equal(s["input_fields"][0].numpy(), fields[b, t])
        assert np.array_equal(s["output_fields"][0].numpy(), fields[b, t + 1])
        assert np.array_equal(s["constant_fields"][..., 0].numpy(),
                              np.broadcast_to(const[:, None], (NX, NY)))  # tiled along y
        assert np.array_equal(s["input_scalars"][0].numpy(), scalars[b, t])
        assert np.array_equal(s["constant_scalars"].numpy().astype(fixed.dtype), fixed[b])


def test_the_wells_own_dummy_file_imports(tmp_path):
    dummy = pytest.importorskip("the_well.utils.dummy_data")
    dummy.write_dummy_data(str(tmp_path / "dummy.hdf5"))
    out = import_the_well(tmp_path / "dummy.hdf5", tmp_path / "d.h5")
    with h5py.File(tmp_path / "dummy.hdf5", "r") as w, h5py.File(out, "r") as f:
        assert np.array_equal(f["field_y"][...], w["t1_fields/field"][..., 1].transpose(
            0, 1, 3, 2))
        assert np.array_equal(f["constant_field"][...],
                              w["t0_fields/constant_field"][...].transpose(0, 2, 1))
        assert f["a"][0] == 0.25 and f["time_varying_scalar"].shape == (2, 10)
    assert read_boundary_conditions(out)["x_periodic"]["bc_type"] == "periodic"


def test_limit_and_info(tmp_path, capsys):
    write_spec_file(tmp_path / "spec.hdf5")
    assert main(["import", "the_well", str(tmp_path / "spec.hdf5"), "--out",
                 str(tmp_path / "p.h5"), "--limit", "2", "-q"]) == 0
    assert h5py.File(tmp_path / "p.h5", "r")["density"].shape == (2, T, NY, NX)
    capsys.readouterr()
    assert main(["info", str(tmp_path / "p.h5")]) == 0
    text = capsys.readouterr().out
    assert "stress_yx (sample, time, y, x) float32" in text
    assert "source_format: The Well HDF5" in text and "y_wall: wall on y (lower)" in text
    assert main(["info", str(tmp_path / "spec.hdf5")]) == 1
    assert "`pdeml import the_well` converts it" in capsys.readouterr().err


# ------------------------------------------------------------------------------- export
def test_pdeml_well_pdeml_round_trip_is_bitwise(tmp_path):
    src = write_pdeml_file(tmp_path / "src.h5")
    result = export_the_well(src, tmp_path / "w" / "set.hdf5")
    assert result["fields"] == ["u", "v", "mask", "profile"] and not result["skipped"]
    assert result["scalars"] == ["viscosity", "inflow"]
    back = import_the_well(tmp_path / "w" / "set.hdf5", tmp_path / "back.h5")
    same_file(src, back)
    with h5py.File(tmp_path / "w" / "set.hdf5", "r") as g:
        assert g["dimensions/x"].dtype == np.float64  # 1/7 is not a float32
        assert g["boundary_conditions/left"].attrs["bc_type"] == "wall"
        assert g["boundary_conditions/left/values"][...].tolist() == [1.5]


def test_well_reads_the_export_without_warning_and_same_windows(tmp_path):
    src = write_pdeml_file(tmp_path / "src.h5")
    (tmp_path / "w").mkdir()
    export_the_well(src, tmp_path / "w" / "set.hdf5")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = well_dataset(tmp_path / "w", n_steps_input=2, n_steps_output=1)
        items = [ds[k] for k in range(len(ds))]
    assert ds.metadata.field_names[0] == ["u", "v"]
    assert ds.metadata.constant_field_names[0] == ["mask", "profile"]
    assert sorted(ds.metadata.boundary_condition_types) == ["periodic", "wall"]
    steps = StepDataset(src, ["u", "v"], history=2)
    assert len(steps) == len(ds) == 3 * 2
    with h5py.File(src, "r") as f:
        nu, mask, times = f["viscosity"][...], f["mask"][...], f["time"][...]
    for k, s in enumerate(items):
        x, y = steps[k]
        b, t = steps.pair_index(k)
        well_x = s["input_fields"].permute(0, 3, 2, 1).flatten(0, 1)  # (Ti*C, Y, X)
        assert torch.equal(well_x, x[:4]) and torch.equal(s["output_fields"][0].permute(
            2, 1, 0), y)
        assert torch.equal(s["constant_fields"][..., 0].T, torch.from_numpy(mask[b]).to(
            s["constant_fields"].dtype))
        assert s["constant_scalars"][0].item() == nu[b]
        assert np.allclose(s["input_time_grid"].numpy(), times[t - 1 : t + 1] - times[t - 1])
    assert s["boundary_conditions"].tolist() == [[0.0, 1.0], [2.0, 2.0]]  # x: wall | open


def test_well_round_trip_of_tensor_fields(tmp_path):
    write_spec_file(tmp_path / "spec.hdf5")
    import_the_well(tmp_path / "spec.hdf5", tmp_path / "p.h5")
    export_the_well(tmp_path / "p.h5", tmp_path / "again.hdf5")
    with h5py.File(tmp_path / "spec.hdf5", "r") as f, h5py.File(tmp_path / "again.hdf5",
                                                                  "r") as g:
        for path in ("t0_fields/density", "t0_fields/height", "t1_fields/velocity",
                     "t2_fields/stress", "scalars/gamma", "scalars/reynolds",
                     "scalars/energy", "scalars/forcing", "dimensions/x", "dimensions/time",
                     "boundary_conditions/y_wall/mask"):
            assert f[path].dtype == g[path].dtype and np.array_equal(f[path][()],
                                                                     g[path][()]), path
        assert list(g["t0_fields/height"].attrs["dim_varying"]) == [True, False]
        assert g.attrs["dataset_name"] == "spec_flow" and g.attrs["gamma"] == 1.4


def test_sample_varying_time_travels_as_a_variable(tmp_path):
    (tmp_path / "w").mkdir()
    write_spec_file(tmp_path / "spec.hdf5")
    times = np.arange(B * T, dtype=np.float32).reshape(B, T) / 8
    with h5py.File(tmp_path / "spec.hdf5", "a") as f:
        del f["dimensions/time"]
        f["dimensions"].create_dataset("time", data=times).attrs["sample_varying"] = True
    import_the_well(tmp_path / "spec.hdf5", tmp_path / "p.h5")
    with h5py.File(tmp_path / "p.h5", "r") as f:
        assert np.array_equal(f["trajectory_time"][...], times)
        assert f["time"][...].tolist() == list(range(T))
    export_the_well(tmp_path / "p.h5", tmp_path / "w" / "again.hdf5")
    with h5py.File(tmp_path / "w" / "again.hdf5", "r") as g:
        assert np.array_equal(g["dimensions/time"][...], times)
        assert g["dimensions/time"].attrs["sample_varying"]
    s = well_dataset(tmp_path / "w", n_steps_input=1, n_steps_output=1,
                     normalize_time_grid=False)[T - 1]  # trajectory 1, first window
    assert s["input_time_grid"].tolist() == [times[1, 0]]


# ------------------------------------------------------------------------------- bad input
def test_bad_files_give_one_line_errors_and_write_nothing(tmp_path):
    (tmp_path / "junk.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(DatasetError, match="not an HDF5 file"):
        import_the_well(tmp_path / "junk.hdf5", tmp_path / "o.h5")
    src = write_pdeml_file(tmp_path / "src.h5")
    with pytest.raises(DatasetError, match="is not a Well file: no attribute n_trajectories"):
        import_the_well(src, tmp_path / "o.h5")
    write_spec_file(tmp_path / "spec.hdf5")
    with h5py.File(tmp_path / "spec.hdf5", "a") as f:
        del f["t1_fields/velocity"]
    with pytest.raises(DatasetError, match="'t1_fields/velocity' is listed in field_names"):
        import_the_well(tmp_path / "spec.hdf5", tmp_path / "o.h5")
    write_spec_file(tmp_path / "spec.hdf5")
    with h5py.File(tmp_path / "spec.hdf5", "a") as f:
        f["t0_fields/density"][0, 0, 0, 0] = np.nan
    with pytest.raises(DatasetError, match="trajectory 0 of 'density' holds NaN"):
        import_the_well(tmp_path / "spec.hdf5", tmp_path / "o.h5")
    with h5netcdf.File(tmp_path / "steady.h5", "w") as f:
        create_layout(f, 2, {"x": np.arange(4.0)}, {"a": Variable(("x",))})
        f.attrs["pdeml_schema_version"] = "2"
    with pytest.raises(DatasetError, match="steady dataset cannot be exported"):
        export_the_well(tmp_path / "steady.h5", tmp_path / "o.hdf5")
    with pytest.raises(DatasetError, match="is not a pdeml file"):
        export_the_well(tmp_path / "spec.hdf5", tmp_path / "o.hdf5")
    export_the_well(src, tmp_path / "w.hdf5")
    with pytest.raises(DatasetError, match="is not a pdeml file"):  # an export is not either
        export_the_well(tmp_path / "w.hdf5", tmp_path / "o.hdf5")
    (tmp_path / "w.hdf5").unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.hdf5", "spec.hdf5",
                                                          "src.h5", "steady.h5"]


def test_cli_exit_codes(tmp_path, capsys):
    src = write_pdeml_file(tmp_path / "src.h5")
    assert main(["export-data", str(src), "--out", str(tmp_path / "w.hdf5"), "-q"]) == 0
    assert main(["export-data", str(src), "--out", str(tmp_path / "w.hdf5"), "-q"]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["export-data", str(src), "--out", str(tmp_path / "w.nc")]) == 1
    assert main(["import", "the_well", str(src), "--out", str(tmp_path / "x.h5")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "*.hdf5 or *.h5" in err[0] and "not a Well file" in err[1]
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "w.nc").exists()
