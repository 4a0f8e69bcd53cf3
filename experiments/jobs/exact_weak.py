"""`seeds exact-weak-table` (`make exact-weak`): the exact weak errors of every one-step method on the 1-d
nonlinear problems (experiments/verification/exact_weak.py), with the refinement checks and the planted
mistake, written to results/exact_weak.{json,md} and figures/exact_weak.{png,pdf} (docs/exact-weak.md)."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch
from tqdm.auto import tqdm

from seeds.experiments.config import (
    EXACT_WEAK_COLUMNS,
    EXACT_WEAK_MAIN_METHODS,
    EXACT_WEAK_MAIN_STEPS,
    EXACT_WEAK_METHODS,
    EXACT_WEAK_PLANTED,
    EXACT_WEAK_REFINED,
    EXACT_WEAK_REFINED_STEPS,
)
from seeds.experiments.results import CellStore, atomic_write_json, atomic_write_text, provenance
from seeds.experiments.verification.exact_weak import L1_FLOOR, ExactWeakCell, run_exact_weak_cell
from seeds.figures.exact_weak import exact_weak_figure

CELL_ROOTS = ("seeds.experiments.verification.exact_weak",)
TOLERANCE = 0.25  # a measured order within this of the predicted one agrees with it


def table_cells() -> list[ExactWeakCell]:
    cells = [
        ExactWeakCell(problem, method, options, grid, steps)
        for problem, grid, steps in EXACT_WEAK_COLUMNS
        for method, options in EXACT_WEAK_METHODS
    ]
    cells += [
        ExactWeakCell(problem, method, options, grid, steps, independent_stages=True)
        for problem, grid, steps in EXACT_WEAK_COLUMNS
        if grid == "lambda"
        for method, options in EXACT_WEAK_PLANTED
    ]
    cells += [
        ExactWeakCell(problem, method, options, "lambda", EXACT_WEAK_REFINED_STEPS, refined=True)
        for problem, method, options in EXACT_WEAK_REFINED
    ]
    return cells


def main_job_cells(quick: bool = False) -> list[ExactWeakCell]:
    """The main job's share: the SEEDS methods and the planted mistake on the overlapping mixture."""
    steps = EXACT_WEAK_MAIN_STEPS[:3] if quick else EXACT_WEAK_MAIN_STEPS
    method, options = EXACT_WEAK_PLANTED[0]
    return [
        ExactWeakCell("overlapping", name, name_options, "lambda", steps)
        for name, name_options in EXACT_WEAK_MAIN_METHODS
    ] + [ExactWeakCell("overlapping", method, options, "lambda", steps, independent_stages=True)]


def _run_in_worker(folder: str, cell: ExactWeakCell) -> dict:
    torch.set_num_threads(1)  # one worker per core
    return CellStore(Path(folder), CELL_ROOTS).load_or_run(cell, run_exact_weak_cell)


def compute(cells: list[ExactWeakCell], results: Path, workers: int = 1) -> list[dict]:
    """Every cell's result, loaded where stored, else computed (in `workers` processes) and stored at once."""
    folder = results / "cells"
    store = CellStore(folder, CELL_ROOTS)
    finished = {cell.key(): store.load(cell.key()) for cell in cells}
    missing = [cell for cell in cells if finished[cell.key()] is None]
    with tqdm(
        total=len(cells), initial=len(cells) - len(missing), desc="exact-weak cells", unit="cell"
    ) as bar:
        if workers <= 1:
            for cell in missing:
                finished[cell.key()] = store.load_or_run(cell, run_exact_weak_cell)
                bar.update()
        else:
            # the slowest cells first (refined, most stage noises, longest grids), so the workers end together
            missing.sort(
                key=lambda c: (
                    c.refined and c.method == "seeds-3",
                    c.method == "seeds-3",
                    c.refined,
                    sum(c.steps),
                ),
                reverse=True,
            )
            with ProcessPoolExecutor(workers) as pool:
                futures = {pool.submit(_run_in_worker, str(folder), cell): cell for cell in missing}
                for future in as_completed(futures):
                    finished[futures[future].key()] = future.result()
                    bar.update()
    return [finished[cell.key()] for cell in cells]


