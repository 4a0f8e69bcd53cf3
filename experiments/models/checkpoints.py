"""Our checkpoint format: a folder with model.safetensors (the network's weights) and card.json (how the
network is built and trained), written by `seeds train` and loaded as the EDM denoiser D(x, sigma)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from seeds.experiments.models.edm import EDMDenoiser
from seeds.experiments.models.unet import UNet, UNetConfig
from seeds.experiments.results import atomic_write_bytes, atomic_write_json

FORMAT = "seeds-edm-unet/1"


def save_tensors(path: Path, module: torch.nn.Module, format_name: str) -> None:
    """A module's state as safetensors, written atomically, with the format name in the file's metadata."""
    from safetensors.torch import save

    tensors = {name: value.detach().contiguous() for name, value in module.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata={"format": format_name}))


def save_checkpoint(denoiser: EDMDenoiser, card: dict, out: Path) -> None:
    save_tensors(out / "model.safetensors", denoiser.network, card["format"])
    atomic_write_json(out / "card.json", {**card, "sigma_data": denoiser.sigma_data})


def load_checkpoint(folder: Path | str, device="cpu") -> EDMDenoiser:
    """A folder with model.safetensors and card.json as the denoiser, in eval mode."""
    from safetensors.torch import load_file

    folder = Path(folder)
    card_path, weights_path = folder / "card.json", folder / "model.safetensors"
    for path in (card_path, weights_path):
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: a seeds checkpoint folder holds card.json and model.safetensors"
            )
    card = json.loads(card_path.read_text())
    if card.get("format") != FORMAT:
        raise ValueError(f"{card_path} has format {card.get('format')!r}, expected {FORMAT!r}")
    network = UNet(UNetConfig.from_dict(card["unet"]))
    network.load_state_dict(load_file(str(weights_path), device=str(device)))
    return EDMDenoiser(network, card["sigma_data"]).to(device).eval().requires_grad_(False)
