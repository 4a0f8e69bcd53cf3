"""Monte Carlo strong and weak convergence experiments on nested grids (docs/results.md).

A cell is one (problem, method, options, grid) with nested levels of 2^k steps. All levels and the references
are driven by one Brownian path, in float64: a PartitionPath on every time they ask for (exact on that
partition, and far cheaper than BrownianPath's descents at stage points). Errors per path are kept so that
slopes get a bootstrap confidence interval over paths.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from seeds.experiments.problems import make_problem
from seeds.experiments.results import cell_key
from seeds.solvers import (
    EDMFunctional,
    PartitionPath,
    make_method,
    noise_levels,
    predicted_orders,
    query_times,
    sample,
)


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
    # ("exact",) for Gaussian data, (method, options, steps), or None for weak differences only
    reference: tuple | None = ("exact",)
    # a second, independent reference (method, options, steps): its RMS distance to the first must be far
    # below the finest level's error, or the fitted slopes measure the reference, not the method
    check_reference: tuple | None = None
    fit_levels: int = 4  # the finest levels that enter the slope fit
    # (method, options) pairs, this cell's among them, whose times at these levels the path also carries:
    # cells with the same family, problem, levels, seed and references share one path, so their reference
    # solves are computed once per process
    path_family: tuple = ()

    def key(self) -> str:
        return cell_key(self)

    @property
    def label(self) -> str:
        return method_label(self.method, self.options)


def method_label(method: str, options: tuple) -> str:
    """The method id as the order table writes it: method plus its prediction and variant options."""
    return method + "".join(f"/{value}" for name, value in options if name in ("prediction", "variant"))


def _levels(cell, steps: int) -> torch.Tensor:
    """The cell's noise levels for `steps` steps on its grid."""
    return noise_levels(cell.grid, steps, cell.sigma_min, cell.sigma_max)


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


def _members(cell: Cell) -> tuple:
    if not cell.path_family:
        return ((cell.method, cell.options),)
    if (cell.method, cell.options) not in cell.path_family:
        raise ValueError(f"{cell.label} is not in its cell's path_family {cell.path_family!r}")
    return cell.path_family


def _shared(cell: Cell) -> Cell:
    """The fields that decide the path and the start: equal for cells that share them."""
    return replace(cell, method="", options=(), fit_levels=0, path_family=_members(cell))


def _start_and_path(shared: Cell):
    problem = make_problem(shared.problem, shared.problem_options)
    x0 = problem.sample_marginal(shared.paths, shared.sigma_max, torch.Generator().manual_seed(shared.seed))
    return problem, x0, PartitionPath(x0, _partition(shared), seed=shared.seed)


@functools.lru_cache(maxsize=8)
def _partition(shared: Cell) -> np.ndarray:
    """Every lambda the family's levels and the references ask the path for."""
    solves = [(method, options, steps) for method, options in shared.path_family for steps in shared.levels]
    for spec in (shared.reference, shared.check_reference):
        if spec is not None and spec[0] != "exact":
            solves.append(spec)
    return np.unique(
        np.concatenate(
            [
                query_times(method, _levels(shared, steps), **dict(options))
                for method, options, steps in solves
            ]
        )
    )


@functools.lru_cache(maxsize=8)
def _reference_solution(shared: Cell, spec: tuple):
    """A reference solve (method, options, steps) on the shared path: (final state, coarse-grid states)."""
    problem, x0, path = _start_and_path(shared)
    method, options, steps = spec
    final, kept, _ = _solve_with_checkpoints(
        problem, x0, _levels(shared, steps), method, options, path, min(shared.levels)
    )
    return final, kept


