"""Float64 laws of the Brownian functionals in Legendre moments, and the moment weights of any kernel.

Two representations of one Brownian motion on an interval [a, b] (docs/mathematics.md, "Brownian
functionals"):

* raw increments of (B, M, P, Q), covariance `gram_matrix` from the generated closed forms; accurate entry by
  entry, but so ill-conditioned on short intervals (eigenvalues ~ d, d^3, d^5, d^7) that it must never be
  factored or inverted in float64;
* unit-variance Legendre moments Z_j = int P_j(v) dB / sd(I_j), j <= LEGENDRE_DEGREE, v the rescaled time:
  independent standard normals, with an exact orthonormal parent -> children map, so a tree step is a
  projection. Raw increments over a leaf (half-length <= LEGENDRE_MAX_HALF_LENGTH) are `K @ Z` with the
  Legendre coefficients of the kernels (truncation below 1e-14 relative, derived in analysis/brownian.py);
  longer intervals are sums of leaves.

Every path of docs/brownian-paths.md answers a functional over a node as w . Z, with the kernel's moment
weights w (`interval_moment_weights`) and a check that the degrees left out stay within TAIL_TOLERANCE.

`coefficients` is the generated module `seeds.solvers._coefficients` (default) or any namespace holding the
functions of `seeds.analysis.brownian.generated_source()`.
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np
import scipy.linalg
import torch

from seeds.solvers import _coefficients as generated

FUNCTIONALS = ("B", "M", "P", "Q")
# unit Legendre moments kept per node: degrees 0 .. LEGENDRE_DEGREE
MOMENTS = generated.LEGENDRE_DEGREE + 1
# A kernel whose Legendre tail beyond the kept degree exceeds this fraction of its resolved part is
# refused: the derived truncation of B, M, P, Q on leaves is 1e-14.
TAIL_TOLERANCE = 1e-13


def _namespace(coefficients):
    return generated if coefficients is None else coefficients


def gram_matrix(a, b, sigma_data, coefficients: ModuleType | None = None) -> np.ndarray:
    """Covariance of the (B, M, P, Q) increments over [a, b]; shape broadcast(a, b) + (4, 4)."""
    namespace = _namespace(coefficients)
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    matrix = np.empty(a.shape + (4, 4))
    for i, first in enumerate(FUNCTIONALS):
        for j in range(i, 4):
            second = FUNCTIONALS[j]
            entry = getattr(namespace, f"gram_{first}{second}")(a, b, sigma_data)
            matrix[..., i, j] = entry
            matrix[..., j, i] = entry
    return matrix


def _quadrature(degree: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # 2(p+1) Gauss-Legendre nodes integrate degree 4p+3 exactly: exact for P_j P_k, and for kernel
    # coefficients the aliasing starts at Legendre degree 3p+4, far below the degree-(p+1) truncation.
    nodes, weights = np.polynomial.legendre.leggauss(2 * (degree + 1))
    return nodes, weights, np.polynomial.legendre.legvander(nodes, degree).T


def legendre_moment_variances(half_length: float, degree: int) -> np.ndarray:
    """Var(int P_j(v) dB) = half_length * int_{-1}^{1} P_j(v)^2 dv, j = 0..degree."""
    _, weights, values = _quadrature(degree)
    return half_length * (values**2 @ weights)


def legendre_unit_child_map(fraction: float, degree: int) -> np.ndarray:
    """A = [A_left | A_right]: parent unit moments = A @ (left unit moments, right unit moments), exactly.

    The split sits at `fraction` of the parent's length. P_j(parent time) restricted to a child is a degree-j
    polynomial, so its Legendre coefficients come exactly from quadrature; A has orthonormal rows.
    """
    nodes, weights, child_values = _quadrature(degree)
    unit_variances = legendre_moment_variances(1.0, degree)
    blocks = []
    for start, scale in ((-1.0, fraction), (2 * fraction - 1, 1 - fraction)):
        parent_values = np.polynomial.legendre.legvander(start + scale * (nodes + 1), degree).T
        expansion = (parent_values * weights) @ child_values.T / (child_values**2 @ weights)
        blocks.append(expansion * np.sqrt(scale * np.outer(1 / unit_variances, unit_variances)))
    return np.hstack(blocks)


def bridge_moment_law(fraction: float, degree: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Law of the children's unit moments X (left then right) given the parent's y.

    Returns (mean_map, covariance, noise_map): X = mean_map @ y + noise_map @ n with n ~ N(0, I_(p+1)),
    covariance = noise_map @ noise_map.T = I - A^T A. noise_map is an orthonormal basis of the null space of
    A, so the draw reproduces the parent exactly (A @ noise_map = 0) and the covariance is PSD by form.
    """
    unit_map = legendre_unit_child_map(fraction, degree)
    orthogonal, _ = np.linalg.qr(unit_map.T, mode="complete")
    noise_map = orthogonal[:, degree + 1 :]
    return unit_map.T, noise_map @ noise_map.T, noise_map


