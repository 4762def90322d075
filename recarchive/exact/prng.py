"""Counter-based Philox4x32-10 PRNG, bit-identical in numpy and torch (CPU and CUDA).

Why counter-based: the decoder must regenerate exactly the encoder's random numbers on any
machine, for any batch split, in any order. Philox is a pure function of (key, counter), so the
n-th word never depends on how many words were drawn before it or on which device drew them.

Algorithm: Philox4x32 with 10 rounds (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as
easy as 1, 2, 3", SC 2011), with the Random123 constants and word order; it reproduces the
Random123 known-answer vectors (see tests/test_prng.py).

Archive format (changing any of this breaks old archives):

* ``key = (seed & 0xFFFFFFFF, seed >> 32)`` for a 64-bit ``seed`` in ``[0, 2**64)``.
* ``counter = (id & 0xFFFFFFFF, id >> 32, stream & 0xFFFFFFFF, stream >> 32)`` for a 64-bit
  block ``id`` and a 64-bit ``stream``, both in ``[0, 2**64)``.
* One Philox call yields the 4 words ``out[0..3]`` in Random123 order.
* ``philox_words(seed, ids, stream)[n] = philox4x32_10(counter(ids[n], stream), key(seed))``.
* ``random_words(seed, stream, offset, count)`` is the flat word sequence
  ``w[j] = philox_words(seed, [j // 4], stream)[0, j % 4]`` for ``j`` in
  ``[offset, offset + count)``. Hence both APIs share one counter space per (seed, stream):
  callers keying by tuples via ``philox_words`` must use a stream they do not also use with
  ``random_words``.

torch has no full uint32/uint64 arithmetic, so the torch twin keeps each 32-bit word in an int64
tensor holding ``[0, 2**32)`` and forms the 32x32->64 product from 16-bit halves, so no
intermediate leaves ``[0, 2**49)``. Only integer ops are used, which are exact on every device.
"""

from __future__ import annotations

import numpy as np
import torch

M0 = 0xD2511F53
M1 = 0xCD9E8D57
W0 = 0x9E3779B9
W1 = 0xBB67AE85
ROUNDS = 10

MASK32 = 0xFFFFFFFF
_U64_LIMIT = 1 << 64
_TWO_POW_M32 = 2.0**-32

_U32 = np.uint64(MASK32)
_SH32 = np.uint64(32)
_M0, _M1, _W0, _W1 = np.uint64(M0), np.uint64(M1), np.uint64(W0), np.uint64(W1)

try:  # the numpy twin compiled (a declared dependency; without it the array code runs)
    from numba import njit

    COMPILED = True
except ImportError:
    COMPILED = False

    def njit(**_options):
        return lambda function: function


# ---------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------


def _check_u64(name: str, value: int) -> int:
    """Reject values the format cannot represent rather than silently wrapping them."""
    value = int(value)
    if not 0 <= value < _U64_LIMIT:
        raise ValueError(f"{name} must be in [0, 2**64), got {value}")
    return value


def _split64(value: int) -> tuple[int, int]:
    return value & MASK32, value >> 32


