"""The one-way architecture: analysis -> generated code -> solvers -> experiments (result files) -> figures.

Every module's `seeds.*` imports are parsed from its source, imports inside functions included, and checked
against the allowed directions (docs/architecture.md):

- analysis imports nothing of ours but analysis;
- solvers import solvers only;
- experiments import solvers and experiments; analysis only in the coefficients job; figures only in jobs;
- figures import figures only (they draw from plain data and result files);
- nothing outside analysis imports sympy or mpmath;

and no two modules import each other, directly or through others. The checker is shown to fail on a planted
back-arrow and a planted cycle.
"""

import ast
import subprocess
import sys
from pathlib import Path

from seeds.experiments.sources import imported_modules

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("analysis", "solvers", "experiments", "figures")
SYMBOLIC = ("sympy", "mpmath")
ALLOWED = {
    "seeds.analysis": ("seeds.analysis",),
    "seeds.solvers": ("seeds.solvers",),
    "seeds.experiments": ("seeds.experiments", "seeds.solvers"),
    "seeds.figures": ("seeds.figures",),
}
# the only modules allowed an arrow beyond their folder's rule: the derivation job runs the code generator,
# and the jobs draw their figures once their result files are written
EXCEPTIONS = {
    "seeds.experiments.jobs.coefficients": ("seeds.analysis",),
    "seeds.experiments.jobs": ("seeds.figures",),
}


def module_sources(root: Path = ROOT) -> dict[str, str]:
    """{module name: source} of every module of the four code folders."""
    sources = {}
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            sources[".".join(("seeds", folder) + parts)] = path.read_text()
    return sources


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """module -> the modules of ours it imports (experiments/sources.py reads them)."""
    modules = set(sources)
    return {
        module: imported_modules(module, source, _is_package(module, modules), modules.__contains__)
        for module, source in sources.items()
    }


def _is_package(module: str, modules: set[str]) -> bool:
    return any(other.startswith(module + ".") for other in modules)


def third_party_imports(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _folder(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _allowed(module: str) -> tuple[str, ...]:
    allowed = ALLOWED[_folder(module)]
    for prefix, extra in EXCEPTIONS.items():
        if module == prefix or module.startswith(prefix + "."):
            allowed = allowed + extra
    return allowed


def direction_violations(sources: dict[str, str]) -> list[str]:
    violations = []
    for module, targets in import_graph(sources).items():
        for target in sorted(targets):
            if not any(target == a or target.startswith(a + ".") for a in _allowed(module)):
                violations.append(f"{module} imports {target}")
        if _folder(module) != "seeds.analysis":
            for package in sorted(third_party_imports(sources[module]) & set(SYMBOLIC)):
                violations.append(f"{module} imports {package} (symbolic code belongs in analysis)")
    return violations


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_imports_follow_the_one_way_directions():
    assert direction_violations(module_sources()) == []


def test_no_import_cycles_between_modules():
    assert import_cycles(import_graph(module_sources())) == []


def test_the_checks_fail_on_a_planted_back_arrow_and_a_planted_cycle():
    sources = module_sources()
    planted = {
        **sources,
        # a back-arrow hidden inside a function: a solver reaching into the experiments
        "seeds.solvers.planted": "def helper():\n    from seeds.experiments import results\n",
        # a figure reading the experiments' code instead of their result files
        "seeds.figures.planted": "from seeds.experiments.results import atomic_write_text\n",
        # a cycle through function-level imports
        "seeds.experiments.planted_a": "def f():\n    from seeds.experiments import planted_b\n",
        "seeds.experiments.planted_b": "def g():\n    import seeds.experiments.planted_a\n",
        # sympy at run time
        "seeds.solvers.planted_symbolic": "import sympy\n",
    }
    violations = direction_violations(planted)
    assert "seeds.solvers.planted imports seeds.experiments.results" in violations
    assert "seeds.figures.planted imports seeds.experiments.results" in violations
    assert any(v.startswith("seeds.solvers.planted_symbolic imports sympy") for v in violations)
    assert ["seeds.experiments.planted_a", "seeds.experiments.planted_b"] in import_cycles(
        import_graph(planted)
    )


def test_the_parser_sees_every_kind_of_import():
    modules = {
        "seeds.solvers",
        "seeds.solvers.methods",
        "seeds.solvers.brownian",
        "seeds.solvers.brownian.tree",
    }
    source = (
        "import seeds.solvers.methods\n"
        "from seeds.solvers import brownian\n"
        "def f():\n"
        "    from . import tree\n"
        "    from seeds.solvers import sample\n"
    )
    laws = "seeds.solvers.brownian.laws"
    assert imported_modules(laws, source, False, (modules | {laws}).__contains__) == {
        "seeds.solvers.methods",
        "seeds.solvers.brownian",
        "seeds.solvers.brownian.tree",
        "seeds.solvers",
    }


def test_importing_the_solvers_and_the_main_job_loads_no_symbolic_code():
    code = (
        "import sys, importlib, pkgutil\n"
        "import seeds.solvers, seeds.experiments.jobs as jobs\n"
        "for info in pkgutil.iter_modules(jobs.__path__):\n"
        "    if info.name != 'coefficients':\n"
        "        importlib.import_module('seeds.experiments.jobs.' + info.name)\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('sympy', 'mpmath') or m.startswith('seeds.analysis')]\n"
        "assert not loaded, loaded\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr
