"""Sample quality on a Gaussian mixture, against the exact law at sigma_min (data convolved with
N(0, sigma_min^2)):

- the Frechet distance between the samples' mean/covariance and the exact ones;
- the error in mode weights: total variation between the fraction of samples whose most probable component
  is k and the weights w_k;
- the exact-sample floor: both measures on exact draws of the same size, what a perfect sampler scores.
"""

from __future__ import annotations

import numpy as np
import torch

from seeds.experiments.metrics.frechet import frechet_distance
from seeds.experiments.problems import make_problem
from seeds.experiments.problems.mixtures import GaussianMixture


def mode_weight_error(problem: GaussianMixture, samples: torch.Tensor, sigma: float) -> float:
    components = problem.most_probable_component(samples, torch.tensor(sigma, dtype=torch.float64))
    assigned = torch.bincount(components, minlength=len(problem.weights)).double() / samples.shape[0]
    return float(0.5 * np.abs(assigned.numpy() - problem.weights).sum())


def mixture_quality(problem: GaussianMixture, samples: torch.Tensor, sigma_min: float) -> dict:
    flat = samples.flatten(1).double().numpy()
    frechet = frechet_distance(
        flat.mean(0),
        np.atleast_2d(np.cov(flat, rowvar=False)),
        problem.marginal_mean(),
        problem.marginal_covariance(sigma_min),
    )
    return {"frechet": frechet, "mode_weight_error": mode_weight_error(problem, samples, sigma_min)}


def exact_sample_floor(
    problem_name: str, samples: int, sigma_min: float, seed: int = 0, problem_options=()
) -> dict:
    """Quality of exact draws of the same size: what a perfect sampler scores with this many samples."""
    problem = make_problem(problem_name, problem_options)
    draws = problem.sample_marginal(samples, sigma_min, torch.Generator().manual_seed(seed + 10_000))
    return mixture_quality(problem, draws, sigma_min)
