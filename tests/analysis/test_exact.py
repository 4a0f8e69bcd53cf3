"""Symbolic checks of the derived exact solutions (docs/mathematics.md, "Exact solutions")."""

import pytest
import sympy as sp

from seeds.analysis import exact
from seeds.analysis.exact import lam, lam_s, lam_t, sigma_data, u

ETAS = [sp.Integer(1), sp.Integer(0), sp.Rational(1, 2)]
CASES = [(p, e) for p in ("noise", "data") for e in ETAS] + [("edm", sp.Integer(1)), ("edm", sp.Integer(0))]


@pytest.mark.parametrize(("parameterisation", "eta"), CASES)
def test_solution_satisfies_the_sde_drift(parameterisation, eta):
    """d/dt of Phi(t,s) x_s + int_s^t Phi(t,l) b(l) m(l) dl equals a(t) X + b(t) m(t) (additive noise)."""
    solution = exact.exact_solution(parameterisation, eta)
    model = sp.Function("m")
    x_start = sp.Symbol("x_s")
    deterministic = solution.linear_factor * x_start + solution.model_term(model)
    lhs = sp.diff(deterministic, lam_t).doit()
    rhs = (solution.drift_linear * deterministic + solution.drift_model * model(lam)).subs(lam, lam_t)
    assert sp.simplify(sp.expand(lhs - rhs)) == 0
    assert sp.simplify(solution.linear_factor.subs(lam_t, lam_s)) == 1


@pytest.mark.parametrize(("parameterisation", "eta"), CASES)
def test_noise_kernel_solves_the_linear_equation(parameterisation, eta):
    """k(t, u) = Phi(t, u) g(u): dk/dt = a(t) k and k(u, u) = g(u)."""
    solution = exact.exact_solution(parameterisation, eta)
    kernel = solution.noise_scale.subs(lam, lam_t) * solution.noise_kernel.subs(lam, u)
    assert sp.simplify(sp.diff(kernel, lam_t) - solution.drift_linear.subs(lam, lam_t) * kernel) == 0
    assert sp.simplify(kernel.subs(lam_t, u) - solution.diffusion.subs(lam, u)) == 0


@pytest.mark.parametrize(("parameterisation", "eta"), CASES)
def test_model_kernel_is_exponential_in_the_kernel_variable(parameterisation, eta):
    solution = exact.exact_solution(parameterisation, eta)
    dnu = sp.diff(solution.kernel_variable, lam)
    assert sp.simplify(solution.kernel - sp.exp(-solution.rate * solution.kernel_variable) * dnu) == 0
    # model_scale * kernel reproduces Phi(t, l) b(l)
    product = solution.model_scale.subs(lam, lam_t) * solution.kernel
    expected = solution.linear_factor.subs(lam_s, lam) * solution.drift_model
    assert sp.simplify(product - expected) == 0


def _vs(x):
    return sp.exp(-x)


def test_noise_variances_match_seeds_math_section_2():
    h = lam_t - lam_s
    noise = exact.exact_solution("noise", 1).noise_variance()
    assert sp.simplify(noise - (_vs(lam_s) ** 2 - _vs(lam_t) ** 2)) == 0
    assert sp.simplify(noise - _vs(lam_t) ** 2 * (sp.exp(2 * h) - 1)) == 0
    data = exact.exact_solution("data", 1).noise_variance()
    assert sp.simplify(data - _vs(lam_t) ** 2 * (1 - sp.exp(-2 * h))) == 0
    # EDM: sigma = t = vs, noise variance (t^2 + sd^2)(s^2 - t^2)/(s^2 + sd^2)
    edm = exact.exact_solution("edm", 1).noise_variance()
    s, t = _vs(lam_s), _vs(lam_t)
    expected = (t**2 + sigma_data**2) * (s**2 - t**2) / (s**2 + sigma_data**2)
    assert sp.simplify(edm - expected) == 0


def test_edm_first_order_step_matches_seeds_math():
    """With F frozen: x_t = (t^2+sd^2)/(s^2+sd^2) x_s + (2 t sqrt(t^2+sd^2)/sd)(e^{h_mu}-1) F."""
    solution = exact.exact_solution("edm", 1)
    s, t = _vs(lam_s), _vs(lam_t)
    assert sp.simplify(solution.linear_factor - (t**2 + sigma_data**2) / (s**2 + sigma_data**2)) == 0
    frozen = solution.model_term(lambda _: 1).doit()
    mu = sp.log(sigma_data * sp.sqrt(_vs(lam) ** 2 + sigma_data**2) / _vs(lam))
    h_mu = mu.subs(lam, lam_t) - mu.subs(lam, lam_s)
    expected = 2 * t * sp.sqrt(t**2 + sigma_data**2) / sigma_data * (sp.exp(h_mu) - 1)
    assert sp.simplify(sp.expand(frozen - expected)) == 0
    # and the kernel variable is mu up to a constant
    assert sp.simplify(sp.expand_log(solution.kernel_variable - mu, force=True)).free_symbols <= {sigma_data}


def test_noise_processes_are_m_p_q():
    """For eta = 1 the stochastic kernels are those of M, P and Q (docs/mathematics.md, "Brownian functionals")."""
    root2 = sp.sqrt(2)
    kernels = {p: exact.exact_solution(p, 1).noise_kernel for p in exact.PARAMETERISATIONS}
    assert sp.simplify(kernels["noise"] - root2 * sp.exp(-lam)) == 0
    assert sp.simplify(kernels["data"] - root2 * sp.exp(lam)) == 0
    assert sp.simplify(kernels["edm"] - root2 * sp.exp(-lam) / (sp.exp(-2 * lam) + sigma_data**2)) == 0


def test_unknown_parameterisation_is_refused():
    with pytest.raises(ValueError, match="unknown parameterisation 'velocity'"):
        exact.exact_solution("velocity", 1)
