"""The one-step amplification on a point-mass data law (analysis.stability, docs/esra.md "Stability"): the
closed forms, the runtime step reproducing them, and the generated largest stable steps."""

import math

import mpmath
import pytest
import sympy as sp

from seeds.analysis import stability
from seeds.analysis.methods import METHODS
from seeds.solvers import make_method
from seeds.solvers.methods import METHOD_TABLE

h = stability.step
ANALYSED = [method_id for method_id in METHODS if stability.has_amplification(method_id)]


def test_data_prediction_is_exact_on_the_point_mass():
    """D = 0 leaves only the integrating factor, the exact e^{-2h} of the reverse SDE."""
    for method_id in ("esra/data", "seeds-3/data", "seeds-2/data"):
        assert sp.simplify(stability.amplification(method_id) - sp.exp(-2 * h)) == 0


def test_noise_prediction_grows_like_exp_of_the_stage_fraction():
    """With eps = x / sigma the stage is evaluated at sigma_s e^{-c h} with a weight ~ sigma_s:
    R = [e^{(1+c)h} - (1+c) e^h - e^{ch} + 1 + 2c] e^{-h} / c for the two-stage schemes, ~ e^{ch} / c."""
    c = sp.Rational(3, 4)
    closed = (sp.exp((1 + c) * h) - (1 + c) * sp.exp(h) - sp.exp(c * h) + 1 + 2 * c) * sp.exp(-h) / c
    derived = stability.amplification("esra/noise")
    assert sp.simplify(derived - closed) == 0
    assert sp.limit(derived * c * sp.exp(-c * h), h, sp.oo) == 1


@pytest.mark.parametrize("method_id", ANALYSED)
def test_the_runtime_step_reproduces_the_derived_factor(method_id):
    """The solver's own step on the point mass (Method.point_mass_factors) against R(h, lambda_s)."""
    row = METHODS[method_id]
    options = dict(row.selected_by)
    method = make_method(row.name, **options)
    function = sp.lambdify((h, stability.lam_start), stability.amplification(method_id), "mpmath")
    for sigma_s, sigma_t in ((80.0, 5.0), (2.0, 0.05), (0.02, 0.002)):
        (runtime,) = method.point_mass_factors([sigma_s, sigma_t])
        derived = float(mpmath.re(function(math.log(sigma_s / sigma_t), -math.log(sigma_s))))
        assert runtime == pytest.approx(derived, rel=1e-9, abs=1e-14)


@pytest.mark.parametrize("method_id", ["esra/noise", "esra/edm", "seeds-3/noise", "seeds-2/edm"])
def test_the_generated_limit_is_where_a_step_first_grows(method_id):
    limit = METHOD_TABLE[method_id]["largest_stable_step"]
    assert 1.0 < limit < 2.0
    method = make_method(METHODS[method_id].name, **dict(METHODS[method_id].selected_by))
    below = max(map(abs, method.point_mass_factors([1e-3 * math.exp(0.99 * limit), 1e-3])))
    above = max(map(abs, method.point_mass_factors([1e-3 * math.exp(1.01 * limit), 1e-3])))
    assert below <= 1.0 < above


def test_data_prediction_and_the_ode_solvers_never_grow():
    for method_id in ("esra/data", "seeds-3/data", "sde-dpm-solver++-1", "dpm-solver-3", "dpm-solver++-2"):
        assert METHOD_TABLE[method_id]["largest_stable_step"] == math.inf


def test_every_method_reports_finite_point_mass_factors():
    """Method.point_mass_factors runs any method's own step (multistep, churn and the Euler-Maruyama update
    included); Euler-Maruyama's factor is 1 - 2h, growing beyond h = 1 as explicit Euler does."""
    sigmas = [80.0, 20.0, 2.0, 0.2, 0.002]
    for name in sorted({row.name for row in METHODS.values()}):
        factors = make_method(name).point_mass_factors(sigmas)
        assert len(factors) == 4 and all(math.isfinite(f) for f in factors), name
    euler = make_method("euler-maruyama").point_mass_factors(sigmas)
    steps = [math.log(a / b) for a, b in zip(sigmas, sigmas[1:])]
    assert euler == pytest.approx([1 - 2 * h for h in steps], rel=1e-12)
