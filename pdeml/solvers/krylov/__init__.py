"""Krylov solvers with subspace recycling, preconditioners and sequence solving.

``GMRES(m)`` and ``GCRODR(m, k)`` share one ``solve(A, b, x0, rtol, atol, maxiter, M, callback)``
signature (scipy's argument names) and one convergence test on the true residual,
``norm(b - A @ x) <= max(rtol * norm(b), atol)``. :func:`solve_sequence` solves many related
systems in an order from :func:`sort_systems`, reusing the recycled subspace, the
preconditioner and the previous solution.
"""

from pdeml.solvers.krylov.base import (
    INFO_BREAKDOWN,
    INFO_CONVERGED,
    INFO_NONFINITE,
    SolveResult,
)
from pdeml.solvers.krylov.gcrodr import GCRODR
from pdeml.solvers.krylov.gmres import GMRES
from pdeml.solvers.krylov.precond import Preconditioner, amg, ilu, make_preconditioner
from pdeml.solvers.krylov.sequence import (
    SequenceResult,
    SystemStats,
    fourier_features,
    solve_sequence,
    sort_systems,
)

__all__ = [
    "GCRODR",
    "GMRES",
    "INFO_BREAKDOWN",
    "INFO_CONVERGED",
    "INFO_NONFINITE",
    "Preconditioner",
    "SequenceResult",
    "SolveResult",
    "SystemStats",
    "amg",
    "fourier_features",
    "ilu",
    "make_preconditioner",
    "solve_sequence",
    "sort_systems",
]
