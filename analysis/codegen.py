"""Writes solvers/_coefficients.py from the derivations.

Run as `make coefficients` or `seeds coefficients`.

Each generated function is an `@elementwise` function of floats, numpy arrays or torch tensors. The file is
assembled from GeneratedFunction records, which also carry the unstabilised sympy expression the tests
evaluate with mpmath as the reference.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.printing.str import StrPrinter

from seeds.analysis import exact, methods, orders, phi, schemes, stability

OUTPUT = Path(__file__).resolve().parent.parent / "solvers" / "_coefficients.py"
COMMAND = "make coefficients (seeds coefficients)"

# Argument kinds tell the tests which values an argument takes.
STEP, LOG_SNR, RATE, FRACTION, RATIO, ETA, SIGMA_DATA, PHI_ARGUMENT = (
    "step",
    "log_snr",
    "rate",
    "fraction",
    "ratio",
    "eta",
    "sigma_data",
    "phi_argument",
)
KERNEL_VARIABLE = "kernel_variable:"  # followed by the parameterisation prefix whose nu it is

lam_s = sp.Symbol("lam_s", real=True)
step = sp.Symbol("h", positive=True)
nu = sp.Symbol("nu", real=True)


@dataclass(frozen=True)
class GeneratedFunction:
    name: str
    arguments: tuple[tuple[sp.Symbol, str], ...]
    expression: sp.Expr  # what the generated code evaluates (stabilised, may call phi_k)
    reference: sp.Expr  # the plain closed form, for high-precision checking
    doc: str

    def source(self) -> str:
        names = ", ".join(str(symbol) for symbol, _ in self.arguments)
        body = _Printer().doprint(use_accurate_forms(self.expression))
        return f'@elementwise\ndef {self.name}({names}):\n    """{self.doc}"""\n    return {body}\n'


class Select(sp.Function):
    """Elementwise choice between two forms of one quantity; printed as a call to `where`."""

    @classmethod
    def eval(cls, condition, if_true, if_false):
        if condition is sp.true:
            return if_true
        if condition is sp.false:
            return if_false
        return None


class _Printer(StrPrinter):
    """Prints plain Python calls to the names seeds.solvers._backend exports."""

    def _print_Select(self, expr):
        return "where({}, {}, {})".format(*(self._print(argument) for argument in expr.args))

    def _print_Abs(self, expr):
        return f"absolute({self._print(expr.args[0])})"

    def _print_Rational(self, expr):
        return f"({expr.p}/{expr.q})"

    def _print_Exp1(self, expr):
        return "math.e"

    def _print_Pi(self, expr):
        return "math.pi"

    def _print_Pow(self, expr, rational=False):
        if expr.exp == sp.Rational(1, 2):
            return f"sqrt({self._print(expr.base)})"
        if expr.exp == -sp.Rational(1, 2):
            return f"(1/sqrt({self._print(expr.base)}))"
        return super()._print_Pow(expr, rational)


def use_accurate_forms(expression: sp.Expr) -> sp.Expr:
    """Replace every e^x - 1 by expm1(x) and log(1 + x) by log1p(x): both lose all digits for small x."""

    def is_exp_minus_one(node):
        return node.is_Add and -1 in node.args and any(isinstance(term, sp.exp) for term in node.args)

    def to_expm1(node):
        exponential = next(term for term in node.args if isinstance(term, sp.exp))
        rest = [term for term in node.args if term not in (exponential, -1)]
        return sp.Add(expm1(exponential.args[0]), *rest, evaluate=False)

    def is_log_one_plus(node):
        return isinstance(node, sp.log) and node.args[0].is_Add and 1 in node.args[0].args

    def to_log1p(node):
        return log1p(sp.Add(*(term for term in node.args[0].args if term != 1)))

    return expression.replace(is_exp_minus_one, to_expm1).replace(is_log_one_plus, to_log1p)


# ----------------------------------------------------------------------------------------- phi functions


def _phi_source(k: int) -> str:
    threshold = phi.series_threshold(k)
    coefficients = phi.phi_taylor_coefficients(k, phi.series_terms(k))
    closed = phi.phi_closed_form(k).subs(sp.exp(phi.z), expm1(phi.z) + 1)
    closed_text = _Printer().doprint(closed.subs(phi.z, sp.Symbol("z_far")))
    horner = _Printer().doprint(sp.Float(coefficients[-1], 17))
    for coefficient in reversed(coefficients[:-1]):
        horner = f"{_Printer().doprint(sp.Float(coefficient, 17))} + z_near * ({horner})"
    safe = max(threshold, 1.0)
    return (
        "@elementwise\n"
        f"def phi_{k}(z):\n"
        f'    """phi_{k}(z) = sum_j z^j/(j+{k})!: expm1 closed form for |z| > {threshold}, '
        f'{len(coefficients)} Taylor terms below."""\n'
        f"    near = absolute(z) <= {threshold!r}\n"
        f"    z_far = where(near, {safe!r}, z)\n"
        + ("    z_near = where(near, z, 0.0)\n" if len(coefficients) > 1 else "")
        + f"    return where(near, {horner}, {closed_text})\n"
    )