def run_cell(cell: Cell, progress=None) -> dict:
    """Solve every level on one Brownian path; strong errors against the cell's reference (none when the
    reference is None) and coupled weak differences between the levels."""
    problem, x0, path = _start_and_path(_shared(cell))
    coarse_steps = min(cell.levels)
    solutions = {}
    nfe = {}
    for steps in cell.levels:
        final, kept, evaluations = _solve_with_checkpoints(
            problem, x0, _levels(cell, steps), cell.method, cell.options, path, coarse_steps
        )
        solutions[steps] = (final, kept)
        nfe[steps] = evaluations
        if progress is not None:
            progress()
    step_sizes = [(-math.log(cell.sigma_min) + math.log(cell.sigma_max)) / n for n in cell.levels]
    fit = slice(len(cell.levels) - cell.fit_levels, len(cell.levels))
    final_states = {steps: solutions[steps][0] for steps in cell.levels}
    strong = (
        {} if cell.reference is None else _strong_errors(cell, problem, x0, path, solutions, step_sizes, fit)
    )
    return {
        "cell": asdict(cell),
        "label": cell.label,
        "key": cell.key(),
        "steps": list(cell.levels),
        "nfe": [nfe[s] for s in cell.levels],
        "step_size_lambda": step_sizes,
        "fit_steps": list(cell.levels[fit]),
        **strong,
        # a learned model has no exact moments to compare with; its weak behaviour is in the differences
        "weak": weak_errors(problem, final_states, cell.sigma_min)
        if hasattr(problem, "marginal_mean")
        else None,
        "weak_differences": coupled_weak_differences(
            cell.levels, np.array(step_sizes), second_moments(final_states), fit, seed=cell.seed + 2
        ),
        "predicted": _predicted(cell),
    }


def _strong_errors(cell, problem, x0, path, solutions, step_sizes, fit) -> dict:
    """Terminal and sup-over-coarse-grid RMS errors against the reference, with bootstrap slopes."""
    coarse_steps = min(cell.levels)
    if cell.reference[0] == "exact":
        coarsest = _levels(cell, coarse_steps).tolist()
        reference = exact_gaussian_states(problem, x0, path, cell.sigma_max, coarsest)
    else:
        reference = _reference_solution(_shared(cell), cell.reference)[1]
    reference_final = reference[coarse_steps]
    reference_gap = None
    if cell.check_reference is not None:
        second = _reference_solution(_shared(cell), cell.check_reference)[0]
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
    step_sizes = np.array(step_sizes)
    return {
        "strong_rms": np.sqrt(squared.mean(1)).tolist(),
        "strong_rms_ci": _rms_ci(squared).tolist(),
        "sup_rms": np.sqrt(sup_squared.mean(1)).tolist(),
        "strong_slope": list(bootstrap_slope(step_sizes, squared, fit, seed=cell.seed)),
        "sup_slope": list(bootstrap_slope(step_sizes, sup_squared, fit, seed=cell.seed + 1)),
        "reference_gap_rms": reference_gap,
    }


def _predicted(cell: Cell):
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


def second_moments(final_states: dict) -> np.ndarray:
    """f(X) = |X|^2 per path (level, path): the weak test function of the coupled differences."""
    return np.stack([states.flatten(1).pow(2).sum(1).numpy() for states in final_states.values()])


def coupled_weak_differences(
    steps, step_sizes, values, fit, resamples: int = 1000, level: float = 0.95, seed=0
):
    """Weak order without a reference: D_k = E f(X_k) - E f(X_k+1) between consecutive levels (same paths).

    With weak error e(h) = C h^p + o(h^p) and h_k+1 = h_k / 2, D_k = C (1 - 2^-p) h_k^p + o(h_k^p), so the
    slope of log |D_k| against log h_k is p. The paths are coupled (one Brownian path drives every level), so
    the Monte Carlo error of D_k scales with the strong error between the levels, not with the spread of f.
    The differences between consecutive `fit` levels enter the fit (no slope from fewer than two); the CI
    resamples paths. Each D_k comes with its standard error: a difference within a few standard errors of 0
    does not resolve the slope.
    """
    levels = np.arange(values.shape[0])[fit]
    pairs = levels[:-1]
    differences = values[pairs] - values[pairs + 1]
    x = np.log(step_sizes[pairs])
    summary = {
        "test_function": "|x|^2",
        "steps_pairs": [[steps[k], steps[k + 1]] for k in pairs],
        "difference": differences.mean(1).tolist(),
        "difference_se": (differences.std(1) / math.sqrt(values.shape[1])).tolist(),
        "slope": None,
    }
    if len(pairs) < 2:
        return summary

    def slope_of(d):
        return float(np.polyfit(x, np.log(np.abs(d.mean(1))), 1)[0])

    generator = np.random.default_rng(seed)
    paths = values.shape[1]
    draws = [slope_of(differences[:, generator.integers(0, paths, paths)]) for _ in range(resamples)]
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return {**summary, "slope": [slope_of(differences), float(low), float(high)]}


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
