"""Brownian functionals B, M, P, Q of one Brownian motion in lambda-time (docs/mathematics.md, "Brownian
functionals"; their numerics in docs/derivations.md).

Each functional is the integral of a deterministic kernel against the same Brownian motion, so increments over
[a, b] are jointly Gaussian with the Gram matrix int_a^b k_i k_j du. Everything here is derived by sympy:

* closed-form Gram entries, from antiderivatives computed in the variable w = e^u (every integrand is then a
  rational function of w, which sympy integrates into logs, arctangents and rational parts);
* stable evaluation forms in (a, d = b - a) that never subtract two nearly equal numbers, obtained from the
  closed forms by dividing the difference X(w_b) - X(w_a) by (w_b - w_a) = e^a expm1(d) symbolically;
* the well-conditioned Legendre-moment route for a Brownian tree: moment variances, the exact
  parent -> children map, the conditional (bridge) law, and the degree / interval-length rule for
  expanding the kernels in Legendre polynomials;
* `generated_source()`, the runtime source pasted into `seeds.solvers._coefficients`.
"""

from __future__ import annotations

import functools
import math

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.printing.pycode import PythonCodePrinter

FUNCTIONALS = ("B", "M", "P", "Q")

u = sp.Symbol("u", real=True)
sigma_data = sp.Symbol("sigma_data", positive=True)
interval_start, interval_end = sp.symbols("a b", real=True)
half_length = sp.Symbol("h", positive=True)
midpoint = sp.Symbol("m", real=True)
fraction = sp.Symbol("r", positive=True)
rescaled_time = sp.Symbol("v", real=True)
child_time = sp.Symbol("w_child", real=True)

_w = sp.Symbol("w", positive=True)
_w_start, _w_end = sp.symbols("w_a w_b", positive=True)
_expm1_length = sp.Symbol("E_d", real=True)

_BACKEND_NAMES = {"absolute", "atan", "exp", "expm1", "log", "log1p", "sqrt", "tan", "where"}

LEGENDRE_TOLERANCE = 1e-14
# Eight moments per tree node: the per-node bridge is a 16 x 8 product, and the derived rule then allows
# leaves of length ~0.064 in lambda, i.e. ~170 leaves across the EDM range (sigma 80 -> 0.002).
LEGENDRE_DEGREE = 7


def kernels() -> dict[str, sp.Expr]:
    """Kernel of each functional: K_b - K_a = int_a^b kernel(u) dB_u."""
    return {
        "B": sp.Integer(1),
        "M": sp.sqrt(2) * sp.exp(-u),
        "P": sp.sqrt(2) * sp.exp(u),
        "Q": sp.sqrt(2) * sp.exp(-u) / (sp.exp(-2 * u) + sigma_data**2),
    }


def gram_pairs() -> list[tuple[str, str]]:
    """The ten distinct entries of the symmetric 4x4 Gram matrix, in row-major upper-triangular order."""
    return [(first, second) for i, first in enumerate(FUNCTIONALS) for second in FUNCTIONALS[i:]]


@functools.cache
def _antiderivative_in_w(first: str, second: str) -> sp.Expr:
    integrand = sp.simplify((kernels()[first] * kernels()[second]).subs(u, sp.log(_w)) / _w)
    antiderivative = sp.integrate(integrand, _w)
    if antiderivative.has(sp.Integral, sp.RootSum):
        raise ValueError(f"sympy found no elementary antiderivative for {first}{second}")
    if sp.simplify(sp.diff(antiderivative, _w) - integrand) != 0:
        raise ValueError(f"antiderivative of {first}{second} does not differentiate back")
    return antiderivative


def antiderivative(first: str, second: str) -> sp.Expr:
    """F(u) with F' = k_first k_second."""
    return _antiderivative_in_w(first, second).subs(_w, sp.exp(u))


def gram_entry(first: str, second: str, a=interval_start, b=interval_end) -> sp.Expr:
    """Closed form of int_a^b k_first k_second du as F(b) - F(a)."""
    primitive = antiderivative(first, second)
    return primitive.subs(u, b) - primitive.subs(u, a)


