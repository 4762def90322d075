"""Compiled loops over lane groups: a whole variable pushed or popped in one call.

A variable of D symbols per chain is coded on `lanes` lanes per chain, D / lanes groups one
after another (each group's pushes change the heads the next group's see). The numpy backend
ran a dozen array operations per group, each over a few hundred lanes, so Python and numpy's
per-call cost was most of the coder's time. These loops do per lane exactly what
`Message.push`, `CdfBank.lookup`, `DiscretizedTable.interval`, `sit_out` and `Message.pop` do
per array, in the same order (lanes in C order of the head array, groups first to last on
push and last to first on pop), so the words on the stack, the heads and the symbols are the
very ones the array code gives; tests hold the two to each other. Integer arithmetic only.

numba compiles them (a declared dependency; without it callers take the array code). They
work on clean messages (no per-lane word counts) whose stack holds the words a pop needs;
`pop_groups` stops before a group that would reach under the stack's bottom and says where, so
the caller codes that group with the array code (which draws clean bits) and comes back.
"""

from __future__ import annotations

import numpy as np

try:
    from numba import njit

    AVAILABLE = True
except ImportError:  # a machine without numba (the device machine's bare Python) codes the
    AVAILABLE = False  # same bytes with the array code, only slower

    def njit(**_options):
        return lambda function: function

LOWER_BOUND = 1 << 31
WORD_MASK = 0xFFFFFFFF


