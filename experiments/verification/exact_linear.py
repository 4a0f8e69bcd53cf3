"""Exact, Monte-Carlo-free strong and weak errors on Gaussian data (docs/results.md, docs/mathematics.md).

For data N(mu, S) the exact denoiser D = mu + S (S + vs^2)^{-1} (x~ - mu) is affine, so every method here
is affine in (x~_0, Brownian path). In the eigenbasis of S the problem splits into independent scalar
problems with data N(m, v); each is solved below, all at once, one eigen-direction per column.

Numerical solution. Every stochastic method draws its noise as increments of one functional
K = int k_K dB (B, M, P, Q or P[eta]) over sub-intervals ("pieces") of its steps, each new piece an
independent sqrt(clock) z with clock = int k_K^2 over the piece (`seeds.solvers.IndependentPieces`).
Running the real solver once on a basis batch (`BasisPieces`: element 0 has x~_0 = 1 and no noise,
element j + 1 has x~_0 = 0 and z = 1 in piece j only) on the centred problem gives the gain A (element 0)
and the coefficient c_j of z_j (element j + 1); one more noiseless run from x~_0 = 0 on the uncentred
problem gives the offset b. As z_j = dK_j / sqrt(clock_j), on the path

    x_num = A x~_0 + b + int w_num dB,   w_num(u) = sum_j c_j / sqrt(clock_j) k_K(u) 1[u in piece j].

Exact solution on the same path. With eta = 1 the reverse SDE dx~ = 2 (D - x~) dlambda + sqrt(2) vs dB has
the linear drift -2 vs^2 / (vs^2 + v) (x~ - m) = d/dlambda log(vs^2 + v) (x~ - m), so its transition factor
is Phi(T, u) = (vs_T^2 + v) / (vs_u^2 + v) and

    x_exact = m + Phi(T, 0) (x~_0 - m) + int Phi(T, u) sqrt(2) vs(u) dB_u.

(The noise kernel is (vs_T^2 + v) times the kernel of Q with sigma_data^2 = v.) The eta-family
dx~ = (1 + eta^2)(D - x~) dlambda + eta sqrt(2) vs dB has the same marginals and the factor
Phi^{(1 + eta^2)/2}; `reference_eta` picks the equation the strong error is measured against (default 1,
the SDE). A deterministic method has w_num = 0, so its strong error against the SDE is the distance from
its output to the SDE solution started from the same x~_0, not its discretisation error of the
probability-flow ODE (reference_eta = 0 gives that one).

Errors. x_num - x_exact is Gaussian, so per eigen-direction

    E|x_num - x_exact|^2 = (A - Phi(T, 0))^2 Var(x~_0) + (A m + b - m)^2 + int (w_num - w_exact)^2 du,

the integral by Gauss-Legendre quadrature on the pieces (both weights are smooth inside each piece; they are
analytic in a strip of half-width pi/2 around the real lambda axis, so 8 nodes on sub-intervals of length at
most 1/2 give about 1e-15 relative accuracy). The output law is N(A m + b, A^2 Var(x~_0) + sum_j c_j^2),
fresh (churn) normals included, against the target N(m, v + vs_T^2): weak errors, KL and W2 in closed form.
Churn noise (EDM-Heun with s_churn > 0) is not an increment of a Brownian path, so it has no strong error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from seeds.solvers import CHOOSE_PREDICTION, make_method, noise_levels, sample
from seeds.solvers.brownian import covariance

FRESH = "fresh"  # the functional recorded for a churn-style fresh normal, which has no interval


@dataclass(frozen=True)
class NoisePiece:
    """One independent normal the solver drew: an increment of `functional` over [start, end] in lambda,
    with clock = int k^2 over it, or a fresh normal (functional FRESH, no interval).

    A piece with `given` is the part of `functional`'s increment over [start, end] that is independent of
    earlier pieces of the step's first functional (`PieceNoise`): given holds (piece index, beta), the
    covariance of the increment with that piece's normal, and clock the residual variance; its unit kernel
    is (k(u) - sum beta k_piece(u) / sqrt(clock_piece)) / sqrt(clock)."""

    functional: object
    start: float | None = None
    end: float | None = None
    clock: float | None = None
    given: tuple = ()


class PieceNoise:
    """A noise source that draws a step's noise as pieces (NoisePiece): every new sub-interval of the step's
    functional, or a fresh normal, is one standard normal z, the increment sqrt(clock) z, as
    IndependentPieces draws them; a subclass says what z is (`_normal`). A second functional over an interval
    the step's first one already covers (ESRA's time-integral functional) is drawn jointly with it: its
    regression on those pieces plus one new independent piece (`_joint_increment`). Every piece drawn is
    recorded in `pieces`."""

    def __init__(self, batch: int):
        self.batch = batch
        self.pieces: list[NoisePiece] = []
        self._normals: list = []
        self._start = None
        self._joint: dict = {}

    def _normal(self, piece: NoisePiece):
        """The (batch, 1) tensor of the piece's standard normal; len(self.pieces) is its index."""
        raise NotImplementedError

    def _draw(self, piece: NoisePiece):
        normal = self._normal(piece)
        self.pieces.append(piece)
        self._normals.append(normal)
        return normal

    def fresh(self, key):
        return self._draw(NoisePiece(FRESH))

    def _joint_increment(self, functional, lam_a, lam_b):
        """`functional`'s increment over [lam_a, lam_b], jointly Gaussian with the pieces of the step's first
        functional that tile that interval."""
        key = (functional, lam_a, lam_b)
        if key not in self._joint:
            first = self._start[0]
            tiles = [
                (index, piece)
                for index, piece in enumerate(self.pieces)
                if piece.functional == first
                and not piece.given
                and lam_a <= piece.start
                and piece.end <= lam_b
            ]
            covered = sorted((piece.start, piece.end) for _, piece in tiles)
            edges = [lam_a] + [end for _, end in covered]
            if not covered or [start for start, _ in covered] != edges[:-1] or edges[-1] != lam_b:
                raise ValueError(
                    f"{functional!r} over [{lam_a}, {lam_b}] is not tiled by the pieces drawn for the step's "
                    "first functional: a joint draw needs them first"
                )
            given = tuple(
                (index, covariance(functional, first, piece.start, piece.end) / math.sqrt(piece.clock))
                for index, piece in tiles
            )
            residual = functional.clock_increment(lam_a, lam_b) - sum(beta**2 for _, beta in given)
            if residual < -1e-12 * functional.clock_increment(lam_a, lam_b):
                raise ArithmeticError(f"negative residual variance {residual} for {functional!r}")
            residual = max(residual, 0.0)
            value = sum(beta * self._normals[index] for index, beta in given)
            piece = NoisePiece(functional, lam_a, lam_b, residual, given)
            self._joint[key] = value + math.sqrt(residual) * self._draw(piece)
        return self._joint[key]

    def increment(self, functional, lam_a, lam_b):
        if self._start is not None and self._start[1] == lam_a and functional != self._start[0]:
            return self._joint_increment(functional, lam_a, lam_b)
        if self._start != (functional, lam_a):
            self._start, self._reached = (functional, lam_a), lam_a
            self._value = torch.zeros(self.batch, 1, dtype=torch.float64)
            self._joint = {}
        if lam_b < self._reached:
            raise ValueError(
                f"noise pieces must move forward in a step: lambda {lam_b} after {self._reached}"
            )
        if lam_b > self._reached:
            clock = functional.clock_increment(self._reached, lam_b)
            piece = NoisePiece(functional, self._reached, lam_b, clock)
            self._value = self._value + math.sqrt(clock) * self._draw(piece)
            self._reached = lam_b
        return self._value


