"""Archives of buckets: ingest objects, pack blocks into coded shards in Parquet files on any
fsspec storage, and restore, verify or list them. See `format` for the layout on storage.

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
