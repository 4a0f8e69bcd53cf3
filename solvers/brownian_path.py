"""One Brownian motion in lambda-time per sample, queried as exact increments of any functional int k(u) dB_u.

SEEDS-MATH sections 2, 3 and 3b. Design:

* Leaves. [lam_lo, lam_hi] is cut into 2^T equal leaves no longer than 2 * LEGENDRE_MAX_HALF_LENGTH. A leaf
  is represented by its LEGENDRE_DEGREE + 1 unit Legendre moments Z_j = int P_j(v) dB / sd_j; over disjoint
  leaves they are independent standard normals, so every leaf draws its moments directly (no conditioning on
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
  that the leaf check admits (an exponential with leaf tail _TAIL_TOLERANCE) has relative tail at most
  _TAIL_TOLERANCE. The children's moments up to q given the parent's up to q have exactly the law
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
* Randomness: every normal is a counter-based hash of (sample key, element; stream, node, moment), in torch
  int64 ops: one key per (sample, element) is mixed once at construction, one word per (stream, node,
  moment) on the host, and a normal costs one mix of their xor per 32-bit lane, then sqrt(2) erfinv of an
  exact uniform (the values of ndtri, at half the cost). Nothing is stored, and the
  query order, batch size and batch composition cannot change a draw. Sample i of an int seed s has key
  (s, i); a list of seeds gives sample i the key (seeds[i], 0). All arithmetic on samples is elementwise in
  an order fixed by the row count alone (no matrix products or library reductions, whose association could
  depend on the batch), so a sample's values are bitwise the same in any batch on a given device.

Cost: a point value costs the leaves not yet summed (each 8 normals per element; a forward-moving sampler
sums every leaf once in total) plus one descent: 8 + sum_k (q_k + 1) normals per element, 138 at
D - T = 46 levels (376 at full degree), in about 25 tensor operations per 2^18 normals whatever the depth.
A normal costs about what torch.randn_like spends on one on a CPU, so a new point costs ~140 randn_like of
x; the depth is what exactness at the float64 resolution of lambda asks for. Memory: the cached leaf sums
and point values (12 tensors like x per registered functional) and one chunk of normals (2^18 numbers per
working tensor, or one block of 16 rows per element); on the CPU the hash's kept workspace, 4 int64 per
number of the largest chunk hashed (at most 2^18 numbers, or one row of batch * elements).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import scipy.optimize
import torch

from seeds.solvers._coefficients import LEGENDRE_DEGREE, LEGENDRE_MAX_HALF_LENGTH
from seeds.solvers.brownian_laws import bridge_moment_law, legendre_moment_variances
from seeds.solvers.noise import B, resolve_functional

_MASK32 = 0xFFFFFFFF
_MOMENTS = LEGENDRE_DEGREE + 1
# A kernel whose Legendre tail beyond the kept degree exceeds this fraction of its resolved part is
# refused: the derived truncation of B, M, P, Q on leaves is 1e-14.
_TAIL_TOLERANCE = 1e-13
# Point values and leaf sums kept: a step's start, stages and end, so the next step starts from the cache.
_CACHED_POINTS = 4
_CACHED_LEAF_SUMS = 4
# Normals per chunk (2 MiB per int64 lane of the hash): on the 2-core EPYC measured, chunks 4x larger ran
# 1.5x slower per normal, out of cache.
_CHUNK_ELEMENTS = 1 << 18
# A descent's coefficient * normal terms are summed pairwise within blocks of this many rows and the blocks
# in order: an association fixed by the row count, so chunking by memory cannot change a bit.
_BLOCK_ROWS = 16
# A query time this many grid steps (each at most one float64 ulp of lambda) from a coarser node is moved
# onto it: a grid's lambda_j = -log(exp(-lambda_j)) lands a few ulps off its dyadic node, and without the move
# every such point would descend all the sub-leaf levels instead of the few down to its node.
_SNAP_UNITS = 8
# Sub-leaf levels the degree schedule covers: D <= 54, so D - T <= 54.
_MAX_SUB_DEPTH = 64

_LEAF_STREAM, _SPLIT_STREAM, _FRESH_STREAM = 1, 2, 3
# Two independent 32-bit lanes make a 64-bit key: two streams coincide only with probability 2^-64.
_SAMPLE_SALTS = (0x243F6A88, 0x85A308D3)
_NODE_SALTS = (0x13198A2E, 0x03707344)
_ELEMENT_SALTS = (0x299F31D0, 0x082EFA98)


def _mix32(x, scratch=None):
    """A 32-bit avalanche hash (Wellons' lowbias32 with hash-prospector constants) of an int, or of an int64
    numpy array or tensor.

    Both multipliers are below 2^31, so a 32-bit value times either stays below 2^63: no overflow anywhere.
    An array argument is overwritten (augmented assignments work in place): pass a temporary. A tensor
    `scratch` of x's shape takes the shifted copies, which otherwise are three fresh allocations (on the
    CPU, their page faults cost more than the arithmetic).
    """
    x ^= _shifted(x, 16, scratch)
    x *= 0x21F0AAAD
    x &= _MASK32
    x ^= _shifted(x, 15, scratch)
    x *= 0x735A2D97
    x &= _MASK32
    x ^= _shifted(x, 15, scratch)
    return x


def _shifted(x, bits: int, scratch):
    return x >> bits if scratch is None else torch.bitwise_right_shift(x, bits, out=scratch)


def _chain(lane, *words):
    for word in words:
        lane = _mix32(lane ^ word)
    return lane


def _words64(value: int) -> tuple[int, int]:
    value %= 1 << 64
    return value & _MASK32, value >> 32


_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(2 * _MOMENTS)
# P_j(node) for j up to 2 * LEGENDRE_DEGREE + 1: the degrees above LEGENDRE_DEGREE measure the truncation.
_LEGENDRE_VALUES = np.polynomial.legendre.legvander(_GAUSS_NODES, 2 * _MOMENTS - 1).T
_UNIT_VARIANCES = legendre_moment_variances(1.0, 2 * _MOMENTS - 1)
# kernel values at the Gauss nodes @ this = Legendre coefficients
_VALUES_TO_COEFFICIENTS = (_LEGENDRE_VALUES * _GAUSS_WEIGHTS).T / _UNIT_VARIANCES


def _kernel_values(kernel, centres: np.ndarray, halves: np.ndarray) -> np.ndarray:
    """The kernel at the Gauss nodes of the intervals centres -/+ halves: (intervals, 2 * _MOMENTS)."""
    times = centres[:, None] + halves[:, None] * _GAUSS_NODES
    values = torch.as_tensor(kernel(torch.from_numpy(times)), dtype=torch.float64).cpu().numpy()
    return np.broadcast_to(values, times.shape)


def _moment_weights(values: np.ndarray, halves: np.ndarray) -> np.ndarray:
    """Weights w_j = c_j sd_j, j < 2 * _MOMENTS, of kernel values at the Gauss nodes of intervals with these
    half-lengths: c_j the Legendre coefficients, sd_j^2 = half-length * 2/(2j+1)."""
    return (values @ _VALUES_TO_COEFFICIENTS) * np.sqrt(np.multiply.outer(halves, _UNIT_VARIANCES))


def _relative_tails(weights: np.ndarray) -> np.ndarray:
    """tails[..., q] = |(w_q+1, ..., w_15)| / |(w_0, ..., w_q)| for q <= LEGENDRE_DEGREE: the relative size of
    what keeping the moments up to degree q leaves out (0 for a zero kernel)."""
    squares = weights**2
    kept = np.sqrt(np.cumsum(squares, axis=-1)[..., :_MOMENTS])
    dropped = np.sqrt(np.cumsum(squares[..., ::-1], axis=-1)[..., ::-1][..., 1 : _MOMENTS + 1])
    return np.divide(dropped, kept, out=np.zeros_like(kept), where=kept > 0)


def kernel_moment_weights(kernel, a: float, b: float) -> tuple[np.ndarray, float]:
    """(w, tail): int_a^b kernel dB = w . Z + error for the unit Legendre moments Z of [a, b].

    w_j = c_j sd_j with c_j the Legendre coefficients of the kernel on [a, b] and sd_j^2 = half-length
    * 2/(2j+1); tail is |(w_8, ..., w_15)| / |w|, the relative size of what the expansion leaves out.
    """
    weights, tails = interval_moment_weights(kernel, np.array([a]), np.array([b]))
    return weights[0], float(tails[0])


def interval_moment_weights(kernel, lefts: np.ndarray, rights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`kernel_moment_weights` of many intervals at once: weights (interval, moment) and tails (interval)."""
    halves = (rights - lefts) / 2
    weights = _moment_weights(_kernel_values(kernel, (lefts + rights) / 2, halves), halves)
    return weights[:, :_MOMENTS], _relative_tails(weights)[:, LEGENDRE_DEGREE]