class BasisPieces(PieceNoise):
    """A noise source that turns a solver run into the coefficients of its noise: batch element j + 1 sees
    z = 1 for piece j and 0 otherwise, and element 0 sees no noise. Built with batch = 1 it gives every
    element zero noise and only records the pieces (to size the basis).
    """

    def _normal(self, piece: NoisePiece):
        if self.batch > 1 and len(self.pieces) + 1 >= self.batch:
            raise RuntimeError(f"more than {self.batch - 1} noise pieces: the basis is too small")
        unit = torch.zeros(self.batch, 1, dtype=torch.float64)
        if self.batch > 1:
            unit[len(self.pieces) + 1] = 1.0
        return unit


def affine_denoiser(means, variances):
    """Exact D(x, sigma) for data with independent coordinates N(means[i], variances[i]); x is (batch, d)."""
    means = torch.as_tensor(means, dtype=torch.float64)
    variances = torch.as_tensor(variances, dtype=torch.float64)

    def denoiser(x, sigma):
        level = sigma.to(torch.float64).reshape(-1, 1)
        return (means + variances / (variances + level**2) * (x.to(torch.float64) - means)).to(x.dtype)

    return denoiser


@dataclass(frozen=True)
class AffineSolution:
    """A method's output on the eigen-directions of Gaussian data, as x_num = gain x~_0 + offset + sum_j
    coefficients[j] z_j with z_j the independent normals of `pieces` (arrays over the d directions)."""

    gain: np.ndarray  # (d,)
    offset: np.ndarray  # (d,)
    coefficients: np.ndarray  # (pieces, d)
    pieces: tuple
    nfe: int


