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
   variant; the same table on the 64-d digits mixture, whose reference is the exact law.
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
    MIXTURE_PLATEAU_TOLERANCE,
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
from seeds.experiments.metrics.mixture import exact_draws
from seeds.experiments.models.classifier import load_classifier
from seeds.experiments.models.loaders import checkpoint_digest, resolve_checkpoint
from seeds.experiments.problems import LearnedModel, make_problem
from seeds.experiments.problems.digits import PARAMETERS as DIGITS_MIXTURE
from seeds.experiments.results import CellStore, atomic_write_json, atomic_write_text, provenance
from seeds.experiments.verification.convergence import Cell, run_cell
from seeds.experiments.verification.coupled_quality import CoupledCell, run_coupled_cell
from seeds.experiments.verification.mixture_quality import MixtureQualityCell, mixture_samples
from seeds.experiments.verification.plateau import coupled_frechet, plateau_bootstrap
from seeds.figures.learned import make_figures
from seeds.solvers import make_method

CELL_ROOTS = (
    "seeds.experiments.verification.convergence",
    "seeds.experiments.verification.coupled_quality",
    "seeds.experiments.verification.mixture_quality",
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
    """(the methods' cells, each step count once; the references by role) of the learned model."""
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
            "churn_check": EDM_CHURN,
        }.items()
    }
    return cells, references


def _statistics(features, indices) -> FeatureStatistics:
    return FeatureStatistics.from_features(features[indices])


def learned_headline(cells: list[dict], references: dict, data: FeatureStatistics, resamples: int) -> dict:
    """The learned model's table. `cells` and `references` hold result dicts with "features", "samples" and
    (classifier metric) "labels" arrays beside the stored fields."""
    count = references["sde"]["features"].shape[0]
    everything = np.arange(count)
    reference_of = {label: "sde" for label in {c["label"] for c in cells}}
    reference_of[CHURN_LABEL] = "ode"

    def threshold(indices):
        return PLATEAU_FRACTION * _statistics(references["sde"]["features"], indices).frechet_distance(data)

    limit = threshold(everything)
    checks = {
        role: {
            "reference": reference,
            "distance": coupled_frechet(
                references[role]["features"], references[reference]["features"], everything
            ),
            "limit": limit / REFERENCE_MARGIN,
        }
        for role, reference in (("sde_check", "sde"), ("churn_check", "ode"))
    }
    for check in checks.values():
        check["passed"] = check["distance"] <= check["limit"]
    check_of = {"sde": "sde_check", "ode": "churn_check"}
    unresolved = {label for label, role in reference_of.items() if not checks[check_of[role]]["passed"]}
    if "sde" in {reference_of[label] for label in unresolved}:
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

    table = plateau_bootstrap(
        count,
        curves,
        threshold,
        SEEDS_LABELS,
        [label for label in COMPARED_LABELS if label in reference_of and label not in unresolved],
        resamples,
    )
    for label in sorted(unresolved):
        table["nfe_to_plateau"][label] = None
        table["nfe_ci"][label] = None
    return {
        **table,
        "reference_checks": checks,
        "unresolved": sorted(unresolved),
        "fraction": PLATEAU_FRACTION,
    }


def cell_measures(cell: dict, references: dict, data: FeatureStatistics) -> dict:
    """The stored measures of one learned cell against its reference."""
    reference = references["ode" if cell["label"] == CHURN_LABEL else "sde"]
    everything = np.arange(cell["features"].shape[0])
    difference = cell["samples"].astype(np.float64) - reference["samples"]
    finite = np.isfinite(cell["features"]).all()
    measures = {
        "coupled_frechet": coupled_frechet(cell["features"], reference["features"], everything),
        "rms_difference": float(np.sqrt(np.mean(np.sum(difference**2, axis=1)))),
        "frechet_to_data": FeatureStatistics.from_features(cell["features"]).frechet_distance(data)
        if finite
        else math.inf,
    }
    if "labels" in cell:
        counts = [np.bincount(r["labels"], minlength=10) for r in (cell, reference)]
        measures["label_tv"] = float(0.5 * np.abs(counts[0] - counts[1]).sum() / everything.size)
    return measures


