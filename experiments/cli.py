"""The `seeds` command line: one subcommand per job. Each handler imports its job when it runs, so building
the parser (and `--help`) stays light.

A user error (a value out of range, an option that does not apply to the chosen method, an output that cannot
be written, a checkpoint that cannot be loaded) ends the command with one line on stderr and exit status 2,
before anything is written; Ctrl-C ends it with one line and status 130, and leaves no partial file (every
output is written atomically). docs/errors.md lists the messages."""

from __future__ import annotations

import argparse
import inspect
import math
import sys
import tempfile
from pathlib import Path

from seeds.experiments import config
from seeds.experiments.models.checkpoints import CheckpointError, DeviceUnavailableError, resolve_device
from seeds.experiments.models.loaders import MissingModulesError
from seeds.solvers import GRIDS, METHODS, GridError, ModelOutputError, make_method
from seeds.solvers.methods import METHOD_TABLE

SAMPLE_SUFFIXES = (".npy", ".pt")
FRAMEWORKS = ("edm", "vp-linear", "vp-cosine", "ve")
NOISE_SOURCES = ("tree", "adaptive")
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command ended by Ctrl-C

# Errors the project raises for bad input (docs/errors.md); a ValueError raised by a check in seeds.solvers
# counts too (see _raised_by_the_solvers). Anything else is a bug and keeps its traceback.
USER_ERRORS = (GridError, ModelOutputError, CheckpointError, MissingModulesError, DeviceUnavailableError)


class UsageError(SystemExit):
    """A user error: exit status 2 with a one-line message, which `main` prints after the command's name."""

    def __init__(self, message: str, command: str | None = None):
        super().__init__(EXIT_USAGE)
        self.message, self.command = message, command

    def __str__(self):
        return self.message


class Parser(argparse.ArgumentParser):
    """argparse prints the whole usage before an error message; here a user error is the one line, and
    `--help` has the rest."""

    def error(self, message):
        raise UsageError(message, self.prog)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option shows its default; an option whose default depends on other options (given as None, so
    that the command can tell whether the user set it) states it in its help as "(default: ...)"."""

    def _get_help_string(self, action):
        if action.required or "(default: " in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


# ------------------------------------------------------------------------------------------- option values


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _positive_integer(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(text: str) -> int:
    value = _integer(text)
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2^63), got {text!r}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _positive_number(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _non_negative_number(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _step_counts(text: str) -> list[int]:
    try:
        return [_positive_integer(count) for count in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 8,16,32, got {text!r}"
        ) from None


# ------------------------------------------------------------------------------------------ shared checks


def _check_noise_range(sigma_min: float, sigma_max: float) -> None:
    if not sigma_min < sigma_max:
        raise UsageError(f"argument --sigma-min: {sigma_min:g} must be below --sigma-max {sigma_max:g}")


def _check_output_file(flag: str, path: Path, suffixes: tuple[str, ...]) -> None:
    """Refuse an output file that could not be written, before any work is done."""
    if path.suffix not in suffixes:
        raise UsageError(f"argument {flag}: {path} must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise UsageError(f"argument {flag}: {path} is a folder")
    if not path.parent.exists():
        raise UsageError(f"argument {flag}: the folder {path.parent} does not exist")
    if not path.parent.is_dir():
        raise UsageError(f"argument {flag}: {path.parent} is a file, not a folder")
    _check_writable(flag, path.parent)


def _check_output_folder(flag: str, folder: Path) -> None:
    """Refuse an output folder that could not be created or written; the job creates the missing part."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"argument {flag}: {existing} is a file, not a folder")
    _check_writable(flag, existing)


def _check_writable(flag: str, folder: Path) -> None:
    # creating a file is the only reliable test: permissions, read-only mounts and ACLs all show up here
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UsageError(f"argument {flag}: cannot write in {folder}: {error.strerror}") from None


def _check_device(flag: str, device: str):
    try:
        return resolve_device(device)
    except DeviceUnavailableError as error:
        raise UsageError(f"argument {flag}: {error}") from None


