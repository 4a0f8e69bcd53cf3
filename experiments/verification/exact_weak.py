"""Exact weak errors on nonlinear 1-d problems: the law of the numerical chain by quadrature, no Monte Carlo
(docs/exact-weak.md).

In one dimension the law of a one-step method's output can be carried from step to step exactly, up to
quadrature and interpolation errors that the refinement checks bound. Within one step from x a method draws
its noise as pieces, independent normals z_1, z_2, ... (increments of its Brownian functional over
sub-intervals of the step, or churn's fresh normals). The pieces drawn before the step's last model
evaluation ("stage pieces", at most two) enter nonlinearly; those drawn after it ("final pieces") enter
linearly, so

    X_{k+1} = G(x, z_stage) + c . z_final,     given X_k = x and the stage pieces: N(G, |c|^2).

`G` and `c` come from the real solver's `step` run on a batch (`QuadratureNoise`): element (i, q) starts
at node x_i and sees the tensor Gauss-Hermite node q as its stage pieces and zero final pieces; a reference
element and one element per final piece with that piece 1 give c. The law of X_k is held as weights mu_i on a uniform grid x_i (M nodes on a window that
follows the law), meaning E f(X_k) = sum_i mu_i f(x_i) for smooth f. One step deposits the weighted points
(G_iq, mu_i w_q) on the next grid with local Lagrange interpolation weights of degree `degree` (the
transpose of interpolating a function there), then spreads every node's weight over Gauss-Hermite points
x_l + |c| xi_r. Read backwards this is the exact backward Kolmogorov recursion
u_k(x) = E[u_{k+1}(X_{k+1}) | X_k = x] with u_{k+1} interpolated, so E g(X_N) is accurate to the
interpolation error of the smooth functions u_k and the Gauss-Hermite error, whatever the step's noise:
large noise at 4 steps, none for an ODE method.

A multistep method carries the previous model output, so its chain is Markov in (x_k, x_{k-1}), not in x_k:
it is left out (`MultistepNotSupported`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from seeds.experiments.problems.lines import LINE_PROBLEMS, lagrange_stencils
from seeds.experiments.results import cell_key
from seeds.experiments.verification.exact_linear import NoisePiece, PieceNoise
from seeds.solvers import CHOOSE_PREDICTION, make_method, noise_levels
from seeds.solvers.models import ModelEvaluator


class MultistepNotSupported(ValueError):
    """The method carries the previous model output between steps: its chain is not Markov in x alone."""


@dataclass(frozen=True)
class Resolution:
    """How finely the law is held. A chain that draws noise: grid nodes, interpolation degree, Gauss-Hermite
    nodes per stage piece and for the final Gaussian, and the relative weight below which a point counts as
    outside the law. A deterministic chain: the initial panels of the start law, Gauss-Legendre nodes per
    panel, and the tolerance of the adaptive panel splitting (`transport`)."""

    nodes: int = 801
    degree: int = 5
    stage_nodes: int = 6
    final_nodes: int = 20
    negligible: float = 1e-18
    panels: int = 64
    panel_nodes: int = 16
    tolerance: float = 1e-14

    def refined(self) -> Resolution:
        """Grid spacing halved, more quadrature nodes, more panels and a smaller splitting tolerance: the
        check that the result is resolved."""
        return Resolution(
            2 * self.nodes - 1,
            self.degree,
            self.stage_nodes + 4,
            self.final_nodes + 8,
            self.negligible,
            2 * self.panels,
            self.panel_nodes + 8,
            self.tolerance / 10,
        )


# ------------------------------------------------------------------------------------- the step's noise


class QuadratureNoise(PieceNoise):
    """A noise source that sets a method's noise pieces (module docstring).

    With `values` None it records every piece drawn (in `pieces`) and, through `model_called`, which pieces
    a model evaluation followed (`stage_pieces`); every piece is then 0. Otherwise piece p's standard normal
    is values[p], a (batch, 1) tensor.

    independent_stages: every query for an increment of the functional is answered by a new, independent
    normal with that increment's full variance, instead of the path's increments from the step's start.
    This is the planted mistake of the tests (stage noise independent of the final noise).
    """

    def __init__(self, batch: int, values: dict | None = None, independent_stages: bool = False):
        super().__init__(batch)
        self.values = values
        self.independent_stages = independent_stages
        self.stage_pieces: set[int] = set()

    def model_called(self):
        self.stage_pieces.update(range(len(self.pieces)))

    def _normal(self, piece):
        if self.values is None:
            return torch.zeros(self.batch, 1, dtype=torch.float64)
        return self.values[len(self.pieces)]

    def increment(self, functional, lam_a, lam_b):
        if not self.independent_stages:
            return super().increment(functional, lam_a, lam_b)
        clock = functional.clock_increment(lam_a, lam_b)
        return math.sqrt(clock) * self._draw(NoisePiece(functional, lam_a, lam_b, clock))


def _hermite(count: int):
    """Gauss-Hermite nodes and weights for a standard normal."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(count)
    return nodes, weights / weights.sum()