def _block_range(offset: int, count: int) -> tuple[int, int]:
    """First block and number of blocks covering words [offset, offset + count)."""
    offset = int(offset)
    count = int(count)
    if offset < 0 or count < 0:
        raise ValueError(f"offset and count must be >= 0, got {offset}, {count}")
    first = offset // 4
    stop = -(-(offset + count) // 4)
    if stop > _U64_LIMIT:
        raise ValueError("word range exceeds the 2**64-block counter space")
    return first, stop - first


# ---------------------------------------------------------------------------------------------
# numpy implementation
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _philox_loop(c0: np.ndarray, c1: np.ndarray, c2: np.ndarray, c3: np.ndarray,
                 k0: np.ndarray, k1: np.ndarray, out: np.ndarray) -> None:
    """`_philox_numpy`'s rounds one counter at a time (keys of one entry: the same for all),
    every step in uint64: the same words, without a dozen array passes per round."""
    shared = k0.shape[0] == 1
    for i in range(c0.shape[0]):
        a0, a1, a2, a3 = c0[i], c1[i], c2[i], c3[i]
        key0 = k0[0] if shared else k0[i]
        key1 = k1[0] if shared else k1[i]
        for r in range(ROUNDS):
            if r:
                key0 = (key0 + _W0) & _U32
                key1 = (key1 + _W1) & _U32
            p0 = _M0 * a0
            p1 = _M1 * a2
            a0, a1, a2, a3 = (p1 >> _SH32) ^ a1 ^ key0, p1 & _U32, (p0 >> _SH32) ^ a3 ^ key1, \
                p0 & _U32
        out[i, 0] = a0
        out[i, 1] = a1
        out[i, 2] = a2
        out[i, 3] = a3


def _philox_numpy(
    c: list[np.ndarray], k0: np.ndarray | np.uint64, k1: np.ndarray | np.uint64
) -> np.ndarray:
    """Ten Philox rounds on uint64 arrays holding 32-bit words; returns uint32 (N, 4)."""
    c0, c1, c2, c3 = c
    if COMPILED:
        words = [np.ascontiguousarray(np.broadcast_to(np.asarray(w, dtype=np.uint64), c0.shape))
                 for w in c]
        keys = [np.ascontiguousarray(np.asarray(k, dtype=np.uint64).reshape(-1)) for k in (k0, k1)]
        out = np.empty((c0.shape[0], 4), dtype=np.uint32)
        _philox_loop(*words, *keys, out)
        return out
    for r in range(ROUNDS):
        if r:
            k0 = (k0 + _W0) & _U32
            k1 = (k1 + _W1) & _U32
        p0 = _M0 * c0  # < 2**64: exact in uint64
        p1 = _M1 * c2
        c0, c1, c2, c3 = (p1 >> _SH32) ^ c1 ^ k0, p1 & _U32, (p0 >> _SH32) ^ c3 ^ k1, p0 & _U32
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)


