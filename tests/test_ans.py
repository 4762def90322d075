"""The rANS core: round trips, numpy ≡ torch bitstreams, corruption, clean bits, golden hash."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from recarchive.ans import (
    NUMPY,
    CdfBank,
    CorruptMessageError,
    StackUnderflowError,
    clean_message,
    empty_message,
    message_from_bytes,
    message_to_bytes,
    pop_symbols,
    push_symbols,
    torch_backend,
)
from recarchive.ans import cdf as cdf_module
from recarchive.entropy.quantize import pmf_to_cdf
from recarchive.exact.prng import random_words
from tests.ans_helpers import information_bits, random_cdf, sample_symbols

TORCH = torch_backend("cpu")
BACKENDS = [NUMPY, TORCH]


def encode(backend, bank, rows, symbols, lane_shape):
    message = empty_message(lane_shape, backend)
    for step in range(rows.shape[0]):
        push_symbols(message, bank, backend.asarray(rows[step]), backend.asarray(symbols[step]))
    return message_to_bytes(message)


def decode(backend, bank, rows, data):
    message = message_from_bytes(data, backend)
    out = np.empty(rows.shape, dtype=np.int64)
    for step in reversed(range(rows.shape[0])):
        out[step] = backend.to_numpy(pop_symbols(message, bank, backend.asarray(rows[step])))
    return out, message


@given(
    seed=st.integers(0, 2**32 - 1),
    lane_shape=st.sampled_from([(), (1,), (7,), (3, 5), (2, 3, 4), (0,)]),
    steps=st.integers(0, 40),
    alphabet=st.sampled_from([1, 2, 3, 17, 256, 1000, 4096]),
    precision=st.integers(12, 30),
    num_rows=st.integers(1, 6),
)
def test_round_trip_random_distributions(seed, lane_shape, steps, alphabet, precision, num_rows):
    rng = np.random.default_rng(seed)
    cdf = random_cdf(rng, num_rows, alphabet, precision)
    rows = rng.integers(0, num_rows, size=(steps, *lane_shape))
    symbols = sample_symbols(rng, cdf, rows)
    streams = []
    for backend in BACKENDS:
        bank = CdfBank(cdf, precision, backend)
        data = encode(backend, bank, rows, symbols, lane_shape)
        decoded, rest = decode(backend, bank, rows, data)
        assert np.array_equal(decoded, symbols)
        assert len(rest.stack) == 0 and int(rest.head.sum()) == 0  # back to the empty state
        streams.append(data)
    assert streams[0] == streams[1], "numpy and torch must write identical bytes"


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_inverse_table_and_binary_search_agree(backend, monkeypatch):
    rng = np.random.default_rng(3)
    cdf = random_cdf(rng, 8, 300, 16)
    rows = rng.integers(0, 8, size=(30, 64))
    symbols = sample_symbols(rng, cdf, rows)
    fast = CdfBank(cdf, 16, backend)
    monkeypatch.setattr(cdf_module, "MAX_INVERSE_ENTRIES", 0)
    searched = CdfBank(cdf, 16, backend)
    assert fast._inverse is not None and searched._inverse is None and searched._guide is not None
    data = encode(backend, fast, rows, symbols, (64,))
    for bank in (fast, searched):
        assert np.array_equal(decode(backend, bank, rows, data)[0], symbols)


@pytest.mark.parametrize("on_host", [True, False], ids=["host", "accelerator"])
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_guided_search_finds_every_cumulative_frequency(backend, on_host, monkeypatch):
    """Every cf of every row, against the inverse table: peaked rows whose tails are long runs
    of frequency-1 cells (a guide slice then spans hundreds of cells) and a flat row; also with
    the full-width search an accelerator runs."""
    monkeypatch.setattr(type(backend), "on_host", property(lambda self: on_host))
    precision, alphabet = 18, 700
    cells = np.arange(alphabet)
    pmfs = [np.exp(-0.5 * ((cells - centre) / width) ** 2) + 1e-12
            for centre, width in ((350, 2.0), (3, 40.0), (690, 0.3))] + [np.ones(alphabet)]
    cdf = pmf_to_cdf(np.array(pmfs), precision)
    monkeypatch.setattr(cdf_module, "MAX_INVERSE_ENTRIES", 0)
    bank = CdfBank(cdf, precision, backend)
    expected = cdf_module.inverse_table(cdf, precision).reshape(len(pmfs), -1)
    cf = np.arange(1 << precision)
    for row in range(len(pmfs)):
        symbols, starts, freqs = bank.lookup(backend.asarray(np.full_like(cf, row)),
                                             backend.asarray(cf))
        assert np.array_equal(backend.to_numpy(symbols), expected[row]), row
        assert np.all(backend.to_numpy(starts) <= cf)
        assert np.all(cf < backend.to_numpy(starts + freqs))


def test_large_message_overhead_is_small():
    rng = np.random.default_rng(11)
    cdf = random_cdf(rng, 64, 256, 16)
    rows = rng.integers(0, 64, size=(2000, 128))
    symbols = sample_symbols(rng, cdf, rows)
    bank = CdfBank(cdf, 16)
    data = encode(NUMPY, bank, rows, symbols, (128,))
    info = information_bits(cdf, rows, symbols)
    # Per lane: a packed head and word count, about 3-4 bytes; plus a fixed header.
    assert 8 * len(data) - info < 128 * 40 + 400
    assert np.array_equal(decode(NUMPY, bank, rows, data)[0], symbols)


def test_deterministic_symbols_cost_nothing():
    bank = CdfBank(np.array([[0, 1 << 16]]), 16)
    message = empty_message(4)
    for _ in range(100):
        push_symbols(message, bank, np.zeros(4, np.int64), np.zeros(4, np.int64))
    assert len(message.stack) == 0 and int(message.head.max()) == 0


def test_empty_message_round_trips():
    for shape in [(0,), (5,), ()]:
        data = message_to_bytes(empty_message(shape))
        message = message_from_bytes(data)
        assert message.lane_shape == shape and len(message.stack) == 0


def sample_stream() -> bytes:
    """A fixed stream made with integer operations only, so it is the same on every platform."""
    count = 4 * 255 + 2 * 50 * 32
    words = random_words(seed=2024, stream=1, offset=0, count=count).astype(np.int64)
    freqs = 1 + words[: 4 * 255].reshape(4, 255) % 250
    freqs = np.concatenate([freqs, (1 << 16) - freqs.sum(axis=1, keepdims=True)], axis=1)
    cdf = np.concatenate([np.zeros((4, 1), np.int64), np.cumsum(freqs, axis=1)], axis=1)
    rows = words[4 * 255 : 4 * 255 + 1600].reshape(50, 32) % 4
    symbols = words[4 * 255 + 1600 :].reshape(50, 32) % 256
    return encode(NUMPY, CdfBank(cdf, 16), rows, symbols, (32,))


def test_golden_bitstream():
    """Any change to the coder, the table quantization or the format shows up here."""
    digest = hashlib.sha256(sample_stream()).hexdigest()
    assert digest == GOLDEN_SHA256


GOLDEN_SHA256 = "5732289ba6001a283181146825424b8de33f6ba3cea3a3282c88e4ac7caaee0b"


@pytest.mark.parametrize("position", [0, 5, 20, -40, -10, -1])
def test_corrupted_bytes_are_refused(position):
    data = bytearray(sample_stream())
    data[position] ^= 0x41
    with pytest.raises(CorruptMessageError):
        message_from_bytes(bytes(data))


@pytest.mark.parametrize("cut", [0, 3, 10, 30, 100, 1])
def test_truncated_or_extended_bytes_are_refused(cut):
    data = sample_stream()
    with pytest.raises(CorruptMessageError):
        message_from_bytes(data[: len(data) - cut] if cut else data[:0])
    with pytest.raises(CorruptMessageError):
        message_from_bytes(data + b"\0" * cut if cut else data + b"x")


def test_unknown_version_is_refused_by_name():
    data = bytearray(sample_stream())
    data[4] = 9
    with pytest.raises(CorruptMessageError, match="version 9"):
        message_from_bytes(bytes(data))


def test_decoder_underflow_is_an_error():
    bank = CdfBank(np.array([[0, 1 << 15, 1 << 16]]), 16)
    message = empty_message(3)
    message.head = np.full(3, (1 << 31) + 5, dtype=np.int64)  # normal regime, nothing below
    message.counts = np.ones(3, dtype=np.int64)
    with pytest.raises(StackUnderflowError):
        pop_symbols(message, bank, np.zeros(3, np.int64))


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_bits_back_from_clean_bits(backend):
    """Pop latents from clean bits, push data, and get every latent and the clean state back."""
    rng = np.random.default_rng(5)
    lanes, steps = 16, 60
    posterior = CdfBank(random_cdf(rng, 3, 64, 14), 14, backend)
    likelihood = CdfBank(random_cdf(rng, 3, 256, 16), 16, backend)
    data_rows = rng.integers(0, 3, size=(steps, lanes))
    data = sample_symbols(rng, likelihood.cdf_numpy, data_rows)
    rows0 = backend.asarray(np.zeros(lanes, np.int64))
    message = clean_message(lanes, seed=77, backend=backend)
    initial_head = backend.to_numpy(message.head).copy()
    latents = []  # three latents per datum: they take more bits than the data give back
    for step in range(steps):
        latents.append([backend.to_numpy(pop_symbols(message, posterior, rows0)) for _ in "abc"])
        rows = backend.asarray(data_rows[step])
        push_symbols(message, likelihood, rows, backend.asarray(data[step]))
    assert message.stack.clean_words_drawn > 2 * lanes  # it did need initial bits
    stored = message_to_bytes(message)
    again = message_from_bytes(stored, backend)
    for step in reversed(range(steps)):
        decoded = backend.to_numpy(pop_symbols(again, likelihood, backend.asarray(data_rows[step])))
        assert np.array_equal(decoded, data[step])
        for latent in reversed(latents[step]):
            push_symbols(again, posterior, rows0, backend.asarray(latent))
    assert np.array_equal(backend.to_numpy(again.head), initial_head)
    drawn = message.stack.clean_words_drawn - 2 * lanes
    clean = clean_message(lanes, seed=77, backend=backend)
    expected = backend.to_numpy(clean.stack.pop(drawn))
    assert np.array_equal(backend.to_numpy(again.stack.words()), expected)


def test_clean_messages_are_reproducible_and_seeded():
    a, b, c = (clean_message(8, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.head, b.head) and not np.array_equal(a.head, c.head)
    assert np.array_equal(a.stack.pop(10), b.stack.pop(10))
    assert np.array_equal(a.head, torch_backend().to_numpy(clean_message(8, 1, TORCH).head))


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match="frequency"):
        CdfBank(np.array([[0, 5, 5, 1 << 16]]), 16)
    with pytest.raises(ValueError, match="from 0"):
        CdfBank(np.array([[0, 5, 1 << 15]]), 16)
    with pytest.raises(ValueError, match="precision"):
        CdfBank(np.array([[0, 1 << 31]]), 31)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_bitstream_equals_numpy():
    rng = np.random.default_rng(9)
    cdf = random_cdf(rng, 16, 256, 16)
    rows = rng.integers(0, 16, size=(20, 4096))
    symbols = sample_symbols(rng, cdf, rows)
    cuda = torch_backend("cuda")
    data = encode(cuda, CdfBank(cdf, 16, cuda), rows, symbols, (4096,))
    assert data == encode(NUMPY, CdfBank(cdf, 16), rows, symbols, (4096,))
    assert np.array_equal(decode(NUMPY, CdfBank(cdf, 16), rows, data)[0], symbols)