# --------------------------------------------------------------------------------------- solver options


def _selector_values(option: str) -> list[str]:
    """The values of a row-selecting option (prediction, variant) in the method table."""
    return sorted(
        {value for row in METHOD_TABLE.values() for name, value in row["selected_by"] if name == option}
    )


def _takes(method: str, option: str, value) -> bool:
    """Whether `method` takes a solver option: a row-selecting option (prediction, variant) where the table's
    rows of the method are told apart by it, any other option where make_method accepts it."""
    if _selector_values(option):
        return any(
            option == name for row_id in METHODS[method] for name, _ in METHOD_TABLE[row_id]["selected_by"]
        )
    try:
        make_method(method, **{option: value})
    except TypeError:  # make_method's refusal of an option the method's solver does not have
        return False
    except ValueError:  # the method takes the option but refuses this value: reported with the others
        return True
    return True


def _methods_taking(option: str, value) -> list[str]:
    return sorted(name for name in METHODS if _takes(name, option, value))


def _checked_method(method: str, given: dict[str, tuple[str, object]]):
    """The method object of `method` with the solver options the user gave ({flag: (option, value)}),
    refusing an option that the method does not take and values that it refuses, named by their flags."""
    for flag, (option, value) in given.items():
        if not _takes(method, option, value):
            takers = ", ".join(_methods_taking(option, value))
            raise UsageError(f"argument {flag}: {method} takes no {option}; it applies to {takers}")
    try:
        return make_method(method, **dict(given.values()))
    except ValueError as refusal:
        raise UsageError(f"argument {', '.join(given) or '--method'}: {refusal}") from None


def _given(*pairs: tuple[str, str, object]) -> dict[str, tuple[str, object]]:
    """{flag: (option, value)} of the (flag, option, value) triples whose value the user set (not None)."""
    return {flag: (option, value) for flag, option, value in pairs if value is not None}


def _add_solver_options(parser, eta_help: str) -> None:
    """--method and the options that choose or tune its form, each saying which methods take it."""
    parser.add_argument("--method", choices=sorted(METHODS), default="seeds-3", help="sampling method")
    for flag, option, default, what in (
        ("--prediction", "prediction", "data", "model output the method uses"),
        ("--variant", "variant", "phi_1", "slope weight of the second stage"),
    ):
        takers = ", ".join(_methods_taking(option, default))
        parser.add_argument(
            flag,
            choices=_selector_values(option),
            default=None,
            help=f"{what}; applies to {takers} (default: {default})",
        )
    parser.add_argument("--eta", type=_number, default=None, help=eta_help)


# ------------------------------------------------------------------------------------------------ sample


def _sample_command(subparsers):
    from seeds.experiments.problems import PROBLEMS

    parser = subparsers.add_parser(
        "sample",
        formatter_class=HelpFormatter,
        help="sample a toy problem with any method and write the samples to .npy or .pt",
        description="Sample a named problem (an exact denoiser, or a learned model given by --checkpoint) "
        "with any method; writes data-coordinate samples.",
    )
    parser.add_argument("--problem", choices=sorted(PROBLEMS), default="gaussian", help="what to sample")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="the model of --problem learned: a checkpoint folder, our .safetensors file with card.json "
        "beside it, or an EDM pickle (default: none; required by --problem learned)",
    )
    _add_solver_options(
        parser,
        "eta in [0, 1] (0: the probability-flow ODE, 1: the reverse SDE) of the exponential methods "
        "(default: the method's own, 1 for the SEEDS methods)",
    )
    parser.add_argument("--steps", type=_positive_integer, default=32, help="solver steps")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="edm", help="how the steps are spaced")
    parser.add_argument("--framework", choices=FRAMEWORKS, default="edm", help="noise schedule of the grid")
    parser.add_argument(
        "--sigma-min", type=_positive_number, default=None, help="EDM framework only (default: 0.002)"
    )
    parser.add_argument(
        "--sigma-max", type=_positive_number, default=None, help="EDM framework only (default: 80)"
    )
    parser.add_argument("--count", type=_positive_integer, default=1000, help="number of samples")
    parser.add_argument("--seed", type=_seed, default=0, help="sample i uses Brownian path key (seed, i)")
    parser.add_argument(
        "--noise",
        choices=NOISE_SOURCES,
        default=None,
        help="stochastic runs only. tree: BrownianPath, one path whatever --steps (a new time costs ~140 "
        "normals per element); adaptive: AdaptiveBrownianPath, built from this run's times (~1-8 normals per "
        "query), a different path for each grid (default: tree)",
    )
    parser.add_argument(
        "--output", type=Path, required=True, help="file to write: .npy or .pt, in an existing folder"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_sample)