@njit(cache=True, nogil=True)
def push_groups(head: np.ndarray, buf: np.ndarray, size: int, starts: np.ndarray,
                freqs: np.ndarray, lanes: int, precision: int) -> int:
    """Push (chains, D) intervals onto heads (chains·lanes,) and the word stack `buf` (whose
    capacity the caller made room for: at most one word per lane and group); returns the new
    stack size."""
    chains, width = starts.shape
    threshold_shift = 62 - precision
    for t in range(width // lanes):
        for c in range(chains):
            for j in range(lanes):
                lane = c * lanes + j
                column = t * lanes + j
                x = head[lane]
                freq = freqs[c, column]
                if (x >> 1) >= (freq << threshold_shift):
                    buf[size] = x & WORD_MASK
                    size += 1
                    x >>= 32
                quotient = x // freq
                head[lane] = (quotient << precision) + (x - quotient * freq) + starts[c, column]
    return size


@njit(cache=True, nogil=True)
def _search(cdf: np.ndarray, base: int, low: int, high: int, cf: int) -> int:
    """The last cell in [low, high] whose cdf is <= cf (cdf[base + low] <= cf holds)."""
    while low < high:
        middle = (low + high + 1) >> 1
        if cdf[base + middle] <= cf:
            low = middle
        else:
            high = middle - 1
    return low


@njit(cache=True, nogil=True)
def _interval(cdf: np.ndarray, position: int, symbol: int, last: int,
              full: int) -> tuple[int, int]:
    """(start, frequency) of `symbol` at its cell `position` of the flat cdf: symbol 0 takes
    every cell below, symbol `last` every cell above."""
    start = np.int64(cdf[position])
    end = np.int64(cdf[position + 1])
    if symbol == 0:
        start = 0
    if symbol == last:
        end = full
    return start, end - start


@njit(cache=True, nogil=True)
def pop_groups(head: np.ndarray, buf: np.ndarray, size: int, rows: np.ndarray,
               wholes: np.ndarray, active: np.ndarray, cdf: np.ndarray, width: int,
               inverse: np.ndarray, guide: np.ndarray, guide_bits: int, last: int,
               lanes: int, precision: int, first_group: int, symbols: np.ndarray,
               freqs_out: np.ndarray, scratch: np.ndarray) -> tuple[int, int]:
    """Pop groups first_group, first_group - 1, …, 0 of a discretized variable located at
    (rows, wholes) (chains, D); chains where `active` (chains,) is 0 sit out (the whole
    interval). Writes `symbols` and `freqs_out`; returns (the group it stopped before, -1 when
    done; the stack size then)."""
    chains = rows.shape[0]
    mask = (1 << precision) - 1
    full = 1 << precision
    guided = inverse.shape[0] == 0
    # the guide's bounds for every lane first: independent loads, many in flight at once
    # (one lane at a time waited on each one's cache miss)
    lows = np.empty(chains * lanes, np.int64)
    highs = np.empty(chains * lanes, np.int64)
    for t in range(first_group, -1, -1):
        need = 0
        if guided:
            for c in range(chains):
                for j in range(lanes):
                    lane = c * lanes + j
                    slot = (rows[c, t * lanes + j] * ((1 << guide_bits) + 1)
                            + ((head[lane] & mask) >> (precision - guide_bits)))
                    lows[lane] = guide[slot]
                    highs[lane] = guide[slot + 1]
            # and the cdf's line where each search starts, as independent loads too
            touched = 0
            for c in range(chains):
                for j in range(lanes):
                    lane = c * lanes + j
                    touched += cdf[rows[c, t * lanes + j] * width + lows[lane]]
            if touched < 0:  # never (cdf values are >= 0): keeps the loads above
                highs[0] = lows[0]
        for c in range(chains):
            for j in range(lanes):
                lane = c * lanes + j
                column = t * lanes + j
                x = head[lane]
                row = rows[c, column]
                whole = wholes[c, column]
                if guided:
                    cell = _search(cdf, row * width, lows[lane], highs[lane], x & mask)
                else:
                    cell = inverse[(row << precision) + (x & mask)]
                symbol = min(max(cell - last + whole, 0), last)
                start, freq = _interval(cdf, row * width + symbol - whole + last, symbol,
                                        last, full)
                if active[c] == 0:
                    start, freq = 0, full
                x = freq * (x >> precision) + (x & mask) - start
                scratch[lane] = x
                symbols[c, column] = symbol
                freqs_out[c, column] = freq
                if x < LOWER_BOUND:
                    need += 1
        if need > size:
            return t, size  # the array code draws the clean bits under the bottom
        taken = size - need
        for lane in range(chains * lanes):
            x = scratch[lane]
            if x < LOWER_BOUND:
                x = (x << 32) | np.int64(buf[taken])
                taken += 1
            head[lane] = x
        size -= need
    return -1, size


@njit(cache=True, nogil=True)
def locate(mean_fixed: np.ndarray, scale_index: np.ndarray, steps: int, last: int,
           rows: np.ndarray, wholes: np.ndarray) -> None:
    """`DiscretizedTable.locate` per lane: the mean clamped to [0, last·steps], its integer
    part and the row of its scale and fractional part."""
    flat_mean, flat_scale = mean_fixed.reshape(-1), scale_index.reshape(-1)
    flat_rows, flat_wholes = rows.reshape(-1), wholes.reshape(-1)
    top = last * steps
    for k in range(flat_mean.shape[0]):
        mean = min(max(np.int64(flat_mean[k]), 0), top)
        whole = mean // steps
        flat_wholes[k] = whole
        flat_rows[k] = np.int64(flat_scale[k]) * steps + (mean - whole * steps)


@njit(cache=True, nogil=True)
def intervals(cdf: np.ndarray, width: int, rows: np.ndarray, wholes: np.ndarray,
              symbols: np.ndarray, last: int, precision: int, starts: np.ndarray,
              freqs: np.ndarray) -> None:
    """`DiscretizedTable.interval` per lane: each symbol's (start, frequency) in its located
    row, symbol 0 taking every cell below and symbol `last` every cell above."""
    flat_rows, flat_wholes = rows.reshape(-1), wholes.reshape(-1)
    flat_symbols = symbols.reshape(-1)
    flat_starts, flat_freqs = starts.reshape(-1), freqs.reshape(-1)
    full = 1 << precision
    for k in range(flat_rows.shape[0]):
        symbol = np.int64(flat_symbols[k])
        flat_starts[k], flat_freqs[k] = _interval(
            cdf, flat_rows[k] * width + symbol - flat_wholes[k] + last, symbol, last, full)


@njit(cache=True, nogil=True)
def _mixture_cumulative(cdf: np.ndarray, width: int, rows: np.ndarray, wholes: np.ndarray,
                        weights: np.ndarray, counts: np.ndarray, firsts: np.ndarray,
                        count_weights: np.ndarray, lane: int, lanes: int, x: int, last: int,
                        full: int, factor: int, shift: int) -> int:
    """`entropy.mixture.TableMixture.cumulative` of one lane at symbol x in [0, last + 1]
    (`firsts` (S, lanes) with S = 0: no count components; `entropy.mixture.CountComponents`)."""
    mixed = np.int64(0)
    inside = min(x, last)
    for k in range(weights.shape[1]):
        at = k * lanes + lane
        start, freq = _interval(cdf, rows[at] * width + inside - wholes[at] + last, inside,
                                last, full)
        mixed += weights[lane, k] * (start + freq if x > last else start)
    for source in range(firsts.shape[0]):
        first = firsts[source, lane]
        total = counts[first + last + 1] - counts[first]
        if total > 0:
            below = (counts[first + x] - counts[first]) * full // total
        else:
            below = x * full // (last + 1)
        mixed += count_weights[source, lane] * below
    return ((mixed * factor) >> shift) + x


@njit(cache=True, nogil=True)
def mixture_intervals(cdf: np.ndarray, width: int, rows: np.ndarray, wholes: np.ndarray,
                      weights: np.ndarray, counts: np.ndarray, firsts: np.ndarray,
                      count_weights: np.ndarray, symbols: np.ndarray, last: int,
                      precision: int, factor: int, shift: int, starts: np.ndarray,
                      freqs: np.ndarray) -> None:
    """Each lane's symbol's (start, frequency) under its mixture (`TableMixture.interval`)."""
    lanes = symbols.shape[0]
    full = 1 << precision
    for lane in range(lanes):
        x = np.int64(symbols[lane])
        start = _mixture_cumulative(cdf, width, rows, wholes, weights, counts, firsts,
                                    count_weights, lane, lanes, x, last, full, factor, shift)
        starts[lane] = start
        freqs[lane] = _mixture_cumulative(cdf, width, rows, wholes, weights, counts, firsts,
                                          count_weights, lane, lanes, x + 1, last, full, factor,
                                          shift) - start


@njit(cache=True, nogil=True)
def mixture_find(cdf: np.ndarray, width: int, rows: np.ndarray, wholes: np.ndarray,
                 weights: np.ndarray, counts: np.ndarray, firsts: np.ndarray,
                 count_weights: np.ndarray, slots: np.ndarray, last: int, precision: int,
                 factor: int, shift: int, symbol_bits: int, symbols: np.ndarray) -> None:
    """Each lane's symbol whose mixture interval holds its slot (`TableMixture.find`)."""
    lanes = slots.shape[0]
    full = 1 << precision
    for lane in range(lanes):
        lo = np.int64(0)
        for bit in range(symbol_bits - 1, -1, -1):
            mid = lo + (np.int64(1) << bit)
            if _mixture_cumulative(cdf, width, rows, wholes, weights, counts, firsts,
                                   count_weights, lane, lanes, mid, last, full, factor,
                                   shift) <= slots[lane]:
                lo = mid
        symbols[lane] = lo
