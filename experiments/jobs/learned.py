"""`seeds figures` (`make figures`): experiments on a learned score model (docs/learned-models.md).

1. Strong convergence: every SDE method on nested EDM grids, all levels driven by one Brownian path, errors
   against the same method on a 4x finer grid of the same path (there is no exact solution).
2. Quality against NFE: Frechet distance of the samples' features (the digit classifier shipped with the
   checkpoint, or Inception-v3 for FID) to the data's, with a bootstrap CI over samples, the same initial
   noise and Brownian path for every method and NFE (common random numbers), and the floor a perfect sampler
   scores with as many samples.
3. NFE to reach the quality plateau, fixed before the run: within PLATEAU_TOLERANCE (5%) of the best Frechet
   distance any method reaches at the largest NFE, and staying within it at every larger NFE of the grid. The
   table reports, for each earlier SDE method, the ratio of its NFE to SEEDS'. The same rule is applied a
   second time among the path-driven SDE methods only (all but EDM churn): they solve one SDE on one
   Brownian path, so they converge to the same samples and share one plateau. (This second rule was added
   after the first default run showed EDM churn alone reaching the first plateau within 72 NFE, and before
   the long run, `--scale long`, that the README's ratio table comes from.)

Sampling and feature extraction shard chunks of seeds across torch.distributed ranks (jobs/sharding.py):
    torchrun --nproc_per_node 2 -m seeds.experiments.cli figures
gives the same results as one process. Finished cells are stored as they complete (a restart resumes).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from seeds.experiments.config import (
    DATA_FLOOR_DRAWS,
    EARLIER_SDE_METHODS,
    EDM_CHURN,
    FID_REFERENCE_CACHE,
    LEARNED_SCALES,
    LEARNED_STRONG_LEVELS,
    LEARNED_STRONG_METHODS,
    PLATEAU_TOLERANCE,
    SEEDS_METHODS,
)
from seeds.experiments.jobs.sharding import default_device, init_from_environment, is_main_process, shard_map
from seeds.experiments.metrics.features import data_floor, feature_metric
from seeds.experiments.models.loaders import checkpoint_digest, resolve_checkpoint
from seeds.experiments.problems import LearnedModel
from seeds.experiments.results import CellStore, atomic_write_json, atomic_write_text, provenance
from seeds.experiments.verification.convergence import Cell, method_label, run_cell
from seeds.experiments.verification.learned_quality import LearnedQualityCell, run_learned_quality_cell
from seeds.figures.learned import make_figures

CELL_ROOTS = (
    "seeds.experiments.verification.convergence",
    "seeds.experiments.verification.learned_quality",
    "seeds.experiments.metrics.features",
)


def strong_cells(checkpoint: str, quick: bool = False, sigma_range=(0.002, 80.0)) -> list[Cell]:
    levels, paths = LEARNED_STRONG_LEVELS[quick]
    base = Cell(
        "learned",
        "",
        (),
        "edm",
        levels,
        paths=paths,
        seed=3,
        sigma_min=sigma_range[0],
        sigma_max=sigma_range[1],
        # float32 network (3x faster than float64 here); its rounding (~1e-7 relative per evaluation) is far
        # below the finest level's discretisation error (README: float32 vs float64 at the finest level)
        problem_options=(
            ("checkpoint", checkpoint),
            ("digest", checkpoint_digest(checkpoint)),
            ("dtype", "float32"),
        ),
        fit_levels=len(levels) - 1,
    )
    return [
        replace(base, method=method, options=options, reference=(method, options, 4 * levels[-1]))
        for method, options in LEARNED_STRONG_METHODS
    ]


def quality_cells(
    checkpoint: str, metric: str, samples: int, scale: str = "default", sigma_range=(0.002, 80.0)
) -> list[LearnedQualityCell]:
    grid, methods = LEARNED_SCALES[scale]
    low, high = sigma_range
    digest = checkpoint_digest(checkpoint)
    return [
        LearnedQualityCell(
            method,
            options,
            nfe,
            checkpoint,
            digest,
            samples,
            chunk=min(samples, 256),
            metric=metric,
            sigma_min=low,
            sigma_max=high,
        )
        for method, options in methods
        for nfe in grid
    ]


def plateau_table(quality: list[dict], tolerance: float = PLATEAU_TOLERANCE, among=None) -> dict:
    """The NFE each method (of the labels `among`, all when None) needs to reach the plateau defined in the
    module docstring, and the ratio of each earlier SDE method's NFE to that of the best SEEDS variant (and of
    each SEEDS variant)."""
    curves: dict[str, list] = {}
    for result in quality:
        if among is None or result["label"] in among:
            curves.setdefault(result["label"], []).append(
                (result["cell"]["nfe"], result["nfe"], result["frechet"])
            )
    largest = max(nominal for curve in curves.values() for nominal, _, _ in curve)
    best = min(value for curve in curves.values() for nominal, _, value in curve if nominal == largest)
    threshold = (1 + tolerance) * best
    reached = {}
    for label, curve in curves.items():
        curve.sort()
        needed = None
        for index, (_, nfe, _) in enumerate(curve):
            if all(value <= threshold for _, _, value in curve[index:]):
                needed = nfe
                break
        reached[label] = needed
    seeds_labels = [method_label(m, o) for m, o in SEEDS_METHODS]
    seeds_reached = [reached[label] for label in seeds_labels if reached.get(label) is not None]
    best_seeds = min(seeds_reached) if seeds_reached else None
    ratios = {}
    for method, options in EARLIER_SDE_METHODS:
        label = method_label(method, options)
        if label not in reached:
            continue
        nfe = reached[label]
        ratios[label] = {
            "nfe": nfe,
            "ratio_to_best_seeds": None if nfe is None or best_seeds is None else nfe / best_seeds,
            "ratio_to_each_seeds": {
                s: None if nfe is None or reached.get(s) is None else nfe / reached[s] for s in seeds_labels
            },
        }
    return {
        "tolerance": tolerance,
        "best_at_largest_nfe": best,
        "largest_nfe": largest,
        "threshold": threshold,
        "nfe_to_plateau": reached,
        "best_seeds_nfe": best_seeds,
        "earlier_methods": ratios,
    }


def run(
    results: Path,
    figures: Path,
    checkpoint: str,
    samples: int,
    scale: str,
    metric: str,
    reference_npz: Path | None = None,
    sigma_range: tuple[float, float] = (0.002, 80.0),
) -> int:
    """Run (or resume) every cell of `scale`, write results/learned{suffix}.{json,md} and the figures; the
    long scale's files carry the suffix "_long". Cells are shared between scales through one store."""
    init_from_environment()
    device = default_device()
    store = CellStore(results / "cells", CELL_ROOTS)
    strong = []
    main = is_main_process()
    for cell in tqdm(
        strong_cells(checkpoint, scale == "quick", sigma_range), desc="strong cells", disable=not main
    ):
        # the strong cells are cheap and unsharded: rank 0 runs them, the others wait at the next gather
        if main:
            strong.append(store.load_or_run(cell, run_cell))
    model = LearnedModel(checkpoint, dtype="float32", device=device)
    features, reference, metric_text = feature_metric(
        metric, resolve_checkpoint(checkpoint), device, FID_REFERENCE_CACHE, reference_npz
    )
    quality = []
    cells = quality_cells(checkpoint, metric, samples, scale, sigma_range)
    for cell in tqdm(cells, desc="quality cells", disable=not main):
        result = store.load(cell.key())
        if result is None:
            result = run_learned_quality_cell(
                cell, model, model.image_shape, features, reference, device, shard_map
            )
            if main:
                store.save(cell.key(), result)
        quality.append(result)
    if not main:
        return 0
    floor = data_floor(features, reference, samples, DATA_FLOOR_DRAWS) if metric == "classifier" else None
    suffix = "_long" if scale == "long" else ""
    write_learned_results(results, strong, quality, floor, metric_text, suffix)
    make_figures(results, figures, suffix)
    atomic_write_text(figures / f"learned_table{suffix}.md", (results / f"learned{suffix}.md").read_text())
    return 0


