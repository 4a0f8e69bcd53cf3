"""SEEDSScheduler (seeds.solvers.scheduler) in diffusers' own loops: a hand-written denoising loop and
DDPMPipeline, with a tiny UNet2DModel built here. The scheduler must give the numbers of seeds.solvers.sample
run through the project's diffusers loader on the same grid with the same noise."""

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip(
    "diffusers", reason="SEEDSScheduler needs the optional diffusers package: pip install -e .[diffusers]"
)

from seeds.experiments.models.loaders import (  # noqa: E402
    DDPM_DEFAULTS,
    DiffusersUNet,
    DiscreteVP,
    DiscreteVPNetwork,
    alphas_cumprod,
    load_diffusers_unet,
)
from seeds.solvers import IndependentPieces, sample  # noqa: E402
from seeds.solvers.scheduler import SEEDSScheduler  # noqa: E402
from tests.tiny_models import tiny_unet2d  # noqa: E402

SHAPE = (2, 1, 8, 8)
NOISE_SEED = 5


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A tiny UNet2DModel saved with a SEEDS scheduler config and read back by the project's loader."""
    folder = tmp_path_factory.mktemp("tiny-ddpm")
    torch.manual_seed(0)
    unet = tiny_unet2d(diffusers)
    unet.save_pretrained(folder / "unet")
    SEEDSScheduler().save_config(folder / "scheduler")
    return load_diffusers_unet(folder)


@pytest.fixture(scope="module")
def unet64(loaded):
    return copy.deepcopy(loaded.network.unet).double()


def start_noise(dtype=torch.float64, batch=SHAPE[0]):
    return torch.randn((batch, *SHAPE[1:]), generator=torch.Generator().manual_seed(1), dtype=dtype)


def diffusers_loop(scheduler, unet, x, generator=None, timesteps=None):
    """The standard loop: one model call and one `step` per timestep, the network in its own dtype."""
    timesteps = scheduler.timesteps if timesteps is None else timesteps
    with torch.no_grad():
        for t in timesteps:
            model_input = scheduler.scale_model_input(x, t)
            output = unet(model_input.to(unet.dtype), t).sample
            x = scheduler.step(output, t, x, generator=generator).prev_sample
    return x


def alpha(sigma):
    return 1 / (1 + torch.as_tensor(sigma, dtype=torch.float64) ** 2).sqrt()


def driver(scheduler, network, x, sigmas=None, noise_generator=None):
    """seeds.solvers.sample on the scheduler's grid (or a tail of it) through the loader's adapter, from
    x~ = x_t / alpha, returned in the scheduler's coordinates x_t = alpha x~."""
    config = scheduler.config
    options = dict(zip(("c2", "c3"), config.stage_fractions or ()))
    if config.solver_order == 2:
        options["variant"] = config.variant
    sigmas = scheduler.step_sigmas if sigmas is None else sigmas
    scaled = x.double() / alpha(sigmas[0])
    if noise_generator is None:
        noise_generator = torch.Generator().manual_seed(NOISE_SEED)
    result = sample(
        network,
        scaled.to(x.dtype),
        sigmas,
        method=f"seeds-{config.solver_order}",
        prediction=config.prediction,
        eta=config.eta,
        path=IndependentPieces(scaled, generator=noise_generator),
        **options,
    ).samples
    return result * alpha(sigmas[-1]).to(result.dtype)


def assert_close_relative(ours, theirs, tolerance):
    """Agreement to `tolerance` relative to the largest entry: an untrained UNet's samples reach hundreds."""
    torch.testing.assert_close(ours, theirs, rtol=0.0, atol=tolerance * float(theirs.abs().max()))


def test_importing_the_solvers_leaves_diffusers_unloaded():
    check = "import sys, seeds.solvers; assert 'diffusers' not in sys.modules, 'diffusers was imported'"
    subprocess.run([sys.executable, "-c", check], check=True)


