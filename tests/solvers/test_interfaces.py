"""The k-diffusion-compatible samplers and the `seeds sample` command line."""

import inspect
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from seeds.solvers import EDM, GRIDS, sample, sample_seeds_1, sample_seeds_2, sample_seeds_3
from seeds.solvers.brownian import BrownianPath
from tests.solver_problems import mixture_denoiser

K_DIFFUSION_PARAMETERS = [
    "model",
    "x",
    "sigmas",
    "extra_args",
    "callback",
    "disable",
    "eta",
    "s_noise",
    "noise_sampler",
]


def karras_sigmas(steps, sigma_min=0.002, sigma_max=80.0):
    schedule = EDM(t_min=sigma_min, t_max=sigma_max)
    return torch.cat([schedule.vs(GRIDS["edm"](schedule, steps - 1)), torch.zeros(1, dtype=torch.float64)])


@pytest.mark.parametrize("sampler", [sample_seeds_1, sample_seeds_2, sample_seeds_3])
def test_signature_matches_k_diffusion(sampler):
    parameters = list(inspect.signature(sampler).parameters)
    assert parameters[: len(K_DIFFUSION_PARAMETERS)] == K_DIFFUSION_PARAMETERS
    defaults = inspect.signature(sampler).parameters
    assert defaults["eta"].default == 1.0 and defaults["s_noise"].default == 1.0
    assert defaults["noise_sampler"].default is None


@pytest.mark.parametrize(
    ("sampler", "stages"), [(sample_seeds_1, 1), (sample_seeds_2, 2), (sample_seeds_3, 3)]
)
def test_final_zero_sigma_returns_the_denoised_value_and_callback_sees_every_step(sampler, stages):
    x = torch.randn(16, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 80.0
    sigmas = karras_sigmas(8)
    seen = []
    calls = {"n": 0}
    model = mixture_denoiser()

    def counting(x, sigma):
        calls["n"] += 1
        return model(x, sigma)

    states = {}

    def remember(info):
        seen.append(info["i"])
        states[info["i"]] = info["x"]  # as in k-diffusion: the state at the start of step i

    out = sampler(counting, x, sigmas, callback=remember)
    assert seen == list(range(len(sigmas) - 1))
    assert torch.equal(states[0], x)
    assert calls["n"] == stages * (len(sigmas) - 2) + 1  # the step to 0 is one denoising evaluation
    last_level = sigmas[-2].expand(x.shape[0])
    assert torch.equal(out, model(states[len(sigmas) - 2], last_level))


def test_global_generator_when_no_noise_sampler_and_brownian_path_as_noise_sampler():
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 80.0
    sigmas = karras_sigmas(10)
    torch.manual_seed(123)
    first = sample_seeds_2(mixture_denoiser(), x, sigmas)
    torch.manual_seed(123)
    second = sample_seeds_2(mixture_denoiser(), x, sigmas)
    assert torch.equal(first, second)
    path = BrownianPath(x, 0.002, 80.0, seed=list(range(8)))
    via_interface = sample_seeds_3(mixture_denoiser(), x, sigmas, noise_sampler=path)
    via_driver = sample(mixture_denoiser(), x, sigmas, method="seeds-3", path=path).samples
    assert torch.equal(via_interface, via_driver)


def test_eta_zero_is_deterministic_and_prediction_option_is_passed():
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 80.0
    sigmas = karras_sigmas(10)
    ode = sample_seeds_2(mixture_denoiser(), x, sigmas, eta=0.0, prediction="noise")
    reference = sample(mixture_denoiser(), x, sigmas, method="dpm-solver-2").samples
    assert torch.allclose(ode, reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("noise", ["tree", "adaptive"])
def test_seeds_sample_command_writes_npy(tmp_path, noise):
    output = tmp_path / "ring.npy"
    command = [
        sys.executable,
        "-m",
        "seeds.experiments.cli",
        "sample",
        "--problem",
        "ring",
        "--method",
        "seeds-2",
        "--steps",
        "6",
        "--count",
        "50",
        "--seed",
        "3",
        "--output",
        str(output),
        "--noise",
        noise,
        "--quiet",
    ]
    completed = subprocess.run(command, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    samples = np.load(output)
    assert samples.shape == (50, 2) and np.isfinite(samples).all()
    assert math.isclose(np.sqrt((samples**2).sum(1)).mean(), 2.0, rel_tol=0.2)  # the ring has radius 2
