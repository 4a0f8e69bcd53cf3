"""Experiments on a learned score model (issue 5, section 4): `make figures`.

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

Sampling and feature extraction shard chunks of seeds across torch.distributed ranks (experiments/sharding):
    torchrun --nproc_per_node 2 -m seeds.experiments.learned
gives the same results as one process. Finished cells are stored as they complete (a restart resumes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from seeds.experiments.convergence import Cell, _grid, cell_key, method_label, run_cell
from seeds.experiments.results import ROOT, CellStore, atomic_write_json, atomic_write_text, provenance
from seeds.experiments.sharding import init_from_environment, is_main_process, shard_map
from seeds.solvers import make_method, sample
from seeds.solvers.brownian_path import BrownianPath

DEFAULT_CHECKPOINT = "experiments/data/digits_unet"
EDM_CHURN = ("edm-heun", (("s_churn", 40.0), ("s_noise", 1.0), ("s_tmax", 50.0), ("s_tmin", 0.05)))
SEEDS_METHODS = [
    (f"seeds-{order}", (("prediction", prediction),))
    for order in (1, 2, 3)
    for prediction in ("noise", "data", "edm")
]
PATH_BASELINES = [("euler-maruyama", ()), ("ddpm", ()), ("sde-dpm-solver++-2m", ())]
# the earlier SDE methods whose NFE the headline claim compares to SEEDS'
EARLIER_SDE_METHODS = PATH_BASELINES + [EDM_CHURN]
STRONG_METHODS = SEEDS_METHODS + PATH_BASELINES  # EDM churn draws fresh noise: no path, no strong error
QUALITY_METHODS = SEEDS_METHODS + EARLIER_SDE_METHODS
NFE_GRID = (6, 9, 12, 18, 24, 36, 48)
# `--long`: the methods the headline claim compares (DDPM ancestral is SEEDS-1/data, computed as a check),
# on a grid long enough for the SDE methods to converge
LONG_METHODS = [(f"seeds-{order}", (("prediction", "data"),)) for order in (1, 2, 3)] + EARLIER_SDE_METHODS
LONG_NFE_GRID = NFE_GRID + (72, 96, 144, 192, 288)
PLATEAU_TOLERANCE = 0.05
GRID_IMAGES = 36


def resolve(checkpoint: str) -> Path:
    path = Path(checkpoint)
    return path if path.is_absolute() else ROOT / path


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl")


def checkpoint_digest(checkpoint: str) -> str:
    """A hash of the checkpoint's weight files (the classifier's too): stored results of a retrained model
    are not reused, because the digest is part of every cell's key."""
    path = resolve(checkpoint)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in WEIGHT_SUFFIXES)
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(path.parent).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class QualityCell:
    method: str
    options: tuple
    nfe: int
    samples: int = 512
    chunk: int = 256  # the unit of seeds and of sharding: results do not depend on the number of ranks
    seed: int = 0
    checkpoint: str = DEFAULT_CHECKPOINT
    digest: str = ""  # checkpoint_digest(checkpoint)
    metric: str = "classifier"
    grid: str = "edm"
    sigma_min: float = 0.002
    sigma_max: float = 80.0

    @property
    def label(self) -> str:
        return method_label(self.method, self.options)

    def key(self) -> str:
        return cell_key(self)


