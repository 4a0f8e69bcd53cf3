"""The seeded paths as callers use them: inside k-diffusion's own SDE samplers and ours, with k-diffusion's
float32 (or float16) noise levels, x in float32 or float16, paths built from a nominal range or from the grid
(from_sigmas); the dtype of what they return; the refusals a caller meets (batch, range)."""

from __future__ import annotations

import math

import pytest
import torch

from seeds.experiments.jobs.peers import k_diffusion_sampling
from seeds.solvers import AdaptiveBrownianPath, BrownianPath, PartitionPath, query_times, sample
from seeds.solvers.brownian import B
from seeds.solvers.brownian.source import end_tolerance
from seeds.solvers.schedules import GridError
from tests.solver_problems import gaussian_denoiser

K = k_diffusion_sampling()
SIGMA_MIN, SIGMA_MAX = 0.002, 80.0
# (x's dtype, the sigmas' dtype): k-diffusion's float32 grid with float32 or float16 x, and the grid in float16
DTYPES = [(torch.float32, torch.float32), (torch.float16, torch.float32), (torch.float16, torch.float16)]
PATHS = {
    "adaptive": lambda x, sigmas: AdaptiveBrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=0),
    "tree": lambda x, sigmas: BrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=list(range(len(x)))),
    "adaptive from_sigmas": lambda x, sigmas: AdaptiveBrownianPath.from_sigmas(x, sigmas, seed=0),
}


def karras(steps, dtype=torch.float32):
    """k-diffusion's grid: float32 arithmetic, so it ends at 0.0019999996 (then 0), not at 0.002."""
    return K.get_sigmas_karras(steps, SIGMA_MIN, SIGMA_MAX).to(dtype)


def start(batch=8, dtype=torch.float32):
    return (SIGMA_MAX * torch.randn(batch, 3, generator=torch.Generator().manual_seed(1))).to(dtype)


def test_k_diffusion_ends_its_grid_off_the_nominal_range():
    """What the tolerance is for: the grid's last level lies below float32(0.002)."""
    assert float(karras(10)[-2]) < SIGMA_MIN


@pytest.mark.parametrize("path_kind", PATHS)
@pytest.mark.parametrize(("x_dtype", "sigmas_dtype"), DTYPES)
@pytest.mark.parametrize("sampler", ["sample_dpmpp_2m_sde", "sample_dpmpp_sde", "sample_euler_ancestral"])
def test_our_paths_drive_k_diffusions_sde_samplers_in_xs_dtype(sampler, x_dtype, sigmas_dtype, path_kind):
    """Rounded range ends are accepted, and the noise keeps the run in the dtype that k-diffusion's own
    randn_like noise keeps it: x's when the sigmas share it (float16 x with float32 sigmas becomes float32
    in k-diffusion's arithmetic, whatever the noise)."""
    x, sigmas = start(dtype=x_dtype), karras(8, sigmas_dtype)
    path = PATHS[path_kind](x, sigmas)
    assert path(sigmas[0], sigmas[1]).dtype == x_dtype
    run = getattr(K, sampler)
    samples = run(gaussian_denoiser(0.25), x, sigmas, disable=True, noise_sampler=path)
    with_randn = run(
        gaussian_denoiser(0.25), x, sigmas, disable=True, noise_sampler=lambda *_: torch.randn_like(x)
    )
    assert samples.dtype == with_randn.dtype and samples.shape == x.shape
    assert samples.dtype == x_dtype or sigmas_dtype != x_dtype
    assert torch.isfinite(samples).all()


@pytest.mark.parametrize(
    ("method", "make_path"),
    [
        ("seeds-3", lambda x, sigmas: AdaptiveBrownianPath.from_sigmas(x, sigmas, seed=0)),
        ("seeds-3", lambda x, sigmas: AdaptiveBrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=0)),
        ("seeds-2", lambda x, sigmas: BrownianPath.from_sigmas(x, sigmas, seed=list(range(len(x))))),
        ("seeds-2", lambda x, sigmas: BrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=0)),
        ("euler-maruyama", lambda x, sigmas: PartitionPath.from_sigmas(x, sigmas, seed=0)),
        ("seeds-3", lambda x, sigmas: PartitionPath(x, query_times("seeds-3", sigmas), seed=0)),
    ],
)
@pytest.mark.parametrize("x_dtype", [torch.float32, torch.float16])
def test_our_samplers_take_k_diffusions_float32_sigmas(method, make_path, x_dtype):
    x, sigmas = start(dtype=x_dtype), karras(8)
    out = sample(gaussian_denoiser(0.25), x, sigmas, method=method, path=make_path(x, sigmas))
    assert out.samples.dtype == x_dtype and torch.isfinite(out.samples).all()


