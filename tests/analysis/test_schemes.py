"""The derived schemes against the published formulas they must reproduce.

References typed here from the papers (independent of the derivation): DPM-Solver-1/2/3 (Lu et al. 2022,
singlestep, noise prediction), DPM-Solver++ singlestep and 2M (Lu et al. 2022b, data prediction), and the
SEEDS schemes as written in docs/mathematics.md ("The schemes"). All in x~ coordinates, h = lambda_t - lambda_s.
"""

import random

import pytest
import sympy as sp

from seeds.analysis import exact, schemes
from seeds.analysis.exact import sigma_data

x, l0, h = sp.symbols("x_s lambda_0 h", positive=True)
m0, m2, m3, m_prev = sp.symbols("m_s m_2 m_3 m_prev")
dK2, dK3, dK = sp.symbols("dK_2 dK_3 dK_t")
c2_value, c3_value = sp.Rational(1, 3), sp.Rational(2, 3)


def derived(parameterisation, eta, scheme_name, parameters, model_values, noise=None):
    solution = exact.exact_solution(parameterisation, eta)
    return schemes.stage_states(
        solution,
        schemes.SCHEMES[scheme_name],
        x,
        l0,
        l0 + h,
        model_values,
        noise or {},
        parameters,
    )


def assert_same(a, b):
    """Equal as functions: at random points to 40 of 50 digits (sympy's simplify is too weak for these)."""
    a, b = sp.sympify(a).rewrite(sp.exp), sp.sympify(b).rewrite(sp.exp)
    symbols = sorted((a - b).free_symbols, key=str)
    generator = random.Random(1234)
    for _ in range(3):
        point = {
            symbol: sp.Rational(generator.randint(1, 999), generator.randint(100, 999)) for symbol in symbols
        }
        left, right = a.evalf(50, subs=point), b.evalf(50, subs=point)
        assert abs(left - right) <= sp.Float("1e-40", 50) * (1 + abs(left)), (a, b, point)


def vs(offset):
    return sp.exp(-(l0 + offset))


def test_eta0_noise_is_dpm_solver_1_2_3():
    (step,) = derived("noise", 0, "seeds-1", {}, {0: m0})
    assert_same(step, x - vs(h) * (sp.exp(h) - 1) * m0)

    r1 = sp.Rational(2, 5)
    stage, final = derived("noise", 0, "seeds-2/phi_1", {schemes.c2: r1}, {0: m0, r1: m2})
    assert_same(stage, x - vs(r1 * h) * (sp.exp(r1 * h) - 1) * m0)
    assert_same(final, x - vs(h) * (sp.exp(h) - 1) * m0 - vs(h) / (2 * r1) * (sp.exp(h) - 1) * (m2 - m0))

    parameters = {schemes.c2: c2_value, schemes.c3: c3_value}
    s1, s2, final = derived("noise", 0, "seeds-3", parameters, {0: m0, c2_value: m2, c3_value: m3})
    r1, r2 = c2_value, c3_value
    assert_same(s1, x - vs(r1 * h) * (sp.exp(r1 * h) - 1) * m0)
    phi_22 = (sp.exp(r2 * h) - 1) / (r2 * h) - 1
    assert_same(s2, x - vs(r2 * h) * (sp.exp(r2 * h) - 1) * m0 - vs(r2 * h) * (r2 / r1) * phi_22 * (m2 - m0))
    phi_2 = (sp.exp(h) - 1) / h - 1
    assert_same(final, x - vs(h) * (sp.exp(h) - 1) * m0 - vs(h) / r2 * phi_2 * (m3 - m0))