def _run_sample(args) -> int:
    import io

    import numpy as np
    import torch

    from seeds.experiments.problems import PROBLEMS
    from seeds.experiments.results import atomic_write_bytes
    from seeds.solvers import EDM, VE, AdaptiveBrownianPath, BrownianPath, VPCosine, VPLinear, sample

    _check_output_file("--output", args.output, SAMPLE_SUFFIXES)
    if args.framework != "edm":
        for flag, value in (("--sigma-min", args.sigma_min), ("--sigma-max", args.sigma_max)):
            if value is not None:
                raise UsageError(f"argument {flag}: applies to --framework edm only, not {args.framework}")
    sigma_min = 0.002 if args.sigma_min is None else args.sigma_min
    sigma_max = 80.0 if args.sigma_max is None else args.sigma_max
    _check_noise_range(sigma_min, sigma_max)
    # the problems built from a checkpoint are those whose constructor asks for one
    from_checkpoint = sorted(
        name for name, build in PROBLEMS.items() if "checkpoint" in inspect.signature(build).parameters
    )
    takes_checkpoint = args.problem in from_checkpoint
    if takes_checkpoint and args.checkpoint is None:
        raise UsageError(f"argument --checkpoint: --problem {args.problem} needs a checkpoint")
    if not takes_checkpoint and args.checkpoint is not None:
        raise UsageError(
            f"argument --checkpoint: applies to --problem {' or '.join(from_checkpoint)} only, not {args.problem}"
        )
    given = _given(
        ("--prediction", "prediction", args.prediction),
        ("--variant", "variant", args.variant),
        ("--eta", "eta", args.eta),
    )
    solver = _checked_method(args.method, given)
    if args.noise is not None and not solver.stochastic:
        raise UsageError(
            f"argument --noise: {args.method} draws no noise here (a stochastic method or eta > 0 does)"
        )

    schedule = {
        "edm": EDM(t_min=sigma_min, t_max=sigma_max),
        "vp-linear": VPLinear(),
        "vp-cosine": VPCosine(),
        "ve": VE(),
    }[args.framework]
    vs = schedule.vs(GRIDS[args.grid](schedule, args.steps))
    if takes_checkpoint:
        try:
            problem = PROBLEMS[args.problem](str(args.checkpoint.resolve()))
        except (CheckpointError, MissingModulesError) as error:
            raise UsageError(f"argument --checkpoint: {error}") from None
    else:
        problem = PROBLEMS[args.problem]()
    generator = torch.Generator().manual_seed(args.seed)
    x = problem.sample_marginal(args.count, float(vs[0]), generator)
    path = None
    if solver.stochastic:
        path_type = {"tree": BrownianPath, "adaptive": AdaptiveBrownianPath}[args.noise or "tree"]
        path = path_type(x, float(vs[-1]), float(vs[0]), seed=args.seed)
    options = {option: value for option, value in given.values()}
    result = sample(
        problem,
        x,
        vs,
        method=args.method,
        prediction=options.pop("prediction", "data"),
        path=path,
        progress=not args.quiet,
        **options,
    )
    buffer = io.BytesIO()
    if args.output.suffix == ".npy":
        np.save(buffer, result.samples.numpy())
    else:
        torch.save(result.samples, buffer)
    atomic_write_bytes(args.output, buffer.getvalue())
    print(
        f"wrote {args.count} samples of {args.problem} ({args.method}, {result.nfe} model evaluations) to {args.output}",
        file=sys.stderr,
    )
    return 0