def philox4x32(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Raw Philox4x32-10: counter uint32 (N, 4), key uint32 (2,) or (N, 2) -> uint32 (N, 4)."""
    ctr = np.asarray(counter, dtype=np.uint32).reshape(-1, 4).astype(np.uint64)
    k = np.asarray(key, dtype=np.uint32).astype(np.uint64)
    k0, k1 = (k[0], k[1]) if k.ndim == 1 else (k[:, 0], k[:, 1])
    return _philox_numpy([ctr[:, i] for i in range(4)], k0, k1)


def philox_words(seed: int, ids: np.ndarray, stream: int) -> np.ndarray:
    """Four words per 64-bit counter id: for callers that key randomness by tuples.

    ``ids`` is any integer array (interpreted as uint64); returns uint32 of shape (N, 4).
    """
    s_lo, s_hi = _split64(_check_u64("seed", seed))
    t_lo, t_hi = _split64(_check_u64("stream", stream))
    ids64 = np.asarray(ids).reshape(-1)
    if ids64.dtype.kind not in "iu":
        raise TypeError(f"ids must be an integer array, got {ids64.dtype}")
    ids64 = ids64.astype(np.uint64)
    n = ids64.shape[0]
    counter = [
        ids64 & _U32,
        ids64 >> _SH32,
        np.full(n, t_lo, dtype=np.uint64),
        np.full(n, t_hi, dtype=np.uint64),
    ]
    return _philox_numpy(counter, np.uint64(s_lo), np.uint64(s_hi))


def random_words(seed: int, stream: int, offset: int, count: int) -> np.ndarray:
    """Words [offset, offset + count) of the (seed, stream) sequence, uint32 of shape (count,).

    Random access: any slice of the sequence costs only the blocks it touches.
    """
    first, nblocks = _block_range(offset, count)
    ids = np.arange(nblocks, dtype=np.uint64) + np.uint64(first)
    flat = philox_words(seed, ids, stream).reshape(-1)
    start = int(offset) - 4 * first
    return flat[start : start + int(count)]


def uniform_from_words(words: np.ndarray) -> np.ndarray:
    """(w + 0.5) / 2**32 in float64: exact, so never 0 or 1 and identical on every backend."""
    w = np.asarray(words)
    if w.dtype.kind not in "iu":
        raise TypeError(f"words must be an integer array, got {w.dtype}")
    return (w.astype(np.float64) + 0.5) * _TWO_POW_M32


# ---------------------------------------------------------------------------------------------
# torch implementation (int64 tensors holding 32-bit words)
# ---------------------------------------------------------------------------------------------


def _mulhilo_torch(m: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (hi, lo) 32-bit halves of m * x for m, x in [0, 2**32), without int64 overflow.

    m * x = t + u * 2**16 with t = m * (x & 0xFFFF) and u = m * (x >> 16), both < 2**48;
    folding u's low 16 bits into t keeps every intermediate below 2**49.
    """
    t = x.bitwise_and(0xFFFF) * m
    u = x.bitwise_right_shift(16) * m
    s = t + u.bitwise_and(0xFFFF).bitwise_left_shift(16)
    lo = s.bitwise_and(MASK32)
    hi = s.bitwise_right_shift(32) + u.bitwise_right_shift(16)
    return hi, lo


def _philox_torch(
    c: list[torch.Tensor], k0: torch.Tensor | int, k1: torch.Tensor | int
) -> torch.Tensor:
    """Ten Philox rounds on int64 tensors holding 32-bit words; returns int64 (N, 4)."""
    c0, c1, c2, c3 = c
    for r in range(ROUNDS):
        if r:
            k0 = (k0 + W0) & MASK32
            k1 = (k1 + W1) & MASK32
        hi0, lo0 = _mulhilo_torch(M0, c0)
        hi1, lo1 = _mulhilo_torch(M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return torch.stack([c0, c1, c2, c3], dim=-1)


def philox4x32_torch(counter: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """Raw Philox4x32-10 in torch: int64 counter (N, 4), key (2,) or (N, 2), words in [0, 2**32)."""
    ctr = counter.to(torch.int64).reshape(-1, 4)
    k = key.to(device=ctr.device, dtype=torch.int64)
    k0, k1 = (k[0], k[1]) if k.ndim == 1 else (k[:, 0], k[:, 1])
    return _philox_torch([ctr[:, i] for i in range(4)], k0, k1)


def _ids_to_torch(
    ids: torch.Tensor | np.ndarray, device: torch.device | str | None
) -> torch.Tensor:
    """int64 tensor carrying the uint64 bit pattern of the ids (torch has no uint64 math)."""
    if isinstance(ids, torch.Tensor):
        if ids.is_floating_point() or ids.is_complex():
            raise TypeError(f"ids must be an integer tensor, got {ids.dtype}")
        out = ids.to(torch.int64)
        return out if device is None else out.to(device)
    arr = np.asarray(ids).reshape(-1)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"ids must be an integer array, got {arr.dtype}")
    bits = np.ascontiguousarray(arr.astype(np.uint64)).view(np.int64)
    return torch.from_numpy(bits).to(device if device is not None else "cpu")


def philox_words_torch(
    seed: int,
    ids: torch.Tensor | np.ndarray,
    stream: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Torch twin of :func:`philox_words`: int64 (N, 4) with values in [0, 2**32).

    ``ids`` may be a numpy integer array or an integer tensor; int64 tensors are read as the
    two's-complement bit pattern of a uint64 id, so ids >= 2**63 stay reachable.
    """
    s_lo, s_hi = _split64(_check_u64("seed", seed))
    t_lo, t_hi = _split64(_check_u64("stream", stream))
    ids64 = _ids_to_torch(ids, device).reshape(-1)
    lo = ids64.bitwise_and(MASK32)
    hi = ids64.bitwise_right_shift(32).bitwise_and(MASK32)  # arithmetic shift, then mask
    counter = [lo, hi, torch.full_like(lo, t_lo), torch.full_like(lo, t_hi)]
    return _philox_torch(counter, s_lo, s_hi)


def random_words_torch(
    seed: int,
    stream: int,
    offset: int,
    count: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Torch twin of :func:`random_words`: int64 (count,) with values in [0, 2**32)."""
    s_lo, s_hi = _split64(_check_u64("seed", seed))
    t_lo, t_hi = _split64(_check_u64("stream", stream))
    first, nblocks = _block_range(offset, count)
    f_lo, f_hi = _split64(first)
    # Block id = first + j, built from 32-bit halves so nothing overflows int64.
    low_sum = torch.arange(nblocks, dtype=torch.int64, device=device) + f_lo
    lo = low_sum.bitwise_and(MASK32)
    hi = (low_sum.bitwise_right_shift(32) + f_hi).bitwise_and(MASK32)
    counter = [lo, hi, torch.full_like(lo, t_lo), torch.full_like(lo, t_hi)]
    flat = _philox_torch(counter, s_lo, s_hi).reshape(-1)
    start = int(offset) - 4 * first
    return flat[start : start + int(count)]


def uniform_from_words_torch(words: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`uniform_from_words`; every step is exact, so it matches bitwise."""
    if words.is_floating_point() or words.is_complex():
        raise TypeError(f"words must be an integer tensor, got {words.dtype}")
    return (words.to(torch.float64) + 0.5) * _TWO_POW_M32
