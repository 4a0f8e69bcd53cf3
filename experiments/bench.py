"""`make bench`: speed measured in one run, never in timed tests (issue 6). Writes results/bench.{json,md}.

Implemented so far:
1. Solver overhead: per-step time spent outside the model, per method, as a fraction of one evaluation of the
   default UNet (the committed digits model, batch 256, 8x8, float32 network, float64 solver state). The
   solver runs with a model that returns a stored output (its cost is the driver's checks and conversions,
   which count as overhead); noise from torch's generator (k-diffusion's convention) and, for SEEDS-3, from
   BrownianPath too.
2. Brownian noise per query for a 20-step sampling pattern (consecutive sigma pairs of an EDM grid) at
   (256, 64): BrownianPath as a noise sampler, k-diffusion's BrownianTreeNoiseSampler (torchsde's
   BrownianInterval), and torch.randn_like of the same size. Memory is not measured yet.
3. Scaling: one convergence cell (SEEDS-3/data on Gaussian data, levels 4-32, exact reference) against the
   number of paths and the dimension, and the exact-linear errors (quadrature, no sampling) against the
   number of steps.
Every number is min / median / max over repeats; ratios are of medians measured in the same run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from seeds.experiments.exact_linear import edm_sigmas
from seeds.experiments.learned import EDM_CHURN, PATH_BASELINES, SEEDS_METHODS
from seeds.experiments.results import ROOT, atomic_write_json, atomic_write_text, provenance
from seeds.solvers import make_method, sample
from seeds.solvers.brownian_path import BrownianPath
from seeds.solvers.noise import IndependentPieces

OVERHEAD_METHODS = (
    SEEDS_METHODS + PATH_BASELINES + [EDM_CHURN, ("dpm-solver++-2m", ()), ("dpm-solver++-3", ())]
)
BATCH, STEPS = 256, 20
TARGET_SEEDS_3_OVERHEAD = 0.05


def spread(values: list[float]) -> dict:
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "repeats": len(values),
    }


def timed(action, repeats: int) -> list[float]:
    action()  # warm-up: first calls allocate and build caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


class StoredOutput(torch.nn.Module):
    """A denoiser that returns one stored output: sampling with it times everything but the network."""

    def __init__(self, output: torch.Tensor):
        super().__init__()
        self.output = output

    def forward(self, x, sigma):
        return self.output


def solver_overhead(denoiser, repeats: int) -> dict:
    x = 80.0 * torch.randn((BATCH, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    sigma = torch.full((BATCH,), 1.0)
    with torch.inference_mode():
        evaluation = spread(timed(lambda: denoiser(x, sigma), repeats))
        stored = StoredOutput(denoiser(x, sigma))
    rows = {}
    cases = [(m, o, "torch generator") for m, o in OVERHEAD_METHODS] + [
        ("seeds-3", (("prediction", "data"),), "BrownianPath")
    ]
    sigmas = edm_sigmas("edm", STEPS, 0.002, 80.0)
    for method, options, noise in cases:

        def run(method=method, options=options, noise=noise):
            if noise == "BrownianPath":
                source = BrownianPath(x.double(), 0.002, 80.0, seed=1)
            else:
                source = IndependentPieces(x.double(), generator=torch.Generator().manual_seed(1))
            sample(stored, x, sigmas, method=method, path=source, **dict(options))

        with torch.inference_mode():
            seconds = spread(timed(run, repeats))
        per_step = seconds["median"] / STEPS
        label = method + "".join(f"/{v}" for k, v in options if k == "prediction")
        rows[f"{label} [{noise}]"] = {
            "method": method,
            "options": dict(options),
            "noise": noise,
            "nfe_per_step": make_method(method, **dict(options)).nfe_per_step,
            "run_seconds": seconds,
            "overhead_seconds_per_step": per_step,
            "overhead_fraction": per_step / evaluation["median"],
        }
    return {"model_evaluation_seconds": evaluation, "batch": BATCH, "steps": STEPS, "methods": rows}


def brownian_queries(repeats: int) -> dict:
    x = torch.zeros((BATCH, 64), dtype=torch.float64)
    levels = edm_sigmas("edm", STEPS, 0.002, 80.0).tolist()
    pairs = list(zip(levels[:-1], levels[1:]))

    def ours():
        sampler = BrownianPath(x, 0.002, 80.0, seed=3)
        for sigma, sigma_next in pairs:
            sampler(torch.tensor(sigma), torch.tensor(sigma_next))

    def randn():
        for _ in pairs:
            torch.randn_like(x)

    cases = {"BrownianPath": ours, "randn_like": randn}
    try:
        from seeds.experiments.peers import k_diffusion_sampling

        tree = k_diffusion_sampling().BrownianTreeNoiseSampler

        def torchsde_tree():
            sampler = tree(x, torch.tensor(0.002), torch.tensor(80.0), seed=3)
            for sigma, sigma_next in pairs:
                sampler(torch.tensor(sigma), torch.tensor(sigma_next))

        cases["k-diffusion BrownianTreeNoiseSampler (torchsde)"] = torchsde_tree
    except ModuleNotFoundError as error:
        print(f"skipping the torchsde comparison: {error}", file=sys.stderr)
    out = {}
    for name, action in cases.items():
        seconds = spread(timed(action, repeats))
        out[name] = {
            "seconds_per_query": {k: v / len(pairs) if k != "repeats" else v for k, v in seconds.items()}
        }
    base = out["randn_like"]["seconds_per_query"]["median"]
    for row in out.values():
        row["ratio_to_randn_like"] = row["seconds_per_query"]["median"] / base
    return {"shape": list(x.shape), "queries_per_run": len(pairs), "cases": out}


def scaling(repeats: int) -> dict:
    from dataclasses import replace

    from seeds.experiments.convergence import Cell, run_cell
    from seeds.experiments.exact_linear import linear_errors

    base = Cell("gaussian", "seeds-3", (("prediction", "data"),), "lambda", (4, 8, 16, 32), paths=256,
                problem_options=(("dim", 1), ("std", 0.3)), fit_levels=3)  # fmt: skip
    rows = []
    for paths, dim in [(64, 1), (256, 1), (1024, 1), (256, 16), (256, 64)]:
        cell = replace(base, paths=paths, problem_options=(("dim", dim), ("std", 0.3)))
        seconds = spread(timed(lambda cell=cell: run_cell(cell), max(1, repeats // 2)))
        rows.append({"kind": "convergence cell", "paths": paths, "dim": dim, "seconds": seconds})
    for steps in (64, 256, 1024):
        sigmas = edm_sigmas("lambda", steps, 0.002, 80.0)
        seconds = spread(timed(lambda sigmas=sigmas: linear_errors("seeds-3", sigmas), max(1, repeats // 2)))
        rows.append({"kind": "exact-linear errors", "steps": steps, "seconds": seconds})
    return {"rows": rows}


def markdown(payload: dict) -> str:
    overhead = payload["solver_overhead"]
    evaluation = overhead["model_evaluation_seconds"]
    lines = [
        "# Benchmarks",
        "",
        f"{payload['machine']['processor'] or payload['machine']['machine']}, {payload['machine']['threads']} "
        f"torch threads, torch {torch.__version__}, device cpu.",
        "",
        f"## Solver overhead ({overhead['steps']} steps, batch {overhead['batch']}, 8x8)",
        "",
        f"One model evaluation: median {1e3 * evaluation['median']:.1f} ms (min {1e3 * evaluation['min']:.1f}, "
        f"max {1e3 * evaluation['max']:.1f}). Target: SEEDS-3 overhead <= {TARGET_SEEDS_3_OVERHEAD:.0%}.",
        "",
        "| method [noise] | NFE/step | overhead per step (ms) | overhead_fraction |",
        "|---|---|---|---|",
    ]
    for label, row in overhead["methods"].items():
        lines.append(
            f"| {label} | {row['nfe_per_step']} | {1e3 * row['overhead_seconds_per_step']:.2f} | "
            f"{row['overhead_fraction']:.3f} |"
        )
    brownian = payload["brownian"]
    lines += [
        "",
        f"## Brownian noise per query ({brownian['queries_per_run']} consecutive intervals, shape {brownian['shape']})",
        "",
        "| source | ms per query (min / median / max) | x randn_like |",
        "|---|---|---|",
    ]
    for name, row in brownian["cases"].items():
        s = row["seconds_per_query"]
        lines.append(
            f"| {name} | {1e3 * s['min']:.3f} / {1e3 * s['median']:.3f} / {1e3 * s['max']:.3f} | "
            f"{row['ratio_to_randn_like']:.1f} |"
        )
    lines += [
        "",
        "## Scaling (SEEDS-3/data; seconds, min / median / max)",
        "",
        "| what | size | seconds |",
        "|---|---|---|",
    ]
    for row in payload["scaling"]["rows"]:
        size = f"{row['paths']} paths, dim {row['dim']}" if "paths" in row else f"{row['steps']} steps"
        t = row["seconds"]
        lines.append(f"| {row['kind']} | {size} | {t['min']:.3f} / {t['median']:.3f} / {t['max']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from seeds.experiments.training import load_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    payload = {
        "provenance": provenance(),
        "machine": {
            "machine": platform.machine(),
            "processor": platform.processor(),
            "threads": torch.get_num_threads(),
        },
        "device": "cpu",
        "solver_overhead": solver_overhead(load_checkpoint(), args.repeats),
        "brownian": brownian_queries(args.repeats),
        "scaling": scaling(args.repeats),
    }
    atomic_write_json(args.results / "bench.json", payload)
    atomic_write_text(args.results / "bench.md", markdown(payload))
    print(markdown(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
