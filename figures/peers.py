"""The peers' figure of `make bench`: sample quality against NFE for k-diffusion's samplers and ours on the
same denoisers (experiments/peers.py), one panel per problem."""

from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import NullFormatter

from seeds.experiments.peers import SAME_METHOD
from seeds.figures.convergence import _save, plt


def quality_figure(peers: dict, folder: Path) -> None:
    problems = peers["problems"]
    figure, axes = plt.subplots(1, len(problems), figsize=(5.2 * len(problems), 4.8), squeeze=False)
    for axis, panel in zip(axes[0], problems.values()):
        curves: dict[str, list] = {}
        for row in panel["rows"]:
            curves.setdefault(row["cell"]["sampler"], []).append(row)
        # the two are one method (equal to 1e-10, checked in the run): one curve, named for both
        curves[f"{SAME_METHOD[1]} = {SAME_METHOD[0]}"] = curves.pop(SAME_METHOD[1])
        curves.pop(SAME_METHOD[0])
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
    _save(figure, folder, "peers_quality")


def table(peers: dict) -> str:
    """Markdown: the Frechet distance of every sampler at every budget, per problem."""
    budgets = peers["budgets"]
    lines = []
    for panel in peers["problems"].values():
        lines += [
            f"### {panel['title']} (floor of exact draws: {panel['floor']:.3g})",
            "",
            "| sampler | " + " | ".join(f"NFE {b}" for b in budgets) + " |",
            "|---|" + "---|" * len(budgets),
        ]
        values: dict[str, dict] = {}
        for row in panel["rows"]:
            values.setdefault(row["cell"]["sampler"], {})[row["cell"]["budget"]] = row["frechet"]
        for label, by_budget in values.items():
            lines.append(f"| {label} | " + " | ".join(f"{by_budget[b]:.3g}" for b in budgets) + " |")
        if panel["agreement"]:
            worst = max(a["max_abs_difference"] for a in panel["agreement"])
            lines += ["", f"{SAME_METHOD[0]} vs {SAME_METHOD[1]}: max |difference| {worst:.1e}"]
        lines.append("")
    return "\n".join(lines)
