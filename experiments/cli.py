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
    parser.add_argument(
        "--noise",
        choices=("tree", "adaptive"),
        default="tree",
        help="tree: BrownianPath, one path whatever --steps (a new time costs ~140 normals per element); "
        "adaptive: AdaptiveBrownianPath, built from this run's times (~1-8 normals per query), a different "
        "path for each grid",
    )
    parser.add_argument("--output", type=Path, required=True, help="file to write: .npy or .pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_sample)


def _run_sample(args) -> int:
    import numpy as np
    import torch

    from seeds.experiments.problems import PROBLEMS
    from seeds.solvers import EDM, GRIDS, VE, VPCosine, VPLinear, sample
    from seeds.solvers.adaptive_path import AdaptiveBrownianPath
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
    options = {
        key: value for key, value in (("variant", args.variant), ("eta", args.eta)) if value is not None
    }
    path_type = {"tree": BrownianPath, "adaptive": AdaptiveBrownianPath}[args.noise]
    path = path_type(x, float(vs[-1]), float(vs[0]), seed=args.seed)
    result = sample(
        problem,
        x,
        vs,
        method=args.method,
        prediction=args.prediction,
        path=path,
        progress=not args.quiet,
        **options,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.output.with_name(args.output.name + ".partial")
    if args.output.suffix == ".npy":
        with open(temporary, "wb") as handle:
            np.save(handle, result.samples.numpy())
    else:
        torch.save(result.samples, temporary)
    temporary.replace(args.output)
    print(
        f"wrote {args.count} samples of {args.problem} ({args.method}, {result.nfe} model evaluations) to {args.output}",
        file=sys.stderr,
    )
    return 0


def _exact_linear_command(subparsers):
    from seeds.solvers import GRIDS, METHODS

    parser = subparsers.add_parser(
        "exact-linear",
        help="exact (Monte-Carlo-free) strong and weak errors of a method on scalar Gaussian data",
        description="Exact errors on data N(0, s^2) in EDM coordinates, from N(0, s^2 + sigma_max^2) at "
        "sigma_max to sigma_min with no final denoising step: strong RMSE against the SDE's exact solution "
        "on the same Brownian path, |Var(x_num) - (s^2 + sigma_min^2)|, KL and W2 of the output law.",
    )
    parser.add_argument("--method", choices=sorted(METHODS), default="seeds-3")
    parser.add_argument(
        "--prediction",
        choices=("noise", "data", "edm"),
        default=None,
        help="model output of the SEEDS methods (default data); other methods have their own",
    )
    parser.add_argument(
        "--variant",
        choices=("phi_1", "phi_2"),
        default=None,
        help="SEEDS-2 variant (default phi_1); the other methods have one form",
    )
    parser.add_argument("--eta", type=float, default=None, help="eta of methods that take one")
    parser.add_argument("--s-churn", type=float, default=None, help="EDM-Heun churn (default 0)")
    parser.add_argument("--data-std", type=float, default=0.5)
    parser.add_argument("--sigma-max", type=float, default=80.0)
    parser.add_argument("--sigma-min", type=float, default=0.002)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="lambda")
    parser.add_argument("--steps", default="8,16,32,64", help="comma-separated step counts")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(run=_run_exact_linear)


def _run_exact_linear(args) -> int:
    import json

    from seeds.experiments.exact_linear import scalar_convergence_table
    from seeds.solvers import make_method
    from seeds.solvers.sampling import CHOOSE_PREDICTION

    try:
        steps = [int(count) for count in args.steps.split(",")]
    except ValueError:
        raise SystemExit(f"--steps must be comma-separated integers, got {args.steps!r}") from None
    variant = args.variant or "phi_1"
    if variant != "phi_1" and args.method != "seeds-2":
        raise SystemExit(f"--variant {variant} applies to seeds-2 only, not {args.method}")
    given = (("eta", args.eta), ("s_churn", args.s_churn))
    options = {name: value for name, value in given if value is not None}
    if args.method == "seeds-2":
        options["variant"] = variant
    prediction = args.prediction or "data"
    if args.method not in CHOOSE_PREDICTION and args.prediction is not None:
        own = make_method(args.method, **options).prediction
        if own != args.prediction:
            raise SystemExit(f"{args.method} uses {own} prediction, not --prediction {args.prediction}")
    try:
        table = scalar_convergence_table(
            args.method,
            steps,
            args.data_std,
            args.sigma_max,
            args.sigma_min,
            args.grid,
            prediction,
            **options,
        )
    except (ValueError, TypeError) as refusal:
        raise SystemExit(f"seeds exact-linear: {refusal}") from None
    if table["strong_not_applicable"] is not None:
        print(f"{args.method}: {table['strong_not_applicable']}", file=sys.stderr)
    if args.json:
        print(json.dumps(table))
        return 0
    print(
        f"{table['method']} ({table['prediction']} prediction"
        + (f", {table['variant']}" if table["variant"] else "")
        + f"), {table['grid']} grid, data N(0, {args.data_std}^2), "
        f"sigma {args.sigma_max} -> {args.sigma_min}"
    )
    print(f"{'steps':>6} {'nfe':>6} {'strong_rmse':>14} {'weak_var_error':>15} {'kl':>12} {'w2':>12}")
    columns = ("steps", "nfe", "strong_rmse", "weak_var_error", "kl", "w2")
    for count, nfe, strong, weak, kl, w2 in zip(*(table[column] for column in columns)):
        strong_text = "not applicable" if strong is None else f"{strong:.6e}"
        print(f"{count:>6} {nfe:>6} {strong_text:>14} {weak:>15.6e} {kl:>12.4e} {w2:>12.4e}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seeds",
        description="Numerical analysis and convergence verification of SEEDS exponential SDE solvers.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _sample_command(subparsers)
    _exact_linear_command(subparsers)
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
