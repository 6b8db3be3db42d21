"""3-D Darcy and Helmholtz: manufactured-solution order, the 2-D stencil as a special case,
and the generator path (sorted sequence, auto solver, verified residuals)."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from pdeml.solvers.fields import grid_points, lognormal
from pdeml.solvers.problems import Darcy3D, Helmholtz3D, make_problem
from pdeml.solvers.problems.linear import assemble_diffusion
from pdeml.solvers.problems.linear3d import assemble_diffusion_nd

PI = np.pi
SIZES = (9, 13, 17)


def _grid(s):
    x = grid_points(s, "bounded")
    return np.meshgrid(x, x, x, indexing="ij")


def _solve(A, b):
    # CG would do for Darcy; sparse LU keeps the test free of solver tolerances.
    return spla.splu(A.tocsc()).solve(b)


def _order(errors):
    h = [1.0 / (s - 1) for s in SIZES]
    return float(np.polyfit(np.log(h), np.log(errors), 1)[0])


def test_darcy3d_manufactured_solution_is_second_order():
    errors = []
    for s in SIZES:
        Z, Y, X = _grid(s)
        a = 1 + 0.5 * np.sin(2 * X) * np.cos(Y + Z)
        ax = np.cos(2 * X) * np.cos(Y + Z)
        ay = az = -0.5 * np.sin(2 * X) * np.sin(Y + Z)
        u = np.sin(PI * X) * np.sin(PI * Y) * np.sin(PI * Z)
        ux = PI * np.cos(PI * X) * np.sin(PI * Y) * np.sin(PI * Z)
        uy = PI * np.sin(PI * X) * np.cos(PI * Y) * np.sin(PI * Z)
        uz = PI * np.sin(PI * X) * np.sin(PI * Y) * np.cos(PI * Z)
        f = 3 * PI**2 * a * u - (ax * ux + ay * uy + az * uz)  # -div(a grad u)
        A, b = Darcy3D(resolution=s).assemble(a, f)
        assert abs(A - A.T).max() == 0.0  # symmetric finite volumes
        errors.append(np.abs(_solve(A, b) - u[1:-1, 1:-1, 1:-1].ravel()).max())
    assert errors[-1] < errors[0]
    assert 1.8 <= _order(errors) <= 2.3, errors


def test_helmholtz3d_manufactured_solution_is_second_order():
    errors = []
    for s in SIZES:
        Z, Y, X = _grid(s)
        prob = Helmholtz3D(resolution=s, k0=6.0)
        k = prob.k0 * (1 + 0.2 * np.tanh(np.sin(3 * X) * np.cos(2 * Y) + Z))
        u = np.sin(PI * X) * np.sin(2 * PI * Y) * np.sin(PI * Z)
        f = (6 * PI**2 - k**2 * (1 + 1j * prob.gamma)) * u
        A, b = prob.assemble(k, f)
        errors.append(np.abs(_solve(A, b) - u[1:-1, 1:-1, 1:-1].ravel()).max())
    assert 1.8 <= _order(errors) <= 2.3, errors


def test_nd_assembly_reduces_to_the_2d_stencil():
    a = lognormal((12, 12), np.random.default_rng(0))
    f = np.random.default_rng(1).standard_normal((12, 12))
    A2, b2 = assemble_diffusion(a, 1 / 11, f)
    An, bn = assemble_diffusion_nd(a, 1 / 11, f)
    assert abs(A2 - An).max() < 1e-12 * abs(A2).max()
    np.testing.assert_allclose(bn, b2)


@pytest.mark.parametrize("name", ["darcy3d", "helmholtz3d"])
def test_3d_generator_path_verifies_every_sample(name):
    prob = make_problem(name, resolution=10)
    rngs = [np.random.default_rng(i) for i in range(4)]
    out = prob.sample_batch(rngs)
    assert len(out) == 4
    for sample in out:
        for var, spec in prob.variables().items():
            assert sample[var].ndim == len(spec.dims)
        assert sample["solver_residual"] <= prob.rtol
    # "auto" resolves to an iterative method in 3-D and records it per sample.
    assert {int(s["solver_method"]) for s in out} <= {1, 2, 3}
    assert prob.coords().keys() == {"z", "y", "x"}


def test_3d_bad_options_fail_with_a_message():
    with pytest.raises(ValueError, match="resolution"):
        Darcy3D(resolution=3)
    with pytest.raises(ValueError, match="coefficient"):
        Darcy3D(coefficient="smooth")
    with pytest.raises(ValueError, match="gamma"):
        Helmholtz3D(gamma=0.0)
