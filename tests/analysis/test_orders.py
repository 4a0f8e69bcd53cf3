"""Predicted orders (analysis.orders): the table, the textbook cases it reproduces, the mistakes it catches.

The cross-check against direct evaluation rebuilds one SEEDS-2 step from the formulas of docs/mathematics.md ("The schemes")
with mpmath quadrature, independent of the series machinery and of analysis.schemes.
"""

import dataclasses
import math

import mpmath
import pytest
import sympy as sp

from seeds.analysis import exact, orders, schemes

SDE_METHODS = (
    *(f"seeds-{k}/{p}" for k in (1, 2, 3) for p in ("noise", "data", "edm")),
    *(f"seeds-2/{p}/phi_2" for p in ("noise", "data", "edm")),
    "euler-maruyama",
    "ddpm",
    "sde-dpm-solver++-1",
    "sde-dpm-solver++-2m",
    "sde-dpm-solver++-2m/phi_2",
)
ESRA_METHODS = tuple(f"esra/{p}" for p in ("noise", "data", "edm"))
ODE_METHODS = (
    *(f"dpm-solver-{k}" for k in (1, 2, 3)),
    *(f"dpm-solver++-{k}" for k in (1, 2, 3)),
    "dpm-solver++-2m",
    "ddim",
    "edm-heun",
)


@pytest.fixture(scope="module")
def table():
    return orders.predicted_orders()


def test_table_has_every_method_with_float_orders(table):
    assert set(table) == set(SDE_METHODS) | set(ESRA_METHODS) | set(ODE_METHODS)
    for method_id, predicted in table.items():
        assert set(predicted) == {"strong", "weak"}, method_id
        assert all(isinstance(value, float) and value > 0 for value in predicted.values()), method_id


def test_ode_methods_have_equal_strong_and_weak_orders(table):
    for method_id in ODE_METHODS:
        assert table[method_id]["strong"] == table[method_id]["weak"], method_id


@pytest.mark.parametrize("k, order", [(1, 1.0), (2, 2.0), (3, 3.0)])
def test_dpm_solver_orders_equal_stage_count(table, k, order):
    assert table[f"dpm-solver-{k}"] == {"strong": order, "weak": order}
    assert table[f"dpm-solver++-{k}"] == {"strong": order, "weak": order}


@pytest.mark.parametrize(
    "scheme_name, k", [("seeds-1", 1), ("seeds-2/phi_1", 2), ("seeds-2/phi_2", 2), ("seeds-3", 3)]
)
@pytest.mark.parametrize("parameterisation", ["noise", "data", "edm"])
def test_eta0_seeds_matches_dpm_solver(table, scheme_name, k, parameterisation):
    method = orders.exponential_method(scheme_name, parameterisation, 0)
    assert not method.stochastic
    assert orders.global_orders(orders.method_local_orders(method), False) == table[f"dpm-solver-{k}"]


def test_multistep_and_heun_are_second_order(table):
    assert table["dpm-solver++-2m"] == {"strong": 2.0, "weak": 2.0}
    assert table["edm-heun"] == {"strong": 2.0, "weak": 2.0}
    assert table["ddim"] == table["dpm-solver-1"]


def test_euler_maruyama_additive_noise_is_strong_and_weak_order_one(table):
    assert orders.local_error_orders("euler-maruyama") == {"p1": 2.0, "p2": 1.5, "q2": 2.0}
    assert table["euler-maruyama"] == {"strong": 1.0, "weak": 1.0}


def test_sde_methods_are_strong_order_one(table):
    """One functional K per parameterisation cannot resolve int (t - u) dB: the noise weight is O(h) off."""
    for method_id in SDE_METHODS:
        assert orders.local_error_orders(method_id)["p2"] == 1.5, method_id
        assert table[method_id]["strong"] == 1.0, method_id


def test_weak_orders_of_sde_methods(table):
    for method_id in ("seeds-1/noise", "seeds-1/data", "seeds-1/edm", "ddpm", "sde-dpm-solver++-1"):
        assert table[method_id]["weak"] == 1.0, method_id
    for method_id in (
        "seeds-2/noise",
        "seeds-2/edm/phi_2",
        "seeds-3/noise",
        "seeds-3/data",
        "sde-dpm-solver++-2m",
        "sde-dpm-solver++-2m/phi_2",
    ):
        assert table[method_id]["weak"] == 2.0, method_id


