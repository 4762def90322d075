"""Clean messages primed with data: bits-back starts that cost no clean bits (HiLLoC's start).

A bits-back encoder pops before it pushes, and a `clean_message` feeds those first pops with
seeded clean bits: random heads, then clean words under the stack's bottom. Those bits carry
no information, yet the message keeps them to its end. A primed message puts real data where
the first clean bits would be: each chain's data words (already coded some plain way, and
whitened so that pops from them are fair samples) fill the heads of the chain's lanes, 62 bits
a head, and the rest goes on the stack; seeded clean bits lie below, for pops that outrun the
data. Once the decoder has undone every later operation, the message is back in this state
and `primed_words` reads the data out of it.

Heads hold 62 bits each, so the data must fill every head: `HEAD_BITS · lanes <= 32 · words`
per chain, and the bits past the heads must make whole words (any lane count that is a
multiple of 16 does).
"""

from __future__ import annotations

import numpy as np

from recarchive.ans.backend import NUMPY, Array, Backend
from recarchive.ans.message import Message
from recarchive.ans.stack import WordStack

HEAD_BITS = 62  # a primed head is 2^62 + 62 data bits, inside the normal range [2^31, 2^63)


def can_prime(lanes: int, words: int) -> bool:
    """Whether `words` 32-bit words per chain fill `lanes` heads and leave whole words."""
    spare = 32 * words - HEAD_BITS * lanes
    return spare >= 0 and spare % 32 == 0


def primed_message(words: np.ndarray, lanes: int, seed: int,
                   backend: Backend = NUMPY) -> Message:
    """A message of lanes (chains, lanes) holding `words` (chains, W) of 32-bit data."""
    words = np.asarray(words, dtype=np.int64)
    chains, count = words.shape
    if not can_prime(lanes, count):
        raise ValueError(f"{count} words per chain cannot fill {lanes} heads of {HEAD_BITS} "
                         "bits and leave whole words")
    bits = _bits(words)
    head_bits = bits[:, : HEAD_BITS * lanes].reshape(chains, lanes, HEAD_BITS)
    # Two leading bits 0 and 1 make the head 2^62 + the 62 data bits, as 8 big-endian bytes.
    lead = np.broadcast_to(np.array([0, 1], dtype=np.uint8), (chains, lanes, 2))
    packed = np.packbits(np.concatenate([lead, head_bits], axis=2), axis=2)
    heads = packed.reshape(-1).view(">u8").astype(np.int64).reshape(chains, lanes)
    rest = _words(bits[:, HEAD_BITS * lanes :])
    stack = WordStack(backend, clean_seed=seed)
    # The first chain's words end on top, first word topmost: pops take them in order.
    stack.load(backend.asarray(rest[::-1, ::-1].reshape(-1).copy()))
    return Message(backend.asarray(heads), stack, None)


def primed_words(message: Message, words_per_chain: int) -> np.ndarray:
    """The (chains, W) data words of a message back in its primed state (the inverse)."""
    backend = message.backend
    heads = backend.to_numpy(message.head).astype(">u8")
    chains, lanes = heads.shape
    if not can_prime(lanes, words_per_chain):
        raise ValueError(f"{words_per_chain} words per chain do not prime {lanes} lanes")
    head_bits = np.unpackbits(heads.view(np.uint8).reshape(chains, lanes, 8), axis=2)
    head_bits = head_bits[:, :, 64 - HEAD_BITS :].reshape(chains, -1)
    rest_count = words_per_chain - HEAD_BITS * lanes // 32
    stored = backend.to_numpy(message.stack.words())
    if len(stored) < chains * rest_count:
        raise ValueError("the message holds fewer words than it was primed with")
    top = stored[len(stored) - chains * rest_count :]
    rest = top[::-1].reshape(chains, rest_count)
    return _words(np.concatenate([head_bits, _bits(rest)], axis=1))


def _bits(words: Array) -> np.ndarray:
    """(chains, W) words -> (chains, 32 W) bits, most significant first."""
    big = np.asarray(words, dtype=np.int64).astype(">u4")
    return np.unpackbits(big.view(np.uint8).reshape(big.shape[0], -1), axis=1)


def _words(bits: np.ndarray) -> np.ndarray:
    """The inverse of `_bits`: (chains, 32 W) bits -> (chains, W) int64 words."""
    packed = np.packbits(bits, axis=1)
    return packed.reshape(-1).view(">u4").astype(np.int64).reshape(bits.shape[0], -1)
