"""Robustness on random malformed input (hypothesis): the public API, the `seeds` command and the checkpoint
loaders answer only with their documented exception types (docs/errors.md); a run that succeeds returns no
NaN; the command never shows a traceback and leaves no file behind when it refuses."""

import contextlib
import io
import math
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seeds.experiments.cli import main
from seeds.experiments.models.checkpoints import CheckpointError, DeviceUnavailableError, save_checkpoint
from seeds.experiments.models.edm import EDMDenoiser
from seeds.experiments.models.loaders import MissingModulesError, load_model
from seeds.experiments.models.unet import UNet, UNetConfig
from seeds.solvers import GRIDS, METHODS, ModelOutputError, sample

API_ERRORS = (ValueError, TypeError, ModelOutputError)  # GridError is a ValueError
LOADER_ERRORS = (CheckpointError, MissingModulesError)
TINY_UNET = UNetConfig(
    base_channels=8, groups=4, embedding_dim=16, channel_multipliers=(1,), blocks_per_level=1
)
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _tiny_checkpoint(folder: Path) -> Path:
    torch.manual_seed(0)
    save_checkpoint(
        EDMDenoiser(UNet(TINY_UNET)), {"format": "seeds-edm-unet/1", "unet": TINY_UNET.to_dict()}, folder
    )
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny checkpoint, a damaged one, and the bytes the loader cases damage."""
    root = tmp_path_factory.mktemp("files")
    model = _tiny_checkpoint(root / "model")
    damaged = _tiny_checkpoint(root / "damaged")
    (damaged / "model.safetensors").write_bytes(b"damaged")
    return {
        "model": model,
        "damaged": damaged,
        "model.safetensors": (model / "model.safetensors").read_bytes(),
        "card.json": (model / "card.json").read_bytes(),
        "network.pkl": pickle.dumps({"ema": [1.0, "text", None], "loss_fn": None}, protocol=4),
        "module.pkl": pickle.dumps(torch.nn.Identity(), protocol=2),
    }


# ------------------------------------------------------------------------------------------- the solvers


# far beyond any real grid: levels too close to step in log sigma, or beyond the range of x's dtype, must be
# refused with GridError, never answered with NaN or Inf
LEVELS = st.floats(1e-30, 1e30)
DISTINCT_LEVELS = st.lists(LEVELS, min_size=1, max_size=5, unique=True).map(
    lambda levels: sorted(levels, reverse=True)
)
ODD_LEVELS = st.sampled_from([0.0, -1.0, math.nan, math.inf, -math.inf])
GRID_VALUES = st.one_of(
    DISTINCT_LEVELS.filter(lambda levels: len(levels) >= 2),
    DISTINCT_LEVELS.map(lambda levels: [*levels, 0.0]),
    st.lists(st.one_of(LEVELS, ODD_LEVELS), max_size=6),
)
GRID_FORMS = ("list", "float64", "float32", "float16", "int64", "bool", "2-d", "0-d")
X_SHAPES = ((3, 2), (1, 1), (2, 1, 3, 3), (4,), (0, 2), ())
X_DTYPES = (torch.float64, torch.float32, torch.float16, torch.int64, torch.bool, torch.complex64)
OPTION_NAMES = ("eta", "c2", "c3", "variant", "s_churn", "s_tmin", "s_tmax", "s_noise", "ddim_eta", "colour")
OPTION_VALUES = st.one_of(
    st.floats(-2.0, 2.0),
    st.sampled_from([math.nan, math.inf, 0.0, 1.0, 40.0]),
    st.sampled_from(["phi_1", "phi_2", "x"]),
    st.booleans(),
    st.none(),
)


def _grid(values: list, form: str):
    if form == "list":
        return values
    levels = torch.tensor(values, dtype=torch.float64)
    if form == "2-d":
        return levels.reshape(1, -1)
    if form == "0-d":
        return levels[0] if len(values) else torch.tensor(1.0)
    return levels.to(getattr(torch, form))


def _gaussian_denoiser(x, sigma):
    """The exact denoiser of N(0, I) data: a well-posed problem, so a non-finite result is the solver's."""
    return x / (1 + sigma.reshape(-1, *[1] * (x.ndim - 1)) ** 2)


