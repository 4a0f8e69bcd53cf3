"""Predicted convergence orders, from the one-step error on the linear test problem (docs/derivations.md).

Gaussian data N(0, s^2) make the exact denoiser linear, D = s^2 / (s^2 + vs^2) x~, so every model output is
m = gain(lambda) x~ and the reverse SDE dx~ = (1 + eta^2)(D - x~) dlambda + eta sqrt(2) vs dB is linear:

    x_t = Phi_ex(t, s) x_s + int_s^t Phi_ex(t, u) eta sqrt(2) vs(u) dB_u.

Every scheme is affine in the start value and the Brownian path as well, x_num = A x_s + int w_num dB, so its
one-step error is a Gaussian known in closed form:

    mean error           (A - Phi_ex) x_s                                  ~ h^p1
    mean-square error    (A - Phi_ex)^2 x_s^2 + int (w_num - w_ex)^2 du    ~ h^(2 p2)
    second-moment error  (A^2 - Phi_ex^2) x_s^2 + int w_num^2 - int w_ex^2 ~ h^q2

with h the step in lambda. Milstein's theorem turns (p1, p2) into the global strong order; the law is
Gaussian, so the mean and the second moment decide the weak order.

The expansion is power-series arithmetic in h, carried out on the sympy expressions of analysis.exact and
analysis.schemes at a numeric point (s, lambda_s, sigma_data), with 50-digit coefficients: the constants
(sqrt 2, e^{lambda_s}, logarithms in the EDM kernel variable) would make exact arithmetic swell, and 50 digits
separate cancelled coefficients (about 1e-48; zero below 1e-35) from genuine ones by many orders of magnitude.
Inside a step, u = lambda_s + theta h, so the integrands are series in h with polynomial coefficients in
theta; stage boundaries in theta depend on h where the kernel variable is not affine in lambda (EDM), which
the piecewise integration takes into account. Orders are read off at two unrelated points and must agree (a
coefficient that vanishes at one point only is an accident of that point, not an order).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import mpmath
import sympy as sp

from seeds.analysis import exact, nonlinear, phi, schemes
from seeds.analysis import methods as method_table
from seeds.analysis.exact import lam, lam_s, lam_t, sigma_data
from seeds.analysis.schemes import Scheme

_mp = mpmath.MPContext()
_mp.dps = 50
_ZERO = _mp.mpf("1e-35")
_FIRST_ORDER = 4  # series terms of the first attempt; raised one at a time until every leading power shows
_LAST_ORDER = 9  # a quantity still zero with this many terms is reported as vanishing (power inf)

data_std = sp.Symbol("s", positive=True)


@dataclass(frozen=True)
class TestPoint:
    data_std: sp.Rational
    lam_s: sp.Rational
    sigma_data: sp.Rational


# Not s = sigma_data: there the EDM network output of the test problem is F = 0 and every EDM scheme is exact.
POINTS = (
    TestPoint(sp.Rational(3, 4), sp.Rational(1, 3), sp.Rational(1, 2)),
    TestPoint(sp.Rational(7, 5), sp.Rational(-3, 4), sp.Rational(3, 10)),
)


def _number(value) -> mpmath.mpf:
    return _mp.mpf(str(sp.N(value, _mp.dps + 10)))


class Series:
    """A power series in h truncated after h^(order-1); coefficients are polynomials in theta.

    terms maps (power of h, power of theta) to the coefficient.
    """

    __slots__ = ("terms", "order")

    def __init__(self, terms: dict[tuple[int, int], mpmath.mpf], order: int):
        self.terms = {key: value for key, value in terms.items() if key[0] < order}
        self.order = order

    @classmethod
    def constant(cls, value, order: int) -> Series:
        return cls({(0, 0): _mp.mpf(value)}, order)

    @classmethod
    def step(cls, order: int) -> Series:
        """h itself."""
        return cls({(1, 0): _mp.mpf(1)}, order)

    @property
    def constant_term(self) -> mpmath.mpf:
        return self.terms.get((0, 0), _mp.mpf(0))

    def __add__(self, other) -> Series:
        if not isinstance(other, Series):
            other = Series.constant(other, self.order)
        terms = dict(self.terms)
        for key, value in other.terms.items():
            terms[key] = terms.get(key, 0) + value
        return Series(terms, min(self.order, other.order))

    __radd__ = __add__

    def __neg__(self) -> Series:
        return self * -1

    def __sub__(self, other) -> Series:
        return self + (-other)

    def __rsub__(self, other) -> Series:
        return (-self) + other

    def __mul__(self, other) -> Series:
        if not isinstance(other, Series):
            return Series({key: value * other for key, value in self.terms.items()}, self.order)
        order = min(self.order, other.order)
        terms: dict[tuple[int, int], mpmath.mpf] = {}
        for (i1, j1), a in self.terms.items():
            for (i2, j2), b in other.terms.items():
                if i1 + i2 < order:
                    key = (i1 + i2, j1 + j2)
                    terms[key] = terms.get(key, 0) + a * b
        return Series(terms, order)

    __rmul__ = __mul__

    def _around_constant(self, coefficients) -> Series:
        """sum_k coefficients[k] (self - constant)^k: a function's Taylor series about the constant term."""
        offset = self - self.constant_term
        result = Series.constant(coefficients[self.order - 1], self.order)
        for coefficient in reversed(coefficients[: self.order - 1]):
            result = result * offset + coefficient
        return result

    def exp(self) -> Series:
        base = _mp.exp(self.constant_term)
        return self._around_constant([base / _mp.factorial(k) for k in range(self.order)])

    def log(self) -> Series:
        a0 = self.constant_term
        tail = [(-1) ** (k + 1) / (k * a0**k) for k in range(1, self.order)]
        return self._around_constant([_mp.log(a0), *tail])

    def atan(self) -> Series:
        # atan(a) = atan(a0) + atan(y), y = (a - a0) / (1 + a0 a) without constant term
        a0 = self.constant_term
        reduced = (self - a0) * (1 + self * a0).power(-1)
        odd_terms = [_mp.mpf((-1) ** (k // 2)) / k if k % 2 else _mp.mpf(0) for k in range(1, self.order)]
        return reduced._around_constant([_mp.atan(a0), *odd_terms])

    def power(self, exponent) -> Series:
        if exponent == int(exponent) and exponent >= 0:
            result = Series.constant(1, self.order)
            for _ in range(int(exponent)):
                result = result * self
            return result
        a0 = self.constant_term
        if a0 == 0:
            raise ZeroDivisionError("a negative or fractional power of a series without constant term")
        coefficients = [a0**exponent * _mp.binomial(exponent, k) / a0**k for k in range(self.order)]
        return self._around_constant(coefficients)

    def phi(self, k: int) -> Series:
        if self.constant_term != 0:
            raise ValueError("phi-functions are expanded about 0 only: scheme arguments vanish with h")
        return self._around_constant(_phi_coefficients(k)[: self.order])

    def compose(self, inner: Series) -> Series:
        """self(h -> inner(h)) for a series in h alone, inner without constant term."""
        result = Series.constant(0, min(self.order, inner.order))
        for power in range(self.order - 1, -1, -1):
            result = result * inner + self.terms.get((power, 0), 0)
        return result

    def over_step(self) -> Series:
        """self / h, for a series without constant term (one term of accuracy is lost)."""
        if any(i == 0 and abs(value) > _ZERO for (i, _), value in self.terms.items()):
            raise ZeroDivisionError("dividing a series with a constant term by h")
        return Series({(i - 1, j): value for (i, j), value in self.terms.items() if i > 0}, self.order - 1)

    def times_step(self) -> Series:
        return Series({(i + 1, j): value for (i, j), value in self.terms.items()}, self.order + 1)

    def integral_over_theta(self, lower: Series, upper: Series) -> Series:
        """int_lower^upper self dtheta, the bounds series in h alone."""
        by_theta_power: dict[int, dict[tuple[int, int], mpmath.mpf]] = {}
        for (i, j), value in self.terms.items():
            by_theta_power.setdefault(j + 1, {})[(i, 0)] = value / (j + 1)
        order = min(self.order, lower.order, upper.order)
        result = Series.constant(0, order)
        upper_power, lower_power = Series.constant(1, order), Series.constant(1, order)
        for power in range(1, max(by_theta_power) + 1):
            upper_power, lower_power = upper_power * upper, lower_power * lower
            if power in by_theta_power:
                result = result + Series(by_theta_power[power], order) * (upper_power - lower_power)
        return result

    def leading_power(self) -> int | None:
        """The lowest power of h with a coefficient that does not vanish, None if none below the order."""
        powers = sorted({i for (i, _), value in self.terms.items() if abs(value) > _ZERO})
        return powers[0] if powers else None


@functools.cache
def _phi_coefficients(k: int) -> tuple[mpmath.mpf, ...]:
    return tuple(_number(c) for c in phi.phi_taylor_coefficients(k, _LAST_ORDER))


_PHI_ORDER = {function: k for k, function in schemes.PHI_FUNCTIONS.items()}


def expand(expression: sp.Expr, values: dict, order: int) -> Series:
    """A sympy expression as a Series, its symbols replaced by the Series (or numbers) in `values`."""
    if expression in values:
        value = values[expression]
        return value if isinstance(value, Series) else Series.constant(value, order)
    if not expression.free_symbols:
        return Series.constant(_number(expression), order)
    if expression.is_Pow:
        if expression.exp.free_symbols:
            raise NotImplementedError(f"symbolic exponent in {expression}")
        return expand(expression.base, values, order).power(_number(expression.exp))
    arguments = [expand(argument, values, order) for argument in expression.args]
    if expression.is_Add:
        return functools.reduce(lambda a, b: a + b, arguments)
    if expression.is_Mul:
        return functools.reduce(lambda a, b: a * b, arguments)
    if isinstance(expression, sp.exp):
        return arguments[0].exp()
    if isinstance(expression, sp.log):
        return arguments[0].log()
    if isinstance(expression, sp.atan):
        return arguments[0].atan()
    if isinstance(expression, sp.asinh):  # log(a + sqrt(a^2 + 1))
        return (arguments[0] + (arguments[0] * arguments[0] + 1).power(_mp.mpf(1) / 2)).log()
    if expression.func in _PHI_ORDER:
        return arguments[0].phi(_PHI_ORDER[expression.func])
    raise NotImplementedError(f"no series rule for {expression.func} in {expression}")


# --- the linear test problem --------------------------------------------------------------------------------


def denoiser_gain() -> sp.Expr:
    return data_std**2 / (data_std**2 + exact.vs(lam) ** 2)


def model_gain(parameterisation: str) -> sp.Expr:
    """gain(lambda) with model output = gain * x~ on the test problem."""
    noise_scale = exact.vs(lam)
    skip = sigma_data**2 / (noise_scale**2 + sigma_data**2)
    out = noise_scale * sigma_data / sp.sqrt(noise_scale**2 + sigma_data**2)
    return {
        "noise": (1 - denoiser_gain()) / noise_scale,
        "data": denoiser_gain(),
        "edm": (denoiser_gain() - skip) / out,
    }[parameterisation]


@functools.cache
def exact_growth(eta: int) -> sp.Expr:
    """G(lambda) with Phi_ex(t, u) = G(lambda_t) / G(u): the integrating factor of the linear test SDE."""
    return sp.exp((1 + eta**2) * sp.integrate(denoiser_gain() - 1, lam))


def exact_transition(eta: int, start=lam, end=lam_t) -> sp.Expr:
    growth = exact_growth(eta)
    return growth.subs(lam, end) / growth.subs(lam, start)


@dataclass(frozen=True)
class NoiseSource:
    """int_start^end kernel(lambda) dB_lambda on the Brownian motion `path`; start and end are nodes. With
    over_step the kernel is divided by h (a kernel that vanishes with h, e.g. A(lambda_t) - A(lambda))."""

    kernel: sp.Expr
    start: object
    end: object
    path: str = "shared"
    over_step: bool = False


@dataclass
class OneStep:
    """A one-step result and the exact solution, both affine: keys are "x" (the start value) or NoiseSources.

    nodes maps every node the sources name to its position theta(h) in the step (lambda = lambda_s + theta h).
    """

    numerical: dict
    exact: dict
    nodes: dict


def _combine(*terms: tuple[Series, dict]) -> dict:
    result: dict = {}
    for weight, state in terms:
        for key, value in state.items():
            result[key] = result[key] + weight * value if key in result else weight * value
    return result


def _values(point: TestPoint, order: int) -> dict:
    return {
        data_std: _number(point.data_std),
        sigma_data: _number(point.sigma_data),
        lam_s: _number(point.lam_s),
        lam_t: _number(point.lam_s) + Series.step(order),
    }


def _log_snr_at(offset: Series, point: TestPoint) -> Series:
    return _number(point.lam_s) + offset


def _exact_step(eta: int, point: TestPoint, order: int, start_node, start_offset: Series) -> dict:
    """Exact solution from start_node (at lambda_s + start_offset) to lambda_t, affine in its start value."""
    values = _values(point, order)
    values[lam] = _log_snr_at(start_offset, point)
    transition = expand(exact_transition(eta, start=lam), values, order)
    kernel = exact_transition(eta, start=lam) * exact.diffusion(eta)
    return {"x": transition, NoiseSource(kernel, start_node, 1): Series.constant(1, order)}


@functools.cache
def _derivation(scheme: Scheme, parameterisation: str, eta: int) -> tuple:
    """The sympy side of a method, derived once: (exact solution, its step scale, the scheme's weights)."""
    solution = exact.exact_solution(parameterisation, eta)
    return solution, solution.step_scale, scheme.weights()


@dataclass(frozen=True)
class ExponentialMethod:
    """A scheme of analysis.schemes run in a parameterisation's coordinates (the solvers' one-step map).

    With independent_stage_noise the stage noises are drawn independently of the final one (a mistake the
    analysis must catch), instead of as increments of the same K.
    """

    scheme: Scheme
    parameterisation: str
    eta: int
    parameters: tuple[tuple[sp.Symbol, sp.Rational], ...] = ()
    independent_stage_noise: bool = False

    @property
    def stochastic(self) -> bool:
        return self.eta != 0

    def one_step(self, point: TestPoint, order: int) -> OneStep:
        solution, step_scale, scheme_weights = _derivation(self.scheme, self.parameterisation, self.eta)
        parameters = dict(self.parameters)
        values = _values(point, order)
        step = Series.step(order)

        in_nu = expand(solution.kernel_variable, {**values, lam: _log_snr_at(step, point)}, order)
        nu_offset = in_nu - in_nu.constant_term  # nu(lambda_s + d) - nu_s as a series in d
        h_nu = nu_offset  # the same series read at d = h: the step in nu
        offsets = {0: Series.constant(0, order)}

        def offset_of(fraction) -> Series:
            """lambda - lambda_s at nu_s + fraction h_nu, by series reversion of nu."""
            if fraction not in offsets:
                target = h_nu * _number(fraction)
                slope = nu_offset.terms[(1, 0)]
                offset = target * (1 / slope)
                for _ in range(order):
                    offset = offset + (target - nu_offset.compose(offset)) * (1 / slope)
                offsets[fraction] = offset
            return offsets[fraction]

        def at(expression, fraction) -> Series:
            return expand(expression, {**values, lam: _log_snr_at(offset_of(fraction), point)}, order)

        gain = model_gain(self.parameterisation)
        if self.scheme.multistep:
            previous = sp.sympify(self.scheme.stages[-1].slope_node).subs(parameters)
            previous_lam = values[lam_s] + offset_of(previous)
            history_kernel = exact_transition(self.eta, start=lam, end=lam_s) * exact.diffusion(self.eta)
            to_start = expand(
                exact_transition(self.eta, start=lam, end=lam_s), {**values, lam: previous_lam}, order
            )
            start = {"x": to_start, NoiseSource(history_kernel, previous, 0): Series.constant(1, order)}
            models = {0: _combine((at(gain, 0), start)), previous: {"x": at(gain, previous)}}
            exact_start = previous
        else:
            start = {"x": Series.constant(1, order)}
            models = {0: _combine((at(gain, 0), start))}
            exact_start = 0

        weight_values = {**values, schemes.h: h_nu, schemes.rate: solution.rate, **parameters}
        state = start
        for index, (stage, weights) in enumerate(zip(self.scheme.stages, scheme_weights, strict=True)):
            fraction = sp.sympify(stage.fraction).subs(parameters)
            lam_stage = _log_snr_at(offset_of(fraction), point)
            linear = expand(solution.linear_factor, {**values, lam_t: lam_stage}, order)
            model = _combine((expand(weights[0], weight_values, order), models[0]))
            if stage.slope_node is not None:
                slope = expand(weights[1], weight_values, order)
                node = sp.sympify(stage.slope_node).subs(parameters)
                model = _combine(
                    (Series.constant(1, order), model), (slope, models[node]), (-slope, models[0])
                )
            path = f"stage {index}" if self.independent_stage_noise and fraction != 1 else "shared"
            last = index == len(self.scheme.stages) - 1
            if stage.noise == "time-integral" and not last:
                noise_term = self._time_integral_noise(solution, scheme_weights[-1][1], weight_values, path)
            else:
                noise = NoiseSource(solution.noise_kernel, 0, fraction, path)
                noise_term = (at(solution.noise_scale, fraction), {noise: Series.constant(1, order)})
            state = _combine((linear, start), (at(step_scale, fraction), model), noise_term)
            models[fraction] = _combine((at(gain, fraction), state))

        exact_solution = _exact_step(self.eta, point, order, exact_start, offsets.get(exact_start))
        nodes = {fraction: offset.over_step() for fraction, offset in offsets.items()}
        return OneStep(numerical=state, exact=exact_solution, nodes=nodes)

    @staticmethod
    def _time_integral_noise(solution, final_slope_weight, weight_values, path):
        """(1, {source: coefficient}) for the stage noise e^{rate nu_t} (A(t) dK - dR) / w over the step, w the
        last stage's slope weight (docs/esra.md): the kernel e^{rate nu_t} (A(lambda_t) - A(u)) k_K(u) / h
        times the coefficient (w / h)^{-1}."""
        order = weight_values[lam_t].order
        antiderivative = solution.time_integral_antiderivative
        kernel = (
            sp.exp(solution.rate * solution.kernel_variable.subs(lam, lam_t))
            * (antiderivative.subs(lam, lam_t) - antiderivative)
            * solution.noise_kernel
        )
        weight = expand(final_slope_weight, weight_values, order).over_step()
        source = NoiseSource(kernel, 0, 1, path, over_step=True)
        return Series.constant(1, order), {source: weight.power(-1)}


@dataclass(frozen=True)
class EulerMaruyama:
    """x~_t = x~_s + 2 (D_s - x~_s) h + sqrt(2) vs_s (B_t - B_s), steps in lambda."""

    stochastic = True
    eta = 1

    def one_step(self, point: TestPoint, order: int) -> OneStep:
        values = {**_values(point, order), lam: _number(point.lam_s)}
        drift = expand(2 * (denoiser_gain() - 1), values, order) * Series.step(order)
        diffusion = expand(exact.diffusion(1), values, order)
        numerical = {"x": 1 + drift, NoiseSource(sp.Integer(1), 0, 1): diffusion}
        exact_solution = _exact_step(1, point, order, 0, Series.constant(0, order))
        return OneStep(numerical=numerical, exact=exact_solution, nodes=_whole_step(order))


@dataclass(frozen=True)
class EdmHeun:
    """Heun's method on dx/dsigma = (x - D)/sigma, sigma = vs (EDM, alpha = 1): the probability-flow ODE."""

    stochastic = False
    eta = 0

    def one_step(self, point: TestPoint, order: int) -> OneStep:
        values = _values(point, order)
        start_values, end_values = {**values, lam: values[lam_s]}, {**values, lam: values[lam_t]}
        sigma_s, sigma_t = (
            expand(exact.vs(lam), start_values, order),
            expand(exact.vs(lam), end_values, order),
        )
        slope_gain = (1 - denoiser_gain()) / exact.vs(lam)  # (x - D) / sigma = slope_gain x
        slope_s = expand(slope_gain, start_values, order)
        slope_t = expand(slope_gain, end_values, order)
        euler = 1 + (sigma_t - sigma_s) * slope_s
        heun = 1 + (sigma_t - sigma_s) * (slope_s + slope_t * euler) * _mp.mpf(0.5)
        exact_solution = _exact_step(0, point, order, 0, Series.constant(0, order))
        return OneStep(numerical={"x": heun}, exact=exact_solution, nodes=_whole_step(order))


def _whole_step(order: int) -> dict:
    return {0: Series.constant(0, order), 1: Series.constant(1, order)}


# --- from one step to orders ----------------------------------------------------------------------------


def start_errors(one_step: OneStep) -> tuple[Series, Series]:
    """(A - Phi_ex, A^2 - Phi_ex^2): the x_s and x_s^2 coefficients of the mean and second-moment errors."""
    numerical, exact_value = one_step.numerical["x"], one_step.exact["x"]
    return numerical - exact_value, numerical * numerical - exact_value * exact_value


def noise_errors(one_step: OneStep, point: TestPoint, order: int) -> tuple[Series, Series]:
    """(int (w_num - w_ex)^2, int w_num^2 - int w_ex^2) over the step, summed over the Brownian paths."""
    theta = Series({(0, 0): _number(point.lam_s), (1, 1): _mp.mpf(1)}, order)  # lambda = lambda_s + theta h
    kernel_values = {**_values(point, order), lam: theta}
    kernels = {}

    def kernel(source: NoiseSource) -> Series:
        if source.kernel not in kernels:
            kernels[source.kernel] = expand(source.kernel, kernel_values, order + source.over_step)
            if source.over_step:
                kernels[source.kernel] = kernels[source.kernel].over_step()
        return kernels[source.kernel]

    sources = [key for key in (*one_step.numerical, *one_step.exact) if key != "x" and key.kernel != 0]
    node_order = sorted(one_step.nodes, key=lambda node: float(one_step.nodes[node].constant_term))
    rank = {node: index for index, node in enumerate(node_order)}

    def weight(state: dict, path: str, piece: int) -> Series:
        total = Series.constant(0, order)
        for source, coefficient in state.items():
            if source != "x" and source.kernel != 0 and source.path == path:
                if rank[source.start] <= piece < rank[source.end]:
                    total = total + coefficient * kernel(source)
        return total

    mean_square = Series.constant(0, order)
    second_moment = Series.constant(0, order)
    for path in {source.path for source in sources}:
        for piece in range(len(node_order) - 1):
            lower, upper = one_step.nodes[node_order[piece]], one_step.nodes[node_order[piece + 1]]
            numerical = weight(one_step.numerical, path, piece)
            exact_weight = weight(one_step.exact, path, piece)
            error = numerical - exact_weight
            mean_square = mean_square + (error * error).integral_over_theta(lower, upper).times_step()
            moments = numerical * numerical - exact_weight * exact_weight
            second_moment = second_moment + moments.integral_over_theta(lower, upper).times_step()
    return mean_square, second_moment


@dataclass(frozen=True)
class LocalOrders:
    p1: float  # mean error ~ h^p1
    p2: float  # root-mean-square error ~ h^p2
    q2: float  # second-moment error ~ h^q2


def _leading_powers(quantities: tuple[Series, ...], last: bool) -> tuple[float, ...] | None:
    """Leading powers of h, None while one is not visible yet; on the last attempt a quantity still zero
    through h^(order-1) counts as vanishing identically (power inf)."""
    powers = tuple(series.leading_power() for series in quantities)
    if None in powers and not last:
        return None
    return tuple(math.inf if power is None else float(power) for power in powers)


@functools.cache
def method_local_orders(method) -> LocalOrders:
    orders = [_local_orders_at(method, point) for point in POINTS]
    if len(set(orders)) != 1:
        raise ArithmeticError(f"{method}: local orders differ between test points: {orders}")
    return orders[0]


def _local_orders_at(method, point: TestPoint) -> LocalOrders:
    """Raise the series order until every leading power shows; the noise integrals (the costly part) stop
    being recomputed once theirs are found."""
    start_powers = None
    noise_powers = None if method.stochastic else (math.inf, math.inf)
    for order in range(_FIRST_ORDER, _LAST_ORDER + 1):
        one_step, last = method.one_step(point, order), order == _LAST_ORDER
        start_powers = start_powers or _leading_powers(start_errors(one_step), last)
        noise_powers = noise_powers or _leading_powers(noise_errors(one_step, point, order), last)
        if start_powers and noise_powers:
            break
    (mean, second_start), (mean_square, second_noise) = start_powers, noise_powers
    if not method.stochastic:
        return LocalOrders(p1=mean, p2=mean, q2=second_start)
    return LocalOrders(p1=mean, p2=min(mean, mean_square / 2), q2=min(second_start, second_noise))


def global_orders(local: LocalOrders, stochastic: bool) -> dict[str, float]:
    """Milstein's fundamental theorem (strong) and the weak-order counterpart for a Gaussian law."""
    if not stochastic:
        return {"strong": local.p1 - 1, "weak": local.p1 - 1}
    if local.p1 >= local.p2 + 0.5:
        strong = local.p2 - 0.5
    else:
        strong = min(local.p1 - 1, local.p2 - 0.5)
    return {"strong": strong, "weak": min(local.p1, local.q2) - 1}


# --- the methods ----------------------------------------------------------------------------------------


# SEEDS' stage fractions by number of stage parameters: c2 = 1/2, (c2, c3) = (1/3, 2/3)
_DEFAULT_FRACTIONS = {0: (), 1: method_table.HALF, 2: method_table.THIRDS}


def exponential_method(
    scheme_name: str, parameterisation: str, eta: int, fractions: tuple = ()
) -> ExponentialMethod:
    """A scheme with its stage fractions; a multistep scheme is expanded on uniform steps (r = 1)."""
    scheme = schemes.SCHEMES[scheme_name]
    values = (sp.Integer(1),) if scheme.multistep else fractions or _DEFAULT_FRACTIONS[len(scheme.parameters)]
    return ExponentialMethod(
        scheme, parameterisation, eta, tuple(zip(scheme.parameters, values, strict=True))
    )


def _analysed(row: method_table.MethodRow):
    """The one-step model of a row of the method table; None for a method the expansion cannot model."""
    if row.fresh_noise:
        return None
    if row.kind == method_table.EXPONENTIAL:
        return exponential_method(row.scheme, row.prediction, row.eta, row.fractions)
    if row.kind == method_table.DDIM:
        # DDIM without its own noise is the first-order exponential integrator in noise prediction
        return exponential_method("seeds-1", "noise", 0)
    if row.kind == method_table.EULER_MARUYAMA:
        return EulerMaruyama()
    return EdmHeun()


METHODS = {row.id: method for row in method_table.METHODS.values() if (method := _analysed(row)) is not None}


def local_error_orders(method_id: str) -> dict[str, float]:
    """p1, p2, q2 of a method of METHODS (see the module docstring)."""
    local = method_local_orders(METHODS[method_id])
    return {"p1": local.p1, "p2": local.p2, "q2": local.q2}


@functools.cache
def _predicted_orders() -> dict[str, dict[str, float]]:
    return {
        method_id: global_orders(method_local_orders(method), method.stochastic)
        for method_id, method in METHODS.items()
    }


def predicted_orders() -> dict[str, dict[str, float]]:
    """Global strong and weak orders per method id, predicted from the one-step expansion."""
    return {method_id: dict(orders) for method_id, orders in _predicted_orders().items()}


def _nonlinear_analysed(row: method_table.MethodRow) -> bool:
    """Whether analysis.nonlinear models the row: a singlestep exponential scheme with noise."""
    return row.kind == method_table.EXPONENTIAL and row.eta != 0 and not schemes.SCHEMES[row.scheme].multistep


@functools.cache
def _nonlinear_predicted_orders() -> dict[str, dict[str, float]]:
    predictions = {}
    for row in method_table.METHODS.values():
        if row.id not in METHODS or not _nonlinear_analysed(row):
            continue
        linear = method_local_orders(METHODS[row.id])
        frozen = nonlinear.nonlinear_local_orders(row.scheme, row.fractions)
        local = LocalOrders(min(linear.p1, frozen.p1), min(linear.p2, frozen.p2), min(linear.q2, frozen.q2))
        predictions[row.id] = global_orders(local, stochastic=True)
    return predictions


def nonlinear_predicted_orders() -> dict[str, dict[str, float]]:
    """Global strong and weak orders with a nonlinear model output, for the singlestep exponential SDE
    methods: the local powers of the linear problem and of analysis.nonlinear, whichever is lower (the
    nonlinear expansion certifies at most strong 1.5 and weak 2)."""
    return {method_id: dict(orders) for method_id, orders in _nonlinear_predicted_orders().items()}
