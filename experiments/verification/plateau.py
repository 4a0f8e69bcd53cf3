"""NFE to reach the quality plateau, with a paired bootstrap over samples (docs/learned-models.md#the-headline-claim).

A curve is a method's distance (to its reference, or to the exact law) at each NFE of its grid. The method
reaches the plateau at the first NFE from which the distance stays at most the threshold at every larger NFE
of the grid; None when it never does. Every distance and the threshold are functions of a set of sample
indices: the point estimate uses all samples, each bootstrap resample one draw of indices with replacement,
the same for every method, NFE and reference (the samples are coupled, so the resampling must be too).
"""

from __future__ import annotations

import math

import numpy as np

from seeds.experiments.metrics.frechet import FeatureStatistics


def first_nfe_staying_within(curve: list[tuple[int, float]], threshold: float) -> int | None:
    """The smallest NFE from which every value (NaN counts as outside) is <= threshold."""
    reached = None
    for nfe, value in sorted(curve, reverse=True):
        if not value <= threshold:
            break
        reached = nfe
    return reached


def coupled_frechet(features, reference, indices) -> float:
    """Frechet distance between the statistics of features[indices] and reference[indices]; infinite when a
    method's samples are not finite."""
    chosen = features[indices]
    if not np.isfinite(chosen).all():
        return math.inf
    return FeatureStatistics.from_features(chosen).frechet_distance(
        FeatureStatistics.from_features(reference[indices])
    )


def ratios(reached: dict, earlier: list[str], seeds: list[str]) -> dict:
    """Each earlier method's NFE over the best SEEDS variant's: inf when the earlier method does not reach the
    plateau (and SEEDS does), NaN when no SEEDS variant reaches it."""
    seeds_nfe = [reached[label] for label in seeds if reached.get(label) is not None]
    best = min(seeds_nfe) if seeds_nfe else None
    out = {}
    for label in earlier:
        nfe = reached.get(label)
        out[label] = math.nan if best is None else (math.inf if nfe is None else nfe / best)
    return out


def _interval(values, level: float) -> list:
    """Percentile interval without interpolation (inf and NaN are values here, not errors): [low, high]."""
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).any():
        return [math.nan, math.nan]
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return [float(low), float(high)]


def plateau_bootstrap(
    count: int,
    curves,
    threshold,
    seeds: list[str],
    earlier: list[str],
    resamples: int,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """NFE to plateau per method and the ratios of the earlier methods to the best SEEDS variant, each with a
    percentile bootstrap interval.

    curves(indices) -> {label: [(nfe, distance)]}; threshold(indices) -> float. A method that does not reach
    the plateau counts as infinitely many NFE in the intervals (the interval's high end is then inf)."""

    def evaluate(indices):
        limit = threshold(indices)
        reached = {label: first_nfe_staying_within(curve, limit) for label, curve in curves(indices).items()}
        return limit, reached, ratios(reached, earlier, seeds)

    limit, reached, ratio = evaluate(np.arange(count))
    generator = np.random.default_rng(seed)
    draws = [evaluate(generator.integers(0, count, count)) for _ in range(resamples)]

    def as_number(nfe):
        return math.inf if nfe is None else float(nfe)

    return {
        "threshold": limit,
        "threshold_ci": _interval([d[0] for d in draws], level),
        "nfe_to_plateau": reached,
        "nfe_ci": {label: _interval([as_number(d[1][label]) for d in draws], level) for label in reached},
        "best_seeds": min((reached[s] for s in seeds if reached.get(s) is not None), default=None),
        "ratios": {
            label: {
                "ratio": ratio[label],
                "ci": _interval([d[2][label] for d in draws], level),
                "share_above_1": float(np.mean([d[2][label] > 1 for d in draws])),
                "share_undefined": float(np.mean([math.isnan(d[2][label]) for d in draws])),
            }
            for label in earlier
        },
        "resamples": resamples,
        "level": level,
    }
