"""Exact weak errors on the 1-d problems (seeds.experiments.verification.exact_weak, docs/exact-weak.md):
the problems' quadratures, agreement with the exact linear analysis and with Monte Carlo, resolution, and
the weak order of every one-step method, with a planted mistake that the order check must reject."""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pytest
import torch

from seeds.experiments.cli import main
from seeds.experiments.config import EXACT_WEAK_METHODS
from seeds.experiments.problems.lines import LINE_PROBLEMS, LineMixture
from seeds.experiments.problems.mixtures import GaussianMixture
from seeds.experiments.verification.exact_linear import exact_output_variance
from seeds.experiments.verification.exact_weak import (
    L1_FLOOR,
    TEST_FUNCTIONS,
    MultistepNotSupported,
    PointLaw,
    QuadratureNoise,
    Resolution,
    StepMap,
    exact_expectations,
    exact_weak_table,
    propagate,
    weak_errors,
)
from seeds.solvers import BrownianPath, make_method, noise_levels, sample

Z_JOINT_99 = 3.2905267314918945  # two-sided normal quantile at 0.01 / 5: five test functions jointly at 99%
TOLERANCE = 0.25  # a measured weak order agrees with the predicted one within this


@pytest.fixture(autouse=True)
def one_thread():
    """The propagation is many small tensor operations: one thread each, so that the two test workers do not
    oversubscribe the two cores (torch's spinning threads slow every other test down)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_logistic_denoiser_and_density_match_mpmath():
    """Both quadrature regimes (sigma below and above the scale) against adaptive mpmath integrals."""
    law = LINE_PROBLEMS["logistic"]
    mpmath.mp.dps = 30

    def data_density(y):
        return 1 / (4 * law.scale * mpmath.cosh((y - law.location) / (2 * law.scale)) ** 2)

    for sigma in (0.002, 0.1, 0.27, 0.3, 2.0, 80.0):
        for x in (-3.0 * max(sigma, 1), 0.1, 1.3 * max(sigma, 1)):

            def weighted(y, power, x=x, sigma=sigma):
                return y**power * data_density(y) * mpmath.exp(-(((x - y) / sigma) ** 2) / 2)

            # the data's mass sits within a few scales of its location, the Gaussian's within 12 sigma of x
            spots = {x + k * sigma for k in (-12, 0, 12)} | {
                law.location + k * law.scale for k in range(-40, 41, 4)
            }
            breaks = [-mpmath.inf, *sorted(spots), mpmath.inf]
            mass = mpmath.quad(lambda y: weighted(y, 0), breaks)
            denoised = mpmath.quad(lambda y: weighted(y, 1), breaks) / mass
            log_density = mpmath.log(mass / (sigma * mpmath.sqrt(2 * mpmath.pi)))
            ours = law.denoiser(
                torch.tensor([[x]], dtype=torch.float64), torch.tensor([sigma], dtype=torch.float64)
            )
            assert float(ours) == pytest.approx(float(denoised), abs=1e-12 * max(1.0, abs(x)))
            assert law.log_density(np.array([x]), sigma)[0] == pytest.approx(float(log_density), abs=1e-12)


@pytest.mark.parametrize("sigma", [0.002, 0.1, 0.27, 0.3, 2.0, 80.0])
def test_tabulated_logistic_denoiser_equals_its_quadrature(sigma):
    """A batch larger than `tabulate_above` is answered from an interpolated table; it matches the quadrature
    (small batches, answered directly) to the table's tolerance, relative to max |D| + 1."""
    law = LINE_PROBLEMS["logistic"]
    width = 12 * max(sigma, 1.0)
    x = torch.linspace(law.location - width, law.location + width, 3 * law.tabulate_above + 7)
    x = x.to(torch.float64)[:, None]
    levels = torch.full((len(x),), sigma, dtype=torch.float64)
    tabulated = law.denoiser(x, levels)
    direct = torch.cat(
        [law.denoiser(part, levels[: len(part)]) for part in torch.split(x, law.tabulate_above)]
    )
    bound = law.table_tolerance * (1 + float(direct.abs().max()))
    assert float((tabulated - direct).abs().max()) <= bound


