"""The 64-d Gaussian mixture fitted once to scikit-learn's 8x8 digits.

One component per digit class: weight = class frequency, mean and covariance = the class's sample mean and
covariance of the pixels scaled to [-1, 1], plus a ridge (many border pixels never change, so the class
covariances are singular). The fit is deterministic; `seeds digits-mixture` (`make digits-mixture`) refits it
from the scikit-learn wheel and rewrites experiments/data/digits_mixture.npz, which is committed so nothing
needs scikit-learn at run time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seeds.experiments.problems.mixtures import GaussianMixture

PARAMETERS = Path(__file__).resolve().parent.parent / "data" / "digits_mixture.npz"
RIDGE = 1e-2  # added to every class covariance: pixel std floor 0.1 on the [-1, 1] scale


def fit_parameters() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = digits.data / 8.0 - 1.0
    labels = digits.target
    classes = np.unique(labels)
    weights = np.array([(labels == c).mean() for c in classes])
    means = np.stack([pixels[labels == c].mean(axis=0) for c in classes])
    covariances = np.stack([np.cov(pixels[labels == c], rowvar=False) + RIDGE * np.eye(64) for c in classes])
    # stored in float32 (size); the problem is defined by the stored values, read back in float64
    return {
        "weights": weights.astype(np.float32),
        "means": means.astype(np.float32),
        "covariances": covariances.astype(np.float32),
    }


def digits_mixture() -> GaussianMixture:
    with np.load(PARAMETERS) as stored:
        weights = stored["weights"].astype(np.float64)
        covariances = stored["covariances"].astype(np.float64)
        covariances = 0.5 * (covariances + np.swapaxes(covariances, 1, 2))
        return GaussianMixture(
            weights / weights.sum(), stored["means"].astype(np.float64), covariances, name="digits"
        )


def refit() -> Path:
    """Fit the mixture again and rewrite the committed parameter file; returns its path."""
    parameters = fit_parameters()
    temporary = PARAMETERS.with_suffix(".partial.npz")
    try:
        np.savez_compressed(temporary, **parameters)
        temporary.replace(PARAMETERS)
    except BaseException:  # interrupted or failed: leave no half-written file behind
        temporary.unlink(missing_ok=True)
        raise
    return PARAMETERS
