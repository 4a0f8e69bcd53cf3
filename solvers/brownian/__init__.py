"""Brownian noise for the solvers: the functionals B, M, P, Q a step's noise is made of, and the sources
that draw their increments (docs/mathematics.md, "Brownian functionals" and "The noise split").

Every source satisfies `NoiseSource`:
- `BrownianPath`: the exact joint law of all functionals, per-sample seeds, one path whatever times are
  asked (each new time costs a descent of a virtual tree);
- `AdaptiveBrownianPath`: the same law and seeds, refined at the queried times (about one randn_like per
  sampler query; the path depends on the query sequence);
- `PartitionPath`: the same law on a partition of lambda-time fixed before the run;
- `IndependentPieces`: k-diffusion's convention, an independent standard normal per piece.
The design of the three paths: docs/brownian-paths.md.
"""

from seeds.solvers.brownian.adaptive import AdaptiveBrownianPath
from seeds.solvers.brownian.functionals import (
    B,
    EDMFunctional,
    ExponentialFunctional,
    M,
    P,
    TimeIntegralFunctional,
    covariance,
    functional_for,
    resolve_functional,
    time_integral_functional_for,
)
from seeds.solvers.brownian.independent import IndependentPieces
from seeds.solvers.brownian.partition import PartitionPath
from seeds.solvers.brownian.source import NoiseSource
from seeds.solvers.brownian.tree import BrownianPath

__all__ = [
    "B",
    "M",
    "P",
    "AdaptiveBrownianPath",
    "BrownianPath",
    "EDMFunctional",
    "ExponentialFunctional",
    "IndependentPieces",
    "NoiseSource",
    "PartitionPath",
    "TimeIntegralFunctional",
    "covariance",
    "functional_for",
    "resolve_functional",
    "time_integral_functional_for",
]
