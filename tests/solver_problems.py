"""Small exact denoisers shared by the solver tests."""

import math

import torch


def per_sample(values, x):
    return values.reshape((-1,) + (1,) * (x.ndim - 1))


def gaussian_denoiser(variance):
    """Exact D(x, sigma) for data N(0, variance): variance / (variance + sigma^2) * x."""

    def denoiser(x, sigma):
        level = per_sample(sigma, x).to(x.dtype)
        return variance / (variance + level**2) * x

    return denoiser


def point_mass_denoiser(location):
    """Data concentrated at `location`: the exact denoiser is that constant."""

    def denoiser(x, sigma):
        return torch.full_like(x, location)

    return denoiser


def mixture_denoiser(means=(-1.0, 0.5, 1.5), variance=0.05, weights=(0.3, 0.3, 0.4)):
    """Exact D for a 1-d Gaussian mixture applied elementwise: posterior-weighted affine maps (log space)."""
    means_t = torch.tensor(means, dtype=torch.float64)
    log_weights = torch.log(torch.tensor(weights, dtype=torch.float64))

    def denoiser(x, sigma):
        level = per_sample(sigma, x).to(torch.float64)[..., None]
        total = variance + level**2
        z = x.to(torch.float64)[..., None]
        log_post = log_weights - 0.5 * (z - means_t) ** 2 / total - 0.5 * torch.log(total)
        post = torch.softmax(log_post, dim=-1)
        component = means_t + variance / total * (z - means_t)
        return (post * component).sum(-1).to(x.dtype)

    return denoiser


class BasisPieces:
    """A noise source for exact (Monte-Carlo-free) output variances of linear problems.

    Like IndependentPieces, every new piece of noise is sqrt(clock increment) * z with z standard normal
    and independent of all other pieces; here batch element j + 1 sees z = 1 for piece j and 0 otherwise,
    element 0 sees no noise. For a solver that is linear in (x_0, z), running it on x_0 = (1, 0, 0, ...)
    gives the coefficient of x_0 in element 0 and the coefficient of z_j in element j + 1.
    """

    def __init__(self, batch, capacity):
        self.batch, self.capacity = batch, capacity
        self.pieces = 0
        self._start = None

    def _unit(self):
        if self.pieces >= self.capacity:
            raise RuntimeError(f"more than {self.capacity} noise pieces: enlarge the basis")
        unit = torch.zeros(self.batch, 1, dtype=torch.float64)
        unit[self.pieces + 1] = 1.0
        self.pieces += 1
        return unit

    def fresh(self, key):
        return self._unit()

    def increment(self, functional, lam_a, lam_b):
        if self._start != (functional, lam_a):
            self._start, self._reached, self._value = (functional, lam_a), lam_a, torch.zeros(self.batch, 1, dtype=torch.float64)
        if lam_b > self._reached:
            spread = math.sqrt(functional.clock_increment(self._reached, lam_b))
            self._value = self._value + spread * self._unit()
            self._reached = lam_b
        return self._value


def exact_output_variance(method, sigmas, data_variance, capacity=None, **options):
    """Var of a linear method's output on N(0, data_variance) data started from the exact marginal."""
    from seeds.solvers import sample

    capacity = capacity or 4 * len(sigmas)
    x = torch.zeros(capacity + 1, 1, dtype=torch.float64)
    x[0] = 1.0
    noise = BasisPieces(capacity + 1, capacity)
    out = sample(gaussian_denoiser(data_variance), x, sigmas, method=method, path=noise, **options).samples[:, 0]
    start_variance = data_variance + float(sigmas[0]) ** 2
    return float(out[0] ** 2 * start_variance + (out[1 : noise.pieces + 1] ** 2).sum())
