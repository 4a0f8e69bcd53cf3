"""Schedules, grids and model adapters (the first two of the three solver concerns)."""

import math

import pytest
import torch

from seeds.solvers import (
    EDM,
    GRIDS,
    VE,
    DataNetwork,
    EDMNetwork,
    EpsNetwork,
    GridError,
    ScoreNetwork,
    VelocityNetwork,
    VPCosine,
    VPLinear,
    sample,
)
from seeds.solvers.models import ModelEvaluator, convert, edm_preconditioning
from seeds.solvers.schedules import check_time_grid, check_vs_grid

SCHEDULES = [VPLinear(), VPCosine(), VE(), EDM()]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
def test_lambda_round_trip_and_vp_identity(schedule):
    t = torch.linspace(schedule.t_min, schedule.t_max, 50, dtype=torch.float64)
    lam = schedule.log_snr(t)
    assert (lam[1:] < lam[:-1]).all()  # lambda decreases as t moves towards noise
    assert torch.allclose(schedule.t_of_log_snr(lam), t, rtol=1e-12, atol=1e-13)
    alpha, sigma = schedule.alpha(t), schedule.sigma(t)
    assert torch.allclose(torch.log(alpha / sigma), lam, rtol=0, atol=1e-12)
    if isinstance(schedule, (VPLinear, VPCosine)):
        assert torch.allclose(alpha**2 + sigma**2, torch.ones_like(t), atol=1e-12)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("kind", sorted(GRIDS))
def test_grids_run_from_t_max_to_t_min_strictly(schedule, kind):
    times = GRIDS[kind](schedule, 10)
    assert times.shape == (11,)
    assert times[0] == schedule.t_max and times[-1] == schedule.t_min
    check_time_grid(schedule, times)
    if kind == "lambda":
        steps = torch.diff(schedule.log_snr(times))
        assert torch.allclose(steps, steps.mean().expand_as(steps), rtol=1e-9)


def test_edm_grid_is_karras_rho_7():
    schedule = EDM()
    sigmas = schedule.vs(GRIDS["edm"](schedule, 4))
    ramp = torch.linspace(0, 1, 5, dtype=torch.float64)
    expected = (80 ** (1 / 7) + ramp * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert torch.allclose(sigmas, expected, rtol=1e-13)


def test_bad_grids_are_refused():
    schedule = EDM()
    with pytest.raises(GridError, match="strictly decreasing: t\\[1\\] = 5.0, t\\[2\\] = 5.0"):
        check_time_grid(schedule, [10.0, 5.0, 5.0])
    with pytest.raises(GridError, match="leaves the schedule's range"):
        check_time_grid(schedule, [100.0, 1.0])
    with pytest.raises(GridError, match="NaN or Inf"):
        check_time_grid(schedule, [10.0, float("inf")])
    with pytest.raises(GridError, match="positive integer"):
        GRIDS["lambda"](schedule, 0)
    with pytest.raises(GridError, match="at least 2 noise levels"):
        check_vs_grid([1.0])
    assert check_vs_grid([10.0, 1.0, 0.0]).tolist() == [10.0, 1.0, 0.0]


# --------------------------------------------------------------------------------------------- adapters

DATA_VARIANCE = 0.3


def exact_denoised(x_tilde, vs):
    return DATA_VARIANCE / (DATA_VARIANCE + vs**2) * x_tilde


def _network_outputs(schedule):
    """Networks in their own coordinates for Gaussian data, built from the exact denoiser."""

    def per(values, x):
        return values.reshape(-1, *([1] * (x.ndim - 1)))

    def parts(x_t, t):
        alpha = per(schedule.alpha(t), x_t)
        sigma = per(schedule.sigma(t), x_t)
        x0 = exact_denoised(x_t / alpha, sigma / alpha)
        eps = (x_t - alpha * x0) / sigma
        return alpha, sigma, x0, eps

    def eps_net(x_t, t, scale=1.0):
        return parts(x_t, t)[3] * scale

    def data_net(x_t, t):
        return parts(x_t, t)[2]

    def velocity_net(x_t, t):
        alpha, sigma, x0, eps = parts(x_t, t)
        return alpha * eps - sigma * x0

    def score_net(x_t, t):
        alpha, sigma, _, eps = parts(x_t, t)
        return -eps / sigma

    return eps_net, data_net, velocity_net, score_net


@pytest.mark.parametrize("schedule", [VPLinear(), VPCosine()], ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("target", ["noise", "data", "edm"])
def test_every_adapter_gives_the_same_model_output(schedule, target):
    eps_net, data_net, velocity_net, score_net = _network_outputs(schedule)
    x = torch.randn(5, 3, dtype=torch.float64)
    vs = 0.7
    adapters = [
        EpsNetwork(eps_net, schedule),
        DataNetwork(data_net, schedule),
        ScoreNetwork(score_net, schedule),
    ]
    adapters.append(VelocityNetwork(velocity_net, schedule))
    values = [ModelEvaluator(adapter, target)(x, vs) for adapter in adapters]
    level = torch.tensor(vs, dtype=torch.float64)
    expected = convert("data", exact_denoised(x, level), x, level, target)
    for value in values:
        assert torch.allclose(value, expected, rtol=1e-10, atol=1e-12)


def test_edm_network_and_conditioning_arguments_pass_through():
    sigma_data = 0.5

    def raw(x_in, c_noise, label=None):
        assert label == "seven"
        vs = torch.exp(4 * c_noise).reshape(-1, 1)
        x = x_in * torch.sqrt(vs**2 + sigma_data**2)
        c_skip, c_out = edm_preconditioning(vs, sigma_data)
        return (exact_denoised(x, vs) - c_skip * x) / c_out

    x = torch.randn(4, 1, dtype=torch.float64)
    value = ModelEvaluator(EDMNetwork(raw, sigma_data), "data", extra_args={"label": "seven"})(x, 2.0)
    assert torch.allclose(value, exact_denoised(x, torch.tensor(2.0, dtype=torch.float64)), rtol=1e-12)


def test_vp_network_samples_like_the_equivalent_denoiser():
    schedule = VPLinear()
    eps_net = _network_outputs(schedule)[0]
    sigmas = schedule.vs(GRIDS["lambda"](schedule, 12))
    x = torch.randn(16, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * float(sigmas[0])
    through_network = sample(EpsNetwork(eps_net, schedule), x, sigmas, method="dpm-solver-3").samples

    def denoiser(x, sigma):
        return exact_denoised(x, sigma.reshape(-1, 1))

    direct = sample(denoiser, x, sigmas, method="dpm-solver-3").samples
    assert torch.allclose(through_network, direct, rtol=1e-9, atol=1e-12)
    assert math.isfinite(float(direct.sum()))