@FAST
@given(
    values=GRID_VALUES,
    form=st.sampled_from(GRID_FORMS),
    shape=st.sampled_from(X_SHAPES),
    dtype=st.sampled_from(X_DTYPES),
    poisoned=st.booleans(),
    method=st.one_of(st.sampled_from(sorted(METHODS)), st.sampled_from(["nope", "SEEDS-3", ""])),
    prediction=st.sampled_from(["data", "noise", "edm", "score"]),
    options=st.dictionaries(st.sampled_from(OPTION_NAMES), OPTION_VALUES, max_size=3),
)
def test_sample_answers_malformed_input_with_documented_errors(
    values, form, shape, dtype, poisoned, method, prediction, options
):
    torch.manual_seed(0)  # the stochastic methods draw from torch's generator when given no path
    x = (10 * torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)).to(dtype)
    if poisoned and x.numel() and x.is_floating_point():
        x.view(-1)[0] = math.nan
    try:
        result = sample(
            _gaussian_denoiser, x, _grid(values, form), method=method, prediction=prediction, **options
        )
    except API_ERRORS:
        return
    assert result.samples.shape == x.shape
    assert torch.isfinite(result.samples).all()


SOLVER_OPTIONS = {
    "eta": st.floats(0.0, 1.0),
    "c2": st.floats(0.05, 1.0),
    "variant": st.sampled_from(["phi_1", "phi_2"]),
    "s_churn": st.floats(0.0, 80.0),
    "s_noise": st.floats(0.5, 1.5),
    "ddim_eta": st.floats(0.0, 1.0),
}


@FAST
@given(
    levels=DISTINCT_LEVELS.filter(lambda levels: len(levels) >= 2),
    final_zero=st.booleans(),
    shape=st.sampled_from(X_SHAPES[:3]),
    dtype=st.sampled_from(X_DTYPES[:3]),
    method=st.sampled_from(sorted(METHODS)),
    prediction=st.sampled_from(["data", "noise", "edm"]),
    options=st.fixed_dictionaries({}, optional=SOLVER_OPTIONS),
)
def test_sample_of_well_formed_input_is_finite_or_refused(
    levels, final_zero, shape, dtype, method, prediction, options
):
    """In-range values of every option: each method either refuses the combination or returns finite samples."""
    torch.manual_seed(0)
    sigmas = levels + [0.0] * final_zero
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = (sigmas[0] * noise).to(dtype)
    try:
        result = sample(_gaussian_denoiser, x, sigmas, method=method, prediction=prediction, **options)
    except API_ERRORS:
        return
    assert result.samples.shape == x.shape and torch.isfinite(result.samples).all()


# ------------------------------------------------------------------------------------------- the command