def test_eta0_data_is_singlestep_dpm_solver_plus_plus_and_2m():
    (step,) = derived("data", 0, "seeds-1", {}, {0: m0})
    assert_same(step, sp.exp(-h) * x + (1 - sp.exp(-h)) * m0)

    r1 = sp.Rational(1, 2)
    stage, final = derived("data", 0, "seeds-2/phi_1", {schemes.c2: r1}, {0: m0, r1: m2})
    assert_same(stage, sp.exp(-r1 * h) * x + (1 - sp.exp(-r1 * h)) * m0)
    assert_same(final, sp.exp(-h) * x + (1 - sp.exp(-h)) * ((1 - 1 / (2 * r1)) * m0 + m2 / (2 * r1)))

    parameters = {schemes.c2: c2_value, schemes.c3: c3_value}
    s1, s2, final = derived("data", 0, "seeds-3", parameters, {0: m0, c2_value: m2, c3_value: m3})
    r1, r2 = c2_value, c3_value
    phi_22 = (sp.exp(-r2 * h) - 1) / (r2 * h) + 1
    assert_same(s2, sp.exp(-r2 * h) * x - (sp.exp(-r2 * h) - 1) * m0 + r2 / r1 * phi_22 * (m2 - m0))
    phi_2 = (sp.exp(-h) - 1) / h + 1
    assert_same(final, sp.exp(-h) * x - (sp.exp(-h) - 1) * m0 + phi_2 / r2 * (m3 - m0))

    r = sp.Rational(3, 4)  # h_previous / h
    (step,) = derived("data", 0, "multistep-2/phi_1", {schemes.previous_ratio: r}, {0: m0, -r: m_prev})
    expected = (
        sp.exp(-h) * x - (sp.exp(-h) - 1) * (1 + 1 / (2 * r)) * m0 + (sp.exp(-h) - 1) / (2 * r) * m_prev
    )
    assert_same(step, expected)


def test_eta1_data_2m_is_sde_dpm_solver_plus_plus_2m():
    r = sp.Rational(1, 1)
    (step,) = derived(
        "data", 1, "multistep-2/phi_1", {schemes.previous_ratio: r}, {0: m0, -r: m_prev}, {1: dK}
    )
    one_minus = 1 - sp.exp(-2 * h)
    expected = sp.exp(-2 * h) * x + one_minus * m0 + one_minus / (2 * r) * (m0 - m_prev) + vs(h) ** 2 * dK
    assert_same(step, expected)


@pytest.mark.parametrize("eta", [0, sp.Rational(1, 2), 1])
def test_data_2m_schemes_are_k_diffusions_two_solver_types(eta):
    """k-diffusion's DPM-Solver++(2M) SDE (sample_dpmpp_2m_sde) with its eta = eta^2, in x~: the common part
    e^{-h} e^{-eta^2 h} x + (1 - e^{-E}) m_s, E = (1 + eta^2) h, plus the slope term of "midpoint"
    (1 - e^{-E}) / (2 r) (m_s - m_prev) or of "heun" ((1 - e^{-E}) / (-E) + 1) / r (m_s - m_prev)."""
    r = sp.Rational(3, 4)
    exponent = (1 + eta**2) * h
    one_minus = 1 - sp.exp(-exponent)
    common = (
        sp.exp(-h) * sp.exp(-(eta**2) * h) * x + one_minus * m0 + sp.exp(-exponent - (1 + eta**2) * l0) * dK
    )
    slopes = {
        "multistep-2/phi_1": one_minus / (2 * r),
        "multistep-2/phi_2": (one_minus / (-exponent) + 1) / r,
    }
    for scheme_name, slope in slopes.items():
        (step,) = derived("data", eta, scheme_name, {schemes.previous_ratio: r}, {0: m0, -r: m_prev}, {1: dK})
        assert_same(step, common + slope * (m0 - m_prev))


