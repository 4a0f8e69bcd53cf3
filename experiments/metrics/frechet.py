"""The Frechet distance between Gaussians and the feature statistics it compares (mean, covariance, count).

Reference statistics use the EDM / pytorch-fid `.npz` layout (`mu`, `sigma`), so published reference files
load unchanged; we also store `count` because the number of images behind a statistic must always be reported.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg

from seeds.experiments.results import atomic_write_bytes


def _sqrtm_product(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> np.ndarray:
    """sqrtm(sigma1 @ sigma2), retried on eps-regularised covariances when the first attempt is not finite.

    Singular covariances (fewer samples than dimensions, constant pixels) can make the product defective,
    where the Schur-based square root overflows; a small ridge makes it diagonalisable again.
    """
    with warnings.catch_warnings():
        # the singular-matrix warning is expected here: the finiteness check below decides what to do
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if np.isfinite(root).all():
            return root
        ridge = eps * np.eye(sigma1.shape[0])
        root = scipy.linalg.sqrtm((sigma1 + ridge) @ (sigma2 + ridge))
    if not np.isfinite(root).all():
        raise FloatingPointError("sqrtm(sigma1 @ sigma2) is not finite even after adding eps to the diagonal")
    return root


def _drop_imaginary(root: np.ndarray, tolerance: float) -> np.ndarray:
    """Real part of a matrix square root whose imaginary part is rounding noise; refuse when it is not."""
    if not np.iscomplexobj(root):
        return root
    # the product of two PSD matrices has real non-negative eigenvalues, so a sizeable imaginary part means
    # the inputs were not covariances (or were far from symmetric), not a numerical wobble
    scale = max(1.0, float(np.abs(np.diagonal(root).real).max(initial=0.0)))
    worst = float(np.abs(np.diagonal(root).imag).max(initial=0.0))
    if worst > tolerance * scale:
        raise ValueError(f"sqrtm(sigma1 @ sigma2) has an imaginary diagonal component of {worst:.3g}")
    return root.real


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6, imag_tolerance: float = 1e-3) -> float:
    """Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    d^2 = |mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)); this is the squared distance, as FID
    reports it.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )
    root = _drop_imaginary(_sqrtm_product(sigma1, sigma2, eps), imag_tolerance)
    difference = mu1 - mu2
    trace = np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(root)
    return float(difference @ difference + trace)


# ------------------------------------------------------------------------------------------ statistics files


@dataclass(frozen=True)
class FeatureStatistics:
    """Mean and covariance of a feature set; `count` is None for reference files that do not record it."""

    mean: np.ndarray
    covariance: np.ndarray
    count: int | None = None

    @classmethod
    def from_features(cls, features) -> FeatureStatistics:
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[0] < 2:
            raise ValueError(f"need a (count >= 2, dim) feature array for a covariance, got {features.shape}")
        # unbiased covariance (ddof=1), as pytorch-fid and EDM compute their reference statistics
        covariance = np.atleast_2d(np.cov(features, rowvar=False))
        return cls(features.mean(axis=0), covariance, features.shape[0])

    def frechet_distance(self, other: FeatureStatistics) -> float:
        return frechet_distance(self.mean, self.covariance, other.mean, other.covariance)

    def save_npz(self, path) -> Path:
        """Write EDM-format `mu`, `sigma` (+ `count`) atomically: a cache reader never sees half a file."""
        path = Path(path)
        arrays = {"mu": self.mean, "sigma": self.covariance}
        if self.count is not None:
            arrays["count"] = np.int64(self.count)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(path, buffer.getvalue())
        return path

    @classmethod
    def load_npz(cls, path) -> FeatureStatistics:
        """Read our files and EDM / pytorch-fid reference files: keys `mu`, `sigma`, optional `count`."""
        with np.load(path, allow_pickle=False) as stored:
            missing = {"mu", "sigma"} - set(stored.files)
            if missing:
                raise KeyError(
                    f"{path} is not a Frechet statistics file: missing {sorted(missing)} "
                    f"(found {sorted(stored.files)}; expected EDM/pytorch-fid keys 'mu' and 'sigma')"
                )
            mean = stored["mu"].astype(np.float64)
            covariance = stored["sigma"].astype(np.float64)
            count = int(stored["count"]) if "count" in stored.files else None
        if mean.ndim != 1 or covariance.shape != (mean.size, mean.size):
            raise ValueError(f"{path}: mu {mean.shape} and sigma {covariance.shape} do not match")
        return cls(mean, covariance, count)


def frechet_bootstrap(
    features, reference: FeatureStatistics, resamples: int, seed: int, level: float = 0.95
) -> dict:
    """Percentile bootstrap interval of the Frechet distance, resampling the sample features with replacement.

    It captures the sampling variability of the sample statistics only (the reference is held fixed). The
    Frechet distance is biased upwards at finite N and resampling with replacement adds duplicates, so the
    interval sits somewhat above the point estimate; compare intervals at equal sample counts.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    features = np.asarray(features, dtype=np.float64)
    point = FeatureStatistics.from_features(features).frechet_distance(reference)
    generator = np.random.default_rng(seed)
    count = features.shape[0]
    distances = np.array(
        [
            FeatureStatistics.from_features(features[generator.integers(0, count, count)]).frechet_distance(
                reference
            )
            for _ in range(resamples)
        ]
    )
    low, high = np.quantile(distances, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return {
        "fid": point,
        "low": float(low),
        "high": float(high),
        "level": level,
        "resamples": resamples,
        "samples": count,
        "reference_count": reference.count,
    }
