"""REC choices on an ANS message: exact round trips on numpy and torch, escapes, what the
message costs against the ideal codelength, and the codelength bound on small channels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recarchive.ans import (
    empty_message,
    message_from_bytes,
    message_num_bits,
    message_to_bytes,
    torch_backend,
)
from recarchive.bench.rec_synthetic import channel_posteriors
from recarchive.rec import (
    bits_from_mi,
    choice_bits,
    decode_blocks,
    encode_blocks,
    fit_zipf_lam,
    fitted_index_code,
    pop_choice,
    push_choice,
    rec_search,
    zipf_index_code,
)
from recarchive.rec.index_code import pfr_zipf_lam

D = 5


def _to_numpy(a: np.ndarray | torch.Tensor) -> np.ndarray:
    return a.cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


@pytest.mark.parametrize("mi", [3.0, 9.0])
def test_round_trip_numpy_and_torch(mi: float) -> None:
    """Three blocks per lane (partitioned PFR, standard PFR, partitioned ORC), an index code
    with a small cap so escapes happen; both backends pop exactly the encoder's atoms."""
    rng = np.random.default_rng(int(mi))
    lanes = 48
    items = np.arange(lanes) + 10
    loc, scale, mi_d = channel_posteriors(mi, lanes, rng)
    bits = bits_from_mi(mi_d)
    zero = np.zeros(D, np.int64)
    code = zipf_index_code([1.0, 3.0], cap=4)
    msg = empty_message(lanes)
    plan = [(bits, 0, None), (zero, 1, None), (bits, 0, 64)]
    results = [encode_blocks(msg, loc, scale, b, code, row, seed=99, items=items, blocks=k,
                             budget=budget) for k, (b, row, budget) in enumerate(plan)]
    assert any((r.indices > code.cap).any() for r in results)  # escapes exercised
    data = message_to_bytes(msg)
    for backend in (None, torch_backend("cpu")):
        m = message_from_bytes(data) if backend is None else message_from_bytes(data, backend)
        for k in reversed(range(len(plan))):
            b, row, _ = plan[k]
            atoms = decode_blocks(m, b, code, row, seed=99, items=items, blocks=k)
            assert np.array_equal(_to_numpy(atoms), results[k].atoms)


def test_torch_message_writes_the_same_bytes() -> None:
    rng = np.random.default_rng(3)
    lanes = 16
    loc, scale, mi_d = channel_posteriors(6.0, lanes, rng)
    bits = bits_from_mi(mi_d)
    res = rec_search(loc, scale, bits, seed=1, items=np.arange(lanes))
    code = zipf_index_code([1.5], cap=8)
    data = []
    for backend in (None, torch_backend("cpu")):
        msg = empty_message(lanes) if backend is None else empty_message(lanes, backend)
        push_choice(msg, code, 0, bits, res.bins, res.indices)
        data.append(message_to_bytes(msg))
    assert data[0] == data[1]
    bins, indices = pop_choice(message_from_bytes(data[0]), code, 0, bits)
    assert np.array_equal(bins, res.bins) and np.array_equal(indices, res.indices)


def test_message_costs_the_ideal_codelength() -> None:
    """One lane, 300 blocks pushed in a row: the message's size is the sum of the ideal
    codelengths, give or take the lane's head (rANS overhead is tiny)."""
    rng = np.random.default_rng(4)
    loc, scale, mi_d = channel_posteriors(8.0, 300, rng)
    bits = bits_from_mi(mi_d)
    res = rec_search(loc, scale, bits, seed=2, items=np.arange(300))
    code = zipf_index_code([fit_zipf_lam(res.indices)], cap=64)
    msg = empty_message(1)
    for i in range(300):
        push_choice(msg, code, 0, bits, res.bins[i : i + 1], res.indices[i : i + 1])
    ideal = float(choice_bits(code, 0, bits, res.indices).sum())
    coded = message_num_bits(msg) - message_num_bits(empty_message(1))  # less the header
    assert ideal - 64 <= coded <= 1.01 * ideal + 96


@pytest.mark.parametrize("mi", [1.0, 2.0, 4.0, 6.0])
def test_codelength_bound_small_channels(mi: float) -> None:
    """Average bits per block <= I + log2(I + 1) + 4, partitioned (fitted Zipf index code)
    and standard PFR (Li & El Gamal's Zipf)."""
    rng = np.random.default_rng(int(10 * mi))
    n = 800
    train_loc, train_scale, mi_d = channel_posteriors(mi, n, rng)
    loc, scale, _ = channel_posteriors(mi, n, rng)
    bound = mi + math.log2(mi + 1.0) + 4.0
    bits = bits_from_mi(mi_d)
    train = rec_search(train_loc, train_scale, bits, seed=5, items=np.arange(n))
    code = zipf_index_code([fit_zipf_lam(train.indices)])
    test = rec_search(loc, scale, bits, seed=5, items=np.arange(n, 2 * n))
    assert mi <= choice_bits(code, 0, bits, test.indices).mean() <= bound
    k = 300  # standard PFR's heavy runtime tail (2**D∞) makes it the slow part
    std = rec_search(loc[:k], scale[:k], None, seed=5, items=np.arange(2 * n, 2 * n + k))
    std_code = zipf_index_code([pfr_zipf_lam(mi)])
    assert choice_bits(std_code, 0, np.zeros(D, np.int64), std.indices).mean() <= bound


def test_fit_zipf_lam_recovers_the_exponent() -> None:
    samples = np.random.default_rng(0).zipf(1.5, 5000)  # s = 1 + 1/lam, lam = 2
    assert 1.6 < fit_zipf_lam(samples) < 2.5


def test_fitted_histogram_code() -> None:
    rng = np.random.default_rng(1)
    rows = [rng.geometric(0.5, 1000), rng.geometric(0.05, 1000), np.empty(0, np.int64)]
    code = fitted_index_code(rows, cap=64)
    assert code.num_rows == 3 and code.cap == 64
    cost = code.symbol_bits(np.zeros(1000, np.int64), rows[0]).mean()
    assert cost < 2.2  # entropy of Geometric(0.5) is 2 bits