# ------------------------------------------------------------------------------------ the grid of calls


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("final_sigmas_type", ["zero", "sigma_min"])
def test_timesteps_list_every_model_call_of_each_step(order, final_sigmas_type):
    scheduler = SEEDSScheduler(solver_order=order, final_sigmas_type=final_sigmas_type)
    scheduler.set_timesteps(5)
    final_call = final_sigmas_type == "zero"
    assert scheduler.order == order and scheduler.init_noise_sigma == 1.0
    assert len(scheduler.timesteps) == 5 * order + final_call == len(scheduler.sigmas) - 1
    assert scheduler.timesteps.dtype == torch.float32
    assert (scheduler.timesteps[1:] < scheduler.timesteps[:-1]).all()
    assert scheduler.timesteps[0] == 999 and (scheduler.timesteps[-1] == 0) == final_call
    ends = scheduler.step_sigmas
    table = scheduler.train_sigmas
    assert ends[0] == table[-1] and ends[5] == table[0] and len(ends) == 6 + final_call
    assert scheduler.sigmas[-1] == (0.0 if final_call else table[0])
    # each step starts at its grid level and its stages lie strictly inside it
    for step in range(5):
        calls = scheduler.sigmas[step * order : (step + 1) * order]
        torch.testing.assert_close(calls[0], ends[step], rtol=1e-15, atol=0)
        assert ((calls[1:] < ends[step]) & (calls[1:] > ends[step + 1])).all()
    levels = ends[:6].log()
    torch.testing.assert_close(
        levels[1:] - levels[:-1], (levels[1] - levels[0]).expand(5)
    )  # uniform in lambda
    sample_x = torch.ones(SHAPE)
    assert scheduler.scale_model_input(sample_x, scheduler.timesteps[0]) is sample_x


def test_karras_sigmas_space_the_steps_by_rho_7():
    scheduler = SEEDSScheduler(use_karras_sigmas=True)
    scheduler.set_timesteps(6)
    roots = scheduler.step_sigmas[:-1] ** (1 / 7)
    torch.testing.assert_close(roots[1:] - roots[:-1], (roots[1] - roots[0]).expand(6))


@pytest.mark.parametrize("beta_schedule", ["linear", "scaled_linear", "squaredcos_cap_v2", "trained"])
def test_schedule_and_timesteps_are_the_loaders(beta_schedule):
    config = {**DDPM_DEFAULTS, "num_train_timesteps": 300}
    if beta_schedule == "trained":
        config["trained_betas"] = torch.linspace(2e-4, 0.03, 300, dtype=torch.float64).tolist()
    else:
        config["beta_schedule"] = beta_schedule
    scheduler = SEEDSScheduler.from_config(config)
    schedule = DiscreteVP.from_alphas_cumprod(alphas_cumprod(config))
    assert torch.equal(scheduler.train_sigmas, torch.tensor(schedule.sigmas, dtype=torch.float64))
    if beta_schedule != "trained":  # diffusers' own table, which it holds in float32
        ddpm = diffusers.DDPMScheduler(**config)
        abar = 1 / (1 + scheduler.train_sigmas**2)
        torch.testing.assert_close(abar, ddpm.alphas_cumprod.double(), rtol=1e-5, atol=1e-9)
    for order in (1, 2, 3):
        scheduler = SEEDSScheduler.from_config(config, solver_order=order)
        scheduler.set_timesteps(7)
        # the network is called at the timestep the loader gives the same noise level
        assert torch.equal(scheduler.timesteps, schedule.t_of_vs(scheduler.sigmas[:-1]).float())


# -------------------------------------------------------------------- equal to the driver, in numbers

CASES = [
    (order, prediction, eta, prediction_type)
    for order in (1, 2, 3)
    for prediction in ("data", "noise")
    for eta in (0.0, 0.5, 1.0)
    for prediction_type in ("epsilon", "v_prediction", "sample")
]


