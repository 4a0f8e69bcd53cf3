"""Scheme coefficients, derived from the Taylor expansion of the model term inside the exact integral.

In the kernel variable nu of a parameterisation (analysis.exact), one step of length h in nu reads

    x~_t = Phi(t, s) x~_s + step_scale(t) int_0^h e^{rate (h - tau)} m(nu_s + tau) dtau + noise.

Expanding m(nu_s + tau) = sum_j m^(j)(nu_s) tau^j / j! and integrating term by term gives
H^{j+1} phi_{j+1}(rate H) per term (H the length integrated over). A derivative-free scheme keeps the
terms j = 0, 1 and replaces m'(nu_s) by a finite difference (m_j - m_s) / (c_j h) through an earlier
evaluation at nu_s + c_j h: a stage of an earlier fraction of this step (singlestep) or the previous step's
start (multistep, c_j = -r with r = h_prev / h). The "phi_2" weight is the exact Taylor weight H^2 phi_2;
the "phi_1" weight replaces phi_2(x) by phi_1(x) phi_2(0) / phi_1(0), the leading-order equivalent.

With eta = 0 the parameterisations make these the DPM-Solver (noise) and DPM-Solver++ (data) families. The
two multistep schemes are the two updates of k-diffusion's DPM-Solver++(2M) SDE: "multistep-2/phi_1" its
solver_type="midpoint", "multistep-2/phi_2" its solver_type="heun".
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp

from seeds.analysis import phi
from seeds.analysis.exact import ExactSolution, lam
from seeds.analysis.exact import lam_s as solution_lam_s
from seeds.analysis.exact import lam_t as solution_lam_t

h = sp.Symbol("h", positive=True)
c2, c3 = sp.symbols("c2 c3", positive=True)
previous_ratio = sp.Symbol("r", positive=True)
rate = sp.Symbol("rate", nonzero=True, real=True)
SLOPE_WEIGHTS = ("phi_1", "phi_2")
# What noise a stage adds: the increment of the parameterisation's K from the step's start to the stage
# (SEEDS), or the time-integral noise of the last stage's model term (ESRA, docs/esra.md).
STAGE_NOISES = ("increment", "time-integral")


class _PhiFunction(sp.Function):
    """phi_k as an opaque sympy function, printed by the code generator as a call to phi_k."""

    order: int

    @classmethod
    def eval(cls, argument):
        if argument == 0:
            return sp.Rational(1, sp.factorial(cls.order))
        return None

    def _eval_rewrite_as_exp(self, argument, **kwargs):
        return phi.phi_closed_form(self.order).subs(phi.z, argument)


phi_1 = type("phi_1", (_PhiFunction,), {"order": 1})
phi_2 = type("phi_2", (_PhiFunction,), {"order": 2})
phi_3 = type("phi_3", (_PhiFunction,), {"order": 3})
PHI_FUNCTIONS = {1: phi_1, 2: phi_2, 3: phi_3}


@functools.cache
def taylor_term_weight(j: int) -> sp.Expr:
    """int_0^H e^{rate (H - tau)} tau^j / j! dtau, expressed through phi_{j+1}.

    Derived: sympy integrates it and the result is matched against H^{j+1} phi_{j+1}(rate H) (an identity
    that must simplify to zero, otherwise the derivation fails loudly).
    """
    length, t = sp.Symbol("H", positive=True), sp.Symbol("tau", nonnegative=True)
    integral = sp.integrate(
        sp.exp(rate * (length - t)) * t**j / sp.factorial(j), (t, 0, length), conds="none"
    )
    candidate = length ** (j + 1) * PHI_FUNCTIONS[j + 1](rate * length)
    if sp.simplify(candidate.rewrite(sp.exp) - integral) != 0:
        raise ArithmeticError(f"Taylor term {j}: integral {integral} is not H^{j + 1} phi_{j + 1}(rate H)")
    return candidate


@dataclass(frozen=True)
class Stage:
    """One state the scheme computes: at `fraction` of the step, from m_s and optionally one slope.

    `slope_node` is the fraction of the step at which the model value for the finite-difference slope was
    evaluated (a previous stage's fraction, or -r for the previous step of a multistep method); None
    makes the stage first order. `noise` says what noise an inner stage adds ("increment": K's increment
    from the step's start; "time-integral": the noise that the last stage's slope weight turns into the
    model term's first-order noise dependence, analysis.exact.ExactSolution.time_integral_antiderivative).
    """

    fraction: sp.Expr
    slope_node: sp.Expr | None = None
    slope_weight: str = "phi_2"
    noise: str = "increment"

    def __post_init__(self):
        if self.slope_weight not in SLOPE_WEIGHTS:
            raise ValueError(f"unknown slope weight {self.slope_weight!r}; expected one of {SLOPE_WEIGHTS}")
        if self.noise not in STAGE_NOISES:
            raise ValueError(f"unknown stage noise {self.noise!r}; expected one of {STAGE_NOISES}")


@dataclass(frozen=True)
class Scheme:
    name: str
    stages: tuple[Stage, ...]
    parameters: tuple[sp.Symbol, ...]
    multistep: bool = False

    def weights(self) -> tuple[tuple[sp.Expr, ...], ...]:
        """Per stage: (weight on m_s, weight on the difference m_slope - m_s), both without step_scale."""
        return tuple(stage_weights(stage) for stage in self.stages)


def stage_weights(stage: Stage) -> tuple[sp.Expr, ...]:
    length = stage.fraction * h
    value_weight = taylor_term_weight(0).subs(sp.Symbol("H", positive=True), length)
    if stage.slope_node is None:
        return (value_weight,)
    slope_weight = taylor_term_weight(1).subs(sp.Symbol("H", positive=True), length)
    if stage.slope_weight == "phi_1":
        leading = phi.phi_taylor_coefficients(2, 1)[0] / phi.phi_taylor_coefficients(1, 1)[0]
        slope_weight = length**2 * leading * phi_1(rate * length)
    return value_weight, sp.simplify(slope_weight / (stage.slope_node * h))


SCHEMES = {
    scheme.name: scheme
    for scheme in (
        Scheme("seeds-1", (Stage(sp.Integer(1)),), ()),
        Scheme("seeds-2/phi_1", (Stage(c2), Stage(sp.Integer(1), c2, "phi_1")), (c2,)),
        Scheme("seeds-2/phi_2", (Stage(c2), Stage(sp.Integer(1), c2, "phi_2")), (c2,)),
        Scheme(
            "seeds-3",
            (Stage(c2), Stage(c3, c2, "phi_2"), Stage(sp.Integer(1), c3, "phi_2")),
            (c2, c3),
        ),
        # ESRA: one inner stage carrying the time-integral noise, at the fraction analysis.nonlinear derives
        Scheme("esra", (Stage(c2, noise="time-integral"), Stage(sp.Integer(1), c2, "phi_1")), (c2,)),
        Scheme(
            "multistep-2/phi_1", (Stage(sp.Integer(1), -previous_ratio, "phi_1"),), (previous_ratio,), True
        ),
        Scheme(
            "multistep-2/phi_2", (Stage(sp.Integer(1), -previous_ratio, "phi_2"),), (previous_ratio,), True
        ),
    )
}


def stage_states(
    solution: ExactSolution,
    scheme: Scheme,
    start: sp.Expr,
    lam_start: sp.Expr,
    lam_end: sp.Expr,
    model_values: dict,
    noise_increments: dict,
    parameters: dict | None = None,
) -> list[sp.Expr]:
    """The state of every stage of one step, symbolically (the last one is the step's result).

    u_k = Phi(s -> s_k) x~_s + step_scale(lam_k) [w_value m_s + w_slope (m_slope - m_s)]
          + noise_scale(lam_k) dK_k,
    with lam_k at fraction c_k of the step in the kernel variable. `model_values` maps a node fraction
    (0 for the start, c_k for stage k, -r for a previous step) to the model output there; `noise_increments`
    maps c_k to K(lam_k) - K(lam_s) of the parameterisation's noise process (empty: the mean step, which a
    time-integral stage also has); `parameters` fixes c2, c3, r.
    """
    parameters = parameters or {}
    nu = solution.kernel_variable
    nu_start = nu.subs(lam, lam_start)
    h_nu = nu.subs(lam, lam_end) - nu_start
    states = []
    if noise_increments and any(stage.noise != "increment" for stage in scheme.stages[:-1]):
        raise NotImplementedError(
            f"{scheme.name}: stage_states adds increment stage noise only; the time-integral noise is "
            "expanded in analysis.orders and analysis.nonlinear"
        )
    for stage, weights in zip(scheme.stages, scheme.weights()):
        fraction = sp.sympify(stage.fraction).subs(parameters)
        lam_stage = lam_end if fraction == 1 else solution.log_snr_of(nu_start + fraction * h_nu)
        known = {h: h_nu, rate: solution.rate, **parameters}
        model_part = weights[0].subs(known) * model_values[0]
        if stage.slope_node is not None:
            slope_node = sp.sympify(stage.slope_node).subs(parameters)
            model_part += weights[1].subs(known) * (model_values[slope_node] - model_values[0])
        linear = solution.linear_factor.subs({solution_lam_s: lam_start, solution_lam_t: lam_stage})
        states.append(
            linear * start
            + solution.step_scale.subs(lam, lam_stage) * model_part
            + solution.noise_scale.subs(lam, lam_stage) * noise_increments.get(fraction, 0)
        )
    return states
