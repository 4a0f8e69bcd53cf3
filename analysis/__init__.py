"""Symbolic derivations (sympy): exact solutions, phi-functions, scheme coefficients, Brownian functionals,
predicted orders. `make coefficients` turns them into solvers/_coefficients.py."""

from seeds.analysis.orders import predicted_orders

__all__ = ["predicted_orders"]
