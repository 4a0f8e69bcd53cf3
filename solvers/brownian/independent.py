"""k-diffusion's noise convention as a noise source: an independent standard normal per sub-interval.

Each new piece of a step is sqrt(clock increment) * z, the exact law of one functional, because K is a
time-changed Brownian motion on its clock int k^2 (docs/mathematics.md, "Brownian functionals"); every stage
noise of a step is an increment from the step's start (docs/mathematics.md, "The noise split").
"""

from __future__ import annotations

import math

import torch

from seeds.solvers.brownian.functionals import covariance


class IndependentPieces:
    """Stage noises from independent standard normals per sub-interval (k-diffusion's noise convention).

    `noise_sampler(sigma, sigma_next)` returns a standard normal tensor like x for that interval (as
    k-diffusion's samplers expect); None draws from `generator`, or from torch's global generator when that
    is None too. Queries within one step must start at the step's start and move forward. No range of noise
    levels is fixed (sigma_range is None).
    """

    sigma_range = None

    def __init__(self, x, noise_sampler=None, generator: torch.Generator | None = None):
        self.like = x
        self.noise_sampler = noise_sampler
        self.generator = generator
        self._start = None
        self._reached = None
        self._value = None
        self._pieces = 0
        self._joint: dict = {}

    def _standard_normal(self):
        if self.generator is None:
            return torch.randn_like(self.like)
        draw = torch.randn(
            self.like.shape, generator=self.generator, dtype=self.like.dtype, device=self.generator.device
        )
        return draw.to(self.like.device)

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        """A standard normal tensor like x for the interval sigma -> sigma_next, drawn as the pieces are."""
        if self.noise_sampler is None:
            return self._standard_normal()
        return self.noise_sampler(sigma, sigma_next).to(self.like)

    def fresh(self, key: int):
        """Fresh standard normals (churn): from `generator`, or torch's global one as k-diffusion uses."""
        return self._standard_normal()

    def increment(self, functional, lam_a: float, lam_b: float):
        """K(lam_b) - K(lam_a) for K = int k dB, k = functional.kernel, as a tensor like x.

        A second functional over [lam_a, lam_b] of a step whose first functional was drawn as one piece over
        exactly that interval (ESRA's time-integral functional) is drawn jointly with it: its regression on
        that piece plus an independent normal from `generator` (never from noise_sampler, which would answer
        the same interval with the same normal)."""
        if self._start is not None and self._start[1] == lam_a and functional != self._start[0]:
            return self._joint_increment(functional, lam_a, lam_b)
        if self._start != (functional, lam_a):
            self._start, self._reached, self._value = (functional, lam_a), lam_a, torch.zeros_like(self.like)
            self._pieces, self._joint = 0, {}
        if lam_b < self._reached:
            raise ValueError(
                f"independent-piece noise moves forward only: asked for lambda {lam_b} after {self._reached}"
            )
        if lam_b > self._reached:
            spread = math.sqrt(functional.clock_increment(self._reached, lam_b))
            self._value = self._value + spread * self(math.exp(-self._reached), math.exp(-lam_b))
            self._reached = lam_b
            self._pieces += 1
        return self._value

    def _joint_increment(self, functional, lam_a, lam_b):
        key = (functional, lam_a, lam_b)
        if key not in self._joint:
            first = self._start[0]
            if self._pieces != 1 or self._reached != lam_b:
                raise ValueError(
                    f"a joint draw of {functional!r} over [{lam_a}, {lam_b}] needs the step's first functional "
                    "drawn as one piece over exactly that interval"
                )
            variance = first.clock_increment(lam_a, lam_b)
            beta = covariance(functional, first, lam_a, lam_b) / variance
            residual = max(functional.clock_increment(lam_a, lam_b) - beta**2 * variance, 0.0)
            self._joint[key] = beta * self._value + math.sqrt(residual) * self._standard_normal()
        return self._joint[key]
