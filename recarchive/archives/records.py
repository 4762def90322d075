"""Typed records of what the format stores: an index row (one object) and a shard (one row
group of a part's data file). The Parquet schemas in `format` are their columns; these classes
are how the code holds them, so a misspelt field fails where it is written, not as a missing
key three modules away. Done records and manifests stay JSON documents (`writer`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from recarchive.archives.format import INDEX_SCHEMA, KIND_BLOB, KIND_RASTER, SHARD_SCHEMA


@dataclass(slots=True)
class IndexRow:
    """One object of an archive: where it is and how it comes back (`format.INDEX_SCHEMA`)."""

    key: str
    size: int
    kind: str                          # raster | blob | skipped
    part: int
    format: str = ""                   # what Pillow read ("PNG", "JPEG", ...), "" if none
    mode: str = ""                     # L LA RGB RGBA P for rasters
    height: int = 0
    width: int = 0
    channels: int = 0
    shard: int = -1                    # row group in the part's data file; -1: skipped
    block_start: int = 0               # first block within that shard (block rasters)
    num_blocks: int = 0                # 0 for a raster coded whole (JPEG-XL)
    blob_offset: int = 0               # byte range in a blob shard's raw bytes (blobs)
    blob_length: int = 0               # (whole rasters: the stream's length)
    sha256_prefix: bytes | None = None
    reason: str | None = None          # why kept as bytes, or why skipped
    icc: bytes | None = None
    exif: bytes | None = None
    palette: bytes | None = None
    meta: str | None = None            # JSON: PNG text, dpi, transparency, palette mode
    recipe: bytes | None = None        # container recipe (format 2+); None: pixels only

    @property
    def is_raster(self) -> bool:
        return self.kind == KIND_RASTER

    @property
    def is_blob(self) -> bool:
        return self.kind == KIND_BLOB

    @property
    def is_whole_raster(self) -> bool:
        """A raster kept as one JPEG-XL stream rather than blocks."""
        return self.kind == KIND_RASTER and self.num_blocks == 0

    @property
    def dims(self) -> int:
        """Pixel dims of a raster (H*W*C), bytes of a blob, 0 for a skipped object."""
        if self.kind == KIND_RASTER:
            return self.height * self.width * self.channels
        return self.size if self.kind == KIND_BLOB else 0

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict (JSON-like outputs)."""
        return dataclasses.asdict(self)


def index_rows(table: pa.Table) -> list[IndexRow]:
    """The rows of an index table (a format-1 table lacks `recipe`: None)."""
    return [IndexRow(**row) for row in table.to_pylist()]


def rows_to_table(rows: Iterable[IndexRow]) -> pa.Table:
    return pa.Table.from_pylist([row.as_dict() for row in rows], schema=INDEX_SCHEMA)


@dataclass(frozen=True, slots=True)
class ShardRow:
    """One shard: a row group of a part's data file (`format.SHARD_SCHEMA`)."""

    kind: str                          # pixels | blob
    codec: str
    model_sha256: str | None
    params: str                        # JSON of the codec's EncodedShard.params
    channels: int
    num_blocks: int
    raw_size: int                      # bytes of raw blocks or of the objects back to back
    raw_sha256: bytes
    payload_sha256: bytes
    payload: bytes

    @property
    def codec_params(self) -> dict[str, Any]:
        return json.loads(self.params)

    def as_table(self) -> pa.Table:
        return pa.Table.from_pylist([dataclasses.asdict(self)], schema=SHARD_SCHEMA)

