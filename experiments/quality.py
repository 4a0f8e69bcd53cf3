"""Sample quality against NFE on a Gaussian mixture with exact target moments (the paper-style figure).

Quality is measured against the exact law at sigma_min (data convolved with N(0, sigma_min^2)):
- the Frechet distance between the samples' mean/covariance and the exact ones;
- the error in mode weights: total variation between the fraction of samples whose most probable component
  is k and the weights w_k (the latter evaluated on exact samples gives the Monte Carlo floor).
NFE is counted by the driver; the number of steps is NFE / (evaluations per step).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.linalg
import torch

from seeds.experiments.convergence import _grid, build_problem, cell_key, method_label
from seeds.experiments.problems import GaussianMixture
from seeds.solvers import make_method, sample
from seeds.solvers.noise import IndependentPieces


def frechet_distance(mean_a, covariance_a, mean_b, covariance_b) -> float:
    root = scipy.linalg.sqrtm(covariance_a @ covariance_b)
    trace = np.trace(covariance_a + covariance_b - 2 * np.real(root))
    return float(np.sum((mean_a - mean_b) ** 2) + max(trace, 0.0))


def mode_weight_error(problem: GaussianMixture, samples: torch.Tensor, sigma: float) -> float:
    log_posterior, _ = problem._posterior(samples, torch.tensor(sigma, dtype=torch.float64))
    assigned = (
        torch.bincount(log_posterior.argmax(1), minlength=len(problem.weights)).double() / samples.shape[0]
    )
    return float(0.5 * (assigned.numpy() - problem.weights).__abs__().sum())


def quality(problem: GaussianMixture, samples: torch.Tensor, sigma_min: float) -> dict:
    flat = samples.flatten(1).double().numpy()
    frechet = frechet_distance(
        flat.mean(0),
        np.atleast_2d(np.cov(flat, rowvar=False)),
        problem.marginal_mean(),
        problem.marginal_covariance(sigma_min),
    )
    return {"frechet": frechet, "mode_weight_error": mode_weight_error(problem, samples, sigma_min)}


@dataclass(frozen=True)
class QualityCell:
    problem: str
    method: str
    options: tuple
    nfe: int
    samples: int = 1000
    seed: int = 0
    grid: str = "edm"
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    problem_options: tuple = ()

    @property
    def label(self) -> str:
        return method_label(self.method, self.options)

    def key(self) -> str:
        return cell_key(self)


def run_quality_cell(cell: QualityCell) -> dict:
    problem = build_problem(cell)
    solver = make_method(cell.method, **dict(cell.options))
    steps = max(1, cell.nfe // solver.nfe_per_step)
    generator = torch.Generator().manual_seed(cell.seed)
    x0 = problem.sample_marginal(cell.samples, cell.sigma_max, generator)
    # Quality needs the exact law of each method's noise, not one path shared across methods and levels:
    # independent pieces from a seeded generator give that at the cost of torch.randn (the tree path's
    # exact joint law costs ~100x more per query at 64-d x 1000 samples).
    noise = IndependentPieces(x0, generator=torch.Generator().manual_seed(cell.seed + 1))
    result = sample(problem, x0, _grid(cell, steps), method=cell.method, path=noise, **dict(cell.options))
    return {
        "cell": asdict(cell),
        "label": cell.label,
        "key": cell.key(),
        "steps": steps,
        "nfe": result.nfe,
        **quality(problem, result.samples, cell.sigma_min),
    }


def exact_sample_floor(
    problem_name: str, samples: int, sigma_min: float, seed: int = 0, problem_options=()
) -> dict:
    """Quality of exact draws of the same size: what a perfect sampler scores with this many samples."""
    from seeds.experiments.problems import PROBLEMS

    problem = PROBLEMS[problem_name](**dict(problem_options))
    draws = problem.sample_marginal(samples, sigma_min, torch.Generator().manual_seed(seed + 10_000))
    return quality(problem, draws, sigma_min)