def phi_records() -> list[GeneratedFunction]:
    return [
        GeneratedFunction(
            f"phi_{k}",
            ((phi.z, PHI_ARGUMENT),),
            schemes.PHI_FUNCTIONS[k](phi.z),
            phi.phi_closed_form(k),
            "",
        )
        for k in phi.PHI_ORDERS
    ]


# ------------------------------------------------------------------------------ parameterisation pieces


def stable_difference(
    expression: sp.Expr, variable: sp.Symbol, start: sp.Expr, increment: sp.Expr
) -> sp.Expr:
    """f(start + increment) - f(start), rewritten so that nothing cancels when the increment is small.

    Recurses through sums, constant multiples, products, powers, log and atan down to exponentials of
    linear functions (difference = value * expm1(slope * increment)) and linear terms.
    """
    f = sp.expand_log(expression, force=True)
    at_start = f.subs(variable, start)
    at_end = f.subs(variable, start + increment)
    if not f.has(variable):
        return sp.Integer(0)
    if sp.Poly(f, variable).is_linear if f.is_polynomial(variable) else False:
        return sp.expand(at_end - at_start)
    if f.is_Add:
        return sp.Add(*(stable_difference(term, variable, start, increment) for term in f.args))
    if f.is_Mul:
        constant, rest = f.as_independent(variable, as_Add=False)
        if constant != 1:
            return constant * stable_difference(rest, variable, start, increment)
        first, *others = f.args
        remainder = sp.Mul(*others)
        return stable_difference(first, variable, start, increment) * remainder.subs(
            variable, start + increment
        ) + first.subs(variable, start) * stable_difference(remainder, variable, start, increment)
    if isinstance(f, sp.exp):
        slope = sp.diff(f.args[0], variable)
        if slope.has(variable):
            raise NotImplementedError(f"exponent of {f} is not linear in {variable}")
        return at_start * expm1(slope * increment)
    if isinstance(f, sp.log):
        # log(g_t/g_s): log1p of the small relative change, or the plain ratio once it is far from 1
        inner = f.args[0]
        relative_change = stable_difference(inner, variable, start, increment) / inner.subs(variable, start)
        plain = sp.log(inner.subs(variable, start + increment) / inner.subs(variable, start))
        return Select(sp.Abs(relative_change) < sp.Rational(1, 2), log1p(relative_change), plain)
    if isinstance(f, sp.atan):
        inner = f.args[0]
        product = inner.subs(variable, start) * inner.subs(variable, start + increment)
        return sp.atan(stable_difference(inner, variable, start, increment) / (1 + product))
    if f.is_Pow and not f.exp.has(variable):
        base = f.base
        relative = stable_difference(base, variable, start, increment) / base.subs(variable, start)
        return at_start * expm1(f.exp * log1p(relative))
    raise NotImplementedError(f"no stable difference rule for {f}")


PARAMETERISATION_VARIANTS = {
    # generated prefix: (parameterisation, eta, parameter symbol, its kind)
    "noise": ("noise", sp.Symbol("eta", positive=True), ETA),
    "data": ("data", sp.Symbol("eta", positive=True), ETA),
    "edm": ("edm", sp.Integer(1), SIGMA_DATA),
    "edm_ode": ("edm", sp.Integer(0), SIGMA_DATA),
}