# ------------------------------------------------------------------------------------------ exact-linear


def _exact_linear_command(subparsers):
    parser = subparsers.add_parser(
        "exact-linear",
        formatter_class=HelpFormatter,
        help="exact (Monte-Carlo-free) strong and weak errors of a method on scalar Gaussian data",
        description="Exact errors on data N(0, s^2) in EDM coordinates, from N(0, s^2 + sigma_max^2) at "
        "sigma_max to sigma_min with no final denoising step: strong RMSE against the SDE's exact solution "
        "on the same Brownian path, |Var(x_num) - (s^2 + sigma_min^2)|, KL and W2 of the output law.",
    )
    _add_exact_run_options(parser)
    parser.add_argument("--data-std", type=_positive_number, default=0.5, help="s, the data's std")
    parser.set_defaults(run=_run_exact_linear)


def _exact_run_method(args):
    """The checked method object of an exact command and its solver options, the variant it runs named
    (the default one included) so that the result names it."""
    _check_noise_range(args.sigma_min, args.sigma_max)
    given = _given(
        ("--prediction", "prediction", args.prediction),
        ("--variant", "variant", args.variant),
        ("--eta", "eta", args.eta),
        ("--s-churn", "s_churn", args.s_churn),
    )
    solver = _checked_method(args.method, given)
    options = {option: value for option, value in given.values()}
    variant = dict(METHOD_TABLE[solver.id]["selected_by"]).get("variant")
    if variant is not None:
        options["variant"] = variant
    return solver, options