def test_line_mixture_equals_the_general_mixture():
    line = LINE_PROBLEMS["separated"]
    general = GaussianMixture(
        np.array(line.weights), np.array(line.means)[:, None], (np.array(line.stds) ** 2)[:, None, None]
    )
    x = torch.linspace(-4, 4, 41, dtype=torch.float64)[:, None]
    for sigma in (0.002, 0.2, 3.0, 80.0):
        levels = torch.full((41,), sigma, dtype=torch.float64)
        assert torch.allclose(line.denoiser(x, levels), general.denoiser(x, sigma), rtol=0, atol=1e-14)
        assert np.allclose(line.log_density(x[:, 0].numpy(), sigma), general.log_density(x, sigma).numpy())
    assert line.variance() == pytest.approx(float(general.marginal_covariance()[0, 0]), rel=1e-14)


@pytest.mark.parametrize(
    "method, options, pieces",
    [
        ("seeds-3", {"prediction": "data"}, (2, 1)),
        ("seeds-2", {"prediction": "noise"}, (1, 1)),
        ("seeds-1", {"prediction": "edm"}, (0, 1)),
        ("euler-maruyama", {}, (0, 1)),
        ("dpm-solver-3", {}, (0, 0)),
        ("edm-heun", {"s_churn": 40.0}, (1, 0)),
    ],
)
def test_stage_and_final_pieces(method, options, pieces):
    """The pieces drawn before the last model evaluation enter nonlinearly, those after it linearly."""
    solver = make_method(method, **options)
    step = StepMap(solver, LINE_PROBLEMS["overlapping"].denoiser, 0.5)
    step.state = solver.init(torch.zeros(1, 1), torch.tensor([10.0, 1.0]))
    recorder = QuadratureNoise(1)
    step.dry_run(-math.log(10.0), 0.0, recorder)
    stage = len(recorder.stage_pieces)
    assert (stage, len(recorder.pieces) - stage) == pieces


GAUSSIAN_CASES = [
    ("seeds-1", {"prediction": "noise"}),
    ("seeds-2", {"prediction": "data"}),
    ("seeds-2", {"prediction": "edm", "variant": "phi_2"}),
    ("seeds-3", {"prediction": "noise"}),
    ("seeds-3", {"prediction": "data", "eta": 0.4}),
    ("euler-maruyama", {}),
    ("ddim", {"ddim_eta": 0.5}),
    ("dpm-solver-3", {}),
    ("edm-heun", {"s_churn": 40.0}),
]


@pytest.mark.parametrize("method, options", GAUSSIAN_CASES)
@pytest.mark.parametrize("steps", [4, 16, 64])
def test_gaussian_data_equals_the_exact_linear_analysis(method, options, steps):
    """On Gaussian data the chain is Gaussian and every quadrature here is exact for it (Lagrange degree >= 2
    reproduces x^2, Gauss-Hermite integrates polynomials): the weak variance error equals exact-linear's to
    1e-9 of itself (round-off grows with the steps; measured <= 1e-12 at 64 steps)."""
    data_variance = 0.09
    sigmas = noise_levels("lambda", steps, 0.002, 80.0)
    law, _ = propagate(
        make_method(method, **options), LineMixture("gaussian", (1.0,), (0.0,), (0.3,)), sigmas
    )
    target = data_variance + 0.002**2
    exact_error = exact_output_variance(method, sigmas, data_variance, **options) - target
    assert abs(law.expect(np.square) - target - exact_error) <= 1e-9 * abs(exact_error)
    assert abs(law.expect(lambda x: x)) < 1e-12