@pytest.mark.parametrize("c2", [sp.Rational(1, 2), sp.Rational(1, 3)])
def test_seeds_noise_schemes_match_seeds_math_section_4(c2):
    c3 = c3_value
    e = sp.exp
    (one,) = derived("noise", 1, "seeds-1", {}, {0: m0}, {1: dK})
    assert_same(one, x - 2 * vs(h) * (e(h) - 1) * m0 + dK)
    stage, final = derived("noise", 1, "seeds-2/phi_1", {schemes.c2: c2}, {0: m0, c2: m2}, {c2: dK2, 1: dK})
    assert_same(stage, x - 2 * vs(c2 * h) * (e(c2 * h) - 1) * m0 + dK2)
    assert_same(final, x - 2 * vs(h) * (e(h) - 1) * (m0 + (m2 - m0) / (2 * c2)) + dK)
    _, final_phi2 = derived("noise", 1, "seeds-2/phi_2", {schemes.c2: c2}, {0: m0, c2: m2}, {c2: dK2, 1: dK})
    assert_same(
        final_phi2, x - 2 * vs(h) * (e(h) - 1) * m0 - 2 * vs(h) * (e(h) - 1 - h) / (c2 * h) * (m2 - m0) + dK
    )
    nodes = {0: m0, c2: m2, c3: m3}
    s1, s2, final = derived(
        "noise", 1, "seeds-3", {schemes.c2: c2, schemes.c3: c3}, nodes, {c2: dK2, c3: dK3, 1: dK}
    )
    assert_same(s1, x - 2 * vs(c2 * h) * (e(c2 * h) - 1) * m0 + dK2)
    bracket = (e(c3 * h) - 1) / (c3 * h) - 1
    assert_same(
        s2, x - 2 * vs(c3 * h) * (e(c3 * h) - 1) * m0 - 2 * (c3 / c2) * vs(c3 * h) * bracket * (m2 - m0) + dK3
    )
    final_bracket = (e(h) - 1) / h - 1
    assert_same(final, x - 2 * vs(h) * (e(h) - 1) * m0 - (2 / c3) * vs(h) * final_bracket * (m3 - m0) + dK)


def test_seeds_data_schemes_match_seeds_math_section_4():
    c2, c3 = c2_value, c3_value
    e = sp.exp
    (one,) = derived("data", 1, "seeds-1", {}, {0: m0}, {1: dK})
    assert_same(one, e(-2 * h) * x + (1 - e(-2 * h)) * m0 + vs(h) ** 2 * dK)
    stage, final = derived("data", 1, "seeds-2/phi_1", {schemes.c2: c2}, {0: m0, c2: m2}, {c2: dK2, 1: dK})
    assert_same(stage, e(-2 * c2 * h) * x + (1 - e(-2 * c2 * h)) * m0 + vs(c2 * h) ** 2 * dK2)
    assert_same(
        final, e(-2 * h) * x + (1 - e(-2 * h)) * ((1 - 1 / (2 * c2)) * m0 + m2 / (2 * c2)) + vs(h) ** 2 * dK
    )
    nodes = {0: m0, c2: m2, c3: m3}
    _, s2, final = derived(
        "data", 1, "seeds-3", {schemes.c2: c2, schemes.c3: c3}, nodes, {c2: dK2, c3: dK3, 1: dK}
    )
    bracket = (e(-2 * c3 * h) - 1) / (2 * c3 * h) + 1
    expected_s2 = (
        e(-2 * c3 * h) * x
        + (1 - e(-2 * c3 * h)) * m0
        + (c3 / c2) * bracket * (m2 - m0)
        + vs(c3 * h) ** 2 * dK3
    )
    assert_same(s2, expected_s2)
    final_bracket = (e(-2 * h) - 1) / (2 * h) + 1
    assert_same(
        final, e(-2 * h) * x + (1 - e(-2 * h)) * m0 + final_bracket / c3 * (m3 - m0) + vs(h) ** 2 * dK
    )


def test_edm_first_order_scheme_freezes_f():
    """SEEDS-1/edm is the exact solution with F frozen at its start value (docs/mathematics.md, "Exact solutions")."""
    (step,) = derived("edm", 1, "seeds-1", {}, {0: m0}, {1: dK})
    s, t = vs(0), vs(h)
    sd = sigma_data
    mu = sp.log(sd * sp.sqrt(vs(sp.Symbol("o")) ** 2 + sd**2) / vs(sp.Symbol("o")))
    h_mu = mu.subs("o", h) - mu.subs("o", 0)
    expected = (t**2 + sd**2) / (s**2 + sd**2) * x + 2 * t * sp.sqrt(t**2 + sd**2) / sd * (
        sp.exp(h_mu) - 1
    ) * m0
    expected += (t**2 + sd**2) * dK
    assert_same(step, expected)


def test_unknown_slope_weight_is_refused():
    with pytest.raises(ValueError, match="unknown slope weight 'phi_9'"):
        schemes.Stage(sp.Integer(1), sp.Rational(1, 2), "phi_9")


def test_taylor_weights_are_phi_functions():
    length = sp.Symbol("H", positive=True)
    for j in range(3):
        weight = schemes.taylor_term_weight(j)
        assert weight == length ** (j + 1) * schemes.PHI_FUNCTIONS[j + 1](schemes.rate * length)