def _exponential_tails(rate_times_half_lengths: np.ndarray) -> np.ndarray:
    """_relative_tails of e^(x v) on [-1, 1] for each x: the tails of any exponential with rate * half = x."""
    values = np.exp(np.multiply.outer(rate_times_half_lengths, _GAUSS_NODES))
    return _relative_tails(_moment_weights(values, np.ones(len(rate_times_half_lengths))))


def _split_degree_schedule(levels: int) -> tuple[int, ...]:
    """q_k, k < levels: the degree kept by the children of a split k levels below a leaf.

    The fastest exponential the leaf check admits has rate * leaf half-length = x with leaf tail exactly
    _TAIL_TOLERANCE; k levels down its rate * half-length is x 2^-k, and q_k is the lowest degree whose
    tail is within the tolerance there (tails grow with |x|, so every admissible exponential passes).
    """
    fastest = scipy.optimize.brentq(
        lambda x: math.log(_exponential_tails(np.array([x]))[0, LEGENDRE_DEGREE] / _TAIL_TOLERANCE), 1e-3, 1e2
    )
    tails = _exponential_tails(fastest * np.ldexp(1.0, -np.arange(levels)))
    within = tails <= _TAIL_TOLERANCE
    degrees = np.where(within.any(axis=1), within.argmax(axis=1), LEGENDRE_DEGREE)
    degrees[0] = LEGENDRE_DEGREE  # the root finder may land an ulp above the tolerance
    return tuple(int(q) for q in np.minimum.accumulate(degrees))