def chunk_seeds(samples: int, chunk: int, seed: int) -> list[tuple[int, int]]:
    """(seed, size) of every chunk: chunk k draws its start and noise from seeds derived from (seed, k)."""
    if samples % chunk:
        raise ValueError(f"samples ({samples}) must be a multiple of the chunk size ({chunk})")
    return [(seed * 1_000_003 + k, chunk) for k in range(samples // chunk)]


def sample_chunk(model, image_shape, cell: QualityCell, chunk_seed: int, size: int, device):
    """(samples on the CPU, NFE) of one chunk: x ~ sigma_max N(0, I) (EDM's prior) and all noise from one
    Brownian path, both keyed by the chunk's seed. Every method at every NFE sees the same start and the same
    path, so the quality curves differ by discretisation, not by Monte Carlo draws: the path-driven SDE
    methods converge to the same samples as NFE grows (EDM churn, whose fresh noise solves another SDE, to
    other samples of the same law)."""
    solver = make_method(cell.method, **dict(cell.options))
    steps = max(1, cell.nfe // solver.nfe_per_step)
    start = torch.Generator().manual_seed(chunk_seed)
    x = (cell.sigma_max * torch.randn((size, *image_shape), generator=start)).to(device)
    path = BrownianPath(x.double(), cell.sigma_min, cell.sigma_max, seed=chunk_seed)
    result = sample(model, x, _grid(cell, steps), method=cell.method, path=path, **dict(cell.options))
    return result.samples.cpu(), result.nfe


def run_quality_cell(cell: QualityCell, model, image_shape, features, reference, device) -> dict:
    from seeds.experiments.fid import frechet_bootstrap

    def one_chunk(spec):
        samples, nfe = sample_chunk(model, image_shape, cell, *spec, device)
        return samples, features(samples), nfe

    parts = shard_map(one_chunk, chunk_seeds(cell.samples, cell.chunk, cell.seed))
    samples = torch.cat([p[0] for p in parts])
    sample_features = np.concatenate([p[1] for p in parts])
    interval = frechet_bootstrap(sample_features, reference, resamples=200, seed=cell.seed)
    return {
        "cell": asdict(cell),
        "label": cell.label,
        "key": cell.key(),
        "nfe": parts[0][2],
        "frechet": interval["fid"],
        "frechet_ci": [interval["low"], interval["high"]],
        "samples": int(samples.shape[0]),
        "images": samples[:GRID_IMAGES].flatten(1).numpy().round(4).tolist(),
    }


def strong_cells(checkpoint: str, quick: bool = False, sigma_range=(0.002, 80.0)) -> list[Cell]:
    levels = (4, 8, 16) if quick else (8, 16, 32, 64)
    base = Cell(
        "learned",
        "",
        (),
        "edm",
        levels,
        paths=16 if quick else 32,
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
        for method, options in STRONG_METHODS
    ]


SCALES = {  # scale -> (NFE grid, methods) of the quality cells
    "quick": ((6, 12, 24), QUALITY_METHODS),
    "default": (NFE_GRID, QUALITY_METHODS),
    "long": (LONG_NFE_GRID, LONG_METHODS),
}


def quality_cells(
    checkpoint: str, metric: str, samples: int, scale: str = "default", sigma_range=(0.002, 80.0)
) -> list[QualityCell]:
    grid, methods = SCALES[scale]
    chunk = min(samples, 256)
    low, high = sigma_range
    digest = checkpoint_digest(checkpoint)
    return [
        QualityCell(
            method,
            options,
            nfe,
            samples,
            chunk,
            checkpoint=checkpoint,
            digest=digest,
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


def _metric(metric: str, checkpoint: Path, device, reference_npz: Path | None = None, count: int = 10_000):
    """(features, reference statistics, description) for the chosen quality metric.

    classifier: the digit classifier shipped with the checkpoint, reference = all 1797 digits.
    fid: Inception-v3; reference = `reference_npz` (EDM / pytorch-fid format), or the first `count` training
    images of the dataset named in the checkpoint's card, computed once and cached under results/."""
    from seeds.experiments import fid
    from seeds.experiments.training import load_images

    if metric == "classifier":
        from seeds.experiments.classifier import ClassifierFeatures, load_classifier

        features = ClassifierFeatures(load_classifier(checkpoint, device))
        reference = fid.FeatureStatistics.from_features(features(load_images("digits")))
        return features, reference, "Frechet distance in the digit classifier's 64-d features"
    if metric != "fid":
        raise ValueError(f"unknown metric {metric!r}; expected classifier or fid")
    features = fid.InceptionFeatures(device=device)
    if reference_npz is not None:
        return features, fid.FeatureStatistics.load_npz(reference_npz), f"FID against {reference_npz}"
    card = checkpoint / "card.json"
    if not card.exists():
        raise ValueError(f"FID of {checkpoint} needs reference statistics: pass --reference stats.npz")
    dataset = json.loads(card.read_text())["dataset"]
    available = load_images(dataset).shape[0]
    reference = fid.reference_statistics(
        dataset,
        lambda: load_images(dataset),
        features,
        ROOT / "results" / "fid_reference",
        count=min(count, available),
    )
    return features, reference, f"FID against {min(count, available)} {dataset} training images"


def data_floor(features, reference, samples: int, draws: int = 20, seed: int = 0) -> dict:
    """Frechet distance of `samples` dataset images (drawn without replacement) to the full data's statistics:
    what a perfect sampler scores with this many samples."""
    from seeds.experiments.fid import FeatureStatistics
    from seeds.experiments.training import load_images

    images = load_images("digits")
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(draws):
        chosen = images[torch.randperm(images.shape[0], generator=generator)[: min(samples, images.shape[0])]]
        stats = FeatureStatistics.from_features(features(chosen))
        values.append(stats.frechet_distance(reference))
    return {
        "samples": min(samples, int(images.shape[0])),
        "draws": draws,
        "min": min(values),
        "median": float(np.median(values)),
        "max": max(values),
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
    from seeds.experiments.problems import LearnedModel

    init_from_environment()
    from seeds.experiments.sharding import default_device

    device = default_device()
    store = CellStore(results / "cells")
    strong = []
    main = is_main_process()
    for cell in tqdm(
        strong_cells(checkpoint, scale == "quick", sigma_range), desc="strong cells", disable=not main
    ):
        # the strong cells are cheap and unsharded: rank 0 runs them, the others wait at the next gather
        if main:
            strong.append(store.load_or_run(cell, run_cell))
    model = LearnedModel(checkpoint, dtype="float32", device=device)
    features, reference, metric_text = _metric(metric, resolve(checkpoint), device, reference_npz)
    quality = []
    cells = quality_cells(checkpoint, metric, samples, scale, sigma_range)
    for cell in tqdm(cells, desc="quality cells", disable=not main):
        result = store.load(cell.key())
        if result is None:
            result = run_quality_cell(cell, model, model.image_shape, features, reference, device)
            if main:
                store.save(cell.key(), result)
        quality.append(result)
    if not main:
        return 0
    floor = data_floor(features, reference, samples) if metric == "classifier" else None
    suffix = "_long" if scale == "long" else ""
    write_results(results, strong, quality, floor, metric_text, suffix)
    from seeds.figures.learned import make_figures

    make_figures(results, figures, suffix)
    return 0


def write_results(
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
    atomic_write_text(results / f"learned{suffix}.md", markdown(strong, quality, floor, tables, metric))


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


def markdown(strong, quality, floor, tables, metric) -> str:
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="a checkpoint folder or EDM pickle")
    parser.add_argument("--samples", type=int, default=512, help="samples per quality point")
    parser.add_argument("--metric", default="classifier", choices=["classifier", "fid"])
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "learned")
    parser.add_argument("--figures", type=Path, default=ROOT / "figures")
    parser.add_argument(
        "--reference", type=Path, default=None, help="FID reference statistics (mu, sigma .npz)"
    )
    parser.add_argument("--sigma-min", type=float, default=0.002)
    parser.add_argument("--sigma-max", type=float, default=80.0, help="e.g. 80 for EDM, <= 157 for DDPM")
    parser.add_argument(
        "--scale",
        default="default",
        choices=sorted(SCALES),
        help="default: every method, NFE 6-48 (~12 min on 2 cores); long: the headline methods to NFE 288 "
        "(~35 min); quick: a few cells, for tests",
    )
    args = parser.parse_args(argv)
    return run(
        args.results,
        args.figures,
        args.checkpoint,
        args.samples,
        args.scale,
        args.metric,
        args.reference,
        (args.sigma_min, args.sigma_max),
    )


if __name__ == "__main__":
    sys.exit(main())