# values to try for each option: valid ones, out of range, malformed; <folder> is an empty folder of the
# example, <model> a tiny checkpoint, <damaged> one with damaged weights
SAMPLE_OPTIONS = {
    "--problem": ["gaussian", "ring", "digits", "learned", "nope"],
    "--checkpoint": ["<model>", "<model>/model.safetensors", "<damaged>", "/nonexistent/model"],
    "--method": [*sorted(METHODS), "nope"],
    "--prediction": ["noise", "data", "edm", "score"],
    "--variant": ["phi_1", "phi_2", "phi_3"],
    "--eta": ["0", "0.5", "1", "2", "-0.1", "nan", "inf", "x"],
    "--steps": ["1", "2", "3", "0", "-1", "2.5", "x", ""],
    "--grid": [*sorted(GRIDS), "cubic"],
    "--framework": ["edm", "vp-linear", "vp-cosine", "ve", "x"],
    "--sigma-min": ["0.002", "0.5", "0", "-1", "100", "nan", "1e-300"],
    "--sigma-max": ["80", "1", "0.001", "inf", "1e300"],
    "--count": ["1", "3", "0", "-2", "x"],
    "--seed": ["0", "7", "-1", "9223372036854775808", "x"],
    "--noise": ["tree", "adaptive", "x"],
    "--output": [
        "<folder>/out.npy",
        "<folder>/out.pt",
        "<folder>/out.txt",
        "/nonexistent/out.npy",
        "<folder>",
    ],
}
EXACT_LINEAR_OPTIONS = {
    "--method": [*sorted(METHODS), "nope"],
    "--prediction": ["noise", "data", "edm", "score"],
    "--variant": ["phi_1", "phi_2", "phi_3"],
    "--eta": ["0", "0.5", "1", "2", "nan", "x"],
    "--s-churn": ["0", "40", "-1", "nan", "x"],
    "--data-std": ["0.5", "0.3", "0", "-0.5", "nan", "inf", "x"],
    "--sigma-max": ["80", "1", "0.001", "inf"],
    "--sigma-min": ["0.002", "0.5", "0", "100"],
    "--grid": [*sorted(GRIDS), "cubic"],
    "--steps": ["2", "1,2", "0", "2,x", "", "3,,4"],
}
JOB_OPTIONS = {
    "convergence-plots": {
        "--results": ["<folder>/r", "/dev/null/r"],
        "--figures": ["<folder>/f", "/dev/null/f"],
    },
    "weak-ring": {"--results": ["<folder>/r", "/dev/null/r", "<folder>"]},
    "figures": {
        "--checkpoint": ["<model>", "<damaged>", "/nonexistent/model"],
        "--samples": ["1", "0", "x"],
        "--metric": ["classifier", "fid", "x"],
        "--reference": ["<model>/card.json", "/nonexistent/stats.npz"],
        "--sigma-min": ["0.002", "100", "nan"],
        "--sigma-max": ["80", "0.001"],
        "--scale": ["quick", "long", "x"],
        "--results": ["<folder>/r", "/dev/null/r"],
    },
    "bench": {"--repeats": ["1", "0", "x"], "--device": ["cpu", "cuda", "cuda:7", "tpu"]},
    "train": {
        "--dataset": ["digits", "mnist", "cifar"],
        "--steps": ["1", "0"],
        "--batch-size": ["2", "-1"],
        "--base-channels": ["8", "16", "12", "0"],
        "--seed": ["0", "-1"],
        "--threads": ["1", "0"],
        "--out": ["<folder>/model", "/dev/null/model"],
    },
    "train-classifier": {"--out": ["<folder>/model", "/dev/null/model"]},
    "digits-mixture": {},
    "coefficients": {},
}
FLAGS = ("--json", "--quiet", "--quick", "--no-peers", "--colour")


@pytest.fixture(scope="module")
def stubbed_jobs():
    """The jobs replaced by stubs: a command that passes its checks reaches the stub at once."""
    from seeds.experiments.jobs import bench, coefficients, convergence_plots, learned, weak_ring
    from seeds.experiments.models import classifier, training
    from seeds.experiments.problems import digits

    patch = pytest.MonkeyPatch()
    for job in (bench, coefficients, convergence_plots, learned, weak_ring):
        patch.setattr(job, "run", lambda *args: 0)
    card = {"dataset": "digits", "parameters": 0, "final_loss_mean_last_100_steps": 0.0}
    patch.setattr(training, "train_on", lambda *args: card)
    patch.setattr(classifier, "retrain", lambda out: {"held_out_accuracy": 1.0})
    patch.setattr(digits, "refit", lambda: Path(__file__))
    yield
    patch.undo()


# small sizes first, so that a run stays short (a drawn --count or --steps overrides them), and no progress
# bar, whose partial line would precede an error raised while sampling
SMALL = {"sample": ["--count", "2", "--steps", "2", "--quiet"], "exact-linear": ["--steps", "2"]}


def _argv(data, command: str, options: dict[str, list[str]], files, folder: Path) -> list[str]:
    chosen = data.draw(st.lists(st.sampled_from(sorted(options)), unique=True, max_size=6)) if options else []
    argv = [command, *SMALL.get(command, [])]
    for flag in chosen:
        value = data.draw(st.sampled_from(options[flag]))
        for name in ("model", "damaged"):
            value = value.replace(f"<{name}>", str(files[name]))
        argv += [flag, value.replace("<folder>", str(folder))]
    return argv + data.draw(st.lists(st.sampled_from(FLAGS), unique=True, max_size=2))


