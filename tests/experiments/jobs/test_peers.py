"""Agreement with k-diffusion where the methods are mathematically the same (docs/benchmarks.md): given the
same sigmas and the same standard normals, the outputs agree to 1e-10 in float64."""

from __future__ import annotations

import pytest
import torch

from seeds.experiments.config import PEER_SAMPLERS
from seeds.experiments.jobs import peers
from seeds.experiments.jobs.peers import k_diffusion_sampling
from seeds.experiments.problems.mixtures import ring_mixture
from seeds.solvers import sample_ddpm, sample_dpm_solver_pp_2m, sample_sde_dpm_solver_pp_2m

try:
    K = k_diffusion_sampling()
except ModuleNotFoundError as error:  # the peers are installed by `make test`'s set-up (make peers)
    pytest.skip(str(error), allow_module_level=True)

PROBLEM = ring_mixture()
SIGMAS = K.get_sigmas_karras(12, 0.002, 80.0, device="cpu").double()


def _noise_sampler(seed):
    generator = torch.Generator().manual_seed(seed)
    return lambda sigma, sigma_next: torch.randn((64, 2), generator=generator, dtype=torch.float64)


@pytest.mark.parametrize(
    "ours, theirs, stochastic",
    [
        (sample_dpm_solver_pp_2m, K.sample_dpmpp_2m, False),
        (sample_ddpm, K.sample_euler_ancestral, True),
        (sample_sde_dpm_solver_pp_2m, K.sample_dpmpp_2m_sde, True),
    ],
)
def test_same_method_same_output(ours, theirs, stochastic):
    x = 80.0 * torch.randn((64, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    options = {"noise_sampler": _noise_sampler(1)} if stochastic else {}
    mine = ours(PROBLEM, x.clone(), SIGMAS, **options)
    options = {"noise_sampler": _noise_sampler(1)} if stochastic else {}
    peer = theirs(PROBLEM, x.clone(), SIGMAS, disable=True, **options)
    assert (mine - peer).abs().max().item() <= 1e-10


def test_the_comparison_grid_is_k_diffusions_karras_grid():
    for budget, per_step in [(7, 1), (13, 2), (25, 3)]:
        steps = (budget - 1) // per_step
        expected = K.get_sigmas_karras(steps + 1, 0.002, 80.0, rho=7.0, device="cpu").double()
        # k-diffusion builds its grid in float32: agreement to its rounding
        assert torch.allclose(peers.karras_sigmas(budget, per_step), expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("sampler", PEER_SAMPLERS, ids=lambda s: s.label)
def test_every_compared_sampler_spends_exactly_the_budget(sampler):
    """The figure's x axis is counted NFE; the budgets are chosen so that every sampler meets them exactly."""
    model = peers.CountingDenoiser(PROBLEM)
    x = PROBLEM.sample_marginal(32, 80.0, torch.Generator().manual_seed(0))
    for budget in (7, 13):
        samples, nfe = peers.draw(sampler, model, x, budget, seed=1)
        assert nfe == budget
        assert samples.shape == x.shape and torch.isfinite(samples).all()
