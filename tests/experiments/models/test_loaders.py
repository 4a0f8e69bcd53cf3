"""Loading checkpoints from disk (experiments.models.loaders): our own folders, diffusers UNet2DModel folders and
EDM network pickles, each built tiny inside the test."""

import importlib
import json
import pickle
import re
import shutil
import struct
import sys
import textwrap

import pytest
import torch

from seeds.experiments.models.checkpoints import (
    CheckpointError,
    CheckpointNotFoundError,
    DeviceUnavailableError,
    resolve_device,
    save_checkpoint,
)
from seeds.experiments.models.edm import EDMDenoiser
from seeds.experiments.models.loaders import (
    DDPM_DEFAULTS,
    DiscreteVP,
    DiscreteVPNetwork,
    MissingModulesError,
    UnknownCheckpointError,
    alphas_cumprod,
    load_model,
    pickle_modules,
)
from seeds.experiments.models.unet import UNet, UNetConfig
from seeds.solvers import GRIDS, GridError, sample
from seeds.solvers.models import ModelEvaluator, convert
from seeds.solvers.schedules import check_time_grid
from tests.tiny_models import tiny_unet2d

TINY_UNET = UNetConfig(
    base_channels=8, groups=4, embedding_dim=16, channel_multipliers=(1,), blocks_per_level=1
)


def _run_steps(model, sigmas, shape=(2, 1, 8, 8), dtype=torch.float32):
    x = sigmas[0] * torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    return sample(model, x, torch.tensor(sigmas, dtype=torch.float64), method="seeds-1").samples


# ------------------------------------------------------------------------------------------------ our own


def test_own_format_round_trip(tmp_path):
    torch.manual_seed(0)
    original = EDMDenoiser(UNet(TINY_UNET)).eval()
    save_checkpoint(original, {"format": "seeds-edm-unet/1", "unet": TINY_UNET.to_dict()}, tmp_path)
    model = load_model(tmp_path)
    x = torch.randn(3, 1, 8, 8)
    sigma = torch.tensor([0.1, 1.0, 10.0])
    with torch.no_grad():
        assert torch.equal(model(x, sigma), original(x, sigma))
    samples = _run_steps(model, [10.0, 1.0, 0.1])
    assert samples.dtype == torch.float32 and torch.isfinite(samples).all()


