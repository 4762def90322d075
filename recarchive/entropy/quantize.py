"""Probabilities to integer CDFs, once, at table-building time.

Only the integer tables reach the coder, and they are hashed, so encoder and decoder agree
whatever float arithmetic produced them; this step just has to be deterministic on one machine
and keep every symbol codable (frequency >= 1).
"""

from __future__ import annotations

import numpy as np


def pmf_to_cdf(pmf: np.ndarray, precision: int, floor: int = 1) -> np.ndarray:
    """Integer CDFs (..., A+1) summing to 2^precision with every frequency >= `floor`.

    Each symbol gets `floor` plus the floor of its share of the rest; the remainder goes one by
    one to the largest fractional parts (ties to the lower index), so the rounding is the best
    of its kind in total variation and depends on nothing but `pmf`. `floor=0` leaves symbols
    whose share is below one unit uncodable: only for tables that are popped from before they
    are pushed to (bits-back posteriors), which never meet such a symbol.
    """
    pmf = np.asarray(pmf, dtype=np.float64)
    alphabet = pmf.shape[-1]
    total = 1 << precision
    if floor not in (0, 1):
        raise ValueError(f"the frequency floor is 0 or 1, not {floor}")
    if floor * alphabet > total:
        raise ValueError(f"{alphabet} symbols cannot all get a frequency at precision {precision}")
    if np.any(~np.isfinite(pmf)) or np.any(pmf < 0):
        raise ValueError("probabilities must be finite and non-negative")
    mass = pmf.sum(axis=-1, keepdims=True)
    if np.any(mass <= 0):
        raise ValueError("every distribution needs positive total mass")
    spare = total - floor * alphabet
    share = pmf / mass * spare
    freqs = np.floor(share).astype(np.int64)
    remainder = spare - freqs.sum(axis=-1)
    fractions = share - freqs
    # Rank by fractional part, largest first; stable sort keeps ties in index order.
    order = np.argsort(-fractions, axis=-1, kind="stable")
    ranks = np.argsort(order, axis=-1, kind="stable")
    freqs += floor + (ranks < remainder[..., None])
    cdf = np.zeros(pmf.shape[:-1] + (alphabet + 1,), dtype=np.int64)
    np.cumsum(freqs, axis=-1, out=cdf[..., 1:])
    return cdf


def counts_to_cdf(counts: np.ndarray, precision: int) -> np.ndarray:
    """Integer CDFs from symbol counts in integer arithmetic only: a decoder that rebuilds the
    table from stored counts gets it bit for bit on any machine.

    Same rule as `pmf_to_cdf`: one per symbol, floors of the shares of the rest, remainder to
    the largest remainders (ties to the lower index). Rows with no counts become uniform.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if np.any(counts < 0):
        raise ValueError("symbol counts must be non-negative")
    alphabet = counts.shape[-1]
    spare = (1 << precision) - alphabet
    if spare < 0:
        raise ValueError(f"{alphabet} symbols cannot all get a frequency at precision {precision}")
    counts = np.where(counts.sum(axis=-1, keepdims=True) == 0, 1, counts)
    total = counts.sum(axis=-1, keepdims=True)
    if np.any(total > (1 << 62) // max(spare, 1)):
        raise ValueError("symbol counts too large for exact integer quantization")
    scaled = counts * spare
    freqs, leftover = scaled // total, scaled % total
    remainder = spare - freqs.sum(axis=-1)
    order = np.argsort(-leftover, axis=-1, kind="stable")
    ranks = np.argsort(order, axis=-1, kind="stable")
    freqs = freqs + 1 + (ranks < remainder[..., None])
    cdf = np.zeros(counts.shape[:-1] + (alphabet + 1,), dtype=np.int64)
    np.cumsum(freqs, axis=-1, out=cdf[..., 1:])
    return cdf
