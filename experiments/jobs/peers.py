"""Peer samplers run side by side with ours, in the same process (benchmarks and agreement tests only; never
a runtime dependency).

k-diffusion's package `__init__` imports every submodule (torchvision, clip, wandb, ...), none of which its
samplers need. `k_diffusion_sampling()` registers a bare `k_diffusion` package whose path is the installed
folder, so `k_diffusion.sampling` imports without running that `__init__`; the one torchvision name its
`utils` imports (image helpers only) is stubbed during that import when torchvision is absent. Install the
peers without dependencies (torch must stay the local CPU build): `make peers`. The comparison is described
in docs/benchmarks.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from dataclasses import asdict, dataclass

import torch

from seeds.experiments.config import (
    AGREEMENT_TOLERANCE,
    DATA_FLOOR_DRAWS,
    DEFAULT_CHECKPOINT,
    FID_REFERENCE_CACHE,
    PEER_NFE_BUDGETS,
    PEER_PROBLEM_SAMPLES,
    PEER_SAMPLERS,
    PEER_SIGMA_MAX,
    PEER_SIGMA_MIN,
    SAME_METHOD,
    PeerSampler,
)
from seeds.experiments.metrics.features import data_floor, feature_metric
from seeds.experiments.metrics.frechet import FeatureStatistics, frechet_bootstrap
from seeds.experiments.metrics.mixture import exact_sample_floor, mixture_quality
from seeds.experiments.models.loaders import resolve_checkpoint
from seeds.experiments.problems import LearnedModel, make_problem
from seeds.experiments.results import CellStore, cell_key
from seeds.solvers import AdaptiveBrownianPath, noise_levels, sample

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
    steps = (budget - 1) // nfe_per_step
    return torch.cat(
        [noise_levels("edm", steps, PEER_SIGMA_MIN, PEER_SIGMA_MAX), torch.zeros(1, dtype=torch.float64)]
    )


def draw(sampler: PeerSampler, model, x: torch.Tensor, budget: int, seed: int) -> tuple[torch.Tensor, int]:
    """(samples, NFE) of one sampler from the float64 start x, its noise from AdaptiveBrownianPath(seed) (the
    k-diffusion noise_sampler or our path; heun's churn uses torch's global generator, seeded)."""
    sigmas = karras_sigmas(budget, sampler.nfe_per_step)
    path = AdaptiveBrownianPath(x, PEER_SIGMA_MIN, PEER_SIGMA_MAX, seed=seed)
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
        return cell_key(self)


def problems() -> dict:
    """name -> (title, denoiser, start(count, seed), quality(samples) -> dict, floor) of the three problems:
    16-d Gaussian (std 0.5) and the 64-d digits mixture against their exact data law (Frechet distance of
    mean and covariance), the committed digits UNet against the digits' classifier features; each with a 95%
    bootstrap interval over the samples (200 resamples)."""

    def toy(name, options, title):
        problem = make_problem(name, options)

        def start(count, seed):
            return problem.sample_marginal(count, PEER_SIGMA_MAX, torch.Generator().manual_seed(seed))

        floor = exact_sample_floor(name, PEER_PROBLEM_SAMPLES[name], 0.0, problem_options=options)["frechet"]
        exact = FeatureStatistics(problem.marginal_mean(), problem.marginal_covariance(0.0))

        def quality(samples):
            interval = frechet_bootstrap(samples.flatten(1).double().numpy(), exact, resamples=200, seed=0)
            return {
                **mixture_quality(problem, samples, 0.0),
                "frechet_ci": [interval["low"], interval["high"]],
            }

        return title, CountingDenoiser(problem), start, quality, floor

    learned = LearnedModel(DEFAULT_CHECKPOINT, dtype="float32")
    features, reference, _ = feature_metric(
        "classifier", resolve_checkpoint(DEFAULT_CHECKPOINT), "cpu", FID_REFERENCE_CACHE
    )

    def learned_start(count, seed):
        shape = (count, *learned.image_shape)
        return PEER_SIGMA_MAX * torch.randn(
            shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )

    def learned_quality(samples):
        interval = frechet_bootstrap(features(samples.float()), reference, resamples=200, seed=0)
        return {"frechet": interval["fid"], "frechet_ci": [interval["low"], interval["high"]]}

    floor = data_floor(features, reference, PEER_PROBLEM_SAMPLES["learned"], DATA_FLOOR_DRAWS)["median"]
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


def quality_vs_nfe(store_folder, budgets=PEER_NFE_BUDGETS, samplers=PEER_SAMPLERS, seed: int = 0) -> dict:
    """Every sampler at every budget on every problem, same start and path seed for all; finished cells are
    stored (resumable). Also the agreement of SAME_METHOD, checked on every problem and budget."""
    # the cells name their sampler by label: its settings in experiments/config.py are part of the digest
    store = CellStore(store_folder, ("seeds.experiments.jobs.peers",))
    out = {"budgets": list(budgets), "problems": {}}
    for name, (title, model, start, measure, floor) in problems().items():
        x = start(PEER_PROBLEM_SAMPLES[name], seed)
        rows, agreement = [], []
        for budget in budgets:
            outputs = {}
            for sampler in samplers:
                cell = PeerCell(name, sampler.label, budget, PEER_PROBLEM_SAMPLES[name], seed)
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


def peers_table(payload: dict) -> str:
    """Markdown: the Frechet distance of every sampler at every budget, per problem, with its 95% bootstrap
    interval where the cell has one."""
    budgets = payload["budgets"]
    lines = []
    for panel in payload["problems"].values():
        lines += [
            f"### {panel['title']} (floor of exact draws: {panel['floor']:.3g})",
            "",
            "| sampler | " + " | ".join(f"NFE {b}" for b in budgets) + " |",
            "|---|" + "---|" * len(budgets),
        ]
        values: dict[str, dict] = {}
        for row in panel["rows"]:
            values.setdefault(row["cell"]["sampler"], {})[row["cell"]["budget"]] = _with_interval(row)
        for label, by_budget in values.items():
            lines.append(f"| {label} | " + " | ".join(by_budget[b] for b in budgets) + " |")
        if panel["agreement"]:
            worst = max(a["max_abs_difference"] for a in panel["agreement"])
            lines += ["", f"{SAME_METHOD[0]} vs {SAME_METHOD[1]}: max |difference| {worst:.1e}"]
        lines.append("")
    return "\n".join(lines)


def _with_interval(row: dict) -> str:
    if "frechet_ci" not in row:
        return f"{row['frechet']:.3g}"
    low, high = row["frechet_ci"]
    return f"{row['frechet']:.3g} [{low:.3g}, {high:.3g}]"