@pytest.mark.parametrize("path_type", [BrownianPath, AdaptiveBrownianPath])
def test_from_sigmas_covers_exactly_the_grid_without_its_final_zero(path_type):
    sigmas = karras(10)
    path = path_type.from_sigmas(start(), sigmas, seed=3)
    assert path.sigma_range == (float(sigmas[-2]), float(sigmas[0]))
    with pytest.raises(ValueError, match="at least two positive finite noise levels"):
        path_type.from_sigmas(start(), [1.0, 0.0], seed=3)
    with pytest.raises(ValueError, match="at least two positive finite noise levels"):
        path_type.from_sigmas(start(), [2.0, 0.0, 1.0], seed=3)


def test_partition_from_sigmas_is_the_partition_of_the_grids_levels():
    sigmas = karras(6)
    path = PartitionPath.from_sigmas(start(), sigmas, seed=2)
    assert sorted(path.times.tolist()) == sorted(-math.log(level) for level in sigmas[:-1].tolist())


@pytest.mark.parametrize("path_type", [BrownianPath, AdaptiveBrownianPath])
def test_a_level_rounded_beyond_an_end_is_that_end(path_type):
    """Clamped, not extrapolated: the answers equal those at the ends, bitwise."""
    x = start()
    rounded_min, rounded_max = SIGMA_MIN * (1 - 2**-20), SIGMA_MAX * (1 + 2**-20)
    path = path_type(x, SIGMA_MIN, SIGMA_MAX, seed=4)
    lam_lo, lam_hi = -math.log(SIGMA_MAX), -math.log(SIGMA_MIN)
    assert torch.equal(path(rounded_max, rounded_min), path(SIGMA_MAX, SIGMA_MIN))
    assert torch.equal(path.increment(B, -math.log(rounded_max), lam_hi), path.increment(B, lam_lo, lam_hi))
    with pytest.raises(ValueError, match="two different noise levels within the path's range"):
        path(SIGMA_MIN, rounded_min)


def test_the_partition_takes_a_level_rounded_beyond_its_ends_as_those_ends():
    sigmas = torch.tensor([SIGMA_MAX, 1.0, SIGMA_MIN], dtype=torch.float64)
    path = PartitionPath.from_sigmas(start(), sigmas, seed=1)
    assert torch.equal(path(SIGMA_MAX * (1 + 2**-20), 1.0), path(SIGMA_MAX, 1.0))
    assert torch.equal(path(1.0, SIGMA_MIN * (1 - 2**-20)), path(1.0, SIGMA_MIN))
    with pytest.raises(ValueError, match="not a time of this partition"):
        path(1.0, SIGMA_MIN * 0.99)


@pytest.mark.parametrize("path_type", [BrownianPath, AdaptiveBrownianPath])
def test_the_tolerance_follows_the_rounding_of_xs_dtype(path_type):
    """Half a percent off is float16 rounding (4 ulps of 2^-10 and then some) but far beyond float32's."""
    beyond_float32 = SIGMA_MIN * (1 - 2**-9)
    assert end_tolerance(torch.float32) < 2**-9 < end_tolerance(torch.float16)
    half = path_type(start(dtype=torch.float16), SIGMA_MIN, SIGMA_MAX, seed=0)
    assert torch.equal(half(1.0, beyond_float32), half(1.0, SIGMA_MIN))
    single = path_type(start(dtype=torch.float32), SIGMA_MIN, SIGMA_MAX, seed=0)
    with pytest.raises(
        ValueError, match=r"outside the path's lambda range .* covers sigma in \[0.002, 80.0\]"
    ):
        single(1.0, beyond_float32)
    with pytest.raises(GridError, match="below the range"):
        sample(gaussian_denoiser(0.25), start(), [SIGMA_MAX, 1.0, beyond_float32], path=single)


@pytest.mark.parametrize("path_type", [BrownianPath, AdaptiveBrownianPath])
def test_dtypes_of_the_answers(path_type):
    """noise_sampler: x's dtype unless dtype is given; increments and fresh noise: float64 unless dtype is
    given (our driver's solver state is float64)."""
    x = start(dtype=torch.float16)
    lam_a, lam_b = -math.log(3.0), -math.log(2.0)
    path = path_type(x, SIGMA_MIN, SIGMA_MAX, seed=0)
    assert path(3.0, 2.0).dtype == torch.float16
    assert path.increment(B, lam_a, lam_b).dtype == torch.float64 and path.fresh(0).dtype == torch.float64
    explicit = path_type(x, SIGMA_MIN, SIGMA_MAX, seed=0, dtype=torch.float32)
    assert explicit(3.0, 2.0).dtype == torch.float32
    assert explicit.increment(B, lam_a, lam_b).dtype == torch.float32
    assert torch.equal(path(3.0, 2.0), (path.increment(B, lam_a, lam_b) / math.sqrt(lam_b - lam_a)).half())