SPLIT_DEGREES = _split_degree_schedule(_MAX_SUB_DEPTH)
# (mean map, noise map) of the children's moments (left rows, then right rows) given the parent's, degree q
_BRIDGES = [bridge_moment_law(0.5, q)[::2] for q in range(_MOMENTS)]


def _combine(coefficients, sources):
    """sum_s coefficients[..., s] * sources[s] by elementwise multiply-adds in a fixed order, so that each
    element's value never depends on the batch (a matrix product's reduction order may)."""
    total = coefficients[..., 0] * sources[0]
    for s in range(1, len(sources)):
        total += coefficients[..., s] * sources[s]
    return total


def _node_words(stream: int, depth: int, node: int, count: int) -> np.ndarray:
    """`_row_words` of the first `count` moments of one node, in Python ints: for a few rows, numpy's
    per-call overhead would cost more than the hashing."""
    lanes = []
    for salt in _NODE_SALTS:
        prefix = _chain(salt, stream, depth, node & _MASK32, node >> 32)
        lanes.append([_mix32(prefix ^ moment) for moment in range(count)])
    return np.array(lanes, dtype=np.int64)


def _row_words(streams, depths, low, high, moments) -> np.ndarray:
    """Hash words (lane, row) of rows (stream, depth, index = low + 2^32 high, moment), int64 arrays or ints:
    one word per normal, shared by all samples."""
    columns = np.broadcast_arrays(
        *(np.asarray(column, dtype=np.int64) for column in (streams, depths, low, high, moments))
    )
    lanes = []
    for salt in _NODE_SALTS:
        lane = np.full(columns[0].shape, salt, dtype=np.int64)
        for column in columns:
            lane = _mix32(lane ^ column)
        lanes.append(lane)
    return np.stack(lanes)


