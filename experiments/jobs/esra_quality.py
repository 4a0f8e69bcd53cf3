"""ESRA against SEEDS-3 and k-diffusion's SDE samplers: sample quality against NFE from 7 to 193 on the 16-d
Gaussian, the 64-d digits mixture (both against their exact law) and the committed digits UNet (classifier
features), with the peers' protocol of experiments/jobs/peers.py (same sigmas, starts and Brownian path for
every sampler; 95% bootstrap intervals). Writes results/esra_quality.{json,md} and figures/esra_quality.*;
docs/esra.md discusses the result. Finished cells are stored (resumable)."""

from __future__ import annotations

from pathlib import Path

from seeds.experiments.config import ESRA_NFE_BUDGETS, ESRA_SAMPLERS
from seeds.experiments.jobs import peers
from seeds.experiments.results import atomic_write_json, atomic_write_text, provenance
from seeds.figures.peers import quality_figure


def run(results: Path, figures: Path) -> str:
    peers.k_diffusion_sampling()  # fails here, with the install hint, when the peers are missing
    payload = peers.quality_vs_nfe(results / "esra_quality_cells", ESRA_NFE_BUDGETS, ESRA_SAMPLERS)
    atomic_write_json(results / "esra_quality.json", {"provenance": provenance(), **payload})
    text = (
        "## ESRA against SEEDS-3 and the k-diffusion SDE samplers: Frechet distance [95% bootstrap interval]\n\n"
        + peers.peers_table(payload)
    )
    atomic_write_text(results / "esra_quality.md", text)
    quality_figure(payload, figures, "esra_quality")
    return text
