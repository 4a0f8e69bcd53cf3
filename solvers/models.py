"""Model adapters (the second concern): every network becomes one of the solver's model outputs in scaled
coordinates x~ = x/alpha at noise level vs = sigma/alpha (docs/mathematics.md, "Coordinates").

An adapter is called as adapter(x~, vs, **extra_args), vs of shape (batch,), and returns (kind, value) with
kind one of "noise" (eps), "data" (D) or "edm" (the EDM network output F). `convert` turns any kind into any
other: D = x~ - vs eps = c_skip x~ + c_out F.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from seeds.solvers.schedules import Schedule

PREDICTIONS = ("noise", "data", "edm")


def per_sample(values, x):
    """Shape a (batch,) tensor to broadcast against x."""
    return values.reshape((-1,) + (1,) * (x.ndim - 1))


class ModelOutputError(RuntimeError):
    """A model returned something a solver cannot use (NaN/Inf, wrong shape)."""


def check_prediction(prediction: str) -> str:
    if prediction not in PREDICTIONS:
        raise ValueError(f"unknown prediction {prediction!r}; expected one of {PREDICTIONS}")
    return prediction


def edm_preconditioning(vs, sigma_data: float):
    """(c_skip, c_out) of EDM: D = c_skip x + c_out F."""
    c_skip = sigma_data**2 / (vs**2 + sigma_data**2)
    c_out = vs * sigma_data / torch.sqrt(vs**2 + sigma_data**2)
    return c_skip, c_out


def convert(kind: str, value, x, vs, target: str, sigma_data: float = 0.5):
    """Turn a model output of `kind` at (x~, vs) into the `target` kind (all in the caller's dtype)."""
    if kind == target:
        return value
    if kind == "noise":
        denoised = x - vs * value
    elif kind == "edm":
        c_skip, c_out = edm_preconditioning(vs, sigma_data)
        denoised = c_skip * x + c_out * value
    else:
        denoised = value
    if target == "data":
        return denoised
    if target == "noise":
        return (x - denoised) / vs
    c_skip, c_out = edm_preconditioning(vs, sigma_data)
    return (denoised - c_skip * x) / c_out


@dataclass
class Denoiser:
    """A k-diffusion-style denoiser D(x, sigma, **extra_args) in VE coordinates (x = x~, sigma = vs)."""

    model: Callable

    def __call__(self, x, vs, **extra_args):
        return "data", self.model(x, vs, **extra_args)


@dataclass
class ScheduledNetwork:
    """A network called in its own coordinates: net(x_t, t, **extra_args) with x_t = alpha(t) x~."""

    network: Callable
    schedule: Schedule

    def _call(self, x, vs, extra_args):
        """(alpha, vs) shaped like x, and the network output."""
        t = self.schedule.t_of_vs(vs.to(torch.float64))
        alpha = per_sample(self.schedule.alpha(t).to(x.dtype), x)
        return alpha, per_sample(vs, x), self.network(alpha * x, t.to(x.dtype), **extra_args)


class EpsNetwork(ScheduledNetwork):
    """Predicts the noise eps of x_t = alpha x_0 + sigma eps (eps is the same in scaled coordinates)."""

    def __call__(self, x, vs, **extra_args):
        return "noise", self._call(x, vs, extra_args)[2]


class DataNetwork(ScheduledNetwork):
    """Predicts x_0 (the data) from x_t."""

    def __call__(self, x, vs, **extra_args):
        return "data", self._call(x, vs, extra_args)[2]


class VelocityNetwork(ScheduledNetwork):
    """Predicts v = alpha eps - sigma x_0 (variance-preserving schedules: x_0 = alpha x_t - sigma v)."""

    def __call__(self, x, vs, **extra_args):
        alpha, level, velocity = self._call(x, vs, extra_args)
        return "data", alpha * (alpha * x) - alpha * level * velocity


class ScoreNetwork(ScheduledNetwork):
    """Predicts the score grad log p_t(x_t) = -eps/sigma in the schedule's own coordinates (VP or VE)."""

    def __call__(self, x, vs, **extra_args):
        alpha, level, score = self._call(x, vs, extra_args)
        return "noise", -(alpha * level) * score


@dataclass
class EDMNetwork:
    """The raw EDM network F(c_in x, c_noise) with c_in = 1/sqrt(sigma^2 + sigma_data^2), c_noise = log(sigma)/4."""

    network: Callable
    sigma_data: float = 0.5

    def __call__(self, x, vs, **extra_args):
        c_in = per_sample(1.0 / torch.sqrt(vs**2 + self.sigma_data**2), x)
        return "edm", self.network(c_in * x, torch.log(vs) / 4.0, **extra_args)


def as_adapter(model):
    """Wrap a bare callable as a k-diffusion-style denoiser; pass adapters through."""
    if isinstance(model, (Denoiser, ScheduledNetwork, EDMNetwork)):
        return model
    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    return Denoiser(model)


class ModelEvaluator:
    """Calls the adapter, counts model evaluations, checks outputs and converts them to the solver's kind."""

    def __init__(self, model, target: str, sigma_data: float = 0.5, extra_args=None, model_dtype=None):
        self.adapter = as_adapter(model)
        self.model_dtype = model_dtype
        self.target = check_prediction(target)
        self.sigma_data = sigma_data
        self.extra_args = extra_args or {}
        self.evaluations = 0
        self.step = 0

    def __call__(self, x, vs):
        """Model output of the target kind at state x (solver dtype) and noise level vs (a float)."""
        levels = torch.full((x.shape[0],), float(vs), dtype=self.model_dtype or x.dtype, device=x.device)
        kind, value = self.adapter(x.to(levels.dtype), levels, **self.extra_args)
        self.evaluations += 1
        self._check(value, x, vs)
        level = torch.as_tensor(float(vs), dtype=x.dtype, device=x.device)
        return convert(kind, value.to(x.dtype), x, level, self.target, self.sigma_data)

    def _check(self, value, x, vs):
        where = f"at step {self.step} (sigma = {float(vs):.6g})"
        if not isinstance(value, torch.Tensor):
            raise ModelOutputError(f"model returned {type(value).__name__}, not a tensor, {where}")
        if value.shape != x.shape:
            raise ModelOutputError(
                f"model returned shape {tuple(value.shape)}, expected {tuple(x.shape)}, {where}"
            )
        if not torch.isfinite(value).all():
            raise ModelOutputError(f"model returned NaN or Inf {where}")