def mixture_headline(cells: list[dict], draws: np.ndarray, problem, sigma_min, resamples) -> dict:
    """The digits mixture's table: Frechet distance of each cell's samples to the exact law; plateau within
    MIXTURE_PLATEAU_TOLERANCE of the floor (exact draws of as many samples)."""
    exact_mean, exact_covariance = problem.marginal_mean(), problem.marginal_covariance(sigma_min)

    def to_exact(samples, indices):
        chosen = samples[indices].astype(np.float64)
        if not np.isfinite(chosen).all():
            return math.inf
        statistics = FeatureStatistics.from_features(chosen)
        return FeatureStatistics(exact_mean, exact_covariance).frechet_distance(statistics)

    def curves(indices):
        out: dict[str, list] = {}
        for cell in cells:
            out.setdefault(cell["label"], []).append((cell["nfe"], to_exact(cell["samples"], indices)))
        return out

    def threshold(indices):
        return (1 + MIXTURE_PLATEAU_TOLERANCE) * to_exact(draws, indices)

    everything = np.arange(draws.shape[0])
    for cell in cells:
        cell["frechet_to_exact"] = to_exact(cell["samples"], everything)
    table = plateau_bootstrap(draws.shape[0], curves, threshold, SEEDS_LABELS, COMPARED_LABELS, resamples)
    return {**table, "floor": to_exact(draws, everything), "tolerance": MIXTURE_PLATEAU_TOLERANCE}


def mixture_cells(grid: tuple, methods, samples: int) -> list[MixtureQualityCell]:
    """The digits mixture's cells (the main job's kind: shared starts, independent noise per cell, as the
    reference is the exact law), each step count once."""
    return [
        MixtureQualityCell("digits", method, options, nfe, samples=samples, seed=3)
        for method, options in methods
        for nfe in dict.fromkeys(
            steps_for(method, options, n) * make_method(method, **dict(options)).nfe_per_step for n in grid
        )
    ]


