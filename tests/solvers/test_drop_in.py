"""The k-diffusion-style samplers follow k-diffusion's and ComfyUI's conventions exactly (docs/drop-in.md).

k-diffusion runs in this process (k_diffusion_sampling()); ComfyUI is not installable here, so its published
`sample_seeds_2` / `sample_seeds_3` formulas are written out below, in this module's own terms, as a reference
(`comfy_seeds`). Every comparison feeds both sides the same noise sampler and asks for agreement to 1e-10 in
float64.
"""

from __future__ import annotations

import inspect
import math
import zlib

import pytest
import torch

from seeds.experiments.jobs.peers import k_diffusion_sampling
from seeds.solvers import (
    sample,
    sample_ddpm,
    sample_dpm_solver_pp_2m,
    sample_sde_dpm_solver_pp_2m,
    sample_seeds_2,
    sample_seeds_3,
)
from tests.solver_problems import mixture_denoiser

try:
    K = k_diffusion_sampling()
except ModuleNotFoundError as error:  # the peers are installed by `make test`'s set-up (make peers)
    pytest.skip(str(error), allow_module_level=True)

TOLERANCE = 1e-10
ETAS = (0.0, 0.3, 0.7, 1.0)
SHAPE = (16, 2)
MODEL = mixture_denoiser()


def karras(steps, end_with_zero=True):
    """EDM levels 80 -> 0.002 (rho = 7), in float64: consecutive steps have different lengths in lambda, so a
    multistep method sees a different ratio r = h_prev / h at every step."""
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    levels = (80.0 ** (1 / 7) + ramp * (0.002 ** (1 / 7) - 80.0 ** (1 / 7))) ** 7
    return torch.cat([levels, levels.new_zeros(1)]) if end_with_zero else levels


