"""Counter-based standard normals: every normal a hash of (sample key, element; row word).

A row word names one normal shared by all samples, (stream, depth, node, moment) for a path's nodes; a
sample key is (seed, index). One key per (sample, element) is mixed once when a path is built, one word per
row on the host, and a normal costs one mix of their xor per 32-bit lane, then sqrt(2) erfinv of an exact
uniform (the values of ndtri, at half the cost). Nothing is stored, and the query order, batch size and
batch composition cannot change a draw: all arithmetic on samples is elementwise (docs/brownian-paths.md).
Everything is torch int64 (or numpy int64, or Python int) arithmetic on 32-bit values, so CPU and GPU hash
alike.
"""

from __future__ import annotations

import math

import numpy as np
import torch

MASK32 = 0xFFFFFFFF
# One stream per kind of draw, distinct across the package, so that no two kinds of draw share a normal.
TREE_LEAF_STREAM, TREE_SPLIT_STREAM, FRESH_STREAM, ADAPTIVE_TOP_STREAM, ADAPTIVE_SPLIT_STREAM = 1, 2, 3, 4, 5
# Normals per chunk (2 MiB per int64 lane of the hash): on the 2-core EPYC measured, chunks 4x larger ran
# 1.5x slower per normal, out of cache.
CHUNK_NUMBERS = 1 << 18
# Two independent 32-bit lanes make a 64-bit key: two streams coincide only with probability 2^-64.
_SAMPLE_SALTS = (0x243F6A88, 0x85A308D3)
_NODE_SALTS = (0x13198A2E, 0x03707344)
_ELEMENT_SALTS = (0x299F31D0, 0x082EFA98)


def mix32(x, scratch=None):
    """A 32-bit avalanche hash (Wellons' lowbias32 with hash-prospector constants) of an int, or of an int64
    numpy array or tensor.

    Both multipliers are below 2^31, so a 32-bit value times either stays below 2^63: no overflow anywhere.
    An array argument is overwritten (augmented assignments work in place): pass a temporary. A tensor
    `scratch` of x's shape takes the shifted copies, which otherwise are three fresh allocations (on the
    CPU, their page faults cost more than the arithmetic).
    """
    x ^= _shifted(x, 16, scratch)
    x *= 0x21F0AAAD
    x &= MASK32
    x ^= _shifted(x, 15, scratch)
    x *= 0x735A2D97
    x &= MASK32
    x ^= _shifted(x, 15, scratch)
    return x


def _shifted(x, bits: int, scratch):
    return x >> bits if scratch is None else torch.bitwise_right_shift(x, bits, out=scratch)


def chain(lane, *words):
    """The lane mixed with each word in turn: a hash of the word sequence."""
    for word in words:
        lane = mix32(lane ^ word)
    return lane


def words64(value: int) -> tuple[int, int]:
    """An int modulo 2^64 as its (low, high) 32-bit words."""
    value %= 1 << 64
    return value & MASK32, value >> 32


def node_words(stream: int, depth: int, node: int, count: int) -> np.ndarray:
    """`row_words` of the first `count` moments of one node, in Python ints: for a few rows, numpy's
    per-call overhead would cost more than the hashing."""
    lanes = []
    for salt in _NODE_SALTS:
        prefix = chain(salt, stream, depth, node & MASK32, node >> 32)
        lanes.append([mix32(prefix ^ moment) for moment in range(count)])
    return np.array(lanes, dtype=np.int64)


def row_words(streams, depths, low, high, moments) -> np.ndarray:
    """Hash words (lane, row) of rows (stream, depth, index = low + 2^32 high, moment), int64 arrays or ints:
    one word per normal, shared by all samples."""
    columns = np.broadcast_arrays(
        *(np.asarray(column, dtype=np.int64) for column in (streams, depths, low, high, moments))
    )
    lanes = []
    for salt in _NODE_SALTS:
        lane = np.full(columns[0].shape, salt, dtype=np.int64)
        for column in columns:
            lane = mix32(lane ^ column)
        lanes.append(lane)
    return np.stack(lanes)


class CounterNormals:
    """The standard normals of one batch: called with hash words (lane, row) from `row_words` or
    `node_words`, it returns the normals (row, batch * elements).

    sample_keys: one (seed, index) pair per sample; elements: numbers per sample. On the CPU the normals are
    hashed in chunks of whole rows through one kept workspace: fresh temporaries of this size cost more in
    page faults than the hash's arithmetic (so an instance is not for two threads at once). On a GPU, in one
    pass through fresh buffers: its caching allocator recycles them at no cost, and every chunk would cost
    its launches. Memory on the CPU: the workspace, 4 int64 per number of the largest chunk hashed.
    """

    def __init__(self, sample_keys, elements: int, device: torch.device):
        self.device = device
        index_hash = mix32(torch.arange(elements, dtype=torch.int64, device=device))
        element_lanes = torch.stack([mix32(index_hash ^ salt) for salt in _ELEMENT_SALTS])
        words = np.array([(*words64(s), i) for s, i in sample_keys], dtype=np.int64).T
        sample_lanes = torch.from_numpy(np.stack([chain(salt, *words) for salt in _SAMPLE_SALTS])).to(device)
        # (lane, batch * elements): a normal is then one mix of this xor its row's word, per lane
        self._element_keys = mix32(sample_lanes[:, :, None] ^ element_lanes[:, None, :]).reshape(2, -1)
        self.numel = self._element_keys.shape[1]
        self._workspace = None

    def __call__(self, words: np.ndarray) -> torch.Tensor:
        words = torch.from_numpy(words).to(self.device)
        rows = words.shape[1]
        normals = torch.empty((rows, self.numel), dtype=torch.float64, device=self.device)
        chunk = max(1, CHUNK_NUMBERS // self.numel) if self.device.type == "cpu" else rows
        for start in range(0, rows, chunk):
            stop = min(rows, start + chunk)
            self._normals_into(normals[start:stop], words[:, start:stop])
        return normals

    def _hash_buffers(self, size: int) -> torch.Tensor:
        if self.device.type != "cpu":
            return torch.empty((2, size), dtype=torch.int64, device=self.device)
        if self._workspace is None or self._workspace.shape[1] < size:
            # a normal tensor even when first drawn under inference mode, so that the path can go on being
            # queried outside it (inference tensors refuse in-place writes there)
            with torch.inference_mode(False):
                self._workspace = torch.empty((2, size), dtype=torch.int64)
        return self._workspace

    def _normals_into(self, out, words):
        size = 2 * words.shape[1] * self.numel
        lanes, scratch = (buffer[:size].view(2, *out.shape) for buffer in self._hash_buffers(size))
        # (lane, row, element)
        torch.bitwise_xor(self._element_keys[:, None, :], words[:, :, None], out=lanes)
        mix32(lanes, scratch)
        # 26 + 26 random bits make k < 2^52, and x = (2k + 1 - 2^52) 2^-52 = k 2^-51 + 2^-52 - 1 is exact: a
        # uniform on (-1, 1) that is never +-1, symmetric, with 1 - |x| exact, so sqrt(2) erfinv(x) is
        # ndtri((k + 1/2) 2^-52) to an ulp in both tails (erfinv takes half the time of ndtri). Every float
        # operation below is exact (power-of-two scalings, sums representable in float64), so their order
        # is free: it is chosen for the fewest passes and allocations, each of which costs about what the
        # arithmetic does at these sizes
        lanes >>= 6
        high, low = lanes.unbind(0)
        out.copy_(low).mul_(2.0**-26).add_(high).mul_(2.0**-25).add_(2.0**-52 - 1)
        out.erfinv_().mul_(math.sqrt(2.0))
