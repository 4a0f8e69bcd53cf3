"""Order conditions the linear test problem cannot see, from a frozen-coefficient Ito-Taylor expansion
(docs/esra.md, "The order conditions").

analysis.orders expands every scheme exactly on Gaussian data, where the model output is affine in x~. With a
nonlinear model output m(x, lambda) one more kind of term appears: the model's curvature m_xx meets the
state's noise, (1/2) m_xx E[(x_l - x_s)^2], an h^2 term in the mean of the step (the Ito correction). A scheme
must match it to reach a local mean error O(h^3), i.e. weak order 2, and it must do so while its model
evaluations also carry the pathwise h^(3/2) term m_x int (x_l - x_s)_noise dl that strong order 1.5 needs.

Both are leading-order conditions, so the coefficients may be frozen over the step: the local problem is

    dx = (a x + b m(x, lambda)) dlambda + g dW,   m = m0 + m_x dx + m_l dlambda + (1/2) m_xx dx^2,

on [0, h] with a, b, g, m0, m_x, m_l, m_xx constants (symbols). A scheme of analysis.schemes runs on it with
rate a, step scale b and the kernel variable lambda; its stage noises are the frozen counterparts of the
runtime ones (an increment of K = g int e^{-a sigma} dW scaled by e^{a lambda}, or the time-integral noise).
Every state is carried as

    deterministic part + linear Gaussian part int kappa(sigma) dW_sigma,

where a model evaluation at u adds the mean (1/2) m_xx E[(u - x)^2] to the deterministic part and drops the
zero-mean rest (1/2) m_xx ((u - x)^2 - E[...]), an h^2 term whose only effect is bounded below. The exact
solution is expanded the same way by one Picard step. Comparing the two gives, as polynomials in h:

* the mean error through h^2 (p1 = 2 if its h^2 coefficient is not identically zero, else p1 >= 3);
* the mean-square error of the linear parts through h^3 (p2 = 3/2 if it has an h^3 term, else p2 >= 2);
* the variance error of the linear parts through h^2 (q2 = 2 if not zero, else q2 >= 3);
* the zero-mean quadratic parts: numerical (1/2) b w m_xx (xi^2 - E xi^2) against the exact
  (1/2) b m_xx int (g W_l)^2 dl - mean, different random variables whose mean-square difference has an h^4
  term, so p2 <= 2 for every scheme with a nonlinear model (computed, not assumed: `quadratic_mean_square`).

The expansion is truncated there, so it certifies at most p1 = 3, p2 = 2, q2 = 3: strong order 1.5 and weak
order 2 (Milstein's theorem and its weak counterpart). `nonlinear_local_orders` returns these capped powers;
analysis.orders takes the smaller of them and the linear problem's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp

from seeds.analysis import schemes

h = sp.Symbol("h", positive=True)
a, b, g = sp.symbols("a b g", real=True)
x, m0, m_x, m_l, m_xx = sp.symbols("x m0 m_x m_l m_xx", real=True)
theta = sp.Symbol("theta", nonnegative=True)  # time in the step over h: sigma = theta h

# the powers the truncated expansion can certify
P1_CAP, P2_CAP, Q2_CAP = 3, 2, 3
# Deterministic parts are carried through h^2 (the mean condition), kernels through h^1 (the mean square of
# the linear parts through h^3 and their variance through h^2): polynomials in h, with exponentials and
# phi-functions as Taylor polynomials of their O(h) arguments.
_DETERMINISTIC_TERMS, _KERNEL_TERMS = 3, 2


def _truncate(expression: sp.Expr, terms: int) -> sp.Expr:
    expanded = sp.expand(expression)
    return sp.Add(*(expanded.coeff(h, power) * h**power for power in range(terms)))


def _exp(argument: sp.Expr) -> sp.Expr:
    """e^argument for an O(h) argument."""
    return sp.Add(*(argument**k / sp.factorial(k) for k in range(_DETERMINISTIC_TERMS + 1)))


def _phi(k: int, argument: sp.Expr) -> sp.Expr:
    """phi_k(argument) = sum_j argument^j / (j + k)! for an O(h) argument."""
    return sp.Add(*(argument**j / sp.factorial(j + k) for j in range(_DETERMINISTIC_TERMS + 1)))


@dataclass(frozen=True)
class Linear:
    """int_0^h kappa dW with kappa piecewise in theta: pieces (start, end, kappa(theta)), fractions of h."""

    pieces: tuple[tuple[sp.Expr, sp.Expr, sp.Expr], ...] = ()

    def __add__(self, other: Linear) -> Linear:
        return Linear(self.pieces + other.pieces)

    def scaled(self, factor: sp.Expr) -> Linear:
        return Linear(
            tuple((s, e, _truncate(factor * kernel, _KERNEL_TERMS)) for s, e, kernel in self.pieces)
        )

    def kernel_on(self, segment: int, breakpoints) -> sp.Expr:
        """kappa on the elementary segment [breakpoints[segment], breakpoints[segment + 1]]."""
        rank = {point: index for index, point in enumerate(breakpoints)}
        return sp.Add(*(k for s, e, k in self.pieces if rank[s] <= segment < rank[e]))


def _inner(first: Linear, second: Linear, breakpoints) -> sp.Expr:
    """E[(int kappa_1 dW)(int kappa_2 dW)] = h int_0^1 kappa_1 kappa_2 dtheta."""
    total = sp.Integer(0)
    for segment, (start, end) in enumerate(zip(breakpoints[:-1], breakpoints[1:])):
        product = first.kernel_on(segment, breakpoints) * second.kernel_on(segment, breakpoints)
        if product != 0:
            total += h * sp.integrate(sp.expand(product), (theta, start, end))
    return sp.expand(total)


@dataclass(frozen=True)
class State:
    deterministic: sp.Expr
    linear: Linear


def _model(state: State, fraction, breakpoints) -> State:
    """m(u, lambda_s + fraction h) for the state u, to the orders the conditions need."""
    offset = state.deterministic - x
    noise = state.linear
    mean = m0 + m_x * offset + m_l * fraction * h + m_xx / 2 * (offset**2 + _inner(noise, noise, breakpoints))
    return State(_truncate(mean, _DETERMINISTIC_TERMS), noise.scaled(m_x + m_xx * offset))


def _weights(weights, parameters) -> list[sp.Expr]:
    """A stage's weights with rate a and the phi-functions as polynomials."""
    known = {schemes.rate: a, schemes.h: h, **parameters}
    polynomials = {function: functools.partial(_phi, k) for k, function in schemes.PHI_FUNCTIONS.items()}
    return [
        _truncate(
            sp.sympify(weight)
            .subs(known)
            .replace(lambda e: e.func in polynomials, lambda e: polynomials[e.func](e.args[0])),
            _DETERMINISTIC_TERMS + 1,
        )
        for weight in weights
    ]