@pytest.mark.parametrize(
    "problem, method, options",
    [
        ("overlapping", "seeds-2", {"prediction": "data"}),
        ("separated", "seeds-3", {"prediction": "noise"}),
        ("logistic", "seeds-1", {"prediction": "edm"}),
        ("separated", "dpm-solver++-2", {}),
        ("logistic", "dpm-solver-3", {}),
    ],
)
def test_refining_the_resolution_changes_the_errors_by_less_than_a_thousandth(problem, method, options):
    """Twice the grid nodes, more Gauss-Hermite nodes for the stage and the final noise (a noisy chain), or
    twice the start panels, more Gauss-Legendre nodes and a tenth of the splitting tolerance (a transported
    deterministic chain, here across the separated mixture's separatrix): every weak error and the smoothed
    L1 distance move by less than 1e-3 of themselves (the 1024-step check is in make exact-weak,
    docs/exact-weak.md)."""
    line = LINE_PROBLEMS[problem]
    sigmas = noise_levels("lambda", 48, 0.002, 80.0)
    coarse = weak_errors(make_method(method, **options), line, sigmas)
    fine = weak_errors(
        make_method(method, **options), line, sigmas, Resolution(nodes=line.grid_nodes).refined()
    )
    for name in TEST_FUNCTIONS:
        # an error that vanishes by symmetry (E x on the logistic law) is round-off on both sides
        bound = max(1e-3 * abs(coarse.errors[name]), 1e-12)
        assert abs(fine.errors[name] - coarse.errors[name]) < bound
    assert abs(fine.l1 - coarse.l1) < 1e-3 * coarse.l1


@pytest.mark.parametrize(
    "problem, method, options, steps",
    [
        ("overlapping", "seeds-2", {"prediction": "data"}, 6),
        ("separated", "seeds-3", {"prediction": "noise"}, 8),
        ("logistic", "seeds-3", {"prediction": "edm"}, 5),
        ("separated", "edm-heun", {"s_churn": 40.0, "s_tmin": 0.05, "s_tmax": 50.0}, 6),
        ("separated", "dpm-solver-2", {}, 8),
        # ESRA's stage noise is drawn jointly with its final noise: the step's directions come from a probe
        ("overlapping", "esra", {"prediction": "data"}, 6),
        ("logistic", "esra", {"prediction": "edm"}, 5),
    ],
)
def test_monte_carlo_agrees_within_its_99_percent_interval(problem, method, options, steps):
    """The real sampler on one Brownian path per sample, from exact draws of the start law: the five E g(X_N)
    within their joint 99% interval of the exact values (Bonferroni: 3.29 standard errors each)."""
    line, count = LINE_PROBLEMS[problem], 1 << 16
    sigmas = noise_levels("lambda", steps, 0.002, 80.0)
    law, _ = propagate(make_method(method, **options), line, sigmas)
    generator = torch.Generator().manual_seed(7)
    start = exact_data(line, count, generator)[:, None]
    start = start + float(sigmas[0]) * torch.randn(count, 1, generator=generator, dtype=torch.float64)
    path = BrownianPath(start, float(sigmas[-1]), float(sigmas[0]), seed=11)
    # the comparison studies the scheme on this grid, also where its steps grow (ESRA/edm's last two here)
    out = (
        sample(line.denoiser, start, sigmas, method=method, path=path, allow_growing_steps=True, **options)
        .samples[:, 0]
        .numpy()
    )
    for name, g in TEST_FUNCTIONS.items():
        values = g(out)
        error = values.mean() - law.expect(g)
        assert abs(error) < Z_JOINT_99 * values.std() / math.sqrt(count), name


def exact_data(line, count, generator):
    """Exact draws of the data law: a mixture by its components, the logistic law by its inverse CDF."""
    if isinstance(line, LineMixture):
        component = torch.multinomial(
            torch.tensor(line.weights), count, replacement=True, generator=generator
        )
        normals = torch.randn(count, generator=generator, dtype=torch.float64)
        return torch.tensor(line.means)[component] + torch.tensor(line.stds)[component] * normals
    uniforms = torch.rand(count, generator=generator, dtype=torch.float64)
    return line.location + line.scale * torch.log(uniforms / (1 - uniforms))