def gram(a=interval_start, b=interval_end) -> sp.Matrix:
    """Closed-form 4x4 Gram (covariance) matrix of the (B, M, P, Q) increments over [a, b]."""
    index = {name: i for i, name in enumerate(FUNCTIONALS)}
    matrix = sp.zeros(4, 4)
    for first, second in gram_pairs():
        entry = gram_entry(first, second, a, b)
        matrix[index[first], index[second]] = entry
        matrix[index[second], index[first]] = entry
    return matrix


def _at(expression: sp.Expr, w_value: sp.Symbol) -> sp.Expr:
    return expression.subs(_w, w_value)


def _difference(expression: sp.Expr) -> sp.Expr:
    """X(w_b) - X(w_a) with the factor (w_b - w_a) = w_a expm1(d) divided out symbolically.

    The quotient must have coefficients of one sign in (w_a, w_b) so that evaluating it adds, never cancels.
    """
    numerator, denominator = sp.fraction(sp.together(_at(expression, _w_end) - _at(expression, _w_start)))
    quotient, remainder = sp.div(sp.expand(numerator), _w_end - _w_start, _w_end)
    if remainder != 0:
        raise ValueError(f"{expression} difference does not vanish at w_b = w_a")
    signs = {sp.sign(coefficient) for coefficient in sp.Poly(quotient, _w_start, _w_end).coeffs()}
    if len(signs) != 1 or not signs <= {1, -1}:
        raise ValueError(f"{expression}: difference quotient {quotient} mixes signs and would cancel")
    return sp.factor(_w_start * _expm1_length * quotient / denominator)


def _split_terms(primitive: sp.Expr) -> dict[str, list[tuple[sp.Expr, sp.Expr]]]:
    kinds: dict[str, list[tuple[sp.Expr, sp.Expr]]] = {"log": [], "atan": [], "rational": []}
    for term in sp.Add.make_args(sp.expand_log(primitive, force=True)):
        coefficient, factor = term.as_independent(_w, as_Add=False)
        if isinstance(factor, sp.log):
            kinds["log"].append((coefficient, factor.args[0]))
        elif isinstance(factor, sp.atan):
            kinds["atan"].append((coefficient, factor.args[0]))
        elif factor.has(sp.log, sp.atan):
            raise ValueError(f"unrecognised antiderivative term {term}")
        else:
            kinds["rational"].append((coefficient, factor))
    return {kind: terms for kind, terms in kinds.items() if terms}


def _stable_log_difference(terms: list[tuple[sp.Expr, sp.Expr]]) -> sp.Expr:
    # Collect sum c_i log X_i into c log Y with Y increasing, so that Y(b)/Y(a) - 1 >= 0 and log1p of it is
    # perfectly conditioned for every interval length (a decreasing Y would need log1p near -1).
    scale = next(
        (
            candidate
            for candidate, _ in terms
            if all(sp.simplify(coefficient / candidate).is_integer for coefficient, _ in terms)
        ),
        None,
    )
    if scale is None:
        raise ValueError(f"log terms {terms} do not combine into one rational argument")
    argument = sp.Mul(*(factor ** sp.simplify(coefficient / scale) for coefficient, factor in terms))
    if scale.is_negative:
        scale, argument = -scale, 1 / argument
    argument = sp.cancel(argument)
    degree = sp.simplify(_w * sp.diff(argument, _w) / argument)
    if not degree.has(_w):
        return scale * degree * (interval_end - interval_start)
    return scale * log1p(sp.factor(_difference(argument) / _at(argument, _w_start)))


def _stable_atan_difference(terms: list[tuple[sp.Expr, sp.Expr]]) -> sp.Expr:
    if len(terms) != 1:
        raise ValueError(f"expected one arctangent term, got {terms}")
    coefficient, argument = terms[0]
    product = _at(argument, _w_start) * _at(argument, _w_end)
    if not product.is_positive:
        raise ValueError("atan(x) - atan(y) = atan((x - y)/(1 + x y)) needs x y > -1")
    return coefficient * sp.atan(_difference(argument) / (1 + product))


