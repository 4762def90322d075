"""Entropy coding of a REC choice: the bin index, then the local index inside the bin.

What is sent per block is (bin, n). The bin is uniform: averaged over the data, the chosen
sample is distributed as the prior (the posterior averaged over data is the prior), and every
bin has prior mass 2**-sum(bits), so sum(bits) raw bits is the best code the decoder can use
without knowing Q. It goes as per-lane uniform digits of at most 16 bits each.

The local index n >= 1 goes under an `IndexCode`: one integer CDF row per kind of block (the
decoder must know the row, so rows belong to block positions, not to posteriors). Symbol s < cap
means n = s + 1; symbol `cap` is an escape followed by n - cap in Elias-gamma style (5 bits of
length, then the bits below the leading one), so no index is ever uncodable. Rows come from:

* `zipf_index_code`: p(n) ∝ n^-(1 + 1/lam), the classic PFR index code (Li & El Gamal) when
  nothing is known about n beyond the scale lam of E[log2 n];
* `fit_zipf_lam` + `zipf_index_code` (recommended): the Zipf scale that codes indices from
  encoding training data shortest. n is heavy-tailed (it grows like 2**(KL - sum(bits)) when a
  posterior carries more information than its partition), which a power law matches with one
  parameter;
* `fitted_index_code`: a histogram of training indices, smoothed with a little Zipf mass and
  quantized by the integer-only `counts_to_cdf` (a decoder rebuilding it from stored counts
  gets the same table). Needs thousands of samples to match the fitted Zipf on the tail.
Measurements: `recarchive/rec/README.md`.

Ship the integer table (`IndexCode.cdf`, pinned by `sha256`) with a model, not the Zipf scale:
the float steps that build a Zipf table may round differently on another platform, and a
decoder whose table differs by one count decodes garbage.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from recarchive.ans import Array, Backend, CdfBank, Message, pop_symbols, push_symbols
from recarchive.entropy.quantize import counts_to_cdf, pmf_to_cdf

INDEX_PRECISION = 16
DIGIT_BITS = 16  # uniform digits are pushed at most 16 bits at a time
LENGTH_BITS = 5  # escape: bit length of n - cap, in [1, 24]
DEFAULT_CAP = 1024
SMOOTHING_TOTAL = 1 << 12  # Zipf pseudo-counts added to fitted counts


@dataclass(frozen=True, eq=False)
class IndexCode:
    """Integer CDF rows (rows, cap + 2) over n = 1..cap and an escape symbol."""

    cdf: np.ndarray
    precision: int = INDEX_PRECISION
    _banks: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def cap(self) -> int:
        return self.cdf.shape[-1] - 2

    @property
    def num_rows(self) -> int:
        return self.cdf.shape[0]

    def bank(self, backend: Backend) -> CdfBank:
        key = (backend.name, str(backend.device))
        if key not in self._banks:
            self._banks[key] = CdfBank(self.cdf, self.precision, backend)
        return self._banks[key]

    def sha256(self) -> str:
        """Hash of precision and table, for a model or archive to pin its index code by."""
        h = hashlib.sha256(f"rec-index:v1:{self.precision}:{self.cdf.shape}".encode())
        h.update(np.ascontiguousarray(self.cdf, dtype="<i8").tobytes())
        return h.hexdigest()

    def symbol_bits(self, rows: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Ideal codelength (float bits) of each local index n under its row."""
        rows = np.asarray(rows, dtype=np.int64)
        n = np.asarray(indices, dtype=np.int64)
        sym = np.minimum(n - 1, self.cap)
        freq = self.cdf[rows, sym + 1] - self.cdf[rows, sym]
        bits = self.precision - np.log2(freq)
        tail = np.maximum(n - self.cap, 1)
        escape_bits = LENGTH_BITS + np.floor(np.log2(tail))  # length, then bits below the top
        return bits + np.where(n > self.cap, escape_bits, 0.0)


def _zipf_pmf(lam: float, cap: int) -> np.ndarray:
    """p(1..cap) and p(escape) of p(n) ∝ n^-(1+1/lam); the tail by its integral bound."""
    s = 1.0 + 1.0 / lam
    n = np.arange(1, cap + 1, dtype=np.float64)
    head = n**-s
    tail = (cap + 0.5) ** (1.0 - s) / (s - 1.0)
    pmf = np.append(head, tail)
    return pmf / pmf.sum()


def zipf_index_code(lams: np.ndarray | float, cap: int = DEFAULT_CAP) -> IndexCode:
    """One Zipf row per entry of `lams` (lam > 0: larger for larger expected log2 n)."""
    lams = np.atleast_1d(np.asarray(lams, dtype=np.float64))
    pmf = np.stack([_zipf_pmf(max(float(lam), 1e-3), cap) for lam in lams])
    return IndexCode(pmf_to_cdf(pmf, INDEX_PRECISION))