class SeededNoise:
    """What every per-sample-seeded path shares: argument checks, the per-(sample, element) hash keys, normals
    from hash words, fresh noise and k-diffusion's noise_sampler call; a subclass supplies
    increment(functional, lam_a, lam_b)."""

    def __init__(self, x, sigma_min, sigma_max, seed=0, dtype=torch.float64, sigma_data=0.5):
        if not isinstance(x, torch.Tensor) or x.dim() == 0:
            raise ValueError("x must be a tensor with a leading batch dimension")
        if x.shape[0] == 0:
            raise ValueError(f"x is an empty batch (shape {tuple(x.shape)}): nothing to draw a path for")
        sigma_min, sigma_max = float(sigma_min), float(sigma_max)
        if not (math.isfinite(sigma_min) and math.isfinite(sigma_max)):
            raise ValueError(f"sigma_min and sigma_max must be finite, got {sigma_min!r} and {sigma_max!r}")
        if not 0 < sigma_min < sigma_max:
            raise ValueError(
                f"need 0 < sigma_min < sigma_max, got sigma_min = {sigma_min!r}, sigma_max = {sigma_max!r}"
            )
        if not (math.isfinite(sigma_data) and sigma_data > 0):
            raise ValueError(f"sigma_data must be positive and finite, got {sigma_data!r}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point type, got {dtype}")
        batch = x.shape[0]
        keys = self._sample_keys(seed, batch)
        self.shape, self.device, self.dtype = tuple(x.shape), x.device, dtype
        self.sigma_data = float(sigma_data)
        self.sigma_range = (sigma_min, sigma_max)
        self.lam_lo, self.lam_hi = -math.log(sigma_max), -math.log(sigma_min)
        self._tolerance = 1e-12 * (1 + max(abs(self.lam_lo), abs(self.lam_hi)))
        self._batch = batch
        self._elements = elements = math.prod(self.shape[1:])
        index_hash = _mix32(torch.arange(elements, dtype=torch.int64, device=self.device))
        element_lanes = torch.stack([_mix32(index_hash ^ salt) for salt in _ELEMENT_SALTS])
        words = np.array([(*_words64(s), i) for s, i in keys], dtype=np.int64).T
        sample_lanes = torch.from_numpy(np.stack([_chain(salt, *words) for salt in _SAMPLE_SALTS])).to(
            self.device
        )
        # (lane, batch * elements): a normal is then one mix of this xor its row's word, per lane
        self._element_keys = _mix32(sample_lanes[:, :, None] ^ element_lanes[:, None, :]).reshape(2, -1)
        self._workspace = None

    @staticmethod
    def _sample_keys(seed, batch):
        if isinstance(seed, (list, tuple)):
            if len(seed) != batch:
                raise ValueError(f"{len(seed)} seeds for a batch of {batch}: give one seed per sample")
            if not all(isinstance(s, int) and not isinstance(s, bool) for s in seed):
                raise ValueError(f"seeds must be ints, got {seed!r}")
            return [(s, 0) for s in seed]
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int or a list of ints, got {seed!r}")
        return [(seed, i) for i in range(batch)]

    def fresh(self, key: int) -> torch.Tensor:
        """A standard normal tensor like x for `key`, independent of the path and of other keys."""
        if not isinstance(key, int) or isinstance(key, bool):
            raise ValueError(f"fresh-noise key must be an int, got {key!r}")
        return self._output(self._normals(_row_words(_FRESH_STREAM, 0, *_words64(key), 0)[:, None])[0])

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        """k-diffusion's noise_sampler: (B(lam_next) - B(lam)) / sqrt(lam_next - lam), lam = -log sigma."""
        lam, lam_next = -math.log(float(sigma)), -math.log(float(sigma_next))
        if lam == lam_next:
            raise ValueError(
                f"noise_sampler needs two different noise levels, got sigma = {float(sigma)!r} twice"
            )
        low, high = min(lam, lam_next), max(lam, lam_next)
        sign = 1.0 if lam < lam_next else -1.0
        return self.increment(B, low, high) * (sign / math.sqrt(high - low))

    def _checked_interval(self, lam_a, lam_b) -> tuple[float, float]:
        lam_a, lam_b = float(lam_a), float(lam_b)
        if not (math.isfinite(lam_a) and math.isfinite(lam_b)) or lam_a > lam_b:
            raise ValueError(f"interval [{lam_a!r}, {lam_b!r}] must be finite with lam_a <= lam_b")
        if lam_a < self.lam_lo - self._tolerance or lam_b > self.lam_hi + self._tolerance:
            raise ValueError(
                f"interval [{lam_a!r}, {lam_b!r}] is outside the path's lambda range "
                f"[{self.lam_lo!r}, {self.lam_hi!r}] (sigma in [{self.sigma_range[0]!r}, {self.sigma_range[1]!r}])"
            )
        return lam_a, lam_b

    def _output(self, value):
        value = value.reshape(self.shape)
        return value if value.dtype == self.dtype else value.to(self.dtype)

    def _normals(self, words):
        """Standard normals (row, batch * elements) for hash words (lane, row) from `_row_words`. On the CPU
        they are hashed in chunks of whole rows through one kept workspace: fresh temporaries of this size
        cost more in page faults than the hash's arithmetic (so a path is not for two threads at once). On a
        GPU, in one pass through fresh buffers: its caching allocator recycles them at no cost, and every
        chunk would cost its launches."""
        words = torch.from_numpy(words).to(self.device)
        rows, numel = words.shape[1], self._element_keys.shape[1]
        normals = torch.empty((rows, numel), dtype=torch.float64, device=self.device)
        chunk = max(1, _CHUNK_ELEMENTS // numel) if self.device.type == "cpu" else rows
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
        size = 2 * words.shape[1] * self._element_keys.shape[1]
        lanes, scratch = (buffer[:size].view(2, *out.shape) for buffer in self._hash_buffers(size))
        # (lane, row, element)
        torch.bitwise_xor(self._element_keys[:, None, :], words[:, :, None], out=lanes)
        _mix32(lanes, scratch)
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


class BrownianPath(SeededNoise):
    """Exact, per-sample-seeded Brownian path on [-log sigma_max, -log sigma_min] (lambda-time).

    x: a (batch, ...) tensor giving shape and device. seed: an int (sample i keyed by (seed, i)) or a list of
    ints, one per sample (sample i keyed by (seed[i], 0)). Answers are float64 internally, returned in dtype.
    A functional is any object with kernel(u) (`ExponentialFunctional`, `EDMFunctional` with any sigma_data)
    or one of the names "B", "M", "P", "Q"; "Q" uses `sigma_data`.
    """

    def __init__(self, x, sigma_min, sigma_max, seed=0, dtype=torch.float64, sigma_data=0.5):
        super().__init__(x, sigma_min, sigma_max, seed, dtype, sigma_data)
        self._length = self.lam_hi - self.lam_lo
        self._leaf_depth = max(0, math.ceil(math.log2(self._length / (2 * LEGENDRE_MAX_HALF_LENGTH))))
        spacing = math.ulp(max(abs(self.lam_lo), abs(self.lam_hi)))
        self._depth = max(self._leaf_depth, math.ceil(math.log2(self._length / spacing)))
        self._sub_depth = self._depth - self._leaf_depth
        self._split_degrees = SPLIT_DEGREES[: self._sub_depth]
        self._leaf_chunk = max(1, _CHUNK_ELEMENTS // (_MOMENTS * self._batch * self._elements))
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
        where the tail beyond the node's kept degree exceeds _TAIL_TOLERANCE. Widths are exact dyadic
        fractions of the range; only the kernel sees rounded times."""
        depths = np.broadcast_to(depths, indices.shape)
        halves = self._length * np.ldexp(1.0, -(depths + 1))
        centres = self.lam_lo + self._length * np.ldexp(2.0 * indices + 1, -(depths + 1))
        weights = _moment_weights(_kernel_values(functional.kernel, centres, halves), halves)
        tails = _relative_tails(weights)[np.arange(len(indices)), degrees]
        if not np.all(tails <= _TAIL_TOLERANCE):
            bad = int(np.argmin(tails <= _TAIL_TOLERANCE))
            a, b = centres[bad] - halves[bad], centres[bad] + halves[bad]
            raise ValueError(
                f"the kernel of {functional!r} is not resolved by degree-{degrees[bad]} Legendre moments "
                f"on the {kind} [{a!r}, {b!r}] (relative tail {tails[bad]:.1e} > {_TAIL_TOLERANCE:.0e}); "
                "kernels may vary at most about as fast as e^(+-u)"
            )
        return weights[:, :_MOMENTS]

    def _grid_position(self, lam: float) -> int:
        """lam's position on the resolution grid, moved to the coarsest node within _SNAP_UNITS of it."""
        fraction = min(max((lam - self.lam_lo) / self._length, 0.0), 1.0)
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
            leaves = np.repeat(np.arange(first, last), _MOMENTS)
            moments = np.tile(np.arange(_MOMENTS), last - first)
            words = _row_words(_LEAF_STREAM, self._leaf_depth, leaves & _MASK32, leaves >> 32, moments)
            moments = self._normals(words).view(last - first, _MOMENTS, -1)
            weights = torch.tensor(
                np.stack([table[first:last] for table in self._leaf_weights]), device=self.device
            )
            increments = _combine(weights[:, :, None, :], moments.unbind(1))  # (functional, leaf, element)
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
        counts = [_MOMENTS] + [q + 1 for q in degrees]
        nodes = np.repeat(np.array([leaf] + parents, dtype=np.int64), counts)
        words = _row_words(
            np.repeat([_LEAF_STREAM] + [_SPLIT_STREAM] * levels, counts),
            np.repeat(self._leaf_depth + np.array([0, *range(levels)]), counts),
            nodes & _MASK32,
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
        offsets = np.cumsum([_MOMENTS] + [q + 1 for q in degrees])
        on_path = np.zeros((_MOMENTS, offsets[-1]))  # moments of the node the path is in, as maps of the rows
        on_path[:, :_MOMENTS] = np.eye(_MOMENTS)
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
        numel = self._element_keys.shape[1]
        blocks_per_chunk = max(1, _CHUNK_ELEMENTS // (_BLOCK_ROWS * numel))
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