def test_unknown_layouts_are_refused_with_what_was_found(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    (tmp_path / "notes").mkdir()
    with pytest.raises(UnknownCheckpointError, match=r"holds notes/, weights.bin; expected .*card.json"):
        load_model(tmp_path)
    with pytest.raises(UnknownCheckpointError, match="file of unknown kind"):
        load_model(tmp_path / "weights.bin")
    with pytest.raises(CheckpointNotFoundError) as raised:
        load_model(tmp_path / "absent")
    assert isinstance(raised.value, FileNotFoundError) and isinstance(raised.value, ValueError)


def test_our_weights_file_loads_as_its_folder_when_its_card_is_beside_it(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(
        EDMDenoiser(UNet(TINY_UNET)), {"format": "seeds-edm-unet/1", "unet": TINY_UNET.to_dict()}, tmp_path
    )
    from_folder, from_file = load_model(tmp_path), load_model(tmp_path / "model.safetensors")
    x, sigma = torch.randn(2, 1, 8, 8), torch.tensor([0.5, 5.0])
    with torch.no_grad():
        assert torch.equal(from_folder(x, sigma), from_file(x, sigma))
    (tmp_path / "card.json").unlink()
    with pytest.raises(
        UnknownCheckpointError, match=r"no card.json beside it; its folder holds model.safetensors"
    ):
        load_model(tmp_path / "model.safetensors")


def test_an_unavailable_device_is_named_before_anything_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(
        DeviceUnavailableError, match=r"^device 'cuda' is not available: torch sees no CUDA device$"
    ):
        load_model(tmp_path / "absent", device="cuda")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(
        DeviceUnavailableError, match=r"'cuda:3' is not available: torch sees 1 CUDA device\(s\)"
    ):
        resolve_device("cuda:3")
    with pytest.raises(DeviceUnavailableError, match="not a device torch knows"):
        resolve_device("gpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_damaged_pickles_are_named_without_reading_past_their_end(tmp_path):
    path = tmp_path / "network.pkl"
    data = pickle.dumps({"ema": [1.0, 2.0], "loss_fn": None})
    path.write_bytes(data[:-4])
    with pytest.raises(
        CheckpointError, match=rf"^{re.escape(str(path))} is not a pickle, or a truncated one"
    ):
        load_model(path)
    # a length field of 2^40 bytes: reading it from the file would try to allocate a terabyte
    path.write_bytes(b"\x80\x05\x8e" + struct.pack("<Q", 2**40) + b"abc")
    with pytest.raises(CheckpointError, match="not a pickle, or a truncated one"):
        load_model(path)
    path.write_bytes(b"c\nNetwork\n.")  # a damaged module name, which is no Python identifier
    with pytest.raises(MissingModulesError):
        load_model(path)


# ----------------------------------------------------------------------------------------------- diffusers


def test_missing_diffusers_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    monkeypatch.setitem(sys.modules, "diffusers", None)  # makes `import diffusers` fail
    with pytest.raises(ImportError, match=r"pip install -e \.\[diffusers\]"):
        load_model(tmp_path)


@pytest.mark.parametrize("beta_schedule", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_schedule_tables_match_diffusers(beta_schedule):
    diffusers = pytest.importorskip("diffusers")
    config = {**DDPM_DEFAULTS, "num_train_timesteps": 50, "beta_schedule": beta_schedule}
    scheduler = diffusers.DDPMScheduler(**config)
    expected = scheduler.alphas_cumprod.double()
    assert torch.allclose(alphas_cumprod(config), expected, rtol=1e-5)  # diffusers computes in float32


def test_discrete_schedule_interpolates_log_sigma():
    schedule = DiscreteVP.from_alphas_cumprod(alphas_cumprod({**DDPM_DEFAULTS, "num_train_timesteps": 20}))
    table = torch.tensor(schedule.sigmas, dtype=torch.float64)
    assert torch.equal(schedule.t_of_vs(table), torch.arange(20, dtype=torch.float64))
    halfway = (table[:-1] * table[1:]).sqrt()  # the midpoint in log sigma
    assert torch.allclose(schedule.t_of_vs(halfway), torch.arange(19, dtype=torch.float64) + 0.5)
    t = torch.linspace(0, 19, 37, dtype=torch.float64)
    assert torch.allclose(schedule.t_of_vs(schedule.vs(t)), t, atol=1e-12)
    assert torch.allclose(schedule.alpha(t) ** 2 + schedule.sigma(t) ** 2, torch.ones_like(t))
    assert schedule.vs_range == (float(table[0]), float(table[-1]))
    for kind in ("edm", "lambda", "time-uniform"):  # the schedule also serves the grid builders
        check_time_grid(schedule, GRIDS[kind](schedule, 5))


@pytest.fixture(scope="module")
def diffusers_folder(tmp_path_factory):
    diffusers = pytest.importorskip("diffusers")
    folder = tmp_path_factory.mktemp("ddpm")
    torch.manual_seed(0)
    unet = tiny_unet2d(diffusers)
    unet.save_pretrained(folder / "unet")
    diffusers.DDPMScheduler(num_train_timesteps=100).save_pretrained(folder / "scheduler")
    return folder


class RecordingUNet(torch.nn.Module):
    """Records what the adapter hands to the diffusers UNet (a module, so its placement is still known)."""

    def __init__(self, unet):
        super().__init__()
        self.unet, self.calls = unet, []

    def forward(self, sample, timestep, **extra_args):
        self.calls.append((sample.clone(), timestep.clone()))
        return self.unet(sample, timestep, **extra_args)


def test_diffusers_adapter_calls_the_unet_at_x_t_and_the_table_timestep(diffusers_folder, monkeypatch):
    model = load_model(diffusers_folder)
    assert isinstance(model, DiscreteVPNetwork) and "scheduler_config.json" in model.description
    assert len(model.sigmas) == 100 and model.sigma_max == float(model.sigmas[-1])
    unet = model.network.unet
    recording = RecordingUNet(unet)
    monkeypatch.setattr(model.network, "unet", recording)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    for i in (0, 37, 99):
        vs = model.sigmas[i].expand(2)
        kind, eps = model(x, vs)
        alpha = 1 / (1 + model.sigmas[i] ** 2).sqrt()
        x_t, t = recording.calls[-1]
        assert kind == "noise" and eps.dtype == torch.float64
        assert torch.equal(t, torch.full((2,), float(i))) and t.dtype == torch.float32
        assert torch.allclose(x_t, (alpha * x).float())
        with torch.no_grad():
            direct = unet(x_t, i).sample
        assert torch.equal(eps, direct.double())
        # in VE coordinates the data prediction is (x_t - s eps) / alpha with s = sqrt(1 - alpha^2)
        s = (1 - alpha**2).sqrt()
        denoised = convert(kind, eps, x, vs.reshape(-1, 1, 1, 1), "data")
        assert torch.allclose(denoised, (alpha * x - s * eps) / alpha)


def test_diffusers_adapter_converts_v_and_sample_predictions(diffusers_folder):
    model = load_model(diffusers_folder)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    vs = model.sigmas[50].expand(2)
    _, output = model(x, vs)
    alpha = 1 / (1 + model.sigmas[50] ** 2).sqrt()
    s = (1 - alpha**2).sqrt()
    model.prediction = "v_prediction"
    assert model(x, vs)[0] == "data"
    assert torch.allclose(model(x, vs)[1], alpha * (alpha * x) - s * output)  # x0 = alpha x_t - s v
    model.prediction = "sample"
    assert model(x, vs)[0] == "data" and torch.equal(model(x, vs)[1], output)


def test_diffusers_adapter_refuses_noise_levels_outside_its_table(diffusers_folder):
    model = load_model(diffusers_folder)
    x = torch.randn(1, 1, 8, 8)
    model(x, torch.tensor([model.sigma_max], dtype=torch.float32))  # float32 rounding at the end is fine
    for vs in (model.sigma_max * 1.01, model.sigma_min * 0.99):
        with pytest.raises(GridError, match="outside this model's range"):
            model(x, torch.tensor([vs]))
    evaluator = ModelEvaluator(model, "data")
    with pytest.raises(ValueError, match="sigma_max"):
        evaluator(x, model.sigma_max * 2)


def test_diffusers_sampling_runs(diffusers_folder):
    model = load_model(diffusers_folder)
    sigmas = [model.sigma_max, 1.0, 0.1, 0.0]
    samples = _run_steps(model, sigmas)
    assert samples.dtype == torch.float32 and torch.isfinite(samples).all()


def _copy_of(folder, tmp_path):
    copy = tmp_path / "pipeline"
    shutil.copytree(folder, copy)
    return copy


def test_damaged_diffusers_folders_name_the_file(diffusers_folder, tmp_path):
    pipeline = _copy_of(diffusers_folder, tmp_path)
    weights = pipeline / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(
        CheckpointError, match=rf"^{re.escape(str(pipeline / 'unet'))}: diffusers cannot load"
    ):
        load_model(pipeline)
    shutil.copy(diffusers_folder / "unet" / weights.name, weights)
    scheduler = pipeline / "scheduler" / "scheduler_config.json"
    config = json.loads(scheduler.read_text())
    scheduler.write_text(json.dumps({**config, "beta_schedule": "cubic"}))
    with pytest.raises(
        CheckpointError, match=rf"^{re.escape(str(scheduler))}: not a usable DDPM scheduler config"
    ):
        load_model(pipeline)
    scheduler.write_text("{")
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(scheduler))} is not valid JSON"):
        load_model(pipeline)
    unet_config = pipeline / "unet" / "config.json"
    unet_config.write_text(
        json.dumps({**json.loads(unet_config.read_text()), "_class_name": "UNet2DConditionModel"})
    )
    with pytest.raises(
        UnknownCheckpointError, match="describes a 'UNet2DConditionModel'; only unconditional"
    ):
        load_model(pipeline)


def test_diffusers_unet_folder_without_scheduler_assumes_ddpm_defaults(diffusers_folder):
    lone = diffusers_folder / "lone"
    (lone / "unet").mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        (lone / "unet" / name).write_bytes((diffusers_folder / "unet" / name).read_bytes())
    with pytest.warns(UserWarning, match="DDPM defaults"):
        model = load_model(lone / "unet")
    assert "DDPM defaults" in model.description and len(model.sigmas) == 1000


# ------------------------------------------------------------------------------------------- EDM pickles

FAKE_NETWORK = '''
import torch


class TinyEDMNet(torch.nn.Module):
    """D(x) = scale x / (1 + sigma^2), with EDM's call signature and attributes."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(1.0))
        self.sigma_min, self.sigma_max, self.img_resolution, self.img_channels, self.label_dim = 0.002, 80.0, 8, 1, 3
        self.last_labels = None

    def forward(self, x, sigma, class_labels=None):
        self.last_labels = class_labels
        sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1)
        return self.scale * x.to(torch.float32) / (1 + sigma**2)
'''


@pytest.fixture
def edm_pickle(tmp_path, monkeypatch):
    """A pickle of {'ema': network} whose class lives in a package named like EDM's torch_utils."""
    (tmp_path / "torch_utils").mkdir()
    (tmp_path / "torch_utils" / "__init__.py").write_text("")
    (tmp_path / "torch_utils" / "fake_network.py").write_text(textwrap.dedent(FAKE_NETWORK))
    monkeypatch.syspath_prepend(str(tmp_path))
    network = importlib.import_module("torch_utils.fake_network").TinyEDMNet()
    path = tmp_path / "network-snapshot-000000.pkl"
    path.write_bytes(pickle.dumps({"ema": network, "loss_fn": None}))
    yield path, tmp_path
    # monkeypatch would put the first import back; the fake package must not outlive the test
    for name in [name for name in sys.modules if name == "torch_utils" or name.startswith("torch_utils.")]:
        del sys.modules[name]


def test_edm_pickle_without_its_modules_says_how_to_get_them(edm_pickle, monkeypatch):
    path, package_root = edm_pickle
    assert "torch_utils.fake_network" in pickle_modules(path.read_bytes(), path)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry != str(package_root)])
    for name in ("torch_utils.fake_network", "torch_utils"):
        del sys.modules[name]  # not monkeypatch.delitem: its undo would bring them back after the fixture
    importlib.invalidate_caches()
    with pytest.raises(MissingModulesError) as raised:
        load_model(path)
    message = str(raised.value)
    assert "torch_utils" in message and "PYTHONPATH=/path/to/edm" in message
    assert "https://github.com/NVlabs/edm" in message and "trusted sources" in message


