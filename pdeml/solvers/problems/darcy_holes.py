"""Darcy flow around impermeable circular inclusions: an irregular-mesh (point-cloud) dataset.

``-div(a grad u) = f`` on ``Omega = (0, 1)^2`` minus 1 to ``max_holes`` random disks, with
``u = 0`` on the outer square and no flux, ``a grad u . n = 0``, through the hole boundaries.
Each sample has its own geometry and mesh: a triangular lattice of spacing ``h`` outside the
holes plus points along every boundary, Delaunay-triangulated (scipy), the triangles inside a
hole dropped. The equation is solved with P1 finite elements (scikit-fem); the coefficient is
the P1 interpolant of a log-normal random field. Samples are stored as padded point clouds
``(sample, point, dim)`` with ``n_points(sample)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import scipy.sparse.linalg as spla
from scipy.spatial import Delaunay

from pdeml.solvers.fields import _basis
from pdeml.solvers.problems.base import Problem, Variable, box_boundaries

Field = Callable[[np.ndarray, np.ndarray], np.ndarray]
EDGE = 1e-9  # tolerance for "on the outer square"


def disk_points(center: np.ndarray, radius: float, h: float) -> np.ndarray:
    """Points spaced about ``h`` on a circle (at least 8), ``(m, 2)``."""
    m = max(8, math.ceil(2 * math.pi * radius / h))
    t = 2 * math.pi * np.arange(m) / m
    return center + radius * np.stack([np.cos(t), np.sin(t)], axis=1)


def lattice_points(h: float) -> np.ndarray:
    """Boundary points of the unit square (spacing ``<= h``) and an interior triangular lattice
    of spacing ``h`` kept ``0.6 h`` away from the square's edges."""
    n = math.ceil(1.0 / h)
    s = np.arange(n) / n
    edges = np.concatenate([np.stack([s, 0 * s], 1), np.stack([1 + 0 * s, s], 1),
                            np.stack([1 - s, 1 + 0 * s], 1), np.stack([0 * s, 1 - s], 1)])
    dy = h * math.sqrt(3) / 2
    rows = []
    for j, y in enumerate(np.arange(0.6 * h, 1 - 0.6 * h + 1e-12, dy)):
        x = np.arange(0.6 * h + (h / 2 if j % 2 else 0.0), 1 - 0.6 * h + 1e-12, h)
        rows.append(np.stack([x, np.full_like(x, y)], 1))
    return np.concatenate([edges, *rows])


