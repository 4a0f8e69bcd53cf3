"""`seeds bench` (`make bench`): speed and NFE-efficiency measured in one run, never in timed tests
(docs/benchmarks.md). Writes results/bench.{json,md} and figures/peers_quality.{png,pdf}.

1. Solver overhead: per-step time spent outside the model, per method, as a fraction of one evaluation of the
   default UNet (the committed digits model, batch 256, 8x8, float32 network, float64 solver state). The
   solver runs with a model that returns a stored output (its cost is the driver's checks and conversions,
   which count as overhead); noise from torch's generator (k-diffusion's convention) and, for SEEDS-3 and
   ESRA, from BrownianPath and AdaptiveBrownianPath too.
2. Brownian noise per query for a 20-step sampling pattern (consecutive sigma pairs of an EDM grid) at
   (256, 64) and (256, 784): BrownianPath and AdaptiveBrownianPath as noise samplers, k-diffusion's
   BrownianTreeNoiseSampler (torchsde's BrownianInterval) and torch.randn_like of the same size, timed in
   turn; and the peak live memory of the same 20 queries at (256, 784), each source in a fresh process,
   against the size of x.
3. Scaling: one convergence cell (SEEDS-3/data on Gaussian data, levels 4-32, exact reference) against the
   number of paths and the dimension, and the exact-linear errors (quadrature, no sampling) against the
   number of steps.
4. Peers (experiments/jobs/peers.py): k-diffusion's samplers against ours on the same denoisers in this process,
   Frechet distance against NFE on a 16-d Gaussian, the 64-d digits mixture and the learned digits model;
   our DPM-Solver++(2M) must agree with dpmpp_2m to 1e-10 on each (the run fails otherwise).
Every time is min / median / max over repeats; ratios are of medians measured in the same run.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from seeds.experiments.config import (
    BENCH_BATCH,
    BENCH_SIGMA_MAX,
    BENCH_SIGMA_MIN,
    BENCH_STEPS,
    CUDA_QUERY_SHAPES,
    DEFAULT_MODEL,
    MEMORY_SHAPE,
    OVERHEAD_METHODS,
    OVERHEAD_PATH_METHODS,
    QUERY_SHAPES,
    SAME_METHOD,
    TARGET_RATIO_TO_RANDN_LIKE,
    TARGET_SEEDS_3_OVERHEAD,
    TARGET_SPEEDUP_OVER_TORCHSDE,
)
from seeds.experiments.jobs import peers
from seeds.experiments.models.checkpoints import load_checkpoint
from seeds.experiments.results import atomic_write_json, atomic_write_text, provenance
from seeds.experiments.verification.convergence import Cell, run_cell
from seeds.experiments.verification.exact_linear import linear_errors
from seeds.figures.peers import quality_figure
from seeds.solvers import (
    AdaptiveBrownianPath,
    BrownianPath,
    IndependentPieces,
    make_method,
    noise_levels,
    sample,
)

CPU = torch.device("cpu")
TORCHSDE = "k-diffusion BrownianTreeNoiseSampler (torchsde)"
LEVELS_THEN_RANDN = "randn_like after reading both levels (floor)"
PATH_TYPES = {"BrownianPath": BrownianPath, "AdaptiveBrownianPath": AdaptiveBrownianPath}


def spread(values: list[float]) -> dict:
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "repeats": len(values),
    }


def finish(device: torch.device) -> None:
    """Wait for the device's queued work, so that a timer reads the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_of(action, device=CPU) -> float:
    finish(device)
    start = time.perf_counter()
    action()
    finish(device)
    return time.perf_counter() - start


def timed(action, repeats: int, device=CPU) -> list[float]:
    action()  # warm-up: first calls allocate and build caches
    return [seconds_of(action, device) for _ in range(repeats)]


class StoredOutput(torch.nn.Module):
    """A denoiser that returns one stored output: sampling with it times everything but the network."""

    def __init__(self, output: torch.Tensor):
        super().__init__()
        self.output = output

    def forward(self, x, sigma):
        return self.output


