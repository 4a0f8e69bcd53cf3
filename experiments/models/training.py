"""Train an EDM-preconditioned UNet denoiser: `seeds train` (`make model` retrains the committed digits model).

Seeded and deterministic for a given machine and thread count (recorded in the card): batches, sigmas and
noise all come from one torch.Generator. Writes DIR/model.safetensors (the EMA weights), DIR/card.json
(dataset, sizes, steps, final loss, git commit, versions) and DIR/loss.csv (the loss log). A checkpoint loads
with `models.checkpoints.load_checkpoint(DIR)` as a k-diffusion-style denoiser D(x, sigma).
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from seeds.experiments.config import DEFAULT_MODEL, RESULTS, TrainConfig
from seeds.experiments.models.checkpoints import FORMAT, save_checkpoint
from seeds.experiments.models.datasets import load_images
from seeds.experiments.models.edm import EMA, EDMDenoiser, edm_loss
from seeds.experiments.models.unet import UNet, UNetConfig
from seeds.experiments.results import atomic_write_text, provenance


def train(config: TrainConfig, unet: UNetConfig, out: Path, images: torch.Tensor | None = None) -> dict:
    """Train, write the checkpoint to `out`, and return its card."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)  # parameter initialisation
    images = load_images(config.dataset) if images is None else images
    if images.shape[1:] != (unet.image_channels, unet.image_size, unet.image_size):
        raise ValueError(f"images of shape {tuple(images.shape[1:])} do not fit the network {unet}")
    denoiser = EDMDenoiser(UNet(unet), config.sigma_data)
    optimiser = torch.optim.Adam(denoiser.parameters(), lr=config.learning_rate)
    ema = EMA(denoiser, config.ema_half_life_images, config.batch_size)
    generator = torch.Generator().manual_seed(config.seed)
    log = []
    started = time.time()
    for step in tqdm(range(config.steps), desc=f"training on {config.dataset}", unit="step"):
        rate = config.learning_rate * min(
            1.0,
            (step + 1) / config.warmup_steps,
            (config.steps - step) / (config.cooldown_fraction * config.steps),
        )
        for group in optimiser.param_groups:
            group["lr"] = rate
        batch = images[torch.randint(0, images.shape[0], (config.batch_size,), generator=generator)]
        loss = edm_loss(denoiser, batch, generator)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the training loss is {loss.item()} at step {step}")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        ema.update(denoiser)
        log.append({"step": step, "loss": loss.item(), "learning_rate": rate})
    final_loss = float(np.mean([row["loss"] for row in log[-100:]]))
    card = {
        "format": FORMAT,
        "dataset": config.dataset,
        "training_images": int(images.shape[0]),
        "image_shape": list(images.shape[1:]),
        "train": asdict(config),
        "unet": unet.to_dict(),
        "parameters": sum(p.numel() for p in denoiser.parameters()),
        "final_loss_mean_last_100_steps": final_loss,
        "train_seconds": round(time.time() - started, 1),
        "provenance": provenance(),
    }
    save_checkpoint(ema.average, card, out)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["step", "loss", "learning_rate"])
    writer.writeheader()
    writer.writerows(log)
    atomic_write_text(out / "loss.csv", buffer.getvalue())
    return card


def train_on(config: TrainConfig, base_channels: int, out: Path | None = None) -> dict:
    """`seeds train`: the UNet sized for the dataset's images (8x8 digits: two levels, 28x28: three), written
    to `out`, by default the committed model's folder for the digits and results/<dataset>_unet otherwise."""
    size = 8 if config.dataset == "digits" else 28
    multipliers = (1, 2) if size == 8 else (1, 2, 2)
    unet = UNetConfig(image_size=size, base_channels=base_channels, channel_multipliers=multipliers)
    if out is None:
        out = DEFAULT_MODEL if config.dataset == "digits" else RESULTS / f"{config.dataset}_unet"
    return train(config, unet, out)
