"""Load score-model checkpoints from disk as model adapters for `seeds.solvers.sample`.

    model = load_model(path, device="cpu")
    result = sample(model, x, sigmas, method="seeds-3")

`load_model` recognises three layouts:

* our own folder (card.json + model.safetensors, `experiments.models.checkpoints`), or its .safetensors
  file with card.json beside it: the EDM denoiser D(x, sigma);
* a diffusers folder holding a `UNet2DModel` (a pipeline folder with model_index.json / unet/config.json,
  or the unet folder itself): a discrete-time VP network (DDPM, e.g. google/ddpm-cifar10-32), adapted by
  `DiscreteVPNetwork` with the schedule read from the folder's scheduler config. Needs the optional
  `diffusers` package;
* an NVlabs/edm network pickle (`network-snapshot-*.pkl`): the preconditioned EDM network D(x, sigma),
  adapted by `EDMPickleDenoiser`. Unpickling needs EDM's own `torch_utils` and `dnnlib` packages and runs
  code stored in the file: load pickles from trusted sources only.

A path that holds none of these, or a damaged file, raises one `CheckpointError` (a ValueError) naming the
file and what is wrong with it; a missing path raises `CheckpointNotFoundError` (also a FileNotFoundError), a
device torch cannot reach `DeviceUnavailableError`, a pickle whose modules cannot be imported
`MissingModulesError`.

Every adapter works in the solver's VE coordinates (x~ at noise level vs = sigma/alpha); the discrete VP
network can only be asked for noise levels inside its training table, [sigma_min, sigma_max].
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import pickle
import pickletools
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from seeds.experiments.models.checkpoints import (
    CARD,
    CheckpointError,
    CheckpointNotFoundError,
    load_checkpoint,
    read_json_object,
    resolve_device,
)
from seeds.experiments.models.edm import EDMDenoiser
from seeds.experiments.sources import ROOT
from seeds.solvers import Denoiser, GridError, ScheduledNetwork
from seeds.solvers.models import per_sample
from seeds.solvers.schedules import VariancePreserving

EDM_REPOSITORY = "https://github.com/NVlabs/edm"
DIFFUSERS_INSTALL = "pip install -e .[diffusers]"
DDPM_DEFAULTS = {
    "num_train_timesteps": 1000,
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "prediction_type": "epsilon",
}
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl")


class UnknownCheckpointError(CheckpointError):
    """A path that holds none of the checkpoint layouts `load_model` knows."""


class MissingModulesError(ImportError):
    """A pickle refers to modules this interpreter cannot import."""


def load_model(path, device="cpu"):
    """An adapter for `seeds.solvers.sample` from the checkpoint at `path` (a folder, a .pkl file, or our
    .safetensors file with card.json beside it)."""
    path = Path(path).expanduser()
    device = resolve_device(device)
    if not path.exists():
        raise CheckpointNotFoundError(f"{path} does not exist")
    if path.is_file():
        if path.suffix == ".pkl":
            return load_edm_pickle(path, device)
        if path.suffix == ".safetensors" and (path.parent / CARD).is_file():
            return load_checkpoint(path, device)
        raise UnknownCheckpointError(f"{path} is a file of unknown kind ({_file_phrase(path)}); {_EXPECTED}")
    if (path / CARD).exists():
        return load_checkpoint(path, device)
    if _is_diffusers_folder(path):
        return load_diffusers_unet(path, device)
    raise UnknownCheckpointError(f"{path} holds {_listing(path)}; {_EXPECTED}")


def resolve_checkpoint(checkpoint: str) -> Path:
    """A checkpoint path as the cells name it: absolute, or relative to the project root."""
    path = Path(checkpoint)
    return path if path.is_absolute() else ROOT / path


def checkpoint_digest(checkpoint: str) -> str:
    """A hash of the checkpoint's weight files (the classifier's too): stored results of a retrained model
    are not reused, because the digest is part of every cell's key."""
    path = resolve_checkpoint(checkpoint)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in WEIGHT_SUFFIXES)
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(path.parent).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


_EXPECTED = (
    "expected a seeds checkpoint folder (card.json + model.safetensors) or its .safetensors file, a diffusers "
    "folder (model_index.json, unet/config.json, or a config.json of a UNet2DModel) or an EDM network pickle "
    "(*.pkl)"
)


def _file_phrase(path: Path) -> str:
    if path.suffix == ".safetensors":
        return f"no {CARD} beside it; its folder holds {_listing(path.parent)}"
    return f"suffix {path.suffix!r}" if path.suffix else "no suffix"