def irregular(steps, seed=0):
    """Strictly decreasing levels with random gaps in log sigma, then 0."""
    gaps = torch.rand(steps - 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.2
    log_levels = math.log(80.0) - torch.cat([gaps.new_zeros(1), gaps.cumsum(0)]) / gaps.sum() * math.log(4e4)
    return torch.cat([log_levels.exp(), gaps.new_zeros(1)])


GRIDS = {"karras": karras(10), "irregular": irregular(9), "karras, no final zero": karras(8, False)}


def interval_noise(seed):
    """A noise sampler whose normals are a function of the interval (sigma, sigma_next) only, so both sides
    get the same normals exactly when they ask for the same intervals (log sigma rounded to 9 digits absorbs
    the last-bit differences of how each side computes a stage's sigma)."""

    def noise_sampler(sigma, sigma_next):
        key = repr((round(math.log(float(sigma)), 9), round(math.log(float(sigma_next)), 9)))
        generator = torch.Generator().manual_seed(seed * 2**32 + zlib.crc32(key.encode()))
        return torch.randn(SHAPE, generator=generator, dtype=torch.float64)

    return noise_sampler


def start(seed=0):
    return 80.0 * torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def largest_difference(a, b):
    return (a - b).abs().max().item()


# ------------------------------------------------------------------------------------------- k-diffusion


def test_the_eta_of_the_drop_in_functions_is_the_square_of_the_drivers():
    x, sigmas = start(), GRIDS["karras"]
    for eta in ETAS:
        drop_in = sample_seeds_2(MODEL, x, sigmas, eta=eta, noise_sampler=interval_noise(1))
        driver = sample(MODEL, x, sigmas, method="seeds-2", eta=math.sqrt(eta), path=interval_noise(1))
        assert torch.equal(drop_in, driver.samples), eta


@pytest.mark.parametrize("grid", GRIDS)
def test_dpm_solver_pp_2m_is_k_diffusions_dpmpp_2m(grid):
    x, sigmas = start(), GRIDS[grid]
    ours = sample_dpm_solver_pp_2m(MODEL, x.clone(), sigmas)
    theirs = K.sample_dpmpp_2m(MODEL, x.clone(), sigmas, disable=True)
    assert largest_difference(ours, theirs) <= TOLERANCE


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("solver_type", ["midpoint", "heun"])
@pytest.mark.parametrize("eta", ETAS)
@pytest.mark.parametrize("s_noise", [1.0, 0.6])
def test_sde_dpm_solver_pp_2m_is_k_diffusions_dpmpp_2m_sde(grid, solver_type, eta, s_noise):
    x, sigmas = start(), GRIDS[grid]
    options = {"eta": eta, "s_noise": s_noise, "solver_type": solver_type}
    ours = sample_sde_dpm_solver_pp_2m(MODEL, x.clone(), sigmas, noise_sampler=interval_noise(2), **options)
    theirs = K.sample_dpmpp_2m_sde(
        MODEL, x.clone(), sigmas, disable=True, noise_sampler=interval_noise(2), **options
    )
    assert largest_difference(ours, theirs) <= TOLERANCE


def test_the_two_solver_types_of_2m_sde_differ_and_both_reach_k_diffusion_with_its_brownian_tree():
    x, sigmas = start(), GRIDS["karras"]
    levels = sigmas[sigmas > 0]
    outputs = {}
    for solver_type in ("midpoint", "heun"):
        runs = [
            function(
                MODEL,
                x.clone(),
                sigmas,
                eta=0.7,
                solver_type=solver_type,
                noise_sampler=K.BrownianTreeNoiseSampler(x, levels.min(), levels.max(), seed=4),
                **extra,
            )
            for function, extra in (
                (sample_sde_dpm_solver_pp_2m, {}),
                (K.sample_dpmpp_2m_sde, {"disable": True}),
            )
        ]
        assert largest_difference(*runs) <= TOLERANCE
        outputs[solver_type] = runs[0]
    assert largest_difference(outputs["midpoint"], outputs["heun"]) > 1e-3


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("eta", ETAS)
@pytest.mark.parametrize("s_noise", [1.0, 0.6])
def test_ddpm_is_k_diffusions_euler_ancestral(grid, eta, s_noise):
    x, sigmas = start(), GRIDS[grid]
    options = {"eta": eta, "s_noise": s_noise}
    ours = sample_ddpm(MODEL, x.clone(), sigmas, noise_sampler=interval_noise(3), **options)
    theirs = K.sample_euler_ancestral(
        MODEL, x.clone(), sigmas, disable=True, noise_sampler=interval_noise(3), **options
    )
    assert largest_difference(ours, theirs) <= TOLERANCE


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (sample_dpm_solver_pp_2m, K.sample_dpmpp_2m),
        (sample_sde_dpm_solver_pp_2m, K.sample_dpmpp_2m_sde),
        (sample_ddpm, K.sample_euler_ancestral),
    ],
)
def test_same_parameters_and_defaults_as_k_diffusion(ours, theirs):
    assert _parameters(ours) == _parameters(theirs)


@pytest.mark.parametrize(
    "ours, theirs, options",
    [
        (sample_dpm_solver_pp_2m, K.sample_dpmpp_2m, {}),
        (
            sample_sde_dpm_solver_pp_2m,
            K.sample_dpmpp_2m_sde,
            {"eta": 0.3, "noise_sampler": interval_noise(5)},
        ),
        (sample_ddpm, K.sample_euler_ancestral, {"eta": 0.7, "noise_sampler": interval_noise(5)}),
    ],
)
def test_callback_sees_what_k_diffusions_sees(ours, theirs, options):
    """Every step's state at its start, its sigma and the denoised value there, the step to 0 included."""
    x, sigmas = start(), GRIDS["karras"]
    seen = {"ours": [], "theirs": []}
    ours(MODEL, x.clone(), sigmas, callback=seen["ours"].append, **options)
    theirs(MODEL, x.clone(), sigmas, callback=seen["theirs"].append, disable=True, **options)
    assert [info["i"] for info in seen["ours"]] == [info["i"] for info in seen["theirs"]]
    assert [info["i"] for info in seen["ours"]] == list(range(len(sigmas) - 1))
    for mine, peer in zip(seen["ours"], seen["theirs"], strict=True):
        assert math.isclose(float(mine["sigma"]), float(peer["sigma"]), rel_tol=1e-14)
        assert largest_difference(mine["x"], peer["x"]) <= TOLERANCE
        assert largest_difference(mine["denoised"], peer["denoised"]) <= TOLERANCE