def test_esra_is_strong_order_two_on_the_linear_problem_and_one_and_a_half_with_a_nonlinear_model(table):
    """The time-integral stage noise carries the h^(3/2) term exactly: on Gaussian data p2 = 5/2 (strong 2);
    with a nonlinear model the zero-mean curvature terms cap p2 at 2 (analysis.nonlinear): strong 1.5."""
    nonlinear = orders.nonlinear_predicted_orders()
    for method_id in ESRA_METHODS:
        assert orders.local_error_orders(method_id)["p2"] == 2.5, method_id
        assert table[method_id] == {"strong": 2.0, "weak": 2.0}, method_id
        assert nonlinear[method_id] == {"strong": 1.5, "weak": 2.0}, method_id
    for method_id in SDE_METHODS:
        if method_id in nonlinear:
            assert nonlinear[method_id]["strong"] == 1.0, method_id


def test_data_prediction_sde_mean_is_exact():
    """With eta = 1, D(x~_lambda) is a martingale along the exact reverse SDE: frozen D, exact mean."""
    assert orders.local_error_orders("seeds-1/data")["p1"] == math.inf
    assert orders.local_error_orders("seeds-1/noise")["p1"] == 2.0


def test_ddpm_is_seeds_1_data(table):
    assert table["ddpm"] == table["sde-dpm-solver++-1"] == table["seeds-1/data"]


@dataclasses.dataclass(frozen=True)
class DoubledFinalSlope(schemes.Scheme):
    def weights(self):
        *early, (value_weight, slope_weight) = super().weights()
        return (*early, (value_weight, 2 * slope_weight))


def _doubled_seeds_2(parameterisation, eta):
    scheme = schemes.SCHEMES["seeds-2/phi_1"]
    doubled = DoubledFinalSlope(f"{scheme.name}/doubled", scheme.stages, scheme.parameters)
    return orders.ExponentialMethod(doubled, parameterisation, eta, ((schemes.c2, sp.Rational(1, 2)),))


@pytest.mark.parametrize("parameterisation", ["noise", "edm"])
def test_doubled_final_slope_weight_is_caught(parameterisation):
    ode = orders.method_local_orders(_doubled_seeds_2(parameterisation, 0))
    assert orders.global_orders(ode, False) == {"strong": 1.0, "weak": 1.0}
    sde = orders.method_local_orders(_doubled_seeds_2(parameterisation, 1))
    assert sde.p1 == 2.0
    assert orders.global_orders(sde, True)["weak"] == 1.0


@pytest.mark.parametrize("scheme_name", ["seeds-2/phi_1", "seeds-3"])
@pytest.mark.parametrize("parameterisation", ["noise", "data"])
def test_independent_stage_noise_is_caught(table, scheme_name, parameterisation):
    method = dataclasses.replace(
        orders.exponential_method(scheme_name, parameterisation, 1), independent_stage_noise=True
    )
    local = orders.method_local_orders(method)
    assert local.q2 == 2.0
    assert orders.global_orders(local, True)["weak"] == 1.0
    stage_count = scheme_name[len("seeds-")]
    assert table[f"seeds-{stage_count}/{parameterisation}"]["weak"] == 2.0


def test_degenerate_point_is_why_sigma_data_differs_from_data_std():
    """At s = sigma_data the EDM output of the test problem is F = 0: every error vanishes, no order shows."""
    degenerate = orders.TestPoint(sp.Rational(1, 2), sp.Rational(1, 3), sp.Rational(1, 2))
    local = orders._local_orders_at(orders.exponential_method("seeds-1", "edm", 1), degenerate)
    assert local == orders.LocalOrders(math.inf, math.inf, math.inf)
    assert all(point.data_std != point.sigma_data for point in orders.POINTS)


def test_exact_transition_is_the_closed_form():
    s = orders.data_std
    for eta in (0, 1):
        derived = orders.exact_transition(eta, start=exact.lam_s)
        vs_s, vs_t = sp.exp(-exact.lam_s), sp.exp(-exact.lam_t)
        closed = ((vs_t**2 + s**2) / (vs_s**2 + s**2)) ** sp.Rational(1 + eta**2, 2)
        point = {s: sp.Rational(3, 7), exact.lam_s: sp.Rational(-2, 5), exact.lam_t: sp.Rational(4, 9)}
        assert abs(sp.N((derived - closed).subs(point), 40)) < 1e-35


