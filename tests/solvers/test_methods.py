"""Methods built from the generated table: ids, metadata and NFE as declared, and the step contract (a typed
state returned anew by every step; the driver changes no method)."""

import dataclasses

import pytest
import torch

from seeds.solvers import EDM, GRIDS, METHODS, make_method, noise_levels, predicted_orders, sample
from seeds.solvers.methods import METHOD_TABLE, StepState
from tests.solver_problems import mixture_denoiser

SELECTING_OPTIONS = {"variant": "variant", "prediction": "prediction", "churn": "s_churn"}


def options_selecting(method_id):
    """The make_method options that pick the row `method_id` among the rows of its name."""
    options = {}
    for option, value in METHOD_TABLE[method_id]["selected_by"]:
        options[SELECTING_OPTIONS[option]] = (10.0 if value else 0.0) if option == "churn" else value
    return options


CASES = [(name, method_id) for name, ids in METHODS.items() for method_id in ids]


@pytest.mark.parametrize("name, method_id", CASES, ids=[case[1] for case in CASES])
def test_a_method_carries_its_rows_metadata_and_spends_its_declared_nfe(name, method_id):
    row = METHOD_TABLE[method_id]
    solver = make_method(name, **options_selecting(method_id))
    assert solver.id == method_id
    assert (solver.prediction, solver.nfe_per_step, solver.stochastic) == (
        row["prediction"],
        row["nfe_per_step"],
        row["stochastic"],
    )
    assert solver.orders == predicted_orders().get(method_id)
    schedule = EDM()
    sigmas = schedule.vs(GRIDS["edm"](schedule, 6))
    if row["refuses_growing_steps"]:  # ESRA/noise and /edm refuse that grid's last steps (docs/esra.md)
        sigmas = noise_levels("lambda", 6, 0.2, 80.0)
    x = 80.0 * torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    result = sample(mixture_denoiser(), x, sigmas, method=name, **options_selecting(method_id))
    assert result.nfe == 6 * row["nfe_per_step"]  # counted by the driver


@pytest.mark.parametrize("name", ["seeds-3", "sde-dpm-solver++-2m", "edm-heun"])
def test_a_step_returns_a_new_frozen_state_and_leaves_the_method_unchanged(name):
    solver = make_method(name, **({"s_churn": 5.0} if name == "edm-heun" else {}))
    x = torch.ones(3, 1, dtype=torch.float64)
    sigmas = torch.tensor([10.0, 5.0, 1.0], dtype=torch.float64)
    state = solver.init(x, sigmas)
    assert isinstance(state, StepState) and dataclasses.is_dataclass(state)
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.index = 5
    fields = dict(vars(solver))

    class NoNoise:
        def increment(self, functional, lam_a, lam_b):
            return torch.zeros_like(x)

        def fresh(self, key):
            return torch.zeros_like(x)

    def model(u, lam):
        return 0.5 * u

    _, denoised, next_state = solver.step(x, -2.0, -1.5, model, NoNoise(), state)
    assert next_state is not state and next_state.index == 1 and state.index == 0
    assert denoised.shape == x.shape
    assert vars(solver) == fields
    if name == "sde-dpm-solver++-2m":
        assert state.previous_value is None and torch.equal(next_state.previous_value, model(x, -2.0))
