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

Part observers see more, while a part is built: each object as its index row is final
(`ObjectAdded`, with a raster's pixels) and each shard as it is written (`ShardWritten`). What
an observer's `finish` returns is kept in the part's done record under its `name`, so what it
measured survives with the part (a resumed run reuses it). The compression report is one
(`recarchive.report.measure`), wired in by the layer above (`recarchive.api`, the commands),
so this package never imports it. A commit hook (`CommitHook`) writes files of its own just
before the manifest, which names them (the report's file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from recarchive.archives.records import IndexRow, PartRecord
from recarchive.storage import Location


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
    record: PartRecord | None = None


Event = Planned | Advanced | PartEvent
Listener = Callable[[Event], None]


@dataclass(frozen=True)
class ObjectAdded:
    """An object's index row is final. `index`: its row in the part; `pixels`: a raster's
    decoded pixels (None otherwise); `seconds`: reading and packing it, shard coding excluded."""

    index: int
    row: IndexRow
    pixels: np.ndarray | None
    seconds: float


@dataclass(frozen=True)
class ShardWritten:
    """A shard is in the part's data file. Pixel shards: `blocks` coded, `owners[i]` the row of
    block i, `block_bits[i]` what block i cost as the codec measured it (None where it does not
    measure; `codecs.EncodedShard`). Blob shards: `owners[i]` the row of object i, `lengths[i]`
    its bytes."""

    number: int
    kind: str
    codec: str
    model_sha256: str | None
    owners: np.ndarray
    payload_bytes: int
    seconds: float
    blocks: np.ndarray | None = None
    lengths: list[int] | None = None
    block_bits: np.ndarray | None = None


class PartObserver(Protocol):
    name: str  # where the done record keeps what `finish` returns

    def __call__(self, event: ObjectAdded | ShardWritten) -> None: ...

    def finish(self) -> dict[str, Any]: ...


ObserverFactory = Callable[[int], PartObserver]  # a part's number -> its observer
# (destination, manifest to be committed, the parts' done records) -> entries of the files it
# wrote, which the manifest then names
CommitHook = Callable[[Location, dict[str, Any], list[PartRecord]], list[dict[str, Any]]]


def ignore(event: Event) -> None:
    """The listener when nobody listens."""
