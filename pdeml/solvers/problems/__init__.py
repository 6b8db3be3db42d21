"""PDE problems, one per file; each registers itself under its ``name``."""

from pdeml.solvers.problems.base import Problem, Variable, make_problem
from pdeml.solvers.problems.darcy import DarcyFlow

__all__ = ["Problem", "Variable", "make_problem", "DarcyFlow"]
