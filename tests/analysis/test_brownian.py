"""Brownian functionals: closed forms, stable generated forms, and the Legendre-moment tree laws."""

from __future__ import annotations

import ast
import math
import types

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from seeds.analysis import brownian
from seeds.solvers import _backend
from seeds.solvers.brownian import laws

LAMBDA_MIN, LAMBDA_MAX = -math.log(80.0), -math.log(0.002)
WHOLE_RANGE = LAMBDA_MAX - LAMBDA_MIN
EPS = np.finfo(np.float64).eps
DEGREE = brownian.LEGENDRE_DEGREE
SYMBOLS = (brownian.interval_start, brownian.interval_end, brownian.sigma_data)

sigma_datas = st.one_of(st.just(0.5), st.floats(0.05, 5.0))


@pytest.fixture(scope="module")
def coefficients():
    """The generated functions, from the generated module once it carries them, else exec'd from source."""
    try:
        from seeds.solvers import _coefficients
    except ImportError:
        _coefficients = None
    if _coefficients is not None and hasattr(_coefficients, "gram_QQ"):
        return _coefficients
    namespace = {name: getattr(_backend, name) for name in brownian._BACKEND_NAMES | {"elementwise"}}
    namespace["math"] = math
    exec(brownian.generated_source(), namespace)
    return types.SimpleNamespace(**namespace)


@pytest.fixture(scope="module")
def closed_form_gram():
    return sp.lambdify(SYMBOLS, brownian.gram(), modules="mpmath")


def exact_gram(closed_form_gram, a, b, sigma_data, digits=50):
    with mpmath.workdps(digits):
        return closed_form_gram(mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(sigma_data))


def interval(position, log_length):
    length = math.exp(log_length)
    a = LAMBDA_MIN + position * (WHOLE_RANGE - length)
    return a, min(a + length, LAMBDA_MAX)


log_lengths = st.floats(math.log(1e-10), math.log(WHOLE_RANGE))
positions = st.floats(0.0, 1.0)


@settings(max_examples=5, deadline=None)
@given(positions, st.floats(math.log(1e-3), math.log(WHOLE_RANGE)), sigma_datas)
def test_closed_form_gram_matches_quadrature(closed_form_gram, position, log_length, sigma_data):
    a, b = interval(position, log_length)
    kernels = brownian.kernels()
    closed = exact_gram(closed_form_gram, a, b, sigma_data)
    with mpmath.workdps(30):
        # sigma_data as mpf: a float would square in double precision inside the integrand.
        sigma = mpmath.mpf(sigma_data)
        pieces = mpmath.linspace(a, b, math.ceil(2 * (b - a)) + 1)
        for i, first in enumerate(brownian.FUNCTIONALS):
            for j, second in enumerate(brownian.FUNCTIONALS[i:], start=i):
                product = sp.lambdify(
                    (brownian.u, brownian.sigma_data), kernels[first] * kernels[second], "mpmath"
                )
                quadrature = mpmath.quad(lambda u, f=product: f(u, sigma), pieces, method="gauss-legendre")
                # Pieces of length <= 1/2 lie well inside the integrands' analyticity strip (poles at
                # distance pi/2): 30-digit Gauss-Legendre converges; 25 digits vs the 50-digit closed form.
                assert abs(closed[i, j] - quadrature) <= mpmath.mpf(10) ** -25 * abs(quadrature)


@settings(max_examples=150, deadline=None)
@given(positions, log_lengths, sigma_datas)
def test_generated_gram_entries_match_mpmath(
    coefficients, closed_form_gram, position, log_length, sigma_data
):
    a, b = interval(position, log_length)
    exact = exact_gram(closed_form_gram, a, b, sigma_data)
    for i, first in enumerate(brownian.FUNCTIONALS):
        for j in range(i, 4):
            value = getattr(coefficients, f"gram_{first}{brownian.FUNCTIONALS[j]}")(a, b, sigma_data)
            # The stable forms are ~10 correctly rounded operations with no cancellation (log1p, atan with
            # condition number <= 1), so errors are a few eps; 1e-13 leaves a factor ~50.
            assert abs(value - exact[i, j]) <= 1e-13 * abs(exact[i, j]), (
                first,
                brownian.FUNCTIONALS[j],
                a,
                b,
            )