def stable_gram_entry(first: str, second: str) -> sp.Expr:
    """Gram entry as an expression in a, b, sigma_data that is accurate for every interval length.

    expm1(b - a) appears where the closed form F(b) - F(a) would cancel; no branch is needed because the
    antiderivative of each entry is of a single kind (log, arctangent or rational in e^u).
    """
    kinds = _split_terms(_antiderivative_in_w(first, second))
    if len(kinds) != 1:
        raise ValueError(
            f"{first}{second}: mixed antiderivative kinds {sorted(kinds)} could cancel each other"
        )
    kind, terms = next(iter(kinds.items()))
    if kind == "log":
        stable = _stable_log_difference(terms)
    elif kind == "atan":
        stable = _stable_atan_difference(terms)
    else:
        stable = _difference(sp.Add(*(coefficient * factor for coefficient, factor in terms)))
    return stable.subs(
        {
            _expm1_length: expm1(interval_end - interval_start),
            _w_start: sp.exp(interval_start),
            _w_end: sp.exp(interval_end),
        }
    )


# --- Legendre-moment route (docs/derivations.md) -----------------------------------------------------------
#
# On an interval with midpoint m and half-length h let v = (u - m)/h in [-1, 1] and I_j = int P_j(v) dB_u.


def legendre_moment_variances(degree: int) -> list[sp.Expr]:
    """Var(I_j) = int P_j(v(u))^2 du for j = 0..degree; orthogonality of P_j makes the I_j independent."""
    return [
        sp.integrate(half_length * sp.legendre(j, rescaled_time) ** 2, (rescaled_time, -1, 1))
        for j in range(degree + 1)
    ]


def legendre_moment_covariance(degree: int) -> sp.Matrix:
    """Full covariance of (I_0..I_degree), derived rather than assumed diagonal."""
    return sp.Matrix(
        degree + 1,
        degree + 1,
        lambda i, j: sp.integrate(
            half_length * sp.legendre(i, rescaled_time) * sp.legendre(j, rescaled_time),
            (rescaled_time, -1, 1),
        ),
    )


def _child_parent_times() -> dict[str, sp.Expr]:
    # Parent time v as a function of the child's own rescaled time; the split sits at v = 2r - 1.
    return {
        "left": -1 + fraction * (child_time + 1),
        "right": 2 * fraction - 1 + (1 - fraction) * (child_time + 1),
    }


@functools.cache
def legendre_child_maps(degree: int) -> dict[str, sp.Matrix]:
    """T with I_j(parent) = sum_k T_left[j, k] I_k(left) + T_right[j, k] I_k(right), exactly.

    P_j of the parent time restricted to a child is a polynomial of degree j in the child's time, so its
    Legendre expansion there stops at k = j: the map is lower triangular and involves no truncation.
    """
    maps = {}
    for side, parent_time in _child_parent_times().items():
        entries = sp.zeros(degree + 1, degree + 1)
        for j in range(degree + 1):
            restricted = sp.Poly(sp.legendre(j, parent_time), child_time)
            for k in range(j + 1):
                primitive = (restricted * sp.Poly(sp.legendre(k, child_time), child_time)).integrate()
                entries[j, k] = sp.factor(
                    sp.Rational(2 * k + 1, 2) * (primitive.eval(1) - primitive.eval(-1))
                )
            expansion = sum(entries[j, k] * sp.legendre(k, child_time) for k in range(j + 1))
            if sp.expand(expansion - restricted.as_expr()) != 0:
                raise ValueError(f"Legendre expansion of P_{j} on the {side} child is not exact")
        maps[side] = entries
    return maps


@functools.cache
def legendre_unit_child_map(degree: int) -> sp.Matrix:
    """A = [A_left | A_right] mapping the children's unit-variance moments to the parent's.

    Z_j = I_j / sqrt(Var I_j); the children have half-lengths r h and (1 - r) h. A A^T = I is checked,
    which is the statement that the parent's unit moments are again independent standard normals. Var(I_k)
    is linear in the half-length, so a child's variance is its length fraction times the parent-length one.
    """
    variances = legendre_moment_variances(degree)
    child_scale = {"left": fraction, "right": 1 - fraction}
    blocks = []
    for side, entries in legendre_child_maps(degree).items():
        block = sp.zeros(degree + 1, degree + 1)
        for j in range(degree + 1):
            for k in range(j + 1):
                unit_ratio = sp.sqrt(sp.cancel(variances[k] / variances[j]))
                block[j, k] = entries[j, k] * sp.sqrt(child_scale[side]) * unit_ratio
        blocks.append(block)
    unit_map = blocks[0].row_join(blocks[1])
    if (unit_map * unit_map.T - sp.eye(degree + 1)).applyfunc(sp.expand) != sp.zeros(degree + 1, degree + 1):
        raise ValueError("parent unit moments are not orthonormal combinations of the children's")
    return unit_map


