"""Darcy flow around holes: FEM verified by a manufactured solution, meshes, point-cloud files
and GNOT training through the pipeline on them."""

import json

import numpy as np
import pytest
import torch

from pdeml.datasets.pointcloud import PointCloudDataset, collate_points, fit_masked
from pdeml.solvers.fields import lognormal
from pdeml.solvers.problems import make_problem
from pdeml.solvers.problems.darcy_holes import DarcyHoles, build_mesh, l2_error, solve_p1

PI = np.pi
HOLES = np.array([[0.3, 0.35, 0.15], [0.7, 0.65, 0.12]])


def exact(x, y):
    return np.sin(PI * x) * np.sin(PI * y) + x * y


def grad_exact(x, y):
    return PI * np.cos(PI * x) * np.sin(PI * y) + y, PI * np.sin(PI * x) * np.cos(PI * y) + x


def coef(x, y):
    return 1 + x**2 + 0.5 * y


def source(x, y):
    ux, uy = grad_exact(x, y)
    return -(2 * x * ux + 0.5 * uy - 2 * PI**2 * coef(x, y) * np.sin(PI * x) * np.sin(PI * y))


def flux(x, y, nx, ny):
    ux, uy = grad_exact(x, y)
    return coef(x, y) * (ux * nx + uy * ny)


def manufactured_error(h, with_flux=True):
    points, tri = build_mesh(HOLES, h)
    u = solve_p1(points, tri, coef(points[:, 0], points[:, 1]), source, exact,
                 flux if with_flux else None)
    return l2_error(points, tri, u, exact)


def test_manufactured_solution_converges_at_declared_order():
    # Non-zero Dirichlet data on the square, Neumann data on the curved hole boundaries,
    # variable coefficient; the meshes are the problem's own unstructured ones.
    hs = np.array([0.1, 0.05, 0.025])
    errors = np.array([manufactured_error(h) for h in hs])
    slope = np.polyfit(np.log(hs), np.log(errors), 1)[0]
    assert abs(slope - DarcyHoles.order) < 0.25, (slope, errors)
    assert errors[-1] < 1e-3
    # Dropping the hole flux leaves an O(1) error: the Neumann term is really imposed.
    assert manufactured_error(0.025, with_flux=False) > 20 * errors[-1]


def test_mesh_covers_the_domain_and_nothing_inside_the_holes():
    points, tri = build_mesh(HOLES, 0.04)
    a, b, c = (points[tri[:, i]] for i in range(3))
    area = 0.5 * ((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])
    assert area.min() > 0  # counter-clockwise, no degenerate triangles
    rings = [int(np.ceil(2 * PI * r / 0.04)) for _, _, r in HOLES]
    polygons = sum(0.5 * m * r**2 * np.sin(2 * PI / m)
                   for m, (_, _, r) in zip(rings, HOLES, strict=True))
    assert abs(area.sum() - (1 - polygons)) < 1e-10
    dist = np.hypot(points[:, None, 0] - HOLES[:, 0], points[:, None, 1] - HOLES[:, 1])
    assert (dist >= HOLES[:, 2] - 1e-12).all()
    edges = np.stack([b - a, c - b, a - c])
    lengths = np.linalg.norm(edges, axis=-1)
    assert lengths.max() / lengths.min() < 6  # no slivers: a quality lattice mesh


def test_coefficient_is_the_grid_field_evaluated_off_grid():
    problem = DarcyHoles(n_terms=64)
    x = np.linspace(0, 1, 9)
    X, Y = np.meshgrid(x, x)  # rows are y
    pts = np.stack([X.ravel(), Y.ravel()], 1)
    off_grid = problem.coefficient(pts, np.random.default_rng(3)).reshape(9, 9)
    np.testing.assert_allclose(off_grid, lognormal((9, 9), np.random.default_rng(3)), rtol=1e-10)


def test_samples_are_deterministic_padded_and_solved():
    problem = make_problem("darcy_holes", h=0.06, max_holes=3)
    s1, s2 = (problem.sample(np.random.default_rng(7)) for _ in range(2))
    assert all(np.array_equal(s1[k], s2[k]) for k in s1)
    n = int(s1["n_points"])
    assert 0 < n <= problem.capacity and s1["coords"].shape == (problem.capacity, 2)
    assert not s1["u"][n:].any() and not s1["coords"][n:].any()
    on_square = np.minimum(s1["coords"][:n], 1 - s1["coords"][:n]).min(axis=1) < 1e-9
    assert on_square.any() and np.abs(s1["u"][:n][on_square]).max() == 0.0
    assert s1["u"][:n].max() > 0  # positive source, zero on the square
    with pytest.raises(ValueError, match="radius"):
        DarcyHoles(radius=(0.3, 0.6))