def solver_overhead(denoiser, repeats: int, device=CPU) -> dict:
    x = 80.0 * torch.randn((BENCH_BATCH, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    x, sigma, denoiser = x.to(device), torch.full((BENCH_BATCH,), 1.0, device=device), denoiser.to(device)
    with torch.inference_mode():
        evaluation = spread(timed(lambda: denoiser(x, sigma), repeats, device))
        stored = StoredOutput(denoiser(x, sigma))
    rows = {}
    cases = [(m, o, "torch generator") for m, o in OVERHEAD_METHODS] + [
        (m, o, name) for m, o in OVERHEAD_PATH_METHODS for name in PATH_TYPES
    ]
    sigmas = noise_levels("edm", BENCH_STEPS, BENCH_SIGMA_MIN, BENCH_SIGMA_MAX)
    for method, options, noise in cases:

        def run(method=method, options=options, noise=noise):
            if noise in PATH_TYPES:
                source = PATH_TYPES[noise](x.double(), BENCH_SIGMA_MIN, BENCH_SIGMA_MAX, seed=1)
            else:
                generator = torch.Generator(device=device).manual_seed(1)
                source = IndependentPieces(x.double(), generator=generator)
            sample(stored, x, sigmas, method=method, path=source, **dict(options))

        with torch.inference_mode():
            seconds = spread(timed(run, repeats, device))
        per_step = seconds["median"] / BENCH_STEPS
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
    return {
        "model_evaluation_seconds": evaluation,
        "batch": BENCH_BATCH,
        "steps": BENCH_STEPS,
        "methods": rows,
    }


def query_pairs() -> list[tuple[float, float]]:
    levels = noise_levels("edm", BENCH_STEPS, BENCH_SIGMA_MIN, BENCH_SIGMA_MAX).tolist()
    return list(zip(levels[:-1], levels[1:]))


def levels_then_randn(x):
    """The least that a noise sampler whose answer depends on the noise levels does per query, when k-diffusion
    passes the levels as tensors on x's device: read both (on a GPU a synchronisation and two copies to the
    host) and draw."""

    def sampler(sigma, sigma_next):
        float(sigma), float(sigma_next)
        return torch.randn_like(x)

    return sampler


def noise_samplers() -> dict:
    """name -> make(x): a k-diffusion noise_sampler(sigma, sigma_next) for x (torchsde's only when installed)."""
    makers = {
        name: lambda x, kind=kind: kind(x, BENCH_SIGMA_MIN, BENCH_SIGMA_MAX, seed=3)
        for name, kind in PATH_TYPES.items()
    }
    makers[LEVELS_THEN_RANDN] = levels_then_randn
    try:
        tree = peers.k_diffusion_sampling().BrownianTreeNoiseSampler
        makers[TORCHSDE] = lambda x: tree(
            x,
            torch.tensor(BENCH_SIGMA_MIN, device=x.device),
            torch.tensor(BENCH_SIGMA_MAX, device=x.device),
            seed=3,
        )
    except ModuleNotFoundError as error:
        print(f"skipping the torchsde comparison: {error}", file=sys.stderr)
    return makers


def randn_queries(x, pairs) -> None:
    """What the sources are measured against: one randn_like of x per query."""
    for _ in pairs:
        torch.randn_like(x)


def run_queries(make, x, pairs) -> None:
    """The queries as k-diffusion's samplers make them: noise levels as tensors on x's device."""
    sampler = make(x)
    for sigma, sigma_next in pairs:
        sampler(torch.tensor(sigma, device=x.device), torch.tensor(sigma_next, device=x.device))


def query_actions(x) -> dict:
    """name -> action(): each source (randn_like included) answering the query pattern for x, as every
    measurement runs it."""
    pairs = query_pairs()
    actions = {
        name: (lambda make=make: run_queries(make, x, pairs)) for name, make in noise_samplers().items()
    }
    actions["randn_like"] = lambda: randn_queries(x, pairs)
    return actions


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return 1024 * int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_memory(name: str, shape: tuple) -> int | None:
    """Bytes by which the resident set peaks above its level before `name` answers the query pattern on a
    zero x of `shape` (Linux: the peak is reset through /proc/self/clear_refs first; None where that is not
    possible). Outputs are dropped as they come, as a sampler uses them."""
    x = torch.zeros(shape, dtype=torch.float64)
    torch.randn_like(x[:1])  # the first torch call allocates its own buffers: not the source's
    return peak_during(query_actions(x)[name])


def peak_during(action) -> int | None:
    """Bytes by which the resident set peaks above its level before action() (None where this kernel does not
    let a process reset its peak)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return None
    before = _status_bytes("VmRSS")
    action()
    return _status_bytes("VmHWM") - before


def in_fresh_process(function, *args):
    """function(*args) in a new interpreter whose glibc serves every block over 128 KiB by mmap (a fixed
    threshold: freed tensors leave the resident set, so its peak is the peak of live memory, not of heap
    fragmentation)."""
    context = multiprocessing.get_context("spawn")
    saved = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    os.environ["MALLOC_MMAP_THRESHOLD_"] = str(128 * 1024)
    try:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            return pool.submit(function, *args).result()
    finally:
        if saved is None:
            del os.environ["MALLOC_MMAP_THRESHOLD_"]
        else:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = saved


def time_queries(shape: tuple, repeats: int, device=CPU) -> dict:
    """Seconds per query of every source on a zero x of `shape`, timed in turn within each repeat so that a
    slow spell of the machine hits all of them; ratios of medians, and the targets."""
    x = torch.zeros(shape, dtype=torch.float64, device=device)
    queries = len(query_pairs())
    cases = query_actions(x)
    times = {name: [] for name in cases}
    for action in cases.values():
        action()  # warm-up
    for _ in range(repeats):
        for name, action in cases.items():
            times[name].append(seconds_of(action, device))
    out = {}
    for name, values in times.items():
        seconds = spread(values)
        out[name] = {
            "seconds_per_query": {k: v / queries if k != "repeats" else v for k, v in seconds.items()}
        }
    base = out["randn_like"]["seconds_per_query"]["median"]
    for row in out.values():
        row["ratio_to_randn_like"] = row["seconds_per_query"]["median"] / base
    targets = {}
    if TORCHSDE in out:
        tree = out[TORCHSDE]["seconds_per_query"]["median"]
        for name in PATH_TYPES:
            row = out[name]
            row["speedup_over_torchsde"] = tree / row["seconds_per_query"]["median"]
            targets[name] = {
                f"ratio_to_randn_like <= {TARGET_RATIO_TO_RANDN_LIKE:g}": row["ratio_to_randn_like"]
                <= TARGET_RATIO_TO_RANDN_LIKE,
                f"speedup_over_torchsde >= {TARGET_SPEEDUP_OVER_TORCHSDE:g}": row["speedup_over_torchsde"]
                >= TARGET_SPEEDUP_OVER_TORCHSDE,
            }
    return {"shape": list(shape), "repeats": repeats, "cases": out, "targets": targets}


def device_peak_memory(name: str, shape: tuple, device: torch.device) -> int:
    """Bytes by which the CUDA allocator's allocated memory peaks above its level before `name` answers the
    query pattern on a zero x of `shape` on `device` (the allocator counts exactly: no fresh process needed)."""
    x = torch.zeros(shape, dtype=torch.float64, device=device)
    action = query_actions(x)[name]
    torch.randn_like(x[:1])
    finish(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    action()
    finish(device)
    return torch.cuda.max_memory_allocated(device) - before


def brownian_queries(repeats: int, device=CPU) -> dict:
    """Query times on `device` at each of QUERY_SHAPES (CUDA_QUERY_SHAPES on a GPU; the larger with fewer
    repeats: BrownianPath takes ~2 s a query at 256x784 on the CPU) and peak memory at MEMORY_SHAPE: live
    memory of the process on the CPU and, on a GPU, the device memory too."""
    shapes = CUDA_QUERY_SHAPES if device.type == "cuda" else QUERY_SHAPES
    timings = [
        time_queries(shape, repeats if shape == shapes[0] else max(3, repeats // 3), device)
        for shape in shapes
    ]
    x_bytes = 8 * math.prod(MEMORY_SHAPE)
    memory = {}
    for name in timings[0]["cases"]:
        peak = in_fresh_process(peak_memory, name, MEMORY_SHAPE)
        memory[name] = {
            "peak_memory_bytes": peak,
            "peak_memory_in_x": None if peak is None else peak / x_bytes,
        }
        if device.type == "cuda":
            on_device = device_peak_memory(name, MEMORY_SHAPE, device)
            memory[name].update(
                peak_device_memory_bytes=on_device, peak_device_memory_in_x=on_device / x_bytes
            )
    return {
        "queries_per_run": len(query_pairs()),
        "timings": timings,
        "memory_shape": list(MEMORY_SHAPE),
        "memory": memory,
    }


def scaling(repeats: int) -> dict:
    base = Cell("gaussian", "seeds-3", (("prediction", "data"),), "lambda", (4, 8, 16, 32), paths=256,
                problem_options=(("dim", 1), ("std", 0.3)), fit_levels=3)  # fmt: skip
    rows = []
    for paths, dim in [(64, 1), (256, 1), (1024, 1), (256, 16), (256, 64)]:
        cell = replace(base, paths=paths, problem_options=(("dim", dim), ("std", 0.3)))
        seconds = spread(timed(lambda cell=cell: run_cell(cell), max(1, repeats // 2)))
        rows.append({"kind": "convergence cell", "paths": paths, "dim": dim, "seconds": seconds})
    for steps in (64, 256, 1024):
        sigmas = noise_levels("lambda", steps, 0.002, 80.0)
        seconds = spread(timed(lambda sigmas=sigmas: linear_errors("seeds-3", sigmas), max(1, repeats // 2)))
        rows.append({"kind": "exact-linear errors", "steps": steps, "seconds": seconds})
    return {"rows": rows}


def bench_report(payload: dict) -> str:
    """The markdown of results/bench.md."""
    overhead = payload["solver_overhead"]
    evaluation = overhead["model_evaluation_seconds"]
    lines = [
        "# Benchmarks",
        "",
        f"{payload['machine']['processor'] or payload['machine']['machine']}, {payload['machine']['threads']} "
        f"torch threads, torch {torch.__version__}, device {payload['device']} (solver overhead, query "
        "times and, on a GPU, device memory; process memory, scaling and the peers on the CPU).",
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
    for timing in brownian["timings"]:
        lines += [
            "",
            f"## Brownian noise per query ({brownian['queries_per_run']} consecutive intervals, shape "
            f"{timing['shape']}, {timing['repeats']} repeats)",
            "",
            "| source | ms per query (min / median / max) | x randn_like | x faster than torchsde |",
            "|---|---|---|---|",
        ]
        for name, row in timing["cases"].items():
            s = row["seconds_per_query"]
            speedup = f"{row['speedup_over_torchsde']:.1f}" if "speedup_over_torchsde" in row else ""
            lines.append(
                f"| {name} | {1e3 * s['min']:.3f} / {1e3 * s['median']:.3f} / {1e3 * s['max']:.3f} | "
                f"{row['ratio_to_randn_like']:.2f} | {speedup} |"
            )
        lines += ["", "Targets (met?):", ""]
        lines += [
            f"- {name}: " + ", ".join(f"{target}: {'yes' if met else 'NO'}" for target, met in checks.items())
            for name, checks in timing["targets"].items()
        ]
    on_device = all("peak_device_memory_bytes" in row for row in brownian["memory"].values())
    lines += [
        "",
        f"## Brownian noise: peak memory of the same queries at shape {brownian['memory_shape']}",
        "",
        "| source | peak increase of live CPU memory (MB) | in tensors like x |"
        + (" peak increase of device memory (MB) | in tensors like x |" if on_device else ""),
        "|---|---|---|" + ("---|---|" if on_device else ""),
    ]
    for name, row in brownian["memory"].items():
        if row["peak_memory_bytes"] is None:
            line = f"| {name} | not measurable here (no /proc/self/clear_refs) | |"
        else:
            line = f"| {name} | {row['peak_memory_bytes'] / 2**20:.1f} | {row['peak_memory_in_x']:.1f} |"
        if on_device:
            line += f" {row['peak_device_memory_bytes'] / 2**20:.1f} | {row['peak_device_memory_in_x']:.1f} |"
        lines.append(line)
    if payload.get("scaling"):
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
    if payload.get("peers"):
        lines += [
            "",
            "## Peers: Frechet distance against NFE (figures/peers_quality.png)",
            "",
            "Same Karras sigmas (80 -> 0.002, then 0), denoisers, starts and noise seeds for every sampler; noise "
            "from AdaptiveBrownianPath (heun's churn: torch's generator).",
            "",
            peers.peers_table(payload["peers"]),
        ]
    return "\n".join(lines) + "\n"


def peer_quality(results: Path, figures: Path) -> dict | None:
    """k-diffusion's samplers and ours, quality against NFE (experiments/jobs/peers.py); None without
    k-diffusion."""
    try:
        peers.k_diffusion_sampling()
    except ModuleNotFoundError as error:
        print(f"skipping the peers' quality comparison: {error}", file=sys.stderr)
        return None
    payload = peers.quality_vs_nfe(results / "bench_peers")
    quality_figure(payload, figures, "peers_quality", SAME_METHOD)
    return payload


def run(
    results: Path, figures: Path, repeats: int, device: torch.device, with_peers: bool, with_scaling: bool
) -> str:
    """Measure, write results/bench.{json,md} (and the peers' figure) and return the markdown."""
    described = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)
    payload = {
        "provenance": provenance(),
        "machine": {
            "machine": platform.machine(),
            "processor": platform.processor(),
            "threads": torch.get_num_threads(),
        },
        "device": described,
        "solver_overhead": solver_overhead(load_checkpoint(DEFAULT_MODEL), repeats, device),
        "brownian": brownian_queries(repeats, device),
    }
    if with_scaling:
        payload["scaling"] = scaling(repeats)
    if with_peers:
        payload["peers"] = peer_quality(results, figures)
    report = bench_report(payload)
    atomic_write_json(results / "bench.json", payload)
    atomic_write_text(results / "bench.md", report)
    return report
