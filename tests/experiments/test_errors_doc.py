"""docs/errors.md is what the code prints: every row of its three tables is run, and the exception and the
message must be the documented ones, word for word."""

import json
import math
import pickle
import shlex
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from seeds.experiments.cli import main
from seeds.experiments.models.checkpoints import save_checkpoint
from seeds.experiments.models.edm import EDMDenoiser
from seeds.experiments.models.loaders import load_model
from seeds.experiments.models.unet import UNet, UNetConfig
from seeds.solvers import sample

DOC = Path(__file__).parents[2] / "docs" / "errors.md"
TINY_UNET = UNetConfig(
    base_channels=8, groups=4, embedding_dim=16, channel_multipliers=(1,), blocks_per_level=1
)


def _table(heading: str) -> list[list[str]]:
    """The rows of the table in the section `## heading`, each a list of cells without their code marks."""
    section = DOC.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    return [[_unquote(cell.strip()) for cell in line.strip()[1:-1].split(" | ")] for line in lines[1:]]


def _unquote(cell: str) -> str:
    """The text of a cell that is one code span (a message holding a backtick is a double-backtick span)."""
    if cell.startswith("`` ") and cell.endswith(" ``"):
        return cell[3:-3]
    if cell.startswith("`") and cell.endswith("`") and cell.count("`") == 2:
        return cell[1:-1]
    return cell


def test_the_tables_are_found():
    assert len(_table("The command line")) > 30
    assert len(_table("The Python API (`seeds.solvers`)")) > 10
    assert len(_table("Checkpoints (`load_model`, `load_checkpoint`)")) > 15


# ------------------------------------------------------------------------------------------ command line


@pytest.mark.parametrize("command, message", _table("The command line"), ids=lambda value: value[:60])
def test_command_line_rows(command, message, tmp_path, monkeypatch, capsys):
    if "cuda" in command and torch.cuda.is_available():
        pytest.skip("the row describes a machine without CUDA")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(shlex.split(command)[1:])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == message + "\n"
    assert list(tmp_path.iterdir()) == []  # nothing written


# -------------------------------------------------------------------------------------------- Python API


def _model(x, sigma):
    return x / 2


API_NAMES = {
    "sample": sample,
    "torch": torch,
    "nan": math.nan,
    "model": _model,
    "nan_model": lambda x, sigma: x * math.nan,
    "shape_model": lambda x, sigma: x[:1],
    "x": torch.ones(4, 2),
}


@pytest.mark.parametrize(
    "call, exception, message", _table("The Python API (`seeds.solvers`)"), ids=lambda value: value[:60]
)
def test_api_rows(call, exception, message):
    with pytest.raises(Exception) as raised:
        eval(call, dict(API_NAMES))
    assert (type(raised.value).__name__, str(raised.value)) == (exception, message)


# ------------------------------------------------------------------------------------------- checkpoints


def _checkpoint(tmp: Path) -> Path:
    folder = tmp / "model"
    save_checkpoint(
        EDMDenoiser(UNet(TINY_UNET)), {"format": "seeds-edm-unet/1", "unet": TINY_UNET.to_dict()}, folder
    )
    return folder


def _checkpoint_with(tmp: Path, name: str, content: bytes) -> Path:
    folder = _checkpoint(tmp)
    (folder / name).write_bytes(content)
    return folder


def _checkpoint_without(tmp: Path, name: str) -> Path:
    folder = _checkpoint(tmp)
    (folder / name).unlink()
    return folder


def _checkpoint_with_card(tmp: Path, edit) -> Path:
    folder = _checkpoint(tmp)
    card = json.loads((folder / "card.json").read_text())
    edit(card)
    (folder / "card.json").write_text(json.dumps(card))
    return folder


def _checkpoint_with_tensors(tmp: Path, edit) -> Path:
    folder = _checkpoint(tmp)
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors")
    return folder