def _listing(folder: Path, shown: int = 10) -> str:
    names = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in folder.iterdir())
    if not names:
        return "nothing (the folder is empty)"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _is_diffusers_folder(folder: Path) -> bool:
    if (folder / "model_index.json").exists() or (folder / "unet" / "config.json").exists():
        return True
    config = folder / "config.json"
    return config.exists() and "_class_name" in read_json_object(config)


def _placement(module) -> tuple[torch.device, torch.dtype]:
    """Where a module's weights live and their dtype: network calls are made there."""
    parameter = next(iter(module.parameters()), None)
    if parameter is None:
        return torch.device("cpu"), torch.float32
    return parameter.device, parameter.dtype


# ------------------------------------------------------------------------------- discrete VP (DDPM) models


@dataclass(frozen=True)
class DiscreteVP(VariancePreserving):
    """A DDPM-style schedule of N discrete timesteps, made continuous in the fractional timestep t in
    [0, N-1] by interpolating log sigma_i linearly, sigma_i = sqrt((1 - abar_i) / abar_i) (the table is in
    VE coordinates: sigma_i is the noise level vs of timestep i). As a `Schedule` it also feeds `GRIDS`."""

    sigmas: tuple = field(repr=False)

    def __post_init__(self):
        table = torch.tensor(self.sigmas, dtype=torch.float64)
        if table.ndim != 1 or table.numel() < 2 or not (table[1:] > table[:-1]).all() or table[0] <= 0:
            raise ValueError(
                "a discrete schedule needs at least 2 positive, strictly increasing noise levels"
            )
        if not torch.isfinite(table).all():
            raise ValueError(
                "a discrete schedule's noise levels must be finite (is abar of the last step 0?)"
            )
        # the frozen dataclass compares and hashes the tuple; the log table is a cache of it
        object.__setattr__(self, "_log_sigmas", table.log())

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod) -> DiscreteVP:
        abar = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
        sigmas = ((1 - abar) / abar).sqrt()
        return cls(t_min=0.0, t_max=float(abar.numel() - 1), sigmas=tuple(sigmas.tolist()))

    def log_alpha(self, t):
        return self.log_alpha_of_log_snr(self.log_snr(t))

    def log_snr(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        table = self._log_sigmas.to(t.device)
        below = t.floor().clamp(0, table.numel() - 2).long()
        weight = t - below
        return -((1 - weight) * table[below] + weight * table[below + 1])

    def t_of_log_snr(self, lam):
        """The fractional timestep of a log-SNR; outside the table it extrapolates the end segments."""
        target = -torch.as_tensor(lam, dtype=torch.float64)
        table = self._log_sigmas.to(target.device)
        below = (torch.searchsorted(table, target) - 1).clamp(0, table.numel() - 2)
        weight = (target - table[below]) / (table[below + 1] - table[below])
        return below + weight


def alphas_cumprod(config: dict) -> torch.Tensor:
    """abar_i of a diffusers scheduler config (DDPM/DDIM/PNDM share these fields), in float64."""
    if config.get("trained_betas") is not None:
        betas = torch.tensor(config["trained_betas"], dtype=torch.float64)
    else:
        betas = _betas(config)
    if config.get("rescale_betas_zero_snr"):
        raise ValueError(
            "rescale_betas_zero_snr makes the last timestep pure noise (infinite sigma); such schedules "
            "are not supported"
        )
    return torch.cumprod(1 - betas, dim=0)


def _betas(config: dict) -> torch.Tensor:
    steps = int(config["num_train_timesteps"])
    start, end = float(config["beta_start"]), float(config["beta_end"])
    kind = config["beta_schedule"]
    if kind == "linear":
        return torch.linspace(start, end, steps, dtype=torch.float64)
    if kind == "scaled_linear":
        return torch.linspace(start**0.5, end**0.5, steps, dtype=torch.float64) ** 2
    if kind == "squaredcos_cap_v2":
        return _cosine_betas(steps)
    raise ValueError(
        f"unknown beta_schedule {kind!r}; expected 'linear', 'scaled_linear' or 'squaredcos_cap_v2'"
    )


def _cosine_betas(steps: int, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule, discretised as abar(t_{i+1}) / abar(t_i) with betas capped."""

    def abar(t):
        return torch.cos((t + 0.008) / 1.008 * torch.pi / 2) ** 2

    grid = torch.arange(steps + 1, dtype=torch.float64) / steps
    return (1 - abar(grid[1:]) / abar(grid[:-1])).clamp(max=max_beta)


@dataclass
class DiffusersUNet:
    """A diffusers UNet2DModel called as network(x_t, t, **extra_args) -> output tensor, on its own device
    and in its own dtype; the timestep stays float32 because float16 cannot hold t near 1000 finely."""

    unet: object

    def __call__(self, x_t, t, **extra_args):
        device, dtype = _placement(self.unet)
        extra_args = {name: _to_device(value, device) for name, value in extra_args.items()}
        output = self.unet(x_t.to(device, dtype), t.to(device, torch.float32), **extra_args).sample
        return output.to(x_t.device, x_t.dtype)


def _to_device(value, device):
    return value.to(device) if isinstance(value, torch.Tensor) else value


@dataclass
class DiscreteVPNetwork(ScheduledNetwork):
    """A discrete-time variance-preserving network (DDPM) called as network(x_t, t, **extra_args) in its own
    coordinates x_t = alpha x~, alpha = 1/sqrt(1 + vs^2), at the fractional timestep t of vs.

    prediction: "epsilon" (returns the noise, the same in VE coordinates), "v_prediction" (v = alpha eps -
    s x0 with s = sqrt(1 - alpha^2) = alpha vs, returned as data x0 = alpha x_t - s v) or "sample" (x0)."""

    schedule: DiscreteVP
    prediction: str = "epsilon"
    description: str = ""

    def __post_init__(self):
        if self.prediction not in PREDICTION_TYPES:
            raise ValueError(
                f"unknown prediction_type {self.prediction!r}; expected one of {PREDICTION_TYPES}"
            )

    @property
    def sigma_min(self) -> float:
        return self.schedule.vs_range[0]

    @property
    def sigma_max(self) -> float:
        return self.schedule.vs_range[1]

    @property
    def sigmas(self) -> torch.Tensor:
        """The noise levels vs of the integer timesteps 0 .. N-1 (float64, increasing)."""
        return torch.tensor(self.schedule.sigmas, dtype=torch.float64)

    def timestep(self, vs) -> torch.Tensor:
        """The fractional timestep (float64) of noise levels vs, refusing those outside the table."""
        vs = torch.as_tensor(vs)
        levels = vs.detach().to("cpu", torch.float64)
        # vs arrives in the model's dtype: allow its rounding at the ends of the table, nothing more
        slack = max(1e-6, 4 * torch.finfo(vs.dtype).eps)
        low, high = self.sigma_min, self.sigma_max
        outside = (levels < low * (1 - slack)) | (levels > high * (1 + slack))
        if outside.any():
            raise GridError(
                f"noise level vs = {float(levels[outside][0]):.6g} is outside this model's range "
                f"[{low:.6g}, {high:.6g}] (its {len(self.schedule.sigmas)} training timesteps); "
                "choose sigmas between model.sigma_min and model.sigma_max (a final 0 is fine)"
            )
        return self.schedule.t_of_vs(levels).clamp(self.schedule.t_min, self.schedule.t_max)

    def __call__(self, x, vs, **extra_args):
        t = self.timestep(vs).to(x.device)
        alpha = per_sample(torch.rsqrt(1 + vs.to(x.dtype) ** 2), x)
        output = self.network(alpha * x, t, **extra_args)
        if self.prediction == "epsilon":
            return "noise", output
        if self.prediction == "sample":
            return "data", output
        s = alpha * per_sample(vs.to(x.dtype), x)
        return "data", alpha * (alpha * x) - s * output


def load_diffusers_unet(folder, device="cpu") -> DiscreteVPNetwork:
    """A diffusers UNet2DModel folder (or pipeline folder) as a `DiscreteVPNetwork`, with the DDPM schedule
    of the scheduler config found beside it, or DDPM's defaults (with a warning) when there is none."""
    folder = Path(folder)
    UNet2DModel = _import_unet2d()
    unet_folder = _unet_folder(folder)
    try:
        # without `accelerate`, diffusers warns on every load unless asked for the plain path explicitly
        unet = UNet2DModel.from_pretrained(
            str(unet_folder),
            local_files_only=True,
            low_cpu_mem_usage=importlib.util.find_spec("accelerate") is not None,
        )
    except Exception as error:  # diffusers builds the network from the folder's files: a failure is theirs
        raise CheckpointError(f"{unet_folder}: diffusers cannot load this UNet2DModel: {error}") from error
    unet = unet.to(device).eval().requires_grad_(False)
    config, config_path = _scheduler_config(folder, unet_folder)
    source = f"from {config_path}" if config_path else "assumed (no scheduler config found, DDPM defaults)"
    try:
        schedule = DiscreteVP.from_alphas_cumprod(alphas_cumprod(config))
        description = (
            f"diffusers UNet2DModel from {unet_folder}; DDPM schedule {source}: {_betas_phrase(config)}"
        )
        return DiscreteVPNetwork(DiffusersUNet(unet), schedule, config["prediction_type"], description)
    except (ValueError, TypeError, KeyError) as error:  # fields of the wrong kind or value in the config
        raise CheckpointError(f"{config_path}: not a usable DDPM scheduler config: {error}") from error


def _betas_phrase(config: dict) -> str:
    if config.get("trained_betas") is not None:
        betas = f"{len(config['trained_betas'])} steps, trained betas"
    else:
        betas = (
            f"{config['num_train_timesteps']} steps, {config['beta_schedule']} betas "
            f"{config['beta_start']:g}..{config['beta_end']:g}"
        )
    return f"{betas}, {config['prediction_type']} prediction"


def _import_unet2d():
    try:
        from diffusers import UNet2DModel
    except ImportError as error:
        raise ImportError(
            f"loading a diffusers model needs the optional `diffusers` package: {DIFFUSERS_INSTALL}"
        ) from error
    return UNet2DModel


def _unet_folder(folder: Path) -> Path:
    unet_folder = folder / "unet" if (folder / "unet" / "config.json").exists() else folder
    config_path = unet_folder / "config.json"
    if not config_path.exists():
        raise UnknownCheckpointError(
            f"{folder} looks like a diffusers pipeline but has neither unet/config.json nor config.json; "
            f"it holds {_listing(folder)}"
        )
    kind = read_json_object(config_path).get("_class_name")
    if kind != "UNet2DModel":
        raise UnknownCheckpointError(
            f"{config_path} describes a {kind!r}; only unconditional diffusers 'UNet2DModel' networks load"
        )
    return unet_folder


def _scheduler_config(folder: Path, unet_folder: Path) -> tuple[dict, Path | None]:
    """The scheduler config with DDPM defaults filled in, and its file (None when the defaults are assumed)."""
    candidates = [
        folder / "scheduler" / "scheduler_config.json",
        folder / "scheduler_config.json",
        unet_folder.parent / "scheduler" / "scheduler_config.json",
    ]
    for path in candidates:
        if path.exists():
            return {**DDPM_DEFAULTS, **read_json_object(path)}, path
    # a wrong schedule gives wrong samples without any error, so the assumption must be visible
    warnings.warn(
        f"no scheduler config found beside {unet_folder}; assuming DDPM defaults {DDPM_DEFAULTS}",
        stacklevel=3,
    )
    return dict(DDPM_DEFAULTS), None


# -------------------------------------------------------------------------------------- EDM network pickles


NETWORK_ATTRIBUTES = ("sigma_min", "sigma_max", "img_resolution", "img_channels", "label_dim")


@dataclass
class EDMPickleDenoiser(Denoiser):
    """An NVlabs/edm network (preconditioned: net(x, sigma, class_labels) = D(x)) as a denoiser adapter,
    with the network's sigma_min, sigma_max, img_resolution, img_channels and label_dim (None if absent).

    It calls the network on its own device; class_labels come from extra_args, and integer labels of shape
    (batch,) are one-hot encoded because EDM's conditional networks take one-hot rows."""

    sigma_min: float | None = None
    sigma_max: float | None = None
    img_resolution: int | None = None
    img_channels: int | None = None
    label_dim: int | None = None
    description: str = ""

    def __call__(self, x, vs, class_labels=None, **extra_args):
        device, _ = _placement(self.model)
        labels = self._labels(class_labels, device)
        denoised = self.model(x.to(device), vs.to(device), class_labels=labels, **extra_args)
        return "data", denoised.to(x.device, x.dtype)

    def _labels(self, class_labels, device):
        if class_labels is None:
            return None
        labels = torch.as_tensor(class_labels, device=device)
        if labels.ndim == 1 and not labels.is_floating_point() and self.label_dim:
            return torch.nn.functional.one_hot(labels, self.label_dim).float()
        return labels


def load_edm_pickle(path, device="cpu") -> EDMPickleDenoiser:
    """An EDM network pickle (a dict with the network under 'ema', or the bare network) as a denoiser.

    Unpickling runs code from the file: only load pickles from trusted sources."""
    path = Path(path)
    device = resolve_device(device)
    data = path.read_bytes()
    missing = missing_modules(pickle_modules(data, path))
    if missing:
        raise MissingModulesError(_missing_message(path, missing))
    try:
        content = pickle.loads(data)
    except ModuleNotFoundError as error:  # a module the opcode scan could not see (memoised names)
        raise MissingModulesError(_missing_message(path, [error.name or str(error)])) from error
    # unpickling runs the file's own code: whatever fails there is the file's fault
    except Exception as error:
        raise CheckpointError(f"{path} cannot be unpickled: {type(error).__name__}: {error}") from error
    network = _network_of(content, path)
    network = network.to(device).eval().requires_grad_(False)
    attributes = {name: getattr(network, name, None) for name in NETWORK_ATTRIBUTES}
    description = f"EDM network pickle {path} ({type(network).__name__})"
    return EDMPickleDenoiser(network, **attributes, description=description)


def _network_of(content, path: Path) -> torch.nn.Module:
    if isinstance(content, dict):
        if "ema" not in content:
            raise UnknownCheckpointError(
                f"{path} holds a dict with keys {sorted(map(str, content))}; an EDM snapshot has 'ema'"
            )
        content = content["ema"]
    if not isinstance(content, torch.nn.Module):
        raise UnknownCheckpointError(
            f"{path} holds a {type(content).__name__}, not an EDM network (torch module)"
        )
    return content


_STRING_PUSHES = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
                  "BINUNICODE8"}  # fmt: skip
_MEMO_STORES = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GETS = {"GET", "BINGET", "LONG_BINGET"}


def pickle_modules(data: bytes, path: Path) -> set[str]:
    """The modules a pickle (the bytes of the file at `path`) imports from, found by reading its opcodes without
    executing anything.

    GLOBAL names its module in its argument; STACK_GLOBAL (protocol 4+) takes module and name from the two
    values pushed before it, which may be strings fetched back from the memo. The opcodes are read from memory:
    a damaged length field then reads as "not enough data" instead of a huge allocation."""
    modules, pushed, memo = set(), [None, None], {}
    try:
        for opcode, argument, _ in pickletools.genops(io.BytesIO(data)):
            name = opcode.name
            if name == "GLOBAL":
                modules.add(argument.split(" ", 1)[0])
            elif name == "STACK_GLOBAL" and isinstance(pushed[-2], str):
                modules.add(pushed[-2])
            if name == "MEMOIZE":
                memo[len(memo)] = pushed[-1]
            elif name in _MEMO_STORES:
                memo[argument] = pushed[-1]
            elif name != "FRAME":
                # any other opcode leaves a value that must not pair with a string pushed before it
                value = (
                    argument if name in _STRING_PUSHES else memo.get(argument) if name in _MEMO_GETS else None
                )
                pushed = [pushed[-1], value]
    except ValueError as error:  # what genops raises for an unknown opcode or data that ends too soon
        raise CheckpointError(f"{path} is not a pickle, or a truncated one: {error}") from error
    return modules


def missing_modules(modules) -> list[str]:
    """The top-level packages among `modules` that this interpreter cannot import, sorted (a name that is no
    Python identifier, as a damaged pickle may hold, counts as missing)."""
    tops = {module.split(".", 1)[0] for module in modules}
    return sorted(top for top in tops if not top.isidentifier() or importlib.util.find_spec(top) is None)


def _missing_message(path: Path, missing) -> str:
    # a damaged file may name an empty or garbled module: quoted, it stays visible
    names = ", ".join(name if name.isidentifier() else repr(name) for name in missing)
    return (
        f"{path} needs the module(s) {names}, which cannot be imported. EDM network pickles need "
        f"the `torch_utils` and `dnnlib` packages of the EDM code: git clone {EDM_REPOSITORY} and run with "
        "PYTHONPATH=/path/to/edm (and pip install the requirements of that repository if its imports fail). "
        "Warning: unpickling executes code stored in the file; only load pickles from trusted sources."
    )


def network_module(model) -> torch.nn.Module:
    """The torch module inside a loaded model, for moving it to a device or dtype."""
    if isinstance(model, torch.nn.Module):
        return model
    if isinstance(model, EDMPickleDenoiser):
        return model.model
    if isinstance(model, DiscreteVPNetwork):
        return model.network.unet
    raise TypeError(f"no torch module known inside a {type(model).__name__}")


def image_shape(model) -> tuple[int, int, int]:
    """(channels, height, width) of the images a loaded model denoises."""
    if isinstance(model, EDMDenoiser):
        config = model.network.config
        return (config.image_channels, config.image_size, config.image_size)
    if isinstance(model, EDMPickleDenoiser) and model.img_resolution:
        return (model.img_channels, model.img_resolution, model.img_resolution)
    if isinstance(model, DiscreteVPNetwork):
        config = model.network.unet.config
        size = config.sample_size
        return (config.in_channels, *((size, size) if isinstance(size, int) else size))
    raise ValueError(f"cannot tell the image shape of a {type(model).__name__}")
