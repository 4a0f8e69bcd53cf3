"""The main job (`seeds convergence-plots`): resume after an interruption, atomic result files, and stored
cells that only the code computing them invalidates."""

import json
import shutil

import pytest

from seeds.experiments.jobs import convergence_plots as main_job
from seeds.experiments.metrics.mixture import exact_sample_floor
from seeds.experiments.results import CellStore
from seeds.experiments.sources import ROOT, code_digest, import_closure
from seeds.experiments.verification.convergence import Cell
from seeds.experiments.verification.mixture_quality import MixtureQualityCell


def tiny_cells(quick=False):
    strong = [
        Cell("gaussian", method, options, "lambda", (2, 4), 16, seed=seed, fit_levels=2)
        for seed, (method, options) in enumerate(
            [
                ("seeds-1", (("prediction", "data"),)),
                ("seeds-2", (("prediction", "noise"),)),
                ("euler-maruyama", ()),
            ]
        )
    ]
    quality = [
        MixtureQualityCell("ring", "seeds-2", (("prediction", "data"),), nfe, samples=40, seed=1)
        for nfe in (4, 8)
    ]
    return strong, quality


def floor_for_ring(problem, samples, sigma_min):
    return exact_sample_floor("ring", samples, sigma_min)


@pytest.fixture
def tiny_job(monkeypatch):
    monkeypatch.setattr(main_job, "default_cells", tiny_cells)
    monkeypatch.setattr(main_job, "exact_sample_floor", floor_for_ring)
    monkeypatch.setattr(main_job, "EXACT_LINEAR_METHODS", [("seeds-1", (("prediction", "data"),))])


def test_interrupted_run_resumes_without_recomputing(tiny_job, tmp_path, monkeypatch):
    reference_results = tmp_path / "uninterrupted"
    main_job.run(reference_results, tmp_path / "figures_a", quick=True)

    calls = []
    original = main_job.run_cell

    def interrupted_after_two(cell, progress=None):
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated kill")
        calls.append(cell.key())
        return original(cell, progress)

    results = tmp_path / "resumed"
    monkeypatch.setattr(main_job, "run_cell", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt):
        main_job.run(results, tmp_path / "figures_b", quick=True)
    finished = sorted(p.name for p in (results / "cells").iterdir())
    assert len(finished) == 2 and not any(name.endswith(".partial") for name in finished)
    stamps = {p.name: p.stat().st_mtime_ns for p in (results / "cells").iterdir()}

    recomputed = []

    def counting(cell, progress=None):
        recomputed.append(cell.key())
        return original(cell, progress)

    monkeypatch.setattr(main_job, "run_cell", counting)
    main_job.run(results, tmp_path / "figures_b", quick=True)
    assert len(recomputed) == 1 and recomputed[0] not in calls
    assert all((results / "cells" / name).stat().st_mtime_ns == stamp for name, stamp in stamps.items())

    def cells_of(folder):
        return [
            {k: v for k, v in cell.items() if k != "provenance"}
            for cell in json.loads((folder / "convergence.json").read_text())["cells"]
        ]

    assert cells_of(results) == cells_of(reference_results)
    for name in ("convergence.csv", "quality.csv", "orders_table.md", "exact_linear.json"):
        assert (results / name).exists()
    assert (tmp_path / "figures_b" / "orders_table.md").read_text() == (
        results / "orders_table.md"
    ).read_text()
    assert not list(results.glob("**/*.partial*"))
    for figure in ("strong_gaussian", "quality_ring", "weak_gaussian"):
        assert (tmp_path / "figures_b" / f"{figure}.png").exists() and (
            tmp_path / "figures_b" / f"{figure}.pdf"
        ).exists()


def test_a_cell_computed_by_other_code_is_recomputed(tmp_path):
    store = CellStore(tmp_path, main_job.CELL_ROOTS)
    store.save("cell", {"value": 1})
    assert store.load("cell")["value"] == 1
    stale = json.loads(store.path("cell").read_text())
    assert stale["code"] == code_digest(main_job.CELL_ROOTS)
    stale["code"] = "another version"
    store.path("cell").write_text(json.dumps(stale))
    assert store.load("cell") is None

    class Cell:
        def key(self):
            return "cell"

    assert store.load_or_run(Cell(), lambda cell: {"value": 2})["value"] == 2
    assert store.load("cell")["value"] == 2


def test_the_main_cells_depend_on_their_computation_only():
    closure = import_closure(main_job.CELL_ROOTS)
    computing = {"seeds.experiments.problems.learned", "seeds.solvers", "seeds.experiments.results"}
    assert computing <= set(closure)
    assert not [m for m in closure if m.startswith(("seeds.experiments.jobs", "seeds.figures"))]
    assert "seeds.experiments.config" not in closure


@pytest.fixture
def project_copy(tmp_path):
    """The seeds packages copied to a folder of their own, to edit without touching the project."""
    for package in ("analysis", "solvers", "experiments", "figures"):
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("data", "__pycache__")
        )
    return tmp_path


def append_comment(file):
    with open(file, "a") as source:
        source.write("\n# an edit\n")


def test_an_edit_changes_the_digest_only_inside_the_closure(project_copy):
    before = code_digest(main_job.CELL_ROOTS, root=project_copy)
    assert before == code_digest(main_job.CELL_ROOTS)
    append_comment(project_copy / "experiments" / "jobs" / "bench.py")
    append_comment(project_copy / "experiments" / "config.py")
    append_comment(project_copy / "figures" / "convergence.py")
    assert code_digest(main_job.CELL_ROOTS, root=project_copy) == before
    append_comment(project_copy / "experiments" / "models" / "unet.py")  # imported by the learned problem
    assert code_digest(main_job.CELL_ROOTS, root=project_copy) != before


def test_the_data_a_cell_reads_is_part_of_its_digest(tmp_path):
    data = tmp_path / "mixture.npz"
    data.write_bytes(b"one")
    first = code_digest(main_job.CELL_ROOTS, (data,))
    data.write_bytes(b"two")
    assert code_digest(main_job.CELL_ROOTS, (data,)) != first
