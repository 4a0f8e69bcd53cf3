"""What every noise source answers, and the base of the paths.

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

# Noise levels reach a path rounded. k-diffusion builds its grids in float32, and get_sigmas_karras's
# arithmetic puts an end up to about (rho / 2) (sigma_max / sigma_min)^(1 / rho) float32 ulps off (measured:
# 17 for 1e-4 .. 14.6 at rho = 7, 57 for 0.002 .. 120 at rho = 3); sample_dpmpp_sde's -log/exp round trip
# adds a few. A sampler in float16 or bfloat16 may round the levels to x's dtype as well: a few of its ulps
# (measured up to 3.2 with that round trip).
_FLOAT32_GRID_ULPS = 64
_DTYPE_ULPS = 4


def end_tolerance(dtype: torch.dtype) -> float:
    """How far, relative in sigma, a noise level may lie beyond an end of a path's range and still count as
    that end, for a sampler whose x is `dtype`: 64 float32 ulps (2^-17) plus 4 ulps of dtype."""
    return _FLOAT32_GRID_ULPS * torch.finfo(torch.float32).eps + _DTYPE_ULPS * torch.finfo(dtype).eps


def positive_levels(sigmas) -> list[float]:
    """The noise levels of a grid as floats, a final 0 dropped; refuses fewer than two or any other level
    that is not positive and finite."""
    levels = torch.as_tensor(sigmas).detach().flatten().to("cpu", torch.float64).tolist()
    if levels and levels[-1] == 0:
        levels.pop()
    if len(levels) < 2 or not all(0 < level < math.inf for level in levels):
        raise ValueError(
            f"sigmas must hold at least two positive finite noise levels, then perhaps a 0, got {levels!r}"
        )
    return levels


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
    """What every path shares: its x, its range, the dtypes of its answers and k-diffusion's noise_sampler
    call, the standardised increment of B; a subclass supplies increment(functional, lam_a, lam_b) and
    _checked_interval(lam_a, lam_b), the interval it answers for (ends refused or moved onto the path).

    Increments and fresh noise come in dtype, or float64 when dtype is None: our driver keeps its solver
    state in float64. The noise_sampler call answers in dtype, or x's dtype when dtype is None: a k-diffusion
    sampler adds it to x, which must keep its dtype. Both are on x's device.
    """

    def __init__(self, x, lam_range: tuple[float, float], sigma_range: tuple[float, float], dtype):
        if not isinstance(x, torch.Tensor) or x.dim() == 0:
            raise ValueError("x must be a tensor with a leading batch dimension")
        if x.shape[0] == 0:
            raise ValueError(f"x is an empty batch (shape {tuple(x.shape)}): nothing to draw a path for")
        if not x.dtype.is_floating_point:
            raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")
        if dtype is not None and not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point type, got {dtype}")
        self.shape, self.device = tuple(x.shape), x.device
        self.dtype = torch.float64 if dtype is None else dtype
        self.noise_sampler_dtype = x.dtype if dtype is None else dtype
        self.lam_lo, self.lam_hi = lam_range
        self.sigma_range = sigma_range
        # a level within end_tolerance beyond an end is that end (the driver's grid check accepts the same)
        tolerance = end_tolerance(x.dtype)
        self._accepted = (self.lam_lo - math.log1p(tolerance), self.lam_hi - math.log1p(-tolerance))

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        """(B(lam_next) - B(lam)) / sqrt(lam_next - lam), lam = -log sigma, over the interval the path answers
        for (a level rounded beyond an end of the range is that end)."""
        lam, lam_next = -math.log(float(sigma)), -math.log(float(sigma_next))
        low, high = self._checked_interval(min(lam, lam_next), max(lam, lam_next))
        if low == high:
            raise ValueError(
                "noise_sampler needs two different noise levels within the path's range, got "
                f"sigma = {float(sigma)!r} and sigma_next = {float(sigma_next)!r}"
            )
        sign = 1.0 if lam < lam_next else -1.0
        noise = self.increment(B, low, high) * (sign / math.sqrt(high - low))
        return noise.to(self.noise_sampler_dtype)


class SeededPath(BrownianNoiseSampler):
    """What every per-sample-seeded path shares: argument checks, the batch's counter-based normals, fresh
    noise and the interval checks; a subclass supplies increment(functional, lam_a, lam_b).

    x: a (batch, ...) tensor giving shape, device and the dtype of the noise_sampler call. seed: an int
    (sample i keyed by (seed, i)) or a list of ints, one per sample (sample i keyed by (seed[i], 0)), so a
    sample's draws never depend on the rest of the batch. Answers are float64 internally, returned in the
    dtypes of BrownianNoiseSampler.
    """

    def __init__(self, x, sigma_min, sigma_max, seed=0, dtype=None, sigma_data=0.5):
        sigma_min, sigma_max = float(sigma_min), float(sigma_max)
        if not (math.isfinite(sigma_min) and math.isfinite(sigma_max)):
            raise ValueError(f"sigma_min and sigma_max must be finite, got {sigma_min!r} and {sigma_max!r}")
        if not 0 < sigma_min < sigma_max:
            raise ValueError(
                f"need 0 < sigma_min < sigma_max, got sigma_min = {sigma_min!r}, sigma_max = {sigma_max!r}"
            )
        if not (math.isfinite(sigma_data) and sigma_data > 0):
            raise ValueError(f"sigma_data must be positive and finite, got {sigma_data!r}")
        lam_range = (-math.log(sigma_max), -math.log(sigma_min))
        super().__init__(x, lam_range, (sigma_min, sigma_max), dtype)
        batch = x.shape[0]
        keys = self._sample_keys(seed, batch)
        self.sigma_data = float(sigma_data)
        self._batch = batch
        self._elements = math.prod(self.shape[1:])
        self._normals = CounterNormals(keys, self._elements, self.device)

    @classmethod
    def from_sigmas(cls, x, sigmas, seed=0, dtype=None, sigma_data=0.5):
        """The path for a run on the noise levels `sigmas` (a final 0 ignored), covering exactly their smallest
        to their largest level, in whatever dtype they come."""
        levels = positive_levels(sigmas)
        return cls(x, min(levels), max(levels), seed=seed, dtype=dtype, sigma_data=sigma_data)

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
        """[lam_a, lam_b] with ends rounded beyond the range moved onto it: the path is never extrapolated."""
        lam_a, lam_b = float(lam_a), float(lam_b)
        if not (math.isfinite(lam_a) and math.isfinite(lam_b)) or lam_a > lam_b:
            raise ValueError(f"interval [{lam_a!r}, {lam_b!r}] must be finite with lam_a <= lam_b")
        if lam_a < self._accepted[0] or lam_b > self._accepted[1]:
            raise ValueError(
                f"interval [{lam_a!r}, {lam_b!r}] is outside the path's lambda range "
                f"[{self.lam_lo!r}, {self.lam_hi!r}] (the path covers sigma in [{self.sigma_range[0]!r}, "
                f"{self.sigma_range[1]!r}])"
            )
        return min(max(lam_a, self.lam_lo), self.lam_hi), min(max(lam_b, self.lam_lo), self.lam_hi)

    def _output(self, value):
        value = value.reshape(self.shape)
        return value if value.dtype == self.dtype else value.to(self.dtype)
