"""The committed generated module is exactly what the derivations produce now."""

import subprocess
import sys

import sympy as sp

from seeds.analysis import codegen


def test_committed_coefficients_are_regenerated_identically():
    committed = codegen.OUTPUT.read_text()
    assert committed.startswith('"""Solver coefficients generated')
    assert "DO NOT EDIT" in committed and codegen.COMMAND in committed
    assert codegen.generate() == committed, "solvers/_coefficients.py is stale: run `make coefficients`"


def test_stable_difference_removes_cancellation():
    lam, start, step = sp.symbols("lam lam_s h", real=True)
    form = codegen.stable_difference(sp.log(1 + sp.exp(2 * lam)), lam, start, step)
    # at lam_s = 0, h = 1e-30 the plain difference is 0 in float64; the stable form keeps every digit
    value = float(form.subs({start: 0, step: sp.Float("1e-30", 50)}).evalf(50))
    assert abs(value - 1e-30) <= 1e-45
    assert codegen.stable_difference(sp.Integer(3), lam, start, step) == 0


def test_seeds_help_runs():
    completed = subprocess.run(
        [sys.executable, "-m", "seeds.experiments.cli", "--help"], capture_output=True, text=True
    )
    assert completed.returncode == 0
    assert "usage: seeds" in completed.stdout
