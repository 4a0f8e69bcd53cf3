"""Every generated coefficient against its closed form evaluated by mpmath at 50 digits.

Budget: relative error <= 1e-14 in float64 and <= 1e-6 in float32. "Relative" is measured against
max(|f|, sum_i |a_i df/da_i|): the second term is the change a one-unit relative perturbation of the
arguments causes, so near a zero crossing of f (e.g. lambda(nu) at lambda = 0) the budget is the function's
own conditioning rather than an impossible relative accuracy around zero. Results in the subnormal range
carry no relative precision at all, so the bound also admits two units of the smallest subnormal.
"""

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seeds.analysis import codegen
from seeds.solvers import _coefficients as generated
from seeds.solvers.coefficients import phi

RECORDS = codegen.all_records()
LOG_SNR_RANGE = (-math.log(80.0), -math.log(0.002))
SUBNORMAL_FLOOR = 2 * 2.0**-1074


def log_uniform(low, high):
    return st.floats(math.log(low), math.log(high)).map(math.exp)


def signed(strategy):
    return st.tuples(strategy, st.sampled_from((1.0, -1.0))).map(lambda pair: pair[0] * pair[1])


def argument_strategy(kind):
    if kind in (codegen.STEP,):
        return log_uniform(1e-12, 50.0)
    if kind == codegen.PHI_ARGUMENT:
        return signed(log_uniform(1e-12, 50.0))
    if kind == codegen.RATE:
        return st.sampled_from((1.0, -1.0))
    if kind == codegen.FRACTION:
        return st.floats(0.01, 1.0)
    if kind == codegen.RATIO:
        return log_uniform(0.1, 10.0)
    if kind == codegen.LOG_SNR:
        return st.floats(*LOG_SNR_RANGE)
    if kind == codegen.ETA:
        return st.floats(0.0, 1.0)
    if kind == codegen.SIGMA_DATA:
        return st.one_of(st.just(0.5), log_uniform(0.05, 5.0))
    if kind.startswith(codegen.KERNEL_VARIABLE):
        return st.floats(*LOG_SNR_RANGE)  # drawn as lambda, mapped to nu in `arguments_for`
    raise AssertionError(f"no strategy for argument kind {kind}")


def _mp_function(record, expression):
    symbols = [symbol for symbol, _ in record.arguments]
    return sp.lambdify(symbols, expression.rewrite(sp.exp), modules="mpmath")


def _reference(record):
    """(value, conditioning scale) at mpmath precision."""
    symbols = [symbol for symbol, _ in record.arguments]
    value = _mp_function(record, record.reference)
    partials = [_mp_function(record, sp.diff(record.reference, symbol)) for symbol in symbols]

    def evaluate(*args):
        with mpmath.workdps(50):
            points = [mpmath.mpf(a) for a in args]
            f = value(*points)
            scale = sum(abs(p * partial(*points)) for p, partial in zip(points, partials))
            return f, max(abs(f), scale)

    return evaluate


def _kernel_variable_reference(prefix):
    (record,) = [r for r in RECORDS if r.name == f"{prefix}_kernel_variable"]
    return _mp_function(record, record.reference)


def arguments_for(record, values):
    """Map lambda draws to nu for the inverse functions (nu must lie in the image of the kernel variable)."""
    kinds = [kind for _, kind in record.arguments]
    out = list(values)
    for index, kind in enumerate(kinds):
        if kind.startswith(codegen.KERNEL_VARIABLE):
            nu_of = _kernel_variable_reference(kind[len(codegen.KERNEL_VARIABLE) :])
            with mpmath.workdps(50):
                out[index] = float(
                    nu_of(mpmath.mpf(values[index]), *[mpmath.mpf(v) for v in values[index + 1 :]])
                )
    return out


def _limit_at_zero_step(record):
    step_symbols = [
        symbol for symbol, kind in record.arguments if kind in (codegen.STEP, codegen.PHI_ARGUMENT)
    ]
    return step_symbols[0] if step_symbols else None


def _records_with_ids():
    return pytest.mark.parametrize("record", RECORDS, ids=[r.name for r in RECORDS])


