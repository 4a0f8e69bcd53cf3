"""What every figure shares: the non-interactive backend, the colour cycle and how a figure is saved."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def save(figure, folder: Path, name: str) -> None:
    """Write folder/name.png and .pdf (through a temporary name, so a reader never sees half a file; the PDF
    without a creation date, so an unchanged figure gives the same bytes) and close the figure."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in ("png", "pdf"):
        target = folder / f"{name}.{suffix}"
        partial = folder / f".{name}.partial.{suffix}"
        try:
            figure.savefig(
                partial,
                dpi=130,
                bbox_inches="tight",
                metadata={"CreationDate": None} if suffix == "pdf" else None,
            )
            partial.replace(target)
        except BaseException:  # interrupted or failed: leave no half-written file behind
            partial.unlink(missing_ok=True)
            raise
    plt.close(figure)
