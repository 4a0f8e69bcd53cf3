"""The driver `sample` and k-diffusion-compatible `sample_*` functions.

Both take x at the scale of sigmas[0] in VE coordinates (x~ of SEEDS-MATH section 1) and a strictly
decreasing sequence of noise levels sigmas (vs = sigma/alpha), which may end with 0: the step to 0 returns
the denoised value at the last positive level, as k-diffusion does (one extra model evaluation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from seeds.solvers import methods
from seeds.solvers.models import ModelEvaluator, check_prediction, convert
from seeds.solvers.noise import IndependentPieces
from seeds.solvers.schedules import check_vs_grid


def _exponential(method_id, scheme, nfe, eta, prediction=None, fractions=()):
    def build(prediction=prediction or "data", eta=eta, **options):
        fraction_values = methods.stage_fractions(scheme, options, fractions)
        sigma_data = options.pop("sigma_data", 0.5)
        _refuse_unknown(method_id, options)
        return methods.ExponentialIntegrator(
            method_id,
            prediction,
            nfe,
            eta > 0,
            scheme=scheme,
            eta=eta,
            fractions=fraction_values,
            sigma_data=sigma_data,
        )

    return build


def _seeds(stages):
    def build(prediction="data", eta=1.0, variant="phi_1", **options):
        if stages == 2 and variant not in ("phi_1", "phi_2"):
            raise ValueError(f"unknown SEEDS-2 variant {variant!r}; expected 'phi_1' or 'phi_2'")
        scheme = {1: "seeds-1", 2: f"seeds-2/{variant}", 3: "seeds-3"}[stages]
        suffix = "/phi_2" if stages == 2 and variant == "phi_2" else ""
        check_prediction(prediction)
        method_id = f"seeds-{stages}/{prediction}{suffix}"
        defaults = {1: (), 2: (0.5,), 3: (1 / 3, 2 / 3)}[stages]
        return _exponential(method_id, scheme, stages, eta, prediction, defaults)(prediction, eta, **options)

    return build


def _simple(cls, method_id, nfe, stochastic, prediction="data", **fixed):
    def build(**options):
        accepted = {name: options.pop(name) for name in list(options) if name in fixed}
        _refuse_unknown(method_id, options)
        return cls(method_id, prediction, nfe, stochastic, **{**fixed, **accepted})

    return build


def _refuse_unknown(method_id, options):
    if options:
        raise TypeError(f"method {method_id!r} takes no option(s) {sorted(options)}")


def _edm_heun(s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0):
    """Karras et al.'s Heun sampler; with churn (s_churn > 0) it is a different, stochastic method whose
    fresh noise is not a path functional, so it carries its own id."""
    churn = s_churn > 0
    return methods.EDMHeun(
        "edm-churn" if churn else "edm-heun",
        "data",
        2,
        churn,
        s_churn=s_churn,
        s_tmin=s_tmin,
        s_tmax=s_tmax,
        s_noise=s_noise,
    )


METHODS = {
    "seeds-1": _seeds(1),
    "seeds-2": _seeds(2),
    "seeds-3": _seeds(3),
    "euler-maruyama": _simple(methods.EulerMaruyama, "euler-maruyama", 1, True),
    "ddpm": _exponential("ddpm", "seeds-1", 1, 1.0, "data"),
    "ddim": _simple(methods.DDIM, "ddim", 1, False, ddim_eta=0.0),
    "dpm-solver-1": _exponential("dpm-solver-1", "seeds-1", 1, 0.0, "noise"),
    "dpm-solver-2": _exponential("dpm-solver-2", "seeds-2/phi_1", 2, 0.0, "noise", (0.5,)),
    "dpm-solver-3": _exponential("dpm-solver-3", "seeds-3", 3, 0.0, "noise", (1 / 3, 2 / 3)),
    "dpm-solver++-1": _exponential("dpm-solver++-1", "seeds-1", 1, 0.0, "data"),
    "dpm-solver++-2": _exponential("dpm-solver++-2", "seeds-2/phi_1", 2, 0.0, "data", (0.5,)),
    "dpm-solver++-3": _exponential("dpm-solver++-3", "seeds-3", 3, 0.0, "data", (1 / 3, 2 / 3)),
    "dpm-solver++-2m": _exponential("dpm-solver++-2m", "multistep-2/phi_1", 1, 0.0, "data"),
    "sde-dpm-solver++-1": _exponential("sde-dpm-solver++-1", "seeds-1", 1, 1.0, "data"),
    "sde-dpm-solver++-2m": _exponential("sde-dpm-solver++-2m", "multistep-2/phi_1", 1, 1.0, "data"),
    "edm-heun": _edm_heun,
}


# Methods that run in any parameterisation; the others have theirs fixed and ignore `prediction`.
CHOOSE_PREDICTION = ("seeds-1", "seeds-2", "seeds-3")


def make_method(method: str, **options) -> methods.Method:
    """The method object for a method id of METHODS, with its options checked."""
    try:
        build = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown method {method!r}; expected one of {sorted(METHODS)}") from None
    return build(**options)


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
    """Solve from sigmas[0] to sigmas[-1] with `method`; the solver state is `dtype` (float64 by default)
    while the model is called in x's dtype. `path` (BrownianPath, AdaptiveBrownianPath or PartitionPath)
    supplies all noise of stochastic methods; without one they draw from torch's global generator, as
    k-diffusion does."""
    check_prediction(prediction)
    if method in CHOOSE_PREDICTION:
        options["prediction"] = prediction
    solver = make_method(method, **options)
    return _run(
        solver, model, x, sigmas, path, callback, progress, extra_args, dtype, options.get("sigma_data", 0.5)
    )


def _run(solver, model, x, sigmas, noise, callback, progress, extra_args, dtype, sigma_data):
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch, got shape {tuple(x.shape)}")
    vs_range = getattr(noise, "sigma_range", None)
    sigmas = check_vs_grid(sigmas, *(vs_range or (None, None)))
    model_dtype = x.dtype
    state = x.to(dtype)
    evaluator = ModelEvaluator(model, solver.prediction, sigma_data, extra_args, model_dtype=model_dtype)
    noise = noise if noise is not None else IndependentPieces(state)
    if isinstance(solver, methods.EDMHeun):
        solver.steps = len(sigmas) - 1

    def model_at(u, lam):
        return evaluator(u, math.exp(-lam))

    memory = {}
    levels = sigmas.tolist()
    denoise_at_end = levels[-1] == 0.0
    last = len(levels) - 2 if denoise_at_end else len(levels) - 1
    for i in _progress(range(last), progress):
        evaluator.step = i
        memory["step_index"] = i
        start = state
        state = solver.step(state, -math.log(levels[i]), -math.log(levels[i + 1]), model_at, noise, memory)
        if callback is not None:
            level = torch.tensor(levels[i], dtype=state.dtype)
            denoised = convert(solver.prediction, memory["denoised_start"], start, level, "data", sigma_data)
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
    return SampleResult(state.to(model_dtype), evaluator.evaluations)


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
        **method_options,
    ):
        prediction = method_options.pop("prediction", "data")
        check_prediction(prediction)
        if method in CHOOSE_PREDICTION:
            method_options["prediction"] = prediction
        if takes_eta:
            method_options["eta"] = eta
        solver = make_method(method, **method_options)
        state = x.to(torch.float64)
        if noise_sampler is None or not hasattr(noise_sampler, "increment"):
            source = IndependentPieces(state, noise_sampler)
        else:
            source = noise_sampler
        noise = source if s_noise == 1.0 else _ScaledNoise(source, s_noise)
        sigmas = torch.as_tensor(sigmas).detach().to("cpu", torch.float64)
        result = _run(
            solver,
            model,
            x,
            sigmas,
            noise,
            callback,
            disable is False,
            extra_args,
            torch.float64,
            method_options.get("sigma_data", 0.5),
        )
        return result.samples

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
