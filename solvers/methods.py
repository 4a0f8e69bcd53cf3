"""Solvers (the third concern). Each method is a small class that carries its metadata as data and takes
one step from lambda_s to lambda_t in scaled coordinates (x~, lambda), SEEDS-MATH section 4.

`model(x, lam)` returns the method's model output (eps, D or F) at noise level e^{-lam};
`noise.increment(functional, lam_s, lam)` the increment of one Brownian functional from the step's start;
`noise.fresh(key)` a standard normal tensor for churn-style fresh noise. `memory` is a dict a method may use
to carry values across steps (multistep methods).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from seeds.solvers import _coefficients as generated
from seeds.solvers.coefficients import KERNEL_RATES, parameterisation
from seeds.solvers.models import check_prediction
from seeds.solvers.noise import B, functional_for


def _check_eta(eta):
    if not (isinstance(eta, (int, float)) and 0.0 <= eta <= 1.0):
        raise ValueError(f"eta must lie in [0, 1], got {eta!r}")
    return float(eta)


def _check_fraction(name, value):
    if not (isinstance(value, (int, float)) and 0.0 < value <= 1.0):
        raise ValueError(f"stage fraction {name} must lie in (0, 1], got {value!r}")
    return float(value)


@dataclass
class Method:
    """Metadata every method carries: its id (as in seeds.analysis.predicted_orders), the model output it
    uses, model evaluations per step, and whether it draws noise."""

    id: str
    prediction: str
    nfe_per_step: int
    stochastic: bool

    @property
    def orders(self) -> dict | None:
        """{"strong": ..., "weak": ...} from seeds.analysis.predicted_orders(); None where the expansion has
        no entry (the EDM churn sampler, whose fresh noise is not a path functional)."""
        from seeds.analysis import predicted_orders

        return predicted_orders().get(self.id)

    def step(self, x, lam_s, lam_t, model, noise, memory):
        raise NotImplementedError


@dataclass
class ExponentialIntegrator(Method):
    """SEEDS-1/2/3 and every method the same derivation yields (DPM-Solver-k, DPM-Solver++, SDE-DPM-Solver++,
    DDPM ancestral): stage k at fraction c_k of the step in the kernel variable nu,

        u_k = Phi(s->s_k) x~_s + step_scale(s_k) [w_value m_s + w_slope (m_slope - m_s)] + noise_scale(s_k) dK[s, s_k].
    """

    scheme: str = "seeds-1"
    eta: float = 1.0
    fractions: tuple = ()
    sigma_data: float = 0.5
    pieces: object = field(init=False, repr=False)

    def __post_init__(self):
        check_prediction(self.prediction)
        self.eta = _check_eta(self.eta)
        if self.prediction == "edm":
            if self.eta not in (0.0, 1.0):
                raise ValueError(
                    f"the EDM parameterisation is derived for eta in {{0, 1}} only, got eta = {self.eta}"
                )
            name, self.parameter = ("edm" if self.eta == 1.0 else "edm_ode"), self.sigma_data
        else:
            name, self.parameter = self.prediction, self.eta
        self.pieces = parameterisation(name)
        self.rate = KERNEL_RATES[name]
        self.weights = generated.SCHEME_WEIGHTS[self.scheme]
        self.multistep = "r" in generated.SCHEME_PARAMETERS[self.scheme]
        self.functional = functional_for(self.prediction, self.eta, self.sigma_data) if self.eta > 0 else None

    def step(self, x, lam_s, lam_t, model, noise, memory):
        p, q = self.pieces, self.parameter
        h = p.kernel_variable_increment(lam_s, lam_t - lam_s, q)
        nu_s = p.kernel_variable(lam_s, q)
        values = {0.0: model(x, lam_s)}
        weights, parameters = self.weights, self.fractions
        if self.multistep:
            if "previous" in memory:
                previous_h, values[-memory["previous_h"] / h] = memory["previous_h"], memory["previous"]
                parameters = (previous_h / h,)
            else:  # the first step has no history: the one-stage scheme
                weights, parameters = generated.SCHEME_WEIGHTS["seeds-1"], ()
            memory.update(previous=values[0.0], previous_h=h)
        stages = generated.SCHEME_STAGES["seeds-1" if weights is not self.weights else self.scheme](
            *parameters
        )
        for (fraction, slope_node), stage_weights in zip(stages, weights):
            lam_k = lam_t if fraction == 1 else p.log_snr(nu_s + fraction * h, q)
            drift = stage_weights[0](h, self.rate, *parameters) * values[0.0]
            if slope_node is not None:
                drift = drift + stage_weights[1](h, self.rate, *parameters) * (
                    values[slope_node] - values[0.0]
                )
            u = p.linear_factor(lam_s, lam_k - lam_s, q) * x + p.step_scale(lam_k, q) * drift
            if self.functional is not None:
                u = u + p.noise_scale(lam_k, q) * noise.increment(self.functional, lam_s, lam_k)
            if fraction != 1:
                values[fraction] = model(u, lam_k)
        memory["denoised_start"] = values[0.0]
        return u


@dataclass
class EulerMaruyama(Method):
    """Euler-Maruyama on the reverse SDE in lambda-time: x~_t = x~_s + 2 (D_s - x~_s) h + sqrt(2) vs_s dB."""

    def step(self, x, lam_s, lam_t, model, noise, memory):
        denoised = model(x, lam_s)
        memory["denoised_start"] = denoised
        h = lam_t - lam_s
        return (
            x
            + 2.0 * (denoised - x) * h
            + math.sqrt(2.0) * math.exp(-lam_s) * noise.increment(B, lam_s, lam_t)
        )


@dataclass
class DDIM(Method):
    """DDIM with its own eta: x~_t = D + sqrt(vs_t^2 - s^2) eps + s z, s = eta vs_t sqrt(1 - e^{-2h}).

    z is the normalised increment of P over the step, so DDIM(1) is DDPM ancestral on the same path."""

    ddim_eta: float = 0.0

    def step(self, x, lam_s, lam_t, model, noise, memory):
        denoised = model(x, lam_s)
        memory["denoised_start"] = denoised
        vs_s, vs_t, h = math.exp(-lam_s), math.exp(-lam_t), lam_t - lam_s
        spread = self.ddim_eta * vs_t * math.sqrt(-math.expm1(-2 * h))
        eps = (x - denoised) / vs_s
        out = denoised + math.sqrt(max(vs_t**2 - spread**2, 0.0)) * eps
        if spread > 0:
            # vs_t^2 dP has variance vs_t^2 (1 - e^{-2h}): divide that out to get a standard normal
            unit = (
                vs_t**2
                * noise.increment(functional_for("data", 1.0), lam_s, lam_t)
                / (vs_t * math.sqrt(-math.expm1(-2 * h)))
            )
            out = out + spread * unit
        return out


@dataclass
class EDMHeun(Method):
    """Karras et al.'s stochastic Heun sampler (their Algorithm 2) in vs = sigma, with churn."""

    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = float("inf")
    s_noise: float = 1.0
    steps: int = 1

    def step(self, x, lam_s, lam_t, model, noise, memory):
        vs_s, vs_t = math.exp(-lam_s), math.exp(-lam_t)
        gamma = (
            min(self.s_churn / self.steps, math.sqrt(2.0) - 1.0)
            if self.s_tmin <= vs_s <= self.s_tmax
            else 0.0
        )
        vs_hat = vs_s * (1.0 + gamma)
        if gamma > 0:
            index = memory.get("step_index", 0)
            x = x + math.sqrt(vs_hat**2 - vs_s**2) * self.s_noise * noise.fresh(index)
        denoised = model(x, -math.log(vs_hat))
        memory["denoised_start"] = denoised
        slope = (x - denoised) / vs_hat
        x_next = x + (vs_t - vs_hat) * slope
        slope_next = (x_next - model(x_next, lam_t)) / vs_t
        return x + (vs_t - vs_hat) * 0.5 * (slope + slope_next)


def stage_fractions(scheme, options, defaults):
    """Pop and check a scheme's stage fractions (c2, c3) from options, with the method's defaults."""
    names = generated.SCHEME_PARAMETERS[scheme]
    if "r" in names:
        return ()
    values = []
    for name, default in zip(names, defaults):
        values.append(_check_fraction(name, options.pop(name, default)))
    if len(values) == 2 and values[0] >= values[1]:
        raise ValueError(f"stage fractions must increase: c2 = {values[0]}, c3 = {values[1]}")
    return tuple(values)