def test_series_expansion_matches_sympy():
    step = sp.Symbol("step")
    expression = sp.sqrt(1 + sp.exp(exact.lam)) * sp.log(2 + exact.lam**2) / (3 + sp.atan(exact.lam))
    start = sp.Rational(2, 7)
    reference = sp.series(expression.subs(exact.lam, start + step), step, 0, 6).removeO()
    order = 6
    series = orders.expand(expression, {exact.lam: orders._number(start) + orders.Series.step(order)}, order)
    for power in range(order):
        coefficient = sp.N(reference.coeff(step, power), 45)
        assert abs(series.terms[(power, 0)] - orders._number(coefficient)) < 1e-40


def test_edm_stage_boundaries_depend_on_h_and_the_end_is_exact():
    one_step = orders.exponential_method("seeds-3", "edm", 1).one_step(orders.POINTS[0], 6)
    end = one_step.nodes[1]
    assert abs(end.terms[(0, 0)] - 1) < 1e-40
    assert all(abs(value) < 1e-40 for key, value in end.terms.items() if key != (0, 0))
    middle = one_step.nodes[sp.Rational(1, 3)]
    assert abs(3 * middle.terms[(0, 0)] - 1) < 1e-40
    assert abs(middle.terms[(1, 0)]) > 1e-3


def test_series_agrees_with_direct_evaluation_of_seeds_2_noise():
    """SEEDS-2 (noise, eta = 1, c2 = 1/2) as in docs/mathematics.md ("The schemes"), evaluated with mpmath at h = 1/100."""
    point, order, h = orders.POINTS[0], 7, mpmath.mpf(1) / 100
    one_step = orders.exponential_method("seeds-2/phi_1", "noise", 1).one_step(point, order)
    mean, second_moment_start = orders.start_errors(one_step)
    mean_square_noise, second_moment_noise = orders.noise_errors(one_step, point, order)
    expanded = {
        "mean": mean,
        "mean_square_noise": mean_square_noise,
        "second_moment_start": second_moment_start,
        "second_moment_noise": second_moment_noise,
    }
    with mpmath.workdps(40):
        s, l0 = mpmath.mpf(point.data_std.p) / point.data_std.q, mpmath.mpf(point.lam_s.p) / point.lam_s.q
        l2, lt = l0 + h / 2, l0 + h

        def vs(lam):
            return mpmath.exp(-lam)

        def eps_gain(lam):
            return (1 - s**2 / (s**2 + vs(lam) ** 2)) / vs(lam)

        def transition(lam):
            return (vs(lt) ** 2 + s**2) / (vs(lam) ** 2 + s**2)

        stage = 1 - 2 * vs(l2) * mpmath.expm1(h / 2) * eps_gain(l0)
        final = 1 - 2 * vs(lt) * mpmath.expm1(h) * (eps_gain(l0) + (eps_gain(l2) * stage - eps_gain(l0)))
        stage_noise_weight = -2 * vs(lt) * mpmath.expm1(h) * eps_gain(l2)

        def numerical_weight(u):
            return mpmath.sqrt(2) * vs(u) * (1 + (stage_noise_weight if u < l2 else 0))

        def exact_weight(u):
            return transition(u) * mpmath.sqrt(2) * vs(u)

        direct = {
            "mean": final - transition(l0),
            "mean_square_noise": mpmath.quad(
                lambda u: (numerical_weight(u) - exact_weight(u)) ** 2, [l0, l2, lt]
            ),
            "second_moment_start": final**2 - transition(l0) ** 2,
            "second_moment_noise": mpmath.quad(
                lambda u: numerical_weight(u) ** 2 - exact_weight(u) ** 2, [l0, l2, lt]
            ),
        }
        for name, value in direct.items():
            terms = expanded[name].terms.items()
            summed = sum(coefficient * h**power for (power, _), coefficient in terms)
            assert abs(summed - value) <= 1e-6 * abs(value), (name, summed, value)
