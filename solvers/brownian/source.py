"""What every noise source answers, and the base of the per-sample-seeded paths.

A noise source gives a solver the increments of Brownian functionals over intervals of lambda = -log sigma
(docs/mathematics.md, "Brownian functionals" and "The noise split"), fresh standard normals for churn, and
k-diffusion's noise_sampler call.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch

from seeds.solvers.brownian.functionals import B
from seeds.solvers.brownian.normals import FRESH_STREAM, CounterNormals, row_words, words64


@runtime_checkable
class NoiseSource(Protocol):
    """The noise of one solve, for a batch like x.

    sigma_range: the (sigma_min, sigma_max) the source covers, or None where any levels are fine.
    """

    sigma_range: tuple[float, float] | None

    def increment(self, functional, lam_a: float, lam_b: float) -> torch.Tensor:
        """K(lam_b) - K(lam_a) for K = int k dB, k = functional.kernel, as a tensor like x."""
        ...

    def fresh(self, key: int) -> torch.Tensor:
        """Standard normals like x for churn-style fresh noise."""
        ...

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        """k-diffusion's noise_sampler: a standard normal tensor like x for the interval sigma -> sigma_next."""
        ...


class BrownianNoiseSampler:
    """k-diffusion's noise_sampler for a source of path increments: the standardised increment of B."""

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        """(B(lam_next) - B(lam)) / sqrt(lam_next - lam), lam = -log sigma."""
        lam, lam_next = -math.log(float(sigma)), -math.log(float(sigma_next))
        if lam == lam_next:
            raise ValueError(
                f"noise_sampler needs two different noise levels, got sigma = {float(sigma)!r} twice"
            )
        low, high = min(lam, lam_next), max(lam, lam_next)
        sign = 1.0 if lam < lam_next else -1.0
        return self.increment(B, low, high) * (sign / math.sqrt(high - low))


class SeededPath(BrownianNoiseSampler):
    """What every per-sample-seeded path shares: argument checks, the batch's counter-based normals, fresh
    noise and k-diffusion's noise_sampler call; a subclass supplies increment(functional, lam_a, lam_b).

    x: a (batch, ...) tensor giving shape and device. seed: an int (sample i keyed by (seed, i)) or a list of
    ints, one per sample (sample i keyed by (seed[i], 0)), so a sample's draws never depend on the rest of
    the batch. Answers are float64 internally, returned in dtype.
    """

    def __init__(self, x, sigma_min, sigma_max, seed=0, dtype=torch.float64, sigma_data=0.5):
        if not isinstance(x, torch.Tensor) or x.dim() == 0:
            raise ValueError("x must be a tensor with a leading batch dimension")
        if x.shape[0] == 0:
            raise ValueError(f"x is an empty batch (shape {tuple(x.shape)}): nothing to draw a path for")
        sigma_min, sigma_max = float(sigma_min), float(sigma_max)
        if not (math.isfinite(sigma_min) and math.isfinite(sigma_max)):
            raise ValueError(f"sigma_min and sigma_max must be finite, got {sigma_min!r} and {sigma_max!r}")
        if not 0 < sigma_min < sigma_max:
            raise ValueError(
                f"need 0 < sigma_min < sigma_max, got sigma_min = {sigma_min!r}, sigma_max = {sigma_max!r}"
            )
        if not (math.isfinite(sigma_data) and sigma_data > 0):
            raise ValueError(f"sigma_data must be positive and finite, got {sigma_data!r}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point type, got {dtype}")
        batch = x.shape[0]
        keys = self._sample_keys(seed, batch)
        self.shape, self.device, self.dtype = tuple(x.shape), x.device, dtype
        self.sigma_data = float(sigma_data)
        self.sigma_range = (sigma_min, sigma_max)
        self.lam_lo, self.lam_hi = -math.log(sigma_max), -math.log(sigma_min)
        self._tolerance = 1e-12 * (1 + max(abs(self.lam_lo), abs(self.lam_hi)))
        self._batch = batch
        self._elements = math.prod(self.shape[1:])
        self._normals = CounterNormals(keys, self._elements, self.device)

    @staticmethod
    def _sample_keys(seed, batch):
        if isinstance(seed, (list, tuple)):
            if len(seed) != batch:
                raise ValueError(f"{len(seed)} seeds for a batch of {batch}: give one seed per sample")
            if not all(isinstance(s, int) and not isinstance(s, bool) for s in seed):
                raise ValueError(f"seeds must be ints, got {seed!r}")
            return [(s, 0) for s in seed]
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int or a list of ints, got {seed!r}")
        return [(seed, i) for i in range(batch)]

    def fresh(self, key: int) -> torch.Tensor:
        """A standard normal tensor like x for `key`, independent of the path and of other keys."""
        if not isinstance(key, int) or isinstance(key, bool):
            raise ValueError(f"fresh-noise key must be an int, got {key!r}")
        return self._output(self._normals(row_words(FRESH_STREAM, 0, *words64(key), 0)[:, None])[0])

    def _checked_interval(self, lam_a, lam_b) -> tuple[float, float]:
        lam_a, lam_b = float(lam_a), float(lam_b)
        if not (math.isfinite(lam_a) and math.isfinite(lam_b)) or lam_a > lam_b:
            raise ValueError(f"interval [{lam_a!r}, {lam_b!r}] must be finite with lam_a <= lam_b")
        if lam_a < self.lam_lo - self._tolerance or lam_b > self.lam_hi + self._tolerance:
            raise ValueError(
                f"interval [{lam_a!r}, {lam_b!r}] is outside the path's lambda range "
                f"[{self.lam_lo!r}, {self.lam_hi!r}] (sigma in [{self.sigma_range[0]!r}, {self.sigma_range[1]!r}])"
            )
        return lam_a, lam_b

    def _output(self, value):
        value = value.reshape(self.shape)
        return value if value.dtype == self.dtype else value.to(self.dtype)