def _add_exact_run_options(parser) -> None:
    """The options of the exact (quadrature) commands: the method and its options, the noise range, the
    grid, the step counts and --json."""
    _add_solver_options(
        parser,
        "eta in [0, 1] of the exponential methods (default: the method's own, 1 for the SEEDS methods)",
    )
    parser.add_argument(
        "--s-churn",
        type=_non_negative_number,
        default=None,
        help=f"churn of Karras et al.; applies to {', '.join(_methods_taking('s_churn', 0.0))} (default: 0)",
    )
    parser.add_argument("--sigma-max", type=_positive_number, default=80.0, help="largest noise level")
    parser.add_argument("--sigma-min", type=_positive_number, default=0.002, help="smallest noise level")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="lambda", help="how the steps are spaced")
    parser.add_argument(
        "--steps", type=_step_counts, default="8,16,32,64", help="comma-separated step counts"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _run_exact_linear(args) -> int:
    import json

    from seeds.experiments.verification.exact_linear import scalar_convergence_table

    solver, options = _exact_run_method(args)
    options.pop("prediction", None)
    table = scalar_convergence_table(
        args.method,
        args.steps,
        args.data_std,
        args.sigma_max,
        args.sigma_min,
        args.grid,
        args.prediction or "data",
        **options,
    )
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


# ------------------------------------------------------------------------------------------- exact-weak


def _exact_weak_command(subparsers):
    from seeds.experiments.problems.lines import LINE_PROBLEMS

    parser = subparsers.add_parser(
        "exact-weak",
        formatter_class=HelpFormatter,
        help="exact (Monte-Carlo-free) weak errors of a method on nonlinear 1-d problems",
        description="Exact weak errors on a 1-d problem with a nonlinear exact denoiser, in EDM coordinates, "
        "from the exact marginal at sigma_max to sigma_min with no final denoising step: the law of the "
        "method's output carried step by step by quadrature (docs/exact-weak.md), against the data law "
        "convolved with N(0, sigma_min^2). Prints E g(X_N) - E g(X) for g = x, x^2, x^3, tanh, cos, the L1 "
        "distance of the densities smoothed by N(0, 0.05^2), and the weak orders fitted to them. "
        "One-step methods only: a multistep method's chain is not Markov in x alone.",
    )
    _add_exact_run_options(parser)
    parser.add_argument(
        "--problem", choices=sorted(LINE_PROBLEMS), default="overlapping", help="the 1-d data law"
    )
    parser.add_argument(
        "--nodes",
        type=_positive_integer,
        default=None,
        help="grid nodes that hold the law (default: the problem's, 801 or 2401; docs/exact-weak.md)",
    )
    parser.set_defaults(run=_run_exact_weak)


def _run_exact_weak(args) -> int:
    import json

    from seeds.experiments.verification.exact_weak import TEST_FUNCTIONS, Resolution, exact_weak_table

    if args.nodes is not None and args.nodes < 64:
        raise UsageError(f"argument --nodes: at least 64 grid nodes are needed, got {args.nodes}")
    solver, options = _exact_run_method(args)
    if getattr(solver, "multistep", False):
        raise UsageError(
            f"argument --method: {args.method} is a multistep method; its chain is Markov in (x_k, x_(k-1)), "
            "not in x_k, so exact-weak does not propagate its law"
        )
    table = exact_weak_table(
        args.method,
        args.problem,
        args.steps,
        args.grid,
        args.sigma_min,
        args.sigma_max,
        None if args.nodes is None else Resolution(nodes=args.nodes),
        **options,
    )
    if args.json:
        print(json.dumps(table))
        return 0
    predicted = table["predicted"]
    print(
        f"{table['id']} on {table['problem']}, {table['grid']} grid, sigma {args.sigma_max} -> {args.sigma_min}; "
        f"predicted weak order {predicted['weak'] if predicted else 'none'}"
    )
    names = list(TEST_FUNCTIONS)
    print(f"{'steps':>6} {'nfe':>6} {'l1':>11} " + " ".join(f"{name:>11}" for name in names))
    for i, count in enumerate(table["steps"]):
        values = " ".join(f"{table['errors'][name][i]:>11.3e}" for name in names)
        print(f"{count:>6} {table['nfe'][i]:>6} {table['l1'][i]:>11.3e} {values}")

    def shown(order):
        return "-" if order is None else f"{order:.2f}"

    print(
        f"{'order':>13} {shown(table['order']):>11} "
        + " ".join(f"{shown(table['orders'][name]):>11}" for name in names)
    )
    return 0


# ------------------------------------------------------------------------------------------------- jobs


def _convergence_plots_command(subparsers):
    parser = subparsers.add_parser(
        "convergence-plots",
        formatter_class=HelpFormatter,
        help="the main job: strong/weak orders and mixture quality, results/ and figures/",
        description="Run (or resume) the main job's cells and write results (JSON, CSV, order table) and "
        "figures (PNG, PDF); docs/results.md describes them.",
    )
    parser.add_argument("--results", type=Path, default=config.RESULTS, help="folder of the result files")
    parser.add_argument("--figures", type=Path, default=config.FIGURES, help="folder of the figures")
    parser.add_argument("--quick", action="store_true", help="a tiny configuration (for tests)")
    parser.set_defaults(run=_run_convergence_plots)


def _run_convergence_plots(args) -> int:
    from seeds.experiments.jobs import convergence_plots

    _check_output_folder("--results", args.results)
    _check_output_folder("--figures", args.figures)
    return convergence_plots.run(args.results, args.figures, args.quick)


def _weak_ring_command(subparsers):
    parser = subparsers.add_parser(
        "weak-ring",
        formatter_class=HelpFormatter,
        help="weak orders of every method on the 2-d ring mixture: results/weak_ring.{json,md}",
        description="Run (or resume) the weak order cells on the ring mixture (32768 paths for the SDE "
        "methods) and write results/weak_ring.{json,md}.",
    )
    parser.add_argument("--results", type=Path, default=config.RESULTS, help="folder of the result files")
    parser.set_defaults(run=_run_weak_ring)


def _run_weak_ring(args) -> int:
    from seeds.experiments.jobs import weak_ring

    _check_output_folder("--results", args.results)
    weak_ring.run(args.results)
    return 0


def _exact_weak_table_command(subparsers):
    parser = subparsers.add_parser(
        "exact-weak-table",
        formatter_class=HelpFormatter,
        help="exact weak orders of every one-step method on the 1-d problems: results/exact_weak.{json,md}",
        description="Run (or resume) the exact-weak cells (every one-step method, the three 1-d problems, "
        "lambda and EDM grids, 4 to 1024 steps, the refinement checks and the planted mistake) and write "
        "results/exact_weak.{json,md} and figures/exact_weak.{png,pdf}. About 70 minutes on 2 cores.",
    )
    parser.add_argument("--results", type=Path, default=config.RESULTS, help="folder of the result files")
    parser.add_argument("--figures", type=Path, default=config.FIGURES, help="folder of the figures")
    parser.add_argument(
        "--workers", type=_positive_integer, default=None, help="processes (default: one per core)"
    )
    parser.set_defaults(run=_run_exact_weak_table)


def _run_exact_weak_table(args) -> int:
    from seeds.experiments.jobs import exact_weak

    _check_output_folder("--results", args.results)
    _check_output_folder("--figures", args.figures)
    exact_weak.run(args.results, args.figures, args.workers)
    return 0


def _figures_command(subparsers):
    parser = subparsers.add_parser(
        "figures",
        formatter_class=HelpFormatter,
        help="the learned-model experiments: strong orders, the headline NFE-to-plateau table, sample grids",
        description="Run (or resume) the experiments on a learned score model and the digits mixture and "
        "write results/learned/learned{,_long,_quick}.{json,md} and the figures; docs/learned-models.md "
        "describes them. "
        "Under torchrun (torchrun --nproc_per_node N -m seeds.experiments.cli figures) the sampling is "
        "sharded across ranks with the same results.",
    )
    parser.add_argument(
        "--checkpoint",
        default=config.DEFAULT_CHECKPOINT,
        help="a checkpoint folder or EDM pickle; a relative path starts at the project's root",
    )
    parser.add_argument(
        "--samples",
        type=_positive_integer,
        default=None,
        help="samples of the learned model per cell: 2 to 256, or a multiple of 256 (default: the scale's, "
        "256 for the default scale, 512 for the long one)",
    )
    parser.add_argument(
        "--metric", default="classifier", choices=config.LEARNED_METRICS, help="sample quality measure"
    )
    parser.add_argument(
        "--results", type=Path, default=config.RESULTS / "learned", help="folder of the result files"
    )
    parser.add_argument("--figures", type=Path, default=config.FIGURES, help="folder of the figures")
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="FID reference statistics (mu, sigma .npz) of --metric fid (default: computed from the training "
        "images the checkpoint's card.json names, cached under results/fid_reference)",
    )
    parser.add_argument("--sigma-min", type=_positive_number, default=0.002, help="smallest noise level")
    parser.add_argument(
        "--sigma-max", type=_positive_number, default=80.0, help="e.g. 80 for EDM, <= 157 for DDPM"
    )
    parser.add_argument(
        "--scale",
        default="default",
        choices=sorted(config.HEADLINE_SCALES),
        help="default: every method at NFE 6-96, 256 samples (~18 min on 2 cores); long: NFE 6-192, 512 "
        "samples (about 1 h); quick: a few cells, for tests",
    )
    parser.set_defaults(run=_run_figures)


