"""The `seeds` command line: one subcommand per job. Each handler imports its job when it runs, so building
the parser (and `--help`) stays light."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seeds.experiments import config

FORMATTER = argparse.ArgumentDefaultsHelpFormatter


def _sample_command(subparsers):
    from seeds.experiments.problems import PROBLEMS
    from seeds.solvers import GRIDS, METHODS

    parser = subparsers.add_parser(
        "sample",
        formatter_class=FORMATTER,
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
    from seeds.solvers import EDM, GRIDS, VE, AdaptiveBrownianPath, BrownianPath, VPCosine, VPLinear, sample

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
        formatter_class=FORMATTER,
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

    from seeds.experiments.verification.exact_linear import scalar_convergence_table
    from seeds.solvers import CHOOSE_PREDICTION, make_method

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


def _convergence_plots_command(subparsers):
    parser = subparsers.add_parser(
        "convergence-plots",
        formatter_class=FORMATTER,
        help="the main job: strong/weak orders and mixture quality, results/ and figures/",
        description="Run (or resume) the main job's cells and write results (JSON, CSV, order table) and "
        "figures (PNG, PDF); docs/results.md describes them.",
    )
    parser.add_argument("--results", type=Path, default=config.RESULTS)
    parser.add_argument("--figures", type=Path, default=config.FIGURES)
    parser.add_argument("--quick", action="store_true", help="a tiny configuration (for tests)")
    parser.set_defaults(run=_run_convergence_plots)


def _run_convergence_plots(args) -> int:
    from seeds.experiments.jobs import convergence_plots

    return convergence_plots.run(args.results, args.figures, args.quick)


def _weak_ring_command(subparsers):
    parser = subparsers.add_parser(
        "weak-ring",
        formatter_class=FORMATTER,
        help="weak orders of every method on the 2-d ring mixture: results/weak_ring.{json,md}",
        description="Run (or resume) the weak order cells on the ring mixture (32768 paths for the SDE "
        "methods) and write results/weak_ring.{json,md}.",
    )
    parser.add_argument("--results", type=Path, default=config.RESULTS)
    parser.set_defaults(run=_run_weak_ring)


def _run_weak_ring(args) -> int:
    from seeds.experiments.jobs import weak_ring

    weak_ring.run(args.results)
    return 0


def _figures_command(subparsers):
    parser = subparsers.add_parser(
        "figures",
        formatter_class=FORMATTER,
        help="the learned-model experiments: strong orders, quality against NFE, sample grids",
        description="Run (or resume) the experiments on a learned score model and write "
        "results/learned/learned{,_long}.{json,md} and the figures; docs/learned-models.md describes them. "
        "Under torchrun (torchrun --nproc_per_node N -m seeds.experiments.cli figures) the sampling is "
        "sharded across ranks with the same results.",
    )
    parser.add_argument(
        "--checkpoint", default=config.DEFAULT_CHECKPOINT, help="a checkpoint folder or EDM pickle"
    )
    parser.add_argument(
        "--samples", type=int, default=config.LEARNED_SAMPLES, help="samples per quality point"
    )
    parser.add_argument("--metric", default="classifier", choices=config.LEARNED_METRICS)
    parser.add_argument("--results", type=Path, default=config.RESULTS / "learned")
    parser.add_argument("--figures", type=Path, default=config.FIGURES)
    parser.add_argument(
        "--reference", type=Path, default=None, help="FID reference statistics (mu, sigma .npz)"
    )
    parser.add_argument("--sigma-min", type=float, default=0.002)
    parser.add_argument("--sigma-max", type=float, default=80.0, help="e.g. 80 for EDM, <= 157 for DDPM")
    parser.add_argument(
        "--scale",
        default="default",
        choices=sorted(config.LEARNED_SCALES),
        help="default: every method, NFE 6-48 (~12 min on 2 cores); long: the headline methods to NFE 288 "
        "(~35 min); quick: a few cells, for tests",
    )
    parser.set_defaults(run=_run_figures)


def _run_figures(args) -> int:
    from seeds.experiments.jobs import learned

    return learned.run(
        args.results,
        args.figures,
        args.checkpoint,
        args.samples,
        args.scale,
        args.metric,
        args.reference,
        (args.sigma_min, args.sigma_max),
    )


def _bench_command(subparsers):
    parser = subparsers.add_parser(
        "bench",
        formatter_class=FORMATTER,
        help="speed and NFE-efficiency, measured in one run: results/bench.{json,md}",
        description="Solver overhead, Brownian noise per query and its peak memory, scaling, and the peers' "
        "quality against NFE (figures/peers_quality); docs/benchmarks.md describes them. Run it on an "
        "otherwise idle machine.",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, default=config.RESULTS)
    parser.add_argument("--figures", type=Path, default=config.FIGURES)
    parser.add_argument("--no-peers", action="store_true", help="speed only: skip the peers' quality runs")
    parser.add_argument("--no-scaling", action="store_true", help="skip the CPU scaling runs")
    parser.add_argument(
        "--device", default="cpu", help="where the solver overhead and query times run: cpu, cuda"
    )
    parser.set_defaults(run=_run_bench)


def _run_bench(args) -> int:
    import torch

    from seeds.experiments.jobs import bench

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no CUDA device")
    print(bench.run(args.results, args.figures, args.repeats, device, not args.no_peers, not args.no_scaling))
    return 0


def _train_command(subparsers):
    defaults = config.TrainConfig()
    parser = subparsers.add_parser(
        "train",
        formatter_class=FORMATTER,
        help="train an EDM-preconditioned UNet denoiser (the committed digits model by default)",
        description="Seeded training of the UNet denoiser; writes model.safetensors, card.json and loss.csv. "
        "Without --out the digits model replaces the committed one (experiments/data/digits_unet) and the "
        "other datasets go to results/<dataset>_unet.",
    )
    parser.add_argument("--dataset", default=defaults.dataset, choices=config.TRAIN_DATASETS)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--base-channels", type=int, default=config.TRAIN_BASE_CHANNELS)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--out", type=Path, default=None)
    parser.set_defaults(run=_run_train)


def _run_train(args) -> int:
    import json

    from seeds.experiments.models.training import train_on

    settings = config.TrainConfig(
        dataset=args.dataset,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        threads=args.threads,
    )
    card = train_on(settings, args.base_channels, args.out)
    print(json.dumps({k: card[k] for k in ("dataset", "parameters", "final_loss_mean_last_100_steps")}))
    return 0


def _train_classifier_command(subparsers):
    parser = subparsers.add_parser(
        "train-classifier",
        formatter_class=FORMATTER,
        help="train the digit classifier whose features measure the learned model's quality",
        description="Train the digit classifier on scikit-learn's digits and save it beside the denoiser.",
    )
    parser.add_argument("--out", type=Path, default=config.DEFAULT_MODEL)
    parser.set_defaults(run=_run_train_classifier)


def _run_train_classifier(args) -> int:
    from seeds.experiments.models.classifier import retrain

    card = retrain(args.out)
    print(f"held-out accuracy {card['held_out_accuracy']:.3f}; saved to {args.out}")
    return 0


def _digits_mixture_command(subparsers):
    parser = subparsers.add_parser(
        "digits-mixture",
        formatter_class=FORMATTER,
        help="refit the 64-d Gaussian mixture of the digits (experiments/data/digits_mixture.npz)",
        description="Refit the digits mixture from scikit-learn's digits and rewrite the committed file.",
    )
    parser.set_defaults(run=_run_digits_mixture)


def _run_digits_mixture(args) -> int:
    from seeds.experiments.problems.digits import refit

    written = refit()
    print(f"wrote {written} ({written.stat().st_size // 1024} KB)")
    return 0


def _coefficients_command(subparsers):
    parser = subparsers.add_parser(
        "coefficients",
        formatter_class=FORMATTER,
        help="regenerate solvers/_coefficients.py from the derivations (needs sympy)",
        description="Regenerate the solvers' generated coefficient module from seeds.analysis.",
    )
    parser.set_defaults(run=_run_coefficients)


def _run_coefficients(args) -> int:
    from seeds.experiments.jobs import coefficients

    return coefficients.run()


COMMANDS = (
    _sample_command,
    _exact_linear_command,
    _convergence_plots_command,
    _weak_ring_command,
    _figures_command,
    _bench_command,
    _train_command,
    _train_classifier_command,
    _digits_mixture_command,
    _coefficients_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seeds",
        formatter_class=FORMATTER,
        description="Numerical analysis and convergence verification of SEEDS exponential SDE solvers.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subparsers)
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
