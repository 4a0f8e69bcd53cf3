"""EDM's preconditioned denoiser, its training loss and the weight EMA (Karras et al. 2022, section 5 and
table 1), around any raw network F(x_in, c_noise) such as `experiments.models.unet.UNet`.

    D(x, sigma) = c_skip x + c_out F(c_in x, c_noise),
    c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2), c_in = 1 / sqrt(sigma^2 + sd^2),
    c_noise = log(sigma) / 4.

The loss draws log sigma ~ N(P_mean, P_std^2) and weights |D(y + sigma n, sigma) - y|^2 by
(sigma^2 + sd^2) / (sigma sd)^2, which makes the network's effective target unit-variance at every sigma.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EDMDenoiser(nn.Module):
    """D(x, sigma) with the k-diffusion signature: x (batch, ...), sigma a number or a (batch,) tensor."""

    def __init__(self, network: nn.Module, sigma_data: float = 0.5):
        super().__init__()
        self.network = network
        self.sigma_data = float(sigma_data)

    def forward(self, x, sigma):
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        sigma = sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma
        if sigma.shape[0] != x.shape[0]:
            raise ValueError(f"sigma has {sigma.shape[0]} entries for a batch of {x.shape[0]}")
        sd = self.sigma_data
        view = sigma.reshape(-1, *([1] * (x.ndim - 1)))
        c_skip = sd**2 / (view**2 + sd**2)
        c_out = view * sd / (view**2 + sd**2).sqrt()
        c_in = 1 / (view**2 + sd**2).sqrt()
        dtype = next(self.network.parameters()).dtype
        raw = self.network((c_in * x).to(dtype), (sigma.log() / 4).to(dtype)).to(x.dtype)
        return c_skip * x + c_out * raw


def edm_loss(denoiser: EDMDenoiser, images, generator: torch.Generator, p_mean=-1.2, p_std=1.2):
    """The EDM training loss on a batch, with sigma and noise drawn from `generator`."""
    batch = images.shape[0]
    log_sigma = p_mean + p_std * torch.randn(batch, generator=generator, device=images.device)
    sigma = log_sigma.exp()
    noise = torch.randn(images.shape, generator=generator, device=images.device)
    view = sigma.reshape(-1, *([1] * (images.ndim - 1)))
    weight = (view**2 + denoiser.sigma_data**2) / (view * denoiser.sigma_data) ** 2
    denoised = denoiser(images + view * noise, sigma)
    return (weight * (denoised - images) ** 2).mean()


class EMA:
    """Exponential moving average of a module's parameters with a half-life in training images."""

    def __init__(self, module: nn.Module, half_life_images: float, batch_size: int):
        self.average = copy.deepcopy(module).eval().requires_grad_(False)
        self.decay = 0.5 ** (batch_size / max(half_life_images, 1e-8))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for kept, current in zip(self.average.parameters(), module.parameters()):
            kept.lerp_(current.detach(), 1 - self.decay)
        for kept, current in zip(self.average.buffers(), module.buffers()):
            kept.copy_(current)
