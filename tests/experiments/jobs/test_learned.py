"""The learned-model experiment (docs/learned-models.md): the plateau / NFE-ratio rule, sharding across
torch.distributed ranks (gloo, 2 processes), and a quick end-to-end run of `seeds figures`."""

from __future__ import annotations

import json

import pytest
import torch
import torch.multiprocessing as mp

from seeds.experiments.cli import main
from seeds.experiments.config import LEARNED_QUALITY_METHODS, LEARNED_STRONG_METHODS
from seeds.experiments.jobs.learned import plateau_table
from seeds.experiments.jobs.sharding import shard_map
from seeds.experiments.verification.convergence import method_label
from seeds.experiments.verification.learned_quality import LearnedQualityCell, chunk_seeds, sample_chunk
from seeds.solvers import Denoiser


def _result(label, nominal, nfe, frechet):
    method, _, prediction = label.partition("/")
    options = (("prediction", prediction),) if prediction else ()
    return {
        "label": label,
        "cell": {"nfe": nominal, "method": method, "options": options},
        "nfe": nfe,
        "frechet": frechet,
    }


def test_plateau_is_the_first_nfe_from_which_a_method_stays_within_tolerance():
    quality = [
        _result("seeds-3/data", 12, 12, 1.3),
        _result("seeds-3/data", 24, 24, 1.04),
        _result("seeds-3/data", 48, 48, 1.0),
        # dips below the threshold at 12, leaves it at 24: reaches the plateau only at 48
        _result("euler-maruyama", 12, 12, 1.02),
        _result("euler-maruyama", 24, 24, 1.2),
        _result("euler-maruyama", 48, 48, 1.05),
        _result("ddpm", 12, 12, 3.0),
        _result("ddpm", 24, 24, 2.0),
        _result("ddpm", 48, 48, 1.5),
    ]
    table = plateau_table(quality, tolerance=0.05)
    assert plateau_table(quality, among={"ddpm"})["nfe_to_plateau"] == {"ddpm": 48}
    assert table["best_at_largest_nfe"] == 1.0 and table["threshold"] == pytest.approx(1.05)
    assert table["nfe_to_plateau"] == {"seeds-3/data": 24, "euler-maruyama": 48, "ddpm": None}
    assert table["best_seeds_nfe"] == 24
    assert table["earlier_methods"]["euler-maruyama"]["ratio_to_best_seeds"] == 2.0
    assert table["earlier_methods"]["ddpm"]["ratio_to_best_seeds"] is None


def test_chunk_seeds_refuse_a_sample_count_that_is_not_whole_chunks():
    assert [size for _, size in chunk_seeds(8, 4, 0)] == [4, 4]
    with pytest.raises(ValueError, match="multiple of the chunk size"):
        chunk_seeds(10, 4, 0)


class Shrink(torch.nn.Module):
    """D(x, sigma) of Gaussian data N(0, 0.25 I) (a stand-in network: the sharding test needs determinism)."""

    def forward(self, x, sigma):
        return 0.25 / (0.25 + sigma.reshape(-1, 1, 1, 1) ** 2) * x


CELL = LearnedQualityCell(
    "seeds-2", (("prediction", "data"),), nfe=8, checkpoint="none", digest="", samples=12, chunk=3
)


def _sample_all():
    return shard_map(
        lambda spec: sample_chunk(Denoiser(Shrink()), (1, 4, 4), CELL, *spec, "cpu")[0],
        chunk_seeds(CELL.samples, CELL.chunk, CELL.seed),
    )


def _worker(rank, world, init_file, out_file):
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        chunks = _sample_all()
        if rank == 0:
            torch.save(chunks, out_file)
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_ranks_give_the_single_process_samples(tmp_path):
    single = _sample_all()
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "out.pt")), nprocs=2, join=True)
    sharded = torch.load(tmp_path / "out.pt")
    assert len(sharded) == len(single) == 4
    assert all(torch.equal(a, b) for a, b in zip(sharded, single))


def test_quick_learned_run_writes_results_and_figures(tmp_path):
    pytest.importorskip("sklearn")
    code = main(
        [
            "figures",
            "--scale",
            "quick",
            "--samples",
            "64",
            "--results",
            str(tmp_path / "results"),
            "--figures",
            str(tmp_path / "figures"),
        ]
    )
    assert code == 0
    payload = json.loads((tmp_path / "results" / "learned.json").read_text())
    assert len(payload["strong"]) == len(LEARNED_STRONG_METHODS)
    assert {r["label"] for r in payload["quality"]} == {
        method_label(m, o) for m, o in LEARNED_QUALITY_METHODS
    }
    assert all(r["samples"] == 64 for r in payload["quality"])
    for name in ("quality_learned.png", "strong_learned.png", "learned_table.md"):
        assert (tmp_path / "figures" / name).exists()
    assert "ratio to best SEEDS" in (tmp_path / "results" / "learned.md").read_text()
