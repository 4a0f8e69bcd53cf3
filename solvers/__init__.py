"""Torch solvers: schedules, model adapters, Brownian paths and the SEEDS / baseline methods."""

from seeds.solvers.models import (
    DataNetwork,
    Denoiser,
    EDMNetwork,
    EpsNetwork,
    ModelOutputError,
    ScoreNetwork,
    VelocityNetwork,
)
from seeds.solvers.sampling import (
    METHODS,
    SampleResult,
    make_method,
    sample,
    sample_dpm_solver_3,
    sample_dpm_solver_pp_3,
    sample_euler_maruyama,
    sample_seeds_1,
    sample_seeds_2,
    sample_seeds_3,
)
from seeds.solvers.schedules import EDM, GRIDS, VE, GridError, VPCosine, VPLinear

__all__ = [
    "EDM",
    "GRIDS",
    "METHODS",
    "VE",
    "DataNetwork",
    "Denoiser",
    "EDMNetwork",
    "EpsNetwork",
    "GridError",
    "ModelOutputError",
    "SampleResult",
    "ScoreNetwork",
    "VPCosine",
    "VPLinear",
    "VelocityNetwork",
    "make_method",
    "sample",
    "sample_dpm_solver_3",
    "sample_dpm_solver_pp_3",
    "sample_euler_maruyama",
    "sample_seeds_1",
    "sample_seeds_2",
    "sample_seeds_3",
]