def order_agrees(table: dict) -> bool:
    predicted = table["predicted"]["weak"]
    return table["order"] is not None and abs(table["order"] - predicted) <= TOLERANCE


ORDER_STEPS = (16, 32, 64, 128, 256, 512)


@pytest.mark.parametrize(
    "method, options",
    [
        (method, dict(options))
        for method, options in EXACT_WEAK_METHODS
        if dict(options).get("s_churn", 0) == 0
    ],
    ids=lambda value: value if isinstance(value, str) else "-".join(str(v) for v in value.values()),
)
def test_weak_order_on_the_overlapping_mixture(method, options):
    """The weak order fitted to the smoothed L1 distance (the three finest resolved step counts) is within
    0.25 of the generated prediction for every one-step method with one."""
    table = exact_weak_table(method, "overlapping", ORDER_STEPS, **options)
    assert order_agrees(table), (table["order"], table["predicted"], table["l1"])


# Pre-asymptotic at 512 steps (docs/exact-weak.md, "What it shows"): the order fitted over 128-512 steps is
# more than 0.25 from the prediction. Strict: the test fails if the measurement changes.
PRE_ASYMPTOTIC_AT_512 = {
    ("separated", "seeds-3", "data"): "1.66 over 128-512 steps, 1.79 over 256-1024",
    ("separated", "seeds-3", "edm"): "1.61 over 128-512 steps, 1.74 over 256-1024",
    ("logistic", "seeds-2", "noise"): "1.58 over 128-512 steps, 1.85 over 256-1024",
}


def _nonlinear_order_cases():
    for problem in ("separated", "logistic"):
        for method, options in EXACT_WEAK_METHODS:
            options = dict(options)
            if options.get("s_churn", 0) > 0:
                continue
            finding = PRE_ASYMPTOTIC_AT_512.get((problem, method, options.get("prediction")))
            if finding is not None and "variant" not in options:
                marks = pytest.mark.xfail(strict=True, reason=f"pre-asymptotic: {finding}")
            else:
                marks = ()
            label = "-".join([problem, method, *map(str, options.values())])
            yield pytest.param(problem, method, options, marks=marks, id=label)


@pytest.mark.slow
@pytest.mark.parametrize("problem, method, options", _nonlinear_order_cases())
def test_weak_order_on_the_separated_and_logistic_problems(problem, method, options):
    """The same check on the separated mixture and the logistic law, 16-512 steps (`make test-slow`: too slow
    for `make test`)."""
    table = exact_weak_table(method, problem, ORDER_STEPS, **options)
    assert order_agrees(table), (table["order"], table["predicted"], table["l1"])


def test_the_order_check_rejects_independent_stage_noises():
    """The planted mistake: SEEDS-2's stage noise drawn independently of its final noise (each with the right
    variance) is weak order 1, and the check above fails on it."""
    table = exact_weak_table(
        "seeds-2", "overlapping", ORDER_STEPS, independent_stages=True, prediction="data"
    )
    assert not order_agrees(table)
    assert abs(table["order"] - 1.0) <= TOLERANCE


def test_l1_floor_is_above_the_resolution():
    """The fit ignores distances below L1_FLOOR, at least five times the change that refining the resolution
    makes to a distance near it (the logistic law, whose grid spacing is the coarsest against the smoothing
    width; a distance of ~1e-4 moves by ~2e-9, docs/exact-weak.md)."""
    line = LINE_PROBLEMS["logistic"]
    sigmas = noise_levels("lambda", 128, 0.002, 80.0)
    coarse = weak_errors(make_method("seeds-2", prediction="edm"), line, sigmas)
    fine = weak_errors(
        make_method("seeds-2", prediction="edm"), line, sigmas, Resolution(nodes=line.grid_nodes).refined()
    )
    assert coarse.l1 < 1e-3
    assert abs(fine.l1 - coarse.l1) < L1_FLOOR / 5


