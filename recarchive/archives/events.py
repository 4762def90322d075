"""What archive, restore and verify tell whoever listens while they work.

The archive package emits these and knows nothing of who listens: the command layer draws
progress from them, the Ray driver forwards what its actors emit, tests count them. A
listener is any callable taking one event; it must be quick (it runs on the working thread)
and must not raise.

- `Planned`: the size of the work, once known (restore and verify know it from the index;
  an archive's listing streams, so its command counts the source beside it).
- `Advanced`: work finished since the last event. An archive reports an object when every
  block of it is in a written shard (so the figures are coded work, not work read ahead),
  restore and verify when the object is written or checked; `blocks` counts pixel blocks
  coded or decoded.
- `PartEvent`: a part finished (archive: built or reused, with its done record; restore and
  verify: the objects of that part given back or checked).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Planned:
    objects: int
    bytes: int


@dataclass(frozen=True)
class Advanced:
    objects: int = 0
    bytes: int = 0
    blocks: int = 0

    def __add__(self, other: Advanced) -> Advanced:
        return Advanced(self.objects + other.objects, self.bytes + other.bytes,
                        self.blocks + other.blocks)


@dataclass
class PartEvent:
    """A part finished: built now or reused from an earlier attempt (archive), or restored or
    checked (restore, verify; `record` is then empty)."""

    part: int
    reused: bool
    objects: int
    record: dict[str, Any] = field(default_factory=dict)


Event = Planned | Advanced | PartEvent
Listener = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The listener when nobody listens."""
