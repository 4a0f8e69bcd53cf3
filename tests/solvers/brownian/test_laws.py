"""The moment laws the paths are built on: kernel moment weights, truncated bridge laws, the tree's degree
schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
import torch

from seeds.solvers._coefficients import LEGENDRE_DEGREE, LEGENDRE_MAX_HALF_LENGTH
from seeds.solvers.brownian import B, EDMFunctional, M, P
from seeds.solvers.brownian.laws import bridge_moment_law, functional_moment_map, kernel_moment_weights
from seeds.solvers.brownian.tree import SPLIT_DEGREES

Q = EDMFunctional(0.5)


def test_leaf_moment_weights_agree_with_the_generated_legendre_maps():
    a, b = 0.3, 0.3 + 2 * LEGENDRE_MAX_HALF_LENGTH
    expected = functional_moment_map(a, b, 0.5)
    for row, functional in enumerate([B, M, P, Q]):
        weights, tail = kernel_moment_weights(functional.kernel, a, b)
        assert np.allclose(weights, expected[row], rtol=0, atol=1e-14 * np.abs(expected[row]).max())
        assert tail < 1e-13


@pytest.mark.parametrize("degree", range(LEGENDRE_DEGREE + 1))
def test_truncated_bridge_law_is_the_marginal_of_the_full_one(degree):
    """What lets the tree drop degrees: the children's moments up to q given the parent's up to q, drawn
    with bridge_moment_law(0.5, q), have the joint law (with the parent's moments up to q) that the full
    degree-7 bridge gives them. Both laws are Gaussian, so the covariances decide."""
    full_mean, _, full_noise = bridge_moment_law(0.5, LEGENDRE_DEGREE)
    mean, _, noise = bridge_moment_law(0.5, degree)
    kept = [*range(degree + 1), *range(LEGENDRE_DEGREE + 1, LEGENDRE_DEGREE + 2 + degree)]  # left, right
    full_children = full_mean @ full_mean.T + full_noise @ full_noise.T
    assert np.allclose(full_children[np.ix_(kept, kept)], mean @ mean.T + noise @ noise.T, rtol=0, atol=1e-14)
    # the cross-covariance with the parent's moments up to q is the mean map
    assert np.allclose(full_mean[kept, : degree + 1], mean, rtol=0, atol=1e-14)


def test_split_degrees_resolve_every_admissible_exponential_below_its_leaf():
    """The fastest exponential the leaf check admits, and B, M, P, Q: on every sub-leaf node (half-length
    h 2^-k) the tail beyond the degree the split there keeps is within the tolerance, and it falls to 0."""
    half = LEGENDRE_MAX_HALF_LENGTH
    rate = scipy.optimize.brentq(
        lambda r: math.log(kernel_moment_weights(lambda u: torch.exp(r * u), -half, half)[1] / 1e-13),
        1.0,
        1e3,
    )
    assert SPLIT_DEGREES[0] == LEGENDRE_DEGREE and list(SPLIT_DEGREES) == sorted(SPLIT_DEGREES, reverse=True)
    assert SPLIT_DEGREES[-1] == 0
    for k, degree in enumerate(SPLIT_DEGREES[:50]):
        a, b = 1.0, 1.0 + 2 * half * 2.0**-k
        for kernel in [
            lambda u: torch.exp(rate * u),
            lambda u: torch.exp(-rate * u),
            *(f.kernel for f in (B, M, P, Q)),
        ]:
            weights = kernel_moment_weights(kernel, a, b)[0]
            # degrees above 7 are below 1e-13 already (the leaf check), so degrees q+1..7 decide; the 1% is
            # the root finder's slack in the fastest rate
            assert np.linalg.norm(weights[degree + 1 :]) <= 1.01e-13 * np.linalg.norm(weights[: degree + 1])
