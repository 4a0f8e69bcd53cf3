"""Solvers (the third concern): the methods and their catalogue.

Every method is declared once, in seeds.analysis.methods, and reaches the runtime through the generated
METHOD_TABLE of `_coefficients.py`, which also carries its predicted orders. A method object carries that
row's metadata and takes steps in scaled coordinates (x~, lambda) (docs/mathematics.md, "The schemes"):

    state = method.init(x, sigmas)
    x, denoised, state = method.step(x, lam_s, lam_t, model, noise, state)

`model(u, lam)` returns the method's model output (eps, D or F) at noise level e^{-lam}; `noise` is a noise
source (seeds.solvers.brownian): `noise.increment(functional, lam_s, lam)` the increment of one Brownian
functional from the step's start, `noise.fresh(key)` standard normals for churn. `denoised` is the data
prediction D at the step's start. The state is a frozen dataclass, returned anew by every step: what a method
carries from one step to the next is in its type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from seeds.solvers import _coefficients as generated
from seeds.solvers.brownian import B, functional_for, time_integral_functional_for
from seeds.solvers.coefficients import KERNEL_RATES, parameterisation
from seeds.solvers.models import check_prediction, convert
from seeds.solvers.schedules import GridError

METHOD_TABLE = generated.METHOD_TABLE


@dataclass(frozen=True)
class StepState:
    """What every method carries between steps: the index of the step it takes next."""

    index: int = 0


@dataclass(frozen=True)
class MultistepState(StepState):
    """A multistep method also keeps the previous step's model output and its length in the kernel variable."""

    previous_value: torch.Tensor | None = None
    previous_length: float | None = None


@dataclass(frozen=True)
class ChurnState(StepState):
    """The churn of Karras et al. is spread over the number of steps of the grid."""

    steps: int = 1


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
    """Metadata every method carries: its id (a key of METHOD_TABLE), the model output it uses, model
    evaluations per step, and whether it draws noise."""

    id: str
    prediction: str
    nfe_per_step: int
    stochastic: bool

    @property
    def orders(self) -> dict | None:
        """{"strong": ..., "weak": ...} as predicted by the one-step expansion (docs/derivations.md); None
        where the expansion has no model of the method (EDM churn, whose fresh noise is no path functional)."""
        orders = METHOD_TABLE[self.id]["orders"]
        return None if orders is None else {"strong": orders["strong"], "weak": orders["weak"]}

    @property
    def nonlinear_orders(self) -> dict | None:
        """The orders with a nonlinear model output (seeds.analysis.nonlinear), for the singlestep exponential
        SDE methods; None for the others."""
        orders = METHOD_TABLE[self.id]["nonlinear_orders"]
        return None if orders is None else dict(orders)

    @property
    def largest_stable_step(self) -> float | None:
        """The largest step in lambda whose mean factor on a point-mass data law stays <= 1 at every start
        (seeds.analysis.stability; math.inf if none grows), at the method's default options; None where the
        analysis has no model of the method (multistep and non-exponential methods)."""
        return METHOD_TABLE[self.id]["largest_stable_step"]

    def point_mass_factors(self, sigmas) -> list[float]:
        """x_next / x of every step between positive sigmas on a point-mass data law (D = 0) without noise:
        the stiffest linear test problem, where the reverse SDE contracts the state by e^{-(1 + eta^2) h}
        (docs/esra.md, "Stability"). A factor above 1 in size is a step that grows the state and its errors."""
        x = torch.ones(1, dtype=torch.float64)
        sigma_data = getattr(self, "sigma_data", 0.5)

        def model(u, lam):
            level = torch.tensor(math.exp(-lam), dtype=u.dtype)
            return convert("data", torch.zeros_like(u), u, level, self.prediction, sigma_data)

        levels = [float(level) for level in sigmas if float(level) > 0]
        state, factors = self.init(x, sigmas), []
        for sigma_s, sigma_t in zip(levels, levels[1:]):
            x_next, _, state = self.step(x, -math.log(sigma_s), -math.log(sigma_t), model, _Silence(), state)
            factors.append(float(x_next / x))
            x = x_next
        return factors

    def check_grid(self, sigmas):
        """What the samplers call before solving: a method whose row refuses growing steps (ESRA) raises a
        GridError for a grid with a step that grows the state on a point-mass data law. The verification
        tools (exact-linear, exact-weak) skip this, to study a scheme on any grid."""
        if not METHOD_TABLE[self.id]["refuses_growing_steps"]:
            return
        levels = [float(level) for level in sigmas if float(level) > 0]
        factors = self.point_mass_factors(levels)
        growing = [(k, abs(factor)) for k, factor in enumerate(factors) if abs(factor) > 1 + 1e-9]
        if growing:
            k, factor = max(growing, key=lambda item: item[1])
            raise GridError(
                f"{self.id}: {len(growing)} step(s) of this grid grow the state, the largest from sigma "
                f"{levels[k]:.4g} to {levels[k + 1]:.4g} by {factor:.3g} on a point-mass data law, where the SDE "
                f'contracts it (docs/esra.md, "Stability"): take more steps (with the default options, steps of '
                f"at most {self.largest_stable_step:.3g} in log-SNR never grow), or prediction='data', which never "
                "grows"
            )

    def init(self, x, sigmas) -> StepState:
        return StepState()

    def step(self, x, lam_s, lam_t, model, noise, state):
        raise NotImplementedError


