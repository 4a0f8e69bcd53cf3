"""eta = 0: SEEDS-k is DPM-Solver-k (noise) and singlestep DPM-Solver++ (data), to 1e-12 in float64.

The references below are written independently from Lu et al. (2022, 2022b) in x~ = x/alpha coordinates,
with h = lambda_t - lambda_s; the model is a nonlinear exact mixture denoiser and the grids are random.
"""

import math

import pytest
import torch

from seeds.solvers import sample
from tests.solver_problems import mixture_denoiser

DENOISER = mixture_denoiser()


def eps_model(x, s):
    return (x - DENOISER(x, torch.full((x.shape[0],), s, dtype=x.dtype))) / s


def data_model(x, s):
    return DENOISER(x, torch.full((x.shape[0],), s, dtype=x.dtype))


def dpm_solver(x, sigmas, order, r1, r2):
    for s, t in zip(sigmas[:-1], sigmas[1:]):
        h = math.log(s / t)
        e_s = eps_model(x, s)
        if order == 1:
            x = x - t * math.expm1(h) * e_s
        elif order == 2:
            s1 = s * math.exp(-r1 * h)
            e_1 = eps_model(x - s1 * math.expm1(r1 * h) * e_s, s1)
            x = x - t * math.expm1(h) * e_s - t / (2 * r1) * math.expm1(h) * (e_1 - e_s)
        else:
            s1, s2 = s * math.exp(-r1 * h), s * math.exp(-r2 * h)
            e_1 = eps_model(x - s1 * math.expm1(r1 * h) * e_s, s1)
            phi_22 = math.expm1(r2 * h) / (r2 * h) - 1
            u_2 = x - s2 * math.expm1(r2 * h) * e_s - s2 * (r2 / r1) * phi_22 * (e_1 - e_s)
            e_2 = eps_model(u_2, s2)
            x = x - t * math.expm1(h) * e_s - t / r2 * (math.expm1(h) / h - 1) * (e_2 - e_s)
    return x


def dpm_solver_pp(x, sigmas, order, r1, r2):
    for s, t in zip(sigmas[:-1], sigmas[1:]):
        h = math.log(s / t)
        d_s = data_model(x, s)
        if order == 1:
            x = (t / s) * x - math.expm1(-h) * d_s
        elif order == 2:
            s1 = s * math.exp(-r1 * h)
            d_1 = data_model((s1 / s) * x - math.expm1(-r1 * h) * d_s, s1)
            x = (t / s) * x - math.expm1(-h) * d_s - 1 / (2 * r1) * math.expm1(-h) * (d_1 - d_s)
        else:
            s1, s2 = s * math.exp(-r1 * h), s * math.exp(-r2 * h)
            d_1 = data_model((s1 / s) * x - math.expm1(-r1 * h) * d_s, s1)
            phi_22 = math.expm1(-r2 * h) / (r2 * h) + 1
            d_2 = data_model((s2 / s) * x - math.expm1(-r2 * h) * d_s + (r2 / r1) * phi_22 * (d_1 - d_s), s2)
            x = (t / s) * x - math.expm1(-h) * d_s + (1 / r2) * (math.expm1(-h) / h + 1) * (d_2 - d_s)
    return x


def dpm_solver_pp_2m(x, sigmas):
    previous = None
    for s, t in zip(sigmas[:-1], sigmas[1:]):
        h = math.log(s / t)
        d_s = data_model(x, s)
        if previous is None:
            x = (t / s) * x - math.expm1(-h) * d_s
        else:
            r = previous[1] / h
            x = (t / s) * x - math.expm1(-h) * ((1 + 1 / (2 * r)) * d_s - 1 / (2 * r) * previous[0])
        previous = (d_s, h)
    return x


def random_grid(seed, steps):
    generator = torch.Generator().manual_seed(seed)
    inner = torch.rand(steps - 1, generator=generator, dtype=torch.float64)
    log_levels = math.log(80.0) + inner * (math.log(0.002) - math.log(80.0))
    levels = torch.cat([torch.tensor([80.0]), torch.exp(log_levels), torch.tensor([0.002])])
    return torch.sort(levels, descending=True).values.tolist()


def start(seed):
    return torch.randn(64, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 80.0


def assert_close(ours, reference):
    scale = reference.abs().max()
    assert (ours - reference).abs().max() <= 1e-12 * scale, float((ours - reference).abs().max() / scale)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_eta0_seeds_is_dpm_solver(seed, order):
    sigmas, x = random_grid(seed, 7 + seed), start(seed)
    options = {1: {}, 2: {"c2": 0.4}, 3: {"c2": 0.3, "c3": 0.7}}[order]
    r1, r2 = options.get("c2", 0.5), options.get("c3", 0.0)
    ours = sample(
        DENOISER, x, sigmas, method=f"seeds-{order}", prediction="noise", eta=0.0, **options
    ).samples
    assert_close(ours, dpm_solver(x, sigmas, order, r1, r2))
    alias = sample(DENOISER, x, sigmas, method=f"dpm-solver-{order}", **options).samples
    assert_close(alias, dpm_solver(x, sigmas, order, r1, r2))


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_eta0_seeds_data_is_singlestep_dpm_solver_pp(seed, order):
    sigmas, x = random_grid(seed, 9), start(seed)
    options = {1: {}, 2: {"c2": 0.5}, 3: {"c2": 1 / 3, "c3": 2 / 3}}[order]
    r1, r2 = options.get("c2", 0.5), options.get("c3", 0.0)
    ours = sample(DENOISER, x, sigmas, method=f"seeds-{order}", prediction="data", eta=0.0, **options).samples
    assert_close(ours, dpm_solver_pp(x, sigmas, order, r1, r2))


def test_dpm_solver_pp_2m_matches_reference():
    sigmas, x = random_grid(5, 12), start(5)
    assert_close(sample(DENOISER, x, sigmas, method="dpm-solver++-2m").samples, dpm_solver_pp_2m(x, sigmas))
