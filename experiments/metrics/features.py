"""Quality of a learned model's samples as a Frechet distance of image features: the features and the data's
reference statistics of each metric, and the floor a perfect sampler scores (docs/learned-models.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from seeds.experiments.metrics import fid
from seeds.experiments.metrics.frechet import FeatureStatistics
from seeds.experiments.models.classifier import ClassifierFeatures, load_classifier
from seeds.experiments.models.datasets import load_images


def feature_metric(
    metric: str,
    checkpoint: Path,
    device,
    cache_folder: Path,
    reference_npz: Path | None = None,
    count: int = 10_000,
):
    """(features, reference statistics, description) of a quality metric.

    classifier: the digit classifier shipped with the checkpoint, reference = all 1797 digits.
    fid: Inception-v3; reference = `reference_npz` (EDM / pytorch-fid format), or the first `count` training
    images of the dataset named in the checkpoint's card, computed once and cached in `cache_folder`."""
    if metric == "classifier":
        features = ClassifierFeatures(load_classifier(checkpoint, device))
        reference = FeatureStatistics.from_features(features(load_images("digits")))
        return features, reference, "Frechet distance in the digit classifier's 64-d features"
    if metric != "fid":
        raise ValueError(f"unknown metric {metric!r}; expected classifier or fid")
    features = fid.InceptionFeatures(device=device)
    if reference_npz is not None:
        return features, FeatureStatistics.load_npz(reference_npz), f"FID against {reference_npz}"
    card = checkpoint / "card.json"
    if not card.exists():
        raise ValueError(f"FID of {checkpoint} needs reference statistics: pass --reference stats.npz")
    dataset = json.loads(card.read_text())["dataset"]
    available = load_images(dataset).shape[0]
    reference = fid.reference_statistics(
        dataset, lambda: load_images(dataset), features, cache_folder, count=min(count, available)
    )
    return features, reference, f"FID against {min(count, available)} {dataset} training images"


def data_floor(features, reference, samples: int, draws: int, seed: int = 0) -> dict:
    """Frechet distance of `samples` dataset images (drawn without replacement) to the full data's statistics:
    what a perfect sampler scores with this many samples."""
    images = load_images("digits")
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(draws):
        chosen = images[torch.randperm(images.shape[0], generator=generator)[: min(samples, images.shape[0])]]
        stats = FeatureStatistics.from_features(features(chosen))
        values.append(stats.frechet_distance(reference))
    return {
        "samples": min(samples, int(images.shape[0])),
        "draws": draws,
        "min": min(values),
        "median": float(np.median(values)),
        "max": max(values),
    }
