"""An exact Brownian path refined only where it is asked about: the fast noise source for sampling.

`BrownianPath` answers every time on a fixed virtual tree at float64 resolution, so a path never depends on
which times were asked for, but every new time costs a descent of that tree (~140 normals per element, about
250 torch.randn_like of x). A sampler that walks once through its sigmas does not need that invariance;
`AdaptiveBrownianPath` builds the path from the queries instead (torchsde's BrownianInterval idea, with
Legendre moments so that every functional is exact; the adaptive path of docs/brownian-paths.md):

* A query beyond the times asked so far opens a new top piece between the last of them and the new time;
  its LEGENDRE_DEGREE + 1 unit Legendre moments are independent standard normals (the piece is disjoint
  from all others), drawn from a counter-based hash of (sample key, element; piece key, moment) only up to
  the degree a functional needs: B needs one, so a noise_sampler query costs one normal per element.
* A functional's increment over a node is w . Z where its Legendre expansion resolves the kernel (tail
  beyond the kept degree at most TAIL_TOLERANCE relative, as in BrownianPath); elsewhere it is the sum over
  the node's two children (split at the midpoint unless the node is already split).
* A query inside a piece splits the node holding it at the query time; the children's moments given the
  parent's have exactly the law `bridge_moment_law(fraction, 7)`, with the split's normals drawn from the
  hash of the parent's key. A node's split point is fixed the first time it is split, for whatever reason.
* An increment is the sum of the top pieces between its ends plus, at each end inside a piece, the sum of
  the left siblings down the tree to it (kept apart, so a short interval never carries a long sum's
  rounding). Values are deterministic functions of the tree, which only grows: an answer never changes when
  asked again, whatever was asked in between.

So the joint law of every answer is exact (to the leaves' 1e-13 truncation) for any query sequence, and a
sample's values are bitwise the same in any batch (elementwise arithmetic only, as in BrownianPath). What is
given up: the path depends on the sequence of queried times (and on which functionals were asked first,
since an unresolved functional fixes midpoint splits), so two grids get two different paths. Use
BrownianPath (or PartitionPath) where one path must serve several grids, e.g. strong-error experiments.

Cost: a forward B query, one normal per element and a few additions (the first moments of the next top
pieces are drawn together where x is small, so that the fixed cost of a tensor operation is shared); a
functional that needs resolution, LEGENDRE_DEGREE + 1 normals per node of its resolution tree (about twice
the leaves); an interior query, the moments along the tree to it, 2 (LEGENDRE_DEGREE + 1) normals per
level. Memory: the tree (a few numbers per node, no tensors), the last _CACHED_INCREMENTS top-piece
increments and in-piece parts per functional, the first moments drawn ahead (at most 2^16 numbers on the
CPU, 2^21 on a GPU, where the hash temporaries of such a draw, 4 int64 per number, are ~64 MB more at its
peak) and on the CPU the hash's workspace (see `seeds.solvers.brownian.normals`).
"""

from __future__ import annotations

import bisect
import functools
import math
from collections import OrderedDict

import numpy as np
import torch

from seeds.solvers._coefficients import LEGENDRE_DEGREE, LEGENDRE_MAX_HALF_LENGTH
from seeds.solvers.brownian.functionals import resolve_functional
from seeds.solvers.brownian.laws import (
    MOMENTS,
    TAIL_TOLERANCE,
    bridge_moment_law,
    combine,
    kernel_values,
    moment_weights,
    relative_tails,
)
from seeds.solvers.brownian.normals import ADAPTIVE_SPLIT_STREAM, ADAPTIVE_TOP_STREAM, node_words
from seeds.solvers.brownian.source import SeededPath

_TOP, _CHILD = 0, 1
# Top-piece increments and in-piece parts kept per functional: a step's start, stages and end.
_CACHED_INCREMENTS = 4
# A time this many float64 ulps (of the largest |lambda|) from a node boundary is that boundary: no sliver
# nodes whose bridge fractions would be a few ulps.
_SNAP_UNITS = 8
# A kernel still unresolved on nodes this much shorter than a leaf is refused (it is not smooth).
_FINEST_FRACTION_OF_A_LEAF = 2.0**-24
# First moments of top pieces drawn ahead in one go, in numbers: large enough that the per-operation cost of
# the hash is shared; on the CPU small enough that its workspace stays in cache and a 20-step run draws few
# it never uses (2^16 measured 1.2-1.3x faster per query than 2^18 at 256 x 64 on the 2-core CPU, 2^15
# slower again); on a GPU, where a draw costs its launches whatever its size, 2^21 (16 MB).
_AHEAD_NUMBERS_CPU, _AHEAD_NUMBERS_GPU = 1 << 16, 1 << 21