@pytest.mark.parametrize("order, prediction, eta, prediction_type", CASES)
@pytest.mark.parametrize("network_dtype, tolerance", [(torch.float32, 1e-6), (torch.float64, 1e-10)])
def test_the_scheduler_is_the_driver_through_the_diffusers_loader(
    loaded, unet64, order, prediction, eta, prediction_type, network_dtype, tolerance
):
    """The network in float32 or float64; the loop's sample in float64, the solver state of `sample`."""
    unet = loaded.network.unet if network_dtype == torch.float32 else unet64
    network = DiscreteVPNetwork(DiffusersUNet(unet), loaded.schedule, prediction_type)
    scheduler = SEEDSScheduler(
        solver_order=order, prediction=prediction, eta=eta, prediction_type=prediction_type
    )
    scheduler.set_timesteps(4)
    x = start_noise()
    ours = diffusers_loop(scheduler, unet, x, torch.Generator().manual_seed(NOISE_SEED))
    assert_close_relative(ours, driver(scheduler, network, x), tolerance)


@pytest.mark.parametrize(
    "options",
    [
        {"solver_order": 2, "variant": "phi_2"},
        {"solver_order": 2, "stage_fractions": [0.3]},
        {"solver_order": 3, "stage_fractions": [0.25, 0.6], "prediction": "noise", "eta": 0.5},
        {"solver_order": 3, "use_karras_sigmas": True},
        {"solver_order": 3, "final_sigmas_type": "sigma_min"},
        {"solver_order": 1, "final_sigmas_type": "sigma_min", "prediction": "noise"},
    ],
    ids=["phi_2", "c2", "c2-c3", "karras", "sigma-min-3", "sigma-min-1"],
)
def test_variants_fractions_and_grids_are_the_drivers_too(loaded, unet64, options):
    network = DiscreteVPNetwork(DiffusersUNet(unet64), loaded.schedule, "epsilon")
    scheduler = SEEDSScheduler(**options)
    scheduler.set_timesteps(3)
    x = start_noise()
    ours = diffusers_loop(scheduler, unet64, x, torch.Generator().manual_seed(NOISE_SEED))
    assert_close_relative(ours, driver(scheduler, network, x), 1e-10)


@pytest.mark.parametrize(
    "order, prediction, prediction_type", [(3, "data", "epsilon"), (2, "noise", "sample")]
)
def test_a_float32_loop_rounds_only_at_float32_precision(loaded, order, prediction, prediction_type):
    """A loop that keeps its sample in float32 rounds the state to float32 between calls, and the network's
    float32 timestep can differ by one unit in the last place from the loader's (which maps a float32
    noise level): both are amplified by the network, so the agreement is float32 rounding, not 1e-6."""
    unet = loaded.network.unet
    network = DiscreteVPNetwork(DiffusersUNet(unet), loaded.schedule, prediction_type)
    scheduler = SEEDSScheduler(solver_order=order, prediction=prediction, prediction_type=prediction_type)
    scheduler.set_timesteps(4)
    x = start_noise(torch.float32)
    ours = diffusers_loop(scheduler, unet, x, torch.Generator().manual_seed(NOISE_SEED))
    assert ours.dtype == torch.float32
    assert_close_relative(ours, driver(scheduler, network, x), 1e-4)


# ------------------------------------------------------------------------------------------------ noise


def test_without_a_generator_the_noise_comes_from_torchs_global_one(loaded):
    unet = loaded.network.unet
    network = DiscreteVPNetwork(DiffusersUNet(unet), loaded.schedule, "epsilon")
    scheduler = SEEDSScheduler(solver_order=2)
    scheduler.set_timesteps(3)
    x = start_noise()
    torch.manual_seed(21)
    ours = diffusers_loop(scheduler, unet, x)
    torch.manual_seed(21)
    config = scheduler.config
    theirs = sample(
        network, x / alpha(scheduler.step_sigmas[0]), scheduler.step_sigmas, "seeds-2", config.prediction
    )
    assert_close_relative(ours, theirs.samples, 1e-10)


