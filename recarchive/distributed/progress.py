"""Progress across processes: actors forward the work they finish to the driver, which hands
it to the same listener an in-process run would have (`recarchive.archives.events`).

Each actor batches `Advanced` events (shards coded, objects written) and puts them on one Ray
queue at most every `interval` seconds, and at the end of each task; the driver drains the
queue while it waits for tasks. Parts are reported by the driver itself, from the results.
A lost batch (its actor died) only makes the figures lag: the part is redone and counted again,
so progress is a display, never a record.
"""

from __future__ import annotations

import time
from typing import Any

from ray.util.queue import Empty, Queue

from recarchive.archives.events import Advanced, Event, Listener


def event_queue() -> Queue:
    """The queue the actors of one run report on (a small actor of its own, no CPU held)."""
    return Queue(actor_options={"num_cpus": 0})


class Forwarder:
    """On an actor: a listener that batches what its tasks finish onto the driver's queue."""

    def __init__(self, queue: Queue | None, interval: float = 0.5) -> None:
        self.queue = queue
        self.interval = interval
        self.pending = Advanced()
        self.sent = time.monotonic()

    def __call__(self, event: Event) -> None:
        if isinstance(event, Advanced):
            self.pending += event
            if time.monotonic() - self.sent >= self.interval:
                self.flush()

    def flush(self) -> None:
        if self.queue is not None and self.pending != Advanced():
            self.queue.put_nowait(self.pending)
        self.pending = Advanced()
        self.sent = time.monotonic()


def drain(queue: Queue, listener: Listener) -> None:
    """On the driver: hand every event the actors have sent so far to `listener`."""
    while True:
        try:
            events: list[Any] = queue.get_nowait_batch(max(queue.qsize(), 1))
        except Empty:
            return
        for event in events:
            listener(event)
