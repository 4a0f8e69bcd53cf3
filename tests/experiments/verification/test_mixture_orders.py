"""Measured strong and weak orders on the 2-d ring mixture (nonlinear drift, exact score) against the
predictions; the cells and the reasons for their levels are in seeds.experiments.verification.ring_orders.

A test passes when the predicted order lies in the 95% bootstrap interval widened by the +-0.25 band. The
SDE methods' weak cells need 32768 paths (about 11 minutes on 2 cores) and run under `make test-slow`; a
method whose coupled differences are not all resolved is skipped with its numbers (its weak error is below
what that many paths can see: reported in the README from `make weak-ring`).
"""

from dataclasses import replace

import pytest

from seeds.analysis import predicted_orders
from seeds.experiments.config import RING_ESRA_METHODS as ESRA
from seeds.experiments.config import RING_ODE_METHODS as ODE
from seeds.experiments.config import RING_SDE_METHODS as SDE
from seeds.experiments.verification.convergence import Cell, run_cell
from seeds.experiments.verification.ring_orders import resolved, strong_cell, weak_cell
from seeds.solvers import make_method


def identifier(case):
    return make_method(case[0], **dict(case[1])).id


@pytest.mark.parametrize("case", SDE + ODE, ids=[identifier(c) for c in SDE + ODE])
def test_ring_strong_order_matches_prediction(case):
    result = run_cell(strong_cell(*case))
    predicted = predicted_orders()[identifier(case)]["strong"]
    slope, low, high = result["strong_slope"]
    assert low - 0.25 <= predicted <= high + 0.25, result["strong_slope"]
    # the reference must be far more accurate than the finest level: its distance to an independent
    # second reference is below a fifth of the finest level's error
    assert result["reference_gap_rms"] < 0.2 * result["strong_rms"][-1]


# Pre-asymptotic over 32-128 steps (docs/esra.md): the curvature terms that cap ESRA at 1.5 are small on the
# ring, so its noise-parameterised strong error still falls at the linear problem's order 2. Strict: the test
# fails if the measurement changes.
ESRA_PRE_ASYMPTOTIC = {"esra/noise": "2.13 [1.95, 2.26] over 32-128 steps"}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            case,
            marks=[pytest.mark.xfail(strict=True, reason=f"pre-asymptotic: {ESRA_PRE_ASYMPTOTIC[key]}")]
            if (key := identifier(case)) in ESRA_PRE_ASYMPTOTIC
            else [],
            id=identifier(case),
        )
        for case in ESRA
    ],
)
def test_ring_strong_order_of_esra_matches_its_nonlinear_prediction(case):
    """ESRA against its prediction with a nonlinear model (strong 1.5; 2 on the linear problem), with its own
    references (ESRA at 16x and 32x the finest level)."""
    result = run_cell(strong_cell(*case))
    predicted = make_method(case[0], **dict(case[1])).nonlinear_orders["strong"]
    slope, low, high = result["strong_slope"]
    assert low - 0.25 <= predicted <= high + 0.25, result["strong_slope"]
    assert result["reference_gap_rms"] < 0.2 * result["strong_rms"][-1]


def test_esra_off_its_derived_fraction_loses_order_on_the_ring():
    """Off c = 3/4 the stage noise misses the Ito term (analysis.nonlinear: p1 = 2, strong order 1): over
    32-256 steps on the same path ESRA/data at c = 1 and c = 1/2 measures 1.30 [1.21, 1.39] and
    1.36 [1.27, 1.48] against 1.83 [1.71, 1.98] at 3/4 (docs/esra.md); the derived fraction's interval lies
    above both, and its finest-level error is below a third of theirs."""
    base = strong_cell("esra", (("prediction", "data"),))
    variants = {c: (("c2", c), ("prediction", "data")) for c in (0.75, 1.0, 0.5)}
    family = base.path_family + tuple(("esra", options) for options in variants.values())
    results = {
        c: run_cell(
            replace(base, options=options, levels=(32, 64, 128, 256), fit_levels=4, path_family=family)
        )
        for c, options in variants.items()
    }
    derived = results[0.75]
    for c in (1.0, 0.5):
        assert derived["strong_slope"][1] > results[c]["strong_slope"][2], (c, results[c]["strong_slope"])
        assert derived["strong_rms"][-1] < results[c]["strong_rms"][-1] / 3
    assert derived["reference_gap_rms"] < 0.2 * derived["strong_rms"][-1]


def check_weak_order(case):
    weak = run_cell(weak_cell(*case))["weak_differences"]
    if not resolved(weak):
        pytest.skip(
            f"weak error below the Monte Carlo resolution: D = {weak['difference']} +- {weak['difference_se']}"
        )
    predicted = predicted_orders()[identifier(case)]["weak"]
    slope, low, high = weak["slope"]
    assert low - 0.25 <= predicted <= high + 0.25, (weak["slope"], weak["difference"])


@pytest.mark.parametrize("case", ODE, ids=[identifier(c) for c in ODE])
def test_ring_weak_order_of_ode_methods(case):
    check_weak_order(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", SDE, ids=[identifier(c) for c in SDE])
def test_ring_weak_order_of_sde_methods(case):
    check_weak_order(case)


@pytest.mark.parametrize("prediction", ["noise", "data", "edm"])
def test_gaussian_monte_carlo_strong_order_of_esra(prediction):
    """Monte Carlo on real paths (the main job's Gaussian, std 0.3, 256 paths, 32-256 lambda-uniform steps,
    errors against the exact solution on each path, 95% bootstrap interval): ESRA's strong order 2 on the
    linear problem within the +-0.25 band (measured 2.22 [2.16, 2.27] noise, 1.95 [1.90, 1.99] data,
    2.04 [1.98, 2.10] EDM; docs/esra.md)."""
    cell = Cell(
        "gaussian",
        "esra",
        (("prediction", prediction),),
        "lambda",
        (32, 64, 128, 256),
        256,
        seed=1,
        problem_options=(("std", 0.3),),
        fit_levels=4,
    )
    result = run_cell(cell)
    predicted = make_method("esra", prediction=prediction).orders["strong"]
    slope, low, high = result["strong_slope"]
    assert low - 0.25 <= predicted <= high + 0.25, result["strong_slope"]