class _Silence:
    """A noise source of zeros: the mean step."""

    def increment(self, functional, lam_a, lam_b):
        return torch.zeros(1, dtype=torch.float64)

    def fresh(self, key):
        return torch.zeros(1, dtype=torch.float64)


@dataclass
class ExponentialIntegrator(Method):
    """SEEDS-1/2/3 and every method the same derivation yields (DPM-Solver-k, DPM-Solver++, SDE-DPM-Solver++,
    DDPM ancestral, ESRA): stage k at fraction c_k of the step in the kernel variable nu,

        u_k = Phi(s->s_k) x~_s + step_scale(s_k) [w_value m_s + w_slope (m_slope - m_s)] + noise_scale(s_k) dK[s, s_k].

    ESRA's inner stage adds the time-integral noise instead of the increment (`_time_integral_noise`).

    `step` calls the model itself; `stages` is the same step asking for one model evaluation at a time.
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
        self.stage_noises = generated.SCHEME_STAGE_NOISES[self.scheme]
        self.time_integral = (
            time_integral_functional_for(self.prediction, self.eta, self.sigma_data)
            if self.functional is not None and "time-integral" in self.stage_noises
            else None
        )

    def init(self, x, sigmas) -> StepState:
        return MultistepState() if self.multistep else StepState()

    def step(self, x, lam_s, lam_t, model, noise, state):
        return _answer_with(model, self.stages(x, lam_s, lam_t, noise, state))

    def evaluation_log_snrs(self, lam_s, lam_t) -> list[float]:
        """Where one step from lam_s to lam_t asks for the model, in the order `stages` asks: the step's start,
        then the end of every stage before the last (a multistep scheme has a single stage)."""
        h, nu_s = self._kernel_step(lam_s, lam_t)
        stages = () if self.multistep else generated.SCHEME_STAGES[self.scheme](*self.fractions)[:-1]
        return [lam_s] + [self.pieces.log_snr(nu_s + fraction * h, self.parameter) for fraction, _ in stages]

    def _kernel_step(self, lam_s, lam_t):
        """The step's length h and its start nu_s in the kernel variable."""
        p, q = self.pieces, self.parameter
        return p.kernel_variable_increment(lam_s, lam_t - lam_s, q), p.kernel_variable(lam_s, q)

    def stages(self, x, lam_s, lam_t, noise, state):
        """The step as a generator that asks for one model evaluation at a time, so that a caller with its own
        evaluation loop (a diffusers scheduler) can drive it: it yields (u, lam), is sent the model output at
        (u, lam), and returns (x_next, denoised, state)."""
        p, q = self.pieces, self.parameter
        h, nu_s = self._kernel_step(lam_s, lam_t)
        values = {0.0: (yield x, lam_s)}
        scheme, weights, parameters = self.scheme, self.weights, self.fractions
        if self.multistep:
            if state.previous_value is None:  # the first step has no history: the one-stage scheme
                scheme, weights, parameters = "seeds-1", generated.SCHEME_WEIGHTS["seeds-1"], ()
            else:
                values[-state.previous_length / h] = state.previous_value
                parameters = (state.previous_length / h,)
            state = replace(state, previous_value=values[0.0], previous_length=h)
        stages = generated.SCHEME_STAGES[scheme](*parameters)
        for k, ((fraction, slope_node), stage_weights) in enumerate(zip(stages, weights)):
            last = k == len(stages) - 1
            # the last stage is the step's result: it ends at lam_t exactly, not at a round trip through nu
            lam_k = lam_t if last else p.log_snr(nu_s + fraction * h, q)
            drift = stage_weights[0](h, self.rate, *parameters) * values[0.0]
            if slope_node is not None:
                drift = drift + stage_weights[1](h, self.rate, *parameters) * (
                    values[slope_node] - values[0.0]
                )
            u = p.linear_factor(lam_s, lam_k - lam_s, q) * x + p.step_scale(lam_k, q) * drift
            if self.functional is not None and self.stage_noises[k] == "time-integral" and not last:
                final_slope_weight = weights[-1][1](h, self.rate, *parameters)
                u = u + self._time_integral_noise(noise, lam_s, lam_t, final_slope_weight)
            elif self.functional is not None:
                u = u + p.noise_scale(lam_k, q) * noise.increment(self.functional, lam_s, lam_k)
            if not last:
                values[fraction] = yield u, lam_k
        level = torch.tensor(math.exp(-lam_s), dtype=x.dtype, device=x.device)
        denoised = convert(self.prediction, values[0.0], x, level, "data", self.sigma_data)
        return u, denoised, replace(state, index=state.index + 1)

    def _time_integral_noise(self, noise, lam_s, lam_t, final_slope_weight):
        """ESRA's stage noise e^{rate nu_t} (A(t) dK - dR) / w over the whole step (docs/esra.md): what the
        final stage's slope weight w turns into the model term's first-order noise dependence."""
        integral = self.time_integral
        weighted = integral.antiderivative(lam_t) * noise.increment(self.functional, lam_s, lam_t)
        return (
            integral.scale(lam_t) * (weighted - noise.increment(integral, lam_s, lam_t)) / final_slope_weight
        )


