"""`seeds weak-ring` (`make weak-ring`): the weak order cells of every method on the 2-d ring mixture
(experiments/verification/ring_orders.py), written to results/weak_ring.{json,md} (docs/results.md)."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from seeds.experiments.config import RING_ODE_METHODS, RING_SDE_METHODS
from seeds.experiments.results import CellStore, atomic_write_json, atomic_write_text, provenance
from seeds.experiments.verification.convergence import run_cell
from seeds.experiments.verification.ring_orders import resolved, weak_cell

CELL_ROOTS = ("seeds.experiments.verification.convergence",)


def weak_table(results: list[dict]) -> str:
    lines = [
        "| method | paths | D_k = E\\|X_k\\|^2 - E\\|X_k+1\\|^2, steps 32-64, 64-128, 128-256 (+- 1 s.e.) | "
        "weak slope [95% CI] | predicted weak | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        weak, predicted = r["weak_differences"], r["predicted"]["weak"]
        differences = ", ".join(
            f"{d:.2e} +- {se:.0e}" for d, se in zip(weak["difference"], weak["difference_se"])
        )
        slope, low, high = weak["slope"]
        if not resolved(weak):
            verdict = "unresolved (weak error below the Monte Carlo floor)"
        else:
            verdict = "within +-0.25" if low - 0.25 <= predicted <= high + 0.25 else "OUTSIDE +-0.25"
        lines.append(
            f"| {r['label']} | {r['cell']['paths']} | {differences} | {slope:.2f} [{low:.2f}, {high:.2f}] | "
            f"{predicted} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def run(results: Path) -> list[dict]:
    store = CellStore(results / "cells", CELL_ROOTS)
    finished = [
        store.load_or_run(weak_cell(*case), run_cell)
        for case in tqdm(RING_SDE_METHODS + RING_ODE_METHODS, desc="weak ring cells", unit="cell")
    ]
    atomic_write_json(results / "weak_ring.json", {"provenance": provenance(), "cells": finished})
    atomic_write_text(results / "weak_ring.md", weak_table(finished))
    return finished
