"""Numerical solvers: PDE problems, random input fields, Krylov solvers."""
