"""Static `seeds.*` imports and their closure (experiments/sources.py), on a small made-up project."""

import textwrap

import pytest

from seeds.experiments.sources import code_digest, import_closure, module_file, seeds_imports


@pytest.fixture
def project(tmp_path):
    files = {
        "experiments/__init__.py": "",
        "experiments/jobs/__init__.py": "",
        "experiments/jobs/run.py": """
            import json

            from seeds.experiments import cells


            def main():
                from seeds.figures import drawing

                drawing.draw(cells.compute())
            """,
        "experiments/cells.py": """
            from .numbers import TWO


            def compute():
                import seeds.solvers.methods

                return TWO
            """,
        "experiments/numbers.py": "TWO = 2\n",
        "figures/__init__.py": "",
        "figures/drawing.py": "def draw(value):\n    return value\n",
        "solvers/__init__.py": "from seeds.solvers.methods import METHOD\n",
        "solvers/methods.py": "METHOD = 'seeds-1'\n",
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def test_module_files_of_modules_and_packages(project):
    assert module_file("seeds.experiments.cells", project) == project / "experiments" / "cells.py"
    assert module_file("seeds.experiments", project) == project / "experiments" / "__init__.py"
    assert module_file("seeds.experiments.missing", project) is None
    assert module_file("numpy", project) is None


def test_imports_inside_functions_relative_imports_and_imported_submodules_count(project):
    # `from package import submodule` names the submodule; the closure adds the packages above it
    assert seeds_imports("seeds.experiments.jobs.run", project) == {
        "seeds.experiments.cells",
        "seeds.figures.drawing",
    }
    assert seeds_imports("seeds.experiments.cells", project) == {
        "seeds.experiments.numbers",
        "seeds.solvers.methods",
    }


def test_the_closure_follows_imports_and_includes_the_packages_above(project):
    assert import_closure(["seeds.experiments.cells"], project) == [
        "seeds.experiments",
        "seeds.experiments.cells",
        "seeds.experiments.numbers",
        "seeds.solvers",
        "seeds.solvers.methods",
    ]


def test_the_digest_changes_with_a_source_in_the_closure_only(project):
    before = code_digest(("seeds.experiments.cells",), root=project)
    (project / "figures" / "drawing.py").write_text("def draw(value):\n    return 2 * value\n")
    assert code_digest(("seeds.experiments.cells",), root=project) == before
    (project / "solvers" / "methods.py").write_text("METHOD = 'seeds-2'\n")
    assert code_digest(("seeds.experiments.cells",), root=project) != before