def parameterisation_records(prefix: str) -> list[GeneratedFunction]:
    name, eta_value, kind = PARAMETERISATION_VARIANTS[prefix]
    solution = exact.exact_solution(name, eta_value)
    parameter = eta_value if kind == ETA else exact.sigma_data
    lam = exact.lam
    nu_of_lam = solution.kernel_variable
    lam_of_nu = solution.log_snr_of(nu)
    increment_reference = nu_of_lam.subs(lam, lam_s + step) - nu_of_lam.subs(lam, lam_s)
    linear_factor = sp.simplify(solution.linear_factor.subs({exact.lam_s: lam_s, exact.lam_t: lam_s + step}))
    parameters = ((parameter, kind),)
    where = f"parameterisation {name}, eta = {eta_value}"
    return [
        GeneratedFunction(
            f"{prefix}_kernel_variable",
            ((lam, LOG_SNR),) + parameters,
            nu_of_lam,
            nu_of_lam,
            f"nu(lambda): the model kernel is e^(-rate nu) dnu ({where}).",
        ),
        GeneratedFunction(
            f"{prefix}_kernel_variable_increment",
            ((lam_s, LOG_SNR), (step, STEP)) + parameters,
            stable_difference(nu_of_lam, lam, lam_s, step),
            increment_reference,
            f"nu(lam_s + h) - nu(lam_s), free of cancellation for small h ({where}).",
        ),
        GeneratedFunction(
            f"{prefix}_log_snr",
            ((nu, KERNEL_VARIABLE + prefix),) + parameters,
            lam_of_nu,
            lam_of_nu,
            f"lambda(nu), the inverse of the kernel variable ({where}).",
        ),
        GeneratedFunction(
            f"{prefix}_linear_factor",
            ((lam_s, LOG_SNR), (step, STEP)) + parameters,
            linear_factor,
            linear_factor,
            f"Phi(t, s), the integrating factor from lambda_s to lambda_s + h ({where}).",
        ),
        GeneratedFunction(
            f"{prefix}_step_scale",
            ((lam, LOG_SNR),) + parameters,
            solution.step_scale,
            solution.step_scale,
            f"Factor of int_0^h e^(rate (h - tau)) m dtau in the model term, at lambda_t ({where}).",
        ),
        GeneratedFunction(
            f"{prefix}_noise_scale",
            ((lam, LOG_SNR),) + parameters,
            solution.noise_scale,
            solution.noise_scale,
            f"Factor of the noise-process increment in the step noise, at lambda_t ({where}).",
        ),
    ]


def time_integral_records(prefix: str) -> list[GeneratedFunction]:
    """The pieces of ESRA's time-integral stage noise e^{rate nu_t} (A(t) dK - dR) (docs/esra.md)."""
    name, eta_value, kind = PARAMETERISATION_VARIANTS[prefix]
    solution = exact.exact_solution(name, eta_value)
    parameter = eta_value if kind == ETA else exact.sigma_data
    lam = exact.lam
    arguments = ((lam, LOG_SNR), (parameter, kind))
    where = f"parameterisation {name}, eta = {eta_value}"
    scale = sp.simplify(sp.exp(solution.rate * solution.kernel_variable))
    return [
        GeneratedFunction(
            f"{prefix}_time_integral_antiderivative",
            arguments,
            solution.time_integral_antiderivative,
            solution.time_integral_antiderivative,
            f"A(lambda), A' = model kernel * noise_scale: the stage noise's weight on dK ({where}).",
        ),
        GeneratedFunction(
            f"{prefix}_time_integral_scale",
            arguments,
            scale,
            scale,
            f"e^(rate nu(lambda)), at lambda_t the factor of A(t) dK - dR in the stage noise ({where}).",
        ),
    ]


# ESRA runs in these parameterisations (the EDM ODE has no noise to integrate)
TIME_INTEGRAL_VARIANTS = ("noise", "data", "edm")

# ----------------------------------------------------------------------------------------- scheme weights


def _scheme_prefix(name: str) -> str:
    return name.replace("-", "_").replace("/", "_")


def scheme_records(name: str) -> list[GeneratedFunction]:
    scheme = schemes.SCHEMES[name]
    kinds = tuple(
        (symbol, RATIO if symbol == schemes.previous_ratio else FRACTION) for symbol in scheme.parameters
    )
    arguments = ((schemes.h, STEP), (schemes.rate, RATE)) + kinds
    records = []
    for index, weights in enumerate(scheme.weights(), start=1):
        for label, weight in zip(("value", "slope"), weights):
            records.append(
                GeneratedFunction(
                    f"{_scheme_prefix(name)}_stage_{index}_{label}_weight",
                    arguments,
                    weight,
                    weight.rewrite(sp.exp),
                    f"{name}, stage {index}: weight on the model {label} (times step_scale), in nu-steps h.",
                )
            )
    return records


@functools.cache
def all_records() -> tuple[GeneratedFunction, ...]:
    records = phi_records()
    for prefix in PARAMETERISATION_VARIANTS:
        records += parameterisation_records(prefix)
    for prefix in TIME_INTEGRAL_VARIANTS:
        records += time_integral_records(prefix)
    for name in schemes.SCHEMES:
        records += scheme_records(name)
    return tuple(records)


