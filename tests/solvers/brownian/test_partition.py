"""PartitionPath: the exact joint law of Brownian functionals on a partition fixed before the run."""

import math

import numpy as np
import pytest
import torch

from seeds.solvers import EDM, GRIDS
from seeds.solvers.brownian import (
    AdaptiveBrownianPath,
    B,
    BrownianPath,
    EDMFunctional,
    M,
    P,
    PartitionPath,
)
from seeds.solvers.dry_run import query_times

SCHEDULE = EDM(t_min=0.05, t_max=80.0)


def grid(steps, kind="lambda"):
    return SCHEDULE.vs(GRIDS[kind](SCHEDULE, steps))


def gram(first, second, a, b, nodes=64):
    """int_a^b k_1 k_2 du by Gauss-Legendre quadrature (smooth kernels: exact to rounding)."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    u = torch.from_numpy((a + b) / 2 + (b - a) / 2 * x)
    return float((first.kernel(u) * second.kernel(u)).numpy() @ w * (b - a) / 2)


def test_joint_law_matches_the_gram_matrix():
    """Sample covariance of (B, P, M, Q) increments over two disjoint gaps and their union against
    int k_i k_j; each entry within 4.5 standard errors (Bonferroni over the entries: a false alarm
    below 1e-3)."""
    times = query_times("seeds-3", grid(4), prediction="edm")
    path = PartitionPath(torch.zeros(40_000), times, seed=11)
    functionals = (B, P, M, EDMFunctional(0.5))
    intervals = ((times[0], times[2]), (times[2], times[5]), (times[0], times[5]))
    draws, entries = [], []
    for a, b in intervals:
        for functional in functionals:
            draws.append(path.increment(functional, a, b).numpy())
            entries.append((functional, a, b))
    draws = np.stack(draws)
    samples = draws.shape[1]
    measured = draws @ draws.T / samples
    exact = np.zeros_like(measured)
    for i, (f, a, b) in enumerate(entries):
        for j, (g, c, d) in enumerate(entries):
            low, high = max(a, c), min(b, d)
            exact[i, j] = gram(f, g, low, high) if low < high else 0.0
    diagonal = np.diag(exact)
    standard_error = np.sqrt((np.outer(diagonal, diagonal) + exact**2) / samples)
    assert np.all(np.abs(measured - exact) <= 4.5 * standard_error)


def test_increments_add_up_and_repeat():
    times = query_times("seeds-2", grid(8, "edm"), prediction="noise")
    x = torch.zeros(16, 3)
    path = PartitionPath(x, times, seed=3)
    a, b, c = times[1], times[7], times[-1]
    whole = path.increment(P, a, c)
    assert torch.allclose(path.increment(P, a, b) + path.increment(P, b, c), whole, rtol=0, atol=1e-13)
    assert torch.equal(PartitionPath(x, times, seed=3).increment(P, a, c), whole)
    assert not torch.equal(PartitionPath(x, times, seed=4).increment(P, a, c), whole)
    assert whole.shape == x.shape


def test_refusals_name_the_problem():
    times = query_times("seeds-1", grid(4), prediction="data")
    path = PartitionPath(torch.zeros(2), times)
    off = (times[0] + times[1]) / 2
    with pytest.raises(ValueError, match="not a time of this partition"):
        path.increment(B, times[0], off)
    with pytest.raises(ValueError, match="lam_a <= lam_b"):
        path.increment(B, times[2], times[1])
    with pytest.raises(ValueError, match="not a path functional"):
        path.fresh(0)
    with pytest.raises(ValueError, match="unknown functional"):
        path.increment("X", times[0], times[1])
    with pytest.raises(ValueError, match="two distinct finite times"):
        PartitionPath(torch.zeros(2), [1.0, 1.0])
    fast = type("Fast", (), {"kernel": staticmethod(lambda u: torch.exp(40 * torch.as_tensor(u)))})()
    with pytest.raises(ValueError, match="not resolved"):
        path.increment(fast, times[0], times[1])


def test_tree_adaptive_and_partition_give_one_law_to_a_solver():
    """The same SEEDS-3 solve driven by each source: equal mean and spread of the output to Monte Carlo
    accuracy (BrownianPath is the reference implementation of the law). Two comparisons against it, each
    at a two-sided 4.5-sigma normal bound."""
    from seeds.experiments.problems import PROBLEMS
    from seeds.solvers import sample

    problem = PROBLEMS["gaussian"](std=0.3)
    sigmas = grid(4)
    x = torch.zeros(2000, 1, dtype=torch.float64) + 1.0
    times = query_times("seeds-3", sigmas, prediction="data")
    reference, *others = (
        BrownianPath(x, 0.05, 80.0, seed=5),
        PartitionPath(x, times, seed=5),
        AdaptiveBrownianPath(x, 0.05, 80.0, seed=5),
    )
    expected = sample(problem, x, sigmas, method="seeds-3", path=reference).samples
    for source in others:
        output = sample(problem, x, sigmas, method="seeds-3", path=source).samples
        variances = [float(expected.var()), float(output.var())]
        spread = math.sqrt(max(variances) / x.shape[0])
        assert abs(float(output.mean()) - float(expected.mean())) < 4.5 * math.sqrt(2) * spread
        assert abs(variances[1] / variances[0] - 1) < 4.5 * math.sqrt(4 / x.shape[0])