@dataclass
class StepMap:
    """One step of a method as X_{k+1} = G(x, z_stage) + c . z_final, on the nodes x of a grid."""

    method: object
    denoiser: object
    sigma_data: float
    independent_stages: bool = False
    state: object = None
    evaluations: int = 0

    def __call__(self, x_nodes: np.ndarray, lam_s: float, lam_t: float, stage_nodes: int):
        """(G of shape (nodes, Q), Q quadrature weights, the std |c| of the final Gaussian)."""
        recorder = QuadratureNoise(1, independent_stages=self.independent_stages)
        self.dry_run(lam_s, lam_t, recorder)
        stage_directions, final_directions = self._directions(recorder, lam_s, lam_t)
        if len(stage_directions) > 2:
            raise ValueError(
                f"{self.method.id} draws {len(stage_directions)} stage noises per step; at most 2 are supported"
            )
        nodes, weights = _hermite(stage_nodes)
        grids = np.meshgrid(*([nodes] * len(stage_directions)), indexing="ij")
        stage_values = [g.ravel() for g in grids]
        stage_weights = np.ones(1)
        for _ in stage_directions:
            stage_weights = np.multiply.outer(stage_weights, weights).ravel()
        count, points = len(x_nodes), len(stage_weights)
        # the main batch (node i, stage point q), then a reference element and one unit element per final
        # direction
        batch = count * points + 1 + len(final_directions)
        start = np.zeros(batch)
        start[: count * points] = np.repeat(x_nodes, points)
        values = {}
        for direction, column in zip(stage_directions, stage_values):
            for p, loading in direction.items():
                value = values.setdefault(p, np.zeros(batch))
                value[: count * points] += loading * np.tile(column, count)
        for j, direction in enumerate(final_directions):
            for p, loading in direction.items():
                values.setdefault(p, np.zeros(batch))[count * points + 1 + j] = loading
        values = {p: torch.from_numpy(value)[:, None] for p, value in values.items()}
        noise = QuadratureNoise(batch, values, self.independent_stages)
        out = self._run(torch.from_numpy(start)[:, None], lam_s, lam_t, noise, count=True)[:, 0].numpy()
        if noise.pieces != recorder.pieces:
            raise RuntimeError(f"{self.method.id} drew different noise pieces for different batches")
        reference = out[count * points]
        spread = math.sqrt(
            sum((out[count * points + 1 + j] - reference) ** 2 for j in range(len(final_directions)))
        )
        return out[: count * points].reshape(count, points), stage_weights, spread

    def _directions(self, recorder: QuadratureNoise, lam_s, lam_t) -> tuple[list[dict], list[dict]]:
        """The stage and final directions in the step's piece normals, each {piece: loading}: X_{k+1} is a
        function of the stage directions' normals plus a linear function of the final ones.

        Usually each piece is its own direction, a stage one if a model evaluation followed it. When a piece
        was drawn jointly with an earlier one (ESRA's time-integral noise), stage pieces may enter the model
        only through a combination: a probe step with one unit normal per piece gives the model inputs' linear
        map of the piece normals, whose row space (orthonormal, by SVD) holds the stage directions and whose
        complement enters the output linearly, as final directions."""
        pieces = range(len(recorder.pieces))
        if not any(piece.given for piece in recorder.pieces):
            stage = sorted(recorder.stage_pieces)
            return [{p: 1.0} for p in stage], [{p: 1.0} for p in pieces if p not in recorder.stage_pieces]
        count = len(recorder.pieces)
        values = {p: torch.from_numpy(np.eye(count + 1)[:, 1 + p].copy())[:, None] for p in pieces}
        inputs = []
        self._run(
            torch.zeros(count + 1, 1, dtype=torch.float64),
            lam_s,
            lam_t,
            QuadratureNoise(count + 1, values),
            count=False,
            inputs=inputs,
        )
        loadings = np.stack([(u[1:, 0] - u[0, 0]).numpy() for u in inputs])
        _, singular, rows = np.linalg.svd(loadings)
        rank = int((singular > 1e-12 * max(singular.max(), 1e-300)).sum())
        return (
            [dict(zip(pieces, row)) for row in rows[:rank]],
            [dict(zip(pieces, row)) for row in rows[rank:]],
        )

    def deterministic(self, x_nodes: np.ndarray, lam_s: float, lam_t: float) -> np.ndarray:
        """One step on the nodes x of a chain that draws no noise (`draws_noise`): no dry run, no quadrature."""
        noise = QuadratureNoise(len(x_nodes))
        out = self._run(torch.from_numpy(x_nodes)[:, None], lam_s, lam_t, noise, count=True)
        if noise.pieces:
            raise RuntimeError(f"{self.method.id} drew noise in a step taken as deterministic")
        return out[:, 0].numpy()

    def dry_run(self, lam_s, lam_t, recorder: QuadratureNoise):
        """One step of a single element with every piece 0, uncounted: `recorder` learns the pieces."""
        self._run(torch.zeros(1, 1, dtype=torch.float64), lam_s, lam_t, recorder, count=False)

    def _run(self, x, lam_s, lam_t, noise, count, inputs=None):
        evaluator = ModelEvaluator(self.denoiser, self.method.prediction, self.sigma_data)

        def model(u, lam):
            noise.model_called()
            if inputs is not None:
                inputs.append(u.detach().clone())
            return evaluator(u, math.exp(-lam))

        x_next, _, state = self.method.step(x, lam_s, lam_t, model, noise, self.state)
        if count:
            self.state = state
            self.evaluations += evaluator.evaluations
        return x_next


