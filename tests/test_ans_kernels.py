"""The compiled lane-group loops write the words, heads and symbols the array code writes:
both are run on the same variables (look-ups by inverse table and by guided search, chains
sitting out, pops that reach under the stack into clean bits) and compared."""

from __future__ import annotations

import numpy as np
import pytest

from recarchive.ans import NUMPY, clean_message, torch_backend
from recarchive.entropy.discretized import DiscretizedTable, GridSpec

TABLES = {
    # small: decoded by one gather from the inverse table
    "inverse": GridSpec("logistic", 64, 4, (0.3, 1.0, 4.0, 20.0), 16),
    # wide and precise: decoded by the guided search, as the latent tables are
    "guided": GridSpec("logistic", 2048, 8, (0.2, 1.0, 6.0, 40.0, 300.0), 30),
}


def array_push(message, table, starts, freqs, lanes):
    for t in range(starts.shape[1] // lanes):
        cols = slice(t * lanes, (t + 1) * lanes)
        message.push(starts[:, cols], freqs[:, cols], table.spec.precision)


def array_pop(message, table, located, lanes, active):
    row, whole = located
    symbols = np.zeros(row.shape, dtype=np.int64)
    freqs = np.ones(row.shape, dtype=np.int64)
    for t in reversed(range(row.shape[1] // lanes)):
        cols = slice(t * lanes, (t + 1) * lanes)
        symbols[:, cols], freqs[:, cols] = table.pop_interval(
            message, (row[:, cols], whole[:, cols]), active)
    return symbols, freqs


def variable(table: DiscretizedTable, rng, chains: int, width: int):
    n = table.spec.num_symbols
    mean = rng.integers(0, n * table.spec.mean_steps, (chains, width))
    scale = rng.integers(0, len(table.spec.scales), (chains, width))
    symbols = np.clip(mean // table.spec.mean_steps
                      + rng.integers(-3, 4, (chains, width)), 0, n - 1)
    symbols[:, ::17] = rng.integers(0, n, symbols[:, ::17].shape)  # some far in the tails
    return symbols, table.locate(mean, scale)


def same_message(a, b) -> bool:
    return (np.array_equal(a.head, b.head) and np.array_equal(a.stack.words(), b.stack.words())
            and a.stack.clean_words_drawn == b.stack.clean_words_drawn)


@pytest.mark.parametrize("kind", sorted(TABLES))
@pytest.mark.parametrize("sitting_out", [False, True])
def test_compiled_groups_code_as_the_array_code_does(kind, sitting_out):
    table = DiscretizedTable(TABLES[kind])
    rng = np.random.default_rng(7)
    chains, lanes, width = 3, 16, 64
    active = None
    if sitting_out:
        active = np.array([True, False, True])[:, None]
    compiled, arrays = clean_message((chains, lanes), 5), clean_message((chains, lanes), 5)
    for _ in range(4):  # pops first (bits-back), so the stack runs dry into clean bits
        located = variable(table, rng, chains, width)[1]
        got = table.pop_groups(compiled, located, lanes, active)
        want = array_pop(arrays, table, located, lanes, active)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        assert same_message(compiled, arrays)
        symbols, located = variable(table, rng, chains, width)
        starts, freqs = table.sit_out(*table.interval(symbols, located), active)
        compiled.push_groups(starts, freqs, table.spec.precision, lanes)
        array_push(arrays, table, starts, freqs, lanes)
        assert same_message(compiled, arrays)
    assert compiled.stack.clean_words_drawn > 0  # the fallback into clean bits ran


def test_the_torch_backend_takes_the_array_path_to_the_same_words():
    import torch

    table = DiscretizedTable(TABLES["guided"])
    on_torch = table.to(torch_backend("cpu"))
    rng = np.random.default_rng(3)
    symbols, located = variable(table, rng, 2, 32)
    message = clean_message((2, 16), 1)
    twin = clean_message((2, 16), 1, torch_backend("cpu"))
    message.push_groups(*table.interval(symbols, located), table.spec.precision, 16)
    twin.push_groups(*on_torch.interval(torch.from_numpy(symbols),
                                        tuple(torch.from_numpy(a) for a in located)),
                     table.spec.precision, 16)
    assert np.array_equal(twin.head.numpy(), message.head)
    assert np.array_equal(twin.stack.words().numpy(), message.stack.words())
    popped, _ = table.pop_groups(message, located, 16)
    assert np.array_equal(popped, symbols)
    assert NUMPY is table.backend


def test_without_numba_the_array_code_writes_the_same_bytes(monkeypatch):
    from recarchive.ans import kernels

    table = DiscretizedTable(TABLES["guided"])
    rng = np.random.default_rng(11)
    symbols, located = variable(table, rng, 2, 32)
    starts, freqs = table.interval(symbols, located)
    compiled, plain = clean_message((2, 16), 2), clean_message((2, 16), 2)
    compiled.push_groups(starts, freqs, table.spec.precision, 16)
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    plain.push_groups(starts, freqs, table.spec.precision, 16)
    assert same_message(compiled, plain)
    assert np.array_equal(table.pop_groups(plain, located, 16)[0], symbols)


@pytest.mark.parametrize("kind", sorted(TABLES))
@pytest.mark.parametrize("floor", [True, False])
def test_compiled_locate_and_intervals_are_the_array_codes(kind, floor):
    """Means beyond both ends (clamped), the edge symbols (which take the tails) and symbols
    of frequency 0 (tables without a floor) give the same rows, means and intervals."""
    spec = TABLES[kind]
    compiled = DiscretizedTable(spec, floor=floor)
    assert compiled._compiled
    array = DiscretizedTable(spec, floor=floor)
    array._compiled = False
    rng = np.random.default_rng(7)
    n, steps = spec.num_symbols, spec.mean_steps
    shape = (3, 400)
    mean = rng.integers(-3 * steps, (n + 3) * steps, shape)
    scale = rng.integers(0, len(spec.scales), shape)
    symbols = rng.integers(0, n, shape)
    symbols[0, :50], symbols[1, :50] = 0, n - 1
    symbols[2, :100] = np.clip(mean[2, :100] // steps + rng.integers(-2, 3, 100), 0, n - 1)
    located = compiled.locate(mean, scale)
    for got, want in zip(located, array.locate(mean, scale), strict=True):
        assert np.array_equal(got, want)
    got = compiled.interval(symbols, located)
    want = array.interval(symbols, located)
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a, b)
    if not floor:
        assert (want[1] == 0).any()  # frequency-0 symbols were among them