def _answer_with(model, stages):
    """Run a step generator to its end, answering each of its requests (u, lam) with model(u, lam)."""
    request = next(stages)
    while True:
        output = model(*request)
        try:
            request = stages.send(output)
        except StopIteration as finished:
            return finished.value


@dataclass
class EulerMaruyama(Method):
    """Euler-Maruyama on the reverse SDE in lambda-time: x~_t = x~_s + 2 (D_s - x~_s) h + sqrt(2) vs_s dB."""

    def step(self, x, lam_s, lam_t, model, noise, state):
        denoised = model(x, lam_s)
        h = lam_t - lam_s
        x_next = (
            x
            + 2.0 * (denoised - x) * h
            + math.sqrt(2.0) * math.exp(-lam_s) * noise.increment(B, lam_s, lam_t)
        )
        return x_next, denoised, replace(state, index=state.index + 1)


@dataclass
class DDIM(Method):
    """DDIM with its own eta: x~_t = D + sqrt(vs_t^2 - s^2) eps + s z, s = eta vs_t sqrt(1 - e^{-2h}).

    z is the normalised increment of P over the step, so DDIM(1) is DDPM ancestral on the same path."""

    ddim_eta: float = 0.0

    def step(self, x, lam_s, lam_t, model, noise, state):
        denoised = model(x, lam_s)
        vs_s, vs_t, h = math.exp(-lam_s), math.exp(-lam_t), lam_t - lam_s
        spread = self.ddim_eta * vs_t * math.sqrt(-math.expm1(-2 * h))
        eps = (x - denoised) / vs_s
        x_next = denoised + math.sqrt(max(vs_t**2 - spread**2, 0.0)) * eps
        if spread > 0:
            # vs_t^2 dP has variance vs_t^2 (1 - e^{-2h}): divide that out to get a standard normal
            unit = (
                vs_t**2
                * noise.increment(functional_for("data", 1.0), lam_s, lam_t)
                / (vs_t * math.sqrt(-math.expm1(-2 * h)))
            )
            x_next = x_next + spread * unit
        return x_next, denoised, replace(state, index=state.index + 1)