def _scheme_table() -> str:
    lines = ["SCHEME_WEIGHTS = {"]
    for name, scheme in schemes.SCHEMES.items():
        prefix = _scheme_prefix(name)
        stages = []
        for index, weights in enumerate(scheme.weights(), start=1):
            labels = ("value", "slope")[: len(weights)]
            stages.append("(" + "".join(f"{prefix}_stage_{index}_{label}_weight, " for label in labels) + ")")
        lines.append(f"    {name!r}: ({', '.join(stages)},),")
    lines.append("}")
    lines.append(
        "# Per scheme: stage fractions and slope nodes (None: a first-order stage), from its parameters."
    )
    lines.append("SCHEME_STAGES = {")
    for name, scheme in schemes.SCHEMES.items():
        arguments = ", ".join(str(symbol) for symbol in scheme.parameters)
        stages = ", ".join(
            f"({_Printer().doprint(stage.fraction)}, "
            f"{'None' if stage.slope_node is None else _Printer().doprint(stage.slope_node)})"
            for stage in scheme.stages
        )
        lines.append(f"    {name!r}: lambda {arguments}: ({stages},),")
    lines.append("}")
    lines.append(
        "# Per scheme: the noise each stage adds ('increment' or 'time-integral', analysis.schemes.Stage)."
    )
    noises = ", ".join(
        f"{name!r}: {tuple(stage.noise for stage in scheme.stages)!r}"
        for name, scheme in schemes.SCHEMES.items()
    )
    lines.append(f"SCHEME_STAGE_NOISES = {{{noises}}}")
    parameter_names = ", ".join(
        f"{name!r}: {tuple(str(symbol) for symbol in scheme.parameters)!r}"
        for name, scheme in schemes.SCHEMES.items()
    )
    lines.append(f"SCHEME_PARAMETERS = {{{parameter_names}}}")
    rates = ", ".join(
        f"{prefix!r}: {exact.exact_solution(name, eta).rate}"
        for prefix, (name, eta, _) in PARAMETERISATION_VARIANTS.items()
    )
    lines.append(f"KERNEL_RATES = {{{rates}}}")
    return "\n".join(lines) + "\n"


def _literal(value) -> str:
    """Python source of a table value; sympy numbers become floats, an infinite order math.inf."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(key)}: {_literal(item)}" for key, item in value.items()) + "}"
    if isinstance(value, tuple):
        items = [_literal(item) for item in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, sp.Basic):
        value = float(value)
    if isinstance(value, float) and value == float("inf"):
        return "math.inf"
    return repr(value)


def _method_table() -> str:
    lines = [
        "# Every method, declared once in seeds.analysis.methods, with its predicted orders (seeds.analysis.orders):",
        "# global strong and weak orders and the local error powers p1, p2, q2; None where the one-step expansion",
        "# has no model of the method. nonlinear_orders: the orders with a nonlinear model output",
        "# (seeds.analysis.nonlinear), for the singlestep exponential SDE methods; None for the others.",
        "# largest_stable_step: the largest step in lambda whose mean factor on a point-mass data law stays <= 1",
        "# (seeds.analysis.stability; math.inf: none up to its LARGEST_STEP), for the singlestep exponential methods.",
        "METHOD_TABLE = {",
    ]
    for row in methods.METHODS.values():
        fields = {name: getattr(row, name) for name in row.__dataclass_fields__ if name != "id"}
        fields["orders"] = (
            {**orders.predicted_orders()[row.id], **orders.local_error_orders(row.id)}
            if row.id in orders.METHODS
            else None
        )
        fields["nonlinear_orders"] = orders.nonlinear_predicted_orders().get(row.id)
        fields["largest_stable_step"] = (
            stability.largest_stable_step(row.id) if stability.has_amplification(row.id) else None
        )
        lines.append(f"    {row.id!r}: {_literal(fields)},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def generate() -> str:
    header = (
        f'"""Solver coefficients generated from the derivations in seeds.analysis.\n\n'
        f"GENERATED FILE - DO NOT EDIT. Regenerate with: {COMMAND}.\n"
        f'"""\n\n'
        "import math  # noqa: F401  (printed expressions may use math.e / math.pi)\n\n"
        "from seeds.solvers._backend import (  # noqa: F401\n"
        "    absolute,\n    asinh,\n    atan,\n    elementwise,\n    exp,\n    expm1,\n    log,\n    log1p,\n"
        "    sqrt,\n    tan,\n    where,\n)\n\n\n"
    )
    blocks = [_phi_source(k) for k in phi.PHI_ORDERS]
    blocks += [record.source() for record in all_records() if not record.name.startswith("phi_")]
    blocks.append(_scheme_table())
    blocks.append(_method_table())
    blocks += _extra_sources()
    return header + "\n\n".join(blocks)


def _extra_sources() -> list[str]:
    try:
        from seeds.analysis import brownian
    except ImportError:
        return []
    return [brownian.generated_source()]


def main() -> int:
    text = generate()
    temporary = OUTPUT.with_suffix(".py.tmp")
    temporary.write_text(text)
    temporary.replace(OUTPUT)
    print(f"wrote {OUTPUT} ({len(text.splitlines())} lines)")
    return 0
