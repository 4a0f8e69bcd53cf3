"""Exact (Monte-Carlo-free) errors on Gaussian data: experiments/verification/exact_linear.py and
`seeds exact-linear`."""

import json
import math

import numpy as np
import pytest
import sympy as sp
import torch
from scipy import integrate

from seeds.analysis import exact
from seeds.experiments.cli import main
from seeds.experiments.problems.mixtures import GaussianMixture
from seeds.experiments.verification.exact_linear import (
    Quadrature,
    affine_solution,
    exact_noise_weight,
    exact_output_variance,
    linear_errors,
    transition_factor,
)
from seeds.solvers import IndependentPieces, noise_levels, sample
from tests.solver_problems import gaussian_denoiser

Z_999 = 3.2905  # two-sided 99.9% normal quantile


def lambda_sigmas(steps, sigma_max=80.0, sigma_min=0.002):
    return noise_levels("lambda", steps, sigma_min, sigma_max)


# ------------------------------------------------------------------------------------------ exact solution


@pytest.mark.parametrize("eta_value", [1, sp.Rational(1, 2), 0])
def test_transition_factor_solves_the_linear_sde_of_analysis_exact(eta_value):
    """Phi(t, u) = ((vs_t^2 + v) / (vs_u^2 + v))^{(1 + eta^2)/2} solves d/dt Phi = a_total(t) Phi with
    Phi(u, u) = 1, a_total the drift of analysis.exact with the exact Gaussian denoiser D = v / (v + vs^2) x~
    put in; and the diffusion is eta sqrt(2) vs."""
    variance = sp.Symbol("variance", positive=True)
    t, u = sp.symbols("t u", real=True)
    linear, model = exact.model_drift("data", eta_value)
    gaussian_drift = linear + model * variance / (variance + sp.exp(-2 * exact.lam))
    factor = ((sp.exp(-2 * t) + variance) / (sp.exp(-2 * u) + variance)) ** ((1 + eta_value**2) / 2)
    assert sp.simplify(sp.diff(factor, t) - gaussian_drift.subs(exact.lam, t) * factor) == 0
    assert sp.simplify(factor.subs(t, u)) == 1
    assert sp.simplify(exact.diffusion(eta_value) - eta_value * sp.sqrt(2) * sp.exp(-exact.lam)) == 0


def test_exact_solution_has_the_target_variance():
    """The exact solution keeps the marginal law: Phi(T,0)^2 (v + vs_0^2) + int w_exact^2 = v + vs_T^2
    (adaptive quadrature, point-mass and non-degenerate data)."""
    variances = np.array([0.0, 0.09, 1.7])
    vs_start, vs_end = 30.0, 0.01
    noise_variance = [
        integrate.quad(
            lambda lam, i=i: exact_noise_weight(lam, vs_end, variances)[i] ** 2,
            -math.log(vs_start),
            -math.log(vs_end),
            epsabs=0,
            epsrel=1e-12,
            limit=200,
        )[0]
        for i in range(3)
    ]
    total = transition_factor(vs_end, vs_start, variances) ** 2 * (variances + vs_start**2) + noise_variance
    np.testing.assert_allclose(total, variances + vs_end**2, rtol=1e-10)


# ------------------------------------------------------------------------------- closed-form special cases


@pytest.mark.parametrize("stages", [1, 2, 3])
def test_data_prediction_is_exact_for_point_mass_data(stages):
    """D = m is constant, so the data-prediction step is the exact solution (both kernels are vs_t^2 P's)."""
    errors = linear_errors(f"seeds-{stages}", lambda_sigmas(7), 0.7, 0.0, "data")
    assert errors.strong_rmse < 1e-12
    assert errors.mean_error < 1e-12 and errors.weak_var_error < 1e-15


def one_step_mse(gain, numerical_weight, vs_s, vs_t, variance):
    """(A - Phi)^2 Var(x_0) + int (w_num - w_exact)^2, written out with scipy's adaptive quadrature."""
    phi = (vs_t**2 + variance) / (vs_s**2 + variance)

    def exact_weight(lam):
        return (vs_t**2 + variance) * math.sqrt(2) * math.exp(-lam) / (math.exp(-2 * lam) + variance)

    noise, _ = integrate.quad(
        lambda lam: (numerical_weight(lam) - exact_weight(lam)) ** 2,
        -math.log(vs_s),
        -math.log(vs_t),
        epsabs=0,
        epsrel=1e-12,
    )
    return (gain - phi) ** 2 * (variance + vs_s**2) + noise


