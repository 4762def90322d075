"""The encoder's search: PFR and ORC, standard or space-partitioned, for a batch of blocks.

One formulation covers all four algorithms. Each bin j of a block's partition (2**sum(bits)
bins, one when unpartitioned) owns an independent unit-rate Poisson process of candidates
X_{j,1}, X_{j,2}, ... drawn from the prior restricted to the bin (`randomness`). The selected
candidate is

    argmin_{j,n}  S_{j,n} / r(X_{j,n}),    r = dQ/dP,  S_{j,n} its arrival time in bin j,

which is the Poisson functional representation (Li & El Gamal 2018) of the union of the bins'
processes, a Poisson process with intensity J * P; so the result is an exact sample of Q (of the
table-discretized Q ∝ P_table * r, see `randomness`), whatever the bin weights.

The weights only set the *search order*: the encoder simulates the bins' processes merged with
bin j at rate w_j (a Poisson process with the reweighted prior P' = sum_j w_j P|B_j as its
spatial law), which is the same as running PFR against P'. A candidate's key is then
T * w_j / r(X) (with T the merged arrival time, T * w_j = S_{j,n}); every later candidate has
key >= T * min_j(w_j / R_j), with R_j >= sup_{B_j} r, so the search stops at the first arrival
whose bound exceeds the best key seen. Expected steps ~ max_j R_j / (J w_j), i.e.
2**D∞(Q||P'), against 2**D∞(Q||P) for standard PFR.

Weights (measured in `recarchive/rec/README.md`):

* ``"ratio"`` (default): w_j ∝ R_j, the bin's bound. Then min_j w_j / R_j = 1 / sum_j R_j, the
  best possible constant, and the merged order is best-first (A*-like) over the bins' bounds;
  expected steps = mean over bins of sup r, which tends to 1 as bins shrink.
* ``"mass"``: w_j = Q(B_j), the paper's intuition "steer toward where Q is". Wide tail bins
  have small mass but a large sup, which loosens the bound and costs steps.
* ``"prior"``: w_j = 1/J, no steering: reduces to standard PFR's order and bound.

Everything is separable over dimensions (Q and P are diagonal, bins are products of intervals),
so weights, bounds and bin draws cost O(D * 2**max(bits)), never O(J).

ORC (ordered random coding, Theis & Yosri 2022) is the same search over a fixed budget of N
candidates whose times are the order statistics of N i.i.d. Exp(1): a Gumbel-max choice among
N samples of P' with probabilities ∝ dQ/dP' (self-normalized importance sampling, so biased for
small N). It can stop early by the same bound and never examines more than N candidates.

Choosing by codelength (`index_bits`, ORC's candidates only). A lossless coder does not need
a sample of Q: it needs the candidate whose whole code is shortest, the index it sends plus
the data's bits given that latent. If Q is the Laplace approximation of the true posterior
(what a Gaussian VAE's encoder is trained towards), -ln p(x|z) = c - ln dQ/dP(z) with c not
depending on z, so over one block's candidates the total is index_bits(n) - log2 dQ/dP(z_n)
plus a constant, and the encoder minimizes it over all `budget` candidates instead of drawing
one in proportion to dQ/dP. The decoder is the same: it regenerates whatever (bin, n) it is
sent. ORC's sample among N candidates is over-dispersed where a block's KL outgrows its
partition (`recarchive/rec/README.md`), and its pixels pay for it; the shortest candidate
costs less on average than the sampled one, and never more under that model, since the sample
is among the candidates.

Only this module's floats decide which candidate wins; the decoder never sees them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recarchive.exact.normal import QuantileTable, default_table
from recarchive.exact.prng import uniform_from_words
from recarchive.rec.gaussian import (
    bin_atom_ranges,
    bin_edges,
    log_interval_mass,
    log_ratio,
    log_sup_ratio,
)
from recarchive.rec.randomness import (
    MAX_INDEX,
    bin_offsets,
    candidate_atoms,
    check_keys,
    search_words,
)

WEIGHTS = ("ratio", "mass", "prior")
DEFAULT_MAX_STEPS = 1 << 22
FIRST_CHUNK = 32
MAX_CHUNK = 1 << 14
MAX_CHUNK_ELEMENTS = 1 << 21  # rows x chunk x dims per array: bounds memory (16 MiB of floats)
MIN_CHUNK = 8  # ...but never fewer steps than this per round, or wide batches crawl


@dataclass(frozen=True)
class RecResult:
    """What the search chose for each block: send (bins, indices); the rest is diagnostics."""

    bins: np.ndarray  # (B,) int64 flat bin index
    indices: np.ndarray  # (B,) int64 local index n >= 1 inside the bin
    atoms: np.ndarray  # (B, D) int64 quantile-table atoms of the chosen sample
    steps: np.ndarray  # (B,) int64 candidates examined
    log_ratio: np.ndarray  # (B,) float64 ln dQ/dP at the chosen sample
    truncated: np.ndarray  # (B,) bool: PFR hit max_steps (the sample is then approximate)


@dataclass(frozen=True)
class _BinTables:
    """Per (row, dim, interval) log weights and log bounds, padded with -inf."""

    log_w: np.ndarray  # (B, D, Jmax)
    cum_w: np.ndarray  # (B, D, Jmax) normalized cumulative weights, 1.0 from the last on
    log_c: np.ndarray  # (B,) ln min_j w_j / R_j


def _logsumexp(a: np.ndarray) -> np.ndarray:
    m = np.max(a, axis=-1, keepdims=True)
    return (m + np.log(np.sum(np.exp(a - m), axis=-1, keepdims=True)))[..., 0]


def bin_tables(
    loc: np.ndarray, scale: np.ndarray, bits: np.ndarray, weights: str, table: QuantileTable
) -> _BinTables:
    if weights not in WEIGHTS:
        raise ValueError(f"unknown weights {weights!r}; expected one of {WEIGHTS}")
    b, d = loc.shape
    jmax = 1 << int(bits.max(initial=0))
    log_w = np.full((b, d, jmax), -np.inf)
    log_r = np.full((b, d, jmax), -np.inf)
    for nb in np.unique(bits):
        nb = int(nb)
        mask = bits == nb
        lo, hi = bin_atom_ranges(nb, table)
        m_loc, m_scale = loc[mask][:, None], scale[mask][:, None]
        lr = log_sup_ratio(lo, hi, m_loc, m_scale)
        if weights == "ratio":
            lw = lr
        elif weights == "mass":
            edges = bin_edges(nb)
            lw = log_interval_mass(edges[:-1], edges[1:], m_loc, m_scale)
        else:
            lw = np.zeros_like(lr)
        lw = lw - _logsumexp(lw)[:, None]
        log_w[mask, : 1 << nb] = lw
        log_r[mask, : 1 << nb] = lr
    with np.errstate(invalid="ignore"):
        gap = np.where(np.isfinite(log_r), log_w - log_r, np.inf)
    log_c = np.sum(np.min(gap, axis=-1), axis=-1)
    cum = np.cumsum(np.exp(log_w), axis=-1)
    cum = cum / cum[..., -1:]
    last = (1 << bits)[..., None] - 1
    cum = np.where(np.arange(jmax) >= last, 1.0, cum)
    return _BinTables(log_w, cum, log_c)


def _draw_digits(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Interval digits (R, C, D) by inverse CDF: cum (R, D, J), uniforms u (R, C, D).

    All (row, dim) segments are searched at once in one sorted array, segment s offset by 2s.
    """
    r, d, j = cum.shape
    seg = np.arange(r * d, dtype=np.float64).reshape(r, d)
    flat = (cum + 2.0 * seg[..., None]).reshape(-1)
    query = u + 2.0 * seg[:, None, :]
    pos = np.searchsorted(flat, query.reshape(-1), side="right").reshape(u.shape)
    digits = pos - (np.arange(r * d, dtype=np.int64).reshape(r, 1, d) * j)
    return np.minimum(digits, j - 1)


