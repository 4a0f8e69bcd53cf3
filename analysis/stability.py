"""Stability at large steps: the one-step amplification on a point-mass data law (docs/esra.md, "Stability").

With the data law a point mass at 0 the denoiser is D = 0, so every model output is linear in the state:
eps = x~ / sigma in noise prediction, D = 0 in data prediction, F = -skip x~ / out in EDM prediction. This is
the stiffest linear test problem (a Gaussian of variance s^2 has the noise gain sigma / (sigma^2 + s^2) <=
1 / sigma), and its exact reverse-SDE mean contracts: E[x~_t | x~_s] = e^{-(1 + eta^2) h} x~_s for a step h in
lambda. A scheme's step is then x~_t = R x~_s + noise, with R a closed function of h (and, in EDM prediction,
of lambda_s); the mean of n steps is the product of the n factors, so a grid whose steps have |R| > 1 grows
the state where the SDE shrinks it, and noise then amplifies with it.

The noise form evaluates eps at the stage's smaller sigma_c = sigma_s e^{-c h}, where eps has the Lipschitz
constant 1 / sigma_c, with a weight proportional to sigma_s: R grows like e^{c h} / c. The data form keeps
D = 0 and its integrating factor is the exact e^{-2h}. `largest_stable_step` finds the step beyond which
|R| > 1 (infinity where |R| <= 1 on the whole region checked).
"""

from __future__ import annotations

import functools
import math

import mpmath
import sympy as sp

from seeds.analysis import methods as method_table
from seeds.analysis import orders, schemes
from seeds.analysis.exact import exact_solution, lam, sigma_data

step = sp.Symbol("h", positive=True)  # the step in lambda
lam_start = sp.Symbol("lambda_s", real=True)
EDM_SIGMA_DATA = sp.Rational(1, 2)  # the EDM preconditioning's sigma_data (seeds.solvers.models)
# the region checked: steps up to LARGEST_STEP in lambda, starting anywhere in sigma in [1e-3, 1e3]
LARGEST_STEP = 12.0
START_SIGMAS = tuple(10.0**k for k in (-3, -2, -1, 0, 1, 2, 3))
_SCAN = 240  # steps scanned in (0, LARGEST_STEP] before the crossing is refined by bisection


def has_amplification(method_id: str) -> bool:
    """Whether `amplification` covers the method: a singlestep exponential scheme (a multistep step depends on
    the previous one, and the other solver classes are not derived here)."""
    row = method_table.METHODS[method_id]
    return row.kind == method_table.EXPONENTIAL and not schemes.SCHEMES[row.scheme].multistep


@functools.cache
def amplification(method_id: str) -> sp.Expr:
    """R(h, lambda_s) of a singlestep exponential method's mean step on the point-mass law."""
    if not has_amplification(method_id):
        raise ValueError(f"{method_id}: the amplification is defined for singlestep exponential methods")
    row = method_table.METHODS[method_id]
    scheme = schemes.SCHEMES[row.scheme]
    parameters = dict(zip(scheme.parameters, row.fractions))
    solution = exact_solution(row.prediction, row.eta)
    # the linear test problem's model gain at data variance 0: D = 0
    gain = orders.model_gain(row.prediction).subs({orders.data_std: 0, sigma_data: EDM_SIGMA_DATA})
    nu = solution.kernel_variable
    nu_start = nu.subs(lam, lam_start)
    h_nu = nu.subs(lam, lam_start + step) - nu_start
    values = {0: gain.subs(lam, lam_start)}
    model_symbols = {0: sp.Symbol("m_0")}
    for stage in scheme.stages[:-1]:
        fraction = sp.sympify(stage.fraction).subs(parameters)
        model_symbols[fraction] = sp.Symbol(f"m_{fraction}")
    states = schemes.stage_states(
        solution, scheme, sp.Integer(1), lam_start, lam_start + step, model_symbols, {}, parameters
    )
    known = {model_symbols[0]: values[0]}
    for stage, state in zip(scheme.stages[:-1], states[:-1]):
        fraction = sp.sympify(stage.fraction).subs(parameters)
        stage_lam = solution.log_snr_of(nu_start + fraction * h_nu)
        known[model_symbols[fraction]] = gain.subs(lam, stage_lam) * state.subs(known)
    result = states[-1].subs(known).subs(sigma_data, EDM_SIGMA_DATA)
    return result.rewrite(sp.exp)


def _largest_factor(method_id: str):
    """max over the start sigmas of |R(h, lambda_s)|, as a function of h."""
    function = sp.lambdify((step, lam_start), amplification(method_id), "mpmath")
    starts = [-math.log(sigma) for sigma in START_SIGMAS]
    return lambda h: max(abs(function(mpmath.mpf(h), mpmath.mpf(start))) for start in starts)


@functools.cache
def largest_stable_step(method_id: str) -> float:
    """The largest step h in lambda with |R| <= 1 for every step up to it and every start sigma checked;
    math.inf where no step up to LARGEST_STEP exceeds 1."""
    factor = _largest_factor(method_id)
    tolerance = 1e-12  # |R| = 1 to rounding is not growth (e.g. R = e^{-2h} at tiny h)
    previous = 0.0
    for k in range(1, _SCAN + 1):
        h = LARGEST_STEP * k / _SCAN
        if factor(h) > 1 + tolerance:
            low, high = previous, h
            for _ in range(60):
                middle = (low + high) / 2
                low, high = (middle, high) if factor(middle) <= 1 + tolerance else (low, middle)
            return low
        previous = h
    return math.inf
