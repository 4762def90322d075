"""Integer CDF tables and vectorized symbol look-up for the coder.

A `CdfBank` holds T rows of one alphabet at one precision: row r is a CDF with
cdf[r, 0] = 0, cdf[r, A] = 2^precision and every frequency >= 1 (so every symbol is codable;
`allow_empty` banks, only ever popped from before a symbol is pushed back, may hold symbols of
frequency 0, which no look-up returns).
Each lane names the row it codes with; decoding finds the symbol whose interval holds the
lane's cumulative frequency by one gather from an inverse table when all rows' inverses fit in
memory, else by a binary search run on all lanes in step, over the cells of one slice of
[0, 2^precision) that a guide table names (Chen and Asau's guide tables). All give the same
symbol: the last position whose cdf is <= the cumulative frequency.
"""

from __future__ import annotations

import hashlib
from functools import cached_property

import numpy as np

from recarchive.ans.backend import NUMPY, Array, Backend
from recarchive.ans.message import Message, check_precision

# Decoding by direct look-up (one gather per symbol) when the table of every row's inverse CDF
# stays small (16 Mi entries of 1 to 4 bytes); otherwise a vectorized binary search.
MAX_INVERSE_ENTRIES = 1 << 24
# Otherwise each row keeps, for 2^GUIDE_BITS equal slices of [0, 2^p), the last position whose
# cdf is <= the slice's start: a lane's answer lies between its slice's entry and the next, so
# the search takes as many steps as the widest of those spans among the lanes of a call needs
# (a few near a distribution's peak) instead of log2 of the alphabet.
GUIDE_BITS = 12


class CdfBank:
    """T integer CDF rows of one alphabet size at one precision, on one backend."""

    def __init__(self, cdf: np.ndarray, precision: int, backend: Backend = NUMPY,
                 allow_empty: bool = False) -> None:
        check_precision(precision)
        cdf = np.ascontiguousarray(np.asarray(cdf, dtype=np.int64))
        if cdf.ndim == 1:
            cdf = cdf[None, :]
        validate_cdf(cdf, precision, allow_empty)
        self.precision = precision
        self.allow_empty = allow_empty
        self.num_rows, width = cdf.shape
        self.alphabet_size = width - 1
        self.cdf_numpy = cdf
        self.backend = backend
        self._flat = backend.asarray(cdf.reshape(-1))
        self._inverse = self._guide = None
        if self.num_rows << precision <= MAX_INVERSE_ENTRIES:
            self._inverse = backend.from_numpy(inverse_table(cdf, precision))
        else:
            self._guide_bits = min(GUIDE_BITS, precision)
            self._guide = backend.from_numpy(
                guide_table(cdf, precision, self._guide_bits).reshape(-1))

    def to(self, backend: Backend) -> CdfBank:
        return CdfBank(self.cdf_numpy, self.precision, backend, self.allow_empty)

    def sha256(self) -> str:
        """Hash of precision and table: what a model or archive pins its tables by."""
        h = hashlib.sha256(f"cdfbank:v1:{self.precision}:{self.cdf_numpy.shape}".encode())
        h.update(self.cdf_numpy.astype("<i8").tobytes())
        return h.hexdigest()

    def start_freq(self, rows: Array, symbols: Array) -> tuple[Array, Array]:
        """Interval of each lane's symbol in its row."""
        base = rows * (self.alphabet_size + 1) + symbols
        starts = self._flat[base]
        return starts, self._flat[base + 1] - starts

    def lookup(self, rows: Array, cf: Array) -> tuple[Array, Array, Array]:
        """Symbol, start and frequency of the interval that holds `cf`, per lane."""
        width = self.alphabet_size + 1
        base = rows * width
        if self._inverse is not None:
            position = base + self._inverse[(rows << self.precision) + cf]
        else:
            position = self._guided_search(rows, base, cf)
        starts = self._flat[position]
        return position - base, starts, self._flat[position + 1] - starts

    def search_tables(self) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, int]:
        """(flat cdf, row width, inverse table, guide table, guide bits) for compiled look-ups
        (numpy backend; the one of inverse and guide not used is empty)."""
        empty = np.empty(0, dtype=np.int64)
        inverse = self._inverse if self._inverse is not None else empty
        guide = self._guide if self._guide is not None else empty
        bits = self._guide_bits if self._guide is not None else 0
        return self._search_cdf, self.alphabet_size + 1, inverse, guide, bits

    @cached_property
    def _search_cdf(self) -> np.ndarray:
        """The flat cdf the compiled loops read: int32 where 2^precision fits (half the
        memory traffic of int64 on tables of tens of MB, ~12 % of a pop), else as it is."""
        if self.precision <= 30:
            return np.asarray(self._flat, dtype=np.int32)
        return self._flat

    def _guided_search(self, rows: Array, base: Array, cf: Array) -> Array:
        """Branchless search, all lanes in step: the last position whose cdf is <= cf, between
        the guide's entries for cf's slice and the next (cdf at the first is <= cf, and the
        answer's cdf is below the next slice's start)."""
        slot = rows * ((1 << self._guide_bits) + 1) + (cf >> (self.precision - self._guide_bits))
        position = base + self._guide[slot]
        last = base + self._guide[slot + 1]
        # On an accelerator, reading the widest span back would stall the stream: search them all.
        span = (self.backend.largest(last - position) if self.backend.on_host
                else self.alphabet_size)
        step = 1 << (span.bit_length() - 1) if span else 0
        while step:
            candidate = self.backend.minimum(position + step, last)
            position = self.backend.where(self._flat[candidate] <= cf, candidate, position)
            step >>= 1
        return position


