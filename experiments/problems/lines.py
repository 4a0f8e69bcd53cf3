"""One-dimensional problems with nonlinear exact denoisers, for the exact weak errors (docs/exact-weak.md).

Each problem gives, in VE coordinates (x = x~, sigma = vs): the k-diffusion-style denoiser D(x, sigma) as a
torch function, log p_sigma(x) of the marginal at noise level sigma as a numpy function, and the data
law's mean and variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


def lagrange_stencils(position: np.ndarray, count: int, degree: int):
    """Local Lagrange interpolation on a uniform grid of `count` nodes, at `position` in grid units: the first
    node of each position's stencil of degree + 1 nodes (centred where the grid allows) and the basis values
    l_k(position), k = 0..degree, on it."""
    first = np.clip(np.floor(position).astype(np.int64) - (degree - 1) // 2, 0, count - 1 - degree)
    local = position - first
    bases = []
    for k in range(degree + 1):
        basis = np.ones_like(local)
        for m in range(degree + 1):
            if m != k:
                basis *= (local - m) / (k - m)
        bases.append(basis)
    return first, bases


def interpolate(values: np.ndarray, low: float, spacing: float, points: np.ndarray, degree: int):
    """The local Lagrange interpolant of degree `degree` of `values` on the uniform grid low + spacing j."""
    first, bases = lagrange_stencils((points - low) / spacing, len(values), degree)
    return sum(values[first + k] * basis for k, basis in enumerate(bases))


@dataclass(frozen=True)
class LineMixture:
    """Data sum_k w_k N(m_k, s_k^2): the denoiser and the marginals in closed form."""

    name: str
    weights: tuple
    means: tuple
    stds: tuple
    sigma_data: float = 0.5
    # nodes of the grid that holds a noisy chain's law in the exact weak errors: enough for this problem's
    # steepest denoiser (docs/exact-weak.md, "Accuracy")
    grid_nodes: int = 801

    def _terms(self, x, sigma, module):
        w, m, s = (
            np.asarray(v) if module is np else torch.tensor(v, dtype=torch.float64)
            for v in (self.weights, self.means, self.stds)
        )
        variance = s**2 + sigma**2
        centred = x[..., None] - m
        log_terms = module.log(w) - 0.5 * (centred**2 / variance + module.log(2 * math.pi * variance))
        return log_terms, m + s**2 / variance * centred

    def denoiser(self, x, sigma):
        level = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, *([1] * (x.ndim - 1)))
        log_terms, component = self._terms(x.to(torch.float64), level[..., None], torch)
        return (torch.softmax(log_terms, dim=-1) * component).sum(-1).to(x.dtype)

    def log_density(self, x, sigma: float) -> np.ndarray:
        log_terms, _ = self._terms(np.asarray(x, dtype=np.float64), float(sigma), np)
        top = log_terms.max(-1)
        return top + np.log(np.exp(log_terms - top[..., None]).sum(-1))

    def mean(self) -> float:
        return float(np.dot(self.weights, self.means))

    def variance(self) -> float:
        second = np.dot(self.weights, np.square(self.stds) + np.square(self.means))
        return float(second - self.mean() ** 2)


@dataclass(frozen=True)
class LogisticLaw:
    """Data with the logistic (sech^2) density p(y) = sech^2((y - location) / (2 scale)) / (4 scale): smooth,
    not Gaussian, with exponential tails. Its marginals and denoiser are integrals computed by quadrature:

    - sigma < scale: in y = x - sigma t against the standard normal weight, by 64-node Gauss-Hermite (the
      integrand p(x - sigma t) is analytic for |Im t| < pi scale / sigma > pi);
    - sigma >= scale: in y on a uniform grid over location +- 40 scale with spacing scale / 2 (trapezoid
      rule: the integrand is analytic in the strip |Im y| < pi scale, so the aliasing error is about
      e^{-2 pi^2 2} = 7e-18, and the Gaussian factor, at least 2 spacings wide, adds about e^{-8 pi^2}; the tails
      beyond hold e^{-40} of the mass).
    """

    name: str = "logistic"
    location: float = 0.25
    scale: float = 0.5 * math.sqrt(3.0) / math.pi  # std 0.5
    sigma_data: float = 0.5
    hermite_nodes: int = 64
    # its exponential tails make the law's window wide: as many nodes as the separated mixture, so that the
    # smoothed density is resolved (docs/exact-weak.md, "Accuracy")
    grid_nodes: int = 2401
    # A noise level's batch of more than `tabulate_above` points is answered from a table of the quadrature
    # denoiser, interpolated with degree `table_degree`; the table's spacing is halved until the interpolant
    # matches the quadrature at every midpoint of the table to `table_tolerance` (relative to max |D| + 1:
    # ten times the quadrature's own accuracy, whose round-off the midpoint check also sees).
    tabulate_above: int = 2048
    table_degree: int = 9
    table_tolerance: float = 1e-11
    table_halvings: int = 8

    def _log_data_density(self, y, module):
        z = -module.abs(y - self.location) / self.scale
        return z - 2 * module.log1p(module.exp(z)) - math.log(self.scale)

    def _quadrature(self, x, sigma, module):
        """log of the weights (..., nodes) of the posterior quadrature for p_sigma(x) and the nodes y."""
        if sigma < self.scale:
            t, w = np.polynomial.hermite_e.hermegauss(self.hermite_nodes)
            t, w = (torch.from_numpy(v) if module is torch else v for v in (t, w / math.sqrt(2 * math.pi)))
            y = x[..., None] - sigma * t
            return self._log_data_density(y, module) + module.log(w), y
        y = self.location + self.scale * np.arange(-80, 81) / 2.0
        spacing = self.scale / 2.0
        y = torch.from_numpy(y) if module is torch else y
        log_normal = -0.5 * ((x[..., None] - y) / sigma) ** 2 - math.log(sigma * math.sqrt(2 * math.pi))
        return self._log_data_density(y, module) + log_normal + math.log(spacing), y + 0 * x[..., None]

    def denoiser(self, x, sigma):
        flat = x.to(torch.float64).reshape(x.shape[0], -1)
        levels = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(x.shape[0])
        out = torch.empty_like(flat)
        for level in torch.unique(levels).tolist():
            rows = levels == level
            points = flat[rows]
            if points.numel() > self.tabulate_above:
                out[rows] = torch.from_numpy(self._tabulated(points.numpy(), level))
            else:
                out[rows] = self._posterior_mean(points, level)
        return out.reshape(x.shape).to(x.dtype)

    def _posterior_mean(self, x, level):
        log_weights, y = self._quadrature(x, level, torch if isinstance(x, torch.Tensor) else np)
        if isinstance(x, torch.Tensor):
            return (torch.softmax(log_weights, dim=-1) * y).sum(-1)
        weights = np.exp(log_weights - log_weights.max(-1, keepdims=True))
        return (weights * y).sum(-1) / weights.sum(-1)

    def _tabulated(self, points: np.ndarray, level: float) -> np.ndarray:
        """The denoiser at `points` from a checked table (class comment); the starting spacing is a
        twentieth of the distance to its nearest complex singularity, at least pi scale (sigma -> 0)."""
        degree, spacing = self.table_degree, 0.05 * max(math.pi * self.scale, level)
        low, high = float(points.min()), float(points.max())
        for _ in range(self.table_halvings + 1):
            start = low - (degree // 2) * spacing
            nodes = start + spacing * np.arange(math.ceil((high - low) / spacing) + 1 + 2 * (degree // 2))
            values = self._posterior_mean(nodes, level)
            midpoints = nodes[:-1] + spacing / 2
            error = np.abs(
                interpolate(values, start, spacing, midpoints, degree)
                - self._posterior_mean(midpoints, level)
            )
            if error.max() <= self.table_tolerance * (1 + np.abs(values).max()):
                return interpolate(values, start, spacing, points, degree)
            spacing /= 2
        raise ArithmeticError(
            f"the logistic denoiser's table at sigma = {level} does not reach {self.table_tolerance} "
            f"(interpolation error {error.max():.2e}) after {self.table_halvings} halvings of its spacing"
        )

    def log_density(self, x, sigma: float) -> np.ndarray:
        log_weights, _ = self._quadrature(np.asarray(x, dtype=np.float64), float(sigma), np)
        top = log_weights.max(-1)
        return top + np.log(np.exp(log_weights - top[..., None]).sum(-1))

    def mean(self) -> float:
        return self.location

    def variance(self) -> float:
        return (math.pi * self.scale) ** 2 / 3.0


LINE_PROBLEMS = {
    # modes closer than their spread: the denoiser bends gently
    # (801 nodes hold its weak errors to ~2e-11 but its smoothed density only to ~5e-8 in L1, above the
    # smallest distances at 1024 steps: 1601 nodes)
    "overlapping": LineMixture("overlapping", (0.6, 0.4), (-0.4, 0.6), (0.5, 0.35), grid_nodes=1601),
    # modes 11 and 8 stds apart: the denoiser switches sharply between them at small sigma
    # (at sigma ~ 0.3 its denoiser turns over ~0.05, which 801 nodes resolve only to ~4e-6 in E g: 2401 nodes)
    "separated": LineMixture("separated", (0.35, 0.65), (-1.2, 1.0), (0.15, 0.2), grid_nodes=2401),
    "logistic": LogisticLaw(),
}
