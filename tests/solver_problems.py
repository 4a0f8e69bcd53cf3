"""Small exact denoisers shared by the solver tests."""

import torch

from seeds.solvers.models import per_sample


def gaussian_denoiser(variance):
    """Exact D(x, sigma) for data N(0, variance): variance / (variance + sigma^2) * x."""

    def denoiser(x, sigma):
        level = per_sample(sigma, x).to(x.dtype)
        return variance / (variance + level**2) * x

    return denoiser


def point_mass_denoiser(location):
    """Data concentrated at `location`: the exact denoiser is that constant."""

    def denoiser(x, sigma):
        return torch.full_like(x, location)

    return denoiser


def mixture_denoiser(means=(-1.0, 0.5, 1.5), variance=0.05, weights=(0.3, 0.3, 0.4)):
    """Exact D for a 1-d Gaussian mixture applied elementwise: posterior-weighted affine maps (log space)."""
    means_t = torch.tensor(means, dtype=torch.float64)
    log_weights = torch.log(torch.tensor(weights, dtype=torch.float64))

    def denoiser(x, sigma):
        level = per_sample(sigma, x).to(torch.float64)[..., None]
        total = variance + level**2
        z = x.to(torch.float64)[..., None]
        means, log_prior = means_t.to(x.device), log_weights.to(x.device)
        log_post = log_prior - 0.5 * (z - means) ** 2 / total - 0.5 * torch.log(total)
        post = torch.softmax(log_post, dim=-1)
        component = means + variance / total * (z - means)
        return (post * component).sum(-1).to(x.dtype)

    return denoiser