def affine_solution(method, sigmas, means, variances, **options) -> AffineSolution:
    """Run `method` (a METHODS id, options as for `seeds.solvers.sample`) on the basis batch; see the module
    docstring. means, variances: the data law per eigen-direction."""
    means = np.atleast_1d(np.asarray(means, dtype=np.float64))
    variances = np.atleast_1d(np.asarray(variances, dtype=np.float64))
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if float(sigmas[-1]) <= 0:
        raise ValueError(
            "the run must end at a positive noise level: a final denoising step has no exact SDE solution"
        )
    # the noiseless run from x~_0 = 0 on the uncentred problem gives the offset and sizes the basis
    recorder = BasisPieces(1)
    start = torch.zeros(1, len(means), dtype=torch.float64)
    # the exact errors study the scheme on any grid, also one whose steps grow (docs/esra.md, "Stability")
    offset = sample(
        affine_denoiser(means, variances),
        start,
        sigmas,
        method=method,
        path=recorder,
        allow_growing_steps=True,
        **options,
    ).samples[0]
    basis = BasisPieces(len(recorder.pieces) + 1)
    start = torch.zeros(basis.batch, len(means), dtype=torch.float64)
    start[0] = 1.0
    result = sample(
        affine_denoiser(np.zeros_like(means), variances),
        start,
        sigmas,
        method=method,
        path=basis,
        allow_growing_steps=True,
        **options,
    )
    if basis.pieces != recorder.pieces:
        raise RuntimeError(f"{method} drew different noise pieces in two runs on the same grid")
    return AffineSolution(
        gain=result.samples[0].numpy(),
        offset=offset.numpy(),
        coefficients=result.samples[1:].numpy(),
        pieces=tuple(basis.pieces),
        nfe=result.nfe,
    )


def exact_output_variance(method, sigmas, data_variance, **options) -> float:
    """Var of a linear method's output on N(0, data_variance) data started from the exact marginal."""
    solution = affine_solution(method, sigmas, 0.0, data_variance, **options)
    start_variance = data_variance + float(sigmas[0]) ** 2
    return float(solution.gain[0] ** 2 * start_variance + (solution.coefficients[:, 0] ** 2).sum())


# ------------------------------------------------------------------------------------------ exact solution


def transition_factor(vs_end, vs_from, variances, eta=1.0):
    """Phi(T, u) of the eta-family SDE for data variances v: ((vs_T^2 + v) / (vs_u^2 + v))^{(1 + eta^2)/2}."""
    vs_from = np.asarray(vs_from, dtype=np.float64)[..., None]
    return ((vs_end**2 + variances) / (vs_from**2 + variances)) ** ((1.0 + eta**2) / 2.0)


def exact_noise_weight(lam, vs_end, variances, eta=1.0):
    """w_exact(u) = Phi(T, u) eta sqrt(2) vs(u), the kernel of the exact solution's stochastic integral;
    shape (len(lam), d)."""
    vs = np.exp(-np.asarray(lam, dtype=np.float64))
    return transition_factor(vs_end, vs, variances, eta) * (eta * math.sqrt(2.0) * vs)[..., None]


@dataclass(frozen=True)
class Quadrature:
    """Gauss-Legendre, `nodes` nodes on every sub-interval of length at most `max_length` (lambda units)."""

    nodes: int = 8
    max_length: float = 0.5

    def points(self, breakpoints):
        """Nodes and weights covering [breakpoints[0], breakpoints[-1]], each interval split as needed."""
        reference_nodes, reference_weights = np.polynomial.legendre.leggauss(self.nodes)
        nodes, weights = [], []
        for a, b in zip(breakpoints[:-1], breakpoints[1:]):
            parts = max(1, math.ceil((b - a) / self.max_length))
            edges = np.linspace(a, b, parts + 1)
            half = 0.5 * np.diff(edges)[:, None]
            nodes.append((0.5 * (edges[:-1] + edges[1:])[:, None] + half * reference_nodes).ravel())
            weights.append((half * reference_weights).ravel())
        return np.concatenate(nodes), np.concatenate(weights)


