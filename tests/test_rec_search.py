"""REC search: PFR (standard and partitioned) samples Q exactly, ORC's bias shrinks with its
budget, the partition speeds PFR up, and the encoder's choice is what the decoder rebuilds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recarchive.bench.rec_synthetic import mmd2
from recarchive.exact.normal import default_table
from recarchive.rec import bits_from_mi, candidate_atoms, dinf_bits, rec_search, split_blocks
from recarchive.rec.gaussian import log_ratio

VALUES = default_table().values
# A 3-D posterior off-centre in every dimension (so tail bins matter), KL ~ 5.5 bits.
LOC = np.array([1.1, -0.6, 0.3])
SCALE = np.array([0.15, 0.3, 0.7])
M = 3000


def _ks_normal(z: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance of z to N(0, 1)."""
    z = np.sort(z)
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))
    n = z.size
    return float(max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n)))


def _whitened(atoms: np.ndarray) -> np.ndarray:
    return (VALUES[atoms] - LOC) / SCALE


def _assert_is_q(atoms: np.ndarray) -> None:
    """Every dimension N(0,1) after whitening (KS at about the 99.9% level, 1.95/sqrt(n)),
    plus first and second moments; loose enough to be stable, tight enough to catch a biased
    sampler (see test_biased_sampler_is_caught)."""
    z = _whitened(atoms)
    bound = 1.95 / math.sqrt(z.shape[0])
    for d in range(z.shape[1]):
        assert _ks_normal(z[:, d]) < bound, d
    assert np.all(np.abs(z.mean(axis=0)) < 4.0 / math.sqrt(z.shape[0]))
    assert np.all(np.abs(z.var(axis=0) - 1.0) < 0.12)


def _run(bits: np.ndarray | None, **kwargs) -> np.ndarray:
    loc = np.broadcast_to(LOC, (M, 3))
    scale = np.broadcast_to(SCALE, (M, 3))
    return rec_search(loc, scale, bits, seed=11, items=np.arange(M), blocks=1, **kwargs)


def test_pfr_samples_q() -> None:
    res = _run(None)
    assert not res.truncated.any()
    _assert_is_q(res.atoms)


@pytest.mark.parametrize("weights", ["ratio", "prior"])
def test_partitioned_pfr_samples_q(weights: str) -> None:
    res = _run(np.array([3, 2, 1]), weights=weights)
    _assert_is_q(res.atoms)
    # What the encoder reports is what the decoder regenerates from (bin, index).
    again = candidate_atoms(11, np.arange(M), 1, res.bins, res.indices, np.array([3, 2, 1]))
    assert np.array_equal(again, res.atoms)


def test_biased_sampler_is_caught() -> None:
    """ORC with a tiny budget is biased; the same test must reject it (the test has power)."""
    res = _run(None, budget=4)
    with pytest.raises(AssertionError):
        _assert_is_q(res.atoms)


def test_orc_bias_decreases_with_budget() -> None:
    rng = np.random.default_rng(0)
    exact = rng.normal(size=(600, 3))
    loc, scale = np.broadcast_to(LOC, (600, 3)), np.broadcast_to(SCALE, (600, 3))
    mmd = {}
    for budget in (2, 32, 1024):
        res = rec_search(loc, scale, None, seed=3, items=np.arange(600), blocks=2,
                         budget=budget)
        assert res.steps.max() <= budget
        mmd[budget] = mmd2(_whitened(res.atoms), exact, math.sqrt(3.0))
    assert mmd[2] > mmd[32] > mmd[1024]
    assert mmd[2] > 0.1 and mmd[1024] < 0.01


def test_partitioned_orc_less_biased_at_same_budget() -> None:
    rng = np.random.default_rng(1)
    exact = rng.normal(size=(600, 3))
    loc, scale = np.broadcast_to(LOC, (600, 3)), np.broadcast_to(SCALE, (600, 3))
    out = []
    for bits in (None, np.array([3, 2, 1])):
        res = rec_search(loc, scale, bits, seed=4, items=np.arange(600), blocks=3, budget=8)
        out.append(mmd2(_whitened(res.atoms), exact, math.sqrt(3.0)))
    assert out[1] < out[0] / 3


def test_partition_cuts_steps() -> None:
    res_std = _run(None)
    res_part = _run(np.array([3, 2, 1]))
    assert np.median(res_std.steps) > 4 * np.median(res_part.steps)
    # Standard PFR's expected steps are ~2**D∞.
    expected = 2.0 ** dinf_bits(LOC[None], SCALE[None])[0]
    assert 0.5 * expected < res_std.steps.mean() < 2.0 * expected


def test_batch_rows_are_independent_of_their_neighbours() -> None:
    """A block's choice depends only on its own posterior and keys, not on the batch."""
    rng = np.random.default_rng(5)
    loc = rng.normal(size=(20, 3)) * 0.8
    scale = np.exp(rng.normal(size=(20, 3)) * 0.3 - 1.0)
    bits = np.array([2, 2, 1])
    full = rec_search(loc, scale, bits, seed=9, items=np.arange(20), blocks=4)
    part = rec_search(loc[7:9], scale[7:9], bits, seed=9, items=np.arange(7, 9), blocks=4)
    assert np.array_equal(full.atoms[7:9], part.atoms)
    assert np.array_equal(full.indices[7:9], part.indices)


