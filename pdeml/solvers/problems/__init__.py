"""PDE problems, one per file; each registers itself under its ``name``."""

from pdeml.solvers.problems.base import Problem, Variable, make_problem
from pdeml.solvers.problems.burgers import Burgers as Burgers
from pdeml.solvers.problems.cfdbench import Cavity as Cavity
from pdeml.solvers.problems.cfdbench import Channel as Channel
from pdeml.solvers.problems.cfdbench import Cylinder as Cylinder
from pdeml.solvers.problems.cfdbench import Step as Step
from pdeml.solvers.problems.darcy import DarcyFlow
from pdeml.solvers.problems.darcy_holes import DarcyHoles as DarcyHoles
from pdeml.solvers.problems.heat import SteadyHeat as SteadyHeat
from pdeml.solvers.problems.helmholtz import Helmholtz as Helmholtz
from pdeml.solvers.problems.linear import LinearProblem as LinearProblem
from pdeml.solvers.problems.linear3d import Darcy3D as Darcy3D
from pdeml.solvers.problems.linear3d import Helmholtz3D as Helmholtz3D
from pdeml.solvers.problems.navier_stokes import NavierStokes2D as NavierStokes2D
from pdeml.solvers.problems.poisson import Poisson as Poisson
from pdeml.solvers.problems.two_phase import Dam as Dam
from pdeml.solvers.problems.two_phase import Tube as Tube

__all__ = ["Problem", "Variable", "make_problem", "DarcyFlow"]