def verdict(result: dict) -> str:
    predicted = (result.get("predicted") or {}).get("weak")
    if result["order"] is None:
        return "not resolved"
    if predicted is None:
        return "no prediction"
    return "agrees" if abs(result["order"] - predicted) <= TOLERANCE else "DISAGREES"


def orders_table(results: list[dict]) -> str:
    """Predicted vs measured weak order (fitted to the smoothed L1 distance) per method, problem and grid."""
    columns = [(problem, grid) for problem, grid, _ in EXACT_WEAK_COLUMNS]
    by_label: dict[str, dict] = {}
    for r in results:
        if r["cell"]["refined"]:
            continue
        by_label.setdefault(r["label"], {})[(r["cell"]["problem"], r["cell"]["grid"])] = r
    header = "| method | predicted weak | " + " | ".join(f"{p}, {g}" for p, g in columns) + " |"
    lines = [header, "|---|---|" + "---|" * len(columns)]
    for label, row in by_label.items():
        first = next(iter(row.values()))
        predicted = (first.get("predicted") or {}).get("weak")
        cells = []
        for column in columns:
            r = row.get(column)
            if r is None:
                cells.append("")
                continue
            order = "-" if r["order"] is None else f"{r['order']:.2f}"
            mark = {"agrees": "", "no prediction": "", "not resolved": " (n/r)", "DISAGREES": " **x**"}[
                verdict(r)
            ]
            cells.append(order + mark)
        lines.append(f"| {label} | {'-' if predicted is None else predicted} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def accuracy_table(results: list[dict]) -> str:
    """Per refined cell and step count: the largest relative change, from the table's default resolution to
    the refined one, of a weak error (errors that vanish by symmetry, below 1e-12, left out) and of the L1
    distance."""
    lines = [
        "| method | problem | steps | largest relative change of E g(X_N) - E g(X) | of the L1 distance |",
        "|---|---|---|---|---|",
    ]
    default = {_unrefined(r["cell"]): r for r in results if not r["cell"]["refined"]}
    for fine in results:
        if not fine["cell"]["refined"]:
            continue
        coarse = default[_unrefined(fine["cell"])]
        for i, steps in enumerate(fine["steps"]):
            j = coarse["steps"].index(steps)
            change = max(
                abs(fine["errors"][name][i] - coarse["errors"][name][j]) / abs(coarse["errors"][name][j])
                for name in coarse["errors"]
                if abs(coarse["errors"][name][j]) > 1e-12
            )
            l1 = abs(fine["l1"][i] - coarse["l1"][j]) / coarse["l1"][j]
            lines.append(
                f"| {fine['label']} | {fine['cell']['problem']} | {steps} | {change:.1e} | {l1:.1e} |"
            )
    return "\n".join(lines) + "\n"


def _unrefined(cell: dict) -> tuple:
    """What identifies a refined cell's counterpart in the table (everything but the steps and the flag)."""
    return tuple(
        (name, tuple(map(tuple, value)) if name == "options" else value)
        for name, value in cell.items()
        if name not in ("steps", "refined")
    )


def run(results: Path, figures: Path, workers: int | None = None) -> list[dict]:
    workers = workers or os.cpu_count() or 1
    finished = compute(table_cells(), results, workers)
    atomic_write_json(
        results / "exact_weak.json", {"provenance": provenance(), "l1_floor": L1_FLOOR, "cells": finished}
    )
    atomic_write_text(
        results / "exact_weak.md",
        "## Weak orders (smoothed L1 distance)\n\n"
        + orders_table(finished)
        + "\n## Accuracy: the default resolution against the refined one\n\n"
        + accuracy_table(finished),
    )
    atomic_write_text(figures / "exact_weak_table.md", (results / "exact_weak.md").read_text())
    exact_weak_figure([r for r in finished if not r["cell"]["refined"]], figures, "exact_weak")
    return finished
