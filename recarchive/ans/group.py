"""Several messages coded in lockstep, so that one batched step serves them all.

A codec that codes many independent messages (one per shard) can compute every symbol's
interval for all of them at once, in one net call and one table lookup over their chains side
by side, and then let each message push or pop its own rows. A `MessageGroup` is that view:
chains of message 0 first, then message 1's, and so on, each message with its own lanes per
chain (a variable's D columns go to its lanes in D / lanes groups, as `Message.push_groups`
deals them). Each message sees exactly the operations it would see alone, in the same order, so
its bytes are the same as if it had been coded alone; lanes that sit a step out code the
whole interval [0, 2^precision), which leaves a message unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from recarchive.ans.backend import Array, Backend
from recarchive.ans.message import Message


class MessageGroup:
    """Messages of lanes (chains_i, lanes_i), their Σ chains_i chains seen side by side."""

    def __init__(self, messages: list[Message]) -> None:
        if not messages:
            raise ValueError("a message group needs at least one message")
        if any(len(m.lane_shape) != 2 for m in messages):
            raise ValueError(f"grouped messages must have (chains, lanes) heads, got "
                             f"{[m.lane_shape for m in messages]}")
        self.messages = messages
        bounds = [0]
        for message in messages:
            bounds.append(bounds[-1] + message.lane_shape[0])
        self.bounds = bounds

    @property
    def chains(self) -> int:
        return self.bounds[-1]

    @property
    def backend(self) -> Backend:
        return self.messages[0].backend

    def parts(self) -> Iterator[tuple[Message, slice]]:
        """Each message with the rows (chains) of the group that are its own."""
        for i, message in enumerate(self.messages):
            yield message, slice(self.bounds[i], self.bounds[i + 1])

    def push_groups(self, starts: Array, freqs: Array, precision: int) -> None:
        """`Message.push_groups` of each message's rows of a (Σ chains, D) variable, on its
        own lanes."""
        for message, rows in self.parts():
            message.push_groups(starts[rows], freqs[rows], precision, message.lane_shape[1])

    def pop_each(self, pop: Callable[[Message, slice, int], tuple[Array, Array]],
                 ) -> tuple[Array, Array]:
        """`pop(message, rows, lanes)` -> (symbols, freqs) of each message's rows, joined
        back into the group's (Σ chains, D) arrays."""
        popped = [pop(message, rows, message.lane_shape[1]) for message, rows in self.parts()]
        backend = self.backend
        return (backend.concat([symbols for symbols, _ in popped]),
                backend.concat([freqs for _, freqs in popped]))