def _run_cells(store, cells, compute, main, description) -> list[dict]:
    out = []
    for cell in tqdm(cells, desc=description, disable=not main):
        result, samples = store.load_or_run_with_array(cell, compute, save=main)
        out.append({**result, "label": _label(cell.method, cell.options), "samples": samples})
    return out


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
    learned_base = CoupledCell(
        "learned",
        learned_options(checkpoint),
        "",
        (),
        0,
        samples,
        min(samples, settings.chunk),
        0,
        "edm",
        low,
        high,
    )
    cells, reference_cells = headline_cells(learned_base, settings.grid, settings.methods)
    model = LearnedModel(checkpoint, dtype="float32", device=device)

    def sample_learned(cell):
        return run_coupled_cell(cell, model, device, shard_map)

    references = dict(
        zip(
            reference_cells,
            _run_cells(store, list(reference_cells.values()), sample_learned, main, "references"),
        )
    )
    learned = _run_cells(store, cells, sample_learned, main, "learned cells")
    if not main:
        return 0
    # the mixture's cells are cheap and unsharded, like the strong cells
    mixture = make_problem("digits")

    def sample_mixture(cell):
        identity, mixture_draws = mixture_samples(cell, mixture)
        return identity, mixture_draws.flatten(1).to(torch.float32).numpy()

    mixture_results = _run_cells(
        store,
        mixture_cells(settings.grid, settings.methods, settings.mixture_samples),
        sample_mixture,
        main,
        "mixture cells",
    )

    features, data, metric_text = feature_metric(
        metric, resolve_checkpoint(checkpoint), device, FID_REFERENCE_CACHE, reference_npz
    )
    classifier = load_classifier(resolve_checkpoint(checkpoint), device) if metric == "classifier" else None
    image_shape = model.image_shape
    for result in [*references.values(), *learned]:
        images = torch.from_numpy(np.nan_to_num(result["samples"], posinf=1e30, neginf=-1e30))
        images = images.reshape(-1, *image_shape)
        result["features"] = (
            features(images)
            if np.isfinite(result["samples"]).all()
            else np.full((images.shape[0], 1), math.nan)
        )
        if classifier is not None:
            with torch.no_grad():
                result["labels"] = classifier(images.float().to(device)).argmax(1).cpu().numpy()
    for result in learned:
        result["measures"] = cell_measures(result, references, data)
    floor = data_floor(features, data, samples, DATA_FLOOR_DRAWS) if metric == "classifier" else None
    model_error = {
        role: frechet_bootstrap(references[role]["features"], data, BOOTSTRAP_RESAMPLES, seed=0)
        for role in references
    }
    headline = learned_headline(learned, references, data, BOOTSTRAP_RESAMPLES)
    draws = exact_draws(mixture, settings.mixture_samples, low).flatten(1).numpy()
    mixture_table = mixture_headline(mixture_results, draws, mixture, low, BOOTSTRAP_RESAMPLES)
    suffix = {"default": "", "long": "_long", "quick": "_quick"}[scale]
    payload = {
        "provenance": provenance(),
        "metric": metric_text,
        "samples": samples,
        "mixture_samples": settings.mixture_samples,
        "grid": list(settings.grid),
        "data_floor": floor,
        "model_error": model_error,
        "references": {role: _stored(r) for role, r in references.items()},
        "headline": headline,
        "mixture_headline": mixture_table,
        "strong": [{k: v for k, v in r.items() if k != "weak"} for r in strong],
        "learned": [_stored(r) for r in learned],
        "mixture": [_stored(r) for r in mixture_results],
        "sample_grids": _sample_grids(learned, settings.grid),
    }
    atomic_write_json(results / f"learned{suffix}.json", payload)
    atomic_write_text(results / f"learned{suffix}.md", learned_report(payload))
    make_figures(results, figures, suffix)
    atomic_write_text(figures / f"learned_table{suffix}.md", (results / f"learned{suffix}.md").read_text())
    return 0


def _stored(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("samples", "features", "labels")}


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
                images = result["samples"][:SAMPLE_GRID_IMAGES].round(4).tolist()
                chosen.setdefault(str(nominal), []).append(
                    {"label": result["label"], "nfe": result["nfe"], "images": images}
                )
    return chosen


def _nfe_text(nfe, interval=None) -> str:
    text = "not reached" if nfe is None else str(nfe)
    if interval is None:
        return text
    low, high = ("-" if math.isnan(v) else "not reached" if math.isinf(v) else f"{v:g}" for v in interval)
    return f"{text} [{low}, {high}]"


def _ratio_text(row: dict) -> str:
    def number(value):
        return "undefined" if math.isnan(value) else "inf" if math.isinf(value) else f"{value:.2f}"

    low, high = row["ci"]
    return f"{number(row['ratio'])} [{number(low)}, {number(high)}]"


def verdict(row: dict, claimed: float = 3.0) -> str:
    """What a ratio's interval says about the claim "the earlier method needs >= `claimed` x SEEDS' NFE"."""
    low, high = row["ci"]
    if math.isnan(low):
        return "undecided (no SEEDS variant reaches the plateau in some resamples)"
    faster = "SEEDS faster" if low > 1 else "SEEDS slower" if high < 1 else "not separated from 1"
    claim = "claim holds" if low >= claimed else "claim fails" if high < claimed else "claim undecided"
    return f"{faster}; {claim} (>= {claimed:g}x)"


