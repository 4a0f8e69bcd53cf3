"""The method lists and settings of every job of the `seeds` command, in one place.

A method is (METHODS id, options) with options a sorted tuple of (name, value) pairs: the form the cells
store, so that a cell's key is a hash of plain values. The code that computes stored cells takes its settings
as arguments and never imports this module (a stored cell's digest covers what its computation imports,
experiments/sources.py): editing a setting changes only the cells whose fields it sets. Results and figures
are described in docs/results.md, docs/learned-models.md and docs/benchmarks.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from seeds.experiments.sources import ROOT

RESULTS = ROOT / "results"
FIGURES = ROOT / "figures"
# relative to ROOT: the learned cells store this string, so their keys do not depend on where the project is
DEFAULT_CHECKPOINT = "experiments/data/digits_unet"
DEFAULT_MODEL = ROOT / DEFAULT_CHECKPOINT
FID_REFERENCE_CACHE = RESULTS / "fid_reference"

EDM_CHURN = ("edm-heun", (("s_churn", 40.0), ("s_noise", 1.0), ("s_tmax", 50.0), ("s_tmin", 0.05)))
SEEDS_METHODS = [
    (f"seeds-{order}", (("prediction", prediction),))
    for order in (1, 2, 3)
    for prediction in ("noise", "data", "edm")
]
PATH_BASELINES = [("euler-maruyama", ()), ("ddpm", ()), ("sde-dpm-solver++-2m", ())]

# ---------------------------------------------------------------------- seeds convergence-plots (main job)

# s = 0.3, not sigma_data = 0.5: at s = sigma_data the EDM output of Gaussian data is F = 0 and every
# EDM-parameterised scheme is exact, which would hide its error
CONVERGENCE_DATA_STD = 0.3
CONVERGENCE_SDE_METHODS = [
    ("seeds-1", (("prediction", "data"),)),
    ("seeds-2", (("prediction", "data"),)),
    ("seeds-3", (("prediction", "data"),)),
    ("seeds-3", (("prediction", "noise"),)),
    ("seeds-3", (("prediction", "edm"),)),
    ("euler-maruyama", ()),
    ("sde-dpm-solver++-2m", ()),
]
MIXTURE_QUALITY_METHODS = [
    ("seeds-1", (("prediction", "data"),)),
    ("seeds-2", (("prediction", "data"),)),
    ("seeds-3", (("prediction", "data"),)),
    ("euler-maruyama", ()),
    ("ddpm", ()),
    ("sde-dpm-solver++-2m", ()),
    EDM_CHURN,
]
EXACT_LINEAR_METHODS = CONVERGENCE_SDE_METHODS + [
    ("seeds-1", (("prediction", "noise"),)),
    ("seeds-2", (("prediction", "noise"),)),
    ("seeds-2", (("prediction", "data"), ("variant", "phi_2"))),
    ("ddpm", ()),
]
# the 2-d ring with overlapping components (std 0.6 at neighbour distance 1.53) and a moderate sigma_min,
# where the drift stays smooth enough for the theory
RING_PROBLEM_OPTIONS = (("std", 0.6),)
RING_SIGMA_MIN = 0.05


@dataclass(frozen=True)
class ConvergenceScale:
    """The sizes of the main job's cells."""

    paths: int
    levels: tuple
    fit_levels: int
    ring_levels: tuple
    quality_budgets: tuple
    quality_samples: int
    exact_linear_steps: tuple


CONVERGENCE_SCALES = {
    "full": ConvergenceScale(
        paths=400,
        levels=(4, 8, 16, 32, 64, 128, 256),
        fit_levels=4,
        # the ring's 16x and 32x references of 256 steps would take minutes
        ring_levels=(4, 8, 16, 32, 64, 128),
        quality_budgets=(12, 24, 48, 96, 192),
        quality_samples=1000,
        exact_linear_steps=tuple(2**k for k in range(2, 11)),
    ),
    "quick": ConvergenceScale(
        paths=64,
        levels=(4, 8, 16),
        fit_levels=2,
        ring_levels=(4, 8, 16),
        quality_budgets=(6, 12),
        quality_samples=200,
        exact_linear_steps=(4, 8, 16),
    ),
}

# -------------------------------------------------------------------------------------- seeds weak-ring