class _Node:
    """key: (_TOP, index) for top pieces, numbered in the order they open, or (_CHILD, index) for the
    children of splits; it keys the node's draws."""

    __slots__ = ("left", "right", "key", "split", "children")

    def __init__(self, left: float, right: float, key: tuple[int, int]):
        self.left, self.right, self.key = left, right, key
        self.split = None
        self.children = None


@functools.lru_cache(maxsize=256)
def _bridge_coefficients(fraction: float) -> torch.Tensor:
    """(child row, 1, source): children's moments (left then right) = this applied to (parent's moments,
    the split's normals)."""
    mean_map, _, noise_map = bridge_moment_law(fraction, LEGENDRE_DEGREE)
    return torch.from_numpy(np.hstack([mean_map, noise_map]))[:, None, :]


class AdaptiveBrownianPath(SeededPath):
    """Exact, per-sample-seeded Brownian path on [-log sigma_max, -log sigma_min], refined at the queried times.

    Same arguments, dtypes and queries as BrownianPath (increment, fresh, the noise_sampler call,
    from_sigmas); see the module docstring for what depends on the query sequence.
    """

    def __init__(self, x, sigma_min, sigma_max, seed=0, dtype=None, sigma_data=0.5):
        super().__init__(x, sigma_min, sigma_max, seed, dtype, sigma_data)
        self._snap = _SNAP_UNITS * math.ulp(max(abs(self.lam_lo), abs(self.lam_hi)))
        self._finest = 2 * LEGENDRE_MAX_HALF_LENGTH * _FINEST_FRACTION_OF_A_LEAF
        self._boundaries: list[float] = []  # top piece i spans boundaries[i] .. boundaries[i + 1]
        self._tops: list[_Node] = []
        self._opened = {_TOP: 0, _CHILD: 0}
        # a forward B query draws one normal per element: the first moments of the next top pieces are drawn
        # together, as many as fit one chunk (at small sizes each tensor operation's fixed cost is what the
        # normals cost); the draws are keyed by piece, so drawing ahead never changes a value
        ahead = _AHEAD_NUMBERS_CPU if self.device.type == "cpu" else _AHEAD_NUMBERS_GPU
        self._rows_ahead = max(1, min(16, ahead // (self._batch * self._elements)))
        self._first_moments_ahead: dict = {}
        self._weights: dict = {}
        self._increments: dict = {}  # functional -> OrderedDict(node key -> increment over the top piece)
        self._parts: dict = {}  # functional -> OrderedDict(time -> K(time) - K(its top piece's left end))

    def increment(self, functional, lam_a: float, lam_b: float) -> torch.Tensor:
        """K(lam_b) - K(lam_a) for K = int k dB, k = functional.kernel, as a tensor like x."""
        lam_a, lam_b = self._checked_interval(lam_a, lam_b)
        functional = resolve_functional(functional, self.sigma_data)
        lam_a, lam_b = self._place(lam_a), self._place(lam_b)
        if lam_a == lam_b:
            return self._output(
                torch.zeros(self._batch * self._elements, dtype=torch.float64, device=self.device)
            )
        first, part_a = self._locate(functional, lam_a)
        last, part_b = self._locate(functional, lam_b)
        total = None
        for index in range(first, last):
            piece = self._top_increment(functional, self._tops[index])
            total = piece if total is None else total + piece
        parts = part_b if part_a is None else (-part_a if part_b is None else part_b - part_a)
        if total is None:
            total = parts.clone() if parts is part_b else parts
        elif parts is None:
            total = total.clone() if last == first + 1 else total  # one piece: the cached tensor itself
        else:
            total = total + parts
        return self._output(total)  # never a cached tensor: callers may change what they get in place

    # ----------------------------------------------------------------------------------------- the tree

    def _new_node(self, left: float, right: float, kind: int) -> _Node:
        self._opened[kind] += 1
        return _Node(left, right, (kind, self._opened[kind]))

    def _place(self, lam: float) -> float:
        """lam (in the range: the interval check clamps it) on the tree: snapped to a top boundary within
        _SNAP_UNITS, and covered by top pieces (opening one beyond either end of those asked so far)."""
        bounds = self._boundaries
        if not bounds:
            bounds.append(lam)
            return lam
        index = bisect.bisect_left(bounds, lam)
        for neighbour in (index - 1, index):
            if 0 <= neighbour < len(bounds) and abs(bounds[neighbour] - lam) <= self._snap:
                return bounds[neighbour]
        if index == len(bounds):
            self._tops.append(self._new_node(bounds[-1], lam, _TOP))
            bounds.append(lam)
        elif index == 0:
            self._tops.insert(0, self._new_node(lam, bounds[0], _TOP))
            bounds.insert(0, lam)
        return lam

    def _locate(self, functional, lam: float):
        """(i, part): lam is boundaries[i] (part None) or inside top piece i, part = K(lam) - K(its left end)."""
        index = bisect.bisect_left(self._boundaries, lam)
        if index < len(self._boundaries) and self._boundaries[index] == lam:
            return index, None
        index -= 1
        parts = self._parts.setdefault(functional, OrderedDict())
        if lam not in parts:
            parts[lam] = self._part(functional, self._tops[index], lam)
            if len(parts) > _CACHED_INCREMENTS:
                parts.popitem(last=False)
        return index, parts[lam]

    def _part(self, functional, node: _Node, lam: float) -> torch.Tensor:
        """Sum of the left siblings' increments down the tree from the top piece `node` to lam."""
        moments = self._top_moments(node, MOMENTS)
        total = None
        while True:
            if node.children is None:
                self._split(node, lam)
            elif abs(lam - node.split) <= self._snap:
                lam = node.split
            left, right = node.children
            left_moments, right_moments = self._children_moments(node, moments)
            if lam < node.split:
                node, moments = left, left_moments
                continue
            piece = self._node_increment(functional, left, left_moments)
            total = piece if total is None else total + piece
            if lam == node.split:
                return total
            node, moments = right, right_moments

    def _split(self, node: _Node, at: float) -> None:
        node.split = at
        node.children = (self._new_node(node.left, at, _CHILD), self._new_node(at, node.right, _CHILD))

    # ---------------------------------------------------------------------------------------- the draws

    def _top_moments(self, node: _Node, count: int) -> torch.Tensor:
        """The first `count` unit moments of a top piece: (moment, batch * elements), independent normals."""
        if count > 1 or self._rows_ahead == 1:
            return self._normals(node_words(ADAPTIVE_TOP_STREAM, *node.key, count))
        ahead = self._first_moments_ahead
        if node.key not in ahead:
            keys = [(_TOP, node.key[1] + i) for i in range(self._rows_ahead)]
            rows = self._normals(np.hstack([node_words(ADAPTIVE_TOP_STREAM, *key, 1) for key in keys]))
            ahead.clear()
            ahead.update((key, rows[i : i + 1]) for i, key in enumerate(keys))
        return ahead.pop(node.key)

    def _children_moments(self, node: _Node, moments: torch.Tensor):
        """The two children's moments from the parent's (all of them) and the split's normals."""
        fraction = (node.split - node.left) / (node.right - node.left)
        split_normals = self._normals(node_words(ADAPTIVE_SPLIT_STREAM, *node.key, MOMENTS))
        sources = [*moments.unbind(0), *split_normals.unbind(0)]
        children = combine(_bridge_coefficients(fraction).to(self.device), sources)
        return children[:MOMENTS], children[MOMENTS:]

    def _top_increment(self, functional, node: _Node) -> torch.Tensor:
        cache = self._increments.setdefault(functional, OrderedDict())
        if node.key not in cache:
            cache[node.key] = self._node_increment(functional, node, None)
            if len(cache) > _CACHED_INCREMENTS:
                cache.popitem(last=False)
        return cache[node.key]

    def _node_increment(self, functional, node: _Node, moments) -> torch.Tensor:
        """int over the node of the kernel dB; moments None for a top piece (drawn as far as needed)."""
        weights, degree = self._resolution(functional, node)
        if degree is not None:
            if moments is None:
                moments = self._top_moments(node, degree + 1)
            return combine(weights, moments[: degree + 1])
        if node.right - node.left < self._finest:
            raise ValueError(
                f"the kernel of {functional!r} is not resolved by degree-{LEGENDRE_DEGREE} Legendre moments even "
                f"on [{node.left!r}, {node.right!r}]: kernels must be smooth"
            )
        if moments is None:
            moments = self._top_moments(node, MOMENTS)
        if node.children is None:
            self._split(node, 0.5 * (node.left + node.right))
        left_moments, right_moments = self._children_moments(node, moments)
        left, right = node.children
        return self._node_increment(functional, left, left_moments) + self._node_increment(
            functional, right, right_moments
        )

    def _resolution(self, functional, node: _Node):
        """(moment weights as a float64 CPU tensor, the lowest degree whose tail is within TAIL_TOLERANCE, or
        None)."""
        key = (functional, node.key)
        if key not in self._weights and getattr(functional, "rate", None) == 0:
            # a constant kernel is its mean on any node: no quadrature (the noise_sampler's B, every query)
            weight = functional.scale * math.sqrt(node.right - node.left)
            self._weights[key] = (torch.tensor([weight], dtype=torch.float64), 0)
        if key not in self._weights:
            half = np.array([(node.right - node.left) / 2])
            values = kernel_values(functional.kernel, np.array([(node.left + node.right) / 2]), half)
            weights = moment_weights(values, half)
            within = relative_tails(weights)[0] <= TAIL_TOLERANCE
            degree = int(np.argmax(within)) if within.any() else None
            self._weights[key] = (torch.from_numpy(weights[0, :MOMENTS]), degree)
        return self._weights[key]