@pytest.fixture(scope="module")
def holes_dir(tmp_path_factory):
    from pdeml.datasets import generate_dataset

    out = tmp_path_factory.mktemp("holes")
    generate_dataset(DarcyHoles(h=0.08, max_holes=3), out, {"train": 12, "test": 4}, seed=0,
                     chunk=5, progress=False)
    return out


def test_file_is_an_xarray_point_cloud(holes_dir):
    import xarray as xr

    with xr.open_dataset(holes_dir / "train.h5", engine="h5netcdf") as ds:
        assert ds["coords"].dims == ("sample", "point", "dim")
        assert ds["u"].dims == ("sample", "point") and ds["n_points"].dims == ("sample",)
        assert json.loads(ds.attrs["problem_settings"])["layout"] == "pointcloud"


def test_batches_and_normalizers_ignore_padding(holes_dir):
    ds = PointCloudDataset(holes_dir / "train.h5", ["a", "sdf"], ["u"])
    coords, x, y, mask = collate_points([ds[i] for i in range(4)])
    assert mask.sum(1).tolist() == ds.counts[:4].tolist() and mask.shape[1] == max(ds.counts[:4])
    norm = fit_masked(1, ds.y, ds.counts)
    valid = torch.cat([ds.y[i, : ds.counts[i], 0] for i in range(len(ds))]).double()
    assert torch.allclose(norm.mean.double(), valid.mean()[None], atol=1e-6)
    assert norm.mean.item() > ds.y[..., 0].mean().item()  # the zero padding would pull it down


def test_gnot_trains_on_point_clouds_through_the_pipeline(holes_dir, tmp_path, capsys):
    from pdeml.trainers.fit import train

    cfg = {"seed": 0,
           "data": {"train": str(holes_dir / "train.h5"), "test": str(holes_dir / "test.h5"),
                    "batch_size": 4, "val_fraction": 0.25},
           "model": {"name": "GNOT", "hidden_channels": 16, "n_layers": 1, "n_heads": 2},
           "module": {"lr": 3e-3},
           "trainer": {"max_epochs": 2, "enable_progress_bar": False}}
    result = train(cfg, tmp_path / "run")
    assert 0 < result["test_l2"] < 2
    resolved = (tmp_path / "run" / "config.yaml").read_text()
    assert "space_dim: 2" in resolved and "in_channels: 2" in resolved
    from pdeml.config import ConfigError

    with pytest.raises(ConfigError, match="does not take point clouds"):
        train({**cfg, "model": {"name": "FNO"}}, tmp_path / "fno")
    from pdeml.cli import main

    for verb in (["evaluate", str(tmp_path / "run")],
                 ["export", str(tmp_path / "run"), "--out", str(tmp_path / "m.pt2")]):
        assert main(verb) == 1
        assert "holds point clouds" in capsys.readouterr().err  # not a shape error
    assert not (tmp_path / "m.pt2").exists()


def test_training_loss_covers_valid_points_only():
    from pdeml.operators import GNOT
    from pdeml.trainers.module import OperatorModule

    module = OperatorModule(GNOT(1, 1, hidden_channels=8, n_layers=1, n_heads=2)).eval()
    coords, x, y = torch.rand(2, 10, 2), torch.randn(2, 10, 1), torch.randn(2, 10, 1)
    mask = torch.ones(2, 10, dtype=torch.bool)

    def pad(t):
        return torch.cat([t, torch.full((2, 5, t.shape[-1]), 7.0)], 1)

    padded_mask = torch.cat([mask, torch.zeros(2, 5, dtype=torch.bool)], 1)
    with torch.no_grad():
        plain = module.loss_fn(*module._predict((coords, x, y, mask))[:2])
        padded = module.loss_fn(*module._predict((pad(coords), pad(x), pad(y), padded_mask))[:2])
        unmasked = module.loss_fn(module.surrogate(pad(coords), pad(x)), pad(y))
    assert torch.allclose(plain, padded, atol=1e-6)
    assert not torch.allclose(plain, unmasked, atol=1e-3)
