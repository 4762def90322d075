"""Interleaved rANS over many lanes at once.

A message is a vector of lane heads (int64, any shape) over one shared stack of 32-bit words.
Each lane is an independent rANS coder; lanes that overflow push their low word onto the stack
in lane order (C order of the head array), and on decoding the very same lanes need a word back,
so they take the top words in the same order. One numpy or torch operation thus codes a symbol
on every lane at once, and every operation is exact integer arithmetic on int64, identical on
numpy, CPU torch and CUDA torch (heads stay below 2^63, so signed int64 suffices).

Two kinds of message:
- plain (`empty_message`): heads start at 0 and grow through [0, L) without emitting words, as
  in constriction's coder, so a lane wastes no bits on its initial state. A decoder must then
  tell a lane still in that growing phase from one that needs a word back; it keeps, per lane,
  the number of words the lane has on the stack (`counts`, stored with the message).
- clean (`clean_message`): heads start at random values in [L, 2^63) and pops past the stack's
  bottom draw seeded clean bits. Bits-back encoders start from it: every pop is a fair sample.
"""

from __future__ import annotations

import numpy as np

from recarchive.ans import kernels
from recarchive.ans.backend import NUMPY, Array, Backend, backend_of
from recarchive.ans.stack import WordStack, clean_words

LOWER_BOUND = 1 << 31  # L: a lane at or above it is in the normal regime
WORD_BITS = 32
MAX_PRECISION = 30


def check_precision(precision: int) -> None:
    if not 1 <= precision <= MAX_PRECISION:
        raise ValueError(f"ANS precision must be 1..{MAX_PRECISION} bits, got {precision}")


class Message:
    """Lane heads plus a word stack; `push`/`pop` code one symbol per lane.

    `counts` holds each lane's words on the stack for plain messages and is None for clean
    ones, whose lanes never leave the normal regime.
    """

    def __init__(self, head: Array, stack: WordStack, counts: Array | None) -> None:
        self.head = head
        self.stack = stack
        self.counts = counts

    @property
    def backend(self) -> Backend:
        return self.stack.backend

    @property
    def lane_shape(self) -> tuple[int, ...]:
        return tuple(self.head.shape)

    @property
    def num_lanes(self) -> int:
        return int(self.head.numel()) if self.backend.is_torch else int(self.head.size)

    @property
    def is_clean(self) -> bool:
        return self.counts is None

    def push(self, starts: Array, freqs: Array, precision: int) -> None:
        """Encode on every lane the symbol occupying [start, start+freq) of 2^precision."""
        check_precision(precision)
        x, starts, freqs = self._flat(self.head), self._flat(starts), self._flat(freqs)
        # x >= freq·2^(63-p) decides whether the lane must first shed a word; comparing the
        # halves keeps freq·2^(62-p) inside int64 even when freq = 2^p.
        emit = (x >> 1) >= (freqs << (62 - precision))
        if self.backend.count(emit):
            self._push_words(emit, x[emit] & 0xFFFFFFFF)
            x = self.backend.where(emit, x >> WORD_BITS, x)
            if self.counts is not None:
                self.counts = self.counts + self.backend.asarray(emit).reshape(self.lane_shape)
        quotient = x // freqs
        x = (quotient << precision) + (x - quotient * freqs) + starts
        self.head = x.reshape(self.lane_shape)

    def push_groups(self, starts: Array, freqs: Array, precision: int, lanes: int) -> None:
        """Push a (chains, D) variable on heads (chains, lanes), D / lanes groups of columns,
        first columns first: `push` per group, in one compiled loop on the numpy backend."""
        check_precision(precision)
        groups = starts.shape[1] // lanes
        if self.backend.is_torch or self.counts is not None or not kernels.AVAILABLE:
            for t in range(groups):
                self.push(starts[:, t * lanes:(t + 1) * lanes],
                          freqs[:, t * lanes:(t + 1) * lanes], precision)
            return
        head = np.ascontiguousarray(self.head, dtype=np.int64).reshape(-1)
        buf = self.stack.reserve(head.size * groups)
        size = kernels.push_groups(head, buf, len(self.stack),
                                   np.ascontiguousarray(starts, dtype=np.int64),
                                   np.ascontiguousarray(freqs, dtype=np.int64), lanes, precision)
        self.stack.resize(size)
        self.head = head.reshape(self.lane_shape)

    def peek(self, precision: int) -> Array:
        """The cumulative frequency each lane's next symbol covers (look its symbol up in a CDF)."""
        check_precision(precision)
        return self.head & ((1 << precision) - 1)

    def pop(self, starts: Array, freqs: Array, precision: int) -> None:
        """Remove the symbols found from `peek` (given their starts and frequencies)."""
        check_precision(precision)
        x, starts, freqs = self._flat(self.head), self._flat(starts), self._flat(freqs)
        x = freqs * (x >> precision) + (x & ((1 << precision) - 1)) - starts
        need = x < LOWER_BOUND
        if self.counts is not None:
            # A lane with no words left on the stack is growing from 0, not short of words.
            need = need & (self._flat(self.counts) > 0)
        if self.backend.count(need):
            words = self._pop_words(need)
            x[need] = (x[need] << WORD_BITS) | words
            if self.counts is not None:
                self.counts = self.counts - self.backend.asarray(need).reshape(self.lane_shape)
        self.head = x.reshape(self.lane_shape)

    def _push_words(self, lanes: Array, words: Array) -> None:
        """Shed one word for each lane of the (flat) mask, before `counts` counts them: onto
        the shared stack, in lane order."""
        self.stack.push(words)

    def _pop_words(self, lanes: Array) -> Array:
        """Take back one word for each lane of the (flat) mask, in lane order."""
        return self.stack.pop(self.backend.count(lanes))

    def _flat(self, values: Array) -> Array:
        """Lanes as one axis (C order, as mask indexing orders them); 0-d lanes included."""
        return values.reshape(-1) if self.backend.is_torch else np.reshape(values, -1)

    def copy(self) -> Message:
        stack = WordStack(self.backend, self.stack.clean_seed)
        stack.clean_words_drawn = self.stack.clean_words_drawn
        stack.load(self.stack.words())
        counts = None if self.counts is None else _clone(self.counts)
        return Message(_clone(self.head), stack, counts)


