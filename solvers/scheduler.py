"""SEEDS as a diffusers scheduler (needs the optional `diffusers` package: pip install -e .[diffusers]).

    from seeds.solvers.scheduler import SEEDSScheduler

    pipe.scheduler = SEEDSScheduler.from_config(pipe.scheduler.config)   # SEEDS-3, data prediction, eta = 1
    pipe.scheduler = SEEDSScheduler.from_config(pipe.scheduler.config, solver_order=2, eta=0.5)

A SEEDS step of k stages evaluates the model k times, while diffusers' loop makes one model call per
`step`. So, as in diffusers' Heun and singlestep DPM-Solver schedulers, `timesteps` lists every evaluation:
each step's start followed by its stage times, then (with final_sigmas_type "zero") the last noise level
once more for the final denoising. `step` advances the running step of `ExponentialIntegrator.stages` by
one evaluation per call and keeps the step's stage values meanwhile; the numbers are those of
`seeds.solvers.sample` (docs/diffusers.md).

Coordinates: the loop's sample is the network's x_t = alpha x~ of a discrete variance-preserving (DDPM)
schedule, so init_noise_sigma is 1 and scale_model_input changes nothing; the solver works in x~ at the noise
level vs = sigma / alpha = sqrt((1 - abar) / abar) (docs/mathematics.md, "Coordinates"), in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers import ConfigMixin, SchedulerMixin
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from seeds.solvers.brownian import IndependentPieces
from seeds.solvers.methods import make_method
from seeds.solvers.models import convert
from seeds.solvers.schedules import noise_levels

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
FINAL_SIGMAS_TYPES = ("zero", "sigma_min")
PARAMETERISATIONS = ("data", "noise")
SOLVER_DTYPE = torch.float64


@dataclass
class SEEDSSchedulerOutput(BaseOutput):
    """prev_sample: the sample for the next model call (x_t at the next timestep), or the result after the last.
    pred_original_sample: the data prediction x_0 of the model output this call was given."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


