"""Agreement with k-diffusion where the methods are mathematically the same (docs/benchmarks.md): given the
same sigmas and the same standard normals, the outputs agree to 1e-10 in float64."""

from __future__ import annotations

import pytest
import torch

from seeds.experiments.config import ESRA_SAMPLERS, PEER_SAMPLERS
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


@pytest.mark.parametrize(
    "sampler", list({s.label: s for s in PEER_SAMPLERS + ESRA_SAMPLERS}.values()), ids=lambda s: s.label
)
def test_every_compared_sampler_spends_exactly_the_budget(sampler):
    """The figure's x axis is counted NFE; the budgets are chosen so that every sampler meets them exactly."""
    model = peers.CountingDenoiser(PROBLEM)
    x = PROBLEM.sample_marginal(32, 80.0, torch.Generator().manual_seed(0))
    for budget in (7, 13):
        samples, nfe = peers.draw(sampler, model, x, budget, seed=1)
        assert nfe == budget
        assert samples.shape == x.shape and torch.isfinite(samples).all()


def test_esra_quality_job_writes_intervals_table_and_figure(tmp_path, monkeypatch):
    """The job end to end on a small stand-in problem: every sampler at every budget, each distance with its
    bootstrap interval around it, and the figure."""
    from seeds.experiments.jobs import esra_quality

    problem = ring_mixture()
    floor = 0.01

    def quality(samples):
        interval = peers.frechet_bootstrap(
            samples.double().numpy(),
            peers.FeatureStatistics(problem.marginal_mean(), problem.marginal_covariance(0.0)),
            resamples=50,
            seed=0,
        )
        return {"frechet": interval["fid"], "frechet_ci": [interval["low"], interval["high"]]}

    def start(count, seed):
        return problem.sample_marginal(count, 80.0, torch.Generator().manual_seed(seed))

    stand_in = {"ring": ("ring", peers.CountingDenoiser(problem), start, quality, floor)}
    monkeypatch.setattr(peers, "problems", lambda: stand_in)
    monkeypatch.setitem(peers.PEER_PROBLEM_SAMPLES, "ring", 64)
    monkeypatch.setattr(esra_quality, "ESRA_NFE_BUDGETS", (7, 13))
    text = esra_quality.run(tmp_path / "results", tmp_path / "figures")
    rows = [
        line for line in text.splitlines() if line.startswith("| ours") or line.startswith("| k-diffusion")
    ]
    assert len(rows) == len(ESRA_SAMPLERS)
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")[1:]]
        for cell in cells:
            point, interval = cell.split(" [")
            low, high = (float(v) for v in interval.rstrip("]").split(", "))
            assert low <= high and float(point) > 0
    assert (tmp_path / "figures" / "esra_quality.png").exists()
    assert (tmp_path / "results" / "esra_quality.json").exists()
