"""The Martin & Moyce (1952) collapse of a water column: setup, measurements and their data.

Martin, J. C. & Moyce, W. J. (1952), Part IV. An experimental study of the collapse of liquid
columns on a rigid horizontal plane, Phil. Trans. R. Soc. Lond. A 244, 312-324. A column of
width ``a`` and height ``2a`` (their ``n^2 = 2``) collapses along a dry floor. Their variables:
front ``Z = x / a`` against ``T = t sqrt(2 g / a)``, residual column height ``eta = h / (2a)``
against ``tau = t sqrt(g / a)``. The values below are digitised from their tables and figures
(cited as facts; the tables are as commonly re-tabulated in VOF/SPH validation scripts, e.g.
Ocellaris' and PySPH's dam-break examples): two column sizes, ``a`` = 2.25 in and 1.125 in,
whose differences are the experiment's own scatter.
"""

from __future__ import annotations

import numpy as np

from pdeml.solvers.vof import VOFSolver

# front, a = 2.25 in (Tables 2 and 6): T, Z
MM_FRONT_T = (0.41, 0.84, 1.19, 1.43, 1.63, 1.83, 1.98, 2.20, 2.32, 2.51, 2.65, 2.83, 2.98,
              3.11, 3.33)
MM_FRONT_Z = (1.11, 1.22, 1.44, 1.67, 1.89, 2.11, 2.33, 2.56, 2.78, 3.00, 3.22, 3.44, 3.67,
              3.89, 4.11)
# front, a = 1.125 in (Fig. 3): T, Z
MM_FRONT_SMALL_T = (0.849, 1.212, 1.602, 2.283, 2.950, 3.598)
MM_FRONT_SMALL_Z = (1.245, 1.443, 1.884, 2.689, 3.728, 4.528)
# residual height, a = 2.25 in: tau, eta
MM_HEIGHT_TAU = (0.56, 0.77, 0.93, 1.08, 1.28, 1.46, 1.66, 1.84, 2.00, 2.21, 2.45, 2.70, 3.06)
MM_HEIGHT_ETA = (0.94, 0.89, 0.83, 0.78, 0.72, 0.67, 0.61, 0.56, 0.50, 0.44, 0.39, 0.33, 0.28)

COLUMN = 0.05715  # a = 2.25 in, m


def dam_break(cells: int, a: float = COLUMN, length: float = 6.0, height: float = 2.5,
              **options: object) -> VOFSolver:
    """A closed tank ``length a`` x ``height a`` with the ``a x 2a`` water column at its left
    wall, ``cells`` per ``a``; water 1000 kg/m^3 and air (ratio 816), gravity 9.81."""
    nx, ny = int(round(length * cells)), int(round(height * cells))
    lx, ly = nx * a / cells, ny * a / cells
    X, Y = np.meshgrid((np.arange(nx) + 0.5) * a / cells, (np.arange(ny) + 0.5) * a / cells)
    alpha = ((X < a) & (Y < 2 * a)).astype(float)
    return VOFSolver(nx, ny, lx, ly, alpha, **options)


def front_and_height(solver: VOFSolver, a: float = COLUMN) -> tuple[float, float]:
    """``Z``: water length of the bottom cell row over ``a`` (sub-cell: the row's summed
    fraction); ``eta``: water depth of the wall column over ``2a``."""
    return (float(solver.alpha[0].sum() * solver.dx / a),
            float(solver.alpha[:, 0].sum() * solver.dy / (2 * a)))


def collapse(cells: int, times: np.ndarray, a: float = COLUMN,
             **options: object) -> tuple[np.ndarray, np.ndarray, VOFSolver]:
    """``Z`` and ``eta`` at the dimensionless times ``T = t sqrt(2 g / a)`` given."""
    solver = dam_break(cells, a, **options)
    scale = np.sqrt(2 * solver.g / a)
    z, eta = [], []
    for T in times:
        solver.advance_to(float(T) / scale)
        zi, ei = front_and_height(solver, a)
        z.append(zi)
        eta.append(ei)
    return np.array(z), np.array(eta), solver
