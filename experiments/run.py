"""`make convergence-plots`: the main job. Runs the default configuration (resumable, atomic files) and
writes results/ (JSON + CSV with provenance) and figures/ (PNG + PDF) plus the order table.

    python -m seeds.experiments.run [--results results] [--figures figures] [--quick]
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from seeds.experiments.convergence import Cell, method_label, run_cell
from seeds.experiments.exact_linear import scalar_convergence_table
from seeds.experiments.quality import QualityCell, exact_sample_floor, run_quality_cell
from seeds.experiments.results import (
    ROOT,
    CellStore,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    provenance,
)

DATA_STD = 0.3
SDE_METHODS = [
    ("seeds-1", (("prediction", "data"),)),
    ("seeds-2", (("prediction", "data"),)),
    ("seeds-3", (("prediction", "data"),)),
    ("seeds-3", (("prediction", "noise"),)),
    ("seeds-3", (("prediction", "edm"),)),
    ("euler-maruyama", ()),
    ("sde-dpm-solver++-2m", ()),
]
QUALITY_METHODS = [
    ("seeds-1", (("prediction", "data"),)),
    ("seeds-2", (("prediction", "data"),)),
    ("seeds-3", (("prediction", "data"),)),
    ("euler-maruyama", ()),
    ("ddpm", ()),
    ("sde-dpm-solver++-2m", ()),
    ("edm-heun", (("s_churn", 40.0), ("s_noise", 1.0), ("s_tmax", 50.0), ("s_tmin", 0.05))),
]


GAUSSIAN = (("std", DATA_STD),)


def default_cells(quick: bool = False) -> tuple[list[Cell], list[QualityCell]]:
    paths = 64 if quick else 400
    levels = (4, 8, 16) if quick else (4, 8, 16, 32, 64, 128, 256)
    fit = 2 if quick else 4
    # s = 0.3, not sigma_data = 0.5: at s = sigma_data the EDM output of Gaussian data is F = 0 and every
    # EDM-parameterised scheme is exact, which would hide its error.
    gaussian = Cell(
        "gaussian", "", (), "lambda", levels, paths, seed=1, problem_options=GAUSSIAN, fit_levels=fit
    )
    # The 2-d ring with overlapping components (std 0.6 at neighbour distance 1.53) and a moderate
    # sigma_min, where the drift stays smooth enough for the theory. All ring cells of a grid share one
    # path, so the reference (SEEDS-3/edm, the most accurate method measured, at 16x the finest level) is
    # solved once and checked against a second, independent one (SEEDS-3/noise at 32x).
    ring_levels = levels if quick else levels[:-1]  # 16x and 32x references of 256 steps take minutes
    ring = replace(
        gaussian,
        problem="ring",
        levels=ring_levels,
        seed=2,
        sigma_min=0.05,
        problem_options=(("std", 0.6),),
        reference=("seeds-3", (("prediction", "edm"),), 16 * ring_levels[-1]),
        check_reference=("seeds-3", (("prediction", "noise"),), 32 * ring_levels[-1]),
        path_family=tuple(SDE_METHODS),
    )
    # the EDM rho = 7 grids are nested too: the 2N-step grid contains the N-step grid's points
    strong = [
        replace(base, method=method, options=options, grid=grid)
        for base in (gaussian, ring)
        for grid in ("lambda", "edm")
        for method, options in SDE_METHODS
    ]
    budgets = (6, 12) if quick else (12, 24, 48, 96, 192)
    samples = 200 if quick else 1000
    quality = [
        QualityCell("digits", method, options, nfe, samples=samples, seed=3)
        for method, options in QUALITY_METHODS
        for nfe in budgets
    ]
    return strong, quality


def run(results: Path, figures: Path, quick: bool = False) -> int:
    strong_cells, quality_cells = default_cells(quick)
    store = CellStore(results / "cells")
    finished = []
    with tqdm(total=len(strong_cells) + len(quality_cells), desc="cells", unit="cell") as bar:
        for cell in strong_cells:
            finished.append(store.load_or_run(cell, run_cell))
            bar.update()
        quality_results = []
        for cell in quality_cells:
            quality_results.append(store.load_or_run(cell, run_quality_cell))
            bar.update()
    floor = exact_sample_floor("digits", quality_cells[0].samples, quality_cells[0].sigma_min)
    write_results(results, finished, quality_results, floor)
    write_exact_linear(results, quick)
    from seeds.figures.convergence import make_figures

    make_figures(results, figures)
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


def write_results(results: Path, strong: list[dict], quality: list[dict], floor: dict) -> None:
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


EXACT_LINEAR_METHODS = SDE_METHODS + [
    ("seeds-1", (("prediction", "noise"),)),
    ("seeds-2", (("prediction", "noise"),)),
    ("seeds-2", (("prediction", "data"), ("variant", "phi_2"))),
    ("ddpm", ()),
]


def write_exact_linear(results: Path, quick: bool) -> None:
    """Exact (quadrature) strong and weak errors on N(0, 0.25), for the curves under the Monte Carlo points."""
    steps = (4, 8, 16) if quick else tuple(2**k for k in range(2, 11))
    curves = {}
    for method, options in EXACT_LINEAR_METHODS:
        table = scalar_convergence_table(method, steps, data_std=DATA_STD, **dict(options))
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--figures", type=Path, default=ROOT / "figures")
    parser.add_argument("--quick", action="store_true", help="a tiny configuration (for tests)")
    args = parser.parse_args(argv)
    return run(args.results, args.figures, args.quick)


if __name__ == "__main__":
    sys.exit(main())