RING_SDE_METHODS = SEEDS_METHODS + PATH_BASELINES
RING_ODE_METHODS = [
    ("dpm-solver-2", ()),
    ("dpm-solver++-2", ()),
    ("dpm-solver++-2m", ()),
    ("edm-heun", ()),
    ("ddim", ()),
]
RING_STRONG_LEVELS = (32, 64, 128)
RING_STRONG_PATHS = 128
# (reference, independent check reference) as (method, options, steps)
RING_SDE_REFERENCES = (
    ("seeds-3", (("prediction", "edm"),), 2048),
    ("seeds-3", (("prediction", "noise"),), 4096),
)
RING_ODE_REFERENCES = (("dpm-solver-3", (), 512), ("dpm-solver++-3", (), 512))
# ESRA (docs/esra.md), strong order 1.5 here: SEEDS-3's references (order 1) would not be accurate enough
RING_ESRA_METHODS = [("esra", (("prediction", prediction),)) for prediction in ("noise", "data", "edm")]
RING_ESRA_REFERENCES = (("esra", (("prediction", "edm"),), 2048), ("esra", (("prediction", "data"),), 4096))
RING_WEAK_LEVELS = (32, 64, 128, 256)
RING_WEAK_SDE_PATHS = 32768
RING_WEAK_ODE_PATHS = 4096
RESOLVED_STANDARD_ERRORS = 3.0  # a coupled weak difference counts as resolved this far from 0

# -------------------------------------------------------------------------- seeds figures (learned model)

ESRA_DATA = ("esra", (("prediction", "data"),))
# the earlier SDE methods whose NFE the headline claim compares to SEEDS'
EARLIER_SDE_METHODS = PATH_BASELINES + [EDM_CHURN]
LEARNED_STRONG_METHODS = (
    SEEDS_METHODS + PATH_BASELINES
)  # EDM churn draws fresh noise: no path, no strong error
# the headline comparison (docs/learned-models.md): every SEEDS variant, the earlier SDE methods and ESRA
HEADLINE_METHODS = SEEDS_METHODS + EARLIER_SDE_METHODS + [ESRA_DATA]
# NFE 6 to 96, neighbours at most 1.25x apart (a method of k evaluations per step runs NFE // k steps, so its
# own grid is coarser below 12 NFE: 6, 9, 12 for a 3-stage method)
HEADLINE_NFE_GRID = (6, 7, 8, 10, 12, 15, 18, 22, 27, 33, 41, 51, 63, 78, 96)
# the references: the same SDE on the same starts and Brownian path, solved by SEEDS-3/data at
# REFERENCE_FACTOR x the grid's largest NFE and checked against ESRA/data (another scheme, strong order 1.5 on
# additive noise) at the same NFE; EDM churn draws fresh noise and is compared with the probability-flow ODE
# solved accurately (EDM's Heun without churn), checked against churn's own cell at the grid's largest NFE
SDE_REFERENCE = ("seeds-3", (("prediction", "data"),))
SDE_CHECK_REFERENCE = ESRA_DATA
ODE_REFERENCE = ("edm-heun", ())
REFERENCE_FACTOR = 8
# The plateau rule, fixed before the runs (docs/learned-models.md, "The headline claim"): a method has reached
# the plateau at the first NFE from which its coupled Frechet distance to the reference stays at most
# PLATEAU_FRACTION x the reference's own Frechet distance to the target (the data, or the mixture's exact law)
# at this sample count; with independent solver and target errors, FD(method, target) ~ FD(reference, target)
# + FD(method, reference), so the method's distance to the target is then within 5% of the converged one. A
# reference counts only when its distance to its check is at most threshold / REFERENCE_MARGIN. The mixture
# took the same rule after its first run, where the main job's (within 10% of one draw of the exact-sample
# floor) was met by no method: the docs say so.
PLATEAU_FRACTION = 0.05
REFERENCE_MARGIN = 5.0
BOOTSTRAP_RESAMPLES = 200


@dataclass(frozen=True)
class HeadlineScale:
    """The sizes of `seeds figures`: NFE grid, samples per cell of the learned model and of the digits
    mixture, and the chunk of seeds (the unit of sharding)."""

    grid: tuple
    samples: int
    chunk: int
    mixture_samples: int
    methods: tuple = tuple(HEADLINE_METHODS)


