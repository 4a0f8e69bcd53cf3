"""The order cells on the 2-d ring mixture, every method: what the order tests assert on and what
`seeds weak-ring` (`make weak-ring`) reports (docs/results.md).

Where the theory's assumptions hold: overlapping components (std 0.6 at neighbour distance 1.53) and a
moderate sigma_min = 0.05, so the drift stays smooth (docs/mathematics.md). Every level of a family of
methods runs on one Brownian path (a PartitionPath carrying all their times), so the references are solved
once per process.

Strong: 128 paths, lambda-uniform nested grids of 32, 64 and 128 steps (step sizes 0.06-0.23 in lambda,
where the default job's successive slopes are already flat). Reference: SEEDS-3/edm at 2048 steps (the most
accurate method here, 16x the finest level) for the SDE methods, DPM-Solver-3 at 512 for the ODE methods;
an independent second reference (SEEDS-3/noise at 4096, DPM-Solver++-3 at 512) checks it. ESRA, strong
order 1.5, has its own: ESRA/edm at 2048 checked by ESRA/data at 4096.

Weak: reference-free coupled differences D_k = E|X_k|^2 - E|X_k+1|^2 between consecutive levels 32, 64, 128,
256 (`coupled_weak_differences`). Coarser levels are pre-asymptotic: at 8 steps the noise-prediction schemes
and Euler-Maruyama are unstable, and SEEDS-1/edm's successive slopes are 0.58 and 0.81 over 16-32-64-128
(0.87 [0.85, 0.90] over 32-256, 32768 paths).
The ODE methods need few paths (4096). The SDE methods' differences are Monte Carlo limited (their standard
error follows the strong error, O(h), while D_k is O(h^p)): 32768 paths, and a slope counts only where
every D_k is resolved (|D_k| >= RESOLVED_STANDARD_ERRORS standard errors).
"""

from __future__ import annotations

from seeds.experiments.config import (
    RESOLVED_STANDARD_ERRORS,
    RING_ESRA_METHODS,
    RING_ESRA_REFERENCES,
    RING_ODE_METHODS,
    RING_ODE_REFERENCES,
    RING_PROBLEM_OPTIONS,
    RING_SDE_METHODS,
    RING_SDE_REFERENCES,
    RING_SIGMA_MIN,
    RING_STRONG_LEVELS,
    RING_STRONG_PATHS,
    RING_WEAK_LEVELS,
    RING_WEAK_ODE_PATHS,
    RING_WEAK_SDE_PATHS,
)
from seeds.experiments.verification.convergence import Cell


def _family(method: str, options: tuple) -> tuple[list, tuple]:
    """The methods whose times one path carries with this one, and their (reference, check reference)."""
    if (method, options) in RING_ODE_METHODS:
        return RING_ODE_METHODS, RING_ODE_REFERENCES
    if (method, options) in RING_ESRA_METHODS:
        return RING_ESRA_METHODS, RING_ESRA_REFERENCES
    return RING_SDE_METHODS, RING_SDE_REFERENCES


def strong_cell(method: str, options: tuple) -> Cell:
    reference, check_reference = _family(method, options)[1]
    return _ring_cell(
        method,
        options,
        RING_STRONG_LEVELS,
        RING_STRONG_PATHS,
        seed=4,
        reference=reference,
        check_reference=check_reference,
    )


def weak_cell(method: str, options: tuple) -> Cell:
    ode = (method, options) in RING_ODE_METHODS
    paths = RING_WEAK_ODE_PATHS if ode else RING_WEAK_SDE_PATHS
    return _ring_cell(method, options, RING_WEAK_LEVELS, paths, seed=6, reference=None)


def _ring_cell(method, options, levels, paths, **fields) -> Cell:
    family = _family(method, options)[0]
    return Cell(
        "ring",
        method,
        options,
        "lambda",
        levels,
        paths,
        sigma_min=RING_SIGMA_MIN,
        problem_options=RING_PROBLEM_OPTIONS,
        fit_levels=len(levels),
        path_family=tuple(family),
        **fields,
    )


def resolved(weak: dict) -> bool:
    """Whether every coupled difference is at least RESOLVED_STANDARD_ERRORS standard errors from 0."""
    return all(
        abs(d) >= RESOLVED_STANDARD_ERRORS * se for d, se in zip(weak["difference"], weak["difference_se"])
    )
