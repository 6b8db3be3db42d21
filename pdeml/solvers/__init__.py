"""Numerical solvers: PDE problems, random input fields, Krylov solvers with recycling."""

from pdeml.solvers.krylov import GCRODR, GMRES, SolveResult

__all__ = ["GCRODR", "GMRES", "SolveResult"]
