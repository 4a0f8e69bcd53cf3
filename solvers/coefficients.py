"""Public runtime access to the generated coefficients (solvers/_coefficients.py, see `make coefficients`).

All functions take Python floats, numpy arrays or torch tensors of any dtype and device.
"""

from __future__ import annotations

from seeds.solvers import _coefficients as generated
from seeds.solvers._coefficients import KERNEL_RATES, SCHEME_WEIGHTS, phi_1, phi_2, phi_3

__all__ = ["KERNEL_RATES", "SCHEME_WEIGHTS", "phi", "phi_1", "phi_2", "phi_3", "parameterisation"]

_PHI = {1: phi_1, 2: phi_2, 3: phi_3}


def phi(k: int, z):
    """phi_k(z) = sum_j z^j / (j + k)!, for k = 1, 2, 3 (phi_1(z) = (e^z - 1)/z, ...), accurate for all z."""
    try:
        function = _PHI[k]
    except (KeyError, TypeError):
        raise ValueError(f"phi(k, z) is generated for k in {sorted(_PHI)}, got k = {k!r}") from None
    return function(z)


def parameterisation(name: str):
    """The generated pieces of one parameterisation ('noise', 'data', 'edm' or 'edm_ode') as a namespace.

    Attributes: kernel_variable, kernel_variable_increment, log_snr, linear_factor, step_scale, noise_scale
    (see the generated docstrings) and rate.
    """
    if name not in KERNEL_RATES:
        raise ValueError(f"unknown parameterisation {name!r}; expected one of {sorted(KERNEL_RATES)}")
    pieces = (
        "kernel_variable",
        "kernel_variable_increment",
        "log_snr",
        "linear_factor",
        "step_scale",
        "noise_scale",
    )
    namespace = {piece: getattr(generated, f"{name}_{piece}") for piece in pieces}
    return type(name, (), {**{k: staticmethod(v) for k, v in namespace.items()}, "rate": KERNEL_RATES[name]})
