"""Philox4x32-10: known answers, numpy == torch, random access, uniformity, frozen format."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recarchive.exact import prng

# Random123 kat_vectors, philox4x32 10: counter[4], key[2] -> output[4].
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (
        (0xFFFFFFFF,) * 4,
        (0xFFFFFFFF,) * 2,
        (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
    ),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]

# Archive-format pin: sha256 of random_words(seed=1234, stream=5, offset=0, count=4096) as <u4.
GOLDEN_WORDS_SHA256 = "2429562f1dc8952551ee3ae4874b7d4b08a283dc38d03057ae2ef84b5227587b"

U32 = st.integers(0, 2**32 - 1)
U64 = st.integers(0, 2**64 - 1)
FAST = settings(max_examples=40, deadline=None)


def _join(lo: int, hi: int) -> int:
    return lo | (hi << 32)


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_known_answers_numpy(counter, key, expected):
    out = prng.philox4x32(np.array([counter], dtype=np.uint32), np.array(key, dtype=np.uint32))
    assert out.dtype == np.uint32
    assert out[0].tolist() == list(expected)


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_known_answers_torch(counter, key, expected):
    out = prng.philox4x32_torch(torch.tensor([counter]), torch.tensor(key))
    assert out.dtype == torch.int64
    assert out[0].tolist() == list(expected)


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_known_answers_through_seed_stream_id_mapping(counter, key, expected):
    """Pins the documented mapping: key=(seed lo, hi), counter=(id lo, hi, stream lo, hi)."""
    seed = _join(*key)
    block_id = _join(counter[0], counter[1])
    stream = _join(counter[2], counter[3])
    ids = np.array([block_id], dtype=np.uint64)
    assert prng.philox_words(seed, ids, stream)[0].tolist() == list(expected)
    assert prng.philox_words_torch(seed, ids, stream)[0].tolist() == list(expected)
    words = prng.random_words(seed, stream, 4 * block_id, 4)
    assert words.tolist() == list(expected)
    assert prng.random_words_torch(seed, stream, 4 * block_id, 4).tolist() == list(expected)


@FAST
@given(
    counters=st.lists(st.tuples(U32, U32, U32, U32), min_size=1, max_size=16),
    keys=st.lists(st.tuples(U32, U32), min_size=1, max_size=16),
)
def test_raw_numpy_matches_torch(counters, keys):
    n = len(counters)
    key_rows = (keys * n)[:n]
    ctr = np.array(counters, dtype=np.uint32)
    key = np.array(key_rows, dtype=np.uint32)
    ref = prng.philox4x32(ctr, key)
    got = prng.philox4x32_torch(
        torch.tensor(ctr.astype(np.int64)), torch.tensor(key.astype(np.int64))
    )
    np.testing.assert_array_equal(got.numpy(), ref.astype(np.int64))


@FAST
@given(seed=U64, stream=U64, ids=st.lists(U64, min_size=0, max_size=32))
def test_keyed_numpy_matches_torch(seed, stream, ids):
    arr = np.array(ids, dtype=np.uint64)
    ref = prng.philox_words(seed, arr, stream)
    assert ref.shape == (len(ids), 4) and ref.dtype == np.uint32
    from_numpy_ids = prng.philox_words_torch(seed, arr, stream)
    from_tensor_ids = prng.philox_words_torch(seed, torch.from_numpy(arr.view(np.int64)), stream)
    np.testing.assert_array_equal(from_numpy_ids.numpy(), ref.astype(np.int64))
    np.testing.assert_array_equal(from_tensor_ids.numpy(), ref.astype(np.int64))


@FAST
@given(seed=U64, stream=U64, offset=st.integers(0, 300), count=st.integers(0, 120))
def test_offset_consistency(seed, stream, offset, count):
    full = prng.random_words(seed, stream, 0, offset + count)
    part = prng.random_words(seed, stream, offset, count)
    assert part.shape == (count,) and part.dtype == np.uint32
    np.testing.assert_array_equal(part, full[offset:])
    part_t = prng.random_words_torch(seed, stream, offset, count)
    assert part_t.dtype == torch.int64
    np.testing.assert_array_equal(part_t.numpy(), part.astype(np.int64))


@FAST
@given(seed=U64, stream=U64, block=st.integers(0, 2**64 - 8), lane=st.integers(0, 3))
def test_large_offsets_match_keyed_blocks(seed, stream, block, lane):
    """Word j is lane j % 4 of block j // 4, also across the 2**32 and 2**63 block boundaries."""
    count = 4 * 7 - lane
    words = prng.random_words(seed, stream, 4 * block + lane, count)
    ids = np.arange(7, dtype=np.uint64) + np.uint64(block)
    expected = prng.philox_words(seed, ids, stream).reshape(-1)[lane:]
    np.testing.assert_array_equal(words, expected)
    words_t = prng.random_words_torch(seed, stream, 4 * block + lane, count)
    np.testing.assert_array_equal(words_t.numpy(), expected.astype(np.int64))


def test_carry_into_high_counter_word():
    block = 2**32 - 2
    words = prng.random_words(7, 3, 4 * block, 16)
    ids = np.array([block, block + 1, 2**32, 2**32 + 1], dtype=np.uint64)
    np.testing.assert_array_equal(words, prng.philox_words(7, ids, 3).reshape(-1))
    np.testing.assert_array_equal(
        prng.random_words_torch(7, 3, 4 * block, 16).numpy(), words.astype(np.int64)
    )


