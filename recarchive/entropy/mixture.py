"""Exact mixtures of discretized tables: K components of one `DiscretizedTable`, mixed with
integer weights, coded at 30 bits.

A component's table gives every symbol x an integer start s_k(x) at the table's precision p
(24 for pixels), s_k(n) = 2^p, n a power of two. With integer weights w_k ≥ 0 summing to
2^16, the mixture's cumulative frequency of x is

    C(x) = floor(Σ_k w_k s_k(x) · (2^30 − n) / 2^(p+16)) + x,

which is non-decreasing, rises by at least 1 per symbol (the `+ x`: every symbol stays
codable even where every weight sits on far components), and ends at C(n) = 2^30. It is
computed as (A · (2^30/n − 1)) >> (p + 16 − log2 n), A = Σ w_k s_k(x), whose product stays
below 2^62 for p = 24 and n = 256. Weights at 8 bits had cost 0.04 bits/dim (a component
weighted 0 where it still carried outliers). Weights come from integer logits through a
table of exp values computed with `decimal` (correctly rounded, so the same integers on every
machine), and an integer normalization. Decoding finds the symbol by a binary search over C.

A mixture may also hold count components (`CountComponents`: the causal codec's picture
histograms, `models.causal_histogram`): component s of a lane is the distribution of a run of
counts, h_s(x) = floor(2^p · (c(x) − c(0)) / (c(n) − c(0))) from running sums c of the
counts (uniform where they are all 0), with weight G_s; the table components' weights are
scaled to sum to 2^16 − Σ G_s (`scaled_weights`) and Σ G_s h_s(x) joins the sum A, so C keeps
every property above. h is computed at the symbols looked at only, never as a whole row.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

import numpy as np

from recarchive.ans import Message, kernels
from recarchive.entropy.discretized import DiscretizedTable

PRECISION = 30
WEIGHT_BITS = 16
LOGIT_STEP = 1 / 16  # integer logits are in sixteenths of a nat
EXP_BITS = 20
EXP_SPAN = 256  # logits more than 16 nats below the largest get weight 0


def _exp_table() -> np.ndarray:
    """round(2^20 · exp(−k/16)) for k = 0..EXP_SPAN, correctly rounded (decimal)."""
    with localcontext() as context:  # the process's decimal context is left alone
        context.prec = 40
        scale = Decimal(1 << EXP_BITS)
        return np.array([int((scale * (Decimal(-k) / 16).exp()).to_integral_value())
                         for k in range(EXP_SPAN + 1)], np.int64)


EXP_TABLE = _exp_table()


def mixture_weights(logits: np.ndarray) -> np.ndarray:
    """Integer weights (n, K) summing to 2^WEIGHT_BITS per row from integer logits (n, K):
    the softmax, floored, the remainder given to the largest (the first of equals)."""
    logits = np.asarray(logits, np.int64)
    gap = np.minimum(logits.max(1, keepdims=True) - logits, EXP_SPAN)
    e = EXP_TABLE[gap]
    weights = (e << WEIGHT_BITS) // e.sum(1, keepdims=True)
    first = np.argmax(logits, 1)
    weights[np.arange(len(weights)), first] += (1 << WEIGHT_BITS) - weights.sum(1)
    return weights


@dataclass(frozen=True)
class CountComponents:
    """S count components for n lanes: source s of lane i has running sums
    `counts[firsts[s, i] + x]`, x = 0 … n_symbols, and weight `weights[s, i]`."""

    counts: np.ndarray  # (M,) int64 running sums, one flat array for every source
    firsts: np.ndarray  # (S, n) int64
    weights: np.ndarray  # (S, n) int64, Σ_s < 2^WEIGHT_BITS per lane

    def part(self, lanes: slice) -> CountComponents:
        return CountComponents(self.counts, self.firsts[:, lanes], self.weights[:, lanes])

    def weighted(self, x: np.ndarray, symbols: int, precision: int) -> np.ndarray:
        """Σ_s G_s h_s(x) per lane, x in [0, symbols]."""
        mixed = np.zeros(len(x), np.int64)
        for first, weight in zip(self.firsts, self.weights, strict=True):
            total = self.counts[first + symbols] - self.counts[first]
            below = np.where(total > 0, ((self.counts[first + x] - self.counts[first])
                                         << precision) // np.maximum(total, 1),
                             (x << precision) // symbols)
            mixed += weight * below
        return mixed


def scaled_weights(weights: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Weights (n, K) summing to 2^WEIGHT_BITS scaled to sum to `total` (n,) per row: floored,
    the remainder given to the largest (the first of equals)."""
    scaled = (weights * total[:, None]) >> WEIGHT_BITS
    first = np.argmax(weights, 1)
    scaled[np.arange(len(scaled)), first] += total - scaled.sum(1)
    return scaled