def legendre_bridge_law(degree: int) -> tuple[sp.Matrix, sp.Matrix]:
    """Law of the children's unit moments X given the parent's unit moments y = A X, X ~ N(0, I).

    Mean A^T (A A^T)^{-1} y and covariance I - A^T (A A^T)^{-1} A; with A A^T = I these are A^T y and the
    orthogonal projection I - A^T A onto the null space of A (symmetric, idempotent, hence PSD).
    """
    unit_map = legendre_unit_child_map(degree)
    gain = unit_map.T * (unit_map * unit_map.T).applyfunc(sp.expand).inv()
    return gain, (sp.eye(2 * (degree + 1)) - gain * unit_map).applyfunc(sp.expand)


def legendre_kernel_coefficient(name: str, j: int) -> sp.Expr:
    """c_j(m, h) with k(m + h v) = sum_j c_j P_j(v): the functional over the interval is sum_j c_j I_j.

    Evaluated in closed form where sympy can (B, M, P); the Q kernel leaves an unevaluated integral, which the
    runtime computes by Gauss-Legendre quadrature (exact up to aliasing of coefficients far below truncation).
    """
    kernel = kernels()[name].subs(u, midpoint + half_length * rescaled_time)
    return sp.Rational(2 * j + 1, 2) * sp.integrate(
        kernel * sp.legendre(j, rescaled_time), (rescaled_time, -1, 1), conds="none"
    )


_tanh_variable = sp.Symbol("t", real=True)


def _in_tanh(expression: sp.Expr) -> sp.Expr:
    """Rewrite a function of u as a polynomial in t = tanh(u + log sigma_data), or fail."""
    scaled_square = sp.Symbol("y", positive=True)  # sigma_data^2 e^{2u} = (1 + t)/(1 - t)
    in_square = sp.simplify(expression.rewrite(sp.exp).subs(sp.exp(u), sp.sqrt(scaled_square) / sigma_data))
    in_tanh = sp.factor(
        sp.simplify(in_square.subs(scaled_square, (1 + _tanh_variable) / (1 - _tanh_variable)))
    )
    if in_tanh.has(u, sigma_data) or not in_tanh.is_polynomial(_tanh_variable):
        raise ValueError(f"{expression} is not a polynomial in tanh(u + log sigma_data)")
    return sp.expand(in_tanh)


@functools.cache
def kernel_derivative_ratio(name: str, order: int) -> sp.Expr:
    """k^(order)/k as a polynomial in t = tanh(u + log sigma_data), t in (-1, 1).

    The Q kernel is sech(u + log sigma_data)/(sqrt(2) sigma_data); the exponential kernels have constant
    logarithmic derivatives. With R_1 = k'/k and t' both polynomials in t, R_(n+1) = R_1 R_n + t' dR_n/dt
    stays one, which gives a bound uniform in u and sigma_data.
    """
    if order == 0:
        return sp.Integer(1)
    kernel = kernels()[name]
    logarithmic_derivative = _in_tanh(sp.diff(kernel, u) / kernel)
    if order == 1:
        return logarithmic_derivative
    tanh_rate = _in_tanh(sp.diff(sp.tanh(u + sp.log(sigma_data)), u))
    previous = kernel_derivative_ratio(name, order - 1)
    return sp.expand(logarithmic_derivative * previous + tanh_rate * sp.diff(previous, _tanh_variable))


@functools.cache
def kernel_derivative_ratio_bound(name: str, order: int) -> float:
    """max over t in [-1, 1] of |k^(order)/k|."""
    polynomial = kernel_derivative_ratio(name, order)
    if not polynomial.has(_tanh_variable):
        return float(abs(polynomial))
    candidates = [sp.Integer(-1), sp.Integer(1)]
    candidates += [
        root for root in sp.real_roots(sp.Poly(sp.diff(polynomial, _tanh_variable), _tanh_variable))
    ]
    return max(float(abs(polynomial.subs(_tanh_variable, c))) for c in candidates if abs(c) <= 1)


