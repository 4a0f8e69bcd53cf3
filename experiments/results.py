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
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import numpy as np

from seeds.experiments.sources import ROOT, code_digest


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


def cell_key(cell) -> str:
    """A stable name for a cell's result file: a hash of all its fields."""
    text = json.dumps(asdict(cell), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class CellStore:
    """One JSON file per finished cell, keyed by the cell's hash: a restarted run skips finished cells.

    `roots` are the modules that compute the cells and `data` the committed files they read; each file records
    the code_digest() of those (their sources and everything they import), and a cell computed by other code
    counts as missing, so a changed computation never reuses a stale result (it is recomputed and
    overwritten), while an edit elsewhere (a figure, the benchmark) keeps the stored cells.
    """

    def __init__(self, folder: Path, roots: tuple[str, ...], data: tuple[Path, ...] = ()):
        self.folder = Path(folder)
        self.roots = tuple(roots)
        self.data = tuple(data)

    @functools.cached_property
    def code(self) -> str:
        return code_digest(self.roots, self.data)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def load(self, key: str):
        path = self.path(key)
        if not path.exists():
            return None
        result = json.loads(path.read_text())
        return result if result.pop("code", None) == self.code else None

    def save(self, key: str, result: dict) -> None:
        atomic_write_json(self.path(key), {**result, "code": self.code, "provenance": provenance()})

    def load_or_run(self, cell, run) -> dict:
        """The stored result of `cell`, or run(cell), saved before it is returned."""
        result = self.load(cell.key())
        if result is None:
            result = run(cell)
            self.save(cell.key(), result)
        return result

    def load_or_run_with_array(self, cell, run, save: bool = True) -> tuple[dict, np.ndarray]:
        """The stored (result, array) of `cell`, or run(cell), stored before it is returned: the array first
        (a .npy beside the result file), so a result file is only ever beside a complete array. `save` is
        False on the ranks that only help."""
        result = self.load(cell.key())
        array_file = self.folder / f"{cell.key()}.npy"
        if result is not None and array_file.exists():
            return result, np.load(array_file)
        result, array = run(cell)
        if save:
            buffer = io.BytesIO()
            np.save(buffer, array)
            atomic_write_bytes(array_file, buffer.getvalue())
            self.save(cell.key(), result)
        return result, array