def _time_integral_noise(final_slope: sp.Expr) -> Linear:
    """The frozen time-integral stage noise: int_0^h e^{a(h-l)} (x_l - x_0)_noise dl over the last stage's
    slope weight w, with (x_l - x_0)_noise = e^{a l} (K_l - K_0), K = g int e^{-a sigma} dW; here A(l) = l,
    so it is e^{a h} (h dK - dR) / w with kernel g e^{a(h - sigma)} (h - sigma) / w."""
    reduced = sp.expand(final_slope / h)  # w = h (q0 + q1 h + ...)
    leading = reduced.coeff(h, 0)
    rest = sp.expand(reduced - leading) / leading
    inverse = sp.Add(*((-rest) ** k for k in range(_KERNEL_TERMS))) / leading
    kernel = g * _exp(a * h * (1 - theta)) * (1 - theta) * inverse
    return Linear(((sp.Integer(0), sp.Integer(1), _truncate(kernel, _KERNEL_TERMS)),))


def _scheme_step(scheme: schemes.Scheme, parameters: dict, breakpoints) -> State:
    """The scheme's one step on the frozen problem."""
    start = State(x, Linear())
    models = {0: _model(start, 0, breakpoints)}
    stages, all_weights = scheme.stages, scheme.weights()
    state = start
    for index, (stage, weights) in enumerate(zip(stages, all_weights)):
        fraction = sp.sympify(stage.fraction).subs(parameters)
        value_weight, *slope = _weights(weights, parameters)
        deterministic = value_weight * models[0].deterministic
        linear = models[0].linear.scaled(value_weight)
        if stage.slope_node is not None:
            node = sp.sympify(stage.slope_node).subs(parameters)
            deterministic += slope[0] * (models[node].deterministic - models[0].deterministic)
            linear = linear + (models[node].linear + models[0].linear.scaled(-1)).scaled(slope[0])
        if stage.noise == "increment" or index == len(stages) - 1:
            # e^{a c h} (K_{ch} - K_0), K = g int e^{-a sigma} dW
            noise = Linear(((sp.Integer(0), fraction, _truncate(g * _exp(a * h * (fraction - theta)), 2)),))
        else:
            noise = _time_integral_noise(_weights(all_weights[-1], parameters)[1])
        state = State(
            _truncate(_exp(a * fraction * h) * x + b * deterministic, _DETERMINISTIC_TERMS),
            linear.scaled(b) + noise,
        )
        models[fraction] = _model(state, fraction, breakpoints)
    return state


