"""PDE problems, one per file; each registers itself under its ``name``."""

from pdeml.solvers.problems.base import Problem, Variable, make_problem
from pdeml.solvers.problems.burgers import Burgers
from pdeml.solvers.problems.darcy import DarcyFlow
from pdeml.solvers.problems.navier_stokes import NavierStokes2D

__all__ = ["Burgers", "DarcyFlow", "NavierStokes2D", "Problem", "Variable", "make_problem"]
