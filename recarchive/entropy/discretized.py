"""Integer CDF tables for discretized logistic and Gaussian distributions on an integer grid.

Pixels (256 values) and latent bins (2^k values) are both symbols k in [0, n) coded under a
continuous distribution of mean mu and scale s, discretized to unit cells, with the two edge
cells taking the tails. Tables are indexed, as in CompressAI's scale tables, by a quantized
scale and by the mean's fractional part only: shifting the mean by an integer shifts the cells,
so one row over the 2n-1 relative offsets d = k - floor(mu) serves every integer part. For a
given floor(mu) = m the symbol k covers relative cell d = k - m; symbol 0 also takes every cell
below and symbol n-1 every cell above. Every relative cell has frequency >= 1, so every symbol
does too (tables built without `floor`, for bits-back posteriors, drop cells below one unit of
probability instead), and the table never depends on anything but (family, n, mean steps, scales,
precision): build it once per model and pin it by `sha256`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from recarchive.ans import Array, Backend, CdfBank, Message, kernels
from recarchive.ans.backend import NUMPY
from recarchive.entropy.quantize import pmf_to_cdf

FAMILIES = ("logistic", "gaussian")


def _logistic_cdf(t: float) -> float:
    if t >= 0:
        return 1.0 / (1.0 + math.exp(-t))
    e = math.exp(t)
    return e / (1.0 + e)


def _standard_cdf(family: str):
    if family == "logistic":
        return _logistic_cdf
    if family == "gaussian":
        return lambda t: 0.5 * math.erfc(-t / math.sqrt(2.0))
    raise ValueError(f"unknown distribution family {family!r}; choose one of {FAMILIES}")


@dataclass(frozen=True)
class GridSpec:
    """What a table is built from; equal specs give equal tables."""

    family: str
    num_symbols: int
    mean_steps: int  # the mean's fractional part is quantized to multiples of 1/mean_steps
    scales: tuple[float, ...]
    precision: int

    @staticmethod
    def log_uniform(
        family: str,
        num_symbols: int,
        *,
        scale_min: float,
        scale_max: float,
        num_scales: int,
        mean_steps: int = 16,
        precision: int = 18,
    ) -> GridSpec:
        ratio = math.log(scale_max / scale_min) / max(num_scales - 1, 1)
        scales = tuple(float(scale_min * math.exp(ratio * i)) for i in range(num_scales))
        return GridSpec(family, num_symbols, mean_steps, scales, precision)


class DiscretizedTable:
    """Integer CDFs of a discretized family on [0, n), indexed by (fixed-point mean, scale).

    Means come as integers in units of 1/mean_steps (`mean_fixed`), scales as indices into
    `spec.scales`: both are what an exact integer network emits, so indexing is exact.
    """

    def __init__(self, spec: GridSpec, backend: Backend = NUMPY, cdf: np.ndarray | None = None,
                 floor: bool = True):
        self.spec = spec
        self.backend = backend
        self.floor = floor
        relative = build_relative_cdf(spec, floor) if cdf is None else cdf
        self.bank = CdfBank(relative, spec.precision, backend, allow_empty=not floor)
        self._last = spec.num_symbols - 1
        # on the numpy backend, compiled loops locate and find intervals (the same integers)
        self._compiled = kernels.AVAILABLE and not backend.is_torch

    def to(self, backend: Backend) -> DiscretizedTable:
        return DiscretizedTable(self.spec, backend, self.bank.cdf_numpy, self.floor)

    def sha256(self) -> str:
        unfloored = "" if self.floor else ":no-floor"
        tag = f"discretized:v1{unfloored}:{self.spec}:{self.bank.sha256()}"
        return hashlib.sha256(tag.encode()).hexdigest()

    def locate(self, mean_fixed: Array, scale_index: Array) -> tuple[Array, Array]:
        """(table row, integer mean part) per lane, the mean clamped to [0, n-1]: computed
        once per variable, it serves every lane group's push or pop."""
        steps = self.spec.mean_steps
        if self._compiled:
            mean_fixed = np.ascontiguousarray(mean_fixed)
            row = np.empty(mean_fixed.shape, np.int64)
            whole = np.empty(mean_fixed.shape, np.int64)
            kernels.locate(mean_fixed, np.ascontiguousarray(scale_index), steps, self._last,
                           row, whole)
            return row, whole
        mean_fixed = self.backend.clip(mean_fixed, 0, self._last * steps)
        whole = mean_fixed // steps
        row = scale_index * steps + (mean_fixed - whole * steps)
        return row, whole

    def start_freq(self, symbols: Array, mean_fixed: Array, scale_index: Array):
        return self.interval(symbols, self.locate(mean_fixed, scale_index))

    def interval(self, symbols: Array, located: tuple[Array, Array]) -> tuple[Array, Array]:
        """(start, frequency) of each symbol under its located distribution."""
        row, whole = located
        if self._compiled:
            row, whole, symbols = (np.ascontiguousarray(a) for a in (row, whole, symbols))
            starts = np.empty(row.shape, np.int64)
            freqs = np.empty(row.shape, np.int64)
            cdf, width, _, _, _ = self.bank.search_tables()
            kernels.intervals(cdf, width, row, whole, symbols, self._last, self.spec.precision,
                              starts, freqs)
            return starts, freqs
        cell_starts, cell_freqs = self.bank.start_freq(row, symbols - whole + self._last)
        ends = cell_starts + cell_freqs
        starts = self.backend.where(symbols == 0, 0, cell_starts)
        ends = self.backend.where(symbols == self._last, 1 << self.spec.precision, ends)
        return starts, ends - starts

    def push(self, message: Message, symbols: Array, mean_fixed: Array, scale_index: Array,
             active: Array | None = None) -> None:
        """Code one symbol per lane; lanes where `active` is False sit this step out at no cost."""
        self.push_interval(message, *self.start_freq(symbols, mean_fixed, scale_index), active)

    def push_interval(self, message: Message, starts: Array, freqs: Array,
                      active: Array | None = None) -> None:
        """Push intervals from `interval` (computed for many lane groups at once)."""
        message.push(*self.sit_out(starts, freqs, active), self.spec.precision)

    def pop(self, message: Message, mean_fixed: Array, scale_index: Array,
            active: Array | None = None) -> Array:
        """Decode one symbol per lane (meaningless on lanes where `active` is False)."""
        return self.pop_located(message, self.locate(mean_fixed, scale_index), active)

    def pop_located(self, message: Message, located: tuple[Array, Array],
                    active: Array | None = None) -> Array:
        return self.pop_interval(message, located, active)[0]

    def pop_interval(self, message: Message, located: tuple[Array, Array],
                     active: Array | None = None) -> tuple[Array, Array]:
        """`pop_located`, also giving each lane's coded frequency (the whole range for lanes
        sitting out): what a caller measuring the bits popped needs."""
        symbols = self.symbol_at(message.peek(self.spec.precision), located)
        starts, freqs = self.sit_out(*self.interval(symbols, located), active)
        message.pop(starts, freqs, self.spec.precision)
        return symbols, freqs

    def pop_groups(self, message: Message, located: tuple[Array, Array], lanes: int,
                   active: Array | None = None) -> tuple[Array, Array]:
        """Pop a (chains, D) variable located at `located` from heads (chains, lanes), its
        D / lanes groups of columns last first (the inverse of `Message.push_groups`): the
        symbols and each lane's coded frequency. On the numpy backend one compiled loop does
        every group a clean message's stack holds words for; a group that reaches under the
        stack's bottom (clean bits) is popped here, and the loop goes on after it."""
        row, whole = located
        groups = row.shape[1] // lanes
        if self.backend.is_torch or not message.is_clean or not kernels.AVAILABLE:
            symbols = self.backend.full(tuple(row.shape), 0)
            freqs = self.backend.full(tuple(row.shape), 1)
            for t in reversed(range(groups)):
                cols = slice(t * lanes, (t + 1) * lanes)
                symbols[:, cols], freqs[:, cols] = self.pop_interval(
                    message, (row[:, cols], whole[:, cols]), active)
            return symbols, freqs
        row = np.ascontiguousarray(row, dtype=np.int64)
        whole = np.ascontiguousarray(whole, dtype=np.int64)
        chains = row.shape[0]
        on = (np.ones(chains, dtype=np.int64) if active is None
              else np.ascontiguousarray(np.reshape(active, -1), dtype=np.int64))
        symbols = np.zeros(row.shape, dtype=np.int64)
        freqs = np.ones(row.shape, dtype=np.int64)
        cdf, width, inverse, guide, guide_bits = self.bank.search_tables()
        scratch = np.empty(chains * lanes, dtype=np.int64)
        group = groups - 1
        while group >= 0:
            head = np.ascontiguousarray(message.head, dtype=np.int64).reshape(-1)
            group, size = kernels.pop_groups(
                head, message.stack.reserve(0), len(message.stack), row, whole, on, cdf,
                width, inverse, guide, guide_bits, self._last, lanes, self.spec.precision,
                group, symbols, freqs, scratch)
            message.stack.resize(size)
            message.head = head.reshape(message.lane_shape)
            if group >= 0:  # under the stack's bottom: the array code draws clean bits
                cols = slice(group * lanes, (group + 1) * lanes)
                symbols[:, cols], freqs[:, cols] = self.pop_interval(
                    message, (row[:, cols], whole[:, cols]), active)
                group -= 1
        return symbols, freqs

    def symbol_at(self, slots: Array, located: tuple[Array, Array]) -> Array:
        """The symbol whose interval holds each slot in [0, 2^precision): what `pop` decodes,
        and, with uniform slots, a draw from the coded distribution."""
        row, whole = located
        cells, _, _ = self.bank.lookup(row, slots)
        return self.backend.clip(cells - self._last + whole, 0, self._last)

    def bits(self, symbols: Array, mean_fixed: Array, scale_index: Array) -> Array:
        """−log2 of each symbol's coded probability (float64): its ideal code length."""
        _, freqs = self.start_freq(symbols, mean_fixed, scale_index)
        return self.spec.precision - self.backend.log2(freqs)

    def sit_out(self, starts: Array, freqs: Array, active: Array | None) -> tuple[Array, Array]:
        """The whole interval [0, 2^p) for inactive lanes: pushing or popping it changes nothing."""
        if active is None:
            return starts, freqs
        full = 1 << self.spec.precision
        return self.backend.where(active, starts, 0), self.backend.where(active, freqs, full)

    def mean_fixed(self, mean: Array) -> Array:
        """Float means to the table's fixed point (for callers whose means are exact floats)."""
        steps = self.spec.mean_steps
        if self.backend.is_torch:
            return self.backend.asarray((mean * steps).floor())
        return self.backend.asarray(np.floor(np.asarray(mean) * steps))

    def scale_index(self, scale: Array) -> Array:
        """Nearest scale in the grid, in log space (for callers whose scales are exact floats)."""
        grid = np.log(np.asarray(self.spec.scales))
        scale = self.backend.to_numpy(scale)
        edges = (grid[1:] + grid[:-1]) / 2
        return self.backend.asarray(np.searchsorted(edges, np.log(scale)))


def build_relative_cdf(spec: GridSpec, floor: bool = True) -> np.ndarray:
    """Rows (scale, mean fraction) over the 2n-1 relative cells d = -(n-1) .. n-1; without
    `floor`, cells whose mass is below one unit of 2^-precision get frequency 0."""
    if spec.num_symbols < 2:
        raise ValueError("a discretized table needs at least 2 symbols")
    cdf_of = _standard_cdf(spec.family)
    n = spec.num_symbols
    offsets = range(-(n - 1), n)
    rows = []
    for scale in spec.scales:
        for step in range(spec.mean_steps):
            frac = step / spec.mean_steps
            # Upper edge of each cell but the last; the first and last cells take the tails.
            upper = [cdf_of((d + 0.5 - frac) / scale) for d in offsets[:-1]]
            edges = np.array([0.0, *upper, 1.0])
            pmf = np.maximum(np.diff(edges), 0.0)
            rows.append(pmf)
    return pmf_to_cdf(np.array(rows), spec.precision, floor=int(floor))