# ------------------------------------------------------------------------------------------ the law


@dataclass
class GridLaw:
    """E f(X) = sum_i weights[i] f(nodes[i]) for smooth f; nodes uniform from `low` with spacing `spacing`."""

    low: float
    spacing: float
    weights: np.ndarray

    @property
    def nodes(self) -> np.ndarray:
        return self.low + self.spacing * np.arange(len(self.weights))

    def expect(self, function) -> float:
        return float(self.weights @ function(self.nodes))


@dataclass
class PointLaw:
    """E f(X) = sum_i weights[i] f(nodes[i]): a deterministic chain's law as the images of quadrature nodes
    of its start law."""

    nodes: np.ndarray
    weights: np.ndarray

    def expect(self, function) -> float:
        return float(self.weights @ function(self.nodes))


def deposit(points, weights, low, spacing, nodes, degree):
    """Grid weights nu_j = sum_p weights[p] l_j(points[p]) for the local Lagrange basis l_j of `degree` on the
    grid; points outside the grid are dropped (the window is chosen so that their weight is negligible)."""
    position = (points - low) / spacing
    inside = (position >= 0) & (position <= nodes - 1)
    position, weights = position[inside], weights[inside]
    first, bases = lagrange_stencils(position, nodes, degree)
    total = np.zeros(nodes)
    for k, basis in enumerate(bases):
        total += np.bincount(first + k, weights=weights * basis, minlength=nodes)
    return total


def _window(points, weights, spread, resolution):
    keep = np.abs(weights) > resolution.negligible * np.abs(weights).sum()
    low, high = points[keep].min(), points[keep].max()
    margin = 10.0 * spread
    width = high - low + 2 * margin
    # a few nodes beyond the extreme points keep their interpolation stencils centred
    pad = width * (resolution.degree + 1) / resolution.nodes
    low, high = low - margin - pad, high + margin + pad
    return low, (high - low) / (resolution.nodes - 1)


