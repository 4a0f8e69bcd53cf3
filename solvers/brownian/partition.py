"""Exact Brownian functionals on a partition of lambda-time fixed before the run (for experiments).

`BrownianPath` answers a query at any time, but every new time costs a descent of its virtual tree (about
140 normals per element). A convergence experiment knows every time it will ask for before it starts: the
points of its nested grids and their stages (`seeds.solvers.dry_run.query_times` records them with a dry
run). `PartitionPath` draws the path on that partition directly (the partition path of
docs/brownian-paths.md):

* each gap between consecutive times is cut into equal pieces no longer than a Legendre leaf
  (2 * LEGENDRE_MAX_HALF_LENGTH), and a piece's LEGENDRE_DEGREE + 1 unit Legendre moments are independent
  standard normals (pieces are disjoint);
* a functional's increment over a piece is w . Z with its moment weights w, to the leaves' truncation of
  BrownianPath (the tail beyond degree 7 is checked on every piece, relative 1e-13), so the joint law of all
  functionals at all partition times is exact to that truncation, as it is for BrownianPath;
* a functional's values at all partition times are running sums over the pieces, computed once on first
  use; an increment is a difference of two of them.

Cost: LEGENDRE_DEGREE + 1 normals per piece per element for the first functional (and the same normals
again for each further one); memory: one float64 value per partition time per element per functional.
Randomness: the moments of blocks of pieces come from torch generators seeded by (seed, block), so a path
is a function of seed, partition and x's shape. Unlike BrownianPath it is not batch-invariant, and two
partitions give two different paths: use one PartitionPath for everything that must share a path.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from seeds.solvers._coefficients import LEGENDRE_DEGREE, LEGENDRE_MAX_HALF_LENGTH
from seeds.solvers.brownian.functionals import resolve_functional
from seeds.solvers.brownian.laws import MOMENTS, TAIL_TOLERANCE, interval_moment_weights
from seeds.solvers.brownian.normals import chain, words64
from seeds.solvers.brownian.source import BrownianNoiseSampler, positive_levels

# Normals drawn at once: 32 MiB of float64.
_BLOCK_NUMBERS = 1 << 22
_SEED_SALTS = (0x452821E6, 0x38D01377)


class PartitionPath(BrownianNoiseSampler):
    """Exact per-run Brownian path on the partition `times` (lambda values, any order, duplicates merged).

    x: a (batch, ...) tensor giving shape, device and the dtype of the noise_sampler call; increments come in
    dtype (float64 when None), the noise_sampler call in dtype (x's dtype when None). Queries, and the noise
    levels of the noise_sampler call, must start and end at partition times (to 1e-12 relative; beyond the
    first and last time, to the rounding of `end_tolerance`); a functional is any object with kernel(u) or
    one of "B", "M", "P", "Q".
    """

    def __init__(self, x, times, seed: int = 0, dtype=None, sigma_data: float = 0.5):
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int, got {seed!r}")
        times = np.unique(np.asarray(times, dtype=np.float64))
        if times.size < 2 or not np.all(np.isfinite(times)):
            raise ValueError(f"a partition needs at least two distinct finite times, got {times!r}")
        lam_range = (float(times[0]), float(times[-1]))
        super().__init__(x, lam_range, (math.exp(-lam_range[1]), math.exp(-lam_range[0])), dtype)
        self.times = times
        self.seed, self.sigma_data = seed, float(sigma_data)
        self._numel = math.prod(self.shape)
        self._tolerance = 1e-12 * (1 + np.abs(times).max())
        gaps = np.diff(times)
        counts = np.maximum(1, np.ceil(gaps / (2 * LEGENDRE_MAX_HALF_LENGTH))).astype(np.int64)
        gap_of_piece = np.repeat(np.arange(gaps.size), counts)
        first_piece = np.cumsum(counts) - counts
        within = np.arange(counts.sum()) - first_piece[gap_of_piece]
        width = gaps[gap_of_piece] / counts[gap_of_piece]
        self._lefts = times[gap_of_piece] + within * width
        self._rights = np.where(
            within + 1 == counts[gap_of_piece], times[gap_of_piece + 1], self._lefts + width
        )
        self._gap_ends = np.cumsum(counts) - 1  # the last piece of each gap
        self._values: dict = {}

    @classmethod
    def from_sigmas(cls, x, sigmas, seed: int = 0, dtype=None, sigma_data: float = 0.5):
        """The path on the partition of the grid's own levels (a final 0 ignored): enough for a method that asks
        for noise at the grid's levels only (euler-maruyama, ddpm, seeds-1, sde-dpm-solver++-2m; k-diffusion's
        euler_ancestral and dpmpp_2m_sde); one with stage points needs the times of `query_times`."""
        return cls(x, [-math.log(level) for level in positive_levels(sigmas)], seed, dtype, sigma_data)

    def increment(self, functional, lam_a: float, lam_b: float) -> torch.Tensor:
        """K(lam_b) - K(lam_a) for K = int k dB, as a tensor like x."""
        values = self._values_of(resolve_functional(functional, self.sigma_data))
        start, end = self._indices(lam_a, lam_b)
        return (values[end] - values[start]).reshape(self.shape).to(self.dtype)

    def fresh(self, key: int) -> torch.Tensor:
        raise ValueError(
            "a PartitionPath carries path functionals only; churn-style fresh noise is not a path "
            "functional (use BrownianPath or IndependentPieces)"
        )

    def _checked_interval(self, lam_a, lam_b) -> tuple[float, float]:
        """The partition times at lam_a and lam_b."""
        start, end = self._indices(lam_a, lam_b)
        return float(self.times[start]), float(self.times[end])

    def _indices(self, lam_a, lam_b) -> tuple[int, int]:
        start, end = self._index(lam_a), self._index(lam_b)
        if start > end:
            raise ValueError(f"interval [{lam_a!r}, {lam_b!r}] must have lam_a <= lam_b")
        return start, end

    def _index(self, lam) -> int:
        lam = float(lam)
        if self._accepted[0] <= lam <= self._accepted[1]:  # a level rounded beyond an end is that end
            lam = min(max(lam, self.lam_lo), self.lam_hi)
        index = int(np.clip(np.searchsorted(self.times, lam), 1, self.times.size - 1))
        index -= abs(self.times[index - 1] - lam) <= abs(self.times[index] - lam)
        if not abs(self.times[index] - lam) <= self._tolerance:
            raise ValueError(
                f"lambda = {lam!r} is not a time of this partition (nearest {self.times[index]!r}): build the "
                "path with every time the run asks for (see query_times)"
            )
        return index

    def _values_of(self, functional) -> torch.Tensor:
        """K at every partition time minus K at the first, (time, element), computed once."""
        if functional in self._values:
            return self._values[functional]
        weights, tails = interval_moment_weights(functional.kernel, self._lefts, self._rights)
        if not np.all(tails <= TAIL_TOLERANCE):
            bad = int(np.argmax(tails > TAIL_TOLERANCE))
            raise ValueError(
                f"the kernel of {functional!r} is not resolved by degree-{LEGENDRE_DEGREE} Legendre moments on "
                f"[{self._lefts[bad]!r}, {self._rights[bad]!r}] (relative tail {tails[bad]:.1e})"
            )
        weights = torch.from_numpy(weights).to(self.device)
        pieces = len(self._lefts)
        per_block = max(1, _BLOCK_NUMBERS // (MOMENTS * self._numel))
        running = torch.zeros(self._numel, dtype=torch.float64, device=self.device)
        at_pieces = []
        for block, first in enumerate(range(0, pieces, per_block)):
            last = min(pieces, first + per_block)
            moments = torch.randn(
                (last - first, MOMENTS, self._numel),
                generator=self._generator(block),
                dtype=torch.float64,
                device=self.device,
            )
            sums = torch.cumsum(torch.einsum("pm,pmn->pn", weights[first:last], moments), 0) + running
            running = sums[-1]
            ends = self._gap_ends[(self._gap_ends >= first) & (self._gap_ends < last)] - first
            at_pieces.append(sums[torch.from_numpy(ends).to(self.device)])
        values = torch.cat([running.new_zeros(1, self._numel), *at_pieces])
        self._values[functional] = values
        return values

    def _generator(self, block: int) -> torch.Generator:
        words = (*words64(self.seed), block)
        key = (chain(_SEED_SALTS[0], *words) << 32) | chain(_SEED_SALTS[1], *words)
        return torch.Generator(device=self.device).manual_seed(key)