def _run(argv) -> tuple[int, str]:
    """(exit status, stderr) of `seeds argv` run in this process (capsys would span all examples)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(argv)
        except SystemExit as exit_:
            status = exit_.code
    return status, err.getvalue()


def _check_refusal(status: int, err: str, folder: Path):
    assert status == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("seeds") and "Traceback" not in err, err
    assert list(folder.iterdir()) == [], "a refused command left a file"


@FAST
@given(data=st.data())
def test_seeds_sample_refuses_in_one_line_or_writes_finite_samples(data, files):
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        argv = _argv(data, "sample", SAMPLE_OPTIONS, files, folder)
        status, err = _run(argv)
        if status != 0:
            _check_refusal(status, err, folder)
            return
        (output,) = list(folder.iterdir())
        samples = np.load(output) if output.suffix == ".npy" else torch.load(output).numpy()
        assert np.isfinite(samples).all(), argv


@settings(FAST, max_examples=60)
@given(data=st.data())
def test_seeds_exact_linear_refuses_in_one_line_or_prints_finite_errors(data, files):
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        argv = _argv(data, "exact-linear", EXACT_LINEAR_OPTIONS, files, folder)
        status, err = _run(argv)
        if status != 0:
            _check_refusal(status, err, folder)


@settings(FAST, max_examples=80)
@given(data=st.data(), command=st.sampled_from(sorted(JOB_OPTIONS)))
def test_job_commands_refuse_in_one_line_before_running(data, command, files, stubbed_jobs):
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        status, err = _run(_argv(data, command, JOB_OPTIONS[command], files, folder))
        if status != 0:
            _check_refusal(status, err, folder)


# ------------------------------------------------------------------------------------------- the loaders


def _damaged(data, original: bytes) -> bytes:
    how = data.draw(st.sampled_from(["cut", "overwrite", "random"]))
    if how == "random":
        return data.draw(st.binary(max_size=300))
    if how == "cut":
        return original[: data.draw(st.integers(0, len(original) - 1))]
    damaged = bytearray(original)
    for position, byte in data.draw(
        st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)), min_size=1, max_size=8)
    ):
        damaged[position] = byte
    return bytes(damaged)


@settings(FAST, max_examples=200)
@given(
    data=st.data(), target=st.sampled_from(["model.safetensors", "card.json", "network.pkl", "module.pkl"])
)
def test_damaged_checkpoints_raise_one_checkpoint_error(data, target, files):
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if target.endswith(".pkl"):
            path = damaged_file = folder / "network.pkl"
        else:
            path = _tiny_checkpoint(folder / "model")
            damaged_file = path / target
        damaged_file.write_bytes(_damaged(data, files[target]))
        try:
            model = load_model(path)
        except LOADER_ERRORS as error:
            assert str(path) in str(error)
            return
        if target == "model.safetensors":  # what still loads must be whole
            assert all(torch.isfinite(p).all() for p in model.parameters())


@settings(FAST, max_examples=60)
@given(
    present=st.dictionaries(
        st.sampled_from(["card.json", "model.safetensors", "config.json", "notes.txt", "network.pkl"]),
        st.sampled_from(["valid", "empty", "junk", "other class"]),
    ),
    device=st.sampled_from(["cpu", "cuda", "cuda:9", "tpu", "meta"]),
)
def test_any_folder_loads_or_raises_a_documented_error(present, device, files):
    contents = {"empty": b"", "junk": b"\x00\xffjunk", "other class": b'{"_class_name": "Other"}'}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for file, kind in present.items():
            valid = files.get(file, b'{"note": 1}')
            (folder / file).write_bytes(valid if kind == "valid" else contents[kind])
        try:
            load_model(folder, device=device)
        except (*LOADER_ERRORS, DeviceUnavailableError):
            pass