class SEEDSScheduler(SchedulerMixin, ConfigMixin):
    """SEEDS-1/2/3 (Gonzalez et al., 2023) for networks trained on a discrete variance-preserving schedule.

    Schedule (as diffusers' DDPM scheduler): num_train_timesteps, beta_start, beta_end, beta_schedule
    ("linear", "scaled_linear", "squaredcos_cap_v2"), trained_betas (replace the others), prediction_type
    ("epsilon", "v_prediction", "sample": what the network returns). rescale_betas_zero_snr is refused: it
    makes the noisiest timestep pure noise, an infinite noise level.

    Solver: solver_order (1, 2, 3: SEEDS-1/2/3, also the model calls per step, `order`), prediction ("data"
    or "noise": the output the scheme integrates, as diffusers' algorithm_type "dpmsolver++" or
    "dpmsolver"), eta (0: the probability-flow ODE, where SEEDS-k is DPM-Solver(++)-k; 1: the reverse SDE),
    variant (SEEDS-2's slope weight, "phi_1" or "phi_2"), stage_fractions (None for the defaults: (c2,) for
    SEEDS-2, (c2, c3) for SEEDS-3).

    Grid: num_inference_steps SEEDS steps between the table's largest and smallest noise levels, uniform in
    log-SNR, or Karras et al.'s rho = 7 spacing with use_karras_sigmas; final_sigmas_type "zero" ends with one
    more model call that returns its data prediction (k-diffusion's final step to sigma 0), "sigma_min" ends
    at the smallest noise level.

    Noise: each new piece of a step's noise is sqrt(clock increment) z with z drawn from the `generator`
    passed to `step` (a torch.Generator, a list of them, one per sample, or None for torch's global one), so
    every stage noise is an exact increment of the parameterisation's Brownian functional.
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: list[float] | None = None,
        prediction_type: str = "epsilon",
        rescale_betas_zero_snr: bool = False,
        solver_order: int = 3,
        prediction: str = "data",
        eta: float = 1.0,
        variant: str = "phi_1",
        stage_fractions: list[float] | None = None,
        use_karras_sigmas: bool = False,
        final_sigmas_type: str = "zero",
    ):
        _check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
        _check_choice("prediction", prediction, PARAMETERISATIONS)
        _check_choice("final_sigmas_type", final_sigmas_type, FINAL_SIGMAS_TYPES)
        if rescale_betas_zero_snr:
            raise ValueError(
                "rescale_betas_zero_snr makes the noisiest timestep pure noise (an infinite noise level), "
                "which no SEEDS step can start from"
            )
        self._method = _seeds_method(solver_order, prediction, eta, variant, stage_fractions)
        self.order = solver_order
        self.init_noise_sigma = 1.0
        # noise levels of the training timesteps 0 .. N-1, increasing, and their logs for interpolation
        abar = torch.cumprod(
            1 - _betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas), 0
        )
        self.train_sigmas = ((1 - abar) / abar).sqrt()
        self._log_train_sigmas = self.train_sigmas.log()
        self.num_inference_steps = None
        self.timesteps = None
        self.sigmas = None
        self.step_sigmas = None
        self._step_index = None
        self._begin_index = None

    # ---------------------------------------------------------------------------------------- the grid

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None):
        """Lay out num_inference_steps SEEDS steps: timesteps (float32, one per model call, fractional where
        a stage ends between training timesteps), sigmas (float64, the noise level vs of each model call,
        then the level the run ends at) and step_sigmas (float64, the ends of the SEEDS steps, with a final 0
        when final_sigmas_type is "zero": the sigmas `seeds.solvers.sample` takes for the same run)."""
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
        sigma_min, sigma_max = float(self.train_sigmas[0]), float(self.train_sigmas[-1])
        grid = "edm" if self.config.use_karras_sigmas else "lambda"
        levels = noise_levels(grid, num_inference_steps, sigma_min, sigma_max)
        # the grid's round trip through log moves its ends by rounding: start and end on the table exactly
        levels[0], levels[-1] = sigma_max, sigma_min
        self._step_log_snrs = [-math.log(level) for level in levels.tolist()]
        # the solver asks for the model at vs = e^-lambda, as the driver of `sample` does
        calls = [
            math.exp(-lam)
            for start, end in zip(self._step_log_snrs[:-1], self._step_log_snrs[1:])
            for lam in self._method.evaluation_log_snrs(start, end)
        ]
        if self.config.final_sigmas_type == "zero":
            calls.append(sigma_min)
            self.step_sigmas = torch.cat([levels, levels.new_zeros(1)])
        else:
            self.step_sigmas = levels
        self.sigmas = torch.tensor([*calls, float(self.step_sigmas[-1])], dtype=SOLVER_DTYPE)
        self.timesteps = self._timesteps_of(self.sigmas[:-1]).to(device=device, dtype=torch.float32)
        self.num_inference_steps = num_inference_steps
        self._stages = None
        self._solver_state = None
        self._step_index = None
        self._begin_index = None

    def _timesteps_of(self, sigmas):
        """The fractional training timestep of noise levels: log sigma interpolated linearly between the
        table's entries (as the project's diffusers loader and diffusers' _sigma_to_t read a level)."""
        table = self._log_train_sigmas
        log_sigmas = sigmas.to(SOLVER_DTYPE).log()
        below = (torch.searchsorted(table, log_sigmas) - 1).clamp(0, table.numel() - 2)
        weight = (log_sigmas - table[below]) / (table[below + 1] - table[below])
        return (below + weight).clamp(0, table.numel() - 1)

    def _sigmas_of(self, timesteps):
        """The noise level of (fractional) training timesteps, the inverse of `_timesteps_of`."""
        table = self._log_train_sigmas
        t = timesteps.to(SOLVER_DTYPE).clamp(0, table.numel() - 1)
        below = t.floor().clamp(max=table.numel() - 2).long()
        weight = t - below
        return ((1 - weight) * table[below] + weight * table[below + 1]).exp()

    # --------------------------------------------------------------------------------- the loop's calls

    @property
    def step_index(self) -> int | None:
        """The index into timesteps of the next model call, counted from the first `step`."""
        return self._step_index

    @property
    def begin_index(self) -> int | None:
        """The index into timesteps the run starts at, when a pipeline set one (image-to-image)."""
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0):
        """Start at timesteps[begin_index], which must begin a SEEDS step (a multiple of `order`)."""
        self._begin_index = begin_index

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        """The network takes the loop's sample x_t as it is."""
        return sample

    def step(
        self,
        model_output: torch.Tensor,
        timestep,
        sample: torch.Tensor,
        generator=None,
        return_dict: bool = True,
    ) -> SEEDSSchedulerOutput | tuple:
        """Take the model output at (sample, timestep) and return the sample for the next timestep: the next
        stage's point, the next step's start, or, after the last call, the result."""
        if self.timesteps is None:
            raise ValueError("call set_timesteps(num_inference_steps) before step")
        if model_output.shape != sample.shape:
            raise ValueError(
                f"model_output has shape {tuple(model_output.shape)}, the sample {tuple(sample.shape)}: "
                "networks that also predict a variance are not supported"
            )
        if self._step_index is None:
            self._step_index = self._first_index(timestep)
        index = self._step_index
        if index >= len(self.timesteps):
            raise ValueError(f"the run has ended: all {len(self.timesteps)} timesteps were stepped")
        sigma = float(self.sigmas[index])
        state = sample.to(SOLVER_DTYPE)
        scaled = state / _alpha(sigma)
        value, denoised = self._model_value(model_output.to(SOLVER_DTYPE), state, scaled, sigma)
        if index == self.order * self.num_inference_steps:  # the final denoising call
            result = denoised
        else:
            result = self._advance(index, scaled, value, generator)
        self._step_index = index + 1
        prev_sample = (_alpha(float(self.sigmas[index + 1])) * result).to(sample.dtype)
        pred_original_sample = denoised.to(sample.dtype)
        if not return_dict:
            return prev_sample, pred_original_sample
        return SEEDSSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)

    def _first_index(self, timestep) -> int:
        if self._begin_index is not None:
            index = self._begin_index
        else:
            timestep = torch.as_tensor(timestep, dtype=torch.float32, device=self.timesteps.device)
            matches = (self.timesteps == timestep).nonzero()
            if len(matches) == 0:
                raise ValueError(f"timestep {float(timestep)!r} is not one of this scheduler's timesteps")
            index = int(matches[0])
        if index % self.order != 0 and index != self.order * self.num_inference_steps:
            raise ValueError(
                f"a run must start where a SEEDS step starts (timesteps[{index}] is stage {index % self.order + 1} "
                f"of {self.order}): start at an index that is a multiple of order = {self.order}"
            )
        return index

    def _model_value(self, model_output, sample, scaled, sigma):
        """The model output as the output the scheme integrates, and as a data prediction, at (x~, vs)."""
        if self.config.prediction_type == "epsilon":
            kind, value = "noise", model_output
        elif self.config.prediction_type == "sample":
            kind, value = "data", model_output
        else:  # v = alpha eps - s x_0 with s = alpha vs, so x_0 = alpha (x_t - vs v)
            kind, value = "data", _alpha(sigma) * (sample - sigma * model_output)
        level = torch.tensor(sigma, dtype=SOLVER_DTYPE, device=scaled.device)
        integrated = convert(kind, value, scaled, level, self.config.prediction)
        return integrated, convert(kind, value, scaled, level, "data")

    def _advance(self, index, scaled, value, generator):
        """Hand the model output to the running SEEDS step (starting one at a step's first call) and return the
        point it asks for next, or the step's result, in x~."""
        if index % self.order == 0:
            start, end = self._step_log_snrs[index // self.order : index // self.order + 2]
            if self._solver_state is None:
                self._solver_state = self._method.init(scaled, self.step_sigmas)
            noise = IndependentPieces(scaled, noise_sampler=self._normals_like(scaled))
            self._stages = self._method.stages(scaled, start, end, noise, self._solver_state)
            next(self._stages)  # its first request is the model at the step's start: this call's model_output
        # a step's noise pieces are drawn during its calls, from the generator each call is given
        self._generator = generator
        try:
            point, _ = self._stages.send(value)
        except StopIteration as finished:
            point, _, self._solver_state = finished.value
            self._stages = None
        return point

    def _normals_like(self, like):
        """A noise_sampler(sigma, sigma_next) for IndependentPieces: standard normals like `like` from the
        generator of the `step` call in progress."""

        def draw(sigma, sigma_next):
            return randn_tensor(like.shape, generator=self._generator, device=like.device, dtype=like.dtype)

        return draw

    # ---------------------------------------------------------------------------------------- training

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor):
        """x_t = alpha (x_0 + vs noise) at each sample's timestep (integer training timesteps or this
        scheduler's fractional ones): sqrt(abar) x_0 + sqrt(1 - abar) noise at an integer timestep."""
        sigmas = self._sigmas_of(torch.as_tensor(timesteps).reshape(-1).cpu()).to(original_samples.device)
        sigmas = sigmas.reshape((-1,) + (1,) * (original_samples.ndim - 1))
        scaled = original_samples.to(SOLVER_DTYPE) + sigmas * noise.to(SOLVER_DTYPE)
        return (scaled * torch.rsqrt(1 + sigmas**2)).to(original_samples.dtype)

    def __len__(self) -> int:
        return self.config.num_train_timesteps