def test_naive_closed_form_cancels_where_stable_form_does_not(coefficients, closed_form_gram):
    a, b, sigma_data = 1.0, 1.0 + 1e-10, 0.5
    naive = sp.lambdify(SYMBOLS, brownian.gram_entry("M", "M"), "math")(a, b, sigma_data)
    exact = exact_gram(closed_form_gram, a, b, sigma_data)[1, 1]
    assert abs(naive - exact) > 1e-8 * abs(exact)
    assert abs(coefficients.gram_MM(a, b, sigma_data) - exact) <= 1e-13 * abs(exact)


def test_generated_entries_accept_arrays_and_tensors(coefficients):
    torch = pytest.importorskip("torch")
    a = np.array([0.0, -2.0])
    b = a + np.array([1e-10, 3.0])
    as_array = coefficients.gram_QQ(a, b, 0.5)
    as_tensor = coefficients.gram_QQ(torch.tensor(a), torch.tensor(b), 0.5)
    as_floats = [coefficients.gram_QQ(float(x), float(y), 0.5) for x, y in zip(a, b, strict=True)]
    np.testing.assert_array_equal(as_array, as_floats)
    np.testing.assert_array_equal(as_tensor.numpy(), as_floats)


def test_generated_source_calls_only_backend_names():
    tree = ast.parse(brownian.generated_source())
    called = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert called <= brownian._BACKEND_NAMES
    assert all(name.startswith(("gram_", "legendre_", "bridge_")) for name in defined)
    assert {f"gram_{f}{s}" for f, s in brownian.gram_pairs()} <= defined


@pytest.mark.parametrize("length", np.geomspace(1e-10, WHOLE_RANGE, 7))
def test_raw_gram_symmetric_finite_and_psd_up_to_entry_errors(coefficients, closed_form_gram, length):
    a = LAMBDA_MIN + 0.5 * (WHOLE_RANGE - length)
    gram = laws.gram_matrix(a, a + length, 0.5, coefficients)
    assert np.all(np.isfinite(gram)) and np.array_equal(gram, gram.T)
    with mpmath.workdps(120):
        exact = exact_gram(closed_form_gram, a, a + length, 0.5, digits=120)
        # Eigenvalues go down to ~length^7 relative: only high precision can see that G is positive definite.
        assert min(mpmath.eigsy(exact)[0]) > 0
    # Entries are within 1e-13 relative (test above), so by Weyl the float eigenvalues move by at most
    # ||E||_F <= 4 * 1e-13 * max|G|: a negative eigenvalue beyond that would be a real defect.
    assert np.linalg.eigvalsh(gram).min() >= -4e-13 * np.abs(gram).max()


# --- Legendre-moment route ---------------------------------------------------------------------------------


def test_symbolic_moments_are_independent_with_linear_variances():
    covariance = brownian.legendre_moment_covariance(4)
    assert covariance == sp.diag(*brownian.legendre_moment_variances(4))
    assert all(
        sp.diff(variance, brownian.half_length, 2) == 0 for variance in brownian.legendre_moment_variances(4)
    )


def test_symbolic_bridge_covariance_is_an_exact_projection():
    gain, covariance = brownian.legendre_bridge_law(3)
    unit_map = brownian.legendre_unit_child_map(3)
    assert (covariance * covariance - covariance).applyfunc(sp.expand) == sp.zeros(8, 8)
    assert covariance.T == covariance
    assert (unit_map * gain - sp.eye(4)).applyfunc(sp.expand) == sp.zeros(4, 4)


@pytest.mark.parametrize("split", [sp.Rational(1, 2), sp.Rational(3, 10)])
def test_numeric_child_map_matches_symbolic(split):
    symbolic = np.array(
        brownian.legendre_unit_child_map(DEGREE).subs(brownian.fraction, split).evalf(30), dtype=float
    )
    numeric = laws.legendre_unit_child_map(float(split), DEGREE)
    # Entries are O(1) sums of ~2p O(1) terms: a few tens of eps.
    assert np.abs(numeric - symbolic).max() <= 100 * EPS