HEADLINE_SCALES = {
    "quick": HeadlineScale(
        (6, 12, 24), 64, 256, 64, (SDE_REFERENCE, PATH_BASELINES[0], EDM_CHURN, ESRA_DATA)
    ),
    # 256 samples per problem: what keeps the run under 20 minutes on 2 cores (512 on both took 29; docs);
    # the intervals that decide the claim come from the long scale
    "default": HeadlineScale(HEADLINE_NFE_GRID, 256, 256, 256),
    # the grid continued to 192 NFE, 512 samples, references at 8 x 192 (about 1 h on 2 cores); with
    # --samples, the paper's scale on a GPU
    "long": HeadlineScale(HEADLINE_NFE_GRID + (120, 150, 192), 512, 256, 512),
}
# strong cells: quick -> (levels, paths), else the default; errors against the same method at 4x the finest
LEARNED_STRONG_LEVELS = {True: ((4, 8, 16), 16), False: ((8, 16, 32, 64), 32)}
LEARNED_METRICS = ("classifier", "fid")
DATA_FLOOR_DRAWS = 20

# ---------------------------------------------------------------------------------------- seeds bench

OVERHEAD_METHODS = (
    SEEDS_METHODS
    + PATH_BASELINES
    + [EDM_CHURN, ("dpm-solver++-2m", ()), ("dpm-solver++-3", ())]
    + [("esra", (("prediction", "data"),))]
)
# the methods timed with every noise source: SEEDS-3, and ESRA, which draws a second functional jointly
OVERHEAD_PATH_METHODS = [("seeds-3", (("prediction", "data"),)), ("esra", (("prediction", "data"),))]
BENCH_BATCH, BENCH_STEPS = 256, 20
BENCH_SIGMA_MIN, BENCH_SIGMA_MAX = 0.002, 80.0
TARGET_SEEDS_3_OVERHEAD = 0.05
TARGET_RATIO_TO_RANDN_LIKE = 2.0
TARGET_SPEEDUP_OVER_TORCHSDE = 10.0
QUERY_SHAPES, MEMORY_SHAPE = [(BENCH_BATCH, 64), (BENCH_BATCH, 784)], (BENCH_BATCH, 784)
# a GPU is launch-bound at the small sizes; images of 3x64x64 show where the arithmetic starts to count
CUDA_QUERY_SHAPES = QUERY_SHAPES + [(BENCH_BATCH, 3 * 64 * 64)]

# the peers' quality comparison of `seeds bench`: 6 2^k + 1, so that every sampler spends exactly the budget
# (the final step to sigma = 0 is one evaluation)
PEER_NFE_BUDGETS = (7, 13, 25, 49)
PEER_SIGMA_MIN, PEER_SIGMA_MAX = 0.002, 80.0
PEER_PROBLEM_SAMPLES = {"gaussian": 4000, "digits": 4000, "learned": 512}


@dataclass(frozen=True)
class PeerSampler:
    """One sampler of the comparison: a k-diffusion function (peer) or one of our methods, with its NFE per
    step (the final step to sigma = 0 is one evaluation for all of them)."""

    label: str
    name: str
    options: tuple = ()
    nfe_per_step: int = 1
    peer: bool = True
    noise_sampler: bool = False


PEER_SAMPLERS = (
    PeerSampler("k-diffusion euler_ancestral", "sample_euler_ancestral", noise_sampler=True),
    # EDM's churn settings as our edm-heun runs them in the learned experiments (k-diffusion: the same names)
    PeerSampler("k-diffusion heun (churn 40)", "sample_heun", EDM_CHURN[1], 2),
    PeerSampler("k-diffusion dpmpp_sde", "sample_dpmpp_sde", (), 2, noise_sampler=True),
    PeerSampler("k-diffusion dpmpp_2m", "sample_dpmpp_2m"),
    PeerSampler("k-diffusion dpmpp_2m_sde", "sample_dpmpp_2m_sde", noise_sampler=True),
    PeerSampler("k-diffusion dpmpp_3m_sde", "sample_dpmpp_3m_sde", noise_sampler=True),
    PeerSampler("ours DPM-Solver++(2M)", "dpm-solver++-2m", peer=False),
    PeerSampler("ours SEEDS-1 (data)", "seeds-1", (("prediction", "data"),), 1, peer=False),
    PeerSampler("ours SEEDS-2 (data)", "seeds-2", (("prediction", "data"),), 2, peer=False),
    PeerSampler("ours SEEDS-3 (data)", "seeds-3", (("prediction", "data"),), 3, peer=False),
)
# ESRA's comparison (`seeds esra-quality`, docs/esra.md): the peers' problems and protocol, 6 k + 1 budgets from
# 7 to 193 (ratio <= 1.5 between neighbours, every sampler spends exactly the budget), ESRA in data prediction
# (the noise and EDM forms refuse the EDM grid's growing last steps below 19 steps, docs/esra.md)
ESRA_NFE_BUDGETS = (7, 13, 19, 25, 37, 49, 73, 97, 145, 193)
ESRA_SAMPLERS = (
    PeerSampler("ours ESRA (data)", "esra", (("prediction", "data"),), 2, peer=False),
    PeerSampler("ours SEEDS-3 (data)", "seeds-3", (("prediction", "data"),), 3, peer=False),
    PeerSampler("k-diffusion euler_ancestral", "sample_euler_ancestral", noise_sampler=True),
    PeerSampler("k-diffusion dpmpp_sde", "sample_dpmpp_sde", (), 2, noise_sampler=True),
    PeerSampler("k-diffusion dpmpp_2m_sde", "sample_dpmpp_2m_sde", noise_sampler=True),
    PeerSampler("k-diffusion dpmpp_3m_sde", "sample_dpmpp_3m_sde", noise_sampler=True),
)
# mathematically the same method given the same sigmas: their samples must agree to 1e-10 in float64
SAME_METHOD = ("ours DPM-Solver++(2M)", "k-diffusion dpmpp_2m")
AGREEMENT_TOLERANCE = 1e-10

