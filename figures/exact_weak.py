"""The exact weak errors on the 1-d problems (docs/exact-weak.md), drawn from their result dicts."""

from __future__ import annotations

from pathlib import Path

from seeds.figures.style import COLOURS, plt, save

# the methods the figure shows, in this order, where present (every method is in the results table)
SHOWN = (
    "seeds-1/data",
    "seeds-2/data",
    "seeds-3/data",
    "seeds-3/noise",
    "seeds-3/edm",
    "euler-maruyama",
    "dpm-solver++-2",
    "seeds-2/data (independent stage noises)",
)


def exact_weak_figure(results: list[dict], folder: Path, name: str, grid: str = "lambda") -> None:
    """One panel per problem: the smoothed L1 distance against the number of steps on `grid`."""
    problems = list(dict.fromkeys(r["problem"] for r in results))
    figure, axes = plt.subplots(1, len(problems), figsize=(6.2 * len(problems), 4.8), squeeze=False)
    for problem, axis in zip(problems, axes[0]):
        chosen = {r["label"]: r for r in results if r["problem"] == problem and r["grid"] == grid}
        for index, label in enumerate(label for label in SHOWN if label in chosen):
            r = chosen[label]
            order = "-" if r["order"] is None else f"{r['order']:.2f}"
            predicted = (r.get("predicted") or {}).get("weak")
            style = "--" if "independent" in label else "-"
            axis.loglog(
                r["steps"],
                r["l1"],
                style + "o",
                ms=3,
                color=COLOURS[index % len(COLOURS)],
                label=f"{label}: {order} (predicted {predicted})",
            )
        axis.set_title(f"{problem}, {grid} grid")
        axis.set_xlabel("steps")
        axis.set_ylabel("L1 distance of the smoothed densities")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    save(figure, folder, name)