def _exact_step() -> State:
    """One Picard step of the exact solution: x_l = e^{a l} x + b int_0^l e^{a(l-r)} m(x_r) dr + noise."""
    r = theta * h
    drift_offset = (x * a + b * m0) * r * _phi(1, a * r)  # (e^{a r} - 1) x + b m0 (e^{a r} - 1) / a
    noise_variance = g**2 * r * _phi(1, 2 * a * r)  # Var of int_0^r e^{a(r-s)} g dW
    model_mean = m0 + m_x * drift_offset + m_l * r + m_xx / 2 * (drift_offset**2 + noise_variance)
    integral = h * sp.integrate(
        _truncate(_exp(a * (h - r)) * model_mean, _DETERMINISTIC_TERMS), (theta, 0, 1)
    )
    deterministic = _truncate(_exp(a * h) * x + b * integral, _DETERMINISTIC_TERMS)
    # the noise, and b m_x int_0^h e^{a(h-r)} int_0^r e^{a(r-s)} g dW_s dr = b m_x g e^{a(h-s)} (h - s)
    kernel = g * _exp(a * h * (1 - theta)) * (1 + b * m_x * h * (1 - theta))
    return State(deterministic, Linear(((sp.Integer(0), sp.Integer(1), _truncate(kernel, _KERNEL_TERMS)),)))


def _leading(polynomial: sp.Expr, below: int) -> int | None:
    """The lowest power of h < below whose coefficient is not identically zero; None if none."""
    expanded = sp.expand(polynomial)
    return next((p for p in range(below) if sp.simplify(expanded.coeff(h, p)) != 0), None)


def _step_errors(scheme: schemes.Scheme, parameters: dict) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """(mean error, mean square of the linear parts' difference, their variance difference)."""
    fractions = {sp.Integer(0), sp.Integer(1)} | {v for v in parameters.values() if v.is_number}
    breakpoints = sorted(fractions, key=float)
    numerical, exact_state = _scheme_step(scheme, parameters, breakpoints), _exact_step()
    error = numerical.linear + exact_state.linear.scaled(-1)
    return (
        sp.expand(numerical.deterministic - exact_state.deterministic),
        _inner(error, error, breakpoints),
        _inner(numerical.linear, numerical.linear, breakpoints)
        - _inner(exact_state.linear, exact_state.linear, breakpoints),
    )


@dataclass(frozen=True)
class NonlinearOrders:
    p1: float
    p2: float
    q2: float
    mean_error_h2: sp.Expr  # the h^2 coefficient of the mean error (zero when the Ito term is matched)


