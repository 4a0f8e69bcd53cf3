"""Agreement with k-diffusion where the methods are mathematically the same (issue 6, section 3): given the
same sigmas and the same standard normals, the outputs agree to 1e-10 in float64."""

from __future__ import annotations

import pytest
import torch

from seeds.experiments.peers import k_diffusion_sampling
from seeds.experiments.problems import ring_mixture
from seeds.solvers import sampling

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
        (sampling.sample_dpm_solver_pp_2m, K.sample_dpmpp_2m, False),
        (sampling.sample_ddpm, K.sample_euler_ancestral, True),
        (sampling.sample_sde_dpm_solver_pp_2m, K.sample_dpmpp_2m_sde, True),
    ],
)
def test_same_method_same_output(ours, theirs, stochastic):
    x = 80.0 * torch.randn((64, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    options = {"noise_sampler": _noise_sampler(1)} if stochastic else {}
    mine = ours(PROBLEM, x.clone(), SIGMAS, **options)
    options = {"noise_sampler": _noise_sampler(1)} if stochastic else {}
    peer = theirs(PROBLEM, x.clone(), SIGMAS, disable=True, **options)
    assert (mine - peer).abs().max().item() <= 1e-10
