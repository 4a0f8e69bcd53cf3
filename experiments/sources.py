"""Which project sources a computation depends on, read statically from their `seeds.*` imports.

A module's imports are found with `ast`, at every depth (imports inside functions count: they run when the
function does). `import_closure` follows them transitively; `code_digest` hashes the sources of a closure
and the data files a computation reads, so that a stored result is tied to exactly the code that made it.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

# the folder holding the seeds packages: seeds.<package> lives in ROOT/<package> (pyproject's package-dir)
ROOT = Path(__file__).resolve().parent.parent


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The source file of a `seeds.*` module or package under `root`; None when there is none."""
    parts = module.split(".")
    if parts[0] != "seeds" or len(parts) < 2:
        return None
    base = root.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    file = base.with_suffix(".py")
    return file if file.is_file() else None


def imported_modules(module: str, source: str, is_package: bool, exists) -> set[str]:
    """The `seeds.*` modules that `module` (whose text is `source`) imports anywhere, functions included.

    `import seeds.a.b` names seeds.a.b; `from seeds.a import b` names seeds.a.b when that is a module and
    seeds.a when b is a name defined there. Relative imports are resolved against `module`. A name that is
    no module (`exists(name)` false) stands for the nearest module above it.
    """

    def nearest(name: str) -> str | None:
        while name and not exists(name):
            name = name.rpartition(".")[0]
        return name or None

    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(nearest(alias.name) for alias in node.names if alias.name.startswith("seeds."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            if base.split(".")[0] != "seeds":
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if exists(submodule) else nearest(base))
    return found - {None, module}


def seeds_imports(module: str, root: Path = ROOT) -> set[str]:
    """The `seeds.*` modules that `module` imports anywhere in its source (see imported_modules)."""
    file = module_file(module, root)
    if file is None:
        raise ModuleNotFoundError(f"no source for {module} under {root}")
    return imported_modules(
        module, file.read_text(), file.name == "__init__.py", lambda name: module_file(name, root) is not None
    )


def import_closure(roots, root: Path = ROOT) -> list[str]:
    """Every `seeds.*` module that importing `roots` (and calling anything in them) can run: the roots, what
    they import transitively, and the packages above each of them (their __init__ runs first). Sorted."""
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        parent = module.rpartition(".")[0]
        if module_file(parent, root) is not None:
            pending.append(parent)
        pending.extend(seeds_imports(module, root) - seen)
    return sorted(seen)


def code_digest(roots: tuple[str, ...], data: tuple[Path, ...] = (), root: Path = ROOT) -> str:
    """sha256 of the sources in the import closure of `roots` and of the `data` files (a folder stands for
    every file in it), each with its name: what a result computed by `roots` depends on besides its inputs."""
    digest = hashlib.sha256()
    for module in import_closure(roots, root):
        file = module_file(module, root)
        digest.update(file.relative_to(root).as_posix().encode())
        digest.update(file.read_bytes())
    for item in map(Path, data):
        files = sorted(p for p in item.rglob("*") if p.is_file()) if item.is_dir() else [item]
        for file in files:
            digest.update(file.relative_to(item.parent).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]