def test_edm_pickle_loads_as_a_denoiser(edm_pickle):
    path, _ = edm_pickle
    model = load_model(path)
    attributes = ("sigma_min", "sigma_max", "img_resolution", "img_channels", "label_dim")
    assert [getattr(model, name) for name in attributes] == [0.002, 80.0, 8, 1, 3]
    x = torch.randn(2, 1, 8, 8)
    vs = torch.tensor([0.5, 2.0])
    kind, denoised = model(x, vs, class_labels=torch.tensor([0, 2]))
    assert kind == "data" and torch.allclose(denoised, x / (1 + vs**2).reshape(-1, 1, 1, 1))
    assert torch.equal(model.model.last_labels, torch.tensor([[1.0, 0, 0], [0, 0, 1]]))
    samples = _run_steps(model, [10.0, 1.0, 0.1])
    assert torch.isfinite(samples).all()


def test_pickle_scan_pairs_memoised_module_names(tmp_path):
    # the second reference to a module comes back from the memo (BINGET), not as a fresh string; pairing
    # it wrongly would report a class name such as 'Linear' as a module
    path = tmp_path / "two.pkl"
    path.write_bytes(pickle.dumps([torch.nn.Linear, torch.nn.Bilinear, json.dumps], protocol=4))
    assert pickle_modules(path.read_bytes(), path) == {"torch.nn.modules.linear", "json"}
    path.write_bytes(pickle.dumps([torch.nn.Linear], protocol=2))  # GLOBAL opcodes
    assert pickle_modules(path.read_bytes(), path) == {"torch.nn.modules.linear"}
