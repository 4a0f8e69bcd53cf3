"""The counter-based normals: one hash family, and draws that do not depend on chunking."""

from __future__ import annotations

import numpy as np
import torch

from seeds.solvers._coefficients import LEGENDRE_DEGREE
from seeds.solvers.brownian import normals
from seeds.solvers.brownian.normals import CounterNormals, node_words, row_words


def test_one_node_hash_words_are_the_row_words_of_its_moments():
    """The per-node fast path (Python ints) is the same hash as the vectorised one: one family of draws."""
    for stream, depth, node in [(1, 0, 5), (4, 1, (1 << 33) + 7), (5, 0, 2**40 - 1)]:
        moments = np.arange(LEGENDRE_DEGREE + 1)
        expected = row_words(stream, depth, node & 0xFFFFFFFF, node >> 32, moments)
        assert np.array_equal(node_words(stream, depth, node, LEGENDRE_DEGREE + 1), expected)


def test_normals_do_not_depend_on_how_rows_are_chunked(monkeypatch):
    """On the CPU a request is hashed in chunks of whole rows through a kept workspace; one row per chunk,
    all rows in one chunk, and a smaller request after the workspace grew give the same bits."""
    words = row_words(1, 0, np.arange(5), 0, np.zeros(5, dtype=np.int64))
    keys, elements = [(4, i) for i in range(3)], 2
    together = CounterNormals(keys, elements, torch.device("cpu"))(words)
    monkeypatch.setattr(normals, "CHUNK_NUMBERS", len(keys) * elements)
    draw = CounterNormals(keys, elements, torch.device("cpu"))
    assert torch.equal(draw(words[:, :2]), together[:2])
    assert torch.equal(draw(words), together)
    assert together.shape == (5, 6) and torch.isfinite(together).all()