class _LocalCounts:
    """How many candidates each (row, bin) has produced: the local index of the next one."""

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.int64)
        self.counts = np.empty(0, dtype=np.int64)

    def keep_rows(self, rows: np.ndarray) -> None:
        """Forget finished rows, so the table only grows with the rows still searching."""
        keep = np.isin(self.keys >> 32, rows)
        self.keys, self.counts = self.keys[keep], self.counts[keep]

    def assign(self, rows: np.ndarray, bins: np.ndarray) -> np.ndarray:
        """Local indices (R, C) of a chunk of arrivals, in arrival order along axis 1."""
        keys = ((rows[:, None] << 32) | bins).reshape(-1)
        uniq, inv, counts = np.unique(keys, return_inverse=True, return_counts=True)
        inv = inv.reshape(-1)
        order = np.argsort(inv, kind="stable")
        starts = np.cumsum(counts) - counts
        rank = np.empty_like(keys)
        rank[order] = np.arange(keys.shape[0]) - starts[inv[order]]
        nk = self.keys.shape[0]
        if nk:
            pos = np.minimum(np.searchsorted(self.keys, uniq), nk - 1)
            found = self.keys[pos] == uniq
            prev = np.where(found, self.counts[pos], 0)
            self.counts[pos[found]] += counts[found]
        else:
            found = np.zeros(uniq.shape, dtype=bool)
            prev = np.zeros(uniq.shape, dtype=np.int64)
        new_keys = np.concatenate([self.keys, uniq[~found]])
        new_counts = np.concatenate([self.counts, counts[~found]])
        order = np.argsort(new_keys, kind="stable")
        self.keys, self.counts = new_keys[order], new_counts[order]
        return (prev[inv] + rank + 1).reshape(bins.shape)