def _clone(values: Array) -> Array:
    return values.clone() if hasattr(values, "clone") else values.copy()


def _shape(lane_shape: tuple[int, ...] | int) -> tuple[int, ...]:
    return (lane_shape,) if isinstance(lane_shape, int) else tuple(lane_shape)


def empty_message(lane_shape: tuple[int, ...] | int, backend: Backend = NUMPY) -> Message:
    """A plain message holding nothing: heads at 0, an empty stack. Pops past its data fail."""
    shape = _shape(lane_shape)
    return Message(backend.full(shape, 0), WordStack(backend), backend.full(shape, 0))


def clean_message(
    lane_shape: tuple[int, ...] | int, seed: int, backend: Backend = NUMPY
) -> Message:
    """A message of seeded clean bits for bits-back encoders: random heads in [2^62, 2^63),
    and clean words under the stack's bottom drawn on demand (`stack.clean_words_drawn`)."""
    shape = _shape(lane_shape)
    stack = WordStack(backend, clean_seed=seed)
    lanes = 1
    for n in shape:
        lanes *= n
    # The heads take the first 2·lanes words of the clean stream; the stack's underflow words
    # continue after them, so no word is used twice.
    words = clean_words(backend, seed, 0, 2 * lanes)
    stack.clean_words_drawn = 2 * lanes
    high = (words[0::2] & 0x3FFFFFFF) | (1 << 30)
    head = ((high << WORD_BITS) | words[1::2]).reshape(shape)
    return Message(head, stack, None)


def message_like(head: Array, words: Array, counts: Array | None) -> Message:
    """A message from heads, stack words (bottom first) and counts, on the heads' backend."""
    backend = backend_of(head)
    stack = WordStack(backend)
    stack.load(backend.asarray(words))
    counts = None if counts is None else backend.asarray(counts)
    return Message(backend.asarray(head), stack, counts)
