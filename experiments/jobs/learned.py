"""`seeds figures` (`make figures`): the learned score model and the paper's headline claim
(docs/learned-models.md).

1. Strong convergence: every path-driven SDE method on nested EDM grids, all levels driven by one Brownian
   path, errors against the same method on a 4x finer grid of the same path (there is no exact solution).
2. The headline comparison, discretisation only: every method of HEADLINE_METHODS at every NFE of the scale's
   grid, on the same starts and Brownian path (experiments/verification/coupled_quality.py), compared with a
   reference solution of the same SDE on those starts and that path (SEEDS-3/data at REFERENCE_FACTOR x the
   largest NFE, checked against ESRA/data). Per cell: the coupled Frechet distance in the quality features
   to the reference, the RMS per-sample difference, the classifier-label histogram's total variation distance,
   and the Frechet distance to the data.
3. NFE to reach the plateau, the rule of config.PLATEAU_FRACTION fixed before the runs, with paired bootstrap
   intervals (experiments/verification/plateau.py), and the ratios of the earlier methods to the best SEEDS
   variant; the same cells and table on the 64-d digits mixture, whose target is its exact law.
4. Model error: the references' own Frechet distances to the data (the SDE's, and the probability-flow ODE's
   that EDM churn approaches), beside the floor a perfect sampler scores with as many samples.

Sampling and feature extraction shard chunks of seeds across torch.distributed ranks (jobs/sharding.py):
    torchrun --nproc_per_node 2 -m seeds.experiments.cli figures
gives the same results as one process. Finished cells are stored as they complete (a restart resumes).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from seeds.experiments.config import (
    BOOTSTRAP_RESAMPLES,
    DATA_FLOOR_DRAWS,
    EARLIER_SDE_METHODS,
    EDM_CHURN,
    ESRA_DATA,
    FID_REFERENCE_CACHE,
    HEADLINE_SCALES,
    LEARNED_STRONG_LEVELS,
    LEARNED_STRONG_METHODS,
    ODE_REFERENCE,
    PLATEAU_FRACTION,
    REFERENCE_FACTOR,
    REFERENCE_MARGIN,
    SDE_CHECK_REFERENCE,
    SDE_REFERENCE,
    SEEDS_METHODS,
)
from seeds.experiments.jobs.sharding import default_device, init_from_environment, is_main_process, shard_map
from seeds.experiments.metrics.features import data_floor, feature_metric
from seeds.experiments.metrics.frechet import FeatureStatistics, frechet_bootstrap
from seeds.experiments.metrics.mixture import exact_sample_floor
from seeds.experiments.models.classifier import load_classifier
from seeds.experiments.models.loaders import checkpoint_digest, resolve_checkpoint
from seeds.experiments.problems import LearnedModel, make_problem
from seeds.experiments.problems.digits import PARAMETERS as DIGITS_MIXTURE
from seeds.experiments.results import CellStore, atomic_write_json, atomic_write_text, provenance
from seeds.experiments.verification.convergence import Cell, run_cell
from seeds.experiments.verification.coupled_quality import CoupledCell, run_coupled_cell
from seeds.experiments.verification.plateau import coupled_frechet, plateau_bootstrap
from seeds.figures.learned import make_figures
from seeds.solvers import make_method

CELL_ROOTS = (
    "seeds.experiments.verification.convergence",
    "seeds.experiments.verification.coupled_quality",
)
SAMPLE_GRID_IMAGES = 36  # the first samples of a cell, drawn in the sample grids


def _label(method: str, options: tuple) -> str:
    return CoupledCell("", (), method, options, 0, 0, 0).label


SEEDS_LABELS = [_label(m, o) for m, o in SEEDS_METHODS]
# the methods whose NFE is divided by the best SEEDS variant's: the earlier SDE methods, then ESRA
COMPARED_LABELS = [_label(m, o) for m, o in EARLIER_SDE_METHODS + [ESRA_DATA]]
CHURN_LABEL = _label(*EDM_CHURN)


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
        # below the finest level's discretisation error (docs: float32 vs float64 at the finest level)
        problem_options=learned_options(checkpoint),
        fit_levels=len(levels) - 1,
    )
    return [
        replace(base, method=method, options=options, reference=(method, options, 4 * levels[-1]))
        for method, options in LEARNED_STRONG_METHODS
    ]


def learned_options(checkpoint: str) -> tuple:
    return (("checkpoint", checkpoint), ("digest", checkpoint_digest(checkpoint)), ("dtype", "float32"))


def steps_for(method: str, options: tuple, nfe: int) -> int:
    return max(1, nfe // make_method(method, **dict(options)).nfe_per_step)


def headline_cells(base: CoupledCell, grid: tuple, methods) -> tuple[list[CoupledCell], dict]:
    """(the methods' cells, each step count once; the references by role) of one problem."""
    cells = [
        replace(base, method=method, options=options, steps=steps)
        for method, options in methods
        for steps in dict.fromkeys(steps_for(method, options, nfe) for nfe in grid)
    ]
    finest = REFERENCE_FACTOR * grid[-1]
    references = {
        role: replace(base, method=method, options=options, steps=steps_for(method, options, finest))
        for role, (method, options) in {
            "sde": SDE_REFERENCE,
            "sde_check": SDE_CHECK_REFERENCE,
            "ode": ODE_REFERENCE,
        }.items()
    }
    return cells, references


def reference_role(label: str) -> str:
    """The reference a method is compared with: the probability-flow ODE for EDM churn (fresh noise), the SDE
    for every path-driven method."""
    return "ode" if label == CHURN_LABEL else "sde"


def headline_table(cells: list[dict], references: dict, target: FeatureStatistics, resamples: int) -> dict:
    """NFE to plateau with the rule of config.PLATEAU_FRACTION. `cells` and `references` hold result dicts
    with a "features" array (per sample, the same sample order everywhere); `target` is the statistics of the
    data (learned model) or of the exact law (mixture)."""
    count = references["sde"]["features"].shape[0]
    everything = np.arange(count)
    reference_of = {c["label"]: reference_role(c["label"]) for c in cells}

    def threshold(indices):
        statistics = FeatureStatistics.from_features(references["sde"]["features"][indices])
        return PLATEAU_FRACTION * statistics.frechet_distance(target)

    limit = threshold(everything)
    # churn's check is its own most accurate cell: fresh noise keeps it away from the ODE reference however
    # many steps it takes, and then its coupled distance cannot resolve its discretisation error
    churn = [c for c in cells if c["label"] == CHURN_LABEL]
    checked = {"sde": references["sde_check"]}
    if churn:
        checked["ode"] = max(churn, key=lambda c: c["nfe"])
    checks = {}
    for role, check in checked.items():
        distance = coupled_frechet(check["features"], references[role]["features"], everything)
        checks[role] = {
            "reference": references[role]["label"],
            "check": f"{check['label']} at {check['nfe']} NFE",
            "distance": distance,
            "limit": limit / REFERENCE_MARGIN,
            "passed": distance <= limit / REFERENCE_MARGIN,
        }
    unresolved = {
        label for label, role in reference_of.items() if not checks.get(role, {"passed": True})["passed"]
    }
    if not checks["sde"]["passed"]:
        unresolved = set(reference_of)  # without an accurate SDE reference nothing is decided
    measured = [c for c in cells if c["label"] not in unresolved]

    def curves(indices):
        out: dict[str, list] = {}
        for cell in measured:
            reference = references[reference_of[cell["label"]]]["features"]
            out.setdefault(cell["label"], []).append(
                (cell["nfe"], coupled_frechet(cell["features"], reference, indices))
            )
        return out

    compared = [label for label in COMPARED_LABELS if label in reference_of and label not in unresolved]
    table = plateau_bootstrap(count, curves, threshold, SEEDS_LABELS, compared, resamples)
    # every method in the cells' order; an unresolved one has no NFE and no interval
    for key in ("nfe_to_plateau", "nfe_ci"):
        table[key] = {label: table[key].get(label) for label in reference_of}
    return {
        **table,
        "reference_checks": checks,
        "unresolved": sorted(unresolved),
        "fraction": PLATEAU_FRACTION,
    }


def cell_measures(cell: dict, references: dict, target: FeatureStatistics) -> dict:
    """The stored measures of one cell against its reference and the target."""
    reference = references[reference_role(cell["label"])]
    everything = np.arange(cell["features"].shape[0])
    difference = cell["draws"].astype(np.float64) - reference["draws"]
    finite = np.isfinite(cell["features"]).all()
    measures = {
        "coupled_frechet": coupled_frechet(cell["features"], reference["features"], everything),
        "rms_difference": float(np.sqrt(np.mean(np.sum(difference**2, axis=1)))),
        "frechet_to_target": FeatureStatistics.from_features(cell["features"]).frechet_distance(target)
        if finite
        else math.inf,
    }
    if "labels" in cell:
        counts = [np.bincount(r["labels"], minlength=10) for r in (cell, reference)]
        measures["label_tv"] = float(0.5 * np.abs(counts[0] - counts[1]).sum() / everything.size)
    return measures


def _run_cells(store, cells, compute, main, description) -> list[dict]:
    out = []
    for cell in tqdm(cells, desc=description, disable=not main):
        result, samples = store.load_or_run_with_array(cell, compute, save=main)
        out.append({**result, "draws": samples})  # the sample array; "samples" is their count
    return out


def _with_features(results, features, classifier, image_shape, device) -> None:
    """Add each result's "features" (NaN where a sample is not finite) and, with a classifier, its labels."""
    for result in results:
        images = torch.from_numpy(np.nan_to_num(result["draws"], posinf=1e30, neginf=-1e30))
        images = images.reshape(-1, *image_shape)
        finite = np.isfinite(result["draws"]).all()
        result["features"] = features(images) if finite else np.full((images.shape[0], 1), math.nan)
        if classifier is not None:
            with torch.no_grad():
                result["labels"] = classifier(images.float().to(device)).argmax(1).cpu().numpy()


def _problem_part(cells, references, target, floor, resamples) -> dict:
    """The headline table, per-cell measures and model error of one problem (results with features)."""
    for result in cells:
        result["measures"] = cell_measures(result, references, target)
    return {
        "model_error": {
            role: frechet_bootstrap(reference["features"], target, resamples, seed=0)
            for role, reference in references.items()
        },
        "floor": floor,
        "references": {role: _stored(r) for role, r in references.items()},
        "headline": headline_table(cells, references, target, resamples),
        "cells": [_stored(r) for r in cells],
    }


def run(
    results: Path,
    figures: Path,
    checkpoint: str,
    samples: int | None,
    scale: str,
    metric: str,
    reference_npz: Path | None = None,
    sigma_range: tuple[float, float] = (0.002, 80.0),
) -> int:
    """Run (or resume) every cell of `scale`; write results/learned{suffix}.{json,md} and the figures (suffix
    "_long" for the long scale, "_quick" for the quick one). Cells are shared between scales through one
    store."""
    init_from_environment()
    device = default_device()
    settings = HEADLINE_SCALES[scale]
    samples = samples or settings.samples
    store = CellStore(results / "cells", CELL_ROOTS, (DIGITS_MIXTURE,))
    main = is_main_process()
    strong = []
    for cell in tqdm(
        strong_cells(checkpoint, scale == "quick", sigma_range), desc="strong cells", disable=not main
    ):
        # the strong cells are cheap and unsharded: rank 0 runs them, the others wait at the next gather
        if main:
            strong.append(store.load_or_run(cell, run_cell))

    low, high = sigma_range
    model = LearnedModel(checkpoint, dtype="float32", device=device)
    mixture = make_problem("digits")
    problems = {
        "learned": (
            model,
            CoupledCell("learned", learned_options(checkpoint), "", (), 0, samples, 0),
            device,
        ),
        # the mixture on CPU: its exact denoiser is cheap
        "mixture": (
            mixture,
            CoupledCell("digits", (), "", (), 0, settings.mixture_samples, 0, seed=1),
            "cpu",
        ),
    }
    sampled = {}
    for name, (problem, base, where) in problems.items():
        base = replace(base, chunk=min(base.samples, settings.chunk), sigma_min=low, sigma_max=high)
        cells, reference_cells = headline_cells(base, settings.grid, settings.methods)

        def compute(cell, problem=problem, where=where):
            return run_coupled_cell(cell, problem, where, shard_map)

        roles = list(reference_cells)
        references = dict(
            zip(roles, _run_cells(store, list(reference_cells.values()), compute, main, f"{name} references"))
        )
        sampled[name] = (_run_cells(store, cells, compute, main, f"{name} cells"), references)
    if not main:
        return 0

    features, data, metric_text = feature_metric(
        metric, resolve_checkpoint(checkpoint), device, FID_REFERENCE_CACHE, reference_npz
    )
    classifier = load_classifier(resolve_checkpoint(checkpoint), device) if metric == "classifier" else None
    learned_cells, learned_references = sampled["learned"]
    _with_features(
        [*learned_references.values(), *learned_cells], features, classifier, model.image_shape, device
    )
    mixture_cells, mixture_references = sampled["mixture"]
    for result in [*mixture_references.values(), *mixture_cells]:
        result["features"] = result["draws"].astype(np.float64)
    exact_law = FeatureStatistics(mixture.marginal_mean(), mixture.marginal_covariance(low))
    floor = data_floor(features, data, samples, DATA_FLOOR_DRAWS) if metric == "classifier" else None
    suffix = {"default": "", "long": "_long", "quick": "_quick"}[scale]
    payload = {
        "provenance": provenance(),
        "metric": metric_text,
        "samples": samples,
        "mixture_samples": settings.mixture_samples,
        "grid": list(settings.grid),
        "image_shape": list(model.image_shape),
        "learned": _problem_part(learned_cells, learned_references, data, floor, BOOTSTRAP_RESAMPLES),
        "mixture": _problem_part(
            mixture_cells,
            mixture_references,
            exact_law,
            exact_sample_floor("digits", settings.mixture_samples, low),
            BOOTSTRAP_RESAMPLES,
        ),
        "strong": [{k: v for k, v in r.items() if k != "weak"} for r in strong],
        "sample_grids": _sample_grids(learned_cells, settings.grid),
    }
    atomic_write_json(results / f"learned{suffix}.json", payload)
    atomic_write_text(results / f"learned{suffix}.md", learned_report(payload))
    make_figures(results, figures, suffix)
    atomic_write_text(figures / f"learned_table{suffix}.md", (results / f"learned{suffix}.md").read_text())
    return 0


def _stored(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("draws", "features", "labels")}


def _sample_grids(learned: list[dict], grid: tuple) -> dict:
    """The first samples of each method at the grid's 12 NFE (where the methods still differ visibly) and its
    largest."""
    chosen = {}
    for nominal in dict.fromkeys((12 if 12 in grid else grid[0], grid[-1])):
        for result in learned:
            if (
                steps_for(result["cell"]["method"], result["cell"]["options"], nominal)
                == result["cell"]["steps"]
            ):
                images = result["draws"][:SAMPLE_GRID_IMAGES].round(4).tolist()
                chosen.setdefault(str(nominal), []).append(
                    {"label": result["label"], "nfe": result["nfe"], "images": images}
                )
    return chosen


def _nfe_text(nfe, interval=None) -> str:
    text = "not reached" if nfe is None else str(nfe)
    if interval is None:
        return text
    low, high = ("beyond the grid" if math.isinf(v) else f"{v:g}" for v in interval)
    return f"{text} [{low}, {high}]"


def _ratio_text(row: dict) -> str:
    """The ratio (or its bounds, when one NFE lies beyond the grid) and its interval."""
    low, high = row["bounds"]
    if low == high:
        point = f"{low:.2f}"
    elif low == 0 and math.isinf(high):
        point = "unbounded"
    else:
        point = f"< {high:.2f}" if low == 0 else f"> {low:.2f}"
    ci_low, ci_high = row["ci"]
    return f"{point} [{ci_low:.2f}, {'inf' if math.isinf(ci_high) else f'{ci_high:.2f}'}]"


def verdict(row: dict, claimed: float = 3.0) -> str:
    """What a ratio's interval says: which solver is faster, and whether the earlier method needs at least
    `claimed` x the NFE of the best SEEDS variant (the paper's 3-5x)."""
    low, high = row["ci"]
    faster = "SEEDS faster" if low > 1 else "SEEDS slower" if high < 1 else "not separated from 1"
    claim = "holds" if low >= claimed else "fails" if high < claimed else "undecided"
    return f"{faster}; {claimed:g}x {claim}"


def headline_lines(table: dict, title: str, rule: str) -> list[str]:
    lines = ["", f"## {title}", "", rule, ""]
    lines += [
        "| method | NFE to plateau [95% CI] | ratio to best SEEDS [95% CI] | resamples: SEEDS faster / slower "
        "| verdict |",
        "|---|---|---|---|---|",
    ]
    for label, nfe in table["nfe_to_plateau"].items():
        interval = table["nfe_ci"].get(label)
        row = table["ratios"].get(label)
        cells = [
            _nfe_text(nfe, interval) if interval is not None else "unresolved (its reference's check failed)"
        ]
        if row:
            cells += [
                _ratio_text(row),
                f"{row['share_faster']:.2f} / {row['share_slower']:.2f}",
                verdict(row),
            ]
        else:
            cells += ["", "", ""]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if table["reference_checks"]["sde"]["passed"]:
        lines += ["", f"Best SEEDS variant: {_nfe_text(table['best_seeds'])} NFE."]
    else:
        lines += ["", "Nothing decided: the SDE reference failed its check."]
    return lines


def _part_lines(part: dict, name: str, target: str) -> list[str]:
    headline = part["headline"]
    lines = [
        "",
        f"## {name}: the references' Frechet distance to {target}",
        "",
        "| reference | method, steps | Frechet distance [95% CI] |",
        "|---|---|---|",
    ]
    for role, error in part["model_error"].items():
        reference = part["references"][role]
        lines.append(
            f"| {role} | {reference['label']}, {reference['cell']['steps']} steps | "
            f"{error['fid']:.4g} [{error['low']:.4g}, {error['high']:.4g}] |"
        )
    lines += ["", "Checks (coupled Frechet distance, at most the threshold / margin):", ""]
    for check in headline["reference_checks"].values():
        verdict_text = "passed" if check["passed"] else "FAILED"
        lines.append(
            f"- {check['check']} vs {check['reference']}: {check['distance']:.4g} "
            f"(limit {check['limit']:.4g}): {verdict_text}"
        )
    low, high = headline["threshold_ci"]
    rule = (
        f"Plateau: coupled Frechet distance to the reference <= {headline['fraction']:g} x the SDE reference's "
        f"distance to {target} = {headline['threshold']:.4g} [{low:.4g}, {high:.4g}], at that NFE and every "
        "larger one of the grid (EDM churn: to the probability-flow ODE reference)."
    )
    lines += headline_lines(headline, f"{name}: NFE to plateau (discretisation only)", rule)
    lines += [
        "",
        f"## {name}, per cell",
        "",
        f"| method | NFE | coupled Frechet to reference | RMS difference per sample | label TV | Frechet to {target} |",
        "|---|---|---|---|---|---|",
    ]
    for result in part["cells"]:
        m = result["measures"]
        tv = f"{m['label_tv']:.3f}" if "label_tv" in m else "-"
        lines.append(
            f"| {result['label']} | {result['nfe']} | {m['coupled_frechet']:.4g} | {m['rms_difference']:.4g} | "
            f"{tv} | {m['frechet_to_target']:.4g} |"
        )
    return lines


def learned_report(payload: dict) -> str:
    """The markdown of results/learned{suffix}.md."""
    floor, mixture_floor = payload["learned"]["floor"], payload["mixture"]["floor"]
    lines = [
        "# The headline claim: NFE to plateau on the learned digits model and the digits mixture",
        "",
        f"Quality features: {payload['metric']} (the mixture: its 64 coordinates); {payload['samples']} samples "
        f"per cell on the learned model, {payload['mixture_samples']} on the mixture; every method on the same "
        f"starts and Brownian path; NFE grid {', '.join(map(str, payload['grid']))}; "
        f"{payload['learned']['headline']['resamples']} paired bootstrap resamples.",
    ]
    if floor is not None:
        lines += [
            "",
            f"Data floor: {floor['samples']} dataset images vs all ({floor['draws']} draws) score median "
            f"{floor['median']:.4g} (min {floor['min']:.4g}, max {floor['max']:.4g}).",
        ]
    lines += [
        "",
        f"Exact-sample floor of the mixture: {payload['mixture_samples']} exact draws score "
        f"{mixture_floor['frechet']:.4g} against the exact law.",
    ]
    lines += _part_lines(payload["learned"], "Learned model", "the data")
    lines += _part_lines(payload["mixture"], "Digits mixture", "the exact law")
    lines += [
        "",
        "## Strong order on the learned model (errors vs the same method at 4x the finest level, same path)",
        "",
        "| method | steps fitted | measured slope [95% CI] | predicted strong order |",
        "|---|---|---|---|",
    ]
    for result in payload["strong"]:
        slope, low, high = result["strong_slope"]
        predicted = (result.get("predicted") or {}).get("strong")
        lines.append(
            f"| {result['label']} | {result['fit_steps']} | {slope:.2f} [{low:.2f}, {high:.2f}] | {predicted} |"
        )
    return "\n".join(lines) + "\n"