def test_a_list_of_generators_seeds_each_sample_alone(loaded):
    unet = loaded.network.unet
    scheduler = SEEDSScheduler()
    scheduler.set_timesteps(3)
    x = start_noise()
    pair = diffusers_loop(scheduler, unet, x, [torch.Generator().manual_seed(s) for s in (7, 8)])
    scheduler.set_timesteps(3)
    alone = diffusers_loop(scheduler, unet, x[1:], [torch.Generator().manual_seed(8)])
    assert_close_relative(pair[1:], alone, 1e-6)
    scheduler.set_timesteps(3)
    other = diffusers_loop(scheduler, unet, x[1:], [torch.Generator().manual_seed(9)])
    assert not torch.allclose(alone, other)


def test_an_ode_run_draws_no_noise(loaded):
    scheduler = SEEDSScheduler(eta=0.0)
    scheduler.set_timesteps(3)
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    diffusers_loop(scheduler, loaded.network.unet, start_noise(), generator)
    assert torch.equal(generator.get_state(), state)


# ------------------------------------------------------------------------------------ diffusers' pieces


def test_ddpm_pipeline_samples_with_the_scheduler(loaded):
    unet = loaded.network.unet
    pipe = diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler(prediction_type="sample"))
    pipe.scheduler = SEEDSScheduler.from_config(pipe.scheduler.config, solver_order=2)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.scheduler.config.prediction_type == "sample"
    images = pipe(
        batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=3, output_type="np"
    )
    # the same run by hand: the pipeline draws x_T and then every step's noise from its one generator
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(SHAPE, generator=generator)
    scheduler = SEEDSScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(3)
    by_hand = diffusers_loop(scheduler, unet, x, generator)
    expected = (by_hand / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert images.images.shape == (2, 8, 8, 1)
    assert 0.0 < float(np.mean((expected > 0) & (expected < 1)))  # not every pixel clipped
    np.testing.assert_array_equal(images.images, expected)


def settings(scheduler):
    """The config without diffusers' bookkeeping (class name, version, which values were defaults)."""
    return {key: value for key, value in scheduler.config.items() if not key.startswith("_")}


def test_config_round_trips_through_save_config(tmp_path, loaded):
    scheduler = SEEDSScheduler(
        num_train_timesteps=300,
        trained_betas=torch.linspace(2e-4, 0.03, 300, dtype=torch.float64).tolist(),
        prediction_type="v_prediction",
        solver_order=2,
        prediction="noise",
        eta=0.5,
        variant="phi_2",
        stage_fractions=[0.4],
        use_karras_sigmas=True,
        final_sigmas_type="sigma_min",
    )
    scheduler.save_config(tmp_path)
    restored = SEEDSScheduler.from_pretrained(tmp_path)
    assert settings(restored) == settings(scheduler)
    assert settings(SEEDSScheduler.from_config(scheduler.config)) == settings(scheduler)
    runs = []
    for each in (scheduler, restored):
        each.set_timesteps(3)
        runs.append(
            diffusers_loop(each, loaded.network.unet, start_noise(), torch.Generator().manual_seed(4))
        )
    assert torch.equal(restored.timesteps, scheduler.timesteps) and torch.equal(*runs)


def test_from_a_ddpm_config_the_schedule_carries_over():
    ddpm = diffusers.DDPMScheduler(num_train_timesteps=500, beta_schedule="scaled_linear", beta_end=0.012)
    scheduler = SEEDSScheduler.from_config(ddpm.config)
    for key in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type"):
        assert scheduler.config[key] == ddpm.config[key]
    assert len(scheduler) == 500 and scheduler.config.solver_order == 3


def test_add_noise_is_ddpms_at_training_timesteps_and_the_grids_between():
    ddpm = diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    scheduler = SEEDSScheduler.from_config(ddpm.config)
    generator = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 4, 3, generator=generator)
    timesteps = torch.tensor([0, 10, 500, 999])
    torch.testing.assert_close(
        scheduler.add_noise(x0, noise, timesteps), ddpm.add_noise(x0, noise, timesteps), rtol=2e-5, atol=2e-6
    )
    scheduler.set_timesteps(3)
    calls = scheduler.timesteps[:-1]
    x0, noise = torch.randn(2, len(calls), 3, generator=generator, dtype=torch.float64)
    level = scheduler.sigmas[:-2, None]
    expected = alpha(level) * (x0 + level * noise)  # at each call's noise level, to its float32 timestep
    torch.testing.assert_close(scheduler.add_noise(x0, noise, calls), expected, rtol=1e-5, atol=1e-6)


