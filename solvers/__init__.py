"""Torch solvers: schedules, model adapters, Brownian paths and the SEEDS / baseline methods."""

from seeds.solvers.adaptive_path import AdaptiveBrownianPath
from seeds.solvers.brownian_path import BrownianPath
from seeds.solvers.methods import CHOOSE_PREDICTION, METHODS, make_method, predicted_orders
from seeds.solvers.models import (
    DataNetwork,
    Denoiser,
    EDMNetwork,
    EpsNetwork,
    ModelOutputError,
    ScoreNetwork,
    VelocityNetwork,
)
from seeds.solvers.noise import (
    B,
    EDMFunctional,
    ExponentialFunctional,
    IndependentPieces,
    M,
    P,
    functional_for,
)
from seeds.solvers.partition_path import PartitionPath, query_times
from seeds.solvers.sampling import (
    SampleResult,
    sample,
    sample_ddpm,
    sample_dpm_solver_3,
    sample_dpm_solver_pp_2m,
    sample_dpm_solver_pp_3,
    sample_euler_maruyama,
    sample_sde_dpm_solver_pp_2m,
    sample_seeds_1,
    sample_seeds_2,
    sample_seeds_3,
)
from seeds.solvers.schedules import EDM, GRIDS, VE, GridError, VPCosine, VPLinear

__all__ = [
    "B",
    "CHOOSE_PREDICTION",
    "EDM",
    "GRIDS",
    "METHODS",
    "VE",
    "AdaptiveBrownianPath",
    "BrownianPath",
    "DataNetwork",
    "Denoiser",
    "EDMFunctional",
    "EDMNetwork",
    "EpsNetwork",
    "ExponentialFunctional",
    "GridError",
    "IndependentPieces",
    "M",
    "ModelOutputError",
    "P",
    "PartitionPath",
    "SampleResult",
    "ScoreNetwork",
    "VPCosine",
    "VPLinear",
    "VelocityNetwork",
    "functional_for",
    "make_method",
    "predicted_orders",
    "query_times",
    "sample",
    "sample_ddpm",
    "sample_dpm_solver_3",
    "sample_dpm_solver_pp_2m",
    "sample_dpm_solver_pp_3",
    "sample_euler_maruyama",
    "sample_sde_dpm_solver_pp_2m",
    "sample_seeds_1",
    "sample_seeds_2",
    "sample_seeds_3",
]
