"""The frozen-coefficient expansion with a nonlinear model (analysis.nonlinear, docs/esra.md): it derives
ESRA's stage fraction, and it tells the schemes apart by the conditions the linear problem cannot see."""

import sympy as sp

from seeds.analysis import nonlinear


def test_the_ito_condition_fixes_the_stage_fraction_at_three_quarters():
    assert nonlinear.esra_stage_fraction() == sp.Rational(3, 4)


def test_esra_at_three_quarters_reaches_the_caps():
    orders = nonlinear.nonlinear_local_orders("esra", (sp.Rational(3, 4),))
    assert (orders.p1, orders.p2, orders.q2) == (3.0, 2.0, 3.0)
    assert orders.mean_error_h2 == 0


def test_esra_at_another_fraction_misses_the_ito_term():
    """The curvature term (1/2) m_xx E[Z^2] of the stage is (2c/3) of the exact one: at c = 1 (the sketch
    in the issue that proposed the scheme) the mean error keeps b g^2 m_xx h^2 / 12, so p1 = 2 and the
    global strong order is 1."""
    b, g, m_xx = nonlinear.b, nonlinear.g, nonlinear.m_xx
    at_one = nonlinear.nonlinear_local_orders("esra", (sp.Integer(1),))
    assert at_one.p1 == 2.0
    assert sp.simplify(at_one.mean_error_h2 - b * g**2 * m_xx / 12) == 0
    at_half = nonlinear.nonlinear_local_orders("esra", (sp.Rational(1, 2),))
    assert sp.simplify(at_half.mean_error_h2 + b * g**2 * m_xx / 12) == 0


def test_seeds_matches_the_ito_term_but_not_the_pathwise_term():
    """An increment stage noise has E[xi^2] = g^2 c h, which matches the Ito term for every c, but its
    h^(3/2) term is off: p2 = 3/2."""
    for name, fractions in (("seeds-2/phi_1", (sp.Rational(1, 2),)), ("seeds-2/phi_1", (sp.Rational(2, 3),))):
        orders = nonlinear.nonlinear_local_orders(name, fractions)
        assert (orders.p1, orders.p2, orders.q2) == (3.0, 1.5, 3.0), (name, fractions)


def test_seeds_1_misses_every_second_order_mean_term():
    orders = nonlinear.nonlinear_local_orders("seeds-1")
    assert (orders.p1, orders.p2, orders.q2) == (2.0, 1.5, 2.0)
    a, b, g, x, m0, m_x, m_l, m_xx = (
        nonlinear.a,
        nonlinear.b,
        nonlinear.g,
        nonlinear.x,
        nonlinear.m0,
        nonlinear.m_x,
        nonlinear.m_l,
        nonlinear.m_xx,
    )
    # minus the exact step's (b / 2) (L0 m) h^2 with L0 = d/dlambda + drift d/dx + (g^2 / 2) d^2/dx^2
    expected = -b * (m_l + (a * x + b * m0) * m_x + g**2 * m_xx / 2) / 2
    assert sp.simplify(orders.mean_error_h2 - expected) == 0


def test_the_quadratic_parts_always_differ():
    """(1/2) m_xx times a rank-one quadratic form of the stage noise never equals the exact full-rank one:
    an h^4 mean-square term for every scheme, so p2 <= 2 with a nonlinear model."""
    b, g, m_xx = nonlinear.b, nonlinear.g, nonlinear.m_xx
    unit = b**2 * g**4 * m_xx**2
    assert nonlinear.quadratic_mean_square("esra", (sp.Rational(3, 4),)) == unit / 120
    assert nonlinear.quadratic_mean_square("seeds-1") == unit / 12
    assert nonlinear.quadratic_mean_square("seeds-2/phi_1", (sp.Rational(1, 2),)) == 5 * unit / 12
