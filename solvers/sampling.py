"""The driver `sample` and k-diffusion-compatible `sample_*` functions.

Both take x at the scale of sigmas[0] in VE coordinates (x~ of docs/mathematics.md, "Coordinates") and a strictly
decreasing sequence of noise levels sigmas (vs = sigma/alpha), which may end with 0: the step to 0 returns
the denoised value at the last positive level, as k-diffusion does (one extra model evaluation).

`sample` takes the eta of the reverse SDE family (docs/mathematics.md); the `sample_*` functions take
k-diffusion's and ComfyUI's arguments with their meanings, eta included, which is the square of the
driver's (docs/drop-in.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from seeds.solvers.brownian import IndependentPieces
from seeds.solvers.brownian.source import end_tolerance
from seeds.solvers.methods import CHOOSE_PREDICTION, VARIANTS, make_method
from seeds.solvers.models import ModelEvaluator, check_prediction, convert
from seeds.solvers.schedules import GridError, check_vs_grid


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
    allow_growing_steps=False,
    **options,
) -> SampleResult:
    """Solve from sigmas[0] to sigmas[-1] with `method` (a name of METHODS, with its options); the solver
    state is `dtype` (float64 by default) while the model is called in x's dtype.

    `path` supplies all noise of stochastic methods: a noise source of seeds.solvers.brownian (BrownianPath,
    AdaptiveBrownianPath, PartitionPath, IndependentPieces) or a k-diffusion noise_sampler(sigma,
    sigma_next) returning standard normals; without one they draw from torch's global generator, as
    k-diffusion does. `prediction` chooses the parameterisation of the methods that run in any.
    `allow_growing_steps` lets a method that refuses grids whose steps grow the state on a point-mass data law
    (ESRA's noise and EDM forms, docs/esra.md "Stability") run them anyway: for convergence studies."""
    check_prediction(prediction)
    if method in CHOOSE_PREDICTION:
        options["prediction"] = prediction
    solver = make_method(method, **options)
    sigma_data = options.get("sigma_data", 0.5)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch, got shape {tuple(x.shape)}")
    state = x.to(dtype)
    noise = path if hasattr(path, "increment") else IndependentPieces(state, path)
    path_shape = getattr(noise, "shape", None)
    if path_shape is not None and tuple(path_shape) != tuple(x.shape):
        raise ValueError(
            f"the noise path was built for a batch of {path_shape[0]} (x of shape {tuple(path_shape)}), "
            f"but x is a batch of {x.shape[0]} (shape {tuple(x.shape)})"
        )
    low, high = getattr(noise, "sigma_range", None) or (None, None)
    sigmas = check_vs_grid(sigmas, low, high, tolerance=end_tolerance(x.dtype), range_of="the noise path")
    if float(sigmas[0]) > torch.finfo(x.dtype).max:
        raise GridError(f"sigmas[0] = {float(sigmas[0])!r} does not fit x's dtype {x.dtype}")
    if not allow_growing_steps:
        solver.check_grid(sigmas)
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
    samples = state.to(x.dtype)
    if not torch.isfinite(samples).all():
        # every model output was finite (the evaluator checks), so the grid took the state out of range
        raise GridError(
            f"the solve left the finite range of {x.dtype} on sigmas from {levels[0]!r} to {levels[-1]!r}: "
            "NaN or Inf in the result"
        )
    return SampleResult(samples, evaluator.evaluations)


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
        self.shape = getattr(source, "shape", None)

    def increment(self, functional, lam_a, lam_b):
        return self.scale * self.source.increment(functional, lam_a, lam_b)

    def fresh(self, key):
        return self.scale * self.source.fresh(key)


def _k_diffusion_eta(eta) -> float:
    value = float(eta)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"eta (k-diffusion's convention) must lie in [0, 1], got {eta!r}")
    return value


def _sde_eta(eta) -> float:
    """Our SDE-family eta from k-diffusion's and ComfyUI's: their noise exponent is h (1 + eta), ours
    h (1 + eta^2) (docs/mathematics.md, "Coordinates"), so theirs is the square of ours."""
    return math.sqrt(_k_diffusion_eta(eta))


def _at_step_start(callback, x):
    """k-diffusion's callback sees the state at the start of step i; the driver reports it at the step's end,
    so each report passes on the state the previous one ended with."""
    if callback is None:
        return None
    start = x

    def relay(info):
        nonlocal start
        callback({**info, "x": start})
        start = info["x"]

    return relay


def _called_with_tensors(noise_sampler, sigmas):
    """k-diffusion calls a noise sampler with 0-d tensors of the dtype of sigmas, and a Brownian tree queries
    its times in that dtype; the driver's noise sources pass Python floats, which torch.as_tensor would make
    float32."""
    like = (
        sigmas
        if torch.is_tensor(sigmas) and sigmas.is_floating_point()
        else torch.zeros((), dtype=torch.float64)
    )

    def call(sigma, sigma_next):
        return noise_sampler(like.new_tensor(sigma), like.new_tensor(sigma_next))

    return call


