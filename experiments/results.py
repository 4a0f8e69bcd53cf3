"""Result files: atomic writes, provenance (package versions, git commit) and the per-cell resume store."""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, payload) -> None:
    atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=True, default=float) + "\n")


def atomic_write_csv(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def provenance() -> dict:
    versions = {}
    for package in ("seeds-sde", "torch", "numpy", "scipy", "sympy", "mpmath", "matplotlib"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"versions": versions, "python": platform.python_version(), "git_commit": git_commit()}


def git_commit() -> str | None:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return completed.stdout.strip() + ("+dirty" if dirty else "")


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 of what a stored result depends on besides its cell: the solvers' and experiments' sources and
    the committed data beside them (models, fitted mixtures)."""
    digest = hashlib.sha256()
    for folder in ("solvers", "experiments"):
        for file in sorted((ROOT / folder).rglob("*")):
            if file.is_file() and file.suffix in (".py", ".json", ".npz", ".safetensors"):
                digest.update(file.relative_to(ROOT).as_posix().encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


class CellStore:
    """One JSON file per finished cell, keyed by the cell's hash: a restarted run skips finished cells. Each
    file records the code_digest() that computed it, and a cell computed by other code counts as missing, so
    a changed solver or experiment never reuses a stale result (it is recomputed and overwritten)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def load(self, key: str):
        path = self.path(key)
        if not path.exists():
            return None
        result = json.loads(path.read_text())
        return result if result.pop("code", None) == code_digest() else None

    def save(self, key: str, result: dict) -> None:
        atomic_write_json(self.path(key), {**result, "code": code_digest(), "provenance": provenance()})

    def load_or_run(self, cell, run) -> dict:
        """The stored result of `cell`, or run(cell), saved before it is returned."""
        result = self.load(cell.key())
        if result is None:
            result = run(cell)
            self.save(cell.key(), result)
        return result
