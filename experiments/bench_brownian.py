"""Per-query cost of BrownianPath against torch.randn_like of the same size (a plain script, not a test).

    .venv/bin/python -m seeds.experiments.bench_brownian [--threads N] [--repeats R] [--implementation FILE]

Cases, per shape: cold (a new path, one point mid-range: every leaf sum left of it plus one descent), warm
(both points cached), new leaf (the next point one leaf forward: one leaf sum and one descent), same leaf (a
new point in a leaf already summed: one descent), a 20-step SEEDS-3 run with a zero denoiser (its time is
almost all noise), and randn_like. --implementation times another copy of brownian_path.py (e.g. an older
one) under the same conditions. Times are min / median / max over the repeats, in milliseconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time

import numpy as np
import torch

from seeds.solvers import brownian_path
from seeds.solvers.noise import B, M, P
from seeds.solvers.sampling import sample

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0
SHAPES = [(256, 64), (400, 1)]


def load_implementation(file):
    if file is None:
        return brownian_path.BrownianPath
    spec = importlib.util.spec_from_file_location("brownian_path_under_test", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BrownianPath


def seconds(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def cases(path_class, shape, repeats):
    x = torch.zeros(shape, dtype=torch.float64)
    lam_lo, lam_hi = -np.log(SIGMA_MAX), -np.log(SIGMA_MIN)
    middle = 0.5 * (lam_lo + lam_hi) + 0.0123456789
    timings = {}

    timings["cold"] = [
        seconds(lambda: path_class(x, SIGMA_MIN, SIGMA_MAX, seed=1).increment(B, lam_lo, middle))
        for _ in range(repeats)
    ]

    path = path_class(x, SIGMA_MIN, SIGMA_MAX, seed=1)
    for functional in (B, M, P):  # a sampler registers its functionals once; register them outside the timing
        path.increment(functional, lam_lo, middle)
    timings["warm"] = [seconds(lambda: path.increment(B, lam_lo, middle)) for _ in range(repeats)]

    leaf = (lam_hi - lam_lo) / 2**path._leaf_depth
    start = middle + 0.3 * leaf
    path.increment(B, lam_lo, start)
    same_leaf = [start + leaf * 0.5 * (i + 1) / (repeats + 1) for i in range(repeats)]
    timings["same leaf"] = [seconds(lambda t=t: path.increment(B, start, t)) for t in same_leaf]
    new_leaf = [start + leaf * (i + 1) for i in range(repeats)]
    timings["new leaf"] = [seconds(lambda t=t: path.increment(B, lam_lo, t)) for t in new_leaf]

    sigmas = torch.tensor(np.geomspace(SIGMA_MAX, SIGMA_MIN, 21), dtype=torch.float64)

    def seeds_run():
        run_path = path_class(x, SIGMA_MIN, SIGMA_MAX, seed=2)
        sample(
            lambda u, sigma, **_: torch.zeros_like(u), x * SIGMA_MAX, sigmas, method="seeds-3", path=run_path
        )

    timings["SEEDS-3, 20 steps"] = [seconds(seeds_run) for _ in range(max(1, repeats // 3))]
    timings["randn_like"] = [seconds(lambda: torch.randn_like(x)) for _ in range(repeats)]
    return timings


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--implementation", default=None, help="a brownian_path.py file to time instead")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    path_class = load_implementation(args.implementation)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64, {args.repeats} repeats")
    for shape in SHAPES:
        timings = cases(path_class, shape, args.repeats)
        reference = statistics.median(timings["randn_like"])
        print(f"\nbatch {shape[0]} x {shape[1]}: ms min / median / max, median / randn_like median")
        for case, values in timings.items():
            values = [1e3 * v for v in values]
            ratio = statistics.median(values) / (1e3 * reference)
            print(
                f"  {case:<18} {min(values):9.3f} {statistics.median(values):9.3f} {max(values):9.3f}   x{ratio:,.0f}"
            )


if __name__ == "__main__":
    main()