def start_window(problem, sigma_max) -> tuple[float, float]:
    """Where the exact marginal at sigma_max is held: its mean +- 12 std."""
    mean, std = problem.mean(), math.sqrt(problem.variance() + sigma_max**2)
    return mean - 12 * std, mean + 12 * std


def start_law(problem, sigma_max, resolution: Resolution) -> GridLaw:
    """The exact marginal at sigma_max on a grid: weights p(x_i) dx (the trapezoid rule, spectrally
    accurate for a smooth density on a grid this fine)."""
    low, high = start_window(problem, sigma_max)
    spacing = (high - low) / (resolution.nodes - 1)
    nodes = low + spacing * np.arange(resolution.nodes)
    return GridLaw(low, spacing, np.exp(problem.log_density(nodes, sigma_max)) * spacing)


def _check_levels(method, sigmas) -> list[float]:
    if getattr(method, "multistep", False):
        raise MultistepNotSupported(
            f"{method.id} carries the previous model output between steps, so its chain is Markov in "
            "(x_k, x_(k-1)), not in x_k: its law is not propagated on a 1-d grid"
        )
    levels = [float(s) for s in sigmas]
    if any(b >= a for a, b in zip(levels[:-1], levels[1:])) or levels[-1] <= 0:
        raise ValueError("sigmas must decrease strictly and end at a positive level")
    return levels


def draws_noise(method, problem, sigmas) -> bool:
    """Whether any step of `method` over `sigmas` draws a noise piece (EDM churn draws only inside its
    sigma range, a SEEDS method with eta = 0 never)."""
    step = StepMap(method, problem.denoiser, problem.sigma_data)
    step.state = method.init(torch.zeros(1, 1, dtype=torch.float64), torch.tensor(sigmas))
    for sigma_s, sigma_t in zip(sigmas[:-1], sigmas[1:]):
        recorder = QuadratureNoise(1)
        step.dry_run(-math.log(sigma_s), -math.log(sigma_t), recorder)
        if recorder.pieces:
            return True
    return False


def propagate(method, problem, sigmas, resolution: Resolution | None = None, independent_stages=False):
    """The law of `method`'s output on `problem`, run from the exact marginal at sigmas[0] to sigmas[-1], and
    the model evaluations of one sample: on a grid (`GridLaw`) if the chain draws noise, else as transported
    quadrature nodes (`PointLaw`, `transport`). The resolution defaults to the problem's grid nodes."""
    levels = _check_levels(method, sigmas)
    resolution = resolution or Resolution(nodes=problem.grid_nodes)
    if not draws_noise(method, problem, levels):
        return transport(method, problem, levels, resolution)
    law = start_law(problem, levels[0], resolution)
    step = StepMap(method, problem.denoiser, problem.sigma_data, independent_stages)
    step.state = method.init(torch.zeros(1, 1, dtype=torch.float64), torch.tensor(levels))
    final_nodes, final_weights = _hermite(resolution.final_nodes)
    for sigma_s, sigma_t in zip(levels[:-1], levels[1:]):
        live = np.abs(law.weights) > resolution.negligible * np.abs(law.weights).sum()
        sources, masses = law.nodes[live], law.weights[live]
        mapped, stage_weights, spread = step(
            sources, -math.log(sigma_s), -math.log(sigma_t), resolution.stage_nodes
        )
        point_weights = np.multiply.outer(masses, stage_weights)
        low, spacing = _window(mapped.ravel(), point_weights.ravel(), spread, resolution)
        weights = deposit(
            mapped.ravel(), point_weights.ravel(), low, spacing, resolution.nodes, resolution.degree
        )
        if spread > 0:
            grid = low + spacing * np.arange(resolution.nodes)
            weights = deposit(
                np.add.outer(grid, spread * final_nodes).ravel(),
                np.multiply.outer(weights, final_weights).ravel(),
                low,
                spacing,
                resolution.nodes,
                resolution.degree,
            )
        law = GridLaw(low, spacing, weights)
    return law, step.evaluations


