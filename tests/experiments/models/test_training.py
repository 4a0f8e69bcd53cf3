"""Training pieces of the learned models (docs/learned-models.md): UNet, EDM preconditioning and loss, EMA, seeded training
with checkpoint round trips, the digit classifier. Tiny networks only."""

from __future__ import annotations

import json
import math

import pytest
import torch

from seeds.experiments.config import DEFAULT_MODEL, TrainConfig
from seeds.experiments.models.checkpoints import load_checkpoint, save_checkpoint
from seeds.experiments.models.classifier import ClassifierConfig, load_classifier, train_classifier
from seeds.experiments.models.datasets import digits_with_labels, load_images
from seeds.experiments.models.edm import EMA, EDMDenoiser, edm_loss
from seeds.experiments.models.training import train
from seeds.experiments.models.unet import UNet, UNetConfig

TINY = UNetConfig(base_channels=8, channel_multipliers=(1, 2), blocks_per_level=1, embedding_dim=16, groups=4)


@pytest.mark.parametrize(
    "config",
    [
        TINY,
        UNetConfig(image_size=28, base_channels=8, channel_multipliers=(1, 2, 2), embedding_dim=16, groups=4),
    ],
)
def test_unet_keeps_the_image_shape(config):
    torch.manual_seed(0)
    x = torch.randn(3, 1, config.image_size, config.image_size)
    assert UNet(config)(x, torch.zeros(3)).shape == x.shape


def test_unet_config_round_trips_through_json():
    assert UNetConfig.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY


class Constant(torch.nn.Module):
    """A raw network that outputs `value` everywhere; one parameter so the denoiser can read its dtype."""

    def __init__(self, value: float):
        super().__init__()
        self.value = torch.nn.Parameter(torch.tensor(value))

    def forward(self, x, c_noise):
        return self.value.expand_as(x)


def test_preconditioning_matches_edm_table_1():
    sd, value = 0.5, 0.25  # exact in float32, where the parameter is created
    denoiser = EDMDenoiser(Constant(value), sd).double()
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.5, 2.0, 80.0], dtype=torch.float64)
    view = sigma.reshape(-1, 1, 1, 1)
    expected = sd**2 / (view**2 + sd**2) * x + view * sd / (view**2 + sd**2).sqrt() * value
    torch.testing.assert_close(denoiser(x, sigma), expected, rtol=1e-14, atol=1e-14)


def test_denoiser_refuses_a_sigma_per_sample_of_the_wrong_length():
    with pytest.raises(ValueError, match="sigma has 2 entries for a batch of 3"):
        EDMDenoiser(Constant(0.0))(torch.zeros(3, 1, 8, 8), torch.ones(2))


def test_edm_loss_vanishes_for_the_exact_denoiser_of_a_point_mass():
    """Data = one image y: D(x, sigma) = y exactly, which is F = (y - c_skip x) / c_out; the loss is then 0."""
    sd = 0.5
    y = torch.linspace(-1, 1, 64, dtype=torch.float64).reshape(1, 1, 8, 8)

    class PointMass(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

        def forward(self, x_in, c_noise):
            sigma = (4 * c_noise).exp().reshape(-1, 1, 1, 1)
            x = x_in * (sigma**2 + sd**2).sqrt()
            return (y - sd**2 / (sigma**2 + sd**2) * x) / (sigma * sd / (sigma**2 + sd**2).sqrt())

    loss = edm_loss(EDMDenoiser(PointMass(), sd), y.expand(16, -1, -1, -1), torch.Generator().manual_seed(0))
    assert loss.item() < 1e-20


def test_ema_half_life_is_counted_in_images():
    module = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(module.weight)
    ema = EMA(module, half_life_images=256, batch_size=128)  # two updates halve the old weight's share
    with torch.no_grad():
        module.weight.fill_(1.0)
    ema.update(module)
    ema.update(module)
    assert ema.average.weight.item() == pytest.approx(0.5, rel=1e-12)


def _tiny_training(tmp_path, name, seed=0):
    images = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(5)) * 2 - 1
    config = TrainConfig(steps=4, batch_size=8, warmup_steps=2, seed=seed, threads=1)
    return train(config, TINY, tmp_path / name, images=images)


def test_training_writes_a_checkpoint_that_loads_back(tmp_path):
    card = _tiny_training(tmp_path, "run")
    folder = tmp_path / "run"
    assert {p.name for p in folder.iterdir()} >= {"model.safetensors", "card.json", "loss.csv"}
    stored = json.loads((folder / "card.json").read_text())
    assert stored["unet"] == TINY.to_dict() and stored["train"]["steps"] == 4
    assert math.isfinite(stored["final_loss_mean_last_100_steps"]) and "git_commit" in stored["provenance"]
    assert len((folder / "loss.csv").read_text().splitlines()) == 1 + 4
    denoiser = load_checkpoint(folder)
    assert card["parameters"] == sum(p.numel() for p in denoiser.parameters())
    x = torch.randn(2, 1, 8, 8)
    assert torch.isfinite(denoiser(x, torch.tensor([0.1, 10.0]))).all()


def test_training_is_reproducible_from_its_seed(tmp_path):
    _tiny_training(tmp_path, "a")
    _tiny_training(tmp_path, "b")
    _tiny_training(tmp_path, "c", seed=1)
    a, b, c = (load_checkpoint(tmp_path / name).network.state_dict() for name in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_checkpoint_loader_names_what_is_missing_or_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="card.json is missing"):
        load_checkpoint(tmp_path)
    save_checkpoint(EDMDenoiser(UNet(TINY)), {"format": "seeds-edm-unet/1", "unet": TINY.to_dict()}, tmp_path)
    card = json.loads((tmp_path / "card.json").read_text())
    (tmp_path / "card.json").write_text(json.dumps({**card, "format": "something-else"}))
    with pytest.raises(ValueError, match="expected 'seeds-edm-unet/1'"):
        load_checkpoint(tmp_path)


def test_digits_are_scaled_to_the_unit_interval():
    images = load_images("digits")
    assert images.shape == (1797, 1, 8, 8) and images.min() == -1 and images.max() == 1


def test_unknown_dataset_is_refused():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        load_images("cifar")


def test_classifier_learns_digits_well_above_chance():
    model, card = train_classifier(*digits_with_labels(), ClassifierConfig(epochs=2))
    # chance is 0.1; two epochs already separate most classes (a smoke check, not the shipped accuracy)
    assert card["held_out_accuracy"] > 0.5
    assert model.features(torch.zeros(5, 1, 8, 8)).shape == (5, card["feature_dim"])


def test_shipped_classifier_reproduces_its_recorded_held_out_accuracy():
    card = json.loads((DEFAULT_MODEL / "classifier.json").read_text())
    config = ClassifierConfig(**card["train"])
    images, labels = digits_with_labels()
    held_out = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(config.seed))
    held_out = held_out[-config.held_out :]
    classifier = load_classifier(DEFAULT_MODEL)
    accuracy = (classifier(images[held_out]).argmax(1) == labels[held_out]).double().mean().item()
    assert accuracy == pytest.approx(card["held_out_accuracy"], abs=1e-12)
    assert accuracy > 0.9