@pytest.mark.parametrize("method", ["seeds-1", "euler-maruyama"])
def test_one_step_strong_error_written_by_hand(method):
    """SEEDS-1/data: x_t = e^{-2h} x_s + (1 - e^{-2h}) D_s + vs_t^2 dP, w_num = vs_t^2 sqrt(2) e^u.
    Euler-Maruyama: x_t = x_s + 2 h (D_s - x_s) + sqrt(2) vs_s dB, w_num = sqrt(2) vs_s."""
    vs_s, vs_t, variance = 1.3, 0.4, 0.3
    h = math.log(vs_s / vs_t)
    shrink = variance / (variance + vs_s**2)
    if method == "seeds-1":
        gain = math.exp(-2 * h) + (1 - math.exp(-2 * h)) * shrink
        expected = one_step_mse(
            gain, lambda lam: vs_t**2 * math.sqrt(2) * math.exp(lam), vs_s, vs_t, variance
        )
    else:
        gain = 1 + 2 * h * (shrink - 1)
        expected = one_step_mse(gain, lambda lam: math.sqrt(2) * vs_s, vs_s, vs_t, variance)
    errors = linear_errors(method, [vs_s, vs_t], 0.0, variance, "data")
    assert errors.strong_mse == pytest.approx(expected, rel=1e-10)


def test_quadrature_refinement_changes_nothing():
    """The default quadrature is converged: 4x shorter sub-intervals and twice the nodes agree to 1e-6 (in
    fact to rounding), on grids with long steps (edm grid, 5 steps) and short ones (lambda grid, 40 steps)."""
    finer = Quadrature(nodes=16, max_length=0.125)
    for method, options, sigmas in [
        ("seeds-3", {"prediction": "noise"}, lambda_sigmas(40)),
        ("seeds-2", {"prediction": "edm", "variant": "phi_2"}, noise_levels("edm", 5, 0.002, 80.0)),
        ("sde-dpm-solver++-2m", {}, noise_levels("edm", 5, 0.002, 80.0)),
        ("euler-maruyama", {}, lambda_sigmas(12)),
    ]:
        default = linear_errors(method, sigmas, 0.0, 0.3**2, **options).strong_mse
        refined = linear_errors(method, sigmas, 0.0, 0.3**2, quadrature=finer, **options).strong_mse
        assert refined == pytest.approx(default, rel=1e-6), method


def test_deterministic_methods_converge_to_the_probability_flow_ode():
    """Against the SDE a deterministic method's strong error does not vanish; against the eta = 0 solution
    (reference_eta = 0) DPM-Solver-2 converges at order 2."""
    against_sde = [linear_errors("dpm-solver-2", lambda_sigmas(n), 0.0, 0.25).strong_rmse for n in (16, 32)]
    assert against_sde[1] > 0.5 * against_sde[0] > 0.1
    against_ode = [
        linear_errors("dpm-solver-2", lambda_sigmas(n), 0.0, 0.25, reference_eta=0.0).strong_rmse
        for n in (32, 64)
    ]
    assert math.log2(against_ode[0] / against_ode[1]) > 1.75


def test_refusals():
    with pytest.raises(ValueError, match="final denoising"):
        affine_solution("seeds-1", [80.0, 1.0, 0.0], 0.0, 0.25)
    churn = linear_errors("edm-heun", noise_levels("edm", 8, 0.002, 80.0), 0.0, 0.25, s_churn=40.0)
    assert churn.strong_mse is None and churn.strong_rmse is None
    assert "not applicable" in churn.strong_not_applicable and "churn" in churn.strong_not_applicable
    assert churn.weak_var_error > 0


# -------------------------------------------------------------------------------------------- Monte Carlo


class FineGridPath:
    """One Brownian path per sample (and per coordinate) on a fine lambda grid holding every point the solver
    queries. Every functional increment is the midpoint sum of its kernel against the same cell increments dB,
    so the solver's noise and the exact solution's stochastic integral are both functionals of one path; the
    midpoint rule changes the mean-square error only at relative order (rate * width)^2 ~ 1e-4."""

    def __init__(self, breakpoints, count, dim, width, generator):
        edges = [breakpoints[0]]
        for a, b in zip(breakpoints[:-1], breakpoints[1:]):
            parts = max(1, math.ceil((b - a) / width))
            edges.extend(np.linspace(a, b, parts + 1)[1:-1].tolist() + [b])
        self.position = {edge: i for i, edge in enumerate(edges)}
        edges = torch.tensor(edges, dtype=torch.float64)
        self.midpoints = 0.5 * (edges[1:] + edges[:-1])
        widths = (edges[1:] - edges[:-1]).sqrt()
        self.dB = (
            torch.randn(len(widths), count, dim, generator=generator, dtype=torch.float64)
            * widths[:, None, None]
        )

    def increment(self, functional, lam_a, lam_b):
        a, b = self.position[lam_a], self.position[lam_b]
        return torch.einsum("c,cnd->nd", functional.kernel(self.midpoints[a:b]), self.dB[a:b])

    def exact_solution(self, start, mean, covariance, vs_start, vs_end):
        """m + Phi(T, 0)(x_0 - m) + int Phi(T, u) sqrt(2) vs(u) dB_u with the matrix Phi, via eigh of S."""
        values, vectors = torch.linalg.eigh(torch.as_tensor(covariance, dtype=torch.float64))
        vs = torch.exp(-self.midpoints)[:, None]
        weights = (
            (vs_end**2 + values) / (vs**2 + values) * math.sqrt(2.0) * vs
        )  # (cells, d) per eigen-direction
        noise = torch.einsum("cd,cnd->nd", weights, self.dB @ vectors) @ vectors.T
        start_factor = (vs_end**2 + values) / (vs_start**2 + values)
        return mean + ((start - mean) @ vectors) * start_factor @ vectors.T + noise


