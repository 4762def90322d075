"""REC shared randomness: the documented counter layout, pinned values, numpy == torch, and
candidates that stay inside their bin."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recarchive.exact.normal import default_table
from recarchive.exact.prng import philox_words
from recarchive.rec import (
    candidate_atoms,
    candidate_atoms_torch,
    prior_values,
    prior_values_torch,
)
from recarchive.rec.randomness import SAMPLE_TAG, bin_digits, flat_bins

SEED = 123456789012345
ITEMS = np.array([0, 1, 2**32 - 1])
BLOCKS = np.array([0, 5, 2**24 - 1])
BINS = np.array([0, 3, 2**20 + 7])
INDICES = np.array([1, 2, 2**24 - 1])
BITS = np.array([0, 2, 1, 3, 0, 15, 0])
# Archive format: these atoms must never change.
PINNED = [
    [35727, 11215, 11429, 1214, 9875, 0, 25849],
    [29271, 53701, 31321, 7900, 7919, 1, 51073],
    [24914, 57422, 54365, 7769, 23997, 32768, 32433],
]


def test_pinned_atoms() -> None:
    atoms = candidate_atoms(SEED, ITEMS, BLOCKS, BINS, INDICES, BITS)
    assert atoms.tolist() == PINNED


def test_layout_matches_philox_words() -> None:
    """The documented layout: id = bin << 32 | index << 8 | group, stream = tag|block|item."""
    item, block, b, n = 77, 3, 0, 9
    atoms = candidate_atoms(SEED, item, block, b, n, np.zeros(6, np.int64))
    stream = (SAMPLE_TAG << 56) | (block << 32) | item
    ids = np.array([(b << 32) | (n << 8) | g for g in range(2)], dtype=np.uint64)
    words = philox_words(SEED, ids, stream).reshape(-1)[:6].astype(np.int64)
    assert atoms[0].tolist() == (words >> 16).tolist()


def test_torch_twin_bitwise_equal() -> None:
    rng = np.random.default_rng(1)
    n, d = 500, 9
    bits = rng.integers(0, 4, size=(n, d))
    bits[:, 0] = rng.integers(0, 17, size=n)  # up to the full table
    bits[:, 0] = np.minimum(bits[:, 0], 32 - bits[:, 1:].sum(axis=1))
    bins = rng.integers(0, 2**62, size=n) & ((np.int64(1) << bits.sum(axis=1)) - 1)
    items = rng.integers(0, 2**32, size=n)
    blocks = rng.integers(0, 2**24, size=n)
    indices = rng.integers(1, 2**24, size=n)
    a_np = candidate_atoms(SEED, items, blocks, bins, indices, bits)
    a_t = candidate_atoms_torch(SEED, *(torch.as_tensor(x) for x in (items, blocks, bins,
                                                                      indices, bits)))
    assert np.array_equal(a_np, a_t.numpy())
    loc = rng.normal(size=d) * 3.0
    scale = np.exp(rng.normal(size=d))
    v_np = prior_values(a_np, loc, scale)
    v_t = prior_values_torch(a_t, torch.as_tensor(loc), torch.as_tensor(scale))
    assert v_np.tobytes() == v_t.numpy().tobytes()


def test_candidates_lie_in_their_bin() -> None:
    rng = np.random.default_rng(2)
    bits = np.array([3, 0, 5, 1])
    n = 2000
    bins = rng.integers(0, 2**9, size=n)
    atoms = candidate_atoms(1, 0, 0, bins, rng.integers(1, 1000, size=n), bits)
    digits = bin_digits(bins, np.broadcast_to(bits, (n, 4)))
    k = default_table().k
    assert np.array_equal(atoms >> (k - bits), digits)
    assert np.array_equal(flat_bins(digits, bits), bins)


def test_candidates_are_prior_samples() -> None:
    """Unpartitioned candidates are N(0,1) (the table): mean ~0, variance ~1."""
    atoms = candidate_atoms(5, 0, 0, 0, np.arange(1, 20001), np.zeros(2, np.int64))
    v = default_table().values[atoms]
    assert abs(v.mean()) < 0.03 and abs(v.var() - 1.0) < 0.04


def test_rejects_out_of_layout_keys() -> None:
    bits = np.zeros(2, np.int64)
    with pytest.raises(ValueError):
        candidate_atoms(1, 2**32, 0, 0, 1, bits)
    with pytest.raises(ValueError):
        candidate_atoms(1, 0, 0, 0, 0, bits)  # indices start at 1
    with pytest.raises(ValueError):
        candidate_atoms(1, 0, 0, 4, 1, np.array([1, 1]))  # bin outside a 2-bit partition
    with pytest.raises(ValueError):
        candidate_atoms(1, 0, 0, 0, 1, np.array([17, 0]))  # finer than the table
