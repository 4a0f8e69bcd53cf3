"""The driver `sample` and k-diffusion-compatible `sample_*` functions.

Both take x at the scale of sigmas[0] in VE coordinates (x~ of docs/mathematics.md, "Coordinates") and a strictly
decreasing sequence of noise levels sigmas (vs = sigma/alpha), which may end with 0: the step to 0 returns
the denoised value at the last positive level, as k-diffusion does (one extra model evaluation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from seeds.solvers.brownian import IndependentPieces
from seeds.solvers.methods import CHOOSE_PREDICTION, make_method
from seeds.solvers.models import ModelEvaluator, check_prediction, convert
from seeds.solvers.schedules import check_vs_grid


@dataclass
class SampleResult:
    samples: torch.Tensor
    nfe: int  # model evaluations counted by the driver


def sample(
    model,
    x,
    sigmas,
    method="seeds-3",
    prediction="data",
    path=None,
    callback=None,
    progress=False,
    extra_args=None,
    dtype=torch.float64,
    **options,
) -> SampleResult:
    """Solve from sigmas[0] to sigmas[-1] with `method` (a name of METHODS, with its options); the solver
    state is `dtype` (float64 by default) while the model is called in x's dtype.

    `path` supplies all noise of stochastic methods: a noise source of seeds.solvers.brownian (BrownianPath,
    AdaptiveBrownianPath, PartitionPath, IndependentPieces) or a k-diffusion noise_sampler(sigma,
    sigma_next) returning standard normals; without one they draw from torch's global generator, as
    k-diffusion does. `prediction` chooses the parameterisation of the methods that run in any."""
    check_prediction(prediction)
    if method in CHOOSE_PREDICTION:
        options["prediction"] = prediction
    solver = make_method(method, **options)
    sigma_data = options.get("sigma_data", 0.5)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch, got shape {tuple(x.shape)}")
    state = x.to(dtype)
    noise = path if hasattr(path, "increment") else IndependentPieces(state, path)
    sigmas = check_vs_grid(sigmas, *(getattr(noise, "sigma_range", None) or (None, None)))
    evaluator = ModelEvaluator(model, solver.prediction, sigma_data, extra_args, model_dtype=x.dtype)

    def model_at(u, lam):
        return evaluator(u, math.exp(-lam))

    levels = sigmas.tolist()
    denoise_at_end = levels[-1] == 0.0
    last = len(levels) - 2 if denoise_at_end else len(levels) - 1
    carried = solver.init(state, sigmas)
    for i in _progress(range(last), progress):
        evaluator.step = i
        state, denoised, carried = solver.step(
            state, -math.log(levels[i]), -math.log(levels[i + 1]), model_at, noise, carried
        )
        if callback is not None:
            callback({"x": state, "i": i, "sigma": levels[i], "sigma_hat": levels[i], "denoised": denoised})
    if denoise_at_end:
        evaluator.step = last
        value = evaluator(state, levels[last])
        state = convert(
            solver.prediction, value, state, torch.tensor(levels[last], dtype=state.dtype), "data", sigma_data
        )
        if callback is not None:
            callback(
                {"x": state, "i": last, "sigma": levels[last], "sigma_hat": levels[last], "denoised": state}
            )
    return SampleResult(state.to(x.dtype), evaluator.evaluations)


def _progress(iterable, enabled):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable)


class _ScaledNoise:
    """A noise source whose increments are multiplied by s_noise (k-diffusion's noise scale)."""

    def __init__(self, source, scale):
        self.source, self.scale = source, scale
        self.sigma_range = getattr(source, "sigma_range", None)

    def increment(self, functional, lam_a, lam_b):
        return self.scale * self.source.increment(functional, lam_a, lam_b)

    def fresh(self, key):
        return self.scale * self.source.fresh(key)


def _k_diffusion_sampler(method, takes_eta=True):
    def sampler(
        model,
        x,
        sigmas,
        extra_args=None,
        callback=None,
        disable=None,
        eta=1.0,
        s_noise=1.0,
        noise_sampler=None,
        **options,
    ):
        if takes_eta:
            options["eta"] = eta
        noise = noise_sampler
        if s_noise != 1.0:
            source = noise if hasattr(noise, "increment") else IndependentPieces(x.to(torch.float64), noise)
            noise = _ScaledNoise(source, s_noise)
        return sample(
            model,
            x,
            sigmas,
            method,
            path=noise,
            callback=callback,
            progress=disable is False,
            extra_args=extra_args,
            **options,
        ).samples

    sampler.__name__ = "sample_" + method.replace("-", "_").replace("+", "p")
    sampler.__doc__ = (
        f"k-diffusion-compatible sampler for method {method!r}: model is a denoiser D(x, sigma, **extra_args); "
        "x starts at sigmas[0] scale; sigmas decrease and may end with 0. noise_sampler: a BrownianPath or "
        "AdaptiveBrownianPath (exact, per-sample seeds), a k-diffusion noise sampler, or None (torch's global "
        "generator)."
    )
    return sampler


sample_seeds_1 = _k_diffusion_sampler("seeds-1")
sample_seeds_2 = _k_diffusion_sampler("seeds-2")
sample_seeds_3 = _k_diffusion_sampler("seeds-3")
sample_euler_maruyama = _k_diffusion_sampler("euler-maruyama", takes_eta=False)
sample_dpm_solver_3 = _k_diffusion_sampler("dpm-solver-3", takes_eta=False)
sample_dpm_solver_pp_3 = _k_diffusion_sampler("dpm-solver++-3", takes_eta=False)
sample_ddpm = _k_diffusion_sampler("ddpm", takes_eta=False)
sample_dpm_solver_pp_2m = _k_diffusion_sampler("dpm-solver++-2m", takes_eta=False)
sample_sde_dpm_solver_pp_2m = _k_diffusion_sampler("sde-dpm-solver++-2m", takes_eta=False)
