"""A dry run of the driver: the times at which a method asks its noise source for a value.

A `PartitionPath` must know every time a run will ask for before it starts; `query_times` finds them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from seeds.solvers.sampling import sample


class _RecordingNoise:
    """A noise source that answers zeros and records every time a solver asks about."""

    def __init__(self, x):
        self.like = x
        self.times: set = set()

    def increment(self, functional, lam_a, lam_b):
        self.times.update((float(lam_a), float(lam_b)))
        return torch.zeros_like(self.like)

    def fresh(self, key):
        return torch.zeros_like(self.like)


def query_times(method: str, sigmas, **options) -> np.ndarray:
    """Every lambda at which `method` on this grid asks its noise source for a value (a dry run with a zero
    denoiser on one scalar sample: the times depend on the grid and the method only), plus the grid's own
    times."""
    x = torch.zeros(1, 1, dtype=torch.float64)
    noise = _RecordingNoise(x)
    levels = torch.as_tensor(sigmas, dtype=torch.float64)
    sample(lambda u, sigma: torch.zeros_like(u), x * levels[0], levels, method=method, path=noise, **options)
    grid = [-math.log(s) for s in levels.tolist() if s > 0]
    return np.unique(np.array(sorted(noise.times | set(grid))))
