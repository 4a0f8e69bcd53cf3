"""A small digit classifier whose penultimate features give a fast in-domain Frechet distance
(docs/learned-models.md).

The Inception FID (experiments/metrics/fid.py) resizes 8x8 digits to 299x299 and runs at ~9 images/s on this
CPU; these 64-d features cost microseconds per image and were learned on the same data, so they see what
matters in a digit. The classifier ships beside the denoiser (classifier.safetensors + classifier.json);
`make model` retrains both (`seeds train`, then `seeds train-classifier`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seeds.experiments.models.checkpoints import save_tensors
from seeds.experiments.models.datasets import digits_with_labels
from seeds.experiments.results import atomic_write_json, provenance

FORMAT = "seeds-digit-classifier/1"


class DigitClassifier(nn.Module):
    def __init__(self, classes: int = 10, feature_dim: int = 64, width: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Flatten(),
            nn.LazyLinear(feature_dim),
            nn.SiLU(),
        )
        self.head = nn.Linear(feature_dim, classes)

    def features(self, images):
        return self.body(images)

    def forward(self, images):
        return self.head(self.features(images))


@dataclass(frozen=True)
class ClassifierConfig:
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    held_out: int = 297  # the last images of a seeded permutation: the reported accuracy is measured on them
    # training images get Gaussian noise of this std half the time, so features stay sensible on samples that
    # are close to, but not exactly on, the data
    noise_std: float = 0.1
    seed: int = 0


def train_classifier(
    images: torch.Tensor, labels: torch.Tensor, config: ClassifierConfig = ClassifierConfig()
):
    """Train on a seeded split; returns (classifier in eval mode, card)."""
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    order = torch.randperm(images.shape[0], generator=generator)
    train, test = order[: -config.held_out], order[-config.held_out :]
    model = DigitClassifier()
    model(images[:1])  # materialise the lazy layer before the optimiser sees the parameters
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    for _ in range(config.epochs):
        for batch in torch.randperm(train.shape[0], generator=generator).split(config.batch_size):
            chosen = train[batch]
            x = images[chosen]
            noisy = torch.rand(x.shape[0], 1, 1, 1, generator=generator) < 0.5
            x = x + noisy * config.noise_std * torch.randn(x.shape, generator=generator)
            loss = nn.functional.cross_entropy(model(x), labels[chosen])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    model.eval().requires_grad_(False)
    accuracy = float((model(images[test]).argmax(1) == labels[test]).double().mean())
    card = {
        "format": FORMAT,
        "train": asdict(config),
        "training_images": int(train.shape[0]),
        "held_out_accuracy": accuracy,
        "feature_dim": model.head.in_features,
        "provenance": provenance(),
    }
    return model, card


def save_classifier(model: DigitClassifier, card: dict, folder: Path) -> None:
    save_tensors(folder / "classifier.safetensors", model, FORMAT)
    atomic_write_json(folder / "classifier.json", card)


def load_classifier(folder: Path | str, device="cpu") -> DigitClassifier:
    from safetensors.torch import load_file

    folder = Path(folder)
    weights = folder / "classifier.safetensors"
    if not weights.exists():
        raise FileNotFoundError(
            f"{weights} is missing: `make model` trains the classifier beside the denoiser"
        )
    state = load_file(str(weights), device=str(device))
    model = DigitClassifier(feature_dim=state["head.weight"].shape[1])
    model(torch.zeros(1, 1, 8, 8))
    model.load_state_dict(state)
    return model.to(device).eval().requires_grad_(False)


class ClassifierFeatures:
    """images (N, 1, 8, 8) in [-1, 1] -> (N, feature_dim) float64 features, in batches."""

    def __init__(self, classifier: DigitClassifier, batch_size: int = 1024):
        self.classifier = classifier
        self.batch_size = batch_size
        self.id = "digit-classifier"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        parameter = next(self.classifier.parameters())
        if images.shape[1:] != (1, 8, 8):
            raise ValueError(f"the digit classifier takes (N, 1, 8, 8) images, got {tuple(images.shape)}")
        chunks = [
            self.classifier.features(chunk.to(parameter.device, parameter.dtype)).double().cpu()
            for chunk in images.split(self.batch_size)
        ]
        return torch.cat(chunks).numpy()


def retrain(out: Path) -> dict:
    """`seeds train-classifier`: train on all digits (2 threads) and save beside the denoiser in `out`."""
    torch.set_num_threads(2)
    model, card = train_classifier(*digits_with_labels())
    save_classifier(model, card, out)
    return card
