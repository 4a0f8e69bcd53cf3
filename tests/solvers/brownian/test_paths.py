"""BrownianPath and AdaptiveBrownianPath: the exact joint law of the Brownian functionals, additivity,
reproducibility, bad input.

Statistical tests use one seeded path of 4000 scalar samples per path type, so every outcome is
deterministic. Levels: all KS tests in this file together have family-wise level 1e-3 (Bonferroni over at
most KS_TESTS of them, for both path types); each covariance or correlation check is a normal-approximation
bound at the same Bonferroni-corrected level (z_bound counts both path types).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.stats
import torch

from seeds.solvers.brownian import (
    AdaptiveBrownianPath,
    B,
    BrownianPath,
    EDMFunctional,
    ExponentialFunctional,
    M,
    P,
    functional_for,
)
from seeds.solvers.brownian.laws import gram_matrix

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0
LAM_LO, LAM_HI = -math.log(SIGMA_MAX), -math.log(SIGMA_MIN)
SAMPLES = 4000
FAMILY_LEVEL = 1e-3
PATH_TYPES = [BrownianPath, AdaptiveBrownianPath]
# upper bound on the KS tests below, per path type: 36 marginal + 4 whitened + 4 bridge + 1 fresh + 2 sampler
KS_TESTS = 48 * len(PATH_TYPES)
KS_LEVEL = FAMILY_LEVEL / KS_TESTS
Q = EDMFunctional(0.5)
FUNCTIONALS = [B, M, P, Q, functional_for("data", 0.5), EDMFunctional(1.7)]
INTERVALS = {
    "whole range": (LAM_LO, LAM_HI),
    "1e-6": (1.234567, 1.234567 + 1e-6),
    "1e-12, degrees 0 and 1 only": (2.345678, 2.345678 + 1e-12),
    "inside a leaf": (0.51, 0.53),
    "many leaves": (-2.2, 3.7),
    "up to the end": (LAM_HI - 0.3, LAM_HI),
}


def z_bound(tests: int) -> float:
    """Two-sided standard normal bound exceeded with probability FAMILY_LEVEL / (tests per path type times
    the path types)."""
    return float(scipy.stats.norm.isf(FAMILY_LEVEL / (2 * tests * len(PATH_TYPES))))


def assert_standard_normal(values):
    values = np.asarray(values, dtype=np.float64).ravel()
    result = scipy.stats.kstest(values, "norm")
    assert result.pvalue > KS_LEVEL, (
        f"KS p-value {result.pvalue:.2e} (mean {values.mean():.3f}, sd {values.std():.3f})"
    )


@pytest.fixture(scope="module", params=PATH_TYPES, ids=lambda kind: kind.__name__)
def path(request):
    return request.param(torch.zeros(SAMPLES, 1, dtype=torch.float64), SIGMA_MIN, SIGMA_MAX, seed=2024)


path_types = pytest.mark.parametrize("path_type", PATH_TYPES, ids=lambda kind: kind.__name__)


class Jump:
    """A kernel with a jump at 1/3 (never a dyadic split point of [0, 1]): no Legendre expansion resolves it
    on a node holding the jump."""

    def kernel(self, u):
        return (torch.as_tensor(u, dtype=torch.float64) > 1 / 3).double()


def values_of(path, functional, a, b) -> np.ndarray:
    return path.increment(functional, a, b).numpy().ravel()


# ------------------------------------------------------------------------------------------------- laws


@pytest.mark.parametrize("functional", FUNCTIONALS, ids=lambda f: getattr(f, "name", str(f)))
@pytest.mark.parametrize("interval", list(INTERVALS), ids=str)
def test_increments_have_the_marginal_law(path, functional, interval):
    a, b = INTERVALS[interval]
    assert_standard_normal(values_of(path, functional, a, b) / math.sqrt(functional.clock_increment(a, b)))


@pytest.mark.parametrize(("a", "b"), [(-4.0, -1.5), (0.25, 0.75), (2.0, 6.0)])
def test_joint_covariance_of_b_m_p_q_matches_the_gram_matrix(path, a, b):
    samples = np.stack([values_of(path, f, a, b) for f in (B, M, P, Q)], axis=1)
    gram = gram_matrix(a, b, 0.5)
    empirical = samples.T @ samples / SAMPLES  # the mean is known to be 0
    spread = np.sqrt((np.outer(np.diag(gram), np.diag(gram)) + gram**2) / SAMPLES)  # Wishart entry sd
    assert np.all(np.abs(empirical - gram) <= z_bound(3 * 10) * spread)


def test_whitened_increments_over_adjacent_intervals_are_independent_standard_normals(path):
    """(B, M, P, Q) over [a, b] and [b, c]: whitened with the block-diagonal Gram matrix they must be 8
    independent N(0, 1): this sees the small eigendirections that entrywise covariances cannot."""
    a, b, c = -0.4, 0.9, 1.6
    samples = np.hstack(
        [np.stack([values_of(path, f, *ends) for f in (B, M, P, Q)], axis=1) for ends in ((a, b), (b, c))]
    )
    gram = scipy.linalg.block_diag(gram_matrix(a, b, 0.5), gram_matrix(b, c, 0.5))
    whitened = scipy.linalg.solve_triangular(np.linalg.cholesky(gram), samples.T, lower=True).T
    for column in (0, 3, 4, 7):
        assert_standard_normal(whitened[:, column])
    empirical = whitened.T @ whitened / SAMPLES
    assert np.all(np.abs(empirical - np.eye(8)) <= z_bound(36) * np.sqrt((1 + np.eye(8)) / SAMPLES))


@pytest.mark.parametrize(
    ("given", "asked", "a", "b", "c"),
    [
        (M, M, 0.51, 0.515, 0.53),
        (B, M, -3.0, -1.0, 2.5),
        (P, Q, 4.0, 4.0 + 1e-5, 4.1),
        (Q, B, -1.0, 0.3, 0.31),
    ],
)
def test_bridge_conditional_law(path, given, asked, a, b, c):
    """Given Y = increment of `given` over [a, c], the increment X of `asked` over [a, b] has mean
    Cov(X, Y)/Var(Y) Y and variance Var(X) - Cov(X, Y)^2/Var(Y) (Gaussian conditioning, Gram entries)."""
    index = {B: 0, M: 1, P: 2, Q: 3}
    cov_xy = gram_matrix(a, b, 0.5)[index[asked], index[given]]
    var_x = asked.clock_increment(a, b)
    var_y = given.clock_increment(a, c)
    y, x = values_of(path, given, a, c), values_of(path, asked, a, b)
    residual_variance = var_x - cov_xy**2 / var_y
    assert residual_variance > 1e-6 * var_x
    assert_standard_normal((x - cov_xy / var_y * y) / math.sqrt(residual_variance))


# --------------------------------------------------------------------------------------- path properties


@path_types
@pytest.mark.parametrize("first_in_inference_mode", [True, False])
def test_a_path_answers_in_and_out_of_inference_mode(path_type, first_in_inference_mode):
    """Built and first asked in one mode, asked on in the other (a sampler under torch.inference_mode, then
    a check outside it): no error, and the same values as a path asked in one mode throughout."""
    x = torch.zeros(16, 8, dtype=torch.float64)  # P and M need moments no B query drew: new normals
    queries = [(B, 0.0, 0.5), (P, 0.5, 1.0), (M, -1.0, 0.25)]
    reference = path_type(x, SIGMA_MIN, SIGMA_MAX, seed=6)
    expected = [reference.increment(*query) for query in queries]
    with torch.inference_mode(first_in_inference_mode):
        path = path_type(x, SIGMA_MIN, SIGMA_MAX, seed=6)
        first = path.increment(*queries[0])
    with torch.inference_mode(not first_in_inference_mode):
        rest = [path.increment(*query) for query in queries[1:]]
    for got, want in zip([first, *rest], expected):
        assert torch.equal(got, want)


@path_types
@pytest.mark.parametrize("functional", [B, M, P, Q], ids=lambda f: f.name)
def test_increments_over_a_random_partition_add_up_to_the_union(path_type, functional):
    path = path_type(torch.zeros(64, 3, dtype=torch.float64), SIGMA_MIN, SIGMA_MAX, seed=7)
    generator = np.random.default_rng(3)
    a, b = -3.1, 5.2
    inner = np.sort(generator.uniform(a, b, 18))
    points = [a, *inner[:9], inner[9], inner[9] + 1e-9, *inner[10:], b]
    pieces = sum(path.increment(functional, s, t) for s, t in zip(points[:-1], points[1:]))
    union = path.increment(functional, a, b)
    scale = max(path.increment(functional, LAM_LO, t).abs().max().item() for t in points)
    assert (pieces - union).abs().max().item() <= 1e-13 * scale


def test_answers_do_not_depend_on_query_order():
    queries = [(M, 0.1, 0.7), (P, -2.0, 3.3), (B, 0.5, 0.5 + 1e-6), (Q, LAM_LO, LAM_HI), (M, 5.0, 5.9)]
    x = torch.zeros(16, 2, dtype=torch.float64)
    forward = BrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=11)
    backward = BrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=11)
    first = [forward.increment(*query) for query in queries]
    second = [backward.increment(*query) for query in reversed(queries)][::-1]
    assert all(torch.equal(one, other) for one, other in zip(first, second))
    assert not torch.equal(first[0], BrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=12).increment(*queries[0]))


def test_adaptive_answers_never_change_once_given_and_repeat_with_the_query_sequence():
    """The adaptive tree only grows: an answer is the same bits when asked again after any other queries
    (inside its interval too), and the same query sequence gives the same path; another seed another one."""
    queries = [(M, 0.1, 0.7), (B, 0.5, 0.5 + 1e-6), (P, -2.0, 3.3), (Q, LAM_LO, LAM_HI), (M, 5.0, 5.9)]
    x = torch.zeros(16, 2, dtype=torch.float64)
    path = AdaptiveBrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=11)
    first = [path.increment(*query) for query in queries]
    for s in np.linspace(0.2, 5.5, 23):
        path.increment(P, s, s + 0.05)
        path.increment(B, LAM_LO, s + 0.01)
    assert all(torch.equal(path.increment(*query), value) for query, value in zip(queries, first))
    replay = AdaptiveBrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=11)
    assert all(torch.equal(replay.increment(*query), value) for query, value in zip(queries, first))
    other = AdaptiveBrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=12)
    assert not torch.equal(first[0], other.increment(*queries[0]))


@path_types
def test_a_sample_depends_only_on_its_own_seed(path_type):
    shape = (3, 2)
    big = path_type(torch.zeros(4, *shape), SIGMA_MIN, SIGMA_MAX, seed=[5, 9, 2, 7])
    small = path_type(torch.zeros(2, *shape), SIGMA_MIN, SIGMA_MAX, seed=[7, 9])
    for query in [(M, -1.0, 0.25), (P, 3.0, 3.0 + 1e-7), (B, LAM_LO, LAM_HI)]:
        assert torch.equal(big.increment(*query)[[3, 1]], small.increment(*query))
    assert torch.equal(big.fresh(4)[[3, 1]], small.fresh(4))
    by_index = path_type(torch.zeros(3, *shape), SIGMA_MIN, SIGMA_MAX, seed=9)
    for query in [(M, -1.0, 0.25), (P, 3.0, 3.0 + 1e-7), (B, LAM_LO, LAM_HI)]:  # the same query sequence
        by_index.increment(*query)
    assert torch.equal(by_index.increment(Q, 0.0, 1.0)[0], small.increment(Q, 0.0, 1.0)[1])  # key (9, 0)


@path_types
def test_a_sample_does_not_depend_on_how_the_batch_is_chunked(path_type):
    """300 elements per sample: a batch of 64 hashes one block of 16 rows (and one leaf) per chunk, a batch
    of 2 a whole descent at once; the fixed summation order must give the same bits."""
    seeds = list(range(100, 164))
    big = path_type(torch.zeros(64, 3, 100, dtype=torch.float64), SIGMA_MIN, SIGMA_MAX, seed=seeds)
    small = path_type(torch.zeros(2, 3, 100, dtype=torch.float64), SIGMA_MIN, SIGMA_MAX, seed=seeds[40:42])
    for query in [(P, -0.3, 0.7654321), (M, 2.0, 2.0 + 1e-9), (Q, LAM_LO, 3.3)]:
        assert torch.equal(big.increment(*query)[40:42], small.increment(*query))


def test_increment_does_not_depend_on_other_queried_points():
    x = torch.zeros(8, 4, dtype=torch.float64)
    direct = BrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=3).increment(M, 0.2, 1.9)
    busy = BrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=3)
    grid = np.linspace(LAM_LO, LAM_HI, 41)
    for s, t in zip(grid[:-1], grid[1:]):
        busy.increment(P, s, t)
        busy.increment(M, s, s + 0.3 * (t - s))
    assert torch.equal(busy.increment(M, 0.2, 1.9), direct)


def test_rate_functionals_are_exact_in_scale_and_share_the_motion(path):
    """The eta-family kernel eta sqrt2 e^{eta^2 u}: linear in its scale (to the rounding of point values
    K(lam) - K(lam_lo), which increments difference), and correlated with P as int k_eta k_P / sqrt(var var)."""
    eta_functional = functional_for("data", 0.5)
    unit = ExponentialFunctional("unit", 1.0, 0.25)
    a, b = 1.0, 2.5
    scaled = 0.5 * math.sqrt(2) * path.increment(unit, a, b)
    point_scale = path.increment(eta_functional, LAM_LO, b).abs().max().item()
    assert (path.increment(eta_functional, a, b) - scaled).abs().max().item() <= 1e-14 * point_scale
    covariance = scipy.integrate.quad(
        lambda u: float(eta_functional.kernel(u) * P.kernel(u)), a, b, epsabs=0, epsrel=1e-13
    )[0]
    correlation = covariance / math.sqrt(eta_functional.clock_increment(a, b) * P.clock_increment(a, b))
    empirical = np.corrcoef(values_of(path, eta_functional, a, b), values_of(path, P, a, b))[0, 1]
    assert abs(empirical - correlation) <= z_bound(4) * (1 - correlation**2) / math.sqrt(SAMPLES)


def test_fresh_noise_is_standard_normal_deterministic_and_independent_of_the_path(path):
    noise = path.fresh(0).numpy().ravel()
    assert_standard_normal(noise)
    again = type(path)(torch.zeros(SAMPLES, 1, dtype=torch.float64), SIGMA_MIN, SIGMA_MAX, seed=2024).fresh(0)
    assert torch.equal(path.fresh(0), again)
    bound = z_bound(4) / math.sqrt(SAMPLES)
    assert abs(np.corrcoef(noise, path.fresh(1).numpy().ravel())[0, 1]) <= bound
    assert abs(np.corrcoef(noise, values_of(path, B, LAM_LO, LAM_HI))[0, 1]) <= bound
    assert abs(np.corrcoef(noise, values_of(path, M, LAM_LO, LAM_LO + 0.05))[0, 1]) <= bound


def test_noise_sampler_convention(path):
    sigmas = [80.0, 3.0, 2.9]
    first, second = path(sigmas[0], sigmas[1]).numpy().ravel(), path(sigmas[1], sigmas[2]).numpy().ravel()
    assert_standard_normal(first)
    assert_standard_normal(second)
    assert abs(np.corrcoef(first, second)[0, 1]) <= z_bound(4) / math.sqrt(SAMPLES)
    lam, lam_next = -math.log(3.0), -math.log(2.9)
    assert torch.allclose(
        path(3.0, 2.9), path.increment(B, lam, lam_next) / math.sqrt(lam_next - lam), rtol=1e-15, atol=0
    )
    reversed_order = path(torch.tensor(2.9, dtype=torch.float64), torch.tensor(3.0, dtype=torch.float64))
    assert torch.equal(reversed_order, -path(3.0, 2.9))


@path_types
def test_output_shape_dtype_and_the_ends_of_the_range(path_type):
    x = torch.zeros(2, 3, 4, dtype=torch.float32)
    path = path_type(x, SIGMA_MIN, SIGMA_MAX, seed=1, dtype=torch.float32)
    assert path.sigma_range == (SIGMA_MIN, SIGMA_MAX)
    value = path.increment("Q", LAM_LO - 1e-13, LAM_HI + 1e-13)  # float rounding at the ends is tolerated
    assert value.shape == x.shape and value.dtype == torch.float32
    assert torch.equal(path.increment(M, 0.3, 0.3), torch.zeros_like(x))
    assert torch.equal(path.increment("Q", LAM_LO, LAM_HI), value)


# --------------------------------------------------------------------------------------------- bad input


@path_types
def test_bad_construction_is_refused_with_the_problem_named(path_type):
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="3 seeds for a batch of 4"):
        path_type(x, SIGMA_MIN, SIGMA_MAX, seed=[1, 2, 3])
    with pytest.raises(ValueError, match="empty batch"):
        path_type(torch.zeros(0, 2), SIGMA_MIN, SIGMA_MAX, seed=0)
    with pytest.raises(
        ValueError, match="need 0 < sigma_min < sigma_max, got sigma_min = 80.0, sigma_max = 0.002"
    ):
        path_type(x, SIGMA_MAX, SIGMA_MIN, seed=0)
    with pytest.raises(ValueError, match="need 0 < sigma_min < sigma_max, got sigma_min = 0.0"):
        path_type(x, 0.0, SIGMA_MAX, seed=0)
    with pytest.raises(ValueError, match="must be finite, got 0.002 and inf"):
        path_type(x, SIGMA_MIN, math.inf, seed=0)
    with pytest.raises(ValueError, match="seed must be an int or a list of ints"):
        path_type(x, SIGMA_MIN, SIGMA_MAX, seed=1.5)


@path_types
def test_bad_queries_are_refused_with_the_problem_named(path_type):
    path = path_type(torch.zeros(2, 2), SIGMA_MIN, SIGMA_MAX, seed=0)
    with pytest.raises(
        ValueError, match=r"interval \[-5.0, 1.0\] is outside the path's lambda range \[-4.38"
    ):
        path.increment(M, -5.0, 1.0)
    with pytest.raises(ValueError, match=r"interval \[1.0, 0.5\] must be finite with lam_a <= lam_b"):
        path.increment(M, 1.0, 0.5)
    # BrownianPath's fixed tree resolves kernels up to about e^(+-u); the adaptive one splits further, so
    # only a kernel that no node resolves (a jump) is refused there
    fast = ExponentialFunctional("fast", 1.0, 30.0) if path_type is BrownianPath else Jump()
    with pytest.raises(ValueError, match="not resolved by degree-7 Legendre moments"):
        path.increment(fast, 0.0, 1.0)
    with pytest.raises(ValueError, match="unknown functional 'X'"):
        path.increment("X", 0.0, 1.0)
    with pytest.raises(ValueError, match="two different noise levels"):
        path(1.0, 1.0)


# ------------------------------------------------------------------------------------------------ devices


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: CPU/CUDA agreement not checked")
@path_types
def test_cuda_draws_agree_with_cpu(path_type):
    """The hash is exact integer arithmetic; only ndtri and the float64 sums may differ by rounding."""
    seeds = list(range(64))
    cpu = path_type(torch.zeros(64, 5, dtype=torch.float64), SIGMA_MIN, SIGMA_MAX, seed=seeds)
    cuda = path_type(torch.zeros(64, 5, dtype=torch.float64, device="cuda"), SIGMA_MIN, SIGMA_MAX, seed=seeds)
    for query in [(M, -1.0, 0.25), (P, 3.0, 3.0 + 1e-7), (Q, LAM_LO, LAM_HI)]:
        on_cpu, on_cuda = cpu.increment(*query), cuda.increment(*query)
        assert on_cuda.device.type == "cuda"
        assert torch.allclose(on_cuda.cpu(), on_cpu, rtol=1e-12, atol=1e-12 * on_cpu.abs().max().item())
    assert torch.allclose(cuda.fresh(3).cpu(), cpu.fresh(3), rtol=1e-13, atol=0)


@path_types
def test_changing_an_answer_in_place_does_not_change_the_path(path_type):
    path = path_type(torch.zeros(4, 3, dtype=torch.float64), SIGMA_MIN, SIGMA_MAX, seed=5)
    for functional, a, b in [(B, 0.0, 1.0), (P, 0.0, 0.4), (P, 0.4, 1.0), (M, 0.2, 0.3)]:
        first = path.increment(functional, a, b)
        expected = first.clone()
        first.mul_(0.0)
        assert torch.equal(path.increment(functional, a, b), expected)
    noise = path(3.0, 2.0)
    expected = noise.clone()
    noise.add_(1.0)
    assert torch.equal(path(3.0, 2.0), expected)


def test_adaptive_first_moments_drawn_ahead_are_the_values_drawn_one_by_one():
    x = torch.zeros(8, 2, dtype=torch.float64)
    ahead, one_by_one = (AdaptiveBrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=4) for _ in range(2))
    assert ahead._rows_ahead > 1
    one_by_one._rows_ahead = 1
    sigmas = np.geomspace(SIGMA_MAX, SIGMA_MIN, 40)

    def answers(path):
        noise = [path(s, t) for s, t in zip(sigmas[:-1], sigmas[1:])]
        return noise + [path.increment(P, 0.1, 0.2)]  # a piece needing all its moments, after draws ahead

    assert all(torch.equal(a, b) for a, b in zip(answers(ahead), answers(one_by_one)))