# --------------------------------------------------------------------------------- ComfyUI's SEEDS-2 and -3


def comfy_seeds(model, x, sigmas, eta, s_noise, noise_sampler, fractions, slope_weight="phi_2"):
    """ComfyUI's published sample_seeds_2 / sample_seeds_3 (data prediction), for alpha = 1 (VE/EDM sigmas,
    half-log-SNR lambda = -log sigma), restated: each step runs stages at `fractions` of the step in lambda,
    the last of which is 1. With E = (1 + eta) h, a stage ending at fraction c is

        u_c = e^{-c E} x + (1 - e^{-c E}) D_s + w_c (D_j - D_s) + sigma_c s_noise n_c

    where D_j is the denoised value at the previous stage (fraction c_j), w_c = (c E - (1 - e^{-c E})) / (c_j E)
    (ComfyUI's phi_2 weight; seeds_2 with solver_type="phi_1" uses (1 - e^{-E}) / (2 c_j) in the last stage),
    and the unit-variance noise n_c accumulates over the stage intervals:
    n_c = e^{-(c - c_prev) h eta} n_prev + sqrt(1 - e^{-2 (c - c_prev) h eta}) z, z = noise_sampler(sigma_prev, sigma_c).
    No noise is drawn when eta = 0 or s_noise = 0; a step to sigma = 0 returns D_s."""
    levels = sigmas.tolist()
    for i in range(len(levels) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma.expand(x.shape[0]))
        if levels[i + 1] == 0:
            x = denoised
            continue
        lam_s = -math.log(levels[i])
        h = -math.log(levels[i + 1]) - lam_s
        exponent = (1 + eta) * h
        draws_noise = eta > 0 and s_noise > 0
        unit_noise, previous_fraction, previous_sigma = 0.0, 0.0, sigma
        stage_denoised = denoised
        for fraction in fractions:
            sigma_c = sigma_next if fraction == 1 else sigma.new_tensor(math.exp(-(lam_s + fraction * h)))
            kept = -math.expm1(-fraction * exponent)
            u = math.exp(-fraction * exponent) * x + kept * denoised
            if previous_fraction > 0:
                if slope_weight == "phi_1":
                    weight = kept / (2 * previous_fraction)
                else:
                    weight = (fraction * exponent - kept) / (previous_fraction * exponent)
                u = u + weight * (stage_denoised - denoised)
            if draws_noise:
                piece = (fraction - previous_fraction) * h * eta
                unit_noise = math.exp(-piece) * unit_noise + math.sqrt(
                    -math.expm1(-2 * piece)
                ) * noise_sampler(previous_sigma, sigma_c)
                u = u + float(sigma_c) * s_noise * unit_noise
            if fraction == 1:
                x = u
            else:
                stage_denoised = model(u, sigma_c.expand(x.shape[0]))
            previous_fraction, previous_sigma = fraction, sigma_c
    return x


COMFY_SEEDS_2 = [
    ("model", None),
    ("x", None),
    ("sigmas", None),
    ("extra_args", None),
    ("callback", None),
    ("disable", None),
    ("eta", 1.0),
    ("s_noise", 1.0),
    ("noise_sampler", None),
    ("r", 0.5),
    ("solver_type", "phi_1"),
]
COMFY_SEEDS_3 = COMFY_SEEDS_2[:9] + [("r_1", 1.0 / 3), ("r_2", 2.0 / 3)]


