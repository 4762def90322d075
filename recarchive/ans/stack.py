"""The word stack under the lane heads, with deterministic clean bits below its bottom.

Bits-back coding pops before it pushes. When a pop needs more words than the stack holds, the
missing words come from an endless, seeded stream of "clean bits" that conceptually lies under
the stack's bottom. Those words are counted (`clean_words_drawn`) so every rate can include them:
they are information the encoder had to invent, never data of the message.
"""

from __future__ import annotations

from recarchive.ans.backend import Array, Backend
from recarchive.exact import prng

CLEAN_BITS_STREAM = 0x636C65616E  # "clean": the PRNG stream reserved for initial bits


class StackUnderflowError(ValueError):
    """A pop needed words that the message does not have (and no clean bits were allowed)."""


class WordStack:
    """A growable stack of 32-bit words on one backend; the top is the end."""

    def __init__(self, backend: Backend, clean_seed: int | None = None) -> None:
        self.backend = backend
        self.clean_seed = clean_seed
        self.clean_words_drawn = 0
        self._buf = backend.empty_words(1024)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, words: Array) -> None:
        """Push int64 words in [0, 2^32), in order (the last one ends on top)."""
        n = int(words.shape[0])
        if n == 0:
            return
        if self._size + n > self._buf.shape[0]:
            grown = self.backend.empty_words(max(2 * self._buf.shape[0], self._size + n))
            grown[: self._size] = self._buf[: self._size]
            self._buf = grown
        self._buf[self._size : self._size + n] = self.backend.store_words(words)
        self._size += n

    def reserve(self, extra: int) -> Array:
        """Room for `extra` more words; the buffer, for compiled loops that write words past
        the current size and then call `resize` (numpy backend)."""
        if self._size + extra > self._buf.shape[0]:
            grown = self.backend.empty_words(max(2 * self._buf.shape[0], self._size + extra))
            grown[: self._size] = self._buf[: self._size]
            self._buf = grown
        return self._buf

    def resize(self, size: int) -> None:
        """After a compiled loop pushed or popped words in the buffer `reserve` gave."""
        if not 0 <= size <= self._buf.shape[0]:
            raise ValueError(f"stack size {size} outside its buffer")
        self._size = size

    def pop(self, n: int) -> Array:
        """Pop the top `n` words as int64, in stack order (the top one last)."""
        if n <= self._size:
            self._size -= n
            return self.backend.load_words(self._buf[self._size : self._size + n])
        missing = n - self._size
        below = self._draw_clean(missing)
        have = self.backend.load_words(self._buf[: self._size])
        self._size = 0
        return self.backend.concat_words(below, have)

    def _draw_clean(self, count: int) -> Array:
        if self.clean_seed is None:
            raise StackUnderflowError(
                f"ANS message underflow: a pop needs {count} more words than the message holds; "
                "the message is truncated, or a bits-back encoder was started without clean bits"
            )
        # The clean stream grows downwards: word k lies k places under the bottom, so the
        # words drawn now are returned deepest first.
        words = clean_words(self.backend, self.clean_seed, self.clean_words_drawn, count)
        self.clean_words_drawn += count
        return words.flip(0) if self.backend.is_torch else words[::-1].copy()

    def words(self) -> Array:
        """The stored words, bottom first, as int64 (a copy)."""
        return self.backend.load_words(self._buf[: self._size])

    def load(self, words: Array) -> None:
        """Replace the contents with `words` (int64, bottom first)."""
        self._size = 0
        self.push(words)


def clean_words(backend: Backend, seed: int, offset: int, count: int) -> Array:
    """`count` clean words of `seed` from `offset`, as int64, identical on every backend."""
    if backend.is_torch:
        device = backend.device
        return prng.random_words_torch(seed, CLEAN_BITS_STREAM, offset, count, device=device)
    return prng.random_words(seed, CLEAN_BITS_STREAM, offset, count).astype("int64")