def test_partition_answers_in_the_same_dtypes():
    path = PartitionPath.from_sigmas(start(dtype=torch.float16), [3.0, 2.0], seed=0)
    assert path(3.0, 2.0).dtype == torch.float16
    assert path.increment(B, -math.log(3.0), -math.log(2.0)).dtype == torch.float64


@pytest.mark.cuda
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: the device of the answers not checked"
)
@pytest.mark.parametrize("path_type", [BrownianPath, AdaptiveBrownianPath])
def test_noise_is_on_xs_device_in_xs_dtype(path_type):
    x, sigmas = start(dtype=torch.float16).cuda(), karras(8).cuda()
    path = path_type.from_sigmas(x, sigmas, seed=0)
    noise = path(sigmas[0], sigmas[1])
    assert noise.device == x.device and noise.dtype == x.dtype
    samples = K.sample_dpmpp_2m_sde(gaussian_denoiser(0.25), x, sigmas, disable=True, noise_sampler=path)
    assert samples.device == x.device and samples.dtype == x.dtype and torch.isfinite(samples).all()


def test_a_path_for_another_batch_is_refused_naming_both_sizes():
    path = AdaptiveBrownianPath(start(batch=8), SIGMA_MIN, SIGMA_MAX, seed=0)
    with pytest.raises(
        ValueError, match=r"built for a batch of 8 \(x of shape \(8, 3\)\), but x is a batch of 4"
    ):
        sample(gaussian_denoiser(0.25), start(batch=4), karras(6), path=path)


def test_sigmas_outside_the_path_are_refused_naming_the_paths_range():
    x = start()
    path = BrownianPath(x, 0.01, 10.0, seed=0)
    with pytest.raises(
        GridError,
        match=r"sigmas\[0\] = 20.0 lies above the range: the noise path covers sigma in \[0.01, 10.0\]",
    ):
        sample(gaussian_denoiser(0.25), x, [20.0, 1.0, 0.1], path=path)
    with pytest.raises(
        GridError,
        match=r"sigmas end at 0.001, below the range: the noise path covers sigma in \[0.01, 10.0\]",
    ):
        sample(gaussian_denoiser(0.25), x, [10.0, 1.0, 0.001], path=path)


def test_readme_quick_start():
    k_diffusion_sampling()  # here `import k_diffusion.sampling` must skip k-diffusion's package __init__
    # ---- README quick start, verbatim from here ----
    import torch
    from k_diffusion.sampling import get_sigmas_karras, sample_dpmpp_2m_sde

    from seeds.solvers import AdaptiveBrownianPath, sample, sample_seeds_3

    def denoiser(x, sigma):  # D(x, sigma), sigma of shape (batch,): here data N(0, 0.25 I)
        return 0.25 / (0.25 + sigma[:, None] ** 2) * x

    sigmas = get_sigmas_karras(32, 0.002, 80.0)  # k-diffusion's grid: float32, 80 -> 0.002, then 0
    x = 80.0 * torch.randn(1000, 2)
    path = AdaptiveBrownianPath.from_sigmas(x, sigmas, seed=0)  # exact noise; sample i keyed by (0, i)
    out = sample(denoiser, x, sigmas, method="seeds-3", prediction="data", path=path)
    print(out.samples.dtype, out.nfe)  # float32 like x; NFE counted from model calls: 3 * 31 + 1 = 94

    # drop-in for a k-diffusion sampler; and our noise inside k-diffusion's own SDE samplers
    ours = sample_seeds_3(denoiser, x, sigmas, noise_sampler=AdaptiveBrownianPath.from_sigmas(x, sigmas))
    theirs = sample_dpmpp_2m_sde(
        denoiser, x, sigmas, noise_sampler=AdaptiveBrownianPath.from_sigmas(x, sigmas)
    )
    # ---- to here ----
    assert out.nfe == 94
    for result in (out.samples, ours, theirs):
        assert result.dtype == torch.float32 and torch.isfinite(result).all()
        assert abs(float(result.std()) - 0.5) < 0.1  # the data's spread, to 12 standard errors


def test_the_readme_quick_start_is_this_tests_code():
    import textwrap
    from pathlib import Path

    source = Path(__file__).read_text()
    code = source.split("# ---- README quick start, verbatim " + "from here ----\n")[1]
    code = textwrap.dedent(code.split("    # ---- to " + "here ----")[0])
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    assert "```python\n" + code + "```" in readme
