"""The one `seeds` command: every job is a subcommand, and every subcommand explains itself."""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch

import seeds.solvers
from seeds.experiments.cli import build_parser, main
from seeds.experiments.models.checkpoints import save_checkpoint
from seeds.experiments.models.edm import EDMDenoiser
from seeds.experiments.models.unet import UNet, UNetConfig
from seeds.solvers.methods import METHOD_TABLE

TINY_UNET = UNetConfig(
    base_channels=8, groups=4, embedding_dim=16, channel_multipliers=(1,), blocks_per_level=1
)
SUBCOMMANDS = (
    "sample",
    "exact-linear",
    "convergence-plots",
    "weak-ring",
    "figures",
    "bench",
    "train",
    "train-classifier",
    "digits-mixture",
    "coefficients",
)


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    listed = capsys.readouterr().out
    assert all(re.search(rf"^ +{re.escape(name)}( |$)", listed, re.MULTILINE) for name in SUBCOMMANDS)


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help_with_defaults(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: seeds {name}")
    assert "--help" in text


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["convergence-plots", "--help"])
    assert "(default: " in capsys.readouterr().out


def test_building_the_parser_imports_no_job():
    """The handlers import their jobs: `seeds <command> --help` loads neither the jobs nor sympy."""
    code = (
        "import sys; from seeds.experiments.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith(('seeds.experiments.jobs', 'seeds.figures', "
        "'seeds.analysis', 'sympy'))))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def _subcommands():
    parser = build_parser()
    (subparsers,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return subparsers.choices


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_option_shows_its_default(name):
    """Each option's help block ends in "(default: ...)", never "(default: None)"; a required option has none."""
    subparser = _subcommands()[name]
    text = subparser.format_help()
    for action in subparser._actions:
        if not action.option_strings or action.dest == "help" or action.required:
            continue
        flag = action.option_strings[0]
        block = text.split(f"\n  {flag}", 1)[1]
        block = re.split(r"\n  -", block, maxsplit=1)[0]
        assert re.search(r"\(default: [^)]", " ".join(block.split())), (name, flag, block)
        assert "(default: None)" not in block, (name, flag)


# --------------------------------------------------------------------------------------------- user errors


def _run(argv, capsys):
    """(exit status, stderr) of `seeds argv` run in this process."""
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


@pytest.fixture
def sampling(monkeypatch):
    """Records the calls of the driver that `seeds sample` makes, and runs none."""
    calls = []

    def recorded(*args, **kwargs):
        calls.append(kwargs)
        raise AssertionError("the driver must not run")

    monkeypatch.setattr(seeds.solvers, "sample", recorded)
    return calls


def test_the_output_is_checked_before_sampling(tmp_path, monkeypatch, sampling, capsys):
    (tmp_path / "folder.npy").mkdir()
    refused = {
        str(tmp_path / "absent" / "out.npy"): f"the folder {tmp_path / 'absent'} does not exist",
        str(tmp_path / "out.csv"): "must end in .npy or .pt",
        str(tmp_path / "folder.npy"): "is a folder",
    }
    for output, message in refused.items():
        status, err = _run(["sample", "--output", output], capsys)
        assert status == 2 and message in err and len(err.splitlines()) == 1

    def read_only_folder(**kwargs):  # what creating a file in a read-only folder raises (also for root)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only_folder)
    status, err = _run(["sample", "--output", str(tmp_path / "out.npy")], capsys)
    assert (status, err) == (
        2,
        f"seeds sample: error: argument --output: cannot write in {tmp_path}: Permission denied\n",
    )
    assert sampling == [] and sorted(p.name for p in tmp_path.iterdir()) == ["folder.npy"]


def test_ctrl_c_while_sampling_exits_130_with_one_line(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(seeds.solvers, "sample", interrupted)
    status, err = _run(["sample", "--quiet", "--output", str(tmp_path / "out.npy")], capsys)
    assert (status, err) == (130, "seeds sample: interrupted\n")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_writing_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    def interrupted(descriptor):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)  # the atomic writer's last step before the rename
    argv = ["sample", "--count", "3", "--steps", "2", "--quiet", "--output", str(tmp_path / "out.npy")]
    status, err = _run(argv, capsys)
    assert (status, err) == (130, "seeds sample: interrupted\n")
    assert list(tmp_path.iterdir()) == []


def test_library_refusals_become_one_line_and_bugs_keep_their_traceback(tmp_path, monkeypatch, capsys):
    def refused_by_the_solvers(*args, **kwargs):
        seeds.solvers.make_method("seeds-3", eta=-1.0)

    monkeypatch.setattr(seeds.solvers, "sample", refused_by_the_solvers)
    argv = ["sample", "--quiet", "--output", str(tmp_path / "out.npy")]
    assert _run(argv, capsys) == (2, "seeds sample: error: eta must lie in [0, 1], got -1.0\n")

    def buggy(*args, **kwargs):
        raise ValueError("a bug outside the solvers")

    monkeypatch.setattr(seeds.solvers, "sample", buggy)
    with pytest.raises(ValueError, match="a bug outside the solvers"):
        main(argv)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("method", sorted(seeds.solvers.METHODS))
def test_row_selecting_options_apply_where_the_method_table_says(method, capsys):
    """--prediction and --variant are accepted exactly for the methods whose rows they select."""
    rows = [METHOD_TABLE[row_id] for row_id in seeds.solvers.METHODS[method]]
    selectors = {option for row in rows for option, _ in row["selected_by"]}
    for flag, option, value in (("--prediction", "prediction", "noise"), ("--variant", "variant", "phi_2")):
        status, err = _run(
            ["exact-linear", "--method", method, flag, value, "--steps", "2", "--json"], capsys
        )
        if option in selectors:
            assert status == 0, err
        else:
            assert status == 2 and f"{method} takes no {option}" in err


def test_exact_linear_names_the_variant_it_ran(capsys):
    for argv, variant in (
        (["--method", "seeds-2"], "phi_1"),
        (["--method", "seeds-2", "--variant", "phi_2"], "phi_2"),
        (["--method", "seeds-3"], None),
    ):
        assert main(["exact-linear", *argv, "--steps", "2", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["variant"] == variant


def test_noise_applies_to_stochastic_runs_only(tmp_path, capsys):
    output = str(tmp_path / "out.npy")
    status, err = _run(["sample", "--eta", "0", "--noise", "adaptive", "--output", output], capsys)
    assert status == 2 and "seeds-3 draws no noise here" in err
    argv = ["sample", "--count", "4", "--steps", "2", "--noise", "adaptive", "--quiet", "--output", output]
    assert _run(argv, capsys)[0] == 0
    assert np.load(output).shape == (4, 1) and np.isfinite(np.load(output)).all()


# ------------------------------------------------------------------------------------------ learned models


@pytest.fixture
def checkpoint(tmp_path):
    folder = tmp_path / "model"
    save_checkpoint(
        EDMDenoiser(UNet(TINY_UNET)), {"format": "seeds-edm-unet/1", "unet": TINY_UNET.to_dict()}, folder
    )
    return folder


@pytest.mark.parametrize("given", ["folder", "weights file"])
def test_sample_learned_loads_the_checkpoint(given, checkpoint, tmp_path, capsys):
    path = checkpoint if given == "folder" else checkpoint / "model.safetensors"
    output = tmp_path / "out.pt"
    argv = ["sample", "--problem", "learned", "--checkpoint", str(path), "--count", "2", "--steps", "2"]
    assert _run([*argv, "--quiet", "--output", str(output)], capsys)[0] == 0
    samples = torch.load(output)
    assert samples.shape == (2, 1, 8, 8) and torch.isfinite(samples).all()


def test_sample_learned_refuses_a_damaged_checkpoint_in_one_line(checkpoint, tmp_path, capsys):
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    argv = [
        "sample",
        "--problem",
        "learned",
        "--checkpoint",
        str(checkpoint),
        "--output",
        str(tmp_path / "o.npy"),
    ]
    status, err = _run(argv, capsys)
    assert status == 2 and len(err.splitlines()) == 1
    assert err.startswith(
        f"seeds sample: error: argument --checkpoint: {weights} is not a readable safetensors"
    )
    assert not (tmp_path / "o.npy").exists()
