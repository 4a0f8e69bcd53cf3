"""Coupled samples for the headline comparison (docs/learned-models.md#the-headline-claim): every method at
every step count starts from the same draws and is driven by the same Brownian path, chunk by chunk, so that
its samples can be compared one by one with a reference solution of the same SDE.

A cell is (problem, method, steps); its samples are stored beside its result file as a .npy array
(CellStore.load_or_run_with_array; float32: the comparisons resolve differences far above its rounding).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from seeds.experiments.results import cell_key
from seeds.experiments.verification.convergence import method_label
from seeds.solvers import BrownianPath, noise_levels, sample


@dataclass(frozen=True)
class CoupledCell:
    problem: str  # "learned" (problem_options name the checkpoint) or a make_problem name
    problem_options: tuple
    method: str
    options: tuple
    steps: int
    samples: int
    chunk: int  # the unit of seeds and of sharding: results do not depend on the number of ranks
    seed: int = 0
    grid: str = "edm"
    sigma_min: float = 0.002
    sigma_max: float = 80.0

    @property
    def label(self) -> str:
        """method_label, with " (churn)" for EDM's sampler with churn (as the exact-weak table writes it)."""
        churn = dict(self.options).get("s_churn", 0) > 0
        return method_label(self.method, self.options) + (" (churn)" if churn else "")

    def key(self) -> str:
        return cell_key(self)


def chunk_seeds(samples: int, chunk: int, seed: int) -> list[tuple[int, int]]:
    """(seed, size) of every chunk: chunk k draws its start and noise from seeds derived from (seed, k)."""
    if samples % chunk:
        raise ValueError(f"samples ({samples}) must be a multiple of the chunk size ({chunk})")
    return [(seed * 1_000_003 + k, chunk) for k in range(samples // chunk)]


def sample_chunk(problem, cell: CoupledCell, chunk_seed: int, size: int, device) -> tuple[torch.Tensor, int]:
    """(samples on the CPU, NFE) of one chunk: the start is the problem's marginal at sigma_max and all noise
    comes from one Brownian path, both keyed by the chunk's seed. Every method at every step count sees the
    same start and path: the path-driven SDE methods converge to the same samples as the steps grow (EDM
    churn, whose fresh noise is no functional of the path, shares the start only)."""
    start = problem.sample_marginal(size, cell.sigma_max, torch.Generator().manual_seed(chunk_seed)).to(
        device
    )
    path = BrownianPath(start, cell.sigma_min, cell.sigma_max, seed=chunk_seed)
    sigmas = noise_levels(cell.grid, cell.steps, cell.sigma_min, cell.sigma_max)
    result = sample(problem, start, sigmas, method=cell.method, path=path, **dict(cell.options))
    return result.samples.cpu(), result.nfe


def run_coupled_cell(cell: CoupledCell, problem, device, map_chunks) -> tuple[dict, np.ndarray]:
    """(result, samples as float32) of a cell; map_chunks(function, chunk specs) computes the chunks (a list
    comprehension, or one that shares them across processes and gives every process all results)."""
    parts = map_chunks(
        lambda spec: sample_chunk(problem, cell, *spec, device),
        chunk_seeds(cell.samples, cell.chunk, cell.seed),
    )
    samples = torch.cat([p[0] for p in parts]).flatten(1)
    finite = torch.isfinite(samples).all(dim=1)
    result = {
        "cell": asdict(cell),
        "label": cell.label,
        "key": cell.key(),
        "nfe": parts[0][1],
        "samples": int(samples.shape[0]),
        "non_finite_samples": int((~finite).sum()),
        "largest_magnitude": float(samples[finite].abs().max()) if finite.any() else None,
    }
    return result, samples.to(torch.float32).numpy()