def rec_search(
    loc: np.ndarray,
    scale: np.ndarray,
    bits: np.ndarray | None = None,
    *,
    seed: int,
    items: np.ndarray,
    blocks: np.ndarray | int = 0,
    budget: int | None = None,
    weights: str = "ratio",
    max_steps: int = DEFAULT_MAX_STEPS,
    table: QuantileTable | None = None,
    index_bits: np.ndarray | None = None,
) -> RecResult:
    """Choose a candidate per block: PFR if `budget` is None (exact), else ORC with `budget`.

    With `index_bits` ((budget,): what sending local index n = 1..budget costs)
    and a budget, the choice is not a sample but the shortest code among the same `budget`
    candidates: argmin index_bits(n) - log2 dQ/dP (see "Choosing by codelength" above).

    loc, scale: (B, D) posterior in whitened prior units (P = N(0, 1) per dimension);
    bits: (D,) or (B, D) partition bits per dimension (None or zeros: standard REC);
    items, blocks: (B,) or scalars keying the shared randomness together with `seed`.
    """
    table = table or default_table()
    loc = np.atleast_2d(np.asarray(loc, dtype=np.float64))
    scale = np.atleast_2d(np.asarray(scale, dtype=np.float64))
    nrows, d = loc.shape
    if scale.shape != loc.shape or np.any(~(scale > 0)) or np.any(~np.isfinite(loc)):
        raise ValueError("loc and scale must have one shape, finite values and scale > 0")
    bits = np.zeros(d, np.int64) if bits is None else np.asarray(bits, dtype=np.int64)
    bits = np.ascontiguousarray(np.broadcast_to(bits, (nrows, d)))
    items = np.broadcast_to(np.asarray(items, dtype=np.int64), (nrows,))
    blocks = np.broadcast_to(np.asarray(blocks, dtype=np.int64), (nrows,))
    check_keys(items, blocks)
    limit = min(int(max_steps), MAX_INDEX) if budget is None else int(budget)
    if not 1 <= limit <= MAX_INDEX:
        raise ValueError(f"budget / max_steps must be in [1, {MAX_INDEX}]")
    if index_bits is not None:
        if budget is None:
            raise ValueError("choosing by codelength needs a budget (ORC's candidates)")
        index_nats = np.asarray(index_bits, np.float64) * np.log(2.0)
        if index_nats.shape != (limit,):
            raise ValueError(f"index_bits must give the cost of n = 1..{limit}: one per "
                             f"candidate of the budget, not shape {index_nats.shape}")
    partitioned = bool(bits.any())
    tabs = bin_tables(loc, scale, bits, weights, table)
    offsets = bin_offsets(bits)

    best_key = np.full(nrows, np.inf)
    best_bin = np.zeros(nrows, np.int64)
    best_n = np.zeros(nrows, np.int64)
    best_atoms = np.zeros((nrows, d), np.int64)
    best_lr = np.zeros(nrows)
    steps = np.zeros(nrows, np.int64)
    truncated = np.zeros(nrows, bool)
    t_last = np.zeros(nrows)
    counts = _LocalCounts()
    active = np.arange(nrows)
    k0, chunk = 0, FIRST_CHUNK
    while active.size:
        c = min(chunk, limit - k0, max(MIN_CHUNK, MAX_CHUNK_ELEMENTS // (active.size * d)))
        act = active
        r = act.size
        u = uniform_from_words(search_words(seed, items[act], blocks[act], k0, c, 1 + d))
        e = -np.log(u[..., 0])
        if budget is not None:  # order statistics of `budget` i.i.d. Exp(1)
            e = e / (budget - (k0 + np.arange(c)))
        t = t_last[act, None] + np.cumsum(e, axis=1)
        if partitioned:
            digits = _draw_digits(tabs.cum_w[act], u[..., 1:])
            bins = np.sum(digits << offsets[act][:, None, :], axis=-1)
            log_w = np.sum(np.take_along_axis(tabs.log_w[act], digits.transpose(0, 2, 1),
                                              axis=-1), axis=1)
            n = counts.assign(act, bins)
        else:
            bins = np.zeros((r, c), np.int64)
            log_w = np.zeros((r, c))
            n = np.broadcast_to(k0 + 1 + np.arange(c), (r, c))
        atoms = candidate_atoms(
            seed, np.repeat(items[act], c), np.repeat(blocks[act], c), bins.reshape(-1),
            n.reshape(-1), np.repeat(bits[act], c, axis=0), table,
        ).reshape(r, c, d)
        lr = np.sum(log_ratio(table.values[atoms], loc[act, None], scale[act, None]), axis=-1)
        log_t = np.log(t)
        prev = best_key[act]
        if index_bits is None:
            key = log_t + log_w - lr
            run = np.minimum(np.minimum.accumulate(key, axis=1), prev[:, None])
            before = np.concatenate([prev[:, None], run[:, :-1]], axis=1)
            stop = log_t + tabs.log_c[act, None] >= before
        else:  # every candidate is examined: a later one may still code shorter
            key = index_nats[n - 1] - lr  # n <= candidates examined <= limit
            stop = np.zeros(key.shape, bool)
        has_stop = stop.any(axis=1)
        examined = np.where(has_stop, np.argmax(stop, axis=1), c)
        masked = np.where(np.arange(c) < examined[:, None], key, np.inf)
        pick = np.argmin(masked, axis=1)
        rows = np.arange(r)
        better = masked[rows, pick] < prev
        win, wr = act[better], rows[better]
        best_key[win] = masked[wr, pick[better]]
        best_bin[win] = bins[wr, pick[better]]
        best_n[win] = n[wr, pick[better]]
        best_atoms[win] = atoms[wr, pick[better]]
        best_lr[win] = lr[wr, pick[better]]
        steps[act] = k0 + examined
        t_last[act] = t[:, -1]
        k0 += c
        out_of_steps = ~has_stop & (k0 >= limit)
        if budget is None:
            truncated[act[out_of_steps]] = True
        active = act[~(has_stop | out_of_steps)]
        if partitioned and active.size < act.size:
            counts.keep_rows(active)
        chunk = min(2 * chunk, MAX_CHUNK)
    return RecResult(best_bin, best_n, best_atoms, steps, best_lr, truncated)