def write_learned_results(
    results: Path, strong: list[dict], quality: list[dict], floor: dict, metric: str, suffix: str = ""
) -> None:
    path_driven = {r["label"] for r in quality if r["cell"]["method"] != EDM_CHURN[0]}
    tables = {
        "all_methods": plateau_table(quality),
        "path_driven_sde": plateau_table(quality, among=path_driven),
    }
    payload = {
        "provenance": provenance(),
        "metric": metric,
        "data_floor": floor,
        "plateau": tables,
        "strong": [{k: v for k, v in r.items() if k not in ("weak",)} for r in strong],
        "quality": [{k: v for k, v in r.items() if k != "images"} for r in quality],
    }
    atomic_write_json(results / f"learned{suffix}.json", payload)
    atomic_write_text(results / f"learned{suffix}.md", learned_report(strong, quality, floor, tables, metric))


def _format_nfe(value):
    return "not reached" if value is None else str(value)


def _plateau_lines(table: dict, among: str) -> list[str]:
    lines = [
        "",
        f"## NFE to reach the plateau of {among}",
        "",
        f"Plateau: Frechet <= {1 + table['tolerance']:.2f} x {table['best_at_largest_nfe']:.4g} = "
        f"{table['threshold']:.4g} (the best value at NFE {table['largest_nfe']}), and staying there.",
        "",
        "| method | NFE to plateau |",
        "|---|---|",
    ]
    lines += [f"| {label} | {_format_nfe(nfe)} |" for label, nfe in table["nfe_to_plateau"].items()]
    lines += [
        "",
        f"Best SEEDS variant reaches it at NFE {_format_nfe(table['best_seeds_nfe'])}.",
        "",
        "| earlier SDE method | NFE | ratio to best SEEDS |",
        "|---|---|---|",
    ]
    for label, row in table["earlier_methods"].items():
        ratio = row["ratio_to_best_seeds"]
        lines.append(f"| {label} | {_format_nfe(row['nfe'])} | {'-' if ratio is None else f'{ratio:.2f}'} |")
    return lines