class TableMixture:
    """K located components of `table` with their integer weights, for n lanes, and
    optionally count components."""

    def __init__(self, table: DiscretizedTable, located: list[tuple[np.ndarray, np.ndarray]],
                 weights: np.ndarray, counts: CountComponents | None = None,
                 scaled: bool = False) -> None:
        """`weights` (n, K) sum to 2^16 (or, `scaled`, to 2^16 minus the count components')."""
        self.table = table
        self.counts = counts
        if counts is not None and not scaled:
            weights = scaled_weights(weights, (1 << WEIGHT_BITS) - counts.weights.sum(0))
        self.weights = weights
        self.symbols = table.spec.num_symbols
        self._symbol_bits = self.symbols.bit_length() - 1
        if (self.symbols != 1 << self._symbol_bits
                or table.spec.precision + WEIGHT_BITS + PRECISION - self._symbol_bits > 62):
            raise ValueError(f"no exact mixture of {self.symbols}-symbol "
                             f"{table.spec.precision}-bit tables at {PRECISION} bits")
        self._shift = table.spec.precision + WEIGHT_BITS - self._symbol_bits
        self._factor = (1 << (PRECISION - self._symbol_bits)) - 1
        # the K components side by side, so one table call serves them all
        self._rows = np.concatenate([row for row, _ in located])
        self._wholes = np.concatenate([whole for _, whole in located])
        self._k = len(located)

    def with_counts(self, counts: CountComponents) -> TableMixture:
        """The same components with count components added (their weights scaled to make
        room): the tables are not located again."""
        if self.counts is not None:
            raise ValueError("this mixture holds count components already")
        n = len(self.weights)
        located = [(self._rows[k * n:(k + 1) * n], self._wholes[k * n:(k + 1) * n])
                   for k in range(self._k)]
        return TableMixture(self.table, located, self.weights, counts)

    def part(self, lanes: slice) -> TableMixture:
        """The mixture of a run of its lanes."""
        n = len(self.weights)
        located = [(self._rows[k * n:(k + 1) * n][lanes], self._wholes[k * n:(k + 1) * n][lanes])
                   for k in range(self._k)]
        counts = None if self.counts is None else self.counts.part(lanes)
        return TableMixture(self.table, located, self.weights[lanes], counts, scaled=True)

    def cumulative(self, x: np.ndarray) -> np.ndarray:
        """C(x) for x in [0, n] per lane."""
        last = self.symbols - 1
        n = len(x)
        inside = np.tile(np.minimum(x, last), self._k)
        starts, freqs = self.table.interval(inside, (self._rows, self._wholes))
        ends = np.where(np.tile(x > last, self._k), starts + freqs, starts)
        mixed = (self.weights * ends.reshape(self._k, n).T).sum(1)
        if self.counts is not None:
            mixed += self.counts.weighted(x, self.symbols, self.table.spec.precision)
        return ((mixed * self._factor) >> self._shift) + x

    def _compiled(self) -> tuple | None:
        """The arguments the compiled loops share (None where numba is missing)."""
        if not (kernels.AVAILABLE and not self.table.backend.is_torch):
            return None
        cdf, width, _, _, _ = self.table.bank.search_tables()
        n = len(self.weights)
        counts = self.counts or CountComponents(np.zeros(1, np.int64), np.zeros((0, n), np.int64),
                                                np.zeros((0, n), np.int64))
        return (cdf, width, np.ascontiguousarray(self._rows, np.int64),
                np.ascontiguousarray(self._wholes, np.int64),
                np.ascontiguousarray(self.weights, np.int64),
                np.ascontiguousarray(counts.counts, np.int64),
                np.ascontiguousarray(counts.firsts, np.int64),
                np.ascontiguousarray(counts.weights, np.int64))

    def interval(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start, frequency) of symbols x at `PRECISION` bits."""
        shared = self._compiled()
        if shared is not None:
            starts, freqs = np.empty(len(x), np.int64), np.empty(len(x), np.int64)
            kernels.mixture_intervals(*shared, np.ascontiguousarray(x, np.int64),
                                      self.symbols - 1, self.table.spec.precision,
                                      self._factor, self._shift, starts, freqs)
            return starts, freqs
        start = self.cumulative(x)
        return start, self.cumulative(x + 1) - start

    def find(self, slots: np.ndarray) -> np.ndarray:
        """The symbol whose interval holds each slot (binary search over C)."""
        shared = self._compiled()
        if shared is not None:
            symbols = np.empty(len(slots), np.int64)
            kernels.mixture_find(*shared, np.ascontiguousarray(slots, np.int64),
                                 self.symbols - 1, self.table.spec.precision, self._factor,
                                 self._shift, self._symbol_bits, symbols)
            return symbols
        lo = np.zeros(len(slots), np.int64)
        for bit in reversed(range(self._symbol_bits)):
            mid = lo + (1 << bit)
            lo = np.where(self.cumulative(mid) <= slots, mid, lo)
        return lo


def _on_lanes(starts: np.ndarray, freqs: np.ndarray, lanes: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Intervals on the first len(starts) of `lanes` lanes; the others code the whole range,
    which changes nothing on a push or a pop."""
    pad = lanes - len(starts)
    if not pad:
        return starts, freqs
    return (np.concatenate([starts, np.zeros(pad, np.int64)]),
            np.concatenate([freqs, np.full(pad, 1 << PRECISION, np.int64)]))


def push(message: Message, starts: np.ndarray, freqs: np.ndarray, lanes: int) -> None:
    """Push (start, freq) intervals on the first len(starts) of `lanes` lanes."""
    message.push(*_on_lanes(starts, freqs, lanes), PRECISION)


def pop(message: Message, mixture: TableMixture, lanes: int) -> np.ndarray:
    """Pop the symbols of a mixture on the first n lanes (the inverse of `push`)."""
    symbols = mixture.find(message.peek(PRECISION)[:len(mixture.weights)])
    message.pop(*_on_lanes(*mixture.interval(symbols), lanes), PRECISION)
    return symbols
