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


def best_of(reached: dict, labels: list[str]) -> int | None:
    """The smallest NFE to plateau among `labels` that reach it; None when none does."""
    return min((reached[label] for label in labels if reached.get(label) is not None), default=None)


def ratio_bounds(reached: dict, largest: dict, earlier: list[str], seeds: list[str]) -> dict:
    """Bounds (low, high) on each earlier method's NFE over the best SEEDS variant's.

    A method that does not reach the plateau needs more than the largest NFE of its grid (`largest[label]`):
    its NFE is censored, not infinite. The best SEEDS variant is the smallest NFE among those reached (one
    that does not reach needs more than every reached one); when none is reached it exceeds the smallest of
    their largest NFEs. Known / known is exact; known / censored is below known / largest; censored / known
    is above largest / known; censored / censored says nothing, (0, inf)."""
    best = best_of(reached, seeds)
    seeds_beyond = min((largest[label] for label in seeds if label in largest), default=None)
    out = {}
    for label in earlier:
        nfe = reached.get(label)
        if seeds_beyond is None:  # no SEEDS variant measured
            out[label] = (0.0, math.inf)
        elif nfe is not None and best is not None:
            out[label] = (nfe / best, nfe / best)
        elif nfe is not None:
            out[label] = (0.0, nfe / seeds_beyond)
        elif best is not None:
            out[label] = (largest[label] / best, math.inf)
        else:
            out[label] = (0.0, math.inf)
    return out


def _interval(values, level: float) -> list:
    """Percentile interval without interpolation (inf is a value here, not an error): [low, high]."""
    low, high = np.quantile(
        np.asarray(values, np.float64), [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf"
    )
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

    curves(indices) -> {label: [(nfe, distance)]}; threshold(indices) -> float. An NFE interval's end is
    inf where the resamples' plateau lies beyond the grid. A ratio's interval runs from the low quantile of
    the resamples' lower bounds to the high quantile of their upper bounds (ratio_bounds), so that censored
    resamples widen it instead of being dropped."""

    def evaluate(indices):
        limit = threshold(indices)
        measured = curves(indices)
        reached = {label: first_nfe_staying_within(curve, limit) for label, curve in measured.items()}
        largest = {label: max(nfe for nfe, _ in curve) for label, curve in measured.items()}
        return limit, reached, ratio_bounds(reached, largest, earlier, seeds)

    limit, reached, bounds = evaluate(np.arange(count))
    generator = np.random.default_rng(seed)
    draws = [evaluate(generator.integers(0, count, count)) for _ in range(resamples)]

    def as_number(nfe):
        return math.inf if nfe is None else float(nfe)

    ratios = {}
    for label in earlier:
        lows = [d[2][label][0] for d in draws]
        highs = [d[2][label][1] for d in draws]
        ratios[label] = {
            "bounds": list(bounds[label]),
            "ci": [_interval(lows, level)[0], _interval(highs, level)[1]],
            "share_faster": float(np.mean([low > 1 for low in lows])),  # SEEDS needs fewer NFE for certain
            "share_slower": float(np.mean([high < 1 for high in highs])),
        }
    return {
        "threshold": limit,
        "threshold_ci": _interval([d[0] for d in draws], level),
        "nfe_to_plateau": reached,
        "nfe_ci": {label: _interval([as_number(d[1][label]) for d in draws], level) for label in reached},
        "best_seeds": best_of(reached, seeds),
        "ratios": ratios,
        "resamples": resamples,
        "level": level,
    }