def test_mixed_partitions_in_one_batch() -> None:
    """Rows with different partitions (one unpartitioned) give what each gives on its own."""
    rng = np.random.default_rng(6)
    loc = rng.normal(size=(6, 3)) * 0.7
    scale = np.exp(rng.normal(size=(6, 3)) * 0.3 - 1.2)
    bits = np.array([[0, 0, 0], [2, 1, 0], [3, 3, 3], [0, 0, 0], [1, 0, 4], [0, 2, 0]])
    for budget in (None, 32):
        full = rec_search(loc, scale, bits, seed=8, items=np.arange(6), budget=budget)
        for i in range(6):
            one = rec_search(loc[i : i + 1], scale[i : i + 1], bits[i], seed=8, items=[i],
                             budget=budget)
            assert np.array_equal(one.atoms[0], full.atoms[i])
            assert (one.bins[0], one.indices[0], one.steps[0]) == (
                full.bins[i], full.indices[i], full.steps[i])


def test_local_indices_count_arrivals_per_bin() -> None:
    """Candidate n of bin j is the n-th arrival in bin j of its row, across chunks."""
    from recarchive.rec.search import _LocalCounts

    rng = np.random.default_rng(7)
    rows = np.array([0, 3, 5])
    chunks = [rng.integers(0, 4, size=(3, c)) for c in (5, 1, 9)]
    counts = _LocalCounts()
    got = []
    for i, bins in enumerate(chunks):
        if i == 2:
            counts.keep_rows(rows[:2])  # row 5 finished: forgetting it must not disturb others
            bins, rows_now = bins[:2], rows[:2]
        else:
            rows_now = rows
        got.append(counts.assign(rows_now, bins))
    for r in range(2):
        seq = np.concatenate([c[r] for c in chunks])
        idx = np.concatenate([g[r] for g in got])
        expect = [int(np.sum(seq[: k + 1] == seq[k])) for k in range(seq.size)]
        assert idx.tolist() == expect


def test_truncation_is_flagged() -> None:
    res = rec_search(LOC[None], SCALE[None] * 0.01, None, seed=1, items=[0], max_steps=64)
    assert res.truncated[0] and res.steps[0] == 64


def test_bits_from_mi_rules() -> None:
    mi = np.array([3.4, 2.1, 1.7, 0.8, 0.1])
    assert bits_from_mi(mi, "floor").tolist() == [3, 2, 1, 0, 0]
    assert bits_from_mi(mi, "round").tolist() == [3, 2, 2, 1, 0]
    budget = bits_from_mi(mi, "budget")
    assert budget.sum() == 8 and budget[4] == 0  # below min_bits: never split
    assert bits_from_mi(mi, "budget", margin=3.0).sum() == 5
    assert bits_from_mi(np.full(40, 2.0)).sum() == 32  # the layout's cap


def test_split_blocks() -> None:
    blocks = split_blocks(np.array([3.0, 4.0, 5.0, 20.0, 1.0, 1.0]), 8.0)
    assert [b.tolist() for b in blocks] == [[0, 1], [2], [3], [4, 5]]


def _codelength(index_bits: np.ndarray, res, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """What choosing by codelength minimizes, in nats: the index's cost minus ln dQ/dP."""
    lr = np.sum(log_ratio(VALUES[res.atoms], loc, scale), axis=-1)
    return index_bits[res.indices - 1] * math.log(2.0) - lr


def test_choosing_by_codelength_finds_the_shortest_candidate() -> None:
    """Unpartitioned, candidate n of a block is the n-th draw of its key: the choice must be
    the brute-force argmin over all `budget` of them, whatever the Zipf-like index cost."""
    rng = np.random.default_rng(12)
    loc = rng.normal(size=(40, 3)) * 0.8
    scale = np.exp(rng.normal(size=(40, 3)) * 0.3 - 0.8)
    budget = 64
    index_bits = 1.5 * np.log2(np.arange(1, budget + 1)) + 1.0
    res = rec_search(loc, scale, None, seed=3, items=np.arange(40), blocks=2, budget=budget,
                     index_bits=index_bits)
    assert np.all(res.steps == budget)  # no early stop: a later candidate may code shorter
    n = np.arange(1, budget + 1)
    for row in range(40):
        atoms = candidate_atoms(3, np.full(budget, row), 2, 0, n, np.zeros(3, np.int64))
        lr = np.sum(log_ratio(VALUES[atoms], loc[row], scale[row]), axis=-1)
        best = int(np.argmin(index_bits * math.log(2.0) - lr))
        assert res.indices[row] == best + 1
        assert np.array_equal(res.atoms[row], atoms[best])


def test_choosing_by_codelength_never_codes_longer_than_the_sample() -> None:
    """Partitioned: ORC's sample is one of the same candidates, so the chosen one's codelength
    is at most the sample's on every row, and the decoder rebuilds it from (bin, n)."""
    rng = np.random.default_rng(13)
    loc = rng.normal(size=(200, 4)) * 1.2
    scale = np.exp(rng.normal(size=(200, 4)) * 0.4 - 1.5)
    bits = np.array([3, 2, 1, 0])
    index_bits = 1.8 * np.log2(np.arange(1, 257)) + 0.5
    kwargs = dict(seed=21, items=np.arange(200), blocks=5, budget=256)
    sample = rec_search(loc, scale, bits, **kwargs)
    chosen = rec_search(loc, scale, bits, index_bits=index_bits, **kwargs)
    shortest = _codelength(index_bits, chosen, loc, scale)
    sampled = _codelength(index_bits, sample, loc, scale)
    assert np.all(shortest <= sampled + 1e-9)
    assert np.mean(sampled - shortest) > 0.1  # nats a block (0.23 here): not the same choice
    rebuilt = candidate_atoms(21, np.arange(200), 5, chosen.bins, chosen.indices, bits)
    assert np.array_equal(rebuilt, chosen.atoms)


def test_choosing_by_codelength_needs_a_budget() -> None:
    with pytest.raises(ValueError, match="budget"):
        rec_search(LOC[None], SCALE[None], None, seed=1, items=[0], index_bits=np.ones(8))
