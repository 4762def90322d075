"""How finely to partition each dimension, and how to cut a latent into blocks.

A block's partition is a vector of bits per dimension: dimension d is cut into 2**bits[d]
intervals of equal prior mass (powers of two, so a bin is a run of quantile-table atoms, see
`randomness`). The partition must be known to the decoder, so it comes from statistics of the
training data, not from the posterior being coded: the mutual information (or its upper bound,
the average KL) of each dimension.

Rules from mutual information I_d (bits) to bits_d; measured in `recarchive/rec/README.md`
(5-D Gaussian channel, `bench rec-synthetic`):

* ``"floor"``: floor(I_d). Simple, but throws away up to one bit per dimension, so a block
  whose information is spread thinly (many dimensions of 0.9 bits) is barely split at all.
* ``"round"``: round(I_d). Can overshoot the total; bins then outnumber the posterior's
  effective support and the bin index costs more than it should.
* ``"budget"`` (default): the total floor(sum I_d - margin) is dealt out one bit at a time to
  the dimension with the largest remaining I_d - bits_d. Keeps the bin index (sum of bits)
  just below the information, where it costs nothing extra (the local index absorbs the
  rest), and splits the dimensions that carry the information.

Dimensions below `min_bits` of information are never split: splitting a dimension the posterior
barely narrows buys no speed and its digit would cost a full bit.
"""

from __future__ import annotations

import numpy as np

from recarchive.exact.normal import DEFAULT_K
from recarchive.rec.randomness import MAX_BIN_BITS, MAX_DIMS

RULES = ("floor", "round", "budget")
DEFAULT_RULE = "budget"
DEFAULT_MARGIN = 0.0
DEFAULT_MIN_BITS = 0.25


def bits_from_mi(
    mi_bits: np.ndarray,
    rule: str = DEFAULT_RULE,
    margin: float = DEFAULT_MARGIN,
    min_bits: float = DEFAULT_MIN_BITS,
    max_bits_per_dim: int = DEFAULT_K,
) -> np.ndarray:
    """Bits per dimension (int64, same shape as `mi_bits` (.., D)) for one block's partition."""
    mi = np.asarray(mi_bits, dtype=np.float64)
    if np.any(~np.isfinite(mi)) or np.any(mi < 0):
        raise ValueError("mutual information must be finite and non-negative")
    usable = mi >= min_bits
    if rule == "floor":
        bits = np.floor(mi)
    elif rule == "round":
        bits = np.floor(mi + 0.5)
    elif rule == "budget":
        bits = _deal_bits(np.where(usable, mi, 0.0), margin, max_bits_per_dim)
    else:
        raise ValueError(f"unknown rule {rule!r}; expected one of {RULES}")
    bits = np.where(usable, np.clip(bits, 0, max_bits_per_dim), 0).astype(np.int64)
    return _cap_total(bits, mi)


def _deal_bits(mi: np.ndarray, margin: float, cap: int) -> np.ndarray:
    """Greedy: one bit at a time to the dimension with the largest unmet information."""
    flat = mi.reshape(-1, mi.shape[-1])
    out = np.zeros(flat.shape, dtype=np.int64)
    for row, info in enumerate(flat):
        total = int(np.floor(max(info.sum() - margin, 0.0) + 1e-9))
        for _ in range(min(total, MAX_BIN_BITS)):
            need = np.where(out[row] < cap, info - out[row], -np.inf)
            if not np.isfinite(need.max()):
                break
            out[row, int(np.argmax(need))] += 1  # argmax: ties to the lowest dimension
    return out.reshape(mi.shape)


def _cap_total(bits: np.ndarray, mi: np.ndarray) -> np.ndarray:
    """Keep a block within the counter layout's 32 bin bits: drop bits where I_d - bits_d is
    most negative (the bits that are least paid for) until it fits."""
    flat = bits.reshape(-1, bits.shape[-1]).copy()
    info = mi.reshape(flat.shape)
    for row in range(flat.shape[0]):
        while flat[row].sum() > MAX_BIN_BITS:
            slack = np.where(flat[row] > 0, info[row] - flat[row], np.inf)
            flat[row, int(np.argmin(slack))] -= 1
    return flat.reshape(bits.shape)


def split_blocks(
    kl_bits: np.ndarray, budget_bits: float, max_dims: int = MAX_DIMS
) -> list[np.ndarray]:
    """Cut dimensions 0..D-1 (in order) into consecutive blocks of total KL <= budget_bits.

    Why consecutive: block membership is then a list of cut points, trivially shared with the
    decoder, and neighbouring latent channels stay together. A dimension whose own KL exceeds
    the budget gets a block of its own. The budget trades runtime (about 2**budget candidates
    for standard REC, far fewer partitioned) against the per-block overhead of the index code.
    """
    kl = np.asarray(kl_bits, dtype=np.float64).reshape(-1)
    if budget_bits <= 0:
        raise ValueError("the KL budget per block must be positive")
    blocks: list[list[int]] = []
    total = 0.0
    for d, value in enumerate(kl):
        if blocks and total + value <= budget_bits and len(blocks[-1]) < max_dims:
            blocks[-1].append(d)
            total += value
        else:
            blocks.append([d])
            total = value
    return [np.array(b, dtype=np.int64) for b in blocks]
