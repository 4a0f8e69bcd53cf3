"""Peer samplers run side by side with ours, in the same process (benchmarks and agreement tests only; never
a runtime dependency).

k-diffusion's package `__init__` imports every submodule (torchvision, clip, wandb, ...), none of which its
samplers need. `k_diffusion_sampling()` registers a bare `k_diffusion` package whose path is the installed
folder, so `k_diffusion.sampling` imports without running that `__init__`; the one torchvision name its
`utils` imports (image helpers only) is stubbed during that import when torchvision is absent. Install the peers without
dependencies (torch must stay the local CPU build): `make peers`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from dataclasses import asdict, dataclass

import torch

from seeds.experiments.learned import EDM_CHURN

PEER_PACKAGES = ("k-diffusion==0.1.1.post1", "torchsde==0.2.6", "torchdiffeq==0.2.5", "trampoline==0.1.2")
INSTALL = "pip install --no-deps " + " ".join(f'"{p}"' for p in PEER_PACKAGES) + "   (or: make peers)"


def k_diffusion_sampling():
    """The `k_diffusion.sampling` module of the installed k-diffusion wheel."""
    if "k_diffusion.sampling" in sys.modules:
        return sys.modules["k_diffusion.sampling"]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"k-diffusion is not installed: {INSTALL}")
    package = types.ModuleType("k_diffusion")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["k_diffusion"] = package
    if importlib.util.find_spec("torchvision") is not None:
        return importlib.import_module("k_diffusion.sampling")
    stubs = _torchvision_stubs()
    sys.modules.update(stubs)
    try:
        return importlib.import_module("k_diffusion.sampling")
    finally:
        # k_diffusion.utils keeps its reference; other libraries (diffusers) probe for a real torchvision
        for name in stubs:
            sys.modules.pop(name, None)


def _torchvision_stubs() -> dict:
    functional = types.ModuleType("torchvision.transforms.functional")
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional
    torchvision = types.ModuleType("torchvision")
    torchvision.transforms = transforms
    return {
        "torchvision": torchvision,
        "torchvision.transforms": transforms,
        "torchvision.transforms.functional": functional,
    }


# ------------------------------------------------------------------------------------- quality against NFE

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0
NFE_BUDGETS = (7, 13, 25, 49)  # 6 2^k + 1: every method below spends exactly the budget (final step: one NFE)


@dataclass(frozen=True)
class Sampler:
    """One sampler of the comparison: a k-diffusion function (peer) or one of our methods, with its NFE per
    step (the final step to sigma = 0 is one evaluation for all of them)."""

    label: str
    name: str
    options: tuple = ()
    nfe_per_step: int = 1
    peer: bool = True
    noise_sampler: bool = False


SAMPLERS = (
    Sampler("k-diffusion euler_ancestral", "sample_euler_ancestral", noise_sampler=True),
    # EDM's churn settings as our edm-heun runs them in the learned experiments (k-diffusion: the same names)
    Sampler("k-diffusion heun (churn 40)", "sample_heun", EDM_CHURN[1], 2),
    Sampler("k-diffusion dpmpp_sde", "sample_dpmpp_sde", (), 2, noise_sampler=True),
    Sampler("k-diffusion dpmpp_2m", "sample_dpmpp_2m"),
    Sampler("k-diffusion dpmpp_2m_sde", "sample_dpmpp_2m_sde", noise_sampler=True),
    Sampler("k-diffusion dpmpp_3m_sde", "sample_dpmpp_3m_sde", noise_sampler=True),
    Sampler("ours DPM-Solver++(2M)", "dpm-solver++-2m", peer=False),
    Sampler("ours SEEDS-1 (data)", "seeds-1", (("prediction", "data"),), 1, peer=False),
    Sampler("ours SEEDS-2 (data)", "seeds-2", (("prediction", "data"),), 2, peer=False),
    Sampler("ours SEEDS-3 (data)", "seeds-3", (("prediction", "data"),), 3, peer=False),
)
# mathematically the same method given the same sigmas: their samples must agree to 1e-10 in float64
SAME_METHOD = ("ours DPM-Solver++(2M)", "k-diffusion dpmpp_2m")
AGREEMENT_TOLERANCE = 1e-10


class CountingDenoiser:
    """D(x, sigma) of `model` evaluated in `dtype` (the learned network in float32), answered in x's dtype;
    counts evaluations, so every sampler's NFE is measured, not assumed."""

    def __init__(self, model, dtype=torch.float64):
        self.model, self.dtype, self.calls = model, dtype, 0

    def __call__(self, x, sigma, **extra_args):
        self.calls += 1
        sigma = torch.as_tensor(sigma, device=x.device).to(self.dtype)
        return self.model(x.to(self.dtype), sigma, **extra_args).to(x.dtype)


def karras_sigmas(budget: int, nfe_per_step: int) -> torch.Tensor:
    """The EDM (rho = 7) levels 80 -> 0.002 with (budget - 1) / nfe_per_step steps, then 0: the grid
    k-diffusion's get_sigmas_karras builds, for every sampler alike."""
    from seeds.experiments.exact_linear import edm_sigmas

    steps = (budget - 1) // nfe_per_step
    return torch.cat([edm_sigmas("edm", steps, SIGMA_MIN, SIGMA_MAX), torch.zeros(1, dtype=torch.float64)])