# Each round of `transport` splits a panel that is not yet resolved into this many.
SPLIT = 8
ROUNDS = 40  # a bound on the rounds; a panel at the float64 resolution of its position counts as resolved
MAX_PANELS = 20_000  # a bound on the panels one round splits (a resolved chain splits at most ~1000)


def transport(method, problem, levels, resolution: Resolution):
    """A deterministic chain's law: E g(X_N) = int p_0(x) g(Phi(x)) dx for the chain's map Phi, by composite
    Gauss-Legendre in the start variable x over the start window, adaptively.

    A held grid cannot carry such a chain where two modes separate: there Phi is so steep (Phi' = p_0 / p_N,
    with p_N ~ 1e-14 between the separated modes) that the backward functions u_k change over far less than
    a grid spacing. Transported nodes see Phi only through its values. A panel is split into SPLIT panels,
    round after round, until its children's estimates of every test function agree with its own to
    `tolerance` and, unless its mass is below `tolerance`, its children's images span at most the smoothing
    width (over which a panel's Gauss-Legendre nodes integrate the smoothing kernel far below the
    tolerance), so the smoothed density is resolved too; at a near-jump of Phi the splitting stops once the
    panel's mass times the jump is below `tolerance`."""
    reference, reference_weights = np.polynomial.legendre.leggauss(resolution.panel_nodes)
    nfe = []

    def images(edges):
        """Nodes, images and weights p_0(x) dx of every panel [edges[:, 0], edges[:, 1]]: (panels, nodes)."""
        half = 0.5 * (edges[:, 1] - edges[:, 0])[:, None]
        nodes = 0.5 * (edges[:, 0] + edges[:, 1])[:, None] + half * reference
        weights = half * reference_weights * np.exp(problem.log_density(nodes, levels[0]))
        step = StepMap(method, problem.denoiser, problem.sigma_data)
        step.state = method.init(torch.zeros(1, 1, dtype=torch.float64), torch.tensor(levels))
        x = nodes.ravel()
        for sigma_s, sigma_t in zip(levels[:-1], levels[1:]):
            x = step.deterministic(x, -math.log(sigma_s), -math.log(sigma_t))
        nfe.append(step.evaluations)
        return x.reshape(nodes.shape), weights

    def estimates(mapped, weights):
        return np.stack([(weights * g(mapped)).sum(-1) for g in TEST_FUNCTIONS.values()], -1)

    edges = np.linspace(*start_window(problem, levels[0]), resolution.panels + 1)
    edges = np.stack([edges[:-1], edges[1:]], -1)
    mapped, weights = images(edges)
    accepted_images, accepted_weights = [], []
    for _ in range(ROUNDS):
        fractions = np.linspace(0.0, 1.0, SPLIT + 1)
        low, width = edges[:, :1], edges[:, 1:] - edges[:, :1]
        children = np.stack([low + width * fractions[:-1], low + width * fractions[1:]], -1).reshape(-1, 2)
        child_images, child_weights = images(children)
        split_images = child_images.reshape(len(edges), -1)
        split_weights = child_weights.reshape(len(edges), -1)
        difference = np.abs(estimates(mapped, weights) - estimates(split_images, split_weights)).max(-1)
        span = (child_images.max(-1) - child_images.min(-1)).reshape(len(edges), SPLIT).max(-1)
        mass = np.abs(split_weights).sum(-1)
        at_float_resolution = width[:, 0] <= 64 * np.finfo(float).eps * np.abs(edges).max(-1)
        resolved = (difference <= resolution.tolerance) & (
            (span <= SMOOTHING) | (mass <= resolution.tolerance)
        )
        done = resolved | at_float_resolution
        accepted_images.append(split_images[done].ravel())
        accepted_weights.append(split_weights[done].ravel())
        unresolved = np.repeat(~done, SPLIT)
        if not unresolved.any():
            break
        if unresolved.sum() > MAX_PANELS:
            raise RuntimeError(
                f"{method.id}: the transported law is not resolved: {unresolved.sum()} panels still split"
            )
        edges, mapped, weights = children[unresolved], child_images[unresolved], child_weights[unresolved]
    else:
        raise RuntimeError(f"{method.id}: the transported law is not resolved after {ROUNDS} rounds")
    return PointLaw(np.concatenate(accepted_images), np.concatenate(accepted_weights)), nfe[0]