def test_golden_hash():
    words = prng.random_words(seed=1234, stream=5, offset=0, count=4096)
    assert hashlib.sha256(words.astype("<u4").tobytes()).hexdigest() == GOLDEN_WORDS_SHA256
    words_t = prng.random_words_torch(seed=1234, stream=5, offset=0, count=4096)
    as_u4 = words_t.numpy().astype("<u4")
    assert hashlib.sha256(as_u4.tobytes()).hexdigest() == GOLDEN_WORDS_SHA256


def test_bytes_roughly_uniform():
    words = prng.random_words(seed=99, stream=1, offset=0, count=1 << 16)
    counts = np.bincount(words.view(np.uint8), minlength=256)
    expected = counts.sum() / 256
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert 150 < chi2 < 400  # df = 255: mean 255, sd ~22.6


def test_seeds_and_streams_decorrelate():
    a = prng.random_words(1, 0, 0, 1024)
    assert not np.array_equal(a, prng.random_words(2, 0, 0, 1024))
    assert not np.array_equal(a, prng.random_words(1, 1, 0, 1024))
    assert not np.array_equal(a, prng.random_words(1 << 32, 0, 0, 1024))  # high key word used


def test_uniform_exact_and_open_interval():
    words = np.array([0, 1, 2**31, 2**32 - 1], dtype=np.uint32)
    u = prng.uniform_from_words(words)
    assert u.dtype == np.float64
    assert u.tolist() == [0.5 / 2**32, 1.5 / 2**32, 0.5 + 0.5 / 2**32, (2**32 - 0.5) / 2**32]
    assert (u > 0).all() and (u < 1).all()
    u_t = prng.uniform_from_words_torch(torch.from_numpy(words.astype(np.int64)))
    assert u_t.dtype == torch.float64
    np.testing.assert_array_equal(u_t.numpy().view(np.uint64), u.view(np.uint64))


def test_uniform_numpy_matches_torch_bitwise():
    words = prng.random_words(5, 6, 0, 10_000)
    u = prng.uniform_from_words(words)
    u_t = prng.uniform_from_words_torch(prng.random_words_torch(5, 6, 0, 10_000))
    np.testing.assert_array_equal(u_t.numpy().view(np.uint64), u.view(np.uint64))


@pytest.mark.parametrize(
    ("seed", "stream", "offset", "count"),
    [(-1, 0, 0, 1), (2**64, 0, 0, 1), (0, -1, 0, 1), (0, 2**64, 0, 1), (0, 0, -1, 1),
     (0, 0, 0, -1), (0, 0, 2**66 - 2, 4)],
)  # fmt: skip
def test_rejects_out_of_range(seed, stream, offset, count):
    with pytest.raises(ValueError):
        prng.random_words(seed, stream, offset, count)
    with pytest.raises(ValueError):
        prng.random_words_torch(seed, stream, offset, count)


def test_rejects_float_inputs():
    with pytest.raises(TypeError):
        prng.philox_words(0, np.array([1.0]), 0)
    with pytest.raises(TypeError):
        prng.philox_words_torch(0, torch.tensor([1.0]), 0)
    with pytest.raises(TypeError):
        prng.uniform_from_words(np.array([1.0]))
    with pytest.raises(TypeError):
        prng.uniform_from_words_torch(torch.tensor([1.0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    cpu = prng.random_words_torch(1234, 5, 3, 100_003)
    gpu = prng.random_words_torch(1234, 5, 3, 100_003, device="cuda")
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.cpu(), cpu)
    ids = torch.tensor([0, 1, 2**40, -1], dtype=torch.int64)
    assert torch.equal(
        prng.philox_words_torch(9, ids.cuda(), 2**63).cpu(), prng.philox_words_torch(9, ids, 2**63)
    )
    for counter, key, expected in KAT:
        out = prng.philox4x32_torch(torch.tensor([counter], device="cuda"), torch.tensor(key))
        assert out[0].tolist() == list(expected)
    u_gpu = prng.uniform_from_words_torch(gpu).cpu()
    assert torch.equal(u_gpu, prng.uniform_from_words_torch(cpu))


@pytest.mark.parametrize("per_entry_keys", [False, True])
def test_the_compiled_rounds_are_the_array_codes(per_entry_keys, monkeypatch):
    """The numba loop and the numpy array code give the same words (counters at the 32-bit
    extremes, one key for all or a key per counter)."""
    assert prng.COMPILED
    rng = np.random.default_rng(3)
    counters = rng.integers(0, 2**32, (500, 4), dtype=np.uint64).astype(np.uint32)
    counters[0], counters[1] = 0, 2**32 - 1
    keys = rng.integers(0, 2**32, (500, 2) if per_entry_keys else (2,),
                        dtype=np.uint64).astype(np.uint32)
    compiled = prng.philox4x32(counters, keys)
    words = prng.philox_words(2**64 - 1, np.arange(2**64 - 300, 2**64 - 1, dtype=np.uint64), 77)
    monkeypatch.setattr(prng, "COMPILED", False)
    assert np.array_equal(compiled, prng.philox4x32(counters, keys))
    assert np.array_equal(words, prng.philox_words(2**64 - 1, np.arange(2**64 - 300, 2**64 - 1,
                                                                        dtype=np.uint64), 77))
