"""The one `seeds` command: every job is a subcommand, and every subcommand explains itself."""

import re
import subprocess
import sys

import pytest

from seeds.experiments.cli import main

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