MONTE_CARLO_CASES = [
    ("seeds-3", {"prediction": "noise"}, "lambda", 6, 0.0, 0.25),
    ("seeds-2", {"prediction": "edm", "variant": "phi_2"}, "edm", 6, 0.0, 0.09),
    ("seeds-1", {"prediction": "data"}, "lambda", 5, 0.0, 0.25),
    ("euler-maruyama", {}, "lambda", 10, 0.0, 0.25),
    ("sde-dpm-solver++-2m", {}, "edm", 6, 0.0, 0.25),
    ("ddim", {"ddim_eta": 0.7}, "lambda", 6, 0.0, 0.25),
    ("dpm-solver++-3", {}, "lambda", 4, 0.0, 0.25),
    ("seeds-3", {"prediction": "data"}, "edm", 6, [0.8, -0.4], [[0.3, 0.1], [0.1, 0.05]]),
    ("seeds-3", {"prediction": "noise"}, "lambda", 64, 0.0, 0.25),  # the calibration case
    # ESRA draws K and its time-integral functional jointly: the basis's joint pieces against real paths
    ("esra", {"prediction": "data"}, "lambda", 6, 0.0, 0.25),
    # ESRA/edm refuses the 6-step EDM grid, whose last steps grow (docs/esra.md, "Stability")
    ("esra", {"prediction": "edm"}, "lambda", 8, [0.8, -0.4], [[0.3, 0.1], [0.1, 0.05]]),
]


@pytest.mark.parametrize(
    ("method", "options", "grid", "steps", "mean", "covariance"),
    MONTE_CARLO_CASES,
    ids=[f"{c[0]}{c[1]}-{c[2]}{c[3]}-{np.ndim(c[5])}d" for c in MONTE_CARLO_CASES],
)
def test_strong_error_agrees_with_monte_carlo(method, options, grid, steps, mean, covariance):
    """Real solver runs on shared fine-grid paths: the sample mean of |x_num - x_exact|^2 lies within its
    99.9% confidence interval around the exact value."""
    count = 8000
    sigma_max = 80.0 if steps == 64 else 10.0
    sigmas = noise_levels(grid, steps, 0.002, sigma_max)
    covariance = np.atleast_2d(covariance)
    dim = covariance.shape[0]
    mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), (dim,)).copy()
    prediction = options.pop("prediction", "data")
    exact_errors = linear_errors(method, sigmas, mean, covariance, prediction, **options)

    lam = [-math.log(level) for level in sigmas.tolist()]
    pieces = affine_solution(
        method, sigmas, np.zeros(dim), np.ones(dim), prediction=prediction, **options
    ).pieces
    breakpoints = sorted(set(lam) | {p.start for p in pieces} | {p.end for p in pieces})
    generator = torch.Generator().manual_seed(steps)
    path = FineGridPath(breakpoints, count, dim, 0.02, generator)
    problem = GaussianMixture(np.ones(1), mean[None], covariance[None])
    start = torch.from_numpy(problem.sample_marginal(count, float(sigmas[0]), generator).numpy())
    numerical = sample(
        problem, start, sigmas, method=method, prediction=prediction, path=path, **options
    ).samples
    reference = path.exact_solution(
        start, torch.from_numpy(mean), covariance, float(sigmas[0]), float(sigmas[-1])
    )
    squared = ((numerical - reference) ** 2).sum(1)
    half_width = Z_999 * float(squared.std()) / math.sqrt(count)
    assert abs(float(squared.mean()) - exact_errors.strong_mse) < half_width, (
        squared.mean(),
        exact_errors.strong_mse,
    )


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("seeds-2", {"prediction": "noise"}),
        ("edm-heun", {"s_churn": 40.0}),
        ("ddim", {"ddim_eta": 0.5}),
        ("dpm-solver++-2m", {}),
    ],
)
def test_output_variance_agrees_with_monte_carlo(method, options):
    """IndependentPieces (torch's generator) on N(0, 0.3^2) data: sample variance within its 99.9% CI of the
    exact Var(x_num), churn included; the exact mean is 0."""
    count, variance = 20000, 0.09
    sigmas = noise_levels("edm", 6, 0.002, 10.0)
    exact_variance = exact_output_variance(method, sigmas, variance, **options)
    errors = linear_errors(method, sigmas, 0.0, variance, **options)
    assert errors.output_variance[0] == pytest.approx(exact_variance, rel=1e-14)
    assert errors.weak_var_error == pytest.approx(abs(exact_variance - (variance + 0.002**2)), rel=1e-12)
    torch.manual_seed(1)
    start = math.sqrt(variance + float(sigmas[0]) ** 2) * torch.randn(count, 1, dtype=torch.float64)
    out = sample(
        gaussian_denoiser(variance), start, sigmas, method=method, path=IndependentPieces(start), **options
    ).samples[:, 0]
    spread = Z_999 * exact_variance * math.sqrt(2 / (count - 1))
    assert abs(float(out.var()) - exact_variance) < spread
    assert abs(float(out.mean())) < Z_999 * math.sqrt(exact_variance / count)


