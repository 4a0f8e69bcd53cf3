"""One Brownian motion in lambda-time per sample, queried as exact increments of any functional int k(u) dB_u.

The virtual tree of docs/brownian-paths.md (the laws: docs/mathematics.md, "Brownian functionals"):

* Leaves. [lam_lo, lam_hi] is cut into 2^T equal leaves no longer than 2 * LEGENDRE_MAX_HALF_LENGTH. A leaf
  is represented by its MOMENTS unit Legendre moments Z_j = int P_j(v) dB / sd_j; over disjoint leaves they
  are independent standard normals, so every leaf draws its moments directly (no conditioning on
  anything). On a leaf a kernel is its degree-7 Legendre expansion to 1e-14 (analysis/brownian.py), so the
  increment of any functional over a leaf is w . Z with the kernel's moment weights w. This holds for B, M,
  P, Q, every exponential rate in [-1, 1] and Q for any sigma_data; a kernel that the expansion does not
  resolve is refused (its degree 8-15 tail is checked on every leaf).
* Below a leaf, a virtual dyadic tree: a node's two children's moments are drawn from the node's moments
  with `bridge_moment_law` (an exact orthonormal projection, so no ill-conditioned Gram matrix is ever
  factored). A point value K(lam) - K(lam_lo) is the sum of the whole leaves left of lam plus, descending
  from lam's leaf, the increments of the left siblings of the path; the descent stops once lam sits on a
  node boundary.
* Degree falls with depth. The children of a split k levels below a leaf keep the moments up to degree
  q_k only (`SPLIT_DEGREES`): the lowest degree beyond which the parent's expansion of the fastest kernel
  that the leaf check admits (an exponential with leaf tail TAIL_TOLERANCE) has relative tail at most
  TAIL_TOLERANCE. The children's moments up to q given the parent's up to q have exactly the law
  `bridge_moment_law(0.5, q)` (its mean map is the leading block of the full one), so dropping a degree
  only forgets how the children load on the parent's dropped moments, which the parent's kernel weights
  do not see beyond the tolerance: the truncation is the leaves' one, carried down. The schedule depends
  on the depth alone, never on the functionals asked for, so draws never depend on the queries; every node
  a descent uses is checked against it (parent tail beyond q, left sibling tail beyond q) and a kernel it
  does not resolve is refused. Seven levels below a leaf q is 3, from eighteen 1, from forty 0.
* A descent is one linear map. The point's in-leaf part is a fixed linear function of the leaf's moments
  and the split normals along the path: a forward pass on the host (a few dozen products of 8 x 8 and
  8 x 150 matrices) writes each left sibling's moments as a map of those normals, and each functional's
  coefficients are its left siblings' weights times these maps. The device then draws all normals of the
  descent in one hash call (per 2^18 normals) and sums coefficient * normal. Node widths are exact
  (length 2^-depth), not differences of rounded times, so the deepest levels have their exact variance.
* Resolution: query times are rounded to the grid lam_lo + (lam_hi - lam_lo) k 2^-D, with D chosen so that
  the spacing is at most one float64 ulp of the larger |endpoint| (D <= 54), and then to the coarsest node
  within _SNAP_UNITS grid steps: the rounding is a few float64 roundings of lambda itself (what
  lambda = -log sigma already carries), and the law is exact for the rounded times. The second rounding
  lets a nested grid's points, which reach the path a few ulps off their dyadic nodes, stop their descent
  at those nodes.
* Increments are differences of point values (leaf sums and in-leaf parts kept apart, so an interval
  inside one leaf never sees the leaf sums), so they add up over any partition to rounding and do not
  depend on which other points were asked for; the rounding is ~1e-16 of the point values. Point values
  are computed the same way whatever is cached: leaf sums always run from lam_lo, leaf by leaf, and an
  in-leaf part is a function of its grid position alone; caches only skip work. A functional is registered
  on first use and all registered ones are computed together, as they share every draw.
* Randomness: every normal is a counter-based hash (`seeds.solvers.brownian.normals`) of (sample key,
  element; stream, node, moment). All arithmetic on samples is elementwise in an order fixed by the row
  count alone (no matrix products or library reductions, whose association could depend on the batch), so
  a sample's values are bitwise the same in any batch on a given device.

Cost: a point value costs the leaves not yet summed (each 8 normals per element; a forward-moving sampler
sums every leaf once in total) plus one descent: 8 + sum_k (q_k + 1) normals per element, 138 at
D - T = 46 levels (376 at full degree), in about 25 tensor operations per 2^18 normals whatever the depth.
A normal costs about what torch.randn_like spends on one on a CPU, so a new point costs ~140 randn_like of
x; the depth is what exactness at the float64 resolution of lambda asks for. Memory: the cached leaf sums
and point values (12 tensors like x per registered functional), one chunk of normals (2^18 numbers per
working tensor, or one block of 16 rows per element) and on the CPU the hash's workspace.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import scipy.optimize
import torch

from seeds.solvers._coefficients import LEGENDRE_DEGREE, LEGENDRE_MAX_HALF_LENGTH
from seeds.solvers.brownian.functionals import resolve_functional
from seeds.solvers.brownian.laws import (
    MOMENTS,
    TAIL_TOLERANCE,
    bridge_moment_law,
    combine,
    exponential_tails,
    kernel_values,
    moment_weights,
    relative_tails,
)
from seeds.solvers.brownian.normals import (
    CHUNK_NUMBERS,
    MASK32,
    TREE_LEAF_STREAM,
    TREE_SPLIT_STREAM,
    row_words,
)
from seeds.solvers.brownian.source import SeededPath

# Point values and leaf sums kept: a step's start, stages and end, so the next step starts from the cache.
_CACHED_POINTS = 4
_CACHED_LEAF_SUMS = 4
# A descent's coefficient * normal terms are summed pairwise within blocks of this many rows and the blocks
# in order: an association fixed by the row count, so chunking by memory cannot change a bit.
_BLOCK_ROWS = 16
# A query time this many grid steps (each at most one float64 ulp of lambda) from a coarser node is moved
# onto it: a grid's lambda_j = -log(exp(-lambda_j)) lands a few ulps off its dyadic node, and without the move
# every such point would descend all the sub-leaf levels instead of the few down to its node.
_SNAP_UNITS = 8
# Sub-leaf levels the degree schedule covers: D <= 54, so D - T <= 54.
_MAX_SUB_DEPTH = 64


def _split_degree_schedule(levels: int) -> tuple[int, ...]:
    """q_k, k < levels: the degree kept by the children of a split k levels below a leaf.

    The fastest exponential the leaf check admits has rate * leaf half-length = x with leaf tail exactly
    TAIL_TOLERANCE; k levels down its rate * half-length is x 2^-k, and q_k is the lowest degree whose
    tail is within the tolerance there (tails grow with |x|, so every admissible exponential passes).
    """
    fastest = scipy.optimize.brentq(
        lambda x: math.log(exponential_tails(np.array([x]))[0, LEGENDRE_DEGREE] / TAIL_TOLERANCE), 1e-3, 1e2
    )
    tails = exponential_tails(fastest * np.ldexp(1.0, -np.arange(levels)))
    within = tails <= TAIL_TOLERANCE
    degrees = np.where(within.any(axis=1), within.argmax(axis=1), LEGENDRE_DEGREE)
    degrees[0] = LEGENDRE_DEGREE  # the root finder may land an ulp above the tolerance
    return tuple(int(q) for q in np.minimum.accumulate(degrees))


SPLIT_DEGREES = _split_degree_schedule(_MAX_SUB_DEPTH)
# (mean map, noise map) of the children's moments (left rows, then right rows) given the parent's, degree q
_BRIDGES = [bridge_moment_law(0.5, q)[::2] for q in range(MOMENTS)]


class BrownianPath(SeededPath):
    """Exact, per-sample-seeded Brownian path on [-log sigma_max, -log sigma_min] (lambda-time).

    x: a (batch, ...) tensor giving shape, device and the dtype of the noise_sampler call. seed: an int (sample
    i keyed by (seed, i)) or a list of ints, one per sample (sample i keyed by (seed[i], 0)). Answers are
    float64 internally; increments and fresh noise are returned in dtype (float64 when None), the
    noise_sampler call in dtype (x's dtype when None). `BrownianPath.from_sigmas(x, sigmas, seed=...)` takes
    the range from a grid. A functional is any object with kernel(u) (`ExponentialFunctional`,
    `EDMFunctional` with any sigma_data) or one of the names "B", "M", "P", "Q"; "Q" uses `sigma_data`.
    """

    def __init__(self, x, sigma_min, sigma_max, seed=0, dtype=None, sigma_data=0.5):
        super().__init__(x, sigma_min, sigma_max, seed, dtype, sigma_data)
        self._length = self.lam_hi - self.lam_lo
        self._leaf_depth = max(0, math.ceil(math.log2(self._length / (2 * LEGENDRE_MAX_HALF_LENGTH))))
        spacing = math.ulp(max(abs(self.lam_lo), abs(self.lam_hi)))
        self._depth = max(self._leaf_depth, math.ceil(math.log2(self._length / spacing)))
        self._sub_depth = self._depth - self._leaf_depth
        self._split_degrees = SPLIT_DEGREES[: self._sub_depth]
        self._leaf_chunk = max(1, CHUNK_NUMBERS // (MOMENTS * self._batch * self._elements))
        self._functionals: list = []
        self._leaf_weights: list[np.ndarray] = []  # per functional: (leaf, moment)
        self._leaf_sums_cache: OrderedDict = OrderedDict()
        self._points: OrderedDict = OrderedDict()

    # ------------------------------------------------------------------------------------------ queries

    def increment(self, functional, lam_a: float, lam_b: float) -> torch.Tensor:
        """K(lam_b) - K(lam_a) for K = int k dB, k = functional.kernel, as a tensor like x."""
        lam_a, lam_b = self._checked_interval(lam_a, lam_b)
        row = self._resolve(functional)
        leaves_a, partial_a = self._point(self._grid_position(lam_a))
        leaves_b, partial_b = self._point(self._grid_position(lam_b))
        return self._output((leaves_b[row] - leaves_a[row]) + (partial_b[row] - partial_a[row]))

    # ----------------------------------------------------------------------------------------- internals

    def _resolve(self, functional):
        """The functional's row in the stacked values, registering it on first use."""
        functional = resolve_functional(functional, self.sigma_data)
        if functional not in self._functionals:
            leaves = np.arange(1 << self._leaf_depth)
            weights = self._checked_weights(
                functional, self._leaf_depth, leaves, np.full(len(leaves), LEGENDRE_DEGREE), "leaf"
            )
            self._leaf_weights.append(weights)
            self._functionals.append(functional)
            # cached values lack the new row; they are recomputed bitwise identically
            self._leaf_sums_cache.clear()
            self._points.clear()
        return self._functionals.index(functional)

    def _checked_weights(self, functional, depths, indices, degrees, kind) -> np.ndarray:
        """Moment weights (node, moment up to degree 7) of the nodes (depth, index), refusing the functional
        where the tail beyond the node's kept degree exceeds TAIL_TOLERANCE. Widths are exact dyadic
        fractions of the range; only the kernel sees rounded times."""
        depths = np.broadcast_to(depths, indices.shape)
        halves = self._length * np.ldexp(1.0, -(depths + 1))
        centres = self.lam_lo + self._length * np.ldexp(2.0 * indices + 1, -(depths + 1))
        weights = moment_weights(kernel_values(functional.kernel, centres, halves), halves)
        tails = relative_tails(weights)[np.arange(len(indices)), degrees]
        if not np.all(tails <= TAIL_TOLERANCE):
            bad = int(np.argmin(tails <= TAIL_TOLERANCE))
            a, b = centres[bad] - halves[bad], centres[bad] + halves[bad]
            raise ValueError(
                f"the kernel of {functional!r} is not resolved by degree-{degrees[bad]} Legendre moments "
                f"on the {kind} [{a!r}, {b!r}] (relative tail {tails[bad]:.1e} > {TAIL_TOLERANCE:.0e}); "
                "kernels may vary at most about as fast as e^(+-u)"
            )
        return weights[:, :MOMENTS]

    def _grid_position(self, lam: float) -> int:
        """lam's position on the resolution grid, moved to the coarsest node within _SNAP_UNITS of it."""
        fraction = (lam - self.lam_lo) / self._length  # in [0, 1]: the interval check clamps lam
        position = round(math.ldexp(fraction, self._depth))
        for shift in range(self._depth, -1, -1):
            node = round(position / (1 << shift)) << shift
            if abs(node - position) <= _SNAP_UNITS:
                return node
        return position

    def _point(self, position):
        """(sums over the whole leaves left of position, rest from that leaf's start): (functional, batch,
        elements) each, for every registered functional."""
        if position in self._points:
            self._points.move_to_end(position)
            return self._points[position]
        leaf, remainder = divmod(position, 1 << self._sub_depth)
        leaves = self._leaf_sums(leaf)
        partial = self._descend(leaf, remainder) if remainder else torch.zeros_like(leaves)
        self._points[position] = (leaves, partial)
        if len(self._points) > _CACHED_POINTS:
            self._points.popitem(last=False)
        return leaves, partial

    def _leaf_sums(self, leaf):
        """Sums of the increments over leaves 0 .. leaf-1, always accumulated from leaf 0 up, leaf by leaf."""
        cache = self._leaf_sums_cache
        if leaf in cache:
            cache.move_to_end(leaf)
            return cache[leaf]
        start = max((done for done in cache if done <= leaf), default=0)
        shape = (len(self._functionals), self._batch, self._elements)
        total = cache[start] if start else torch.zeros(shape, dtype=torch.float64, device=self.device)
        for first in range(start, leaf, self._leaf_chunk):
            last = min(leaf, first + self._leaf_chunk)
            leaves = np.repeat(np.arange(first, last), MOMENTS)
            moments = np.tile(np.arange(MOMENTS), last - first)
            words = row_words(TREE_LEAF_STREAM, self._leaf_depth, leaves & MASK32, leaves >> 32, moments)
            moments = self._normals(words).view(last - first, MOMENTS, -1)
            weights = torch.tensor(
                np.stack([table[first:last] for table in self._leaf_weights]), device=self.device
            )
            increments = combine(weights[:, :, None, :], moments.unbind(1))  # (functional, leaf, element)
            for i in range(last - first):
                total = total + increments[:, i].view(shape)
        cache[leaf] = total
        if len(cache) > _CACHED_LEAF_SUMS:
            cache.popitem(last=False)
        return total

    def _descend(self, leaf, remainder):
        """Increments from the leaf's start to remainder grid steps into it, through the virtual tree."""
        sub_depth = self._sub_depth
        levels = sub_depth - ((remainder & -remainder).bit_length() - 1)
        degrees = self._split_degrees[:levels]
        sides = [(remainder >> (sub_depth - 1 - k)) & 1 for k in range(levels)]
        parents = [(leaf << k) | (remainder >> (sub_depth - k)) for k in range(levels)]  # at depth T + k
        # rows: the leaf's moments, then each split's normals
        counts = [MOMENTS] + [q + 1 for q in degrees]
        nodes = np.repeat(np.array([leaf] + parents, dtype=np.int64), counts)
        words = row_words(
            np.repeat([TREE_LEAF_STREAM] + [TREE_SPLIT_STREAM] * levels, counts),
            np.repeat(self._leaf_depth + np.array([0, *range(levels)]), counts),
            nodes & MASK32,
            nodes >> 32,
            np.concatenate([np.arange(count) for count in counts]),
        )
        return self._weighted_normal_sum(self._descent_coefficients(parents, sides, degrees), words)

    def _descent_coefficients(self, parents, sides, degrees):
        """c (functional, row): the in-leaf part is sum_r c_r normal_r over the descent's rows (the leaf's
        moments, then each split's normals).

        A forward pass, the same for every functional, writes the moments of each left sibling as a linear
        map of the rows; a functional's coefficients are then its left siblings' weights times those maps,
        one vector-matrix product of its own, so registering another functional cannot change a bit."""
        levels = len(parents)
        offsets = np.cumsum([MOMENTS] + [q + 1 for q in degrees])
        on_path = np.zeros((MOMENTS, offsets[-1]))  # moments of the node the path is in, as maps of the rows
        on_path[:, :MOMENTS] = np.eye(MOMENTS)
        left_maps, left_levels = [], []
        for k in range(levels):
            q = degrees[k]
            mean_map, noise_map = _BRIDGES[q]
            parent = on_path[: q + 1]
            children = mean_map @ parent
            children[:, offsets[k] : offsets[k + 1]] += noise_map
            if sides[k]:
                left_maps.append(children[: q + 1])
                left_levels.append(k)
            on_path = children[q + 1 :] if sides[k] else children[: q + 1]
        left_maps = np.concatenate(left_maps)  # never empty: the last split has the target at its middle
        # every parent is checked against its split's degree (what the children forget of it), every left
        # sibling against its own kept degree (what its weights leave out)
        depths = self._leaf_depth + np.array(list(range(levels)) + [k + 1 for k in left_levels])
        indices = np.array(parents + [2 * parents[k] for k in left_levels], dtype=np.float64)
        checked = np.array(list(degrees) + [degrees[k] for k in left_levels])
        coefficients = np.empty((len(self._functionals), offsets[-1]))
        for functional, row in zip(self._functionals, coefficients):
            weights = self._checked_weights(functional, depths, indices, checked, "sub-leaf node")[levels:]
            row[:] = np.concatenate([w[: degrees[k] + 1] for k, w in zip(left_levels, weights)]) @ left_maps
        return coefficients

    def _weighted_normal_sum(self, coefficients, words):
        """sum_r coefficients[:, r] * normal_r as (functional, batch, elements): terms summed pairwise within
        blocks of _BLOCK_ROWS rows, blocks added in order, chunked by memory in whole blocks."""
        functionals, rows = coefficients.shape
        blocks = -(-rows // _BLOCK_ROWS)
        padded = np.zeros((functionals, blocks * _BLOCK_ROWS))
        padded[:, :rows] = coefficients
        padded = torch.tensor(padded, device=self.device)[:, :, None]
        numel = self._normals.numel
        blocks_per_chunk = max(1, CHUNK_NUMBERS // (_BLOCK_ROWS * numel))
        total = None
        for first in range(0, blocks, blocks_per_chunk):
            last = min(blocks, first + blocks_per_chunk)
            start, stop = first * _BLOCK_ROWS, last * _BLOCK_ROWS
            normals = self._normals(words[:, start:stop])
            if normals.shape[0] < stop - start:  # zero rows pad the last block: 0 * 0 adds exactly nothing
                normals = torch.cat([normals, normals.new_zeros(stop - start - normals.shape[0], numel)])
            terms = (padded[:, start:stop] * normals).view(functionals, last - first, _BLOCK_ROWS, numel)
            width = _BLOCK_ROWS // 2
            while width:
                terms[:, :, :width] += terms[:, :, width : 2 * width]
                width //= 2
            for block in range(last - first):
                total = terms[:, block, 0] if total is None else total + terms[:, block, 0]
        return total.reshape(functionals, self._batch, self._elements)