def _run(method, model, x, sigmas, extra_args, callback, disable, s_noise=1.0, noise_sampler=None, **options):
    noise = noise_sampler
    if noise is not None and not hasattr(noise, "increment"):
        noise = _called_with_tensors(noise, sigmas)
    if s_noise != 1.0:
        source = noise if hasattr(noise, "increment") else IndependentPieces(x.to(torch.float64), noise)
        noise = _ScaledNoise(source, s_noise)
    return sample(
        model,
        x,
        sigmas,
        method,
        path=noise,
        callback=_at_step_start(callback, x),
        progress=disable is False,
        extra_args=extra_args,
        **options,
    ).samples


# The k-diffusion-style samplers. Shared conventions (docs/drop-in.md): model is a denoiser
# D(x, sigma, **extra_args) with sigma of shape (batch,); x is at the scale of sigmas[0]; sigmas decrease and
# may end with 0 (then the last step returns the denoised value); callback receives k-diffusion's dict (x at
# the start of step i, i, sigma, sigma_hat, denoised); disable=False shows a progress bar; noise_sampler is a
# k-diffusion noise sampler (sigma, sigma_next) -> standard normals, one of our noise sources (BrownianPath,
# AdaptiveBrownianPath: exact per-sample paths), or None (torch's global generator); s_noise scales all noise.
# eta is k-diffusion's and ComfyUI's: the square of the SDE-family eta that `sample` takes.


def sample_seeds_1(
    model,
    x,
    sigmas,
    extra_args=None,
    callback=None,
    disable=None,
    eta=1.0,
    s_noise=1.0,
    noise_sampler=None,
    prediction="data",
    sigma_data=0.5,
):
    """SEEDS-1 (`sample(..., method="seeds-1")`). eta in [0, 1] is k-diffusion's: the driver runs at
    SDE-family eta sqrt(eta); 1 is the reverse SDE (with data prediction: DDPM ancestral), 0 the ODE.
    `prediction` is "data", "noise" or "edm" (EDM: eta in {0, 1} only, with `sigma_data`)."""
    return _run(
        "seeds-1",
        model,
        x,
        sigmas,
        extra_args,
        callback,
        disable,
        s_noise,
        noise_sampler,
        eta=_sde_eta(eta),
        prediction=prediction,
        sigma_data=sigma_data,
    )


def sample_seeds_2(
    model,
    x,
    sigmas,
    extra_args=None,
    callback=None,
    disable=None,
    eta=1.0,
    s_noise=1.0,
    noise_sampler=None,
    r=0.5,
    solver_type="phi_1",
    prediction="data",
    sigma_data=0.5,
):
    """SEEDS-2, with the arguments of ComfyUI's `sample_seeds_2` and its results in data prediction: the
    stage at fraction `r` of the step, the final slope weight `solver_type` "phi_1" or "phi_2" (our
    `variant`). eta in [0, 1] is ComfyUI's (k-diffusion's): the driver runs at SDE-family eta sqrt(eta).
    `prediction` "noise" or "edm" (EDM: eta in {0, 1} only, with `sigma_data`) run the same scheme in
    those parameterisations, with the same eta convention."""
    if solver_type not in VARIANTS:
        raise ValueError(f"solver_type must be 'phi_1' or 'phi_2', got {solver_type!r}")
    return _run(
        "seeds-2",
        model,
        x,
        sigmas,
        extra_args,
        callback,
        disable,
        s_noise,
        noise_sampler,
        eta=_sde_eta(eta),
        c2=r,
        variant=solver_type,
        prediction=prediction,
        sigma_data=sigma_data,
    )


def sample_seeds_3(
    model,
    x,
    sigmas,
    extra_args=None,
    callback=None,
    disable=None,
    eta=1.0,
    s_noise=1.0,
    noise_sampler=None,
    r_1=1.0 / 3,
    r_2=2.0 / 3,
    prediction="data",
    sigma_data=0.5,
):
    """SEEDS-3, with the arguments of ComfyUI's `sample_seeds_3` and its results in data prediction: stages
    at fractions `r_1` < `r_2` of the step (our c2, c3). eta in [0, 1] is ComfyUI's (k-diffusion's): the
    driver runs at SDE-family eta sqrt(eta). `prediction` "noise" or "edm" (EDM: eta in {0, 1} only, with
    `sigma_data`) run the same scheme in those parameterisations, with the same eta convention."""
    return _run(
        "seeds-3",
        model,
        x,
        sigmas,
        extra_args,
        callback,
        disable,
        s_noise,
        noise_sampler,
        eta=_sde_eta(eta),
        c2=r_1,
        c3=r_2,
        prediction=prediction,
        sigma_data=sigma_data,
    )


