"""Figures of the learned-model experiment (`seeds figures`, docs/learned-models.md), drawn from its result
files: quality against NFE per solver (distance to the data, coupled distance to the reference), strong error
against step count, and sample grids."""

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


def _curves(results: list[dict], value) -> dict[str, list]:
    curves: dict[str, list] = {}
    for result in results:
        curves.setdefault(result["label"], []).append((result["nfe"], value(result)))
    return {label: sorted(points) for label, points in curves.items()}


def _draw(axis, curves: dict[str, list]) -> None:
    for index, (label, points) in enumerate(curves.items()):
        nfe, values = zip(*points)
        axis.plot(nfe, values, marker="o", ms=3, label=label, **_style(index, label))
    axis.set_xscale("log")
    axis.set_yscale("log")
    # divergent low-NFE points (up to 1e10) would flatten the converged region; the table has their values
    axis.set_ylim(top=QUALITY_CEILING)
    axis.set_xlabel("NFE (model evaluations)")


def quality_figure(payload: dict, folder: Path, suffix: str = "") -> None:
    """Three panels: the learned model's Frechet distance to the data and to its reference (same starts and
    path), and the digits mixture's distance to its reference, each coupled panel with its plateau threshold."""
    learned, mixture = payload["learned"], payload["mixture"]
    figure, axes = plt.subplots(1, 3, figsize=(17, 5.5))
    to_data, coupled, mixture_axis = axes
    _draw(to_data, _curves(learned["cells"], lambda r: r["measures"]["frechet_to_target"]))
    for role, line, label in (("sde", ":", "SDE reference"), ("ode", "-.", "probability-flow ODE reference")):
        to_data.axhline(learned["model_error"][role]["fid"], color="k", lw=0.8, ls=line, label=label)
    floor = learned["floor"]
    if floor is not None:
        to_data.axhspan(floor["min"], floor["max"], color="grey", alpha=0.25, label="data floor")
    to_data.set_ylabel(f"Frechet distance (points above {QUALITY_CEILING:g} are off the chart)")
    to_data.set_title(f"Learned model: distance to the data ({payload['samples']} samples)", fontsize=8)
    to_data.legend(fontsize=6, ncol=2)
    for axis, part, title in (
        (coupled, learned, "Learned model: coupled distance to the reference"),
        (
            mixture_axis,
            mixture,
            f"Digits mixture: coupled distance to the reference ({payload['mixture_samples']} samples)",
        ),
    ):
        _draw(axis, _curves(part["cells"], lambda r: r["measures"]["coupled_frechet"]))
        threshold = part["headline"]["threshold"]
        decided = part["headline"]["reference_checks"]["sde"]["passed"]
        label = (
            "plateau threshold" if decided else "plateau threshold (reference check failed: nothing decided)"
        )
        axis.axhline(threshold, color="k", lw=0.8, ls=":", label=label)
        axis.set_ylim(bottom=threshold / 20)
        axis.set_title(title, fontsize=8)
        axis.legend(fontsize=6, ncol=2)
    figure.suptitle(
        "Same starts and Brownian path for every method; the coupled distances compare each method with the "
        "SDE reference (EDM churn: with the probability-flow ODE reference)",
        fontsize=9,
    )
    save(figure, folder, f"quality_learned{suffix}")


def strong_figure(payload: dict, folder: Path, suffix: str = "") -> None:
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
    save(figure, folder, f"strong_learned{suffix}")


def _tile(flat_images: np.ndarray, shape: tuple, gap: int = 1) -> np.ndarray:
    """A square grid of images of `shape` (channels, height, width) separated by background (-1) lines: 2-d
    for one channel, height x width x channels for more."""
    channels, height, width = shape
    side = int(math.sqrt(flat_images.shape[0]))
    canvas = np.full((side * (height + gap) - gap, side * (width + gap) - gap, channels), -1.0)
    for index, image in enumerate(flat_images[: side * side].reshape(-1, channels, height, width)):
        row, column = divmod(index, side)
        top, left = row * (height + gap), column * (width + gap)
        canvas[top : top + height, left : left + width] = image.transpose(1, 2, 0)
    return canvas[..., 0] if channels == 1 else canvas


def sample_grid_figure(cells: list[dict], nfe: str, shape: tuple, folder: Path, suffix: str = "") -> None:
    columns = 5
    rows = math.ceil(len(cells) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.3 * columns, 2.5 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, cell in zip(axes.flat, cells):
        tiled = _tile(np.asarray(cell["images"]), shape)
        if tiled.ndim == 2:
            axis.imshow(tiled, cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
        else:
            axis.imshow(np.clip((tiled + 1) / 2, 0, 1), interpolation="nearest")
        axis.set_title(f"{cell['label']}\nNFE {cell['nfe']}", fontsize=7)
    figure.suptitle(
        f"Samples at NFE {nfe}: the same initial noise and Brownian path for every method", fontsize=9
    )
    save(figure, folder, f"samples_learned_nfe{nfe}{suffix}")


def make_figures(results: Path, folder: Path, suffix: str = "") -> None:
    """Figures of results/learned{suffix}.json (suffix "" for the default scale, "_long", "_quick")."""
    payload = json.loads((results / f"learned{suffix}.json").read_text())
    quality_figure(payload, folder, suffix)
    strong_figure(payload, folder, suffix)
    for nfe, cells in payload["sample_grids"].items():
        sample_grid_figure(cells, nfe, payload["image_shape"], folder, suffix)