def test_kl_and_w2_in_closed_form():
    errors = linear_errors("seeds-1", lambda_sigmas(6), [0.3, -1.0], np.diag([0.2, 0.5]), "noise")
    mean_gap = errors.output_mean - errors.directions.T @ np.array([0.3, -1.0])
    ratio = errors.output_variance / errors.target_variance
    kl = 0.5 * np.sum(ratio - 1 - np.log(ratio) + mean_gap**2 / errors.target_variance)
    w2 = math.sqrt(
        np.sum(mean_gap**2 + (np.sqrt(errors.output_variance) - np.sqrt(errors.target_variance)) ** 2)
    )
    assert errors.kl == pytest.approx(kl, rel=1e-9) and errors.w2 == pytest.approx(w2, rel=1e-9)


# ---------------------------------------------------------------------------------------------------- CLI


CALIBRATION = [
    "exact-linear",
    "--method",
    "seeds-3",
    "--prediction",
    "noise",
    "--data-std",
    "0.5",
    "--sigma-max",
    "80",
    "--sigma-min",
    "0.002",
    "--grid",
    "lambda",
    "--steps",
    "8,16,32,64",
]


def test_cli_json_and_calibration(capsys):
    """The specified keys, one value per step count, equal to the Python API; and the issue's calibration
    (seeds-3, noise, s = 0.5, 80 -> 0.002, 64 lambda steps: strong RMSE 2.347e-2)."""
    assert main(CALIBRATION + ["--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert {"method", "prediction", "grid", "steps", "strong_rmse", "weak_var_error"} <= set(table)
    assert (table["method"], table["prediction"], table["grid"], table["steps"]) == (
        "seeds-3",
        "noise",
        "lambda",
        [8, 16, 32, 64],
    )
    assert len(table["strong_rmse"]) == len(table["weak_var_error"]) == 4
    direct = linear_errors("seeds-3", lambda_sigmas(16), 0.0, 0.25, "noise")
    assert table["strong_rmse"][1] == pytest.approx(direct.strong_rmse, rel=1e-12)
    assert table["weak_var_error"][1] == pytest.approx(direct.weak_var_error, rel=1e-12)
    assert round(table["strong_rmse"][-1], 5) == 0.02347
    assert table["strong_rmse"] == sorted(table["strong_rmse"], reverse=True)


def test_cli_table_and_churn(capsys):
    assert main(["exact-linear", "--method", "seeds-2", "--variant", "phi_2", "--steps", "4,8"]) == 0
    printed = capsys.readouterr().out
    assert "strong_rmse" in printed and "phi_2" in printed and len(printed.strip().splitlines()) == 4
    assert (
        main(
            [
                "exact-linear",
                "--method",
                "edm-heun",
                "--s-churn",
                "40",
                "--grid",
                "edm",
                "--steps",
                "8",
                "--json",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    table = json.loads(captured.out)
    assert table["strong_rmse"] == [None] and table["weak_var_error"][0] > 0
    assert "not applicable" in captured.err
    with pytest.raises(SystemExit, match="ddpm takes no variant"):
        main(["exact-linear", "--method", "ddpm", "--variant", "phi_2"])
