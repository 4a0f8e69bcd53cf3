"""Noise functionals and the noise sources solvers draw them from.

A functional is K(lambda) = int^lambda k(u) dB_u for one Brownian motion B in lambda-time (SEEDS-MATH
section 2). Solvers ask a noise source for K(lambda_b) - K(lambda_a) with lambda_a the start of the
current step; every stage noise of a step is an increment of the same K from the same start, which is
what makes the split exact (section 3).

Sources:
- `seeds.solvers.brownian_path.BrownianPath`: the exact joint law of all functionals, per-sample seeds, one
  path whatever times are asked (each new time costs a tree descent);
- `seeds.solvers.adaptive_path.AdaptiveBrownianPath`: the same law and seeds, refined at the queried times
  (about one randn_like per sampler query; the path depends on the query sequence);
- `seeds.solvers.partition_path.PartitionPath`: the same law on a partition fixed before the run;
- `IndependentPieces`: k-diffusion's convention (a noise_sampler(sigma, sigma_next) returning N(0, I), or
  torch's global generator); each new piece of a step is sqrt(clock increment) * z, the exact law of one
  functional because K is a time-changed Brownian motion on its clock int k^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from seeds.solvers.coefficients import phi


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


class IndependentPieces:
    """Stage noises from independent standard normals per sub-interval (k-diffusion's noise convention).

    `noise_sampler(sigma, sigma_next)` returns a standard normal tensor like x for that interval (as
    k-diffusion's samplers expect); None draws from `generator`, or from torch's global generator when that
    is None too. Queries within one step must start at the step's start and move forward.
    """

    def __init__(self, x, noise_sampler=None, generator: torch.Generator | None = None):
        self.like = x
        self.noise_sampler = noise_sampler
        self.generator = generator
        self._start = None
        self._reached = None
        self._value = None

    def _standard_normal(self):
        if self.generator is None:
            return torch.randn_like(self.like)
        draw = torch.randn(
            self.like.shape, generator=self.generator, dtype=self.like.dtype, device=self.generator.device
        )
        return draw.to(self.like.device)

    def _normal(self, lam_a, lam_b):
        if self.noise_sampler is None:
            return self._standard_normal()
        return self.noise_sampler(math.exp(-lam_a), math.exp(-lam_b)).to(self.like)

    def fresh(self, key: int):
        """Fresh standard normals (churn): from `generator`, or torch's global one as k-diffusion uses."""
        return self._standard_normal()

    def increment(self, functional, lam_a: float, lam_b: float):
        if self._start != (functional, lam_a):
            self._start, self._reached, self._value = (functional, lam_a), lam_a, torch.zeros_like(self.like)
        if lam_b < self._reached:
            raise ValueError(
                f"independent-piece noise moves forward only: asked for lambda {lam_b} after {self._reached}"
            )
        if lam_b > self._reached:
            spread = math.sqrt(functional.clock_increment(self._reached, lam_b))
            self._value = self._value + spread * self._normal(self._reached, lam_b)
            self._reached = lam_b
        return self._value