@pytest.mark.parametrize(
    "method, options, transported",
    [
        ("dpm-solver-2", {}, True),
        ("seeds-2", {"prediction": "noise", "eta": 0.0}, True),
        ("seeds-2", {"prediction": "noise"}, False),
        # churn inside its sigma range only: the chain draws noise on the middle steps
        ("edm-heun", {"s_churn": 40.0, "s_tmin": 0.05, "s_tmax": 50.0}, False),
    ],
)
def test_deterministic_chains_are_transported(method, options, transported):
    law, _ = propagate(
        make_method(method, **options), LINE_PROBLEMS["overlapping"], noise_levels("lambda", 6, 0.002, 80.0)
    )
    assert isinstance(law, PointLaw) == transported


@pytest.mark.parametrize("prediction", ["noise", "data", "edm"])
def test_weak_order_of_esra_on_the_overlapping_mixture(prediction):
    """ESRA (docs/esra.md) against its predicted weak order 2 with a nonlinear denoiser, as above; and the
    refinement at 48 steps moves its errors by less than 1e-3 of themselves."""
    table = exact_weak_table("esra", "overlapping", ORDER_STEPS, prediction=prediction)
    predicted = make_method("esra", prediction=prediction).nonlinear_orders["weak"]
    assert table["order"] is not None and abs(table["order"] - predicted) <= TOLERANCE, table["l1"]
    line, sigmas = LINE_PROBLEMS["overlapping"], noise_levels("lambda", 48, 0.002, 80.0)
    coarse = weak_errors(make_method("esra", prediction=prediction), line, sigmas)
    fine = weak_errors(
        make_method("esra", prediction=prediction), line, sigmas, Resolution(nodes=line.grid_nodes).refined()
    )
    for name in TEST_FUNCTIONS:
        assert abs(fine.errors[name] - coarse.errors[name]) < 1e-3 * abs(coarse.errors[name])
    assert abs(fine.l1 - coarse.l1) < 1e-3 * coarse.l1


def test_multistep_methods_are_refused():
    solver = make_method("sde-dpm-solver++-2m")
    with pytest.raises(MultistepNotSupported, match="Markov"):
        propagate(solver, LINE_PROBLEMS["overlapping"], noise_levels("lambda", 4, 0.002, 80.0))


def test_exact_expectations_of_a_gaussian():
    line = LineMixture("gaussian", (1.0,), (0.3,), (0.4,))
    exact = exact_expectations(line, 0.1)
    variance = 0.4**2 + 0.1**2
    assert exact["x"] == pytest.approx(0.3, rel=1e-13)
    assert exact["x^2"] == pytest.approx(variance + 0.09, rel=1e-13)
    assert exact["x^3"] == pytest.approx(0.3**3 + 3 * 0.3 * variance, rel=1e-13)
    assert exact["cos"] == pytest.approx(math.exp(-variance / 2) * math.cos(0.3), rel=1e-13)


def test_cli(capsys):
    assert main(["exact-weak", "--method", "seeds-2", "--steps", "8,16", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    direct = exact_weak_table("seeds-2", "overlapping", (8, 16), prediction="data", variant="phi_1")
    assert table["l1"] == direct["l1"] and table["errors"] == direct["errors"]
    assert table["id"] == "seeds-2/data"
    assert main(["exact-weak", "--method", "dpm-solver-2", "--problem", "logistic", "--steps", "4,8"]) == 0
    printed = capsys.readouterr().out
    assert "dpm-solver-2 on logistic" in printed and "order" in printed
    for arguments, named in (
        (["--method", "sde-dpm-solver++-2m"], "multistep"),
        (["--nodes", "10"], "--nodes"),
    ):
        with pytest.raises(SystemExit) as refusal:
            main(["exact-weak", *arguments])
        assert refusal.value.code == 2
        assert named in capsys.readouterr().err
