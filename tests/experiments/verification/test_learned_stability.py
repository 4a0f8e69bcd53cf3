"""ESRA from 4 steps on the committed learned digits model (docs/esra.md, "Stability"): the data form gives
finite images in the data's range, the noise and EDM forms refuse the grid instead of blowing up."""

import pytest
import torch

from seeds.experiments.config import DEFAULT_CHECKPOINT
from seeds.experiments.problems.learned import LearnedModel
from seeds.solvers import BrownianPath, GridError, noise_levels, sample


@pytest.fixture(scope="module")
def model():
    return LearnedModel(DEFAULT_CHECKPOINT)


@pytest.mark.parametrize("grid", ["edm", "lambda"])
def test_esra_gives_finite_images_from_four_steps(model, grid):
    """sigma 80 -> 0.002 in 4 steps (8 evaluations). The pixels of the data lie in [-1, 1]; a step that grows
    the state multiplies deviations by 7-35 (the noise form reaches |x| ~ 6e3 here), so a margin of half the
    range separates sampling error from a blow-up."""
    sigmas = noise_levels(grid, 4, 0.002, 80.0)
    x = 80.0 * torch.randn(
        (64, *model.image_shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    result = sample(model, x, sigmas, method="esra", path=BrownianPath.from_sigmas(x, sigmas, seed=1))
    assert result.nfe == 8
    assert torch.isfinite(result.samples).all()
    assert result.samples.abs().max() < 1.5


@pytest.mark.parametrize("prediction", ["noise", "edm"])
def test_the_growing_forms_refuse_the_four_step_grid(model, prediction):
    sigmas = noise_levels("edm", 4, 0.002, 80.0)
    x = 80.0 * torch.randn((2, *model.image_shape), dtype=torch.float64)
    with pytest.raises(GridError, match="grow the state"):
        sample(model, x, sigmas, method="esra", prediction=prediction)