def _alpha(sigma: float) -> float:
    """alpha of a variance-preserving schedule at noise level vs = sigma / alpha: 1 / sqrt(1 + vs^2)."""
    return 1.0 / math.sqrt(1.0 + sigma**2)


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {choices}")


def _seeds_method(solver_order, prediction, eta, variant, stage_fractions):
    """The ExponentialIntegrator of SEEDS-`solver_order` with the config's options, checked by make_method."""
    if solver_order not in (1, 2, 3):
        raise ValueError(f"solver_order must be 1, 2 or 3 (SEEDS-1/2/3), got {solver_order!r}")
    if variant != "phi_1" and solver_order != 2:
        raise ValueError(f"variant {variant!r} applies to SEEDS-2 (solver_order 2) only")
    options = {"prediction": prediction, "eta": eta}
    if solver_order == 2:
        options["variant"] = variant
    if stage_fractions is not None:
        names = ("c2", "c3")[: solver_order - 1]
        if len(stage_fractions) != len(names):
            raise ValueError(
                f"SEEDS-{solver_order} takes {len(names)} stage fraction(s) {names}, got {list(stage_fractions)}"
            )
        options.update(zip(names, stage_fractions))
    return make_method(f"seeds-{solver_order}", **options)


def _betas(steps, beta_start, beta_end, beta_schedule, trained_betas) -> torch.Tensor:
    """The training betas in float64 (diffusers holds them in float32; float64 keeps the table exact)."""
    if trained_betas is not None:
        return torch.tensor(list(trained_betas), dtype=SOLVER_DTYPE)
    _check_choice("beta_schedule", beta_schedule, BETA_SCHEDULES)
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, steps, dtype=SOLVER_DTYPE)
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, steps, dtype=SOLVER_DTYPE) ** 2
    # Nichol and Dhariwal's cosine schedule: abar(t) = cos^2((t + 0.008) / 1.008 pi / 2), betas capped at 0.999
    times = torch.arange(steps + 1, dtype=SOLVER_DTYPE) / steps
    abar = torch.cos((times + 0.008) / 1.008 * torch.pi / 2) ** 2
    return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