@_records_with_ids()
def test_float64_matches_mpmath(record):
    function = getattr(generated, record.name)
    reference = _reference(record)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.tuples(*(argument_strategy(kind) for _, kind in record.arguments)))
    def check(values):
        args = arguments_for(record, values)
        got = function(*args)
        expected, scale = reference(*args)
        assert isinstance(got, float)
        assert abs(mpmath.mpf(got) - expected) <= 1e-14 * scale + SUBNORMAL_FLOOR, (args, got, expected)

    check()


@_records_with_ids()
def test_float32_torch_matches_mpmath(record):
    function = getattr(generated, record.name)
    reference = _reference(record)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.tuples(*(argument_strategy(kind) for _, kind in record.arguments)))
    def check(values):
        args = [torch.tensor(a, dtype=torch.float32) for a in arguments_for(record, values)]
        got = function(*args)
        assert got.dtype == torch.float32
        expected, scale = reference(*[float(a) for a in args])
        assert (
            abs(mpmath.mpf(float(got)) - expected) <= 1e-6 * scale + 2 * 2.0**-149
        )  # float32 subnormal floor

    check()


STEPPED = [r for r in RECORDS if _limit_at_zero_step(r) is not None]


@pytest.mark.parametrize("record", STEPPED, ids=[r.name for r in STEPPED])
def test_zero_step_gives_the_limit(record):
    """At h = 0 (or z = 0) the generated value is the limit; exactly 0 where the limit is 0."""
    symbol = _limit_at_zero_step(record)
    generator = np.random.default_rng(7)
    symbolic_limit = sp.limit(record.reference.rewrite(sp.exp), symbol, 0, "+")
    for _ in range(5):
        values = []
        for argument, kind in record.arguments:
            values.append(0.0 if argument == symbol else float(_draw(kind, generator)))
        values = arguments_for(record, values)
        others = {a: sp.Float(v, 50) for (a, _), v in zip(record.arguments, values) if a != symbol}
        limit = symbolic_limit.subs(others)
        got = getattr(generated, record.name)(*values)
        if limit == 0:
            assert got == 0.0
        else:
            assert abs(got - float(limit)) <= 1e-15 * abs(float(limit))


def _draw(kind, generator):
    if kind == codegen.RATE:
        return generator.choice([1.0, -1.0])
    if kind == codegen.FRACTION:
        return generator.uniform(0.01, 1.0)
    if kind == codegen.RATIO:
        return math.exp(generator.uniform(math.log(0.1), math.log(10)))
    if kind == codegen.ETA:
        return generator.uniform(0.0, 1.0)
    if kind == codegen.SIGMA_DATA:
        return 0.5
    return generator.uniform(*LOG_SNR_RANGE)


def test_phi_public_helper_backends_and_errors():
    z = [-3.0, 0.0, 1e-9, 2.5]
    for k in (1, 2, 3):
        expected = [
            float(sp.Float(1, 30) / sp.factorial(k)) if v == 0 else float(codegen.phi.phi_mpmath(k, v))
            for v in z
        ]
        assert phi(k, np.array(z)) == pytest.approx(expected, rel=1e-15)
        as_tensor = phi(k, torch.tensor(z, dtype=torch.float64))
        assert as_tensor.dtype == torch.float64 and as_tensor.tolist() == pytest.approx(expected, rel=1e-15)
        assert phi(k, torch.tensor(z, dtype=torch.float32)).dtype == torch.float32
        assert phi(k, 0) == pytest.approx(1 / math.factorial(k), rel=0, abs=0)
    with pytest.raises(ValueError, match=r"phi\(k, z\) is generated for k in \[1, 2, 3\], got k = 4"):
        phi(4, 1.0)


def test_generated_functions_broadcast_like_their_arguments():
    lam = torch.linspace(-4.0, 6.0, 5, dtype=torch.float32)
    factor = generated.noise_linear_factor(lam, torch.tensor(0.3), 1.0)  # a formula that ignores lam
    assert factor.shape == lam.shape and factor.dtype == torch.float32
    assert generated.noise_linear_factor(np.zeros(3), 0.1, 1.0).shape == (3,)
