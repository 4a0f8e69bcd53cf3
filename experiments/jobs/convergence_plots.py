"""`seeds convergence-plots` (`make convergence-plots`): the main job (docs/results.md). Runs the configuration
of experiments/config.py (resumable, atomic files) and writes results/ (JSON + CSV with provenance) and
figures/ (PNG + PDF) plus the order table."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from seeds.experiments.config import (
    CONVERGENCE_DATA_STD,
    CONVERGENCE_SCALES,
    CONVERGENCE_SDE_METHODS,
    EXACT_LINEAR_METHODS,
    MIXTURE_QUALITY_METHODS,
    RING_PROBLEM_OPTIONS,
    RING_SIGMA_MIN,
)
from seeds.experiments.jobs.exact_weak import compute as compute_exact_weak
from seeds.experiments.jobs.exact_weak import main_job_cells as exact_weak_cells
from seeds.experiments.metrics.mixture import exact_sample_floor
from seeds.experiments.problems.digits import PARAMETERS as DIGITS_MIXTURE
from seeds.experiments.results import (
    CellStore,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    provenance,
)
from seeds.experiments.verification.convergence import Cell, method_label, run_cell
from seeds.experiments.verification.exact_linear import scalar_convergence_table
from seeds.experiments.verification.mixture_quality import MixtureQualityCell, run_mixture_quality_cell
from seeds.figures.convergence import make_figures
from seeds.figures.exact_weak import exact_weak_figure

CELL_ROOTS = (
    "seeds.experiments.verification.convergence",
    "seeds.experiments.verification.mixture_quality",
)


def default_cells(quick: bool = False) -> tuple[list[Cell], list[MixtureQualityCell]]:
    scale = CONVERGENCE_SCALES["quick" if quick else "full"]
    gaussian = Cell(
        "gaussian",
        "",
        (),
        "lambda",
        scale.levels,
        scale.paths,
        seed=1,
        problem_options=(("std", CONVERGENCE_DATA_STD),),
        fit_levels=scale.fit_levels,
    )
    # All ring cells of a grid share one path, so the reference (SEEDS-3/edm, the most accurate method
    # measured, at 16x the finest level) is solved once and checked against a second, independent one
    # (SEEDS-3/noise at 32x).
    ring = replace(
        gaussian,
        problem="ring",
        levels=scale.ring_levels,
        seed=2,
        sigma_min=RING_SIGMA_MIN,
        problem_options=RING_PROBLEM_OPTIONS,
        reference=("seeds-3", (("prediction", "edm"),), 16 * scale.ring_levels[-1]),
        check_reference=("seeds-3", (("prediction", "noise"),), 32 * scale.ring_levels[-1]),
        path_family=tuple(CONVERGENCE_SDE_METHODS),
    )
    # the EDM rho = 7 grids are nested too: the 2N-step grid contains the N-step grid's points
    strong = [
        replace(base, method=method, options=options, grid=grid)
        for base in (gaussian, ring)
        for grid in ("lambda", "edm")
        for method, options in CONVERGENCE_SDE_METHODS
    ]
    quality = [
        MixtureQualityCell("digits", method, options, nfe, samples=scale.quality_samples, seed=3)
        for method, options in MIXTURE_QUALITY_METHODS
        for nfe in scale.quality_budgets
    ]
    return strong, quality


def run(results: Path, figures: Path, quick: bool = False) -> int:
    strong_cells, quality_cells = default_cells(quick)
    store = CellStore(results / "cells", CELL_ROOTS, (DIGITS_MIXTURE,))
    finished = []
    with tqdm(total=len(strong_cells) + len(quality_cells), desc="cells", unit="cell") as bar:
        for cell in strong_cells:
            finished.append(store.load_or_run(cell, run_cell))
            bar.update()
        quality_results = []
        for cell in quality_cells:
            quality_results.append(store.load_or_run(cell, run_mixture_quality_cell))
            bar.update()
    floor = exact_sample_floor("digits", quality_cells[0].samples, quality_cells[0].sigma_min)
    write_convergence_results(results, finished, quality_results, floor)
    write_exact_linear(results, CONVERGENCE_SCALES["quick" if quick else "full"].exact_linear_steps)
    make_figures(results, figures)
    atomic_write_text(figures / "orders_table.md", (results / "orders_table.md").read_text())
    exact_weak = compute_exact_weak(exact_weak_cells(quick), results)
    atomic_write_json(
        results / "exact_weak_overlapping.json", {"provenance": provenance(), "cells": exact_weak}
    )
    exact_weak_figure(exact_weak, figures, "exact_weak_overlapping")
    return 0


def _identity_columns(result: dict, stamp: dict) -> dict:
    """The CSV columns that say which cell a row comes from."""
    cell = result["cell"]
    return {
        "problem": cell["problem"],
        "method": result["label"],
        "grid": cell["grid"],
        "seed": cell["seed"],
        "git_commit": stamp["git_commit"],
    }


def write_convergence_results(results: Path, strong: list[dict], quality: list[dict], floor: dict) -> None:
    stamp = provenance()
    atomic_write_json(results / "convergence.json", {"provenance": stamp, "cells": strong})
    atomic_write_csv(
        results / "convergence.csv",
        [
            {
                **_identity_columns(r, stamp),
                "paths": r["cell"]["paths"],
                "steps": steps,
                "nfe": nfe,
                "strong_rms": err,
                "sup_rms": sup,
            }
            for r in strong
            for steps, nfe, err, sup in zip(r["steps"], r["nfe"], r["strong_rms"], r["sup_rms"])
        ],
    )
    atomic_write_json(
        results / "quality.json", {"provenance": stamp, "exact_sample_floor": floor, "cells": quality}
    )
    atomic_write_csv(
        results / "quality.csv",
        [
            {
                **_identity_columns(r, stamp),
                "samples": r["cell"]["samples"],
                "nfe": r["nfe"],
                "steps": r["steps"],
                "frechet": r["frechet"],
                "mode_weight_error": r["mode_weight_error"],
            }
            for r in quality
        ],
    )
    atomic_write_text(results / "orders_table.md", orders_table(strong))


def write_exact_linear(results: Path, steps: tuple) -> None:
    """Exact (quadrature) strong and weak errors on Gaussian data, for the curves under the Monte Carlo
    points."""
    curves = {}
    for method, options in EXACT_LINEAR_METHODS:
        table = scalar_convergence_table(method, steps, data_std=CONVERGENCE_DATA_STD, **dict(options))
        label = method_label(method, options)
        span = math.log(80.0 / 0.002)
        curves[label] = {**table, "step_size_lambda": [span / n for n in steps]}
    atomic_write_json(results / "exact_linear.json", {"provenance": provenance(), "curves": curves})
    rows = [
        {
            "method": label,
            "grid": curve["grid"],
            "steps": n,
            "nfe": nfe,
            "strong_rmse": strong,
            "weak_var_error": weak,
        }
        for label, curve in curves.items()
        for n, nfe, strong, weak in zip(
            curve["steps"], curve["nfe"], curve["strong_rmse"], curve["weak_var_error"]
        )
    ]
    atomic_write_csv(results / "exact_linear.csv", rows)


def orders_table(strong: list[dict]) -> str:
    lines = [
        "| problem | method | grid | levels fitted (steps) | measured strong slope [95% CI] | sup slope [95% CI] | predicted strong | within +-0.25 | finest RMS error | reference check |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in strong:
        slope, low, high = r["strong_slope"]
        sup, sup_low, sup_high = r["sup_slope"]
        predicted = (r.get("predicted") or {}).get("strong")
        agrees = predicted is not None and low - 0.25 <= predicted <= high + 0.25
        lines.append(
            f"| {r['cell']['problem']} | {r['label']} | {r['cell']['grid']} | {r['fit_steps']} | "
            f"{slope:.2f} [{low:.2f}, {high:.2f}] | {sup:.2f} [{sup_low:.2f}, {sup_high:.2f}] | "
            f"{predicted if predicted is not None else 'n/a'} | {'yes' if agrees else 'NO'} | "
            f"{r['strong_rms'][-1]:.2e} | {_reference_note(r)} |"
        )
    return "\n".join(lines) + "\n"


def _reference_note(result: dict) -> str:
    if result["cell"]["reference"][0] == "exact":
        return "exact solution on the path"
    gap = result.get("reference_gap_rms")
    return "none" if gap is None else f"RMS gap to 2nd reference {gap:.1e}"
