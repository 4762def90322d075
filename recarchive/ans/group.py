"""Several messages coded in lockstep, so that one batched step serves them all.

A codec that codes many independent messages (one per shard) can compute every symbol's
interval for all of them at once, in one net call and one table lookup over their chains side
by side, and then let each message push or pop its own rows. A `MessageGroup` is that view:
chains of message 0 first, then message 1's, and so on (every message with the same lanes per
chain). Each message sees exactly the operations it would see alone, in the same order, so
its bytes are the same as if it had been coded alone; lanes that sit a step out code the
whole interval [0, 2^precision), which leaves a message unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from recarchive.ans.backend import Array
from recarchive.ans.message import Message

Popped = TypeVar("Popped")


class MessageGroup:
    """Messages of lanes (chains_i, lanes), seen as one of lanes (Σ chains_i, lanes)."""

    def __init__(self, messages: list[Message]) -> None:
        if not messages:
            raise ValueError("a message group needs at least one message")
        shapes = {m.lane_shape[1:] for m in messages}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(f"grouped messages must all have (chains, lanes) heads with the "
                             f"same lanes, got {[m.lane_shape for m in messages]}")
        self.messages = messages
        bounds = [0]
        for message in messages:
            bounds.append(bounds[-1] + message.lane_shape[0])
        self.bounds = bounds

    @property
    def lane_shape(self) -> tuple[int, int]:
        return (self.bounds[-1], self.messages[0].lane_shape[1])

    @property
    def backend(self):
        return self.messages[0].backend

    def parts(self) -> Iterator[tuple[Message, slice]]:
        """Each message with the rows (chains) of the group that are its own."""
        for i, message in enumerate(self.messages):
            yield message, slice(self.bounds[i], self.bounds[i + 1])

    def push_groups(self, starts: Array, freqs: Array, precision: int, lanes: int) -> None:
        """`Message.push_groups` of each message's rows of a (Σ chains, D) variable."""
        for message, rows in self.parts():
            message.push_groups(starts[rows], freqs[rows], precision, lanes)

    def pop_each(self, pop: Callable[[Message, slice], tuple[Array, Array]],
                 ) -> list[tuple[Array, Array]]:
        """`pop(message, rows)` for each message, in order (the caller joins the rows)."""
        return [pop(message, rows) for message, rows in self.parts()]