@dataclass
class EDMHeun(Method):
    """Karras et al.'s stochastic Heun sampler (their Algorithm 2) in vs = sigma, with churn."""

    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = float("inf")
    s_noise: float = 1.0

    def __post_init__(self):
        for name in ("s_churn", "s_noise", "s_tmin"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not (isinstance(self.s_tmax, (int, float)) and self.s_tmax >= self.s_tmin):
            raise ValueError(f"s_tmax must be a number >= s_tmin = {self.s_tmin!r}, got {self.s_tmax!r}")

    def init(self, x, sigmas) -> ChurnState:
        return ChurnState(steps=len(sigmas) - 1)

    def step(self, x, lam_s, lam_t, model, noise, state):
        vs_s, vs_t = math.exp(-lam_s), math.exp(-lam_t)
        gamma = (
            min(self.s_churn / state.steps, math.sqrt(2.0) - 1.0)
            if self.s_tmin <= vs_s <= self.s_tmax
            else 0.0
        )
        vs_hat = vs_s * (1.0 + gamma)
        if gamma > 0:
            x = x + math.sqrt(vs_hat**2 - vs_s**2) * self.s_noise * noise.fresh(state.index)
        denoised = model(x, -math.log(vs_hat))
        slope = (x - denoised) / vs_hat
        x_next = x + (vs_t - vs_hat) * slope
        slope_next = (x_next - model(x_next, lam_t)) / vs_t
        return (
            x + (vs_t - vs_hat) * 0.5 * (slope + slope_next),
            denoised,
            replace(state, index=state.index + 1),
        )


# ------------------------------------------------------------------------------------------- the catalogue

SOLVER_CLASSES = {
    "exponential": ExponentialIntegrator,
    "euler-maruyama": EulerMaruyama,
    "ddim": DDIM,
    "edm-heun": EDMHeun,
}


def _names() -> dict[str, tuple[str, ...]]:
    names: dict[str, list[str]] = {}
    for method_id, row in METHOD_TABLE.items():
        names.setdefault(row["name"], []).append(method_id)
    return {name: tuple(ids) for name, ids in names.items()}


# method name (what `sample(..., method=name)` takes) -> the ids of its rows, one per parameterisation and
# variant for a SEEDS method
METHODS = _names()

# Methods that run in any parameterisation; the others have theirs fixed.
CHOOSE_PREDICTION = tuple(
    name for name, ids in METHODS.items() if len({METHOD_TABLE[i]["prediction"] for i in ids}) > 1
)

# The slope weights a method offers as `variant` (SEEDS-2, SDE-DPM-Solver++(2M)); phi_1 is the default.
VARIANTS = ("phi_1", "phi_2")


def predicted_orders() -> dict[str, dict[str, float]]:
    """Global strong and weak orders per method id, as generated from the one-step expansion."""
    return {
        method_id: {"strong": row["orders"]["strong"], "weak": row["orders"]["weak"]}
        for method_id, row in METHOD_TABLE.items()
        if row["orders"] is not None
    }


def _select(name: str, options: dict) -> str:
    """The id of the row of `name` that the options select; a variant is consumed here."""
    ids = METHODS[name]
    if len(ids) == 1:
        return ids[0]
    selectors = {option for i in ids for option, _ in METHOD_TABLE[i]["selected_by"]}
    wanted = {}
    if name in CHOOSE_PREDICTION:
        wanted["prediction"] = check_prediction(options.get("prediction", "data"))
    # every SEEDS method takes a variant; SEEDS-1 and SEEDS-3 have one form and ignore it
    if "variant" in selectors or name in CHOOSE_PREDICTION:
        variant = options.pop("variant", "phi_1")
        if "variant" in selectors:
            if variant not in VARIANTS:
                raise ValueError(f"unknown variant {variant!r} of {name}; expected 'phi_1' or 'phi_2'")
            wanted["variant"] = variant
    if "churn" in selectors:
        wanted["churn"] = options.get("s_churn", 0.0) > 0
    return next(i for i in ids if dict(METHOD_TABLE[i]["selected_by"]) == wanted)


def make_method(method: str, **options) -> Method:
    """The method object for a method name of METHODS, with its options checked."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {sorted(METHODS)}")
    method_id = _select(method, options)
    row = METHOD_TABLE[method_id]
    cls = SOLVER_CLASSES[row["kind"]]
    if cls is ExponentialIntegrator:
        return _exponential_integrator(method_id, row, options)
    accepted = set(cls.__dataclass_fields__) - set(Method.__dataclass_fields__)
    refused = sorted(set(options) - accepted)
    if refused:
        raise TypeError(f"method {method_id!r} takes no option(s) {refused}")
    return cls(method_id, row["prediction"], row["nfe_per_step"], row["stochastic"], **options)


def _exponential_integrator(method_id: str, row: dict, options: dict) -> ExponentialIntegrator:
    prediction = check_prediction(options.pop("prediction", row["prediction"]))
    eta = options.pop("eta", float(row["eta"]))
    names = generated.SCHEME_PARAMETERS[row["scheme"]]
    fractions = () if "r" in names else _stage_fractions(names, row["fractions"], options)
    sigma_data = options.pop("sigma_data", 0.5)
    if options:
        raise TypeError(f"method {method_id!r} takes no option(s) {sorted(options)}")
    return ExponentialIntegrator(
        method_id,
        prediction,
        row["nfe_per_step"],
        eta > 0,
        scheme=row["scheme"],
        eta=eta,
        fractions=fractions,
        sigma_data=sigma_data,
    )


def _stage_fractions(names: tuple, defaults: tuple, options: dict) -> tuple:
    """Pop and check a scheme's stage fractions (c2, c3) from options, with the method's defaults."""
    values = tuple(
        _check_fraction(name, options.pop(name, default)) for name, default in zip(names, defaults)
    )
    if len(values) == 2 and values[0] >= values[1]:
        raise ValueError(f"stage fractions must increase: c2 = {values[0]}, c3 = {values[1]}")
    return values