def headline_lines(table: dict, title: str, rule: str) -> list[str]:
    lines = ["", f"## {title}", "", rule, ""]
    lines += [
        "| method | NFE to plateau [95% CI] | ratio to best SEEDS [95% CI] | share of resamples > 1 | verdict |"
    ]
    lines += ["|---|---|---|---|---|"]
    for label, nfe in table["nfe_to_plateau"].items():
        interval = table["nfe_ci"].get(label)
        row = table["ratios"].get(label)
        cells = [_nfe_text(nfe, interval) if interval is not None else "unresolved (reference check failed)"]
        cells += [_ratio_text(row), f"{row['share_above_1']:.2f}", verdict(row)] if row else ["", "", ""]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"Best SEEDS variant: {_nfe_text(table['best_seeds'])} NFE."]
    return lines


def learned_report(payload: dict) -> str:
    """The markdown of results/learned{suffix}.md."""
    headline, mixture = payload["headline"], payload["mixture_headline"]
    floor = payload["data_floor"]
    lines = [
        "# Learned digits model: the headline claim",
        "",
        f"Quality features: {payload['metric']}; {payload['samples']} samples per cell (digits mixture: "
        f"{payload['mixture_samples']}), all methods on the same starts and Brownian path; NFE grid "
        f"{', '.join(map(str, payload['grid']))}; {headline['resamples']} paired bootstrap resamples.",
        "",
        "## Model error: the references' Frechet distance to the data",
        "",
        "| reference | method, steps | Frechet to data [95% CI] |",
        "|---|---|---|",
    ]
    for role, model_error in payload["model_error"].items():
        cell = payload["references"][role]["cell"]
        lines.append(
            f"| {role} | {payload['references'][role]['label']}, {cell['steps']} steps | "
            f"{model_error['fid']:.4g} [{model_error['low']:.4g}, {model_error['high']:.4g}] |"
        )
    if floor is not None:
        lines += [
            "",
            f"A perfect sampler ({floor['samples']} dataset images vs all, {floor['draws']} draws) scores median "
            f"{floor['median']:.4g} (min {floor['min']:.4g}, max {floor['max']:.4g}).",
        ]
    lines += ["", "Reference checks (coupled Frechet distance, must be <= threshold / margin):", ""]
    for role, check in headline["reference_checks"].items():
        lines.append(
            f"- {role} vs {check['reference']}: {check['distance']:.4g} (limit {check['limit']:.4g}): "
            + ("passed" if check["passed"] else "FAILED")
        )
    low, high = headline["threshold_ci"]
    rule = (
        f"Plateau: coupled Frechet distance to the reference <= {headline['fraction']:g} x the SDE "
        f"reference's distance to the data = {headline['threshold']:.4g} [{low:.4g}, {high:.4g}], at that NFE "
        "and every larger one of the grid. EDM churn is compared with the probability-flow ODE reference."
    )
    lines += headline_lines(headline, "NFE to plateau on the learned model (discretisation only)", rule)
    rule = (
        f"Plateau: Frechet distance to the exact law <= {1 + mixture['tolerance']:g} x the exact-sample floor "
        f"{mixture['floor']:.4g} = {mixture['threshold']:.4g}, at that NFE and every larger one of the grid."
    )
    lines += headline_lines(mixture, "NFE to plateau on the 64-d digits mixture (exact score)", rule)
    lines += [
        "",
        "## Learned model, per cell",
        "",
        "| method | NFE | coupled Frechet to reference | RMS difference per sample | label TV | Frechet to data |",
        "|---|---|---|---|---|---|",
    ]
    for result in payload["learned"]:
        m = result["measures"]
        lines.append(
            f"| {result['label']} | {result['nfe']} | {m['coupled_frechet']:.4g} | {m['rms_difference']:.4g} | "
            f"{m.get('label_tv', math.nan):.3f} | {m['frechet_to_data']:.4g} |"
        )
    lines += [
        "",
        "## Digits mixture, per cell",
        "",
        "| method | NFE | Frechet to the exact law |",
        "|---|---|---|",
    ]
    lines += [f"| {r['label']} | {r['nfe']} | {r['frechet_to_exact']:.4g} |" for r in payload["mixture"]]
    lines += [
        "",
        "## Strong order (errors vs the same method at 4x the finest level, same Brownian path)",
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
