"""Our checkpoint format: a folder with model.safetensors (the network's weights) and card.json (how the
network is built and trained), written by `seeds train` and loaded as the EDM denoiser D(x, sigma).

Every way a checkpoint can be unusable raises one `CheckpointError` (a ValueError) naming the file and what is
wrong with it; a device torch cannot reach raises `DeviceUnavailableError` before anything is read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from seeds.experiments.models.edm import EDMDenoiser
from seeds.experiments.models.unet import UNet, UNetConfig
from seeds.experiments.results import atomic_write_bytes, atomic_write_json

FORMAT = "seeds-edm-unet/1"
CARD = "card.json"
WEIGHTS = "model.safetensors"
CARD_FIELDS = ("format", "unet", "sigma_data")


class CheckpointError(ValueError):
    """A checkpoint file or folder that cannot be loaded; the message names the file and what is wrong."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path, or a file a checkpoint needs, that does not exist."""


class DeviceUnavailableError(ValueError):
    """A device that torch does not know or cannot reach from this process."""


def resolve_device(device) -> torch.device:
    """`device` as a torch.device, refused here when torch cannot use it: loading onto it would otherwise fail
    deep inside torch with a message about pinned memory or lazy initialisation."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise DeviceUnavailableError(
            f"device {device!r} is not a device torch knows (e.g. 'cpu', 'cuda', 'cuda:1')"
        ) from error
    if resolved.type == "cpu":
        return resolved
    backend = getattr(torch, resolved.type, None)  # torch.cuda, torch.mps, torch.xpu: each counts its devices
    count = backend.device_count() if hasattr(backend, "device_count") else 0
    kind = resolved.type.upper()
    if count == 0:
        raise DeviceUnavailableError(f"device {str(device)!r} is not available: torch sees no {kind} device")
    if resolved.index is not None and resolved.index >= count:
        raise DeviceUnavailableError(
            f"device {str(device)!r} is not available: torch sees {count} {kind} device(s), "
            f"indices 0 to {count - 1}"
        )
    return resolved


def read_json_object(path: Path) -> dict:
    """A JSON file that must hold an object, or a CheckpointError saying why it does not."""
    try:
        content = json.loads(path.read_bytes())
    except json.JSONDecodeError as error:
        raise CheckpointError(
            f"{path} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from error
    except UnicodeDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON: it is not UTF-8 text") from error
    if not isinstance(content, dict):
        raise CheckpointError(f"{path} holds a JSON {type(content).__name__}, expected an object")
    return content


def save_tensors(path: Path, module: torch.nn.Module, format_name: str) -> None:
    """A module's state as safetensors, written atomically, with the format name in the file's metadata."""
    from safetensors.torch import save

    tensors = {name: value.detach().contiguous() for name, value in module.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata={"format": format_name}))


def save_checkpoint(denoiser: EDMDenoiser, card: dict, out: Path) -> None:
    save_tensors(out / WEIGHTS, denoiser.network, card["format"])
    atomic_write_json(out / CARD, {**card, "sigma_data": denoiser.sigma_data})


def load_checkpoint(path: Path | str, device="cpu") -> EDMDenoiser:
    """Our checkpoint as the denoiser, in eval mode: its folder (card.json + model.safetensors), or a
    .safetensors weights file with card.json beside it."""
    path = Path(path)
    device = resolve_device(device)
    folder, weights_path = (path.parent, path) if path.is_file() else (path, path / WEIGHTS)
    card_path = folder / CARD
    for needed in (card_path, weights_path):
        if not needed.is_file():
            raise CheckpointNotFoundError(
                f"{needed} is missing: a seeds checkpoint folder holds {CARD} and {WEIGHTS}"
            )
    card = read_json_object(card_path)
    network = _network_of_card(card, card_path)
    network.load_state_dict(_weights_for(network, weights_path, card_path, device))
    return EDMDenoiser(network, card["sigma_data"]).to(device).eval().requires_grad_(False)


def _network_of_card(card: dict, card_path: Path) -> UNet:
    """The untrained UNet that card.json describes, after checking the card's fields."""
    missing = [name for name in CARD_FIELDS if name not in card]
    if missing:
        raise CheckpointError(
            f"{card_path} lacks the field(s) {', '.join(missing)}; a seeds card has {', '.join(CARD_FIELDS)}"
        )
    if card["format"] != FORMAT:
        raise CheckpointError(f"{card_path} has format {card['format']!r}, expected {FORMAT!r}")
    sigma_data = card["sigma_data"]
    if isinstance(sigma_data, bool) or not isinstance(sigma_data, (int, float)) or not sigma_data > 0:
        raise CheckpointError(f"{card_path}: sigma_data must be a positive number, got {sigma_data!r}")
    if not math.isfinite(sigma_data):
        raise CheckpointError(f"{card_path}: sigma_data must be finite, got {sigma_data!r}")
    try:
        return UNet(UNetConfig.from_dict(card["unet"]))
    except (
        TypeError,
        KeyError,
        ValueError,
        RuntimeError,
    ) as error:  # what a malformed config makes the UNet raise
        raise CheckpointError(
            f"{card_path}: field 'unet' does not describe a UNet ({type(error).__name__}: {error})"
        ) from error


def _weights_for(network: torch.nn.Module, weights_path: Path, card_path: Path, device) -> dict:
    """The tensors of a safetensors file, checked to be exactly the ones `network` holds, finite."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(weights_path), device=str(device))
    except SafetensorError as error:
        raise CheckpointError(f"{weights_path} is not a readable safetensors file: {error}") from error
    expected = network.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        differences = [
            f"{kind} tensor(s) {_few(names)}"
            for kind, names in (("missing", missing), ("unexpected", unexpected))
            if names
        ]
        raise CheckpointError(
            f"{weights_path} does not hold the tensors of the UNet that {card_path} describes: "
            + "; ".join(differences)
        )
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{weights_path}: tensor {name} has shape {tuple(tensor.shape)}, the UNet of {card_path} "
                f"needs {tuple(expected[name].shape)}"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{weights_path}: tensor {name} holds NaN or Inf (a damaged file?)")
    return tensors


def _few(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