def _run_figures(args) -> int:
    from seeds.experiments.jobs import learned
    from seeds.experiments.models.loaders import resolve_checkpoint

    checkpoint = resolve_checkpoint(args.checkpoint)
    if not checkpoint.exists():
        raise UsageError(f"argument --checkpoint: {checkpoint} does not exist")
    if args.reference is not None:
        if args.metric != "fid":
            raise UsageError(f"argument --reference: applies to --metric fid only, not {args.metric}")
        if not args.reference.is_file():
            raise UsageError(f"argument --reference: {args.reference} is not a file")
    elif args.metric == "fid" and not (checkpoint / "card.json").is_file():
        raise UsageError(
            f"argument --reference: --metric fid needs it for {checkpoint}, which has no card.json naming "
            "its training images"
        )
    chunk = config.HEADLINE_SCALES[args.scale].chunk
    if args.samples is not None and (args.samples < 2 or (args.samples > chunk and args.samples % chunk)):
        raise UsageError(
            f"argument --samples: {args.samples} must be 2 to {chunk} or a multiple of {chunk} (the chunk of seeds)"
        )
    _check_noise_range(args.sigma_min, args.sigma_max)
    _check_output_folder("--results", args.results)
    _check_output_folder("--figures", args.figures)
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
        formatter_class=HelpFormatter,
        help="speed and NFE-efficiency, measured in one run: results/bench.{json,md}",
        description="Solver overhead, Brownian noise per query and its peak memory, scaling, and the peers' "
        "quality against NFE (figures/peers_quality); docs/benchmarks.md describes them. Run it on an "
        "otherwise idle machine.",
    )
    parser.add_argument("--repeats", type=_positive_integer, default=5, help="timings per measurement")
    parser.add_argument("--results", type=Path, default=config.RESULTS, help="folder of the result files")
    parser.add_argument("--figures", type=Path, default=config.FIGURES, help="folder of the figures")
    parser.add_argument("--no-peers", action="store_true", help="speed only: skip the peers' quality runs")
    parser.add_argument("--no-scaling", action="store_true", help="skip the CPU scaling runs")
    parser.add_argument(
        "--device", default="cpu", help="where the solver overhead and query times run: cpu, cuda"
    )
    parser.set_defaults(run=_run_bench)


