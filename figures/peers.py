"""Sample quality against NFE for k-diffusion's samplers and ours on the same denoisers, one panel per problem:
the peers' figure of `seeds bench` (docs/benchmarks.md) and ESRA's comparison (docs/esra.md)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import NullFormatter

from seeds.figures.style import plt, save


def quality_figure(peers: dict, folder: Path, name: str, same_method: tuple[str, str] | None = None) -> None:
    """Writes `name`.{png,pdf}. `same_method`: the labels of two samplers that are one method (their samples
    agree to rounding), drawn as one curve named for both."""
    problems = peers["problems"]
    figure, axes = plt.subplots(1, len(problems), figsize=(5.2 * len(problems), 4.8), squeeze=False)
    for axis, panel in zip(axes[0], problems.values()):
        curves: dict[str, list] = {}
        for row in panel["rows"]:
            curves.setdefault(row["cell"]["sampler"], []).append(row)
        if same_method is not None:
            curves[f"{same_method[1]} = {same_method[0]}"] = curves.pop(same_method[1])
            curves.pop(same_method[0])
        for index, (label, rows) in enumerate(curves.items()):
            rows.sort(key=lambda r: r["nfe"])
            color = plt.get_cmap("tab10")(index % 10)
            style = {"color": color, "ls": "--" if label.startswith("k-diffusion") else "-"}
            nfe = [r["nfe"] for r in rows]
            axis.plot(nfe, [r["frechet"] for r in rows], marker="o", ms=3.5, label=label, **style)
            if all("frechet_ci" in r for r in rows):
                low, high = zip(*(r["frechet_ci"] for r in rows))
                axis.fill_between(nfe, low, high, color=color, alpha=0.08)
        axis.axhline(panel["floor"], color="grey", lw=1, ls=":", label="exact draws of the same size")
        axis.set(xscale="log", yscale="log", xlabel="NFE", ylabel="Frechet distance", title=panel["title"])
        axis.set_xticks(peers["budgets"], [str(b) for b in peers["budgets"]])
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.grid(alpha=0.3, which="both")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    figure.suptitle(
        "k-diffusion samplers (dashed) and ours (solid): same sigmas, denoisers, starts and noise seeds"
    )
    figure.tight_layout()
    save(figure, folder, name)