class StrongErrorNotApplicable(ValueError):
    """The method's output is not an integral against one Brownian path (e.g. EDM churn noise)."""


def path_pieces(solution: AffineSolution):
    """The pieces that are Brownian increments, sorted; refuses fresh normals and overlapping pieces, for
    which the output is not an integral against one Brownian path."""
    if any(piece.functional == FRESH for piece in solution.pieces):
        raise StrongErrorNotApplicable(
            "the method draws fresh normals (churn) that are not increments of a Brownian path, so no exact "
            "solution shares its noise: the strong error is not applicable (weak errors are)"
        )
    order = sorted(range(len(solution.pieces)), key=lambda j: solution.pieces[j].start)
    # a joint piece overlaps the pieces it is conditioned on, but is independent of them by construction
    tiles = [j for j in order if not solution.pieces[j].given]
    for earlier, later in zip(tiles[:-1], tiles[1:]):
        if solution.pieces[later].start < solution.pieces[earlier].end:
            raise StrongErrorNotApplicable(
                "the method draws independent normals on overlapping lambda-intervals, which no single "
                "Brownian path produces: the strong error is not applicable"
            )
    return order


def noise_weight_error(solution: AffineSolution, lam_grid, variances, quadrature=Quadrature(), eta=1.0):
    """int (w_num - w_exact)^2 du over [lambda_0, lambda_T] per eigen-direction."""
    order = path_pieces(solution)
    pieces = [solution.pieces[j] for j in order]
    breakpoints = np.unique(
        np.concatenate(
            [np.asarray(lam_grid, dtype=np.float64), [p.start for p in pieces], [p.end for p in pieces]]
        )
    )
    if breakpoints[0] < lam_grid[0] or breakpoints[-1] > lam_grid[-1]:
        raise RuntimeError("the method drew noise outside the integration range")
    nodes, weights = quadrature.points(breakpoints)
    vs_end = math.exp(-float(lam_grid[-1]))
    difference = -exact_noise_weight(nodes, vs_end, variances, eta)
    starts = np.array([p.start for p in pieces])
    # a node lies in tile j when start_j <= node < end_j (nodes never sit on a breakpoint); a joint piece
    # covers its whole interval
    tiles = np.array([position for position, piece in enumerate(pieces) if not piece.given], dtype=int)
    index = tiles[np.searchsorted(starts[tiles], nodes, side="right") - 1] if len(tiles) else None
    for position, piece in enumerate(pieces):
        if piece.given:
            inside = (nodes >= piece.start) & (nodes < piece.end)
        else:
            inside = (index == position) & (nodes < piece.end)
        if inside.any() and piece.clock > 0:
            coefficient = solution.coefficients[order[position]]
            difference[inside] += (
                unit_kernel(solution.pieces, order[position], nodes[inside])[:, None] * coefficient
            )
    return weights @ difference**2


def unit_kernel(pieces, index: int, nodes: np.ndarray) -> np.ndarray:
    """The kernel e(u) of piece `index` at nodes inside its interval: its normal is int e dB."""
    piece = pieces[index]
    kernel = piece.functional.kernel(torch.from_numpy(nodes)).numpy()
    for given, beta in piece.given:
        tile = pieces[given]
        inside = (nodes >= tile.start) & (nodes < tile.end)
        kernel = kernel - beta * np.where(inside, unit_kernel(pieces, given, nodes), 0.0)
    return kernel / math.sqrt(piece.clock)


# ------------------------------------------------------------------------------------------------ errors


@dataclass(frozen=True)
class LinearErrors:
    """Exact errors of one method on one grid for data N(mean, covariance); arrays are per eigen-direction
    of the covariance (the columns of `directions`).

    strong_mse is E|x_num - x_exact|^2 summed over directions, None when not applicable (then
    strong_not_applicable says why). weak_var_error is the Frobenius norm of Cov(x_num) - (S + vs_T^2 I)
    (|Var(x_num) - (s^2 + vs_T^2)| in one dimension); mean_error the norm of E x_num - mu; kl is
    KL(law of x_num || N(mu, S + vs_T^2 I)); w2 the 2-Wasserstein distance between them."""

    method: str
    prediction: str
    nfe: int
    directions: np.ndarray
    output_mean: np.ndarray
    output_variance: np.ndarray
    target_variance: np.ndarray
    strong_mse: float | None
    strong_not_applicable: str | None
    weak_var_error: float
    mean_error: float
    kl: float
    w2: float

    @property
    def strong_rmse(self) -> float | None:
        return None if self.strong_mse is None else math.sqrt(self.strong_mse)


