"""Messages whose lanes keep their words apart, so each lane (or run of lanes) is a message of
its own: what a codec needs to give every object its own byte range.

A `LaneMessage` is a plain message (heads from 0, no initial bits wasted) that codes in
lockstep over all its lanes like any other, but keeps one word stack per lane instead of one
shared stack. The lanes never interact, so `lanes_to_bytes` can cut out any run of them, and
`lane_message` can put any runs back together, in any company and order, for decoding:
a run decodes alone (random access) or batched with others (a whole shard), to the same
symbols. Numpy only.

A run's bytes, with its lane count k known to the reader (it is not stored):
  packed heads (k) | packed word counts of the first k - 1 lanes | each lane's words (u32 LE,
  bottom first), lane after lane
The last lane's count is what the length leaves. No header and no checksum: a run is a few
bytes over its information (a CIFAR-10 image's run costs about one byte more than its symbols),
and the reader checks what it decoded (every lane must end empty, `lanes_finished`; archives
check the object's digest).
"""

from __future__ import annotations

import numpy as np

from recarchive.ans.backend import NUMPY
from recarchive.ans.message import Message
from recarchive.ans.serialize import CorruptMessageError, pack_uints, unpack_uints
from recarchive.ans.stack import WordStack


class LaneMessage(Message):
    """A plain numpy message with one word stack per lane (rows of `words`)."""

    def __init__(self, head: np.ndarray, counts: np.ndarray, words: np.ndarray) -> None:
        super().__init__(head, WordStack(NUMPY), counts)
        self.words = words  # (lanes, capacity) int64; lane i's stack is words[i, :counts[i]]

    def _push_words(self, lanes: np.ndarray, words: np.ndarray) -> None:
        index = np.flatnonzero(lanes)
        depth = self.counts.reshape(-1)[index]
        if depth.size and int(depth.max()) >= self.words.shape[1]:
            grown = np.zeros((self.words.shape[0], 2 * self.words.shape[1] + 16), np.int64)
            grown[:, : self.words.shape[1]] = self.words
            self.words = grown
        self.words[index, depth] = words

    def _pop_words(self, lanes: np.ndarray) -> np.ndarray:
        index = np.flatnonzero(lanes)
        return self.words[index, self.counts.reshape(-1)[index] - 1]

    def lanes_finished(self) -> np.ndarray:
        """Per lane: is it back to the empty message it started as (head 0, no words)? Every
        lane of a correctly decoded run is; a damaged run almost never ends there."""
        return (self.head.reshape(-1) == 0) & (self.counts.reshape(-1) == 0)


def empty_lane_message(lanes: int) -> LaneMessage:
    return LaneMessage(np.zeros(lanes, np.int64), np.zeros(lanes, np.int64),
                       np.zeros((lanes, 16), np.int64))


def lanes_to_bytes(message: LaneMessage, start: int, stop: int) -> bytes:
    """The run of lanes start..stop-1 as bytes (layout in the module docstring)."""
    if not 0 <= start < stop <= message.num_lanes:
        raise ValueError(f"lanes {start}..{stop - 1} outside a message of "
                         f"{message.num_lanes} lanes")
    heads = message.head.reshape(-1)[start:stop]
    counts = message.counts.reshape(-1)[start:stop]
    words = [message.words[lane, : counts[lane - start]] for lane in range(start, stop)]
    return (pack_uints(heads.astype(np.uint64)) + pack_uints(counts[:-1].astype(np.uint64))
            + np.concatenate(words).astype("<u4").tobytes())


def _parse_run(data: bytes, lanes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    view = memoryview(data)
    try:
        heads, offset = unpack_uints(view, 0, lanes)
        counts, offset = unpack_uints(view, offset, lanes - 1)
    except CorruptMessageError as error:
        raise CorruptMessageError(f"lane run of {lanes} lanes: {error}") from error
    rest = len(view) - offset
    known = int(counts.sum(dtype=np.uint64)) if lanes > 1 else 0
    if rest % 4 or rest // 4 < known or (lanes and int(heads.max()) >= 1 << 63):
        raise CorruptMessageError(f"lane run of {lanes} lanes is damaged or cut: {rest} bytes "
                                  f"of words for at least {known} words")
    counts = np.append(counts.astype(np.int64), rest // 4 - known)
    words = np.frombuffer(view, dtype="<u4", count=rest // 4, offset=offset).astype(np.int64)
    return heads.astype(np.int64), counts, words


def lane_message(runs: list[bytes], lanes: list[int]) -> LaneMessage:
    """The runs (each `lanes[i]` lanes) side by side as one message, ready to decode."""
    parsed = [_parse_run(data, k) for data, k in zip(runs, lanes, strict=True)]
    heads = np.concatenate([p[0] for p in parsed]) if parsed else np.zeros(0, np.int64)
    counts = np.concatenate([p[1] for p in parsed]) if parsed else np.zeros(0, np.int64)
    words = np.zeros((len(heads), max(int(counts.max(initial=0)), 1)), np.int64)
    lane = 0
    for run_heads, run_counts, run_words in parsed:
        ends = np.cumsum(run_counts)
        for k, (end, count) in enumerate(zip(ends, run_counts, strict=True)):
            words[lane + k, :count] = run_words[end - count : end]
        lane += len(run_heads)
    return LaneMessage(heads, counts, words)