def test_a_run_may_start_at_a_later_step(loaded, unet64):
    """Image-to-image: noise data to the level of step k and run the remaining steps."""
    network = DiscreteVPNetwork(DiffusersUNet(unet64), loaded.schedule, "epsilon")
    scheduler = SEEDSScheduler(solver_order=3)
    scheduler.set_timesteps(4)
    begin = 2 * scheduler.order
    x = scheduler.add_noise(
        torch.zeros(SHAPE, dtype=torch.float64), start_noise(), scheduler.timesteps[begin].expand(2)
    )
    scheduler.set_begin_index(begin)
    ours = diffusers_loop(
        scheduler, unet64, x, torch.Generator().manual_seed(NOISE_SEED), scheduler.timesteps[begin:]
    )
    theirs = driver(scheduler, network, x, sigmas=scheduler.step_sigmas[2:])
    assert_close_relative(ours, theirs, 1e-10)


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "options, message",
    [
        ({"solver_order": 4}, "solver_order must be 1, 2 or 3"),
        ({"prediction": "edm"}, "unknown prediction 'edm'"),
        ({"prediction_type": "flow_prediction"}, "unknown prediction_type"),
        ({"beta_schedule": "exp"}, "unknown beta_schedule 'exp'"),
        ({"final_sigmas_type": "last"}, "unknown final_sigmas_type"),
        ({"rescale_betas_zero_snr": True}, "infinite noise level"),
        ({"solver_order": 3, "variant": "phi_2"}, "applies to SEEDS-2"),
        ({"solver_order": 3, "stage_fractions": [0.5]}, r"takes 2 stage fraction\(s\)"),
        ({"solver_order": 3, "stage_fractions": [0.6, 0.4]}, "stage fractions must increase"),
        ({"solver_order": 2, "stage_fractions": [0.0]}, r"must lie in \(0, 1\]"),
        ({"eta": 1.5}, r"eta must lie in \[0, 1\]"),
    ],
)
def test_bad_configs_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        SEEDSScheduler(**options)


def test_misuse_of_the_loop_is_refused(loaded):
    unet = loaded.network.unet
    scheduler = SEEDSScheduler(solver_order=2)
    x = start_noise(torch.float32)
    with pytest.raises(ValueError, match="call set_timesteps"):
        scheduler.step(x, 999, x)
    with pytest.raises(ValueError, match="positive integer"):
        scheduler.set_timesteps(0)
    scheduler.set_timesteps(2)
    with pytest.raises(ValueError, match="not one of this scheduler's timesteps"):
        scheduler.step(x, 998.5, x)
    with pytest.raises(ValueError, match="stage 2 of 2"):
        scheduler.step(x, scheduler.timesteps[1], x)
    with pytest.raises(ValueError, match="also predict a variance"):
        scheduler.step(torch.cat([x, x], dim=1), scheduler.timesteps[0], x)
    diffusers_loop(scheduler, unet, x)
    with pytest.raises(ValueError, match="the run has ended"):
        scheduler.step(x, scheduler.timesteps[-1], x)