# ----------------------------------------------------------------------------------------- weak errors

# The test functions g of the weak errors |E g(X_N) - E g(X(sigma_min))|: moments and two smooth bounded ones.
TEST_FUNCTIONS = {
    "x": lambda x: x,
    "x^2": np.square,
    "x^3": lambda x: x**3,
    "tanh": np.tanh,
    "cos": np.cos,
}


def exact_marginal(problem, sigma_min):
    """Nodes, weights and density values of the exact marginal p(x, sigma_min) = data * N(0, sigma_min^2) by
    composite Gauss-Legendre (16 nodes on panels of width std / 50 over mean +- 50 std)."""
    mean, std = problem.mean(), math.sqrt(problem.variance() + sigma_min**2)
    panels = 5000
    edges = np.linspace(mean - 50 * std, mean + 50 * std, panels + 1)
    reference_nodes, reference_weights = np.polynomial.legendre.leggauss(16)
    half = 0.5 * np.diff(edges)[:, None]
    nodes = (0.5 * (edges[:-1] + edges[1:])[:, None] + half * reference_nodes).ravel()
    weights = (half * reference_weights).ravel()
    return nodes, weights * np.exp(problem.log_density(nodes, sigma_min))


def exact_expectations(problem, sigma_min) -> dict[str, float]:
    nodes, weights = exact_marginal(problem, sigma_min)
    return {name: float(weights @ g(nodes)) for name, g in TEST_FUNCTIONS.items()}


# The densities are compared after both laws are smoothed by N(0, SMOOTHING^2) (a tenth of the data's std):
# the smoothed numerical density sum_i mu_i phi(y - x_i) is an expectation of a smooth function, as accurate
# as the weak errors, and the smoothed exact law is the exact marginal at sqrt(sigma_min^2 + SMOOTHING^2).
# Unsmoothed, a transported chain has no density, only its nodes' images, and a grid's weights carry
# grid-scale ripples that no test function of this smoothness sees.
SMOOTHING = 0.05