@pytest.mark.parametrize("ours, theirs", [(sample_seeds_2, COMFY_SEEDS_2), (sample_seeds_3, COMFY_SEEDS_3)])
def test_comfyui_parameters_and_defaults_then_ours(ours, theirs):
    parameters = _parameters(ours)
    assert parameters[: len(theirs)] == theirs
    assert parameters[len(theirs) :] == [("prediction", "data"), ("sigma_data", 0.5)]


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("solver_type", ["phi_1", "phi_2"])
@pytest.mark.parametrize("r", [0.5, 0.3])
@pytest.mark.parametrize("eta", ETAS)
def test_seeds_2_is_comfyuis(grid, solver_type, r, eta):
    x, sigmas = start(), GRIDS[grid]
    ours = sample_seeds_2(
        MODEL, x, sigmas, eta=eta, r=r, solver_type=solver_type, noise_sampler=interval_noise(6)
    )
    reference = comfy_seeds(MODEL, x, sigmas, eta, 1.0, interval_noise(6), (r, 1.0), solver_type)
    assert largest_difference(ours, reference) <= TOLERANCE


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("fractions", [(1 / 3, 2 / 3), (0.25, 0.6)])
@pytest.mark.parametrize("eta", ETAS)
def test_seeds_3_is_comfyuis(grid, fractions, eta):
    x, sigmas = start(), GRIDS[grid]
    r_1, r_2 = fractions
    ours = sample_seeds_3(MODEL, x, sigmas, eta=eta, r_1=r_1, r_2=r_2, noise_sampler=interval_noise(7))
    reference = comfy_seeds(MODEL, x, sigmas, eta, 1.0, interval_noise(7), (r_1, r_2, 1.0))
    assert largest_difference(ours, reference) <= TOLERANCE


@pytest.mark.parametrize("s_noise", [0.0, 0.6, 1.3])
def test_seeds_2_and_3_scale_noise_as_comfyui(s_noise):
    x, sigmas = start(), GRIDS["irregular"]
    ours = sample_seeds_2(
        MODEL,
        x,
        sigmas,
        eta=0.7,
        s_noise=s_noise,
        r=0.3,
        solver_type="phi_2",
        noise_sampler=interval_noise(8),
    )
    reference = comfy_seeds(MODEL, x, sigmas, 0.7, s_noise, interval_noise(8), (0.3, 1.0))
    assert largest_difference(ours, reference) <= TOLERANCE
    ours = sample_seeds_3(
        MODEL, x, sigmas, eta=0.3, s_noise=s_noise, r_1=0.25, r_2=0.6, noise_sampler=interval_noise(8)
    )
    reference = comfy_seeds(MODEL, x, sigmas, 0.3, s_noise, interval_noise(8), (0.25, 0.6, 1.0))
    assert largest_difference(ours, reference) <= TOLERANCE


def test_the_reference_is_not_blind_to_the_eta_convention():
    """Run at the driver's eta instead of its square, ComfyUI's formulas give another result."""
    x, sigmas = start(), GRIDS["karras"]
    reference = comfy_seeds(MODEL, x, sigmas, 0.3, 1.0, interval_noise(9), (0.5, 1.0), "phi_1")
    unmapped = sample(MODEL, x, sigmas, method="seeds-2", eta=0.3, path=interval_noise(9)).samples
    assert largest_difference(unmapped, reference) > 1e-3


# ---------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "call",
    [
        lambda x, s: sample_seeds_2(MODEL, x, s, eta=1.5),
        lambda x, s: sample_seeds_3(MODEL, x, s, eta=-0.1),
        lambda x, s: sample_sde_dpm_solver_pp_2m(MODEL, x, s, eta=2.0),
        lambda x, s: sample_ddpm(MODEL, x, s, eta=1.2),
        lambda x, s: sample_seeds_2(MODEL, x, s, solver_type="midpoint"),
        lambda x, s: sample_sde_dpm_solver_pp_2m(MODEL, x, s, solver_type="phi_2"),
    ],
)
def test_refuses_eta_outside_the_unit_interval_and_unknown_solver_types(call):
    with pytest.raises(ValueError):
        call(start(), GRIDS["karras"])


def _parameters(function):
    return [
        (name, None if parameter.default is inspect.Parameter.empty else parameter.default)
        for name, parameter in inspect.signature(function).parameters.items()
    ]
