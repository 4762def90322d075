"""Objects as units of their own (format 4): where each unit lies in a part's data file, and
when a restore reads units rather than whole shards.

A codec that codes each object alone (`codes_objects_alone`, the REC codec) returns, per
object run of a shard, the byte range of its unit inside the shard's payload
(`EncodedShard.units`). Data files store payloads uncompressed, PLAIN and without a
dictionary, one value per row group, so a payload's bytes appear verbatim and contiguous in
the file, at the end of its column chunk. The writer finds where (`payload_offsets`, checked
against each payload's sha256) and records in the index each unit's absolute byte range:
a reader fetches exactly those bytes with one range request.

Why here and not in the codec: the codec knows offsets inside its payload only; where a
payload lands is the Parquet writer's doing, so the archive measures it after writing.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from recarchive.archives.errors import ArchiveError

PAYLOAD_COLUMN = "payload"
# A shard is read unit by unit while the selected units in it take at most this share of its
# payload; above that its payload is read and decoded whole (fewer requests, one batched
# decode, checked against the shard's full sha256s).
UNIT_READ_SHARE = 0.5


@dataclass(frozen=True)
class ShardUnits:
    """A written shard's units: per object run (the object's row in the part's index), the
    unit's offset and length inside the payload; and the payload's length and sha256."""

    rows: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]
    payload_length: int
    payload_sha256: bytes


def object_runs(owners: np.ndarray) -> list[int]:
    """The owner (index row) of each run of consecutive equal owners, in order: the objects
    a codec that codes objects alone makes units of."""
    if len(owners) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    return [int(owners[s]) for s in starts]


def payload_chunk(meta: pq.FileMetaData, row_group: int) -> tuple[int, int]:
    """(start, stop): the file byte range of a row group's payload column chunk, from the
    footer alone."""
    group = meta.row_group(row_group)
    for column in range(group.num_columns):
        chunk = group.column(column)
        if chunk.path_in_schema == PAYLOAD_COLUMN:
            start = chunk.data_page_offset
            if chunk.dictionary_page_offset is not None:
                start = min(start, chunk.dictionary_page_offset)
            return int(start), int(start + chunk.total_compressed_size)
    raise ArchiveError(f"row group {row_group} has no {PAYLOAD_COLUMN!r} column")


def payload_offsets(data: bytes, shards: dict[int, ShardUnits], where: str) -> dict[int, int]:
    """Where each of `shards`' payloads begins in the data file `data`: the last bytes of its
    column chunk, checked against the payload's sha256 (an error, naming the shard, if the
    Parquet writer did not store it verbatim there)."""
    meta = pq.read_metadata(io.BytesIO(data))
    offsets = {}
    for number, shard in shards.items():
        _, stop = payload_chunk(meta, number)
        start = stop - shard.payload_length
        if start < 0 or hashlib.sha256(data[start:stop]).digest() != shard.payload_sha256:
            raise ArchiveError(f"{where}: shard {number}'s payload is not stored verbatim at "
                               "the end of its column chunk, so its units cannot be located "
                               "(a pyarrow that writes pages otherwise?); nothing was written")
        offsets[number] = start
    return offsets


def blocks_digest(blocks: np.ndarray, digest_bytes: int) -> bytes:
    """What `unit_sha256` holds: a prefix of the sha256 of an object's (padded) blocks."""
    return hashlib.sha256(np.ascontiguousarray(blocks).tobytes()).digest()[:digest_bytes]


def read_by_units(unit_bytes: int, payload_bytes: int) -> bool:
    """Whether a restore reads a shard's selected units one by one rather than its payload."""
    return unit_bytes <= UNIT_READ_SHARE * payload_bytes