def smoothed_l1(law, problem, sigma_min: float, points: int = 4001) -> float:
    """int |p_num * phi_h - p_exact * phi_h| on the law's window widened by 8 h (trapezoid rule)."""
    low, high = law.nodes.min() - 8 * SMOOTHING, law.nodes.max() + 8 * SMOOTHING
    y = np.linspace(low, high, points)
    numerical = np.concatenate(
        [
            np.exp(-0.5 * ((chunk[:, None] - law.nodes[None, :]) / SMOOTHING) ** 2)
            / (SMOOTHING * math.sqrt(2 * math.pi))
            @ law.weights
            for chunk in np.array_split(y, max(1, len(y) * len(law.nodes) // 4_000_000))
        ]
    )
    exact = np.exp(problem.log_density(y, math.hypot(sigma_min, SMOOTHING)))
    return float(np.abs(numerical - exact).sum() * (y[1] - y[0]))


@dataclass(frozen=True)
class WeakErrors:
    """Signed errors E g(X_N) - E g(X(sigma_min)) per test function, and the L1 distance of the two densities
    smoothed by N(0, SMOOTHING^2)."""

    errors: dict
    l1: float
    nfe: int


def weak_errors(method, problem, sigmas, resolution=None, independent_stages=False, exact=None):
    """The exact weak errors of the method object `method` on `problem` over the noise levels `sigmas`."""
    sigma_min = float(sigmas[-1])
    exact = exact or exact_expectations(problem, sigma_min)
    law, nfe = propagate(method, problem, sigmas, resolution, independent_stages)
    errors = {name: law.expect(g) - exact[name] for name, g in TEST_FUNCTIONS.items()}
    return WeakErrors(errors, smoothed_l1(law, problem, sigma_min), nfe)


# ------------------------------------------------------------------------------------------ the table

# Step counts whose smoothed L1 distance is below this are not used to fit an order: several times the
# largest change that refining the resolution makes to a distance (the logistic law's grid, whose spacing is
# the coarsest against the smoothing width; docs/exact-weak.md, "Accuracy").
L1_FLOOR = 2e-8
FIT_POINTS = 3  # the fit uses the largest step counts that are resolved, this many


def fitted_order(steps, values, floor=0.0, points=FIT_POINTS):
    """The least-squares slope of -log(value) against log(steps) over the `points` largest step counts whose
    value is at least `floor`; None when fewer than two qualify."""
    usable = [(n, v) for n, v in zip(steps, values) if v is not None and abs(v) >= floor and abs(v) > 0]
    usable = usable[-points:]
    if len(usable) < 2:
        return None
    x = np.log([n for n, _ in usable])
    y = np.log([abs(v) for _, v in usable])
    return float(-np.polyfit(x, y, 1)[0])


def exact_weak_table(
    method,
    problem,
    steps,
    grid="lambda",
    sigma_min=0.002,
    sigma_max=80.0,
    resolution=None,
    independent_stages=False,
    **options,
) -> dict:
    """The `seeds exact-weak` result: exact weak errors of `method` (a METHODS name, options as for
    `seeds.solvers.sample`) on the 1-d `problem` (a name of LINE_PROBLEMS or a problem object) for each step
    count, and the weak order fitted to the smoothed L1 distance and to every test function. The resolution
    defaults to the problem's grid nodes."""
    line = LINE_PROBLEMS[problem] if isinstance(problem, str) else problem
    exact = exact_expectations(line, sigma_min)
    solver_options = dict(options)
    if method in CHOOSE_PREDICTION:
        solver_options.setdefault("prediction", "data")
    rows = []
    for count in steps:
        solver = make_method(method, **solver_options)
        rows.append(
            weak_errors(
                solver,
                line,
                noise_levels(grid, count, sigma_min, sigma_max),
                resolution,
                independent_stages,
                exact,
            )
        )
    errors = {name: [row.errors[name] for row in rows] for name in TEST_FUNCTIONS}
    l1 = [row.l1 for row in rows]
    return {
        "method": method,
        "id": solver.id,
        "problem": line.name,
        "grid": grid,
        "sigma_max": sigma_max,
        "sigma_min": sigma_min,
        "options": {k: v for k, v in solver_options.items()},
        "independent_stages": independent_stages,
        "steps": list(steps),
        "nfe": [row.nfe for row in rows],
        "l1": l1,
        "errors": errors,
        "order": fitted_order(steps, l1, L1_FLOOR),
        "orders": {name: fitted_order(steps, values) for name, values in errors.items()},
        "predicted": solver.orders,
    }


@dataclass(frozen=True)
class ExactWeakCell:
    """One exact-weak table: a method (name and sorted (option, value) pairs) on a 1-d problem and grid.
    refined: at the refined resolution instead of the default one (the accuracy check)."""

    problem: str
    method: str
    options: tuple = ()
    grid: str = "lambda"
    steps: tuple = (4, 8, 16, 32, 64, 128, 256, 512, 1024)
    independent_stages: bool = False
    refined: bool = False
    sigma_min: float = 0.002
    sigma_max: float = 80.0

    def key(self) -> str:
        return cell_key(self)


def run_exact_weak_cell(cell: ExactWeakCell) -> dict:
    def table(resolution):
        return exact_weak_table(
            cell.method,
            cell.problem,
            cell.steps,
            cell.grid,
            cell.sigma_min,
            cell.sigma_max,
            resolution,
            cell.independent_stages,
            **dict(cell.options),
        )

    resolution = Resolution(nodes=LINE_PROBLEMS[cell.problem].grid_nodes)
    result = table(resolution.refined() if cell.refined else resolution)
    return {**result, "label": _label(cell), "cell": cell.__dict__}


def _label(cell: ExactWeakCell) -> str:
    label = cell.method + "".join(
        f"/{value}" for name, value in cell.options if name in ("prediction", "variant")
    )
    if dict(cell.options).get("s_churn", 0) > 0:
        label += " (churn)"
    return label + (" (independent stage noises)" if cell.independent_stages else "")
