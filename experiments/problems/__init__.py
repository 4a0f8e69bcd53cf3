"""Problems the experiments sample: exact-denoiser mixtures (Gaussian, ring, digits) and learned models."""

from seeds.experiments.problems.digits import digits_mixture
from seeds.experiments.problems.learned import LearnedModel
from seeds.experiments.problems.mixtures import gaussian, ring_mixture

PROBLEMS = {
    "gaussian": gaussian,
    "ring": ring_mixture,
    "digits": digits_mixture,
    "learned": LearnedModel,
}


def make_problem(name: str, options=()):
    """The problem PROBLEMS[name] built with `options`, (name, value) pairs as the cells store them."""
    return PROBLEMS[name](**dict(options))
