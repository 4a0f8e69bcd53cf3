"""Exponential integrals and the phi-functions they define (docs/mathematics.md, "The schemes").

Everything here is derived by sympy/mpmath: the closed forms come out of `sympy.integrate`, the Taylor
coefficients out of `sympy.series`, and the switch-over point between the two numerical forms out of an
error model evaluated with mpmath.
"""

from __future__ import annotations

import functools
import math

import mpmath
import sympy as sp

z = sp.Symbol("z")
h = sp.Symbol("h", positive=True)
tau = sp.Symbol("tau", nonnegative=True)
kappa = sp.Symbol("kappa", nonzero=True, real=True)

PHI_ORDERS = (1, 2, 3)
FLOAT64_UNIT_ROUNDOFF = 2.0**-53
# Design target for the generated float64 evaluation; the test budget is 1e-14, this leaves headroom.
FLOAT64_TARGET = 4e-15


@functools.cache
def exponential_integral(k: int) -> sp.Expr:
    """int_0^h e^{kappa (h - tau)} tau^k dtau in closed form."""
    integrand = sp.exp(kappa * (h - tau)) * tau**k
    return sp.simplify(sp.integrate(integrand, (tau, 0, h), conds="none"))


@functools.cache
def phi_closed_form(k: int) -> sp.Expr:
    """phi_k(z), read off the exponential integral.

    int_0^h e^{kappa(h-tau)} tau^{k-1} dtau = (k-1)! h^k phi_k(kappa h).
    """
    integral = exponential_integral(k - 1)
    expression = integral / (sp.factorial(k - 1) * h**k)
    return sp.simplify(expression.subs(kappa, z / h))


@functools.cache
def phi_taylor_coefficients(k: int, terms: int) -> tuple[sp.Rational, ...]:
    """The first `terms` Taylor coefficients of phi_k about 0 (the limit at z = 0 is the first)."""
    series = sp.series(phi_closed_form(k), z, 0, terms).removeO()
    return tuple(sp.Rational(series.coeff(z, j)) for j in range(terms))


def _closed_form_condition(k: int, x: mpmath.mpf) -> mpmath.mpf:
    """Sum of the magnitudes of the terms the closed form subtracts, relative to the result.

    The closed form evaluates (expm1(z) - sum_{1<=j<k} z^j/j!) / z^k; each term carries a relative
    rounding error of about one unit, so this ratio times the unit roundoff bounds the cancellation error.
    """
    terms = [abs(mpmath.expm1(x))] + [abs(x**j) / mpmath.factorial(j) for j in range(1, k)]
    value = abs(mpmath.expm1(x) - sum(x**j / mpmath.factorial(j) for j in range(1, k)))
    return sum(terms) / value


@functools.cache
def series_threshold(k: int) -> float:
    """Smallest |z| above which the expm1-based closed form of phi_k meets FLOAT64_TARGET, both signs.

    The error model is (k + 2) unit roundoffs (k terms, the division, the power) times the cancellation
    condition; it decreases with |z| on either side, so the threshold is found by bisection.
    """

    def closed_form_ok(radius):
        worst = max(
            _closed_form_condition(k, mpmath.mpf(radius)), _closed_form_condition(k, -mpmath.mpf(radius))
        )
        return (k + 2) * FLOAT64_UNIT_ROUNDOFF * worst <= FLOAT64_TARGET

    with mpmath.workdps(40):
        if closed_form_ok(1e-12):
            return 0.0
        return _bisect(closed_form_ok, 1e-12, 50.0)


def _bisect(predicate, low: float, high: float) -> float:
    for _ in range(80):
        middle = 0.5 * (low + high)
        low, high = (low, middle) if predicate(middle) else (middle, high)
    return math.ceil(high * 1000) / 1000


@functools.cache
def series_terms(k: int) -> int:
    """Number of Taylor terms so that the truncation error below the threshold is within FLOAT64_TARGET.

    The tail of sum_j z^j/(j+k)! past N terms is bounded by |z|^N/(N+k)! / (1 - |z|/(N+k+1)); the smallest
    value phi_k takes on |z| <= threshold is phi_k(-threshold), so the bound is taken relative to that.
    """
    radius = series_threshold(k)
    if radius == 0.0:
        return 1  # only z = 0 itself takes the series: its limit value
    with mpmath.workdps(40):
        smallest = phi_mpmath(k, -radius)
        for n in range(1, 200):
            tail = mpmath.mpf(radius) ** n / mpmath.factorial(n + k) / (1 - radius / (n + k + 1))
            if tail <= FLOAT64_UNIT_ROUNDOFF * smallest:
                return n
    raise ArithmeticError(f"phi_{k}: no series length reaches the target at |z| = {radius}")


def phi_mpmath(k: int, x, digits: int = 60):
    """Reference value of phi_k: the sympy closed form evaluated by mpmath with `digits` working digits."""
    with mpmath.workdps(digits):
        x = mpmath.mpf(x)
        if x == 0:
            return mpmath.mpf(1) / mpmath.factorial(k)
        return sp.lambdify(z, phi_closed_form(k), modules="mpmath")(x)
