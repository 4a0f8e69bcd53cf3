"""Monte Carlo strong and weak convergence experiments on nested grids (issue 4, section 3).

A cell is one (problem, method, options, grid) with nested levels of 2^k steps. All levels and the reference
are driven by one BrownianPath (per-path seeds), in float64. Errors per path are kept so that slopes get a
bootstrap confidence interval over paths.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from seeds.experiments.problems import PROBLEMS
from seeds.solvers import EDM, GRIDS, make_method, sample
from seeds.solvers.brownian_path import BrownianPath
from seeds.solvers.noise import EDMFunctional


@dataclass(frozen=True)
class Cell:
    problem: str
    method: str
    options: tuple = ()  # sorted (name, value) pairs passed to the method
    grid: str = "lambda"
    levels: tuple = (4, 8, 16, 32, 64, 128, 256)
    paths: int = 500
    seed: int = 0
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    problem_options: tuple = ()
    reference: tuple = ("exact",)  # ("exact",) for Gaussian data, or (method, options, steps)
    # a second, independent reference (method, options, steps): its RMS distance to the first must be far
    # below the finest level's error, or the fitted slopes measure the reference, not the method
    check_reference: tuple | None = None
    fit_levels: int = 4  # the finest levels that enter the slope fit

    def key(self) -> str:
        return cell_key(self)

    @property
    def label(self) -> str:
        return method_label(self.method, self.options)


def cell_key(cell) -> str:
    """A stable name for a cell's result file: a hash of all its fields."""
    text = json.dumps(asdict(cell), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def method_label(method: str, options: tuple) -> str:
    """The method id as the order table writes it: method plus its prediction and variant options."""
    return method + "".join(f"/{value}" for name, value in options if name in ("prediction", "variant"))


def build_problem(cell: Cell):
    return PROBLEMS[cell.problem](**dict(cell.problem_options))


def _grid(cell: Cell, steps: int) -> torch.Tensor:
    schedule = EDM(t_min=cell.sigma_min, t_max=cell.sigma_max)
    return schedule.vs(GRIDS[cell.grid](schedule, steps))


def _solve_with_checkpoints(model, x, sigmas, method, options, path, coarse_steps):
    """Terminal state and the states at the coarse grid's points (index j of the coarse grid), which every
    nested finer grid contains."""
    stride = (len(sigmas) - 1) // coarse_steps
    kept = {}

    def keep(info):
        if (info["i"] + 1) % stride == 0:
            kept[(info["i"] + 1) // stride] = info["x"].clone()

    result = sample(model, x, sigmas, method=method, path=path, callback=keep, **dict(options))
    return result.samples, kept, result.nfe


def exact_gaussian_states(problem, x0, path, sigma_max, coarse_levels):
    """Exact solution on the path for Gaussian data N(0, s^2) at the coarse grid's points (index j >= 1):
    x(t) = Phi(t,0) x0 + (vs_t^2 + s^2) dQ_s[0, t].

    Phi(t, u) = (vs_t^2 + s^2)/(vs_u^2 + s^2), and Phi(t, u) sqrt(2) vs(u) = (vs_t^2 + s^2) k_Q(u) with Q's
    sigma_data set to s (analysis.exact, EDM parameterisation)."""
    variance = float(problem.covariances[0, 0, 0])
    functional = EDMFunctional(sigma_data=math.sqrt(variance))
    lam_0 = -math.log(sigma_max)
    states = {}
    for index, level in enumerate(coarse_levels[1:], start=1):
        factor = level**2 + variance
        states[index] = factor / (sigma_max**2 + variance) * x0 + factor * path.increment(
            functional, lam_0, -math.log(level)
        )
    return states


def _reference_solution(cell: Cell, spec: tuple, coarse_steps: int):
    """A fine reference solve; cells that share problem, seed, paths and range share the path and the start,
    so their references are identical and are computed once per process."""
    shared = replace(
        cell, method="", options=(), levels=(), fit_levels=0, reference=("",), check_reference=None
    )
    return _cached_reference(shared, spec, coarse_steps)


@functools.lru_cache(maxsize=8)
def _cached_reference(shared: Cell, spec: tuple, coarse_steps: int):
    problem = build_problem(shared)
    x0 = problem.sample_marginal(shared.paths, shared.sigma_max, torch.Generator().manual_seed(shared.seed))
    path = BrownianPath(x0, shared.sigma_min, shared.sigma_max, seed=shared.seed)
    method, options, steps = spec
    final, kept, _ = _solve_with_checkpoints(
        problem, x0, _grid(shared, steps), method, options, path, coarse_steps
    )
    return final, kept


def run_cell(cell: Cell, progress=None) -> dict:
    problem = build_problem(cell)
    generator = torch.Generator().manual_seed(cell.seed)
    x0 = problem.sample_marginal(cell.paths, cell.sigma_max, generator)
    path = BrownianPath(x0, cell.sigma_min, cell.sigma_max, seed=cell.seed)
    coarse_steps = min(cell.levels)
    coarsest = _grid(cell, coarse_steps).tolist()
    solutions = {}
    nfe = {}
    for steps in cell.levels:
        final, kept, evaluations = _solve_with_checkpoints(
            problem, x0, _grid(cell, steps), cell.method, cell.options, path, coarse_steps
        )
        solutions[steps] = (final, kept)
        nfe[steps] = evaluations
        if progress is not None:
            progress()
    if cell.reference[0] == "exact":
        reference = exact_gaussian_states(problem, x0, path, cell.sigma_max, coarsest)
    else:
        reference = _reference_solution(cell, cell.reference, coarse_steps)[1]
    reference_final = reference[coarse_steps]
    reference_gap = None
    if cell.check_reference is not None:
        second = _reference_solution(cell, cell.check_reference, coarse_steps)[0]
        reference_gap = float(torch.sqrt(((second - reference_final) ** 2).flatten(1).sum(1).mean()))
    squared = []
    sup_squared = []
    for steps in cell.levels:
        final, kept = solutions[steps]
        squared.append(((final - reference_final) ** 2).flatten(1).sum(1).numpy())
        sup = torch.stack(
            [((kept[j] - reference[j]) ** 2).flatten(1).sum(1) for j in range(1, coarse_steps + 1)]
        )
        sup_squared.append(sup.max(0).values.numpy())
    squared, sup_squared = np.stack(squared), np.stack(sup_squared)
    step_sizes = [(-math.log(cell.sigma_min) + math.log(cell.sigma_max)) / n for n in cell.levels]
    fit = slice(len(cell.levels) - cell.fit_levels, len(cell.levels))
    strong = np.sqrt(squared.mean(1))
    slope, low, high = bootstrap_slope(np.array(step_sizes), squared, fit, seed=cell.seed)
    sup_slope, sup_low, sup_high = bootstrap_slope(np.array(step_sizes), sup_squared, fit, seed=cell.seed + 1)
    final_states = {steps: solutions[steps][0] for steps in cell.levels}
    return {
        "cell": asdict(cell),
        "label": cell.label,
        "key": cell.key(),
        "steps": list(cell.levels),
        "nfe": [nfe[s] for s in cell.levels],
        "step_size_lambda": step_sizes,
        "strong_rms": strong.tolist(),
        "strong_rms_ci": _rms_ci(squared).tolist(),
        "sup_rms": np.sqrt(sup_squared.mean(1)).tolist(),
        "fit_steps": list(cell.levels[fit]),
        "strong_slope": [slope, low, high],
        "sup_slope": [sup_slope, sup_low, sup_high],
        "reference_gap_rms": reference_gap,
        "weak": weak_errors(problem, final_states, cell.sigma_min),
        "predicted": _predicted(cell),
    }


def _predicted(cell: Cell):
    from seeds.analysis import predicted_orders

    solver = make_method(cell.method, **dict(cell.options))
    return predicted_orders().get(solver.id)


def _rms_ci(squared: np.ndarray, level: float = 0.95, resamples: int = 400, seed: int = 0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    paths = squared.shape[1]
    draws = np.stack(
        [np.sqrt(squared[:, generator.integers(0, paths, paths)].mean(1)) for _ in range(resamples)]
    )
    return np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0).T


def bootstrap_slope(step_sizes, squared, fit, resamples: int = 1000, level: float = 0.95, seed: int = 0):
    """Least-squares slope of log RMS error against log step size over the `fit` levels, and a percentile
    bootstrap CI obtained by resampling paths (the same resample at every level: the levels share paths)."""
    x = np.log(step_sizes[fit])

    def slope_of(sq):
        y = 0.5 * np.log(sq[fit].mean(1))
        return float(np.polyfit(x, y, 1)[0])

    generator = np.random.default_rng(seed)
    paths = squared.shape[1]
    draws = [slope_of(squared[:, generator.integers(0, paths, paths)]) for _ in range(resamples)]
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return slope_of(squared), float(low), float(high)


def weak_errors(problem, final_states, sigma_min) -> dict:
    """|E f(X_N) - E f(X)| for f = mean and second moment (exact target moments at sigma_min), with the
    Monte Carlo standard error of each estimate."""
    mean = problem.marginal_mean()
    second = problem.marginal_covariance(sigma_min) + np.outer(mean, mean)
    out = {"steps": [], "mean_error": [], "mean_se": [], "second_moment_error": [], "second_moment_se": []}
    for steps, states in final_states.items():
        flat = states.flatten(1).numpy()
        n = flat.shape[0]
        out["steps"].append(steps)
        out["mean_error"].append(float(np.abs(flat.mean(0) - mean).max()))
        out["mean_se"].append(float((flat.std(0) / math.sqrt(n)).max()))
        products = np.einsum("bi,bi->b", flat, flat)
        out["second_moment_error"].append(float(abs(products.mean() - np.trace(second))))
        out["second_moment_se"].append(float(products.std() / math.sqrt(n)))
    return out


@dataclass
class Summary:
    """What the order table reports for one cell."""

    label: str
    problem: str
    grid: str
    fit_steps: list
    measured: list
    predicted: float | None
    agrees: bool = field(init=False)

    def __post_init__(self):
        slope, low, high = self.measured
        self.agrees = self.predicted is not None and low - 0.25 <= self.predicted <= high + 0.25
