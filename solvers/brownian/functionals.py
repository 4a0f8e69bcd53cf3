"""The Brownian functionals a solver's noise is made of.

A functional is K(lambda) = int^lambda k(u) dB_u for one Brownian motion B in lambda-time; B, M, P and Q are
the kernels of the exact solutions (docs/mathematics.md, "Exact solutions" and "Brownian functionals").
Solvers ask a noise source for K(lambda_b) - K(lambda_a) with lambda_a the start of the current step; every
stage noise of a step is an increment of the same K from the same start, which is what makes the split
exact (docs/mathematics.md, "The noise split").
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from seeds.solvers import _coefficients as generated
from seeds.solvers.coefficients import phi

# Gauss-Legendre on panels at most this long (lambda units): the kernels are analytic with rates of order 1,
# so 16 nodes per panel integrate a product of two of them to about 1e-16 relative.
_PANEL_LENGTH, _PANEL_NODES = 0.25, 16
_GAUSS = np.polynomial.legendre.leggauss(_PANEL_NODES)


def covariance(first, second, a: float, b: float) -> float:
    """int_a^b k_first k_second du: the covariance of two functionals' increments over [a, b], by composite
    Gauss-Legendre quadrature of their kernels (any functionals with kernel(u))."""
    if b <= a:
        return 0.0
    edges = np.linspace(a, b, max(1, math.ceil((b - a) / _PANEL_LENGTH)) + 1)
    half = 0.5 * np.diff(edges)[:, None]
    nodes = torch.from_numpy((0.5 * (edges[:-1] + edges[1:])[:, None] + half * _GAUSS[0]).ravel())
    values = (first.kernel(nodes) * second.kernel(nodes)).numpy().reshape(half.shape[0], -1)
    return float(((values * _GAUSS[1]) * half).sum())


@dataclass(frozen=True)
class ExponentialFunctional:
    """k(u) = scale e^{rate u}: B is (1, 0), M is (sqrt 2, -1), P is (sqrt 2, 1), data-eta is (eta sqrt 2, eta^2)."""

    name: str
    scale: float
    rate: float

    def kernel(self, u):
        return self.scale * torch.exp(self.rate * torch.as_tensor(u, dtype=torch.float64))

    def clock_increment(self, a: float, b: float) -> float:
        """int_a^b k^2 = scale^2 (b - a) e^{2 rate a} phi_1(2 rate (b - a)), no cancellation for b near a."""
        d = b - a
        return self.scale**2 * d * math.exp(2 * self.rate * a) * phi(1, 2 * self.rate * d)


@dataclass(frozen=True)
class EDMFunctional:
    """Q: k(u) = sqrt(2) e^{-u} / (e^{-2u} + sigma_data^2)."""

    sigma_data: float = 0.5
    name: str = "Q"

    def kernel(self, u):
        u = torch.as_tensor(u, dtype=torch.float64)
        return math.sqrt(2.0) * torch.exp(-u) / (torch.exp(-2 * u) + self.sigma_data**2)

    def clock_increment(self, a: float, b: float) -> float:
        """int_a^b k^2 = 1/(e^{-2b}+sd^2) - 1/(e^{-2a}+sd^2), written without the difference."""
        sd2 = self.sigma_data**2
        return (
            math.exp(-2 * a)
            * -math.expm1(-2 * (b - a))
            / ((math.exp(-2 * a) + sd2) * (math.exp(-2 * b) + sd2))
        )


@dataclass(frozen=True)
class TimeIntegralFunctional:
    """R = int k_K A dB for a parameterisation's noise process K: with A(t) (K_t - K_s) it gives the
    time-integral noise of ESRA's stage (docs/esra.md). `parameter` is eta (noise, data) or sigma_data (edm),
    as for the generated pieces of seeds.solvers.coefficients.parameterisation."""

    prediction: str
    parameter: float

    @property
    def name(self) -> str:
        return f"R[{self.prediction}, {self.parameter}]"

    @functools.cached_property
    def noise(self):
        """K, the parameterisation's noise process."""
        if self.prediction == "edm":
            return functional_for("edm", 1.0, self.parameter)
        return functional_for(self.prediction, self.parameter)

    def kernel(self, u):
        """k_K(u) A(u)."""
        return self.noise.kernel(u) * self.antiderivative(torch.as_tensor(u, dtype=torch.float64))

    def antiderivative(self, lam):
        """A(lambda), the weight of K's increment in the stage noise."""
        return getattr(generated, f"{self.prediction}_time_integral_antiderivative")(lam, self.parameter)

    def scale(self, lam):
        """e^{rate nu(lambda)}, the stage noise's factor at the step's end."""
        return getattr(generated, f"{self.prediction}_time_integral_scale")(lam, self.parameter)

    def clock_increment(self, a: float, b: float) -> float:
        return covariance(self, self, a, b)


B = ExponentialFunctional("B", 1.0, 0.0)
M = ExponentialFunctional("M", math.sqrt(2.0), -1.0)
P = ExponentialFunctional("P", math.sqrt(2.0), 1.0)


def resolve_functional(functional, sigma_data: float = 0.5):
    """A functional object from itself or one of the names "B", "M", "P", "Q" (Q with `sigma_data`),
    refusing anything without a kernel(u)."""
    if isinstance(functional, str):
        named = {"B": B, "M": M, "P": P, "Q": EDMFunctional(sigma_data)}
        if functional not in named:
            raise ValueError(f"unknown functional {functional!r}: the named ones are {sorted(named)}")
        return named[functional]
    if not callable(getattr(functional, "kernel", None)):
        raise ValueError(f"{functional!r} has no kernel(u): not a Brownian functional")
    return functional


def functional_for(prediction: str, eta: float, sigma_data: float = 0.5):
    """The noise process of a parameterisation's exact solution (analysis.exact: noise_kernel)."""
    if prediction == "noise":
        return ExponentialFunctional("M" if eta == 1 else f"{eta}*M", eta * math.sqrt(2.0), -1.0)
    if prediction == "data":
        return ExponentialFunctional("P" if eta == 1 else f"P[eta={eta}]", eta * math.sqrt(2.0), eta**2)
    if eta != 1:
        raise ValueError(f"the EDM parameterisation is derived for eta in {{0, 1}} only, got eta = {eta}")
    return EDMFunctional(sigma_data)


def time_integral_functional_for(
    prediction: str, eta: float, sigma_data: float = 0.5
) -> TimeIntegralFunctional:
    """The time-integral functional R that goes with functional_for(prediction, eta, sigma_data)."""
    if prediction == "edm" and eta != 1:
        raise ValueError(f"the EDM time-integral noise is derived for eta = 1 only, got eta = {eta}")
    return TimeIntegralFunctional(prediction, sigma_data if prediction == "edm" else eta)
