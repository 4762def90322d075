"""Archives of buckets: ingest objects, pack blocks into coded shards in Parquet files on any
fsspec storage, and restore, verify, repair or list them. `format` documents the layout on
storage; `docs/archive-format.md` is the user's view.

Decisions (format version 2; version 1 archives still read):
- Every listed object ends up in the index as `raster` (pixels, coded by the codec, plus a
  container recipe that rebuilds the file byte for byte), `blob` (bytes kept exactly: zstd, or
  the lossless JPEG recompressors) with the reason it is not a raster, or `skipped` (unreadable
  from the source, or over `max_object_bytes`) with the reason. Nothing is dropped silently.
- Nothing is committed before it was rebuilt and compared (Lepton's rule): every raster's file
  from its pixels and recipe, every JPEG from its recompressed form, every coded shard from its
  payload. A raster whose file does not come back exactly goes to the bytes path.
- Integrity is anchored at the shard and the manifest: shards hold the full sha256 of their
  payload and of their raw blocks/bytes; the manifest holds the sha256 of every file and of
  itself; each index row holds the first `object_digest_bytes` of the sha256 of the original
  object, checked for every object restored.
- A part (consecutive objects of the sorted listing) is the unit of work and of resume; its
  index is written with it, so memory is bounded by one part, never by the bucket.
- Where the codec codes each object alone (REC), the index locates every object's units in
  its data file (format 4, `units`): one object is restored from its own bytes (range
  requests), not its shard's whole payload.

Knows codecs only through the registry and the `BlockCodec` protocol (`models` describes how
a codec's model is copied into, and loaded back from, an archive).
"""

from recarchive.archives.errors import (
    ArchiveError,
    ArchiveIncomplete,
    FormatVersionError,
    IntegrityError,
    UnsafeKeyError,
)
from recarchive.archives.reader import ArchiveReader, open_archive
from recarchive.archives.restore import RestoreReport, list_objects, restore, verify
from recarchive.archives.writer import ArchiveSettings, archive

__all__ = [
    "ArchiveError",
    "ArchiveIncomplete",
    "ArchiveReader",
    "ArchiveSettings",
    "FormatVersionError",
    "IntegrityError",
    "RestoreReport",
    "UnsafeKeyError",
    "archive",
    "list_objects",
    "open_archive",
    "restore",
    "verify",
]
