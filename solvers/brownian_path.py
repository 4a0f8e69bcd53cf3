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
* Resolution: query times are rounded to the grid lam_lo + (lam_hi - lam_lo) k 2^-D, with D chosen so that
  the spacing is at most one float64 ulp of the larger |endpoint| (D <= 53): the rounding is the float64
  rounding of lambda itself, and the law is exact for the rounded times.
* Increments are differences of point values (leaf sums and in-leaf parts kept apart, so an interval
  inside one leaf never sees the leaf sums), so they add up over any partition to rounding and do not
  depend on which other points were asked for; the rounding is ~1e-16 of the point values. Point values
  are computed the same way whatever is cached: leaf sums always run from lam_lo, leaf by leaf; caches only
  skip work. A functional is registered on first use and all registered ones are computed together, as
  they share every draw.
* Randomness: every node's normals come from a counter-based hash of (sample key, stream, node, moment,
  element), in torch int64 ops: nothing is stored, and the query order, batch size and batch composition
  cannot change a draw. Sample i of an int seed s has key (s, i); a list of seeds gives sample i the key
  (seeds[i], 0). All arithmetic is elementwise (no matrix products whose reduction order could depend on the
  batch), so a sample's values are bitwise the same in any batch on a given device.

Cost: a point value costs the leaves not yet summed (each 8 normals per element; a forward-moving sampler
sums every leaf once in total) plus at most D - T sub-leaf levels (8 normals per element each). Memory:
the cached leaf sums and point values (12 tensors like x per registered functional), one chunk of leaf
moments (at most 2^21 numbers, or one leaf's 8 per element) and one tree node's working set.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch

from seeds.solvers._coefficients import LEGENDRE_DEGREE, LEGENDRE_MAX_HALF_LENGTH
from seeds.solvers.brownian_laws import bridge_moment_law, legendre_moment_variances
from seeds.solvers.noise import B, EDMFunctional, M, P

_MASK32 = 0xFFFFFFFF
_MOMENTS = LEGENDRE_DEGREE + 1
# A leaf kernel whose Legendre tail (degrees 8-15) exceeds this fraction of its resolved part is refused:
# the derived truncation of B, M, P, Q on leaves is 1e-14.
_TAIL_TOLERANCE = 1e-13
# Point values and leaf sums kept: a step's start, stages and end, so the next step starts from the cache.
_CACHED_POINTS = 4
_CACHED_LEAF_SUMS = 4
# Normals generated per chunk of leaves: bounds the int64 temporaries of the hash.
_CHUNK_ELEMENTS = 1 << 22

_LEAF_STREAM, _SPLIT_STREAM, _FRESH_STREAM = 1, 2, 3
# Two independent 32-bit lanes make a 64-bit key: two streams coincide only with probability 2^-64.
_SAMPLE_SALTS = (0x243F6A88, 0x85A308D3)
_NODE_SALTS = (0x13198A2E, 0x03707344)
_ELEMENT_SALTS = (0x299F31D0, 0x082EFA98)


def _mix32(x):
    """A 32-bit avalanche hash (Wellons' lowbias32 with hash-prospector constants) of an int or int64 tensor.

    Both multipliers are below 2^31, so a 32-bit value times either stays below 2^63: no overflow anywhere.
    A tensor argument is overwritten (augmented assignments work in place): pass a temporary.
    """
    x ^= x >> 16
    x *= 0x21F0AAAD
    x &= _MASK32
    x ^= x >> 15
    x *= 0x735A2D97
    x &= _MASK32
    x ^= x >> 15
    return x


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


def kernel_moment_weights(kernel, a: float, b: float) -> tuple[np.ndarray, float]:
    """(w, tail): int_a^b kernel dB = w . Z + error for the unit Legendre moments Z of [a, b].

    w_j = c_j sd_j with c_j the Legendre coefficients of the kernel on [a, b] and sd_j^2 = half-length
    * 2/(2j+1); tail is |(w_8, ..., w_15)| / |w|, the relative size of what the expansion leaves out.
    """
    half = (b - a) / 2
    times = (a + b) / 2 + half * _GAUSS_NODES
    values = torch.as_tensor(kernel(torch.from_numpy(times)), dtype=torch.float64).cpu().numpy()
    values = np.broadcast_to(values, times.shape)
    coefficients = (_LEGENDRE_VALUES * _GAUSS_WEIGHTS) @ values / _UNIT_VARIANCES
    weights = coefficients * np.sqrt(half * _UNIT_VARIANCES)
    resolved = np.linalg.norm(weights[:_MOMENTS])
    tail = np.linalg.norm(weights[_MOMENTS:]) / resolved if resolved > 0 else 0.0
    return weights[:_MOMENTS], float(tail)


def _combine(coefficients, sources):
    """sum_s coefficients[..., s] * sources[s] by elementwise multiply-adds in a fixed order, so that each
    element's value never depends on the batch (a matrix product's reduction order may)."""
    total = coefficients[..., 0] * sources[0]
    for s in range(1, len(sources)):
        total += coefficients[..., s] * sources[s]
    return total


class BrownianPath:
    """Exact, per-sample-seeded Brownian path on [-log sigma_max, -log sigma_min] (lambda-time).

    x: a (batch, ...) tensor giving shape and device. seed: an int (sample i keyed by (seed, i)) or a list of
    ints, one per sample (sample i keyed by (seed[i], 0)). Answers are float64 internally, returned in dtype.
    A functional is any object with kernel(u) (`ExponentialFunctional`, `EDMFunctional` with any sigma_data)
    or one of the names "B", "M", "P", "Q"; "Q" uses `sigma_data`.
    """

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
        self._length = self.lam_hi - self.lam_lo
        self._leaf_depth = max(0, math.ceil(math.log2(self._length / (2 * LEGENDRE_MAX_HALF_LENGTH))))
        spacing = math.ulp(max(abs(self.lam_lo), abs(self.lam_hi)))
        self._depth = max(self._leaf_depth, math.ceil(math.log2(self._length / spacing)))
        self._sub_depth = self._depth - self._leaf_depth
        self._tolerance = 1e-12 * (1 + max(abs(self.lam_lo), abs(self.lam_hi)))

        self._batch = batch
        self._elements = elements = math.prod(self.shape[1:])
        index_hash = _mix32(torch.arange(elements, dtype=torch.int64, device=self.device))
        self._element_hash = torch.stack([_mix32(index_hash ^ salt) for salt in _ELEMENT_SALTS])[
            :, None, None, None, :
        ]
        self._sample_lanes = torch.tensor(
            [[_chain(salt, *_words64(s), i) for s, i in keys] for salt in _SAMPLE_SALTS],
            dtype=torch.int64,
            device=self.device,
        )
        self._moment_index = torch.arange(_MOMENTS, dtype=torch.int64, device=self.device)[
            :, None, None, None
        ]
        mean_map, _, noise_map = bridge_moment_law(0.5, LEGENDRE_DEGREE)
        # children moments = [mean_map | noise_map] @ (parent moments, split normals); rows: left then right
        self._child_maps_host = np.hstack([mean_map, noise_map]).reshape(2, _MOMENTS, 2 * _MOMENTS)
        self._child_maps = torch.tensor(self._child_maps_host, device=self.device)[:, :, None, None, :]
        self._leaf_chunk = max(1, _CHUNK_ELEMENTS // (2 * _MOMENTS * batch * elements))
        self._functionals: list = []
        self._leaf_weight_cache: dict = {}
        self._last_chunk = (None, None)
        self._leaf_sums_cache: OrderedDict = OrderedDict()
        self._points: OrderedDict = OrderedDict()

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

    # ------------------------------------------------------------------------------------------ queries

    def increment(self, functional, lam_a: float, lam_b: float) -> torch.Tensor:
        """K(lam_b) - K(lam_a) for K = int k dB, k = functional.kernel, as a tensor like x."""
        lam_a, lam_b = float(lam_a), float(lam_b)
        if not (math.isfinite(lam_a) and math.isfinite(lam_b)) or lam_a > lam_b:
            raise ValueError(f"interval [{lam_a!r}, {lam_b!r}] must be finite with lam_a <= lam_b")
        if lam_a < self.lam_lo - self._tolerance or lam_b > self.lam_hi + self._tolerance:
            raise ValueError(
                f"interval [{lam_a!r}, {lam_b!r}] is outside the path's lambda range "
                f"[{self.lam_lo!r}, {self.lam_hi!r}] (sigma in [{self.sigma_range[0]!r}, {self.sigma_range[1]!r}])"
            )
        row = self._resolve(functional)
        leaves_a, partial_a = self._point(self._grid_position(lam_a))
        leaves_b, partial_b = self._point(self._grid_position(lam_b))
        return self._output((leaves_b[row] - leaves_a[row]) + (partial_b[row] - partial_a[row]))

    def fresh(self, key: int) -> torch.Tensor:
        """A standard normal tensor like x for `key`, independent of the path and of other keys."""
        if not isinstance(key, int) or isinstance(key, bool):
            raise ValueError(f"fresh-noise key must be an int, got {key!r}")
        return self._output(self._normals(_FRESH_STREAM, 0, [key], 1)[0, 0])

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

    # ----------------------------------------------------------------------------------------- internals

    def _resolve(self, functional):
        """The functional's row in the stacked values, registering it on first use."""
        if isinstance(functional, str):
            named = {"B": B, "M": M, "P": P, "Q": EDMFunctional(self.sigma_data)}
            if functional not in named:
                raise ValueError(f"unknown functional {functional!r}: the named ones are {sorted(named)}")
            functional = named[functional]
        if not callable(getattr(functional, "kernel", None)):
            raise ValueError(f"{functional!r} has no kernel(u): not a Brownian functional")
        if functional not in self._functionals:
            for leaf in range(1 << self._leaf_depth):
                self._leaf_weights(functional, leaf)
            self._functionals.append(functional)
            # cached values lack the new row; they are recomputed bitwise identically
            self._leaf_sums_cache.clear()
            self._points.clear()
        return self._functionals.index(functional)

    def _output(self, value):
        return value.reshape(self.shape).to(self.dtype)

    def _grid_position(self, lam: float) -> int:
        fraction = min(max((lam - self.lam_lo) / self._length, 0.0), 1.0)
        return round(math.ldexp(fraction, self._depth))

    def _time(self, position: int) -> float:
        return self.lam_lo + self._length * math.ldexp(position, -self._depth)

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
        size = self._leaf_chunk
        for chunk in range(start // size, -(-leaf // size)):
            first, last = max(start, chunk * size), min(leaf, (chunk + 1) * size)
            moments = self._leaf_chunk_moments(chunk)[:, first - chunk * size : last - chunk * size]
            weights = np.stack(
                [
                    [self._leaf_weights(functional, i) for i in range(first, last)]
                    for functional in self._functionals
                ]
            )
            weights = torch.tensor(weights, device=self.device)[:, :, None, None, :]
            increments = _combine(weights, moments)
            for i in range(last - first):
                total = total + increments[:, i]
        cache[leaf] = total
        if len(cache) > _CACHED_LEAF_SUMS:
            cache.popitem(last=False)
        return total

    def _leaf_chunk_moments(self, chunk):
        """Moments (moment, leaf, batch, elements) of one chunk of leaves; the last chunk is kept, as the
        next query usually sums or descends into the same leaves."""
        if self._last_chunk[0] != chunk:
            size = self._leaf_chunk
            leaves = list(range(chunk * size, min((chunk + 1) * size, 1 << self._leaf_depth)))
            self._last_chunk = (chunk, self._normals(_LEAF_STREAM, self._leaf_depth, leaves, _MOMENTS))
        return self._last_chunk[1]

    def _leaf_weights(self, functional, leaf):
        if (functional, leaf) in self._leaf_weight_cache:
            return self._leaf_weight_cache[(functional, leaf)]
        size = 1 << self._sub_depth
        a, b = self._time(leaf * size), self._time((leaf + 1) * size)
        weights, tail = kernel_moment_weights(functional.kernel, a, b)
        if not tail <= _TAIL_TOLERANCE:
            raise ValueError(
                f"the kernel of {functional!r} is not resolved by degree-{LEGENDRE_DEGREE} Legendre moments "
                f"on the leaf [{a!r}, {b!r}] (relative tail {tail:.1e} > {_TAIL_TOLERANCE:.0e}); kernels "
                "may vary at most about as fast as e^(+-u)"
            )
        self._leaf_weight_cache[(functional, leaf)] = weights
        return weights

    def _descend(self, leaf, remainder):
        """Increments from the leaf's start to remainder grid steps into it, through the virtual tree."""
        chunk, offset = divmod(leaf, self._leaf_chunk)
        if self._last_chunk[0] == chunk:
            moments = self._last_chunk[1][:, offset].unbind(0)
        else:
            moments = self._normals(_LEAF_STREAM, self._leaf_depth, [leaf], _MOMENTS)[:, 0].unbind(0)
        depth, index = self._leaf_depth, leaf
        start, size = leaf << self._sub_depth, 1 << self._sub_depth
        target = start + remainder
        partial = None
        while target != start:
            size >>= 1
            middle = start + size
            sources = moments + self._normals(_SPLIT_STREAM, depth, [index], _MOMENTS)[:, 0].unbind(0)
            side = int(target >= middle)
            if side:
                a, b = self._time(start), self._time(middle)
                # one product per functional: a stacked matrix product could round a row differently
                rows = [
                    kernel_moment_weights(f.kernel, a, b)[0] @ self._child_maps_host[0]
                    for f in self._functionals
                ]
                rows = torch.tensor(np.stack(rows), device=self.device)[:, None, None, :]
                contribution = _combine(rows, sources)
                partial = contribution if partial is None else partial + contribution
                start = middle
            moments = _combine(self._child_maps[side], sources).unbind(0)
            depth, index = depth + 1, 2 * index + side
        return partial

    def _normals(self, stream, depth, indices, count):
        """Standard normals (count, len(indices), batch, elements) for nodes (depth, index) of one stream."""
        node_words = [
            [_chain(salt, stream, depth, *_words64(index)) for index in indices] for salt in _NODE_SALTS
        ]
        nodes = torch.tensor(node_words, dtype=torch.int64, device=self.device)  # (lane, node)
        keys = _mix32(self._sample_lanes[:, None, :] ^ nodes[:, :, None])  # (lane, node, batch)
        keys = _mix32(
            keys[:, None, :, :, None] ^ self._moment_index[:count]
        )  # (lane, moment, node, batch, 1)
        words = _mix32(keys ^ self._element_hash)  # (lane, moment, node, batch, element)
        # 26 + 26 random bits and a half-cell offset: uniforms on (0, 1) exactly representable, never 0 or 1
        cells, low = words.unbind(0)
        cells >>= 6
        cells <<= 26
        low >>= 6
        cells += low
        uniforms = cells.to(torch.float64)
        uniforms += 0.5
        uniforms *= 2.0**-52
        return torch.special.ndtri(uniforms)