def learned_report(strong, quality, floor, tables, metric) -> str:
    """The markdown of results/learned{suffix}.md."""
    samples = quality[0]["samples"] if quality else 0
    lines = [
        "# Learned digits model",
        "",
        f"Quality metric: {metric}; {samples} samples per point, 95% bootstrap CI over samples.",
        "No data floor for this metric."
        if floor is None
        else f"Data floor ({floor['samples']} dataset images vs all, {floor['draws']} draws): "
        f"median {floor['median']:.4g} (min {floor['min']:.4g}, max {floor['max']:.4g}).",
        "",
        "## Strong order (errors vs the same method at 4x the finest level, same Brownian path)",
        "",
        "| method | steps fitted | measured slope [95% CI] | predicted strong order |",
        "|---|---|---|---|",
    ]
    for result in strong:
        slope, low, high = result["strong_slope"]
        predicted = (result.get("predicted") or {}).get("strong")
        lines.append(
            f"| {result['label']} | {result['fit_steps']} | {slope:.2f} [{low:.2f}, {high:.2f}] | {predicted} |"
        )
    titles = {
        "all_methods": "all methods",
        "path_driven_sde": "the path-driven SDE methods (all but EDM churn)",
    }
    for name, table in tables.items():
        lines += _plateau_lines(table, titles[name])
    lines += ["", "## Frechet distance by NFE", ""]
    grid = sorted({r["cell"]["nfe"] for r in quality})
    lines += ["| method | " + " | ".join(str(n) for n in grid) + " |", "|---" * (len(grid) + 1) + "|"]
    by_label: dict[str, dict] = {}
    for result in quality:
        by_label.setdefault(result["label"], {})[result["cell"]["nfe"]] = result["frechet"]
    for label, values in by_label.items():
        lines.append(f"| {label} | " + " | ".join(f"{values.get(n, math.nan):.4g}" for n in grid) + " |")
    return "\n".join(lines) + "\n"