@functools.cache
def nonlinear_local_orders(scheme_name: str, fractions: tuple = ()) -> NonlinearOrders:
    """Local error powers of a singlestep scheme on the frozen nonlinear problem (module docstring), capped
    at what the truncated expansion certifies. fractions: the scheme's stage parameters (c2[, c3])."""
    scheme = schemes.SCHEMES[scheme_name]
    if scheme.multistep:
        raise ValueError(f"{scheme_name} is multistep: the frozen expansion covers singlestep schemes only")
    parameters = dict(zip(scheme.parameters, map(sp.sympify, fractions), strict=True))
    mean_error, mean_square, variance_error = _step_errors(scheme, parameters)
    mean_power = _leading(mean_error, P1_CAP)
    square_power = _leading(mean_square, 2 * P2_CAP)
    variance_power = _leading(variance_error, Q2_CAP)
    if quadratic_mean_square(scheme_name, fractions) == 0:
        raise ArithmeticError(f"{scheme_name}: the quadratic parts agree, the cap p2 <= 2 does not hold")
    return NonlinearOrders(
        p1=float(P1_CAP if mean_power is None else mean_power),
        p2=float(P2_CAP if square_power is None else square_power / 2),
        q2=float(Q2_CAP if variance_power is None else variance_power),
        mean_error_h2=sp.factor(mean_error.coeff(h, 2)),
    )


def quadratic_mean_square(scheme_name: str, fractions: tuple = ()) -> sp.Expr:
    """h^4 coefficient of E[(Q_num - Q_ex)^2] for the zero-mean quadratic parts, with a = 0 (leading order).

    Q_num = (1/2) b w m_xx (xi^2 - E xi^2) for the last stage's slope weight w ~ h/(2c) and the noise
    xi = int kappa dW of the stage it evaluates the model at (none for a one-stage scheme);
    Q_ex = (1/2) b m_xx int_0^h ((g W_l)^2 - g^2 l) dl. As double Wiener integrals with symmetric kernels q,
    E[(Q_num - Q_ex)^2] = 2 int int (q_num - q_ex)^2 over the square: q_num = (1/2) b w m_xx kappa(s) kappa(t)
    and q_ex = (1/2) b m_xx g^2 (h - max(s, t))."""
    scheme = schemes.SCHEMES[scheme_name]
    parameters = dict(zip(scheme.parameters, map(sp.sympify, fractions), strict=True))
    s, t = sp.symbols("s t", nonnegative=True)
    numerical = sp.Integer(0)
    if len(scheme.stages) > 1:
        inner = scheme.stages[-2]
        leading_slope = _truncate(_weights(scheme.weights()[-1], parameters)[1].subs(a, 0), 2)
        if inner.noise == "increment":
            fraction = sp.sympify(inner.fraction).subs(parameters)
            numerical = leading_slope * g**2 * sp.Heaviside(fraction * h - s) * sp.Heaviside(fraction * h - t)
        else:
            numerical = g**2 * (h - s) * (h - t) / leading_slope
    difference = numerical - g**2 * (h - t)  # on s < t; the square is twice that triangle
    total = 2 * 2 * sp.integrate(sp.integrate((b * m_xx / 2) ** 2 * difference**2, (s, 0, t)), (t, 0, h))
    return sp.simplify(sp.series(sp.simplify(total), h, 0, 5).removeO().coeff(h, 4))


def esra_stage_fraction() -> sp.Expr:
    """The stage fraction c of ESRA: the root of the h^2 mean-error coefficient (the Ito term), derived."""
    c = sp.Symbol("c", positive=True)
    mean_error, _, _ = _step_errors(schemes.SCHEMES["esra"], {schemes.SCHEMES["esra"].parameters[0]: c})
    coefficient = sp.factor(mean_error.coeff(h, 2))
    roots = [root for root in sp.solve(coefficient, c) if root.is_positive and root <= 1]
    if len(roots) != 1:
        raise ArithmeticError(f"the ESRA mean condition {coefficient} = 0 has roots {roots} in (0, 1]")
    return roots[0]