def _run_bench(args) -> int:
    from seeds.experiments.jobs import bench

    device = _check_device("--device", args.device)
    _check_output_folder("--results", args.results)
    _check_output_folder("--figures", args.figures)
    print(bench.run(args.results, args.figures, args.repeats, device, not args.no_peers, not args.no_scaling))
    return 0


def _esra_quality_command(subparsers):
    parser = subparsers.add_parser(
        "esra-quality",
        formatter_class=HelpFormatter,
        help="ESRA against SEEDS-3 and k-diffusion's SDE samplers, quality against NFE: results/esra_quality.*",
        description="Sample quality against NFE from 7 to 193 of ESRA, SEEDS-3 and k-diffusion's SDE samplers "
        "on the 16-d Gaussian, the digits mixture and the committed digits UNet, with 95% bootstrap intervals; "
        "writes results/esra_quality.{json,md} and figures/esra_quality.{png,pdf} (docs/esra.md). Needs the "
        "peers (make peers). About an hour on 2 cores shared with another job (measured); finished cells are kept.",
    )
    parser.add_argument("--results", type=Path, default=config.RESULTS, help="folder of the result files")
    parser.add_argument("--figures", type=Path, default=config.FIGURES, help="folder of the figures")
    parser.set_defaults(run=_run_esra_quality)


def _run_esra_quality(args) -> int:
    from seeds.experiments.jobs import esra_quality

    _check_output_folder("--results", args.results)
    _check_output_folder("--figures", args.figures)
    print(esra_quality.run(args.results, args.figures))
    return 0