def sample_esra(
    model,
    x,
    sigmas,
    extra_args=None,
    callback=None,
    disable=None,
    eta=1.0,
    s_noise=1.0,
    noise_sampler=None,
    prediction="data",
    sigma_data=0.5,
):
    """ESRA (`sample(..., method="esra")`, docs/esra.md): two model evaluations per step, the inner one at
    3/4 of the step carrying the time-integral noise; strong order 1.5 with a nonlinear denoiser. eta in
    [0, 1] is k-diffusion's (the driver runs at SDE-family eta sqrt(eta)). A k-diffusion noise_sampler gives
    one normal per interval: the time-integral noise's independent part then comes from torch's global
    generator; our paths (BrownianPath, AdaptiveBrownianPath) give both exactly. `prediction` "data"
    (default), "edm" (eta in {0, 1}, with `sigma_data`) or "noise" (which diverges at few steps, as every
    noise-parameterised SDE scheme does)."""
    return _run(
        "esra",
        model,
        x,
        sigmas,
        extra_args,
        callback,
        disable,
        s_noise,
        noise_sampler,
        eta=_sde_eta(eta),
        prediction=prediction,
        sigma_data=sigma_data,
    )


def sample_euler_maruyama(
    model, x, sigmas, extra_args=None, callback=None, disable=None, s_noise=1.0, noise_sampler=None
):
    """Euler-Maruyama on the reverse SDE in lambda-time (`sample(..., method="euler-maruyama")`); no eta:
    the method is defined on the reverse SDE only."""
    return _run("euler-maruyama", model, x, sigmas, extra_args, callback, disable, s_noise, noise_sampler)


def sample_ddpm(
    model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0, noise_sampler=None
):
    """k-diffusion's `sample_euler_ancestral`, same arguments and results. Its ancestral step with eta in
    [0, 1] is DDIM with DDIM's eta = eta (it adds noise of standard deviation eta vs_t sqrt(1 - e^{-2h}) and
    keeps the rest of vs_t on the model's noise); at eta = 1 that is DDPM ancestral sampling, run as
    `sample(..., method="ddpm")`, otherwise as `sample(..., method="ddim", ddim_eta=eta)`. No constant
    SDE-family eta gives the step for 0 < eta < 1 (see docs/drop-in.md)."""
    ddim_eta = _k_diffusion_eta(eta)
    if ddim_eta == 1.0:
        return _run("ddpm", model, x, sigmas, extra_args, callback, disable, s_noise, noise_sampler)
    return _run(
        "ddim", model, x, sigmas, extra_args, callback, disable, s_noise, noise_sampler, ddim_eta=ddim_eta
    )


def sample_dpm_solver_pp_2m(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """k-diffusion's `sample_dpmpp_2m` (DPM-Solver++(2M)), same arguments and results."""
    return _run("dpm-solver++-2m", model, x, sigmas, extra_args, callback, disable)


def sample_sde_dpm_solver_pp_2m(
    model,
    x,
    sigmas,
    extra_args=None,
    callback=None,
    disable=None,
    eta=1.0,
    s_noise=1.0,
    noise_sampler=None,
    solver_type="midpoint",
):
    """k-diffusion's `sample_dpmpp_2m_sde` (DPM-Solver++(2M) SDE), same arguments and results, except that
    noise_sampler=None draws from torch's global generator (k-diffusion: a Brownian tree with a random seed).
    eta in [0, 1] is k-diffusion's: the driver runs at SDE-family eta sqrt(eta). solver_type "midpoint" is
    our variant "phi_1" (the slope weighted with phi_1 / 2), "heun" our "phi_2" (the exact phi_2 weight)."""
    variants = {"midpoint": "phi_1", "heun": "phi_2"}
    if solver_type not in variants:
        raise ValueError(f"solver_type must be 'heun' or 'midpoint', got {solver_type!r}")
    return _run(
        "sde-dpm-solver++-2m",
        model,
        x,
        sigmas,
        extra_args,
        callback,
        disable,
        s_noise,
        noise_sampler,
        eta=_sde_eta(eta),
        variant=variants[solver_type],
    )


def sample_dpm_solver_3(
    model, x, sigmas, extra_args=None, callback=None, disable=None, r_1=1.0 / 3, r_2=2.0 / 3
):
    """Singlestep DPM-Solver-3 (noise prediction), stages at fractions `r_1` < `r_2` of the step."""
    return _run("dpm-solver-3", model, x, sigmas, extra_args, callback, disable, c2=r_1, c3=r_2)


def sample_dpm_solver_pp_3(
    model, x, sigmas, extra_args=None, callback=None, disable=None, r_1=1.0 / 3, r_2=2.0 / 3
):
    """Singlestep DPM-Solver++(3) (data prediction), stages at fractions `r_1` < `r_2` of the step."""
    return _run("dpm-solver++-3", model, x, sigmas, extra_args, callback, disable, c2=r_1, c3=r_2)