def inverse_table(cdf: np.ndarray, precision: int) -> np.ndarray:
    """For each row and each cf in [0, 2^p), the symbol whose interval holds cf."""
    freqs = np.diff(cdf, axis=-1)
    symbols = np.broadcast_to(np.arange(freqs.shape[-1]), freqs.shape).reshape(-1)
    alphabet = freqs.shape[-1]
    dtype = np.uint8 if alphabet <= 256 else np.int16 if alphabet < 2**15 else np.int32
    return np.repeat(symbols.astype(dtype), freqs.reshape(-1))


def guide_table(cdf: np.ndarray, precision: int, bits: int) -> np.ndarray:
    """For each row and j in [0, 2^bits], the last position whose cdf is <= j · 2^(p - bits)."""
    starts = np.arange((1 << bits) + 1, dtype=np.int64) << (precision - bits)
    guide = np.stack([np.searchsorted(row, starts, side="right") - 1 for row in cdf])
    return guide.astype(np.int16 if cdf.shape[-1] < 2**15 else np.int32)


def validate_cdf(cdf: np.ndarray, precision: int, allow_empty: bool = False) -> None:
    """Refuse a table that cannot be decoded: wrong ends, or a symbol of zero frequency
    (`allow_empty`: a table only popped before it is pushed to, whose look-ups skip them)."""
    if cdf.shape[-1] < 2:
        raise ValueError("a CDF table needs at least one symbol")
    if np.any(cdf[..., 0] != 0) or np.any(cdf[..., -1] != 1 << precision):
        raise ValueError(f"every CDF row must run from 0 to 2^{precision}")
    if np.any(np.diff(cdf, axis=-1) < (0 if allow_empty else 1)):
        raise ValueError("every symbol needs frequency >= 1 in every CDF row")


def push_symbols(message: Message, bank: CdfBank, rows: Array, symbols: Array) -> None:
    """Encode one symbol per lane, lane i under row rows[i] of `bank`."""
    starts, freqs = bank.start_freq(rows, symbols)
    message.push(starts, freqs, bank.precision)


def pop_symbols(message: Message, bank: CdfBank, rows: Array) -> Array:
    """Decode one symbol per lane, lane i under row rows[i] of `bank`."""
    symbols, starts, freqs = bank.lookup(rows, message.peek(bank.precision))
    message.pop(starts, freqs, bank.precision)
    return symbols