def _train_command(subparsers):
    from seeds.experiments.models.unet import UNetConfig

    defaults = config.TrainConfig()
    parser = subparsers.add_parser(
        "train",
        formatter_class=HelpFormatter,
        help="train an EDM-preconditioned UNet denoiser (the committed digits model by default)",
        description="Seeded training of the UNet denoiser; writes model.safetensors, card.json and loss.csv. "
        "Without --out the digits model replaces the committed one (experiments/data/digits_unet) and the "
        "other datasets go to results/<dataset>_unet.",
    )
    parser.add_argument(
        "--dataset", default=defaults.dataset, choices=config.TRAIN_DATASETS, help="training images"
    )
    parser.add_argument("--steps", type=_positive_integer, default=defaults.steps, help="optimiser steps")
    parser.add_argument(
        "--batch-size", type=_positive_integer, default=defaults.batch_size, help="images per step"
    )
    parser.add_argument(
        "--base-channels",
        type=_positive_integer,
        default=config.TRAIN_BASE_CHANNELS,
        help=f"a multiple of the UNet's {UNetConfig().groups} normalisation groups",
    )
    parser.add_argument("--seed", type=_seed, default=defaults.seed, help="seeds initialisation and batches")
    parser.add_argument(
        "--threads", type=_positive_integer, default=defaults.threads, help="torch CPU threads"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: experiments/data/digits_unet for digits, results/<dataset>_unet for "
        "the others)",
    )
    parser.set_defaults(run=_run_train)


def _run_train(args) -> int:
    import json

    from seeds.experiments.models.training import train_on
    from seeds.experiments.models.unet import UNetConfig

    groups = UNetConfig().groups
    if args.base_channels % groups:
        raise UsageError(
            f"argument --base-channels: expected a multiple of {groups} (the UNet's normalisation groups), "
            f"got {args.base_channels}"
        )
    if args.out is not None:
        _check_output_folder("--out", args.out)
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
        formatter_class=HelpFormatter,
        help="train the digit classifier whose features measure the learned model's quality",
        description="Train the digit classifier on scikit-learn's digits and save it beside the denoiser.",
    )
    parser.add_argument(
        "--out", type=Path, default=config.DEFAULT_MODEL, help="folder of the denoiser it serves"
    )
    parser.set_defaults(run=_run_train_classifier)


def _run_train_classifier(args) -> int:
    from seeds.experiments.models.classifier import retrain

    _check_output_folder("--out", args.out)
    card = retrain(args.out)
    print(f"held-out accuracy {card['held_out_accuracy']:.3f}; saved to {args.out}")
    return 0


def _digits_mixture_command(subparsers):
    parser = subparsers.add_parser(
        "digits-mixture",
        formatter_class=HelpFormatter,
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
        formatter_class=HelpFormatter,
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
    _exact_weak_command,
    _convergence_plots_command,
    _weak_ring_command,
    _exact_weak_table_command,
    _figures_command,
    _bench_command,
    _esra_quality_command,
    _train_command,
    _train_classifier_command,
    _digits_mixture_command,
    _coefficients_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="seeds",
        formatter_class=HelpFormatter,
        description="Numerical analysis and convergence verification of SEEDS exponential SDE solvers.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def _raised_by_the_solvers(error: BaseException) -> bool:
    """Whether an exception was raised by a check in seeds.solvers, which documents ValueError for bad input
    (an unknown method or prediction, a value out of range); a ValueError from anywhere else is a bug."""
    trace = error.__traceback__
    while trace.tb_next is not None:
        trace = trace.tb_next
    return trace.tb_frame.f_globals.get("__name__", "").startswith("seeds.solvers.")


def main(argv=None) -> int:
    parser = build_parser()
    command = parser.prog
    try:
        args, unknown = parser.parse_known_args(argv)
        if args.command is None:
            if unknown:
                parser.error(f"unrecognized arguments: {' '.join(unknown)}")
            parser.print_help()
            return 0
        command = f"{parser.prog} {args.command}"
        if unknown:  # named here, after the command, which argparse would leave out
            raise UsageError(f"unrecognized arguments: {' '.join(unknown)}")
        return args.run(args)
    except UsageError as error:
        _report(error.command or command, str(error))
        raise
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except (*USER_ERRORS, ValueError) as error:
        if not isinstance(error, USER_ERRORS) and not _raised_by_the_solvers(error):
            raise
        _report(command, str(error))
        raise UsageError(str(error), command) from None


def _report(command: str, message: str) -> None:
    # a message may quote a library's multi-line text; the user gets one line whatever it holds
    print(f"{command}: error: {' '.join(message.splitlines())}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