def build_mesh(holes: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate the unit square minus the disks ``holes`` (rows ``cx, cy, r``).

    Returns
    -------
    points, triangles
        ``(n, 2)`` coordinates and ``(m, 3)`` vertex indices, counter-clockwise, every point
        used. Deterministic: no randomness beyond ``holes``.
    """
    base = lattice_points(h)
    keep = np.ones(len(base), dtype=bool)
    for cx, cy, r in holes:
        keep &= np.hypot(base[:, 0] - cx, base[:, 1] - cy) > r + 0.6 * h
    points = np.concatenate([base[keep], *[disk_points(np.array([cx, cy]), r, h)
                                           for cx, cy, r in holes]])
    tri = Delaunay(points).simplices
    centroid = points[tri].mean(axis=1)
    inside = np.zeros(len(tri), dtype=bool)
    for cx, cy, r in holes:
        inside |= np.hypot(centroid[:, 0] - cx, centroid[:, 1] - cy) < r
    a, b, c = (points[tri[:, i]] for i in range(3))
    area = 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1])
                  - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))
    tri = tri[~inside & (np.abs(area) > 1e-12 * h * h)]
    area = area[~inside & (np.abs(area) > 1e-12 * h * h)]
    tri[area < 0] = tri[area < 0][:, [0, 2, 1]]
    used, tri = np.unique(tri, return_inverse=True)
    return points[used], tri.reshape(-1, 3)


def solve_p1(points: np.ndarray, triangles: np.ndarray, a: np.ndarray | Field,
             f: float | Field = 1.0, dirichlet: Field | None = None,
             flux: Field | None = None) -> np.ndarray:
    """P1 finite elements for ``-div(a grad u) = f``, Dirichlet on the outer square.

    Parameters
    ----------
    points, triangles
        The mesh (see :func:`build_mesh`).
    a
        Nodal values (used through their P1 interpolant) or a function ``a(x, y)``.
    f
        Constant or function ``f(x, y)`` (evaluated at quadrature points).
    dirichlet
        ``u`` on the outer square, ``g(x, y)``; ``None`` for ``u = 0``.
    flux
        ``a grad u . n`` on the other (hole) boundaries, ``q(x, y, nx, ny)`` with ``n`` the
        domain's outward normal; ``None`` for no flux.

    Returns
    -------
    numpy.ndarray
        Nodal values of ``u``.
    """
    from skfem import (
        Basis,
        BilinearForm,
        ElementTriP1,
        FacetBasis,
        LinearForm,
        MeshTri,
        asm,
        condense,
    )
    from skfem.helpers import dot, grad

    mesh = MeshTri(points.T.copy(), triangles.T.copy())
    basis = Basis(mesh, ElementTriP1(), intorder=4)
    coef = (basis.interpolate(np.asarray(a)) if isinstance(a, np.ndarray)
            else a(*basis.global_coordinates().value))

    @BilinearForm
    def stiffness(u: Any, v: Any, w: Any) -> Any:
        return w.a * dot(grad(u), grad(v))

    @LinearForm
    def load(v: Any, w: Any) -> Any:
        return (f(w.x[0], w.x[1]) if callable(f) else f) * v

    A = asm(stiffness, basis, a=coef)
    b = asm(load, basis)
    x, y = mesh.p
    outer = (np.minimum(np.minimum(x, 1 - x), np.minimum(y, 1 - y)) < EDGE)
    boundary = mesh.boundary_facets()
    inner_facets = boundary[~outer[mesh.facets[:, boundary]].all(axis=0)]
    if flux is not None and len(inner_facets):
        fbasis = FacetBasis(mesh, ElementTriP1(), facets=inner_facets, intorder=4)

        @LinearForm
        def neumann(v: Any, w: Any) -> Any:
            return flux(w.x[0], w.x[1], w.n[0], w.n[1]) * v

        b = b + asm(neumann, fbasis)
    u = np.zeros(mesh.nvertices)
    D = np.flatnonzero(outer)
    if dirichlet is not None:
        u[D] = dirichlet(x[D], y[D])
    A_i, b_i, u_full, I = condense(A, b, x=u, D=D)
    u_full[I] = spla.spsolve(A_i.tocsc(), b_i)
    return u_full


def l2_error(points: np.ndarray, triangles: np.ndarray, u: np.ndarray, exact: Field) -> float:
    """``||u_h - exact||_L2(Omega_h)`` of nodal P1 values ``u`` on the mesh, by quadrature."""
    from skfem import Basis, ElementTriP1, Functional, MeshTri, asm

    mesh = MeshTri(points.T.copy(), triangles.T.copy())
    basis = Basis(mesh, ElementTriP1(), intorder=6)

    @Functional
    def squared(w: Any) -> Any:
        return (w.uh - exact(w.x[0], w.x[1])) ** 2

    return float(np.sqrt(asm(squared, basis, uh=basis.interpolate(u))))


class DarcyHoles(Problem):
    """Darcy flow on the unit square with random impermeable disks, on per-sample meshes.

    Discretization: P1 finite elements on an unstructured Delaunay mesh of spacing about
    ``h`` (scikit-fem), so the L2 error is second order (``order = 2``, tested by a
    manufactured solution with curved-boundary Neumann data).

    Parameters
    ----------
    h
        Mesh spacing (lattice and boundary points).
    min_holes, max_holes
        Number of disks, drawn uniformly.
    radius
        ``(min, max)`` disk radius.
    gap
        Least distance between two disks and between a disk and the square.
    forcing
        Constant source ``f``.
    alpha, tau, sigma, n_terms
        Log-normal coefficient ``a = exp(g)``, ``g`` a Neumann-cosine Gaussian random field with
        covariance ``sigma^2 (-Laplacian + tau^2)^(-alpha)`` (as :mod:`pdeml.solvers.fields`),
        evaluated at the mesh nodes.
    """

    name: ClassVar[str] = "darcy_holes"
    order: ClassVar[int] = 2
    input_vars: ClassVar[tuple[str, ...]] = ("a", "sdf")
    output_vars: ClassVar[tuple[str, ...]] = ("u",)

    def __init__(self, h: float = 0.04, min_holes: int = 1, max_holes: int = 4,
                 radius: tuple[float, float] | list[float] = (0.06, 0.16), gap: float = 0.05,
                 forcing: float = 1.0, alpha: float = 2.0, tau: float = 3.0,
                 sigma: float | None = None, n_terms: int = 32) -> None:
        r_min, r_max = (float(r) for r in radius)
        if not 0.005 <= h <= 0.2:
            raise ValueError(f"darcy_holes h must be in [0.005, 0.2], got {h}")
        if not 1 <= int(min_holes) <= int(max_holes) <= 16:
            raise ValueError("darcy_holes needs 1 <= min_holes <= max_holes <= 16")
        if not 0 < r_min <= r_max or r_max + gap >= 0.5 or r_min < h / 2:
            raise ValueError(f"darcy_holes radius must satisfy h / 2 <= min <= max < 0.5 - gap, "
                             f"got {radius}")
        self.h, self.min_holes, self.max_holes = float(h), int(min_holes), int(max_holes)
        self.radius, self.gap, self.forcing = (r_min, r_max), float(gap), float(forcing)
        self.alpha, self.tau, self.n_terms = float(alpha), float(tau), int(n_terms)
        self.sigma = float(self.tau ** (self.alpha - 1) if sigma is None else sigma)
        # Holes only remove lattice points and add boundary points: this bounds every mesh.
        ring = max(8, math.ceil(2 * math.pi * r_max / h))
        self.capacity = len(lattice_points(self.h)) + self.max_holes * ring

    def variables(self) -> dict[str, Variable]:
        return {
            "coords": Variable(("point", "dim"), "1", "node coordinates (x, y), padded"),
            "a": Variable(("point",), "1", "permeability at the nodes"),
            "sdf": Variable(("point",), "1", "distance to the nearest hole boundary"),
            "u": Variable(("point",), "1", "pressure at the nodes (P1 FEM)"),
            "n_points": Variable((), "1", "number of valid points (the rest is padding)"),
            "holes": Variable(("hole", "param"), "1", "disks (cx, cy, r), zero-padded"),
            "n_holes": Variable((), "1", "number of disks"),
        }

    def coords(self) -> dict[str, np.ndarray]:
        return {"point": np.arange(self.capacity), "dim": np.arange(2),
                "hole": np.arange(self.max_holes), "param": np.arange(3)}

    def boundary_conditions(self) -> dict[str, dict[str, Any]]:
        # a point cloud has no x/y dimension to mask: the conditions are attributes only
        outer = {k: {**v, "mask": False} for k, v in box_boundaries("dirichlet", ("u",)).items()}
        return {**outer, "holes": {"bc_type": "neumann", "dim": "hole", "side": "both",
                                   "fields": ["u"], "mask": False, "sample_varying": True}}

    def attrs(self) -> dict[str, Any]:
        keys = ("h", "min_holes", "max_holes", "gap", "forcing", "alpha", "tau", "sigma",
                "n_terms", "capacity")
        return {**{k: getattr(self, k) for k in keys}, "radius": list(self.radius),
                "layout": "pointcloud",
                "solver": "scikit-fem P1 on a Delaunay mesh, scipy spsolve"}

    def draw_holes(self, rng: np.random.Generator) -> np.ndarray:
        """Non-overlapping disks ``(n, 3)``, drawn by rejection (deterministic given ``rng``)."""
        n = int(rng.integers(self.min_holes, self.max_holes + 1))
        holes: list[tuple[float, float, float]] = []
        for _ in range(200 * n):
            if len(holes) == n:
                break
            r = rng.uniform(*self.radius)
            cx, cy = rng.uniform(r + self.gap, 1 - r - self.gap, size=2)
            if all(math.hypot(cx - x, cy - y) > r + q + self.gap for x, y, q in holes):
                holes.append((cx, cy, r))
        return np.array(holes, dtype=float).reshape(-1, 3)

    def coefficient(self, points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Log-normal field at ``points``: the KL expansion of
        :func:`pdeml.solvers.fields.gaussian_random_field`, evaluated off the grid."""
        k = np.arange(self.n_terms)
        lam = (np.pi * k) ** 2
        coef = self.sigma * (lam[:, None] + lam[None, :] + self.tau**2) ** (-self.alpha / 2)
        coef[0, 0] = 0.0
        xi = coef * rng.standard_normal(coef.shape)
        phi_y, _ = _basis(points[:, 1], self.n_terms, "neumann")
        phi_x, _ = _basis(points[:, 0], self.n_terms, "neumann")
        return np.exp(np.einsum("pi,ij,pj->p", phi_y, xi, phi_x))

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        holes = self.draw_holes(rng)
        points, triangles = build_mesh(holes, self.h)
        a = self.coefficient(points, rng)
        u = solve_p1(points, triangles, a, self.forcing)
        dist = np.hypot(points[:, None, 0] - holes[:, 0], points[:, None, 1] - holes[:, 1])
        sdf = np.maximum((dist - holes[:, 2]).min(axis=1), 0.0)
        n = len(points)
        if n > self.capacity:  # cannot happen by construction; never write a truncated mesh
            raise RuntimeError(f"mesh has {n} points, more than the capacity {self.capacity}")

        def pad(v: np.ndarray) -> np.ndarray:
            out = np.zeros((self.capacity, *v.shape[1:]))
            out[:n] = v
            return out

        hole_rows = np.zeros((self.max_holes, 3))
        hole_rows[: len(holes)] = holes
        return {"coords": pad(points), "a": pad(a), "sdf": pad(sdf), "u": pad(u),
                "n_points": np.array(float(n)), "holes": hole_rows,
                "n_holes": np.array(float(len(holes)))}