def legendre_truncation_bound(name: str, degree: int, half: float) -> float:
    """Bound on ||k - (degree-p Legendre projection of k)|| / ||k|| in L2 over an interval of half-length h.

    The projection is the best L2 approximation, so its error is at most that of the Taylor polynomial about
    the midpoint: |k^(p+1)(xi)| (h |v|)^(p+1)/(p+1)!, with |k^(p+1)| <= C_(p+1) max k and
    int v^(2p+2) dv/2 = 1/(2p+3); dividing by ||k|| >= min k and max k / min k <= exp(2 h C_1) gives
    C_(p+1) exp(2 h C_1) h^(p+1) / ((p+1)! sqrt(2p+3)).
    """
    order = degree + 1
    growth = kernel_derivative_ratio_bound(name, 1)
    return (
        kernel_derivative_ratio_bound(name, order)
        * math.exp(2 * half * growth)
        * half**order
        / (math.factorial(order) * math.sqrt(2 * degree + 3))
    )


@functools.cache
def legendre_max_half_length(degree: int, tolerance: float = LEGENDRE_TOLERANCE) -> float:
    """Largest half-length whose truncation bound is <= tolerance for every kernel (exact for B)."""

    def worst(half):
        return max(legendre_truncation_bound(name, degree, float(half)) for name in ("M", "P", "Q"))

    # the bound increases with the half-length; bisect in log space in plain floats (the bound itself is a
    # float computation), keeping the lower end so the returned length always meets the tolerance
    low, high = math.log(1e-12), math.log(10.0)
    for _ in range(200):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if worst(math.exp(middle)) <= tolerance else (low, middle)
    return math.exp(low)


# --- Code generation ---------------------------------------------------------------------------------------


class _BackendPrinter(PythonCodePrinter):
    """Prints maths through `seeds.solvers._backend` names so one source serves floats, numpy, torch."""

    def _module_format(self, fqn, register=True):
        module, _, name = fqn.rpartition(".")
        if module == "math" and name in _BACKEND_NAMES:
            return name
        if fqn == "math.pi":
            return fqn
        raise ValueError(f"{fqn} has no elementwise backend counterpart")


def _function_source(name: str, arguments: list[sp.Symbol], expression: sp.Expr, doc: str) -> str:
    printer = _BackendPrinter()
    replacements, (reduced,) = sp.cse(expression, symbols=sp.numbered_symbols("t"))
    lines = ["@elementwise", f"def {name}({', '.join(map(str, arguments))}):", f'    """{doc}"""']
    lines += [f"    {symbol} = {printer.doprint(value)}" for symbol, value in replacements]
    lines.append(f"    return {printer.doprint(reduced)}")
    return "\n".join(lines)


def gram_function_name(first: str, second: str) -> str:
    return f"gram_{first}{second}"


def kernel_function_name(name: str) -> str:
    return f"legendre_kernel_{name}"


def generated_source(degree: int = LEGENDRE_DEGREE, tolerance: float = LEGENDRE_TOLERANCE) -> str:
    """Runtime source for `seeds.solvers._coefficients` (its imports are provided by that module)."""
    parts = [
        "# Brownian functionals (analysis/brownian.py): Gram entries over [a, b], stable for every length;\n"
        f"# Legendre moments up to degree LEGENDRE_DEGREE resolve kernels to {tolerance:g} (L2, relative)\n"
        "# on intervals of half-length <= LEGENDRE_MAX_HALF_LENGTH.\n"
        f"LEGENDRE_DEGREE = {degree}\n"
        f"LEGENDRE_MAX_HALF_LENGTH = {legendre_max_half_length(degree, tolerance)!r}"
    ]
    endpoints = [interval_start, interval_end, sigma_data]
    for first, second in gram_pairs():
        doc = (
            f"int_a^b k_{first} k_{second} du: covariance of the {first} and {second} increments over [a, b]."
        )
        parts.append(
            _function_source(
                gram_function_name(first, second), endpoints, stable_gram_entry(first, second), doc
            )
        )
    for name, kernel in kernels().items():
        doc = f"Kernel of {name}: {name}_b - {name}_a = int_a^b kernel(u) dB_u."
        parts.append(_function_source(kernel_function_name(name), [u, sigma_data], kernel, doc))
    return "\n\n\n".join(parts) + "\n"
