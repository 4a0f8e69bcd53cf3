"""Solver behaviour: exactness, stage-noise laws, convergence of the output variance, reproducibility,
float32 robustness and clear errors for bad input."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from seeds.analysis import predicted_orders
from seeds.experiments.verification.exact_linear import exact_output_variance
from seeds.solvers import EDM, GRIDS, GridError, ModelOutputError, make_method, sample
from seeds.solvers.brownian import AdaptiveBrownianPath, BrownianPath, IndependentPieces, functional_for
from tests.solver_problems import (
    gaussian_denoiser,
    mixture_denoiser,
    point_mass_denoiser,
)

SCHEDULE = EDM()
SIGMA_MIN, SIGMA_MAX = 0.002, 80.0

STOCHASTIC = [
    ("seeds-1", {"prediction": "noise"}),
    ("seeds-1", {"prediction": "data"}),
    ("seeds-1", {"prediction": "edm"}),
    ("seeds-2", {"prediction": "noise"}),
    ("seeds-2", {"prediction": "data", "variant": "phi_2"}),
    ("seeds-2", {"prediction": "edm"}),
    ("seeds-3", {"prediction": "noise"}),
    ("seeds-3", {"prediction": "data"}),
    ("seeds-3", {"prediction": "edm"}),
    ("euler-maruyama", {}),
    ("ddpm", {}),
    ("ddim", {"ddim_eta": 1.0}),
    ("sde-dpm-solver++-1", {}),
    ("sde-dpm-solver++-2m", {}),
    ("edm-heun", {"s_churn": 40.0}),
]
ALL_METHODS = STOCHASTIC + [
    ("dpm-solver-1", {}),
    ("dpm-solver-2", {}),
    ("dpm-solver-3", {}),
    ("dpm-solver++-1", {}),
    ("dpm-solver++-2", {}),
    ("dpm-solver++-3", {}),
    ("dpm-solver++-2m", {}),
    ("ddim", {}),
    ("edm-heun", {}),
]


def method_id(method, options):
    return method + "".join(f"[{k}={v}]" for k, v in options.items())


def grid(steps, kind="lambda"):
    return SCHEDULE.vs(GRIDS[kind](SCHEDULE, steps))


# --------------------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("stages", [1, 2, 3])
@pytest.mark.parametrize("steps", [1, 3, 17])
def test_data_prediction_is_pathwise_exact_for_point_mass_data(stages, steps):
    """D is constant, so x~_t = e^{-2H} x~_0 + (1 - e^{-2H}) mu + vs_T^2 (P_T - P_0) exactly on the path."""
    location = 0.7
    x = (
        torch.randn(32, 2, generator=torch.Generator().manual_seed(steps), dtype=torch.float64) * SIGMA_MAX
        + location
    )
    path = BrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=list(range(32)))
    sigmas = grid(steps, "edm")
    out = sample(
        point_mass_denoiser(location), x, sigmas, method=f"seeds-{stages}", prediction="data", path=path
    ).samples
    lam_0, lam_T = -math.log(SIGMA_MAX), -math.log(SIGMA_MIN)
    decay = math.exp(-2 * (lam_T - lam_0))
    exact = (
        decay * x
        + (1 - decay) * location
        + SIGMA_MIN**2 * path.increment(functional_for("data", 1.0), lam_0, lam_T)
    )
    assert (out - exact).abs().max() <= 1e-12 * (1 + exact.abs().max())


# ------------------------------------------------------------------------------------ stage noises


class RecordingNoise:
    """Passes a noise source through, keeping every increment a method draws."""

    def __init__(self, source):
        self.source, self.draws = source, []

    def increment(self, functional, lam_a, lam_b):
        value = self.source.increment(functional, lam_a, lam_b)
        self.draws.append((lam_b, value))
        return value

    def fresh(self, key):
        return self.source.fresh(key)


def one_step_stage_noises(method, noise, lam_s=0.3, lam_t=0.9, count=8000, **options):
    solver = make_method(method, **options)
    recorder = RecordingNoise(noise)
    x = torch.zeros(count, 1, dtype=torch.float64)
    solver.step(x, lam_s, lam_t, lambda u, lam: torch.zeros_like(u), recorder, solver.init(x, [lam_s, lam_t]))
    ends = [end for end, _ in recorder.draws]
    values = torch.cat([value for _, value in recorder.draws], dim=1).numpy()
    return solver.functional, ends, values


def covariance_consistent(values, functional, lam_s, ends, alpha=1e-4):
    """Empirical covariance of the stage noises against Cov(dK[s, a], dK[s, b]) = clock(s, min(a, b)).

    Each entry of a sample covariance of n Gaussian draws has variance (C_ii C_jj + C_ij^2) / n; the
    standardised entries are compared with a two-sided normal quantile at level alpha / (number of entries)
    (Bonferroni)."""
    n, m = values.shape
    exact = np.array([[functional.clock_increment(lam_s, min(a, b)) for b in ends] for a in ends])
    empirical = values.T @ values / n  # the mean is known to be 0
    spread = np.sqrt((np.outer(np.diag(exact), np.diag(exact)) + exact**2) / n)
    entries = m * (m + 1) // 2
    threshold = scipy.stats.norm.ppf(1 - alpha / (2 * entries))
    return bool((np.abs(empirical - exact) <= threshold * spread).all())


MULTI_STAGE = [("seeds-2", {"prediction": p, "c2": 0.3}) for p in ("noise", "data", "edm")] + [
    ("seeds-3", {"prediction": p, "c2": 0.2, "c3": 0.6}) for p in ("noise", "data", "edm")
]


@pytest.mark.parametrize(("method", "options"), MULTI_STAGE, ids=[method_id(*case) for case in MULTI_STAGE])
@pytest.mark.parametrize("source", ["path", "independent"])
def test_stage_noises_have_the_covariance_of_their_functional(method, options, source):
    x = torch.zeros(8000, 1, dtype=torch.float64)
    torch.manual_seed(11)
    noise = BrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=5) if source == "path" else IndependentPieces(x)
    functional, ends, values = one_step_stage_noises(method, noise, **options)
    assert len(ends) == int(method[-1])  # one increment per stage, the last one over the whole step
    assert covariance_consistent(values, functional, 0.3, ends)


class SwappedFractions(IndependentPieces):
    """Published mistake 1: the stage noise drawn for fraction 1 - c instead of c (x-coordinate weights
    e^{(1-c)h} sqrt(e^{2ch}-1) applied with c and 1 - c exchanged); the total over the step stays right."""

    def __init__(self, x, lam_s, lam_t):
        super().__init__(x)
        self.mirror = lambda lam: lam if lam == lam_t else lam_s + lam_t - lam

    def increment(self, functional, lam_a, lam_b):
        return super().increment(functional, lam_a, self.mirror(lam_b))


class SwappedFinalWeights(IndependentPieces):
    """Published mistake 2: in the 3-stage final noise the weights of z1 and z2 exchanged."""

    def increment(self, functional, lam_a, lam_b):
        self.pieces = getattr(self, "pieces", [])
        if not self.pieces or lam_b > self.pieces[-1][0]:
            start = self.pieces[-1][0] if self.pieces else lam_a
            spread = math.sqrt(functional.clock_increment(start, lam_b))
            self.pieces.append((lam_b, spread, torch.randn_like(self.like)))
        if len(self.pieces) < 3:
            return sum(spread * z for _, spread, z in self.pieces)
        (_, a1, z1), (_, a2, z2), (_, a3, z3) = self.pieces
        return a1 * z2 + a2 * z1 + a3 * z3


class InexactSplit(IndependentPieces):
    """Published mistake 3: the final noise drawn afresh with the right variance, not as the sum of the
    stage pieces (the split is then inexact: its covariance with the stage noises is lost)."""

    def increment(self, functional, lam_a, lam_b):
        if lam_b == self.final:
            return math.sqrt(functional.clock_increment(lam_a, lam_b)) * torch.randn_like(self.like)
        return super().increment(functional, lam_a, lam_b)


@pytest.mark.parametrize(
    ("mistake", "method", "options"),
    [
        ("swapped-fractions", "seeds-2", {"prediction": "noise", "c2": 0.3}),
        ("swapped-final-weights", "seeds-3", {"prediction": "noise"}),
        ("inexact-split", "seeds-2", {"prediction": "data", "c2": 0.3}),
        ("inexact-split", "seeds-3", {"prediction": "edm"}),
    ],
)
def test_covariance_check_rejects_the_published_noise_mistakes(mistake, method, options):
    x = torch.zeros(8000, 1, dtype=torch.float64)
    torch.manual_seed(3)
    if mistake == "swapped-fractions":
        noise = SwappedFractions(x, 0.3, 0.9)
    elif mistake == "swapped-final-weights":
        noise = SwappedFinalWeights(x)
    else:
        noise = InexactSplit(x)
        noise.final = 0.9
    functional, ends, values = one_step_stage_noises(method, noise, **options)
    assert not covariance_consistent(values, functional, 0.3, ends)


# ------------------------------------------------------------------------------- variance convergence


@pytest.mark.parametrize(("method", "options"), STOCHASTIC, ids=[method_id(*case) for case in STOCHASTIC])
def test_output_variance_converges_for_gaussian_data(method, options):
    """Exact (Monte-Carlo-free) output variance on N(0, 0.25) data: the error tends to 0 as steps grow.

    The variance is E f(X) for f = x^2, so its error falls at least with the predicted weak order; the
    measured order over the last refinement must reach weak order - 0.25 (the +-0.25 band every order test uses)."""
    target = 0.25 + SIGMA_MIN**2
    errors = [
        abs(exact_output_variance(method, grid(n), 0.25, **options) - target) for n in (16, 64, 256, 1024)
    ]
    solver = make_method(method, **options)
    if errors[0] < 1e-13:  # EDM output at sigma_data = data std: F = 0 and the method is exact
        assert max(errors) < 1e-13
        return
    assert errors[-1] < errors[0]
    if solver.id in predicted_orders():
        measured = math.log(errors[-2] / errors[-1], 4)
        assert measured >= solver.orders["weak"] - 0.25, errors


# --------------------------------------------------------------------------------- reproducibility


def test_same_seeds_give_bitwise_equal_samples_and_batch_invariance():
    model = mixture_denoiser()
    sigmas = grid(12, "edm")
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * SIGMA_MAX
    seeds = [10, 11, 12, 13, 14, 15]
    first = sample(model, x, sigmas, path=BrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=seeds)).samples
    again = sample(model, x, sigmas, path=BrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=seeds)).samples
    assert torch.equal(first, again)
    subset = [4, 1]
    part = sample(
        model, x[subset], sigmas, path=BrownianPath(x[subset], SIGMA_MIN, SIGMA_MAX, seed=[14, 11])
    ).samples
    assert torch.allclose(part, first[subset], rtol=0, atol=1e-12)


@pytest.mark.parametrize(("method", "options"), ALL_METHODS, ids=[method_id(*case) for case in ALL_METHODS])
def test_float32_run_over_the_whole_range_stays_finite(method, options):
    x = (torch.randn(64, 4, generator=torch.Generator().manual_seed(1)) * SIGMA_MAX).to(torch.float32)
    path = BrownianPath(x, SIGMA_MIN, SIGMA_MAX, seed=1, dtype=torch.float32)
    result = sample(
        mixture_denoiser(), x, grid(24, "edm"), method=method, path=path, dtype=torch.float32, **options
    )
    assert result.samples.dtype == torch.float32
    assert torch.isfinite(result.samples).all()
    assert result.nfe == 24 * make_method(method, **options).nfe_per_step


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: CPU/CUDA agreement not checked")
@pytest.mark.parametrize("path_type", [BrownianPath, AdaptiveBrownianPath])
@pytest.mark.parametrize(("method", "options"), ALL_METHODS, ids=[method_id(*case) for case in ALL_METHODS])
def test_a_solve_on_cuda_agrees_with_the_cpu(method, options, path_type):
    """Same start, same seeded path, float64: the path's draws agree to 1e-12 relative on the two devices
    (tests/solvers/brownian/test_paths.py) and 24 steps of a contracting solve add rounding of order 1e-15 per operation, so
    the samples (of order 1) agree far inside 1e-9."""
    x = torch.randn(64, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * SIGMA_MAX
    samples = {}
    for device in ("cpu", "cuda"):
        start = x.to(device)
        path = path_type(start, SIGMA_MIN, SIGMA_MAX, seed=list(range(64)))
        samples[device] = sample(
            mixture_denoiser(), start, grid(24, "edm"), method=method, path=path, **options
        )
    assert samples["cuda"].samples.device.type == "cuda"
    assert torch.allclose(samples["cuda"].samples.cpu(), samples["cpu"].samples, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------------------- bad input


def _x(batch=4):
    return torch.randn(batch, 2, dtype=torch.float64)


def test_non_monotone_sigmas_are_refused():
    with pytest.raises(GridError, match=r"strictly decreasing.*sigmas\[1\] = 5.0, sigmas\[2\] = 6.0"):
        sample(gaussian_denoiser(0.25), _x(), [10.0, 5.0, 6.0, 1.0])


def test_nan_in_sigmas_is_refused():
    with pytest.raises(GridError, match=r"NaN or Inf at positions \[1\]"):
        sample(gaussian_denoiser(0.25), _x(), [10.0, float("nan"), 1.0])


def test_unknown_method_and_prediction_are_refused():
    with pytest.raises(ValueError, match="unknown method 'seeds-4'"):
        sample(gaussian_denoiser(0.25), _x(), [10.0, 1.0], method="seeds-4")
    with pytest.raises(ValueError, match="unknown prediction 'velocity'"):
        sample(gaussian_denoiser(0.25), _x(), [10.0, 1.0], prediction="velocity")


@pytest.mark.parametrize(("name", "value"), [("c2", 0.0), ("c2", 1.5), ("c3", -0.1)])
def test_stage_fraction_outside_unit_interval_is_refused(name, value):
    with pytest.raises(ValueError, match=f"stage fraction {name} must lie in \\(0, 1\\], got {value}"):
        sample(gaussian_denoiser(0.25), _x(), [10.0, 1.0], method="seeds-3", **{name: value})


@pytest.mark.parametrize("eta", [-0.1, 1.2])
def test_eta_outside_unit_interval_is_refused(eta):
    with pytest.raises(ValueError, match=f"eta must lie in \\[0, 1\\], got {eta}"):
        sample(gaussian_denoiser(0.25), _x(), [10.0, 1.0], method="seeds-2", eta=eta)


def test_model_returning_nan_names_the_step_and_sigma():
    def broken(x, sigma):
        return torch.full_like(x, float("nan")) if float(sigma[0]) < 2.0 else x

    with pytest.raises(ModelOutputError, match=r"NaN or Inf at step 2 \(sigma = 1\)"):
        sample(broken, _x(), [10.0, 5.0, 1.0, 0.5], method="dpm-solver++-1")


def test_model_returning_the_wrong_shape_is_refused():
    with pytest.raises(
        ModelOutputError, match=r"shape \(4, 3\), expected \(4, 2\), at step 0 \(sigma = 10\)"
    ):
        sample(lambda x, sigma: torch.zeros(4, 3, dtype=x.dtype), _x(), [10.0, 1.0])


def test_seed_list_of_wrong_length_is_refused():
    with pytest.raises(ValueError, match="3 seeds for a batch of 4"):
        BrownianPath(_x(), 0.01, 10.0, seed=[1, 2, 3])


def test_empty_batch_is_refused():
    with pytest.raises(ValueError, match="empty batch"):
        sample(gaussian_denoiser(0.25), torch.zeros(0, 2, dtype=torch.float64), [10.0, 1.0])