def functional_moment_map(a: float, b: float, sigma_data: float, coefficients: ModuleType | None = None):
    """K with (B, M, P, Q) increments over the leaf [a, b] = K @ (unit Legendre moments of [a, b]).

    K[f, j] = c_j sd(I_j), c_j the Legendre coefficients of kernel f about the leaf.
    """
    namespace = _namespace(coefficients)
    degree = namespace.LEGENDRE_DEGREE
    half = (b - a) / 2
    if not 0 < half <= namespace.LEGENDRE_MAX_HALF_LENGTH * (1 + 1e-12):
        raise ValueError(f"[{a}, {b}] is not a leaf: half-length must be in (0, LEGENDRE_MAX_HALF_LENGTH]")
    nodes, weights, values = _quadrature(degree)
    times = (a + b) / 2 + half * nodes
    kernel_values = np.stack(
        [
            np.broadcast_to(getattr(namespace, f"legendre_kernel_{name}")(times, sigma_data), times.shape)
            for name in FUNCTIONALS
        ]
    )
    unit_variances = legendre_moment_variances(1.0, degree)
    legendre_coefficients = (kernel_values * weights) @ values.T / unit_variances
    return legendre_coefficients * np.sqrt(half * unit_variances)


def leaf_edges(a: float, b: float, coefficients: ModuleType | None = None) -> np.ndarray:
    """Equal leaves covering [a, b], each within the Legendre length rule."""
    leaf_length = 2 * _namespace(coefficients).LEGENDRE_MAX_HALF_LENGTH
    edges = np.linspace(a, b, max(1, math.ceil((b - a) / leaf_length)) + 1)
    edges[-1] = b
    return edges


def leaf_moment_maps(
    a: float, b: float, sigma_data: float, coefficients: ModuleType | None = None
) -> np.ndarray:
    """[K_1 | ... | K_n] over the leaves of [a, b]: increments = this @ (leaves' unit moments, in order)."""
    edges = leaf_edges(a, b, coefficients)
    return np.hstack(
        [
            functional_moment_map(left, right, sigma_data, coefficients)
            for left, right in zip(edges[:-1], edges[1:], strict=True)
        ]
    )


def raw_bridge_law_given_moments(a: float, b: float, c: float, sigma_data: float, coefficients=None):
    """Law of the (B, M, P, Q) increments over [a, b] given the unit moments y of the leaf [a, c].

    Returns (mean_map, covariance): mean mean_map @ y; covariance (K_left N)(K_left N)^T with N the left rows
    of the bridge noise map, so it is PSD by form and never inverts an ill-conditioned Gram matrix.
    """
    namespace = _namespace(coefficients)
    mean_map, _, noise_map = bridge_moment_law((b - a) / (c - a), namespace.LEGENDRE_DEGREE)
    left = functional_moment_map(a, b, sigma_data, namespace)
    left_noise = left @ noise_map[: namespace.LEGENDRE_DEGREE + 1]
    return left @ mean_map[: namespace.LEGENDRE_DEGREE + 1], left_noise @ left_noise.T


def raw_bridge_law(a: float, b: float, c: float, sigma_data: float, coefficients=None):
    """Law of the (B, M, P, Q) increments X over [a, b] given Y, those over [a, c], for any lengths.

    Mean G1 (G1 + G2)^{-1} Y and covariance G1 (G1 + G2)^{-1} G2, computed without forming either Gram
    matrix: with all leaf moments as independent standard normals, X = V Z and Y = W Z, and a QR
    factorisation W^T = Q R gives mean map V Q R^{-T} and covariance (V - V Q Q^T)(V - V Q Q^T)^T.
    Errors (rounding, and the 1e-14 leaf truncation) enter through Q alone, i.e. amplified by
    cond(W) = sqrt(cond(G)) rather than cond(G): relative accuracy ~1e-14 sqrt(cond(G)), so ~1e-8 for a
    parent of length 0.1 (cond(G) ~ 1e12) and better for longer ones. Below that the raw-on-raw law is not
    resolvable in float64 at all; a tree conditions moments instead (`raw_bridge_law_given_moments`).
    """
    namespace = _namespace(coefficients)
    left = leaf_moment_maps(a, b, sigma_data, namespace)
    right = leaf_moment_maps(b, c, sigma_data, namespace)
    child = np.hstack([left, np.zeros_like(right)])
    parent = np.hstack([left, right])
    orthonormal, triangular = np.linalg.qr(parent.T)
    projected = child @ orthonormal
    residual = child - projected @ orthonormal.T
    mean_map = scipy.linalg.solve_triangular(triangular, projected.T).T
    return mean_map, residual @ residual.T


