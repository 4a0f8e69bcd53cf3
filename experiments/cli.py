"""The `seeds` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _sample_command(subparsers):
    from seeds.experiments.problems import PROBLEMS
    from seeds.solvers import GRIDS, METHODS

    parser = subparsers.add_parser(
        "sample",
        help="sample a toy problem with any method and write the samples to .npy or .pt",
        description="Sample a named toy problem (exact denoiser) with any method; writes data-coordinate samples.",
    )
    parser.add_argument("--problem", choices=sorted(PROBLEMS), default="gaussian")
    parser.add_argument("--method", choices=sorted(METHODS), default="seeds-3")
    parser.add_argument("--prediction", choices=("noise", "data", "edm"), default="data")
    parser.add_argument("--variant", choices=("phi_1", "phi_2"), default=None, help="SEEDS-2 variant")
    parser.add_argument("--eta", type=float, default=None, help="SEEDS eta in [0, 1] (default 1)")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="edm")
    parser.add_argument("--framework", choices=("edm", "vp-linear", "vp-cosine", "ve"), default="edm")
    parser.add_argument("--sigma-min", type=float, default=0.002, help="EDM framework only")
    parser.add_argument("--sigma-max", type=float, default=80.0, help="EDM framework only")
    parser.add_argument("--count", type=int, default=1000, help="number of samples")
    parser.add_argument("--seed", type=int, default=0, help="sample i uses Brownian path key (seed, i)")
    parser.add_argument("--output", type=Path, required=True, help="file to write: .npy or .pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_sample)


def _run_sample(args) -> int:
    import numpy as np
    import torch

    from seeds.experiments.problems import PROBLEMS
    from seeds.solvers import EDM, GRIDS, VE, VPCosine, VPLinear, sample
    from seeds.solvers.brownian_path import BrownianPath

    if args.output.suffix not in (".npy", ".pt"):
        raise SystemExit(f"--output must end in .npy or .pt, got {args.output}")
    schedule = {
        "edm": EDM(t_min=args.sigma_min, t_max=args.sigma_max),
        "vp-linear": VPLinear(),
        "vp-cosine": VPCosine(),
        "ve": VE(),
    }[args.framework]
    vs = schedule.vs(GRIDS[args.grid](schedule, args.steps))
    problem = PROBLEMS[args.problem]()
    generator = torch.Generator().manual_seed(args.seed)
    x = problem.sample_marginal(args.count, float(vs[0]), generator)
    options = {key: value for key, value in (("variant", args.variant), ("eta", args.eta)) if value is not None}
    path = BrownianPath(x, float(vs[-1]), float(vs[0]), seed=args.seed)
    result = sample(problem, x, vs, method=args.method, prediction=args.prediction, path=path,
                    progress=not args.quiet, **options)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.output.with_name(args.output.name + ".partial")
    if args.output.suffix == ".npy":
        with open(temporary, "wb") as handle:
            np.save(handle, result.samples.numpy())
    else:
        torch.save(result.samples, temporary)
    temporary.replace(args.output)
    print(f"wrote {args.count} samples of {args.problem} ({args.method}, {result.nfe} model evaluations) to {args.output}",
          file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seeds",
        description="Numerical analysis and convergence verification of SEEDS exponential SDE solvers.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _sample_command(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