def test_child_map_reproduces_parent_moments_of_any_integrator():
    """Replace dB by g(u) du: parent moments must equal the mapped children moments (the map is exact)."""
    nodes, weights = np.polynomial.legendre.leggauss(60)

    def unit_moments(start, end):
        half = (end - start) / 2
        times = (start + end) / 2 + half * nodes
        integrator = np.cos(3 * times) + times**2
        values = np.polynomial.legendre.legvander(nodes, DEGREE).T
        return half * (values * weights) @ integrator / np.sqrt(laws.legendre_moment_variances(half, DEGREE))

    start, split, end = 0.2, 0.55, 1.3
    children = np.concatenate([unit_moments(start, split), unit_moments(split, end)])
    mapped = laws.legendre_unit_child_map((split - start) / (end - start), DEGREE) @ children
    # Quadrature of an entire function with 60 nodes is exact to rounding; the map adds ~p eps.
    np.testing.assert_allclose(mapped, unit_moments(start, end), rtol=0, atol=1e-13)


@settings(max_examples=40, deadline=None)
@given(
    st.one_of(st.floats(1e-10, 1 - 1e-10), st.sampled_from([1e-10, 0.5, 1 - 1e-10])),
    st.integers(0, 2**32 - 1),
)
def test_moment_bridge_is_psd_projection_and_reproduces_parent(fraction, seed):
    mean_map, covariance, noise_map = laws.bridge_moment_law(fraction, DEGREE)
    unit_map = laws.legendre_unit_child_map(fraction, DEGREE)
    size = 2 * (DEGREE + 1)
    # Orthonormal rows and a Householder complement hold to a small multiple of p * eps.
    tolerance = 100 * EPS
    assert np.abs(unit_map @ unit_map.T - np.eye(DEGREE + 1)).max() <= tolerance
    assert np.all(np.isfinite(covariance)) and np.abs(covariance - covariance.T).max() <= tolerance
    assert np.linalg.eigvalsh(covariance).min() >= -1e-12 * np.abs(covariance).max()
    assert np.abs(covariance - (np.eye(size) - unit_map.T @ unit_map)).max() <= tolerance
    assert np.abs(covariance @ covariance - covariance).max() <= tolerance
    rng = np.random.default_rng(seed)
    parent = rng.standard_normal(DEGREE + 1)
    children = mean_map @ parent + noise_map @ rng.standard_normal(DEGREE + 1)
    assert np.abs(unit_map @ children - parent).max() <= tolerance * (1 + np.abs(children).sum())


@pytest.mark.parametrize("name", ["M", "Q"])
def test_truncation_bound_exceeds_actual_legendre_error(name):
    """The bound drives the leaf length, so it must hold where the error is measurable (p = 3, h = 0.4)."""
    degree, half, sigma_data, centre = 3, 0.4, 0.5, -math.log(0.5)
    kernel = sp.lambdify((brownian.u, brownian.sigma_data), brownian.kernels()[name], "mpmath")
    with mpmath.workdps(30):

        def along(v):
            return kernel(centre + half * v, sigma_data)

        coefficients = [
            (2 * j + 1)
            / mpmath.mpf(2)
            * mpmath.quad(lambda v, j=j: along(v) * mpmath.legendre(j, v), [-1, 1])
            for j in range(degree + 1)
        ]
        residual = mpmath.quad(
            lambda v: (along(v) - sum(c * mpmath.legendre(j, v) for j, c in enumerate(coefficients))) ** 2,
            [-1, 1],
        )
        relative_error = mpmath.sqrt(residual / mpmath.quad(lambda v: along(v) ** 2, [-1, 1]))
    bound = brownian.legendre_truncation_bound(name, degree, half)
    assert relative_error <= bound < 100 * relative_error


