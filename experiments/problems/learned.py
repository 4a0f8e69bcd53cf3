"""A trained score model as a problem of the convergence experiments (docs/learned-models.md)."""

from __future__ import annotations

import torch

from seeds.experiments.models.loaders import (
    checkpoint_digest,
    image_shape,
    load_model,
    network_module,
    resolve_checkpoint,
)
from seeds.solvers.models import as_adapter, convert, per_sample


class LearnedModel:
    """A trained model as a problem for the convergence experiments: D(x, sigma) in `dtype` (float64 by
    default, so that rounding does not floor strong errors), no exact solution, and the sampler's prior
    sigma N(0, I) at the largest noise level (the data's spread is negligible against sigma_max)."""

    def __init__(self, checkpoint: str, digest: str | None = None, dtype: str = "float64", device="cpu"):
        if digest is not None and digest != checkpoint_digest(checkpoint):
            raise ValueError(f"{checkpoint} has changed since its results were keyed (digest {digest})")
        loaded = load_model(resolve_checkpoint(checkpoint), device=device)
        network_module(loaded).to(getattr(torch, dtype))
        self.adapter = as_adapter(loaded)
        self.image_shape = image_shape(loaded)
        self.name = f"learned:{checkpoint}"

    def __call__(self, x, sigma, **extra_args):
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device)
        sigma = (sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma.reshape(-1)).to(x.dtype)
        kind, value = self.adapter(x, sigma, **extra_args)
        return convert(kind, value, x, per_sample(sigma, x), "data")

    def sample_marginal(self, count: int, sigma: float, generator: torch.Generator | None = None):
        generator = generator or torch.Generator().manual_seed(0)
        return sigma * torch.randn((count, *self.image_shape), generator=generator, dtype=torch.float64)