def _checkpoint_cut_short(tmp: Path) -> Path:
    folder = _checkpoint(tmp)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return folder


def _file(tmp: Path, name: str, content: bytes) -> Path:
    (tmp / name).write_bytes(content)
    return tmp / name


# each builder makes its row's case in an empty folder and returns the path to load
CHECKPOINT_CASES = {
    "a path that does not exist": lambda tmp: tmp / "absent",
    "a folder with none of the layouts (it holds `notes.txt`)": lambda tmp: (
        _file(tmp, "notes.txt", b"x").parent
    ),
    "`model.safetensors` without `card.json` beside it": lambda tmp: (
        _checkpoint_without(tmp, "card.json") / "model.safetensors"
    ),
    "a file of another kind (`weights.bin`)": lambda tmp: _file(tmp, "weights.bin", b"weights"),
    "a text file named `network.pkl` (holding `hello`)": lambda tmp: _file(tmp, "network.pkl", b"hello"),
    "a pickle of a dict without `ema`": lambda tmp: _file(tmp, "network.pkl", pickle.dumps({"loss": 1})),
    "a pickle of a list": lambda tmp: _file(tmp, "network.pkl", pickle.dumps([1, 2])),
    "a pickle that fails to unpickle (`a.`)": lambda tmp: _file(tmp, "network.pkl", b"a."),
    "a pickle of a class from a module that is not installed": lambda tmp: _file(
        tmp, "network.pkl", b"cnot_installed\nNetwork\n."
    ),
    "a folder with `card.json` but no `model.safetensors`": lambda tmp: _checkpoint_without(
        tmp, "model.safetensors"
    ),
    "`card.json` that is not JSON (`{not json`)": lambda tmp: _checkpoint_with(
        tmp, "card.json", b"{not json"
    ),
    "`card.json` holding a list": lambda tmp: _checkpoint_with(tmp, "card.json", b"[1, 2]"),
    "`card.json` without `sigma_data`": lambda tmp: _checkpoint_with_card(
        tmp, lambda card: card.pop("sigma_data")
    ),
    "`card.json` of another format": lambda tmp: _checkpoint_with_card(
        tmp, lambda card: card.update(format="other/1")
    ),
    "`card.json` whose `unet` has an unknown field": lambda tmp: _checkpoint_with_card(
        tmp, lambda card: card["unet"].update(colour="red")
    ),
    "`model.safetensors` cut short": _checkpoint_cut_short,
    "`model.safetensors` holding text": lambda tmp: _checkpoint_with(tmp, "model.safetensors", b"plain text"),
    "`model.safetensors` without the tensor `head.2.bias`": lambda tmp: _checkpoint_with_tensors(
        tmp, lambda tensors: tensors.pop("head.2.bias")
    ),
    "`model.safetensors` with NaN in a tensor": lambda tmp: _checkpoint_with_tensors(
        tmp, lambda tensors: tensors["head.2.bias"].fill_(math.nan)
    ),
    'a checkpoint folder loaded with `device="cuda"` where torch sees no CUDA device': _checkpoint,
}
CHECKPOINT_ROWS = _table("Checkpoints (`load_model`, `load_checkpoint`)")


def test_every_checkpoint_row_has_its_case():
    assert [row[0] for row in CHECKPOINT_ROWS] == list(CHECKPOINT_CASES)


@pytest.mark.parametrize("case, exception, message", CHECKPOINT_ROWS, ids=lambda value: value[:50])
def test_checkpoint_rows(case, exception, message, tmp_path):
    device = "cuda" if 'device="cuda"' in case else "cpu"
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("the row describes a machine without CUDA")
    path = CHECKPOINT_CASES[case](tmp_path)
    with pytest.raises(Exception) as raised:
        load_model(path, device=device)
    assert (type(raised.value).__name__, str(raised.value)) == (
        exception,
        message.replace("<path>", str(path)),
    )