def draw(sampler: Sampler, model, x: torch.Tensor, budget: int, seed: int) -> tuple[torch.Tensor, int]:
    """(samples, NFE) of one sampler from the float64 start x, its noise from AdaptiveBrownianPath(seed) (the
    k-diffusion noise_sampler or our path; heun's churn uses torch's global generator, seeded)."""
    from seeds.solvers import sample
    from seeds.solvers.adaptive_path import AdaptiveBrownianPath

    sigmas = karras_sigmas(budget, sampler.nfe_per_step)
    path = AdaptiveBrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=seed)
    model.calls = 0
    options = dict(sampler.options)
    if not sampler.peer:
        samples = sample(model, x, sigmas, method=sampler.name, path=path, **options).samples
        return samples, model.calls
    if sampler.noise_sampler:
        options["noise_sampler"] = path
    torch.manual_seed(seed)
    function = getattr(k_diffusion_sampling(), sampler.name)
    samples = function(model, x.clone(), sigmas, disable=True, **options)
    return samples, model.calls


@dataclass(frozen=True)
class PeerCell:
    problem: str
    sampler: str
    budget: int
    samples: int
    seed: int = 0

    def key(self) -> str:
        from seeds.experiments.convergence import cell_key

        return cell_key(self)


PROBLEM_SAMPLES = {"gaussian": 4000, "digits": 4000, "learned": 512}


def problems() -> dict:
    """name -> (title, denoiser, start(count, seed), quality(samples) -> dict, floor) of the three problems:
    16-d Gaussian (std 0.5) and the 64-d digits mixture against their exact data law (Frechet distance of
    mean and covariance), the committed digits UNet against the digits' classifier features."""
    from seeds.experiments.learned import DEFAULT_CHECKPOINT, _metric, data_floor, resolve
    from seeds.experiments.problems import PROBLEMS, LearnedModel
    from seeds.experiments.quality import exact_sample_floor, quality

    def toy(name, options, title):
        problem = PROBLEMS[name](**dict(options))

        def start(count, seed):
            return problem.sample_marginal(count, SIGMA_MAX, torch.Generator().manual_seed(seed))

        floor = exact_sample_floor(name, PROBLEM_SAMPLES[name], 0.0, problem_options=options)["frechet"]
        return title, CountingDenoiser(problem), start, lambda s: quality(problem, s, 0.0), floor

    learned = LearnedModel(DEFAULT_CHECKPOINT, dtype="float32")
    features, reference, _ = _metric("classifier", resolve(DEFAULT_CHECKPOINT), "cpu")

    def learned_start(count, seed):
        shape = (count, *learned.image_shape)
        return SIGMA_MAX * torch.randn(
            shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )

    def learned_quality(samples):
        from seeds.experiments.fid import frechet_bootstrap

        interval = frechet_bootstrap(features(samples.float()), reference, resamples=200, seed=0)
        return {"frechet": interval["fid"], "frechet_ci": [interval["low"], interval["high"]]}

    floor = data_floor(features, reference, PROBLEM_SAMPLES["learned"])["median"]
    return {
        "gaussian": toy("gaussian", (("dim", 16), ("std", 0.5)), "16-d Gaussian (std 0.5), exact law"),
        "digits": toy("digits", (), "64-d digits mixture, exact law"),
        "learned": (
            "digits UNet (classifier features)",
            CountingDenoiser(learned, torch.float32),
            learned_start,
            learned_quality,
            floor,
        ),
    }


def quality_vs_nfe(store_folder, budgets=NFE_BUDGETS, samplers=SAMPLERS, seed: int = 0) -> dict:
    """Every sampler at every budget on every problem, same start and path seed for all; finished cells are
    stored (resumable). Also the agreement of SAME_METHOD, checked on every problem and budget."""
    from seeds.experiments.results import CellStore

    store = CellStore(store_folder)
    out = {"budgets": list(budgets), "problems": {}}
    for name, (title, model, start, measure, floor) in problems().items():
        x = start(PROBLEM_SAMPLES[name], seed)
        rows, agreement = [], []
        for budget in budgets:
            outputs = {}
            for sampler in samplers:
                cell = PeerCell(name, sampler.label, budget, PROBLEM_SAMPLES[name], seed)
                result = store.load(cell.key())
                if result is None or sampler.label in SAME_METHOD:
                    samples, nfe = draw(sampler, model, x, budget, seed)
                    outputs[sampler.label] = samples
                    result = {"cell": asdict(cell), "nfe": nfe, **measure(samples)}
                    store.save(cell.key(), result)
                rows.append(result)
            if all(label in outputs for label in SAME_METHOD):
                difference = float((outputs[SAME_METHOD[0]] - outputs[SAME_METHOD[1]]).abs().max())
                agreement.append({"budget": budget, "max_abs_difference": difference})
                if not difference <= AGREEMENT_TOLERANCE:
                    raise AssertionError(
                        f"{SAME_METHOD[0]} and {SAME_METHOD[1]} differ by {difference:.2e} on {name} at NFE "
                        f"{budget} (> {AGREEMENT_TOLERANCE:g})"
                    )
        out["problems"][name] = {"title": title, "floor": floor, "rows": rows, "agreement": agreement}
    return out
