"""Figures of the main job (docs/results.md), drawn from its result files (never recomputed here)."""

from __future__ import annotations

import json
from pathlib import Path

from seeds.figures.style import COLOURS, plt, save


def strong_figure(cells: list[dict], exact: dict | None, problem: str, folder: Path) -> None:
    """One panel per grid; the exact-linear curves (lambda grid) under the lambda panel's points."""
    grids = [g for g in ("lambda", "edm") if any(_on(c, problem, g) for c in cells)]
    if not grids:
        return
    figure, axes = plt.subplots(1, len(grids), figsize=(7.5 * len(grids), 5.2), squeeze=False)
    for grid, axis in zip(grids, axes[0]):
        chosen = [c for c in cells if _on(c, problem, grid)]
        for index, cell in enumerate(chosen):
            colour = COLOURS[index % len(COLOURS)]
            h, errors = cell["step_size_lambda"], cell["strong_rms"]
            low = [e - ci[0] for e, ci in zip(errors, cell["strong_rms_ci"])]
            high = [ci[1] - e for e, ci in zip(errors, cell["strong_rms_ci"])]
            slope, slope_low, slope_high = cell["strong_slope"]
            label = f"{cell['label']}: slope {slope:.2f} [{slope_low:.2f}, {slope_high:.2f}]"
            axis.errorbar(h, errors, yerr=[low, high], fmt="o", ms=4, color=colour, label=label, capsize=2)
            if exact is not None and grid == "lambda" and cell["label"] in exact:
                curve = exact[cell["label"]]
                axis.plot(
                    curve["step_size_lambda"], curve["strong_rmse"], "-", color=colour, lw=1.2, alpha=0.8
                )
            predicted = (cell.get("predicted") or {}).get("strong")
            if predicted is not None:
                anchor_h, anchor_e = h[-1], errors[-1]
                axis.plot(
                    [anchor_h, h[0]],
                    [anchor_e, anchor_e * (h[0] / anchor_h) ** predicted],
                    ":",
                    color=colour,
                    lw=1,
                )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("step size h in lambda" + (" (mean over the rho = 7 grid)" if grid == "edm" else ""))
        axis.set_ylabel("RMS error at sigma_min (strong)")
        axis.set_title(
            _strong_title(chosen[0], grid) + "\n(dotted: predicted order through the finest point)",
            fontsize=9,
        )
        axis.legend(fontsize=7)
        axis.grid(True, which="both", alpha=0.3)
    save(figure, folder, f"strong_{problem}")


def _on(cell: dict, problem: str, grid: str) -> bool:
    return cell["cell"]["problem"] == problem and cell["cell"]["grid"] == grid


def _strong_title(cell: dict, grid: str) -> str:
    spec = cell["cell"]
    where = f"sigma {spec['sigma_max']:g} -> {spec['sigma_min']:g}, {grid} grid"
    if spec["reference"][0] == "exact":
        lines = " (lines: exact quadrature)" if grid == "lambda" else ""
        return f"Strong error, {spec['problem']}, {where}: exact solution on the path{lines}"
    method, options, steps = spec["reference"]
    label = method + "".join(f"/{value}" for name, value in options if name == "prediction")
    return f"Strong error, {spec['problem']}, {where}: reference {label} at {steps} steps"


def weak_figure(exact: dict, folder: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 5))
    for index, (label, curve) in enumerate(sorted(exact.items())):
        if curve.get("weak_var_error") is None:
            continue
        axis.plot(
            curve["nfe"],
            curve["weak_var_error"],
            "o-",
            ms=3,
            color=COLOURS[index % len(COLOURS)],
            label=label,
        )
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("NFE")
    axis.set_ylabel("|Var(x_num) - (s^2 + sigma_min^2)| (exact, no Monte Carlo)")
    axis.set_title(
        "Weak error vs NFE, Gaussian data N(0, 0.09), sigma 80 -> 0.002, lambda-uniform grid", fontsize=9
    )
    axis.legend(fontsize=7)
    axis.grid(True, which="both", alpha=0.3)
    save(figure, folder, "weak_gaussian")


def quality_figure(quality: dict, folder: Path) -> None:
    cells = quality["cells"]
    floor = quality["exact_sample_floor"]
    labels = sorted({c["label"] for c in cells})
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for metric, axis in zip(("frechet", "mode_weight_error"), axes):
        for index, label in enumerate(labels):
            points = sorted((c["nfe"], c[metric]) for c in cells if c["label"] == label)
            axis.plot(*zip(*points), "o-", ms=3, color=COLOURS[index % len(COLOURS)], label=label)
        axis.axhline(floor[metric], color="k", ls="--", lw=1, label="exact samples (same count)")
        axis.set_xscale("log")
        budgets = sorted({c["cell"]["nfe"] for c in cells})
        axis.set_xticks(budgets, [str(b) for b in budgets])
        axis.minorticks_off()
        axis.set_yscale("log")
        axis.set_xlabel("NFE")
        axis.grid(True, which="both", alpha=0.3)
    samples, problem = cells[0]["cell"]["samples"], cells[0]["cell"]["problem"]
    axes[0].set_ylabel("Frechet distance to the exact target moments")
    axes[1].set_ylabel("total-variation error of mode weights")
    axes[0].set_title(f"{problem} mixture, {samples} samples per point, sigma 80 -> 0.002", fontsize=9)
    axes[1].legend(fontsize=7)
    save(figure, folder, f"quality_{problem}")


def make_figures(results: Path, folder: Path) -> None:
    convergence = json.loads((results / "convergence.json").read_text())
    exact_path = results / "exact_linear.json"
    exact = json.loads(exact_path.read_text())["curves"] if exact_path.exists() else None
    for problem in sorted({c["cell"]["problem"] for c in convergence["cells"]}):
        strong_figure(convergence["cells"], exact if problem == "gaussian" else None, problem, folder)
    if exact is not None:
        weak_figure(exact, folder)
    quality_figure(json.loads((results / "quality.json").read_text()), folder)
