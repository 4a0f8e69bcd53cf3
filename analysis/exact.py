"""Exact solutions of the reverse diffusion SDE in scaled coordinates (docs/mathematics.md, "Coordinates" and "Exact solutions").

In x~ = x/alpha and lambda = log(alpha/sigma) (vs = e^{-lambda}), the eta-family of reverse SDEs is

    dx~ = (1 + eta^2) (D - x~) dlambda + eta sqrt(2) vs dB,

and each parameterisation writes D through the model output m (eps, D itself, or the EDM network F):
the drift becomes a(lambda) x~ + b(lambda) m. Variation of constants then gives the exact solution
x~_t = Phi(t,s) x~_s + int Phi(t,l) b(l) m(l) dl + int Phi(t,u) g(u) dB_u. This module derives, for each
parameterisation, the integrating factor Phi, the variable nu in which the model kernel Phi(t,l) b(l) dl
becomes a pure exponential e^{-/+ nu} dnu, and the kernel of the stochastic integral.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp

lam, lam_s, lam_t, u = sp.symbols("lam lam_s lam_t u", real=True)
v = sp.Symbol("v", positive=True)  # vs = sigma/alpha = e^{-lambda}, the variable the kernels are rational in
sigma_data = sp.Symbol("sigma_data", positive=True)
eta = sp.Symbol("eta", nonnegative=True)

PARAMETERISATIONS = ("noise", "data", "edm")
# lambda = -20 is sigma = 4.9e8, beyond every noise level in use (`ExactSolution.time_integral_antiderivative`)
TIME_INTEGRAL_ANCHOR = 20


def vs(x):
    return sp.exp(-x)


def model_drift(parameterisation: str, eta_value=eta) -> tuple[sp.Expr, sp.Expr]:
    """(a, b) with drift (1 + eta^2)(D - x~) = a(lambda) x~ + b(lambda) m, m the model output."""
    x, m = sp.symbols("x m")
    s = vs(lam)
    denoised = {
        "noise": x - s * m,
        "data": m,
        "edm": sigma_data**2 / (s**2 + sigma_data**2) * x
        + s * sigma_data / sp.sqrt(s**2 + sigma_data**2) * m,
    }[parameterisation]
    drift = sp.expand((1 + eta_value**2) * (denoised - x))
    return sp.simplify(drift.coeff(x)), sp.simplify(drift.coeff(m))


def diffusion(eta_value=eta) -> sp.Expr:
    return eta_value * sp.sqrt(2) * vs(lam)


def _in_v(expression: sp.Expr) -> sp.Expr:
    """Rewrite a function of lambda as a function of v = e^{-lambda}."""
    return sp.simplify(expression.subs(lam, -sp.log(v)))


def _in_lambda(expression: sp.Expr, at=lam) -> sp.Expr:
    return sp.simplify(expression.subs(v, sp.exp(-at)))


@dataclass(frozen=True)
class ExactSolution:
    """The derived pieces of the exact one-step solution for one parameterisation and one eta.

    linear_factor(lambda_s, lambda_t)        Phi(t, s)
    model_scale(lambda_t) * kernel(lambda)   Phi(t, lambda) b(lambda), kernel > 0
    kernel_variable(lambda)                  nu with kernel(lambda) dlambda = e^{-rate * nu} dnu
    rate                                     +1 (kernel decays in nu) or -1 (kernel grows in nu)
    noise_scale(lambda_t) * noise_kernel(u)  Phi(t, u) g(u), the kernel of the stochastic integral

    So the model term over a step of length h = nu_t - nu_s is
    step_scale(lambda_t) * int_0^h e^{rate (h - tau)} m(nu_s + tau) dtau,
    with step_scale = model_scale e^{-rate nu}.
    """

    parameterisation: str
    eta: sp.Expr
    drift_linear: sp.Expr
    drift_model: sp.Expr
    diffusion: sp.Expr
    linear_factor: sp.Expr
    model_scale: sp.Expr
    kernel: sp.Expr
    kernel_variable: sp.Expr
    rate: int
    noise_scale: sp.Expr
    noise_kernel: sp.Expr

    @functools.cached_property
    def step_scale(self) -> sp.Expr:
        return sp.simplify(self.model_scale * sp.exp(-self.rate * self.kernel_variable))

    def log_snr_of(self, nu: sp.Expr) -> sp.Expr:
        """lambda as a function of the kernel variable: the inverse of kernel_variable."""
        target = sp.Symbol("nu_target", real=True)
        inverses = sp.solve(sp.Eq(target, self.kernel_variable), lam)
        if len(inverses) != 1:
            raise ArithmeticError(f"kernel variable {self.kernel_variable} has no unique inverse: {inverses}")
        return inverses[0].subs(target, nu)

    def model_term(self, model: sp.Function) -> sp.Expr:
        """int_{lambda_s}^{lambda_t} Phi(t, l) b(l) m(l) dl, as an unevaluated integral."""
        integrand = self.model_scale.subs(lam, lam_t) * self.kernel.subs(lam, u) * model(u)
        return sp.Integral(integrand, (u, lam_s, lam_t))

    @functools.cached_property
    def time_integral_antiderivative(self) -> sp.Expr:
        """A(lambda) with A' = kernel * noise_scale: the model term's noise dependence through K.

        Inside a step the state's noise is noise_scale(l) (K_l - K_s), so to first order in the model's
        slope m_x the model term carries m_x int_s^t kernel(l) noise_scale(l) (K_l - K_s) dl (times
        model_scale(t)). Exchanging the integrals, that is m_x (A(t) (K_t - K_s) - (R_t - R_s)) with
        R = int noise_kernel A dB: one more Brownian functional (docs/esra.md). A is fixed up to a constant,
        which cancels in A(t) dK - dR. sympy's antiderivative is kept unless it vanishes at a finite lambda
        (data prediction: A = (1 + eta^2) lambda); then A is anchored at lambda = -TIME_INTEGRAL_ANCHOR,
        beyond every noise level in use, so that R's kernel keeps one sign over a path's range (a kernel
        through zero has an unbounded relative rate, which the Brownian tree's Legendre check refuses).
        """
        integrand = _in_v(self.kernel * self.noise_scale) / v
        antiderivative = sp.simplify(-_in_lambda(sp.integrate(integrand, v)))
        if sp.solveset(antiderivative, lam, sp.S.Reals) != sp.S.EmptySet:
            antiderivative = sp.factor(antiderivative - antiderivative.subs(lam, -TIME_INTEGRAL_ANCHOR))
        return antiderivative

    def noise_variance(self) -> sp.Expr:
        """int_{lambda_s}^{lambda_t} (Phi(t, u) g(u))^2 du in closed form."""
        kernel_sq = (self.noise_scale.subs(lam, lam_t) * self.noise_kernel.subs(lam, u)) ** 2
        return sp.simplify(sp.integrate(sp.expand(kernel_sq), (u, lam_s, lam_t), conds="none"))


@functools.cache
def exact_solution(parameterisation: str, eta_value=1) -> ExactSolution:
    if parameterisation not in PARAMETERISATIONS:
        raise ValueError(
            f"unknown parameterisation {parameterisation!r}; expected one of {PARAMETERISATIONS}"
        )
    eta_value = sp.sympify(eta_value)
    a, b = model_drift(parameterisation, eta_value)

    # Integrating factor: Phi(t, s) = exp(A(t) - A(s)), A an antiderivative of a (taken in v for sympy).
    antiderivative = _in_lambda(sp.integrate(-_in_v(a) / v, v))
    growth = sp.simplify(sp.exp(antiderivative))
    linear_factor = sp.simplify(growth.subs(lam, lam_t) / growth.subs(lam, lam_s))

    # Model kernel Phi(t, l) b(l) = exp(A(t)) * b(l) exp(-A(l)); the sign of b goes into the scale.
    constant, kernel = sp.simplify(b / growth).as_independent(lam, as_Add=False)
    model_scale = sp.simplify(constant * growth)

    # nu is fixed up to an additive constant c; drop it and absorb e^{-rate c} into the scale instead.
    shifted_variable, rate = _exponential_variable(kernel)
    shift, kernel_variable = sp.expand_log(shifted_variable, force=True).as_independent(lam, as_Add=True)
    model_scale = sp.simplify(model_scale * sp.exp(-rate * shift))
    kernel = sp.simplify(kernel * sp.exp(rate * shift))

    noise_kernel = sp.simplify(diffusion(eta_value) / growth)
    return ExactSolution(
        parameterisation=parameterisation,
        eta=eta_value,
        drift_linear=a,
        drift_model=b,
        diffusion=diffusion(eta_value),
        linear_factor=linear_factor,
        model_scale=model_scale,
        kernel=kernel,
        kernel_variable=kernel_variable,
        rate=rate,
        noise_scale=growth,
        noise_kernel=noise_kernel,
    )


def _exponential_variable(kernel: sp.Expr) -> tuple[sp.Expr, int]:
    """The variable nu in which kernel(lambda) dlambda = e^{-rate nu} dnu.

    With R(lambda) = int_lambda^oo kernel (finite when the kernel decays towards the data end),
    e^{-nu} = R gives kernel dlambda = -dR = e^{-nu} dnu: rate +1. Otherwise R(lambda) = int_{-oo}^lambda
    kernel and e^{nu} = R: rate -1. In v = e^{-lambda}, dlambda = -dv/v, so both are integrals in v.
    """
    integrand = _in_v(kernel) / v
    towards_data = sp.integrate(integrand, (v, 0, sp.Symbol("w", positive=True)), conds="none")
    if towards_data.is_finite is not False and not towards_data.has(sp.oo, sp.zoo, sp.nan, sp.Integral):
        tail = towards_data.subs(sp.Symbol("w", positive=True), v)
        return sp.simplify(-sp.log(_in_lambda(tail))), 1
    towards_noise = sp.integrate(integrand, (v, sp.Symbol("w", positive=True), sp.oo), conds="none")
    head = towards_noise.subs(sp.Symbol("w", positive=True), v)
    return sp.simplify(sp.log(_in_lambda(head))), -1