# ------------------------------------------------------------------ moment weights of any kernel

_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(2 * MOMENTS)
# P_j(node) for j up to 2 * LEGENDRE_DEGREE + 1: the degrees above LEGENDRE_DEGREE measure the truncation.
_LEGENDRE_VALUES = np.polynomial.legendre.legvander(_GAUSS_NODES, 2 * MOMENTS - 1).T
_UNIT_VARIANCES = legendre_moment_variances(1.0, 2 * MOMENTS - 1)
# kernel values at the Gauss nodes @ this = Legendre coefficients
_VALUES_TO_COEFFICIENTS = (_LEGENDRE_VALUES * _GAUSS_WEIGHTS).T / _UNIT_VARIANCES


def kernel_values(kernel, centres: np.ndarray, halves: np.ndarray) -> np.ndarray:
    """The kernel at the Gauss nodes of the intervals centres -/+ halves: (intervals, 2 * MOMENTS)."""
    times = centres[:, None] + halves[:, None] * _GAUSS_NODES
    values = torch.as_tensor(kernel(torch.from_numpy(times)), dtype=torch.float64).cpu().numpy()
    return np.broadcast_to(values, times.shape)


def moment_weights(values: np.ndarray, halves: np.ndarray) -> np.ndarray:
    """Weights w_j = c_j sd_j, j < 2 * MOMENTS, of kernel values at the Gauss nodes of intervals with these
    half-lengths: c_j the Legendre coefficients, sd_j^2 = half-length * 2/(2j+1)."""
    return (values @ _VALUES_TO_COEFFICIENTS) * np.sqrt(np.multiply.outer(halves, _UNIT_VARIANCES))


def relative_tails(weights: np.ndarray) -> np.ndarray:
    """tails[..., q] = |(w_q+1, ..., w_15)| / |(w_0, ..., w_q)| for q <= LEGENDRE_DEGREE: the relative size of
    what keeping the moments up to degree q leaves out (0 for a zero kernel)."""
    squares = weights**2
    kept = np.sqrt(np.cumsum(squares, axis=-1)[..., :MOMENTS])
    dropped = np.sqrt(np.cumsum(squares[..., ::-1], axis=-1)[..., ::-1][..., 1 : MOMENTS + 1])
    return np.divide(dropped, kept, out=np.zeros_like(kept), where=kept > 0)


def kernel_moment_weights(kernel, a: float, b: float) -> tuple[np.ndarray, float]:
    """(w, tail): int_a^b kernel dB = w . Z + error for the unit Legendre moments Z of [a, b].

    w_j = c_j sd_j with c_j the Legendre coefficients of the kernel on [a, b] and sd_j^2 = half-length
    * 2/(2j+1); tail is |(w_8, ..., w_15)| / |w|, the relative size of what the expansion leaves out.
    """
    weights, tails = interval_moment_weights(kernel, np.array([a]), np.array([b]))
    return weights[0], float(tails[0])


def interval_moment_weights(kernel, lefts: np.ndarray, rights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`kernel_moment_weights` of many intervals at once: weights (interval, moment) and tails (interval)."""
    halves = (rights - lefts) / 2
    weights = moment_weights(kernel_values(kernel, (lefts + rights) / 2, halves), halves)
    return weights[:, :MOMENTS], relative_tails(weights)[:, generated.LEGENDRE_DEGREE]


def exponential_tails(rate_times_half_lengths: np.ndarray) -> np.ndarray:
    """relative_tails of e^(x v) on [-1, 1] for each x: the tails of any exponential with rate * half = x."""
    values = np.exp(np.multiply.outer(rate_times_half_lengths, _GAUSS_NODES))
    return relative_tails(moment_weights(values, np.ones(len(rate_times_half_lengths))))


def combine(coefficients, sources):
    """sum_s coefficients[..., s] * sources[s] by elementwise multiply-adds in a fixed order, so that each
    element's value never depends on the batch (a matrix product's reduction order may)."""
    total = coefficients[..., 0] * sources[0]
    for s in range(1, len(sources)):
        total += coefficients[..., s] * sources[s]
    return total