# ------------------------------------------------------------------------------- seeds train (the model)


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "digits"
    steps: int = 4000
    batch_size: int = 128
    learning_rate: float = 2e-3
    warmup_steps: int = 200
    cooldown_fraction: float = 0.3  # the rate ramps linearly to zero over this final share of the steps
    ema_half_life_images: float = 20_000.0
    sigma_data: float = 0.5
    seed: int = 0
    threads: int = 2


TRAIN_DATASETS = ("digits", "mnist", "fashion-mnist")
TRAIN_BASE_CHANNELS = 16

# ------------------------------------------------------------------ seeds exact-weak-table (make exact-weak)

EXACT_WEAK_PROBLEMS = ("overlapping", "separated", "logistic")
EXACT_WEAK_STEPS = tuple(2**k for k in range(2, 11))
# (problem, grid, step counts) of the table
EXACT_WEAK_COLUMNS = tuple(
    (problem, grid, EXACT_WEAK_STEPS) for problem in EXACT_WEAK_PROBLEMS for grid in ("lambda", "edm")
)
# every one-step method (a multistep method's chain is not Markov in x alone), each parameterisation and
# variant; EDM churn with the settings of the learned-model comparisons
EXACT_WEAK_METHODS = (
    [
        (f"seeds-{order}", (("prediction", prediction),) + variant)
        for order in (1, 2, 3)
        for prediction in ("noise", "data", "edm")
        for variant in ([(), (("variant", "phi_2"),)] if order == 2 else [()])
    ]
    + [(name, ()) for name in ("euler-maruyama", "ddpm", "sde-dpm-solver++-1")]
    + [(f"dpm-solver{plus}-{order}", ()) for plus in ("", "++") for order in (1, 2, 3)]
    + [("ddim", ()), ("edm-heun", ()), EDM_CHURN]
    + [("esra", (("prediction", prediction),)) for prediction in ("data", "edm")]
)
# the accuracy check: these (problem, method) cells are recomputed at the refined resolution (twice the grid
# nodes, more quadrature nodes, more panels) at these step counts on the lambda grid: every method on the
# mixtures; on the logistic law, whose grid is resolved alike, the SEEDS data methods, the first-order
# baseline and an ODE method
EXACT_WEAK_REFINED_STEPS = (1024,)
EXACT_WEAK_REFINED = [
    (problem, method, options)
    for problem in ("overlapping", "separated")
    for method, options in EXACT_WEAK_METHODS
] + [
    ("logistic", method, options)
    for method, options in [(f"seeds-{order}", (("prediction", "data"),)) for order in (1, 2, 3)]
    + [("euler-maruyama", ()), ("dpm-solver-3", ())]
]
# the planted mistake: SEEDS-2 and SEEDS-3 with stage noises independent of the final noise
EXACT_WEAK_PLANTED = [("seeds-2", (("prediction", "data"),)), ("seeds-3", (("prediction", "data"),))]
# the main job's exact-weak figure: the SEEDS methods and the planted mistake on the overlapping mixture
EXACT_WEAK_MAIN_STEPS = (4, 8, 16, 32, 64, 128, 256)
EXACT_WEAK_MAIN_METHODS = [(f"seeds-{order}", (("prediction", "data"),)) for order in (1, 2, 3)]