@settings(max_examples=30, deadline=None)
@given(positions, st.floats(math.log(1e-10), math.log(WHOLE_RANGE)), sigma_datas)
def test_functionals_from_moments_reproduce_gram(coefficients, position, log_length, sigma_data):
    a, b = interval(position, log_length)
    maps = laws.leaf_moment_maps(a, b, sigma_data, coefficients)
    from_moments = maps @ maps.T
    gram = laws.gram_matrix(a, b, sigma_data, coefficients)
    # Projection error enters the covariance squared (<= (1e-14)^2); rounding of 16-node quadratures and
    # the leaf sums is ~100 eps relative: 1e-12 is the stated accuracy.
    np.testing.assert_allclose(from_moments, gram, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("a", "b", "c"),
    [(0.1, 0.15, 0.2), (-1.0, -0.3, 0.6), (1.0, 1.5, 2.0), (LAMBDA_MIN, 0.0, LAMBDA_MAX)],
)
def test_raw_bridge_law_matches_high_precision(coefficients, closed_form_gram, a, b, c):
    mean_map, covariance = laws.raw_bridge_law(a, b, c, 0.5, coefficients)
    with mpmath.workdps(60):
        first = exact_gram(closed_form_gram, a, b, 0.5, digits=60)
        parent = first + exact_gram(closed_form_gram, b, c, 0.5, digits=60)
        exact_covariance = first * mpmath.inverse(parent) * (parent - first)
        eigenvalues = mpmath.eigsy(parent)[0]
        condition = float(max(eigenvalues) / min(eigenvalues))
        scale = mpmath.mnorm(first, "F")
        covariance_error = mpmath.mnorm(mpmath.matrix(covariance) - exact_covariance, "F") / scale
        residual = mpmath.mnorm(mpmath.matrix(mean_map) * parent - first, "F") / scale
    # Leaf truncation (1e-14) and rounding perturb the factor W, whose condition is sqrt(cond G).
    tolerance = (1e-14 + EPS) * math.sqrt(condition)
    assert covariance_error <= tolerance
    assert residual <= tolerance
    assert np.array_equal(covariance, covariance.T)
    assert np.linalg.eigvalsh(covariance).min() >= -1e-12 * np.abs(covariance).max()


@pytest.mark.parametrize("fraction", [1e-10, 0.3, 0.5, 1 - 1e-10])
def test_raw_law_given_moments_has_the_raw_gram_as_total_variance(coefficients, fraction):
    a, c, sigma_data = 0.4, 0.4 + 2 * coefficients.LEGENDRE_MAX_HALF_LENGTH, 0.5
    b = a + fraction * (c - a)
    mean_map, covariance = laws.raw_bridge_law_given_moments(a, b, c, sigma_data, coefficients)
    assert np.linalg.eigvalsh(covariance).min() >= -1e-12 * np.abs(covariance).max()
    # Law of total variance: Var X = Var E[X|y] + E Var[X|y], with y ~ N(0, I).
    np.testing.assert_allclose(
        mean_map @ mean_map.T + covariance,
        laws.gram_matrix(a, b, sigma_data, coefficients),
        rtol=1e-12,
    )


@pytest.mark.parametrize("name", ["M", "P"])
def test_runtime_kernel_coefficients_match_symbolic_expansion(coefficients, name):
    start, end, sigma_data = 0.3, 0.35, 0.5
    half = (end - start) / 2
    row = brownian.FUNCTIONALS.index(name)
    unit_scales = np.sqrt(laws.legendre_moment_variances(half, DEGREE))
    runtime = laws.functional_moment_map(start, end, sigma_data, coefficients)[row] / unit_scales
    for j in range(4):
        symbolic = sp.lambdify(
            (brownian.midpoint, brownian.half_length), brownian.legendre_kernel_coefficient(name, j), "mpmath"
        )
        with mpmath.workdps(50):
            exact = symbolic(mpmath.mpf(start + end) / 2, mpmath.mpf(half))
        # Quadrature rounding is absolute, ~eps times the kernel size (~2 here).
        assert abs(runtime[j] - exact) <= 100 * EPS
