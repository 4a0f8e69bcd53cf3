"""Test problems with exact denoisers: Gaussian data and Gaussian mixtures (docs/mathematics.md).

All denoisers are k-diffusion style, D(x, sigma) in VE coordinates (x = x~, sigma = vs), and evaluate in
float64. A problem runs in any framework: a VP schedule only rescales x (x_vp = alpha x~), which the model
adapters and schedules of seeds.solvers handle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


def _levels(sigma, x):
    sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device)
    if sigma.ndim == 0:
        sigma = sigma.expand(x.shape[0])
    return sigma.reshape(-1, 1)


@dataclass
class GaussianMixture:
    """Data sum_k w_k N(mean_k, cov_k) in dimension d (Gaussian data is the one-component case).

    Covariances are stored by eigendecomposition so every marginal N(mean_k, cov_k + sigma^2 I) is
    evaluated stably: log-densities and posterior weights in log space.
    """

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    covariances: np.ndarray  # (K, d, d)
    name: str = "mixture"

    def __post_init__(self):
        self.weights = np.asarray(self.weights, dtype=np.float64)
        self.means = np.atleast_2d(np.asarray(self.means, dtype=np.float64))
        self.covariances = np.asarray(self.covariances, dtype=np.float64).reshape(
            self.means.shape[0], self.means.shape[1], self.means.shape[1]
        )
        if not np.isclose(self.weights.sum(), 1.0) or (self.weights <= 0).any():
            raise ValueError(f"mixture weights must be positive and sum to 1, got {self.weights}")
        eigenvalues, eigenvectors = np.linalg.eigh(self.covariances)
        if (eigenvalues < -1e-12 * np.abs(eigenvalues).max()).any():
            raise ValueError("mixture covariances must be positive semi-definite")
        self._eigenvalues = torch.from_numpy(np.clip(eigenvalues, 0.0, None))
        self._eigenvectors = torch.from_numpy(eigenvectors)
        self._means = torch.from_numpy(self.means)
        self._log_weights = torch.from_numpy(np.log(self.weights))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _posterior(self, x, sigma):
        """Per component: log N(x; mean_k, cov_k + sigma^2) + log w_k, and the component denoiser."""
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        device = flat.device
        values = self._eigenvalues.to(device)[None]  # (1, K, d)
        vectors = self._eigenvectors.to(device)
        variance = values + _levels(sigma, flat)[:, :, None] ** 2  # (B, K, d)
        centred = flat[:, None, :] - self._means.to(device)[None]  # (B, K, d)
        rotated = torch.einsum("bkd,kde->bke", centred, vectors)  # coordinates in each eigenbasis
        log_density = -0.5 * (
            (rotated**2 / variance).sum(-1) + torch.log(variance).sum(-1) + self.dim * math.log(2 * math.pi)
        )
        shrunk = rotated * (values / variance)
        component = self._means.to(device)[None] + torch.einsum("bke,kde->bkd", shrunk, vectors)
        return log_density + self._log_weights.to(device), component

    def denoiser(self, x, sigma):
        log_posterior, component = self._posterior(x, sigma)
        weights = torch.softmax(log_posterior, dim=1)
        return (weights[:, :, None] * component).sum(1).reshape(x.shape).to(x.dtype)

    __call__ = denoiser

    def most_probable_component(self, x, sigma):
        """Per sample, the component k of largest posterior weight given x at noise level sigma."""
        return self._posterior(x, sigma)[0].argmax(1)

    def log_density(self, x, sigma):
        """log p_sigma(x) of the marginal at noise level sigma (VE coordinates)."""
        return torch.logsumexp(self._posterior(x, sigma)[0], dim=1)

    def marginal_mean(self) -> np.ndarray:
        return self.weights @ self.means

    def marginal_covariance(self, sigma: float = 0.0) -> np.ndarray:
        mean = self.marginal_mean()
        second = np.einsum(
            "k,kij->ij", self.weights, self.covariances + np.einsum("ki,kj->kij", self.means, self.means)
        )
        return second - np.outer(mean, mean) + sigma**2 * np.eye(self.dim)

    def sample_data(self, count: int, generator: torch.Generator | None = None):
        """Exact draws from the data distribution (float64, shape (count, d))."""
        generator = generator or torch.Generator().manual_seed(0)
        components = torch.multinomial(
            torch.from_numpy(self.weights), count, replacement=True, generator=generator
        )
        normals = torch.randn(count, self.dim, generator=generator, dtype=torch.float64)
        scales = self._eigenvectors * torch.sqrt(self._eigenvalues)[:, None, :]
        return self._means[components] + torch.einsum("bij,bj->bi", scales[components], normals)

    def sample_marginal(self, count: int, sigma: float, generator: torch.Generator | None = None):
        generator = generator or torch.Generator().manual_seed(0)
        data = self.sample_data(count, generator)
        return data + sigma * torch.randn(data.shape, generator=generator, dtype=torch.float64)


def gaussian(std: float = 0.5, dim: int = 1, mean: float = 0.0) -> GaussianMixture:
    """Gaussian data N(mean, std^2 I): the linear (Ornstein-Uhlenbeck-type) test problem."""
    return GaussianMixture(np.ones(1), np.full((1, dim), mean), (std**2) * np.eye(dim)[None], name="gaussian")


def ring_mixture(components: int = 8, radius: float = 2.0, std: float = 0.3) -> GaussianMixture:
    """A 2-d mixture of `components` isotropic Gaussians evenly placed on a circle."""
    angles = 2 * np.pi * np.arange(components) / components
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    covariances = np.repeat((std**2 * np.eye(2))[None], components, axis=0)
    return GaussianMixture(np.full(components, 1.0 / components), means, covariances, name="ring")