def linear_errors(
    method,
    sigmas,
    data_mean=0.0,
    data_covariance=0.25,
    prediction="data",
    quadrature=Quadrature(),
    reference_eta=1.0,
    **options,
) -> LinearErrors:
    """Exact strong and weak errors of `method` on data N(data_mean, data_covariance) (a scalar variance or a
    d x d covariance; the mean a scalar or a d-vector), run from x~ ~ N(mean, S + sigmas[0]^2 I) at sigmas[0]
    to sigmas[-1] > 0 with no final denoising. Options as for `seeds.solvers.sample` (variant, eta, ...)."""
    covariance = np.atleast_2d(np.asarray(data_covariance, dtype=np.float64))
    variances, directions = np.linalg.eigh(covariance)
    if variances.min() < -1e-12 * max(abs(variances.max()), 1e-300):
        raise ValueError("the data covariance must be positive semi-definite")
    variances = np.clip(variances, 0.0, None)
    mean = np.broadcast_to(np.asarray(data_mean, dtype=np.float64), (len(variances),))
    means = directions.T @ mean
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    solution = affine_solution(method, sigmas, means, variances, prediction=prediction, **options)
    vs_start, vs_end = float(sigmas[0]), float(sigmas[-1])
    start_variance = variances + vs_start**2

    output_mean = solution.gain * means + solution.offset
    output_variance = solution.gain**2 * start_variance + (solution.coefficients**2).sum(0)
    target_variance = variances + vs_end**2
    mean_shift = output_mean - means
    variance_gap = output_variance - target_variance
    relative_gap = variance_gap / target_variance
    kl = 0.5 * float(np.sum(relative_gap - np.log1p(relative_gap) + mean_shift**2 / target_variance))
    spread_gap = variance_gap / (np.sqrt(output_variance) + np.sqrt(target_variance))
    w2 = math.sqrt(float(np.sum(mean_shift**2 + spread_gap**2)))

    strong_mse, not_applicable = None, None
    try:
        # the driver's own lambdas (math.log), so piece ends and grid points coincide to the bit
        lam_grid = np.array([-math.log(level) for level in sigmas.tolist()])
        noise_error = noise_weight_error(solution, lam_grid, variances, quadrature, reference_eta)
    except StrongErrorNotApplicable as refusal:
        not_applicable = str(refusal)
    else:
        gain_error = solution.gain - transition_factor(vs_end, vs_start, variances, reference_eta)
        strong_mse = float(np.sum(gain_error**2 * start_variance + mean_shift**2 + noise_error))

    solver_options = {**options, "prediction": prediction} if method in CHOOSE_PREDICTION else options
    return LinearErrors(
        method=method,
        prediction=make_method(method, **solver_options).prediction,
        nfe=solution.nfe,
        directions=directions,
        output_mean=output_mean,
        output_variance=output_variance,
        target_variance=target_variance,
        strong_mse=strong_mse,
        strong_not_applicable=not_applicable,
        weak_var_error=float(np.sqrt(np.sum(variance_gap**2))),
        mean_error=float(np.sqrt(np.sum(mean_shift**2))),
        kl=kl,
        w2=w2,
    )


def scalar_convergence_table(
    method, steps, data_std=0.5, sigma_max=80.0, sigma_min=0.002, grid="lambda", prediction="data", **options
) -> dict:
    """The `seeds exact-linear` result: exact errors of `method` on N(0, data_std^2) for each step count."""
    rows = [
        linear_errors(
            method, noise_levels(grid, count, sigma_min, sigma_max), 0.0, data_std**2, prediction, **options
        )
        for count in steps
    ]
    return {
        "method": method,
        "prediction": rows[0].prediction,
        "variant": options.get("variant"),
        "grid": grid,
        "data_std": data_std,
        "sigma_max": sigma_max,
        "sigma_min": sigma_min,
        "steps": list(steps),
        "nfe": [row.nfe for row in rows],
        "strong_rmse": [row.strong_rmse for row in rows],
        "weak_var_error": [row.weak_var_error for row in rows],
        "output_variance": [float(row.output_variance[0]) for row in rows],
        "kl": [row.kl for row in rows],
        "w2": [row.w2 for row in rows],
        "strong_not_applicable": rows[0].strong_not_applicable,
    }
