"""Sample quality against NFE on a Gaussian mixture with exact target moments (the paper-style figure of the
main job, docs/results.md); the measures are those of experiments/metrics/mixture.py.

NFE is counted by the driver; the number of steps is NFE / (evaluations per step).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from seeds.experiments.metrics.mixture import mixture_quality
from seeds.experiments.problems import make_problem
from seeds.experiments.results import cell_key
from seeds.experiments.verification.convergence import method_label
from seeds.solvers import IndependentPieces, make_method, noise_levels, sample


@dataclass(frozen=True)
class MixtureQualityCell:
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


def run_mixture_quality_cell(cell: MixtureQualityCell) -> dict:
    problem = make_problem(cell.problem, cell.problem_options)
    solver = make_method(cell.method, **dict(cell.options))
    steps = max(1, cell.nfe // solver.nfe_per_step)
    generator = torch.Generator().manual_seed(cell.seed)
    x0 = problem.sample_marginal(cell.samples, cell.sigma_max, generator)
    # Quality needs the exact law of each method's noise, not one path shared across methods and levels:
    # independent pieces from a seeded generator give that at the cost of torch.randn (the tree path's
    # exact joint law costs ~100x more per query at 64-d x 1000 samples).
    noise = IndependentPieces(x0, generator=torch.Generator().manual_seed(cell.seed + 1))
    sigmas = noise_levels(cell.grid, steps, cell.sigma_min, cell.sigma_max)
    result = sample(problem, x0, sigmas, method=cell.method, path=noise, **dict(cell.options))
    return {
        "cell": asdict(cell),
        "label": cell.label,
        "key": cell.key(),
        "steps": steps,
        "nfe": result.nfe,
        **mixture_quality(problem, result.samples, cell.sigma_min),
    }
