"""Diagonal-Gaussian posterior against the standard-normal prior: the ratio and its bounds.

Everything here serves the encoder's search only, so ordinary float64 is fine: a rounding error
can only nudge which candidate wins (a perturbation of the target of order 1e-15), never what the
decoder rebuilds. Callers with a diagonal Gaussian prior N(m, s²) whiten first
(`whiten`), so REC itself always sees P = N(0, 1) per dimension, discretized as the quantile
table's atoms.

Logs are natural here; the `_bits` helpers convert for reporting.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from recarchive.exact.normal import QuantileTable, default_table, inv_cdf

LOG2E = 1.0 / math.log(2.0)
# Slack on every upper bound of log(dQ/dP), in nats: float rounding in the bound must never stop
# a search before a candidate that could still win. Costs a factor 1 + 1e-9 in runtime.
BOUND_SLACK = 1e-9


def whiten(
    q_loc: np.ndarray, q_scale: np.ndarray, p_loc: np.ndarray | float, p_scale: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior N(q_loc, q_scale²) in the units where the prior N(p_loc, p_scale²) is N(0, 1)."""
    return (np.asarray(q_loc) - p_loc) / p_scale, np.asarray(q_scale) / p_scale


def log_ratio(x: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """ln q(x)/p(x) elementwise for q = N(loc, scale²), p = N(0, 1)."""
    z = (x - loc) / scale
    return -np.log(scale) - 0.5 * z * z + 0.5 * x * x


def log_sup_ratio(
    lo: np.ndarray, hi: np.ndarray, loc: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """ln sup of q/p over [lo, hi] (broadcast), plus `BOUND_SLACK`.

    ln q/p is a quadratic in x with leading coefficient (1 - 1/scale²)/2: concave when
    scale < 1, with its vertex at loc / (1 - scale²); otherwise its maximum is at an end.
    """
    lo, hi, loc, scale = np.broadcast_arrays(lo, hi, loc, scale)
    best = np.maximum(log_ratio(lo, loc, scale), log_ratio(hi, loc, scale))
    var = scale * scale
    concave = var < 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = np.where(concave, loc / np.where(concave, 1.0 - var, 1.0), 0.0)
    inside = concave & (vertex > lo) & (vertex < hi)
    best = np.where(inside, np.maximum(best, log_ratio(vertex, loc, scale)), best)
    return best + BOUND_SLACK


def kl_bits(loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """KL(N(loc, scale²) || N(0, 1)) per element, in bits (continuous densities)."""
    var = scale * scale
    return 0.5 * (var + loc * loc - 1.0 - np.log(var)) * LOG2E


def bin_atom_ranges(bits: int, table: QuantileTable | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest atom value of each of the 2**bits equal-mass intervals."""
    table = table or default_table()
    width = 1 << (table.k - int(bits))
    first = np.arange(1 << int(bits), dtype=np.int64) * width
    return table.values[first], table.values[first + width - 1]


@lru_cache(maxsize=32)
def bin_edges(bits: int) -> np.ndarray:
    """Continuous equal-prior-mass edges Phi^-1(i / 2**bits), with -inf and +inf at the ends."""
    n = 1 << bits
    inner = [inv_cdf(i / n) for i in range(1, n)]
    return np.array([-math.inf, *inner, math.inf], dtype=np.float64)


def log_interval_mass(
    lo: np.ndarray, hi: np.ndarray, loc: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """ln Q([lo, hi]) for Q = N(loc, scale²), stable far in the tails (edges may be ±inf)."""
    a = torch.as_tensor((lo - loc) / scale, dtype=torch.float64)
    b = torch.as_tensor((hi - loc) / scale, dtype=torch.float64)
    flip = a > 0  # use the upper tail by symmetry: mass = Phi(-a) - Phi(-b)
    a, b = torch.where(flip, -b, a), torch.where(flip, -a, b)
    log_b = torch.special.log_ndtr(b)
    log_a = torch.special.log_ndtr(a)
    diff = torch.clamp(log_a - log_b, max=0.0)
    out = log_b + torch.log((-torch.expm1(diff)).clamp(min=1e-300))
    return out.numpy()


def dinf_bits(loc: np.ndarray, scale: np.ndarray, table: QuantileTable | None = None) -> np.ndarray:
    """Rényi-∞ divergence log2 sup dQ/dP of each row (.., D) over the table's support, in bits."""
    lo, hi = bin_atom_ranges(0, table)
    return np.sum(log_sup_ratio(lo[0], hi[0], loc, scale), axis=-1) * LOG2E