def fitted_index_code(
    samples: list[np.ndarray], cap: int = 256, smoothing_lam: float = 1.0
) -> IndexCode:
    """One row per list entry, from observed local indices on training data (integer counts).

    Counts are scaled to a fixed total so rows trained on different amounts of data carry the
    same weight against the Zipf smoothing, then quantized by integer arithmetic only.
    """
    rows = []
    smooth = np.floor(_zipf_pmf(smoothing_lam, cap) * SMOOTHING_TOTAL).astype(np.int64)
    for obs in samples:
        n = np.asarray(obs, dtype=np.int64).reshape(-1)
        if n.size and n.min() < 1:
            raise ValueError("local indices start at 1")
        counts = np.bincount(np.minimum(n - 1, cap), minlength=cap + 1).astype(np.int64)
        if n.size:
            counts = counts * ((1 << 20) // max(n.size, 1))
        rows.append(counts + smooth)
    return IndexCode(counts_to_cdf(np.stack(rows), INDEX_PRECISION))


def fit_zipf_lam(indices: np.ndarray, cap: int = DEFAULT_CAP) -> float:
    """The Zipf scale that codes these training indices shortest (a 1-parameter fit, so a few
    hundred samples suffice where a histogram would still be learning its tail)."""
    n = np.asarray(indices, dtype=np.int64).reshape(-1)
    grid = np.geomspace(0.25, 64.0, 33)
    code = zipf_index_code(grid, cap)
    rows = np.arange(grid.size)[:, None]
    cost = code.symbol_bits(np.broadcast_to(rows, (grid.size, n.size)), n[None, :]).mean(axis=1)
    return float(grid[int(np.argmin(cost))])


# --- pushing and popping ---------------------------------------------------------------------


def _as(backend: Backend, values: Array) -> Array:
    return backend.asarray(values)


def _one(backend: Backend) -> Array:
    return backend.asarray(1)


def push_bits(message: Message, values: Array, nbits: Array) -> None:
    """Push `nbits` (0..32 per lane) raw bits of `values` per lane; 0 bits cost nothing."""
    be = message.backend
    one = _one(be)
    values, nbits = _as(be, values), _as(be, nbits)
    low_n = be.clip(nbits, 0, DIGIT_BITS)
    high_n = nbits - low_n
    for part, n in ((values & ((one << low_n) - 1), low_n), (values >> low_n, high_n)):
        message.push(part << (DIGIT_BITS - n), one << (DIGIT_BITS - n), DIGIT_BITS)


def pop_bits(message: Message, nbits: Array) -> Array:
    """Inverse of `push_bits`."""
    be = message.backend
    one = _one(be)
    nbits = _as(be, nbits)
    low_n = be.clip(nbits, 0, DIGIT_BITS)
    high_n = nbits - low_n
    parts = []
    for n in (high_n, low_n):
        part = message.peek(DIGIT_BITS) >> (DIGIT_BITS - n)
        message.pop(part << (DIGIT_BITS - n), one << (DIGIT_BITS - n), DIGIT_BITS)
        parts.append(part)
    high, low = parts
    return (high << low_n) | low


def _bit_length(values: np.ndarray) -> np.ndarray:
    """Exact bit length of non-negative int64 values below 2**40 (integer comparisons only)."""
    v = np.asarray(values, dtype=np.int64)
    return np.sum(v[..., None] >= (np.int64(1) << np.arange(40, dtype=np.int64)), axis=-1)


def push_choice(
    message: Message,
    code: IndexCode,
    rows: np.ndarray,
    bits: np.ndarray,
    bins: np.ndarray,
    indices: np.ndarray,
) -> None:
    """Push one (bin, local index) per lane; `bits` (lanes, D) or (D,) is each lane's partition."""
    be = message.backend
    shape = message.lane_shape
    rows = np.array(np.broadcast_to(np.asarray(rows, dtype=np.int64), shape))
    total_bits = np.array(np.broadcast_to(np.sum(np.asarray(bits, dtype=np.int64), axis=-1), shape))
    n = np.array(np.broadcast_to(np.asarray(indices, dtype=np.int64), shape))
    escape = n > code.cap
    tail = np.where(escape, n - code.cap, 1)
    length = _bit_length(tail)
    push_bits(message, tail & ((np.int64(1) << np.maximum(length - 1, 0)) - 1),
              np.where(escape, length - 1, 0))
    push_bits(message, np.where(escape, length, 0), np.where(escape, LENGTH_BITS, 0))
    push_symbols(message, code.bank(be), _as(be, rows), _as(be, np.minimum(n - 1, code.cap)))
    push_bits(message, np.array(np.broadcast_to(np.asarray(bins, dtype=np.int64), shape)),
              total_bits)


def pop_choice(
    message: Message, code: IndexCode, rows: np.ndarray, bits: np.ndarray
) -> tuple[Array, Array]:
    """Inverse of `push_choice`: (bins, indices) per lane, on the message's backend."""
    be = message.backend
    shape = message.lane_shape
    rows = np.array(np.broadcast_to(np.asarray(rows, dtype=np.int64), shape))
    total_bits = np.array(np.broadcast_to(np.sum(np.asarray(bits, dtype=np.int64), axis=-1), shape))
    bins = pop_bits(message, total_bits)
    sym = pop_symbols(message, code.bank(be), _as(be, rows))
    escape = sym == code.cap
    zero = _as(be, 0)
    length = pop_bits(message, be.where(escape, _as(be, LENGTH_BITS), zero))
    below = be.where(escape, length - 1, zero)
    tail = (_one(be) << below) | pop_bits(message, below)
    return bins, be.where(escape, tail + code.cap, sym + 1)


def choice_bits(
    code: IndexCode, rows: np.ndarray, bits: np.ndarray, indices: np.ndarray
) -> np.ndarray:
    """Ideal bits of (bin, index) per block: sum(bits) for the bin plus the index's cost."""
    return np.sum(np.asarray(bits), axis=-1) + code.symbol_bits(rows, indices)


def pfr_zipf_lam(kl_bits: float) -> float:
    """Li & El Gamal's Zipf scale for standard PFR's index: KL + log2(e)/e + 1 (bits)."""
    return kl_bits + math.log2(math.e) / math.e + 1.0
