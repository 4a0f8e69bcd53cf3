"""Figures of the learned-model experiment (`seeds figures`, docs/learned-models.md), drawn from its result
files: quality against NFE per solver, strong error against step count, and sample grids."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from seeds.figures.style import plt, save

QUALITY_CEILING = 300.0


def _style(index: int, label: str):
    """SEEDS variants solid, earlier methods dashed, one colour each."""
    return {"color": plt.get_cmap("tab20")(index % 20), "ls": "-" if label.startswith("seeds") else "--"}


def quality_figure(payload: dict, folder: Path, suffix: str = "") -> None:
    curves: dict[str, list] = {}
    for result in payload["quality"]:
        curves.setdefault(result["label"], []).append(result)
    figure, axis = plt.subplots(figsize=(8.5, 5.5))
    for index, (label, results) in enumerate(curves.items()):
        results.sort(key=lambda r: r["nfe"])
        nfe = [r["nfe"] for r in results]
        values = [r["frechet"] for r in results]
        low = [r["frechet_ci"][0] for r in results]
        high = [r["frechet_ci"][1] for r in results]
        style = _style(index, label)
        axis.plot(nfe, values, marker="o", ms=3.5, label=label, **style)
        axis.fill_between(nfe, low, high, color=style["color"], alpha=0.12)
    plateau, floor = payload["plateau"], payload["data_floor"]
    for name, line, label in (
        ("all_methods", ":", "plateau: 5% above the best at max NFE"),
        ("path_driven_sde", "-.", "plateau of the path-driven SDE methods"),
    ):
        axis.axhline(plateau[name]["threshold"], color="k", lw=0.8, ls=line, label=label)
    if floor is not None:
        axis.axhspan(
            floor["min"],
            floor["max"],
            color="grey",
            alpha=0.25,
            label=f"data floor ({floor['samples']} images)",
        )
    axis.set_xscale("log")
    axis.set_yscale("log")
    # divergent low-NFE points (up to 1e9) would flatten the converged region; the table has their values
    axis.set_ylim(top=QUALITY_CEILING)
    axis.set_xlabel("NFE (model evaluations)")
    axis.set_ylabel(f"Frechet distance (points above {QUALITY_CEILING:g} are off the chart)")
    samples = payload["quality"][0]["samples"]
    axis.set_title(
        f"Learned digits model: {payload['metric']}, {samples} samples per point (95% bootstrap CI)"
    )
    axis.legend(fontsize=7, ncol=2)
    save(figure, folder, f"quality_learned{suffix}")


def strong_figure(payload: dict, folder: Path) -> None:
    figure, axis = plt.subplots(figsize=(8.5, 5.5))
    for index, cell in enumerate(payload["strong"]):
        slope, low, high = cell["strong_slope"]
        style = _style(index, cell["label"])
        axis.plot(
            cell["steps"],
            cell["strong_rms"],
            marker="o",
            ms=3.5,
            label=f"{cell['label']}: slope {slope:.2f} [{low:.2f}, {high:.2f}]",
            **style,
        )
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xlabel("steps (EDM grid, sigma 80 -> 0.002)")
    axis.set_ylabel("RMS error vs the same method at 4x the finest level")
    paths = payload["strong"][0]["cell"]["paths"]
    axis.set_title(f"Strong error on the learned digits model ({paths} Brownian paths; slope = order in h)")
    axis.legend(fontsize=7)
    save(figure, folder, "strong_learned")


def _tile(flat_images: np.ndarray, size: int = 8, gap: int = 1) -> np.ndarray:
    """A square grid of (size x size) images separated by background (-1) lines."""
    side = int(math.sqrt(flat_images.shape[0]))
    cell = size + gap
    canvas = np.full((side * cell - gap, side * cell - gap), -1.0)
    for index, image in enumerate(flat_images[: side * side].reshape(-1, size, size)):
        row, column = divmod(index, side)
        canvas[row * cell : row * cell + size, column * cell : column * cell + size] = image
    return canvas


def sample_grid_figure(cells: list[dict], nfe: int, folder: Path) -> None:
    chosen = [c for c in cells if c["cell"]["nfe"] == nfe]
    if not chosen:
        return
    columns = 5
    rows = math.ceil(len(chosen) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.3 * columns, 2.5 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, cell in zip(axes.flat, chosen):
        axis.imshow(
            _tile(np.asarray(cell["images"])), cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest"
        )
        axis.set_title(f"{cell['label']}\nNFE {cell['nfe']}", fontsize=7)
    figure.suptitle(
        f"Samples at NFE {nfe}: the same initial noise and Brownian path for every method", fontsize=9
    )
    save(figure, folder, f"samples_learned_nfe{nfe}")


def make_figures(results: Path, folder: Path, suffix: str = "") -> None:
    """Figures of results/learned{suffix}.json: the default scale (no suffix) or the long one ("_long")."""
    payload = json.loads((results / f"learned{suffix}.json").read_text())
    quality_figure(payload, folder, suffix)
    cells = [json.loads((results / "cells" / f"{r['key']}.json").read_text()) for r in payload["quality"]]
    grid = sorted({c["cell"]["nfe"] for c in cells})
    small = 12 if 12 in grid else grid[0]  # where the methods still differ visibly
    if suffix:
        sample_grid_figure(cells, grid[-1], folder)
    else:
        strong_figure(payload, folder)
        for nfe in (small, grid[-1]):
            sample_grid_figure(cells, nfe, folder)
