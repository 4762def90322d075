"""Archives of buckets: ingest objects, pack blocks into coded shards in Parquet files on any
fsspec storage, and restore, verify or list them. `format` documents the layout on storage.

Decisions (format version 1):
- Every listed object ends up in the index as `raster` (pixels, coded by the codec), `blob`
  (bytes kept exactly, zstd) with the reason it is not a raster, or `skipped` (unreadable from
  the source, or over `max_object_bytes`) with the reason. Nothing is dropped silently.
- Palette images keep their indices as one channel and the palette (+ transparency) as side
  data: indices, palette and transparency come back exactly.
- Restored rasters are PNG files written under the *original key* (also for BMP, TIFF, PPM and
  WebP sources), with the same mode and pixels, plus ICC profile, EXIF, PNG text, dpi and
  transparency. Other metadata of non-PNG formats (e.g. TIFF tags) is not kept.
- Integrity is anchored at the shard and the manifest: shards hold the full sha256 of their
  payload and of their raw blocks/bytes (checked whenever a shard is decoded, so every decoded
  pixel is covered); the manifest holds the sha256 of every file (index files included) and of
  itself. Index rows hold no pixel digest, only structure (channels, shape, block range) and
  `sha256_prefix`, the first `object_digest_bytes` (default 8, 8..32, 32 = full) bytes of the
  sha256 of the original object bytes, which restore checks for blobs. Restore checks all of
  these except whole data-file hashes (it reads only some row groups of a data file; `verify`
  checks those too).
- A part (consecutive objects of the sorted listing) is the unit of work and of resume; its
  index is written with it, so memory is bounded by one part, never by the bucket.

Knows codecs only through the registry and the `BlockCodec` protocol (`models` describes how
a codec's model is copied into, and loaded back from, an archive).
"""

from recarchive.archive.errors import (
    ArchiveError,
    ArchiveIncomplete,
    FormatVersionError,
    IntegrityError,
    UnsafeKeyError,
)
from recarchive.archive.reader import ArchiveReader, open_archive
from recarchive.archive.restore import RestoreReport, list_objects, restore, verify
from recarchive.archive.writer import ArchiveSettings, archive

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
