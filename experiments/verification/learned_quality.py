"""Sample quality of a learned model against NFE (docs/learned-models.md): each cell samples in chunks, all
noise of a chunk from one Brownian path keyed by the chunk's seed, and measures the Frechet distance of the
samples' features to the data's with a bootstrap CI over samples."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from seeds.experiments.metrics.frechet import frechet_bootstrap
from seeds.experiments.results import cell_key
from seeds.experiments.verification.convergence import method_label
from seeds.solvers import BrownianPath, make_method, noise_levels, sample

STORED_IMAGES = 36  # the first samples of every cell, kept for the sample grids


@dataclass(frozen=True)
class LearnedQualityCell:
    method: str
    options: tuple
    nfe: int
    checkpoint: str  # absolute, or relative to the project root
    digest: str  # models.loaders.checkpoint_digest(checkpoint)
    samples: int = 512
    chunk: int = 256  # the unit of seeds and of sharding: results do not depend on the number of ranks
    seed: int = 0
    metric: str = "classifier"
    grid: str = "edm"
    sigma_min: float = 0.002
    sigma_max: float = 80.0

    @property
    def label(self) -> str:
        return method_label(self.method, self.options)

    def key(self) -> str:
        return cell_key(self)


def chunk_seeds(samples: int, chunk: int, seed: int) -> list[tuple[int, int]]:
    """(seed, size) of every chunk: chunk k draws its start and noise from seeds derived from (seed, k)."""
    if samples % chunk:
        raise ValueError(f"samples ({samples}) must be a multiple of the chunk size ({chunk})")
    return [(seed * 1_000_003 + k, chunk) for k in range(samples // chunk)]


def sample_chunk(model, image_shape, cell: LearnedQualityCell, chunk_seed: int, size: int, device):
    """(samples on the CPU, NFE) of one chunk: x ~ sigma_max N(0, I) (EDM's prior) and all noise from one
    Brownian path, both keyed by the chunk's seed. Every method at every NFE sees the same start and the same
    path, so the quality curves differ by discretisation, not by Monte Carlo draws: the path-driven SDE
    methods converge to the same samples as NFE grows (EDM churn, whose fresh noise solves another SDE, to
    other samples of the same law)."""
    solver = make_method(cell.method, **dict(cell.options))
    steps = max(1, cell.nfe // solver.nfe_per_step)
    start = torch.Generator().manual_seed(chunk_seed)
    x = (cell.sigma_max * torch.randn((size, *image_shape), generator=start)).to(device)
    path = BrownianPath(x.double(), cell.sigma_min, cell.sigma_max, seed=chunk_seed)
    sigmas = noise_levels(cell.grid, steps, cell.sigma_min, cell.sigma_max)
    result = sample(model, x, sigmas, method=cell.method, path=path, **dict(cell.options))
    return result.samples.cpu(), result.nfe


def run_learned_quality_cell(
    cell: LearnedQualityCell, model, image_shape, features, reference, device, map_chunks
) -> dict:
    """The cell's samples and Frechet distance; map_chunks(function, chunk specs) computes the chunks (a list
    comprehension, or one that shares them across processes and gives every process all results)."""

    def one_chunk(spec):
        samples, nfe = sample_chunk(model, image_shape, cell, *spec, device)
        return samples, features(samples), nfe

    parts = map_chunks(one_chunk, chunk_seeds(cell.samples, cell.chunk, cell.seed))
    samples = torch.cat([p[0] for p in parts])
    sample_features = np.concatenate([p[1] for p in parts])
    interval = frechet_bootstrap(sample_features, reference, resamples=200, seed=cell.seed)
    return {
        "cell": asdict(cell),
        "label": cell.label,
        "key": cell.key(),
        "nfe": parts[0][2],
        "frechet": interval["fid"],
        "frechet_ci": [interval["low"], interval["high"]],
        "samples": int(samples.shape[0]),
        "images": samples[:STORED_IMAGES].flatten(1).numpy().round(4).tolist(),
    }
