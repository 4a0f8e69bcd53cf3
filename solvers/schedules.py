"""Noise schedules and time grids (the first of the three concerns: schedule, model adapter, solver).

A schedule maps its own time t to alpha(t), sigma(t) and the half log-SNR lambda(t) = log(alpha/sigma),
and back (t_of_lambda). Solvers work in scaled coordinates x~ = x/alpha with vs = sigma/alpha = e^{-lambda}
(docs/mathematics.md, "Coordinates"); `vs(t)` is what k-diffusion calls sigma.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


class GridError(ValueError):
    """A time grid that a solver cannot take: not strictly monotone, not finite, or out of range."""


@dataclass(frozen=True)
class Schedule:
    t_min: float
    t_max: float

    def log_alpha(self, t):
        raise NotImplementedError

    def log_snr(self, t):
        """lambda(t) = log(alpha/sigma), increasing from noise (t_max) to data (t_min)."""
        raise NotImplementedError

    def t_of_log_snr(self, lam):
        raise NotImplementedError

    def alpha(self, t):
        return torch.exp(self.log_alpha(_as_tensor(t)))

    def sigma(self, t):
        return self.alpha(t) * self.vs(t)

    def vs(self, t):
        """sigma/alpha = e^{-lambda}: the noise level in VE (k-diffusion) coordinates."""
        return torch.exp(-self.log_snr(_as_tensor(t)))

    def t_of_vs(self, vs):
        return self.t_of_log_snr(-torch.log(_as_tensor(vs)))

    @property
    def vs_range(self) -> tuple[float, float]:
        return float(self.vs(self.t_min)), float(self.vs(self.t_max))


def _as_tensor(x):
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.float64)


class VariancePreserving(Schedule):
    """alpha^2 + sigma^2 = 1: lambda and log alpha determine each other."""

    def log_snr(self, t):
        # lambda = log alpha - 0.5 log(1 - alpha^2) = -0.5 log(expm1(-2 log alpha))
        return -0.5 * torch.log(torch.expm1(-2.0 * self.log_alpha(_as_tensor(t))))

    @staticmethod
    def log_alpha_of_log_snr(lam):
        """log alpha = -0.5 log(1 + e^{-2 lambda})."""
        return -0.5 * torch.nn.functional.softplus(-2.0 * _as_tensor(lam))


class VarianceExploding(Schedule):
    """alpha = 1: lambda = -log sigma."""

    def log_alpha(self, t):
        return torch.zeros_like(_as_tensor(t))


@dataclass(frozen=True)
class VPLinear(VariancePreserving):
    """Variance-preserving, linear beta: log alpha = -beta_min t/2 - (beta_max - beta_min) t^2/4."""

    t_min: float = 1e-3
    t_max: float = 1.0
    beta_min: float = 0.1
    beta_max: float = 20.0

    def log_alpha(self, t):
        return -0.5 * self.beta_min * t - 0.25 * (self.beta_max - self.beta_min) * t**2

    def t_of_log_snr(self, lam):
        half_log = -2.0 * self.log_alpha_of_log_snr(lam)  # solve the quadratic -log alpha(t) = half_log / 2
        spread = self.beta_max - self.beta_min
        return 2.0 * half_log / (torch.sqrt(self.beta_min**2 + 2.0 * spread * half_log) + self.beta_min)


@dataclass(frozen=True)
class VPCosine(VariancePreserving):
    """Variance-preserving cosine schedule (Nichol & Dhariwal): alpha = cos((t+s)/(1+s) pi/2) / cos(s/(1+s) pi/2)."""

    t_min: float = 1e-3
    t_max: float = 0.9946
    offset: float = 0.008

    def _log_alpha_zero(self):
        return math.log(math.cos(self.offset / (1.0 + self.offset) * math.pi / 2.0))

    def log_alpha(self, t):
        t = _as_tensor(t)
        return (
            torch.log(torch.cos((t + self.offset) / (1.0 + self.offset) * math.pi / 2.0))
            - self._log_alpha_zero()
        )

    def t_of_log_snr(self, lam):
        angle = torch.arccos(torch.exp(self.log_alpha_of_log_snr(lam) + self._log_alpha_zero()))
        return 2.0 * (1.0 + self.offset) / math.pi * angle - self.offset


@dataclass(frozen=True)
class VE(VarianceExploding):
    """Variance-exploding: alpha = 1, sigma = sigma_min (sigma_max/sigma_min)^t for t in [0, 1]."""

    t_min: float = 0.0
    t_max: float = 1.0
    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def log_snr(self, t):
        t = _as_tensor(t)
        return -(math.log(self.sigma_min) + t * math.log(self.sigma_max / self.sigma_min))

    def t_of_log_snr(self, lam):
        return (-_as_tensor(lam) - math.log(self.sigma_min)) / math.log(self.sigma_max / self.sigma_min)


@dataclass(frozen=True)
class EDM(VarianceExploding):
    """EDM (Karras et al.): alpha = 1, sigma = t, t in [sigma_min, sigma_max]; sigma_data for the F adapter."""

    t_min: float = 0.002
    t_max: float = 80.0
    sigma_data: float = 0.5

    def log_snr(self, t):
        return -torch.log(_as_tensor(t))

    def t_of_log_snr(self, lam):
        return torch.exp(-_as_tensor(lam))


# ------------------------------------------------------------------------------------------------- grids


def lambda_uniform_grid(schedule: Schedule, steps: int):
    """Times from t_max to t_min, uniform in lambda."""
    _check_steps(steps)
    lam = torch.linspace(
        float(schedule.log_snr(schedule.t_max)),
        float(schedule.log_snr(schedule.t_min)),
        steps + 1,
        dtype=torch.float64,
    )
    return _pin_ends(schedule, schedule.t_of_log_snr(lam))


def time_uniform_grid(schedule: Schedule, steps: int):
    _check_steps(steps)
    return torch.linspace(schedule.t_max, schedule.t_min, steps + 1, dtype=torch.float64)


def time_quadratic_grid(schedule: Schedule, steps: int):
    """Uniform in sqrt(t): denser near the data end (DPM-Solver's 'time_quadratic')."""
    _check_steps(steps)
    roots = torch.linspace(
        math.sqrt(schedule.t_max), math.sqrt(schedule.t_min), steps + 1, dtype=torch.float64
    )
    return _pin_ends(schedule, roots**2)


def edm_grid(schedule: Schedule, steps: int, rho: float = 7.0):
    """Karras et al.'s rho-grid, uniform in vs^(1/rho) between the schedule's vs range."""
    _check_steps(steps)
    vs_min, vs_max = schedule.vs_range
    ramp = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    vs = (vs_max ** (1 / rho) + ramp * (vs_min ** (1 / rho) - vs_max ** (1 / rho))) ** rho
    return _pin_ends(schedule, schedule.t_of_vs(vs))


GRIDS = {
    "lambda": lambda_uniform_grid,
    "time-uniform": time_uniform_grid,
    "time-quadratic": time_quadratic_grid,
    "edm": edm_grid,
}


def noise_levels(grid: str, steps: int, sigma_min: float, sigma_max: float):
    """Noise levels vs from sigma_max to sigma_min on the named grid of GRIDS, in EDM coordinates."""
    schedule = EDM(t_min=sigma_min, t_max=sigma_max)
    return schedule.vs(GRIDS[grid](schedule, steps))


def _check_steps(steps):
    if not isinstance(steps, int) or steps < 1:
        raise GridError(f"the number of steps must be a positive integer, got {steps!r}")


def _pin_ends(schedule, times):
    # round trips through lambda move the end points by rounding; the range check must see them exactly
    times = times.clone()
    times[0], times[-1] = schedule.t_max, schedule.t_min
    return times


def check_vs_grid(
    vs,
    vs_min: float | None = None,
    vs_max: float | None = None,
    allow_final_zero=True,
    tolerance=1e-12,
    range_of="the schedule",
):
    """Refuse a noise-level grid that a solver cannot take; returns it as a float64 tensor.

    The grid must be finite, strictly decreasing (noise to data), inside [vs_min, vs_max] when given (to
    relative `tolerance`; an error names the range as `range_of`'s), and may end with a single 0 (the final
    denoising step).
    """
    vs = torch.as_tensor(vs, dtype=torch.float64).detach().cpu()
    if vs.ndim != 1 or vs.numel() < 2:
        raise GridError(
            f"sigmas must be a 1-d sequence of at least 2 noise levels, got shape {tuple(vs.shape)}"
        )
    if not torch.isfinite(vs).all():
        bad = torch.nonzero(~torch.isfinite(vs)).flatten().tolist()
        raise GridError(f"sigmas contain NaN or Inf at positions {bad}")
    body = vs[:-1] if (allow_final_zero and vs[-1] == 0) else vs
    steps = body[1:] - body[:-1]
    if (steps >= 0).any() or (vs[-1] == 0 and body[-1] <= 0):
        position = int(torch.nonzero(steps >= 0).flatten()[0]) if (steps >= 0).any() else len(body) - 1
        raise GridError(
            f"sigmas must be strictly decreasing (noise to data): sigmas[{position}] = {float(vs[position])!r}, "
            f"sigmas[{position + 1}] = {float(vs[position + 1])!r}"
        )
    if (body <= 0).any():
        raise GridError("sigmas must be positive except for a single final 0")
    # the solvers step in lambda = -log sigma: levels a few ulps apart can give a step of exactly 0 there
    log_snrs = [-math.log(level) for level in body.tolist()]
    flat = [i for i in range(len(log_snrs) - 1) if log_snrs[i + 1] <= log_snrs[i]]
    if flat:
        raise GridError(
            f"sigmas[{flat[0]}] = {float(vs[flat[0]])!r} and sigmas[{flat[0] + 1}] = {float(vs[flat[0] + 1])!r} "
            "are too close: their step in log sigma is 0 in float64"
        )
    covers = f"{range_of} covers sigma in [{vs_min or 0.0!r}, {vs_max or math.inf!r}]"
    if vs_max is not None and float(body[0]) > vs_max * (1 + tolerance):
        raise GridError(f"sigmas[0] = {float(body[0])!r} lies above the range: {covers}")
    if vs_min is not None and float(body[-1]) < vs_min * (1 - tolerance):
        raise GridError(f"sigmas end at {float(body[-1])!r}, below the range: {covers}")
    return vs


def check_time_grid(schedule: Schedule, times):
    """Refuse a time grid (noise to data) that is not strictly monotone, not finite, or leaves the range."""
    times = torch.as_tensor(times, dtype=torch.float64)
    if not torch.isfinite(times).all():
        raise GridError(
            f"time grid contains NaN or Inf at positions {torch.nonzero(~torch.isfinite(times)).flatten().tolist()}"
        )
    if (times[1:] >= times[:-1]).any():
        position = int(torch.nonzero(times[1:] >= times[:-1]).flatten()[0])
        raise GridError(
            f"time grid must be strictly decreasing: t[{position}] = {float(times[position])!r}, "
            f"t[{position + 1}] = {float(times[position + 1])!r}"
        )
    if float(times[0]) > schedule.t_max or float(times[-1]) < schedule.t_min:
        raise GridError(
            f"time grid [{float(times[-1])!r}, {float(times[0])!r}] leaves the schedule's range "
            f"[{schedule.t_min!r}, {schedule.t_max!r}]"
        )
    return times
