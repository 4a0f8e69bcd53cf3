"""The learned-model experiment (docs/learned-models.md): the plateau rule and its paired bootstrap, the
reference checks of the headline table, coupled sampling (the same samples on one process and on two gloo
ranks; a path-driven method converging to its reference), and a quick end-to-end run of `seeds figures`."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from seeds.experiments.cli import main
from seeds.experiments.config import (
    HEADLINE_SCALES,
    LEARNED_STRONG_METHODS,
    PLATEAU_FRACTION,
    REFERENCE_MARGIN,
)
from seeds.experiments.jobs.learned import (
    CHURN_LABEL,
    headline_cells,
    headline_lines,
    headline_table,
    verdict,
)
from seeds.experiments.jobs.sharding import shard_map
from seeds.experiments.metrics.frechet import FeatureStatistics
from seeds.experiments.problems import make_problem
from seeds.experiments.verification.coupled_quality import CoupledCell, chunk_seeds, sample_chunk
from seeds.experiments.verification.plateau import first_nfe_staying_within, plateau_bootstrap, ratio_bounds


def test_plateau_is_the_first_nfe_from_which_a_curve_stays_within_the_threshold():
    assert first_nfe_staying_within([(12, 1.3), (24, 1.04), (48, 1.0)], 1.05) == 24
    # dips below the threshold at 12, leaves it at 24: reaches the plateau only at 48
    assert first_nfe_staying_within([(12, 1.02), (24, 1.2), (48, 1.05)], 1.05) == 48
    assert first_nfe_staying_within([(12, 3.0), (24, 2.0), (48, 1.5)], 1.05) is None
    # a non-finite value (a diverged sample) is outside, wherever it is
    assert first_nfe_staying_within([(12, 1.0), (24, math.nan), (48, 1.0)], 1.05) == 48
    assert first_nfe_staying_within([(48, 1.0), (12, 1.0), (24, 1.0)], 1.05) == 12  # order does not matter


def test_ratio_bounds_divide_by_the_best_seeds_variant_and_bound_what_lies_beyond_the_grid():
    largest = {"seeds-1/data": 96, "seeds-3/data": 96, "euler-maruyama": 96, "ddpm": 96}
    reached = {"seeds-1/data": 48, "seeds-3/data": 24, "euler-maruyama": 72, "ddpm": None}
    out = ratio_bounds(reached, largest, ["euler-maruyama", "ddpm"], ["seeds-1/data", "seeds-3/data"])
    assert out == {"euler-maruyama": (3.0, 3.0), "ddpm": (4.0, math.inf)}  # ddpm needs > 96 = 4 x 24
    beyond = {"seeds-1/data": None, "seeds-3/data": None, "euler-maruyama": 72, "ddpm": None}
    out = ratio_bounds(beyond, largest, ["euler-maruyama", "ddpm"], ["seeds-1/data", "seeds-3/data"])
    assert out == {"euler-maruyama": (0.0, 0.75), "ddpm": (0.0, math.inf)}  # SEEDS needs > 96 > 72


def test_the_verdict_reads_the_ratio_interval():
    assert verdict({"ci": [3.2, 5.0]}) == "SEEDS faster; 3x holds"
    assert verdict({"ci": [1.1, 2.0]}) == "SEEDS faster; 3x fails"
    assert verdict({"ci": [0.0, 0.8]}) == "SEEDS slower; 3x fails"
    assert verdict({"ci": [0.7, math.inf]}) == "not separated from 1; 3x undecided"


def test_the_bootstrap_of_a_noiseless_curve_collapses_to_the_point_and_resamples_pairs():
    seen = []

    def curves(indices):
        seen.append(indices)
        return {"seeds-3/data": [(6, 2.0), (12, 0.5)], "euler-maruyama": [(6, 3.0), (12, 2.0), (24, 0.1)]}

    table = plateau_bootstrap(10, curves, lambda indices: 1.0, ["seeds-3/data"], ["euler-maruyama"], 20)
    assert table["nfe_to_plateau"] == {"seeds-3/data": 12, "euler-maruyama": 24}
    assert table["nfe_ci"]["euler-maruyama"] == [24.0, 24.0]
    assert table["ratios"]["euler-maruyama"]["bounds"] == [2.0, 2.0]
    assert table["ratios"]["euler-maruyama"]["ci"] == [2.0, 2.0]
    assert table["ratios"]["euler-maruyama"]["share_faster"] == 1.0
    assert len(seen) == 21 and np.array_equal(seen[0], np.arange(10))


def test_the_bootstrap_interval_reflects_which_samples_are_drawn():
    """One sample out of 40 is far off at the smaller NFE: the resamples that leave it out reach the plateau
    there, the others do not, so the interval spans both NFEs."""
    values = np.zeros(40)
    values[0] = 10.0

    def curves(indices):
        return {"seeds-3/data": [(6, float(values[indices].mean())), (12, 0.0)]}

    table = plateau_bootstrap(40, curves, lambda indices: 0.05, ["seeds-3/data"], [], 400, seed=1)
    assert table["nfe_to_plateau"]["seeds-3/data"] == 12
    assert table["nfe_ci"]["seeds-3/data"] == [6.0, 12.0]


def test_a_plateau_beyond_the_grid_widens_the_ratio_interval_instead_of_voiding_it():
    """SEEDS reaches the plateau at 12 in the resamples without the far-off sample, beyond the grid (24) in
    the others; the earlier method at 24 always: the ratio is 2 or below 1, and its interval says so."""
    values = np.zeros(40)
    values[0] = 10.0

    def curves(indices):
        late = float(values[indices].mean())
        return {"seeds-3/data": [(12, late), (24, late)], "euler-maruyama": [(12, 1.0), (24, 0.0)]}

    table = plateau_bootstrap(
        40, curves, lambda indices: 0.05, ["seeds-3/data"], ["euler-maruyama"], 400, seed=1
    )
    row = table["ratios"]["euler-maruyama"]
    assert row["bounds"] == [0.0, 1.0]  # all samples: SEEDS beyond 24, so the ratio is below 24 / 24
    assert row["ci"] == [0.0, 2.0]
    assert 0.2 < row["share_faster"] < 0.5 and row["share_slower"] == 0.0


def _result(label, nfe, features, samples=None):
    return {"label": label, "nfe": nfe, "features": features, "samples": samples}


def test_headline_uses_the_ode_reference_for_churn_and_marks_a_failed_check_unresolved():
    generator = np.random.default_rng(0)
    data = generator.normal(size=(400, 3))
    reference = data + 1.0  # the model error: FD to the data is 3
    sde_check = reference + 1e-3 * generator.normal(size=reference.shape)
    ode = data + 0.5
    churn_check = generator.normal(size=reference.shape) + 0.5  # other samples: decorrelated by fresh noise
    references = {
        "sde": _result("seeds-3/data", 768, reference),
        "sde_check": _result("esra/data", 768, sde_check),
        "ode": _result("edm-heun", 767, ode),
    }
    cells = [
        _result("seeds-3/data", 6, reference + 0.5),
        _result("seeds-3/data", 12, reference + 0.01),
        _result("euler-maruyama", 6, reference + 1.0),
        _result("euler-maruyama", 12, reference + 0.3),
        _result("euler-maruyama", 24, reference + 0.01),
        _result(CHURN_LABEL, 12, ode + 0.01),
        _result(CHURN_LABEL, 24, churn_check),  # its largest NFE: its check
    ]
    statistics = FeatureStatistics.from_features(data)
    table = headline_table(cells, references, statistics, resamples=20)
    expected = PLATEAU_FRACTION * FeatureStatistics.from_features(reference).frechet_distance(statistics)
    assert table["threshold"] == pytest.approx(expected)
    assert table["reference_checks"]["sde"]["passed"]
    assert table["reference_checks"]["sde"]["limit"] == pytest.approx(expected / REFERENCE_MARGIN)
    assert table["reference_checks"]["sde"]["check"] == "esra/data at 768 NFE"
    assert not table["reference_checks"]["ode"]["passed"]
    assert table["unresolved"] == [CHURN_LABEL] and table["nfe_to_plateau"][CHURN_LABEL] is None
    assert table["nfe_to_plateau"]["seeds-3/data"] == 12 and table["nfe_to_plateau"]["euler-maruyama"] == 24
    assert table["ratios"]["euler-maruyama"]["bounds"] == [2.0, 2.0] and CHURN_LABEL not in table["ratios"]


def test_a_failed_sde_reference_check_decides_nothing():
    generator = np.random.default_rng(1)
    data = generator.normal(size=(400, 3))
    reference = data + 1.0
    references = {
        "sde": _result("seeds-3/data", 768, reference),
        "sde_check": _result("esra/data", 768, reference + 0.3),  # 0.27 from the reference: limit 0.03
        "ode": _result("edm-heun", 767, data + 0.5),
    }
    cells = [
        _result("seeds-3/data", 12, reference + 0.01),
        _result("euler-maruyama", 12, reference + 0.3),
        _result("euler-maruyama", 24, reference + 0.01),
    ]
    table = headline_table(cells, references, FeatureStatistics.from_features(data), resamples=20)
    assert not table["reference_checks"]["sde"]["passed"]
    assert table["unresolved"] == ["euler-maruyama", "seeds-3/data"] and table["ratios"] == {}
    assert table["nfe_to_plateau"] == {"seeds-3/data": None, "euler-maruyama": None}
    lines = headline_lines(table, "mixture", "rule")
    assert "| seeds-3/data | unresolved (its reference's check failed) |  |  |  |" in lines
    assert lines[-1] == "Nothing decided: the SDE reference failed its check."


def test_the_cells_run_each_step_count_once_and_the_references_at_the_factor():
    base = CoupledCell("digits", (), "", (), 0, 4, 4)
    methods = [("seeds-3", (("prediction", "data"),)), ("euler-maruyama", ())]
    cells, references = headline_cells(base, (6, 7, 8, 9, 12), methods)
    steps = {(c.method, c.steps) for c in cells}
    assert steps == {("seeds-3", 2), ("seeds-3", 3), ("seeds-3", 4)} | {
        ("euler-maruyama", n) for n in (6, 7, 8, 9, 12)
    }
    assert len(cells) == len(steps)
    assert references["sde"].steps == 8 * 12 // 3 and references["sde_check"].steps == 8 * 12 // 2
    assert set(references) == {"sde", "sde_check", "ode"} and references["ode"].label == "edm-heun"


def test_chunk_seeds_refuse_a_sample_count_that_is_not_whole_chunks():
    assert [size for _, size in chunk_seeds(8, 4, 0)] == [4, 4]
    with pytest.raises(ValueError, match="multiple of the chunk size"):
        chunk_seeds(10, 4, 0)


GAUSSIAN = make_problem("gaussian", (("std", 0.5), ("dim", 4)))
CELL = CoupledCell("gaussian", (), "seeds-2", (("prediction", "data"),), steps=4, samples=12, chunk=3)


def _sample_all():
    return shard_map(
        lambda spec: sample_chunk(GAUSSIAN, CELL, *spec, "cpu")[0], chunk_seeds(CELL.samples, CELL.chunk, 0)
    )


def test_a_path_driven_method_converges_to_its_reference_on_the_same_starts_and_path():
    differences = []
    reference = sample_chunk(GAUSSIAN, replace(CELL, steps=256), 5, 64, "cpu")[0]
    for steps in (8, 32):
        cell = replace(CELL, steps=steps)
        differences.append(float((sample_chunk(GAUSSIAN, cell, 5, 64, "cpu")[0] - reference).square().mean()))
    # strong order 1 on the Gaussian: 4x the steps divide the mean-square difference by ~16; 4 is far below
    assert differences[1] < differences[0] / 4


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
    arguments = [
        "figures",
        "--scale",
        "quick",
        "--results",
        str(tmp_path / "r"),
        "--figures",
        str(tmp_path / "f"),
    ]
    assert main(arguments) == 0
    payload = json.loads((tmp_path / "r" / "learned_quick.json").read_text())
    assert len(payload["strong"]) == len(LEARNED_STRONG_METHODS)
    quick = HEADLINE_SCALES["quick"]
    labels = {CoupledCell("", (), m, o, 0, 0, 0).label for m, o in quick.methods}
    for name, count in (("learned", quick.samples), ("mixture", quick.mixture_samples)):
        part = payload[name]
        assert {r["label"] for r in part["cells"]} == labels == set(part["headline"]["nfe_to_plateau"])
        assert all(r["samples"] == count for r in part["cells"])
        assert set(part["model_error"]) == {"sde", "sde_check", "ode"}
    for name in ("quality_learned_quick.png", "strong_learned_quick.png", "learned_table_quick.md"):
        assert (tmp_path / "f" / name).exists()
    assert "ratio to best SEEDS" in (tmp_path / "r" / "learned_quick.md").read_text()


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_sample_grids_tile_images_of_any_shape(shape):
    from seeds.figures.learned import _tile

    flat = np.arange(4 * math.prod(shape), dtype=np.float64).reshape(4, -1)
    canvas = _tile(flat, shape)
    channels, height, width = shape
    assert canvas.shape[:2] == (2 * height + 1, 2 * width + 1)
    assert canvas.ndim == (2 if channels == 1 else 3)
    # the second image sits right of the first, after one background column
    second = canvas[:height, width + 1 :]
    assert np.array_equal(second.reshape(height, width, -1).transpose(2, 0, 1).ravel(), flat[1])
