"""Archive errors: each names the object, shard or file at fault and says what to do.

All subclass ValueError so the CLI reports them as one line with exit status 1.
"""

from __future__ import annotations


class ArchiveError(ValueError):
    """Something about an archive or its source prevents the operation."""


class ArchiveIncomplete(ArchiveError):
    """The archive has no manifest: it was never finished (or is still being written)."""


class FormatVersionError(ArchiveError):
    """The archive was written in a format version this program does not read."""


class IntegrityError(ArchiveError):
    """A checksum, size or count in the archive does not match: damaged or tampered data."""


class UnsafeKeyError(ArchiveError):
    """An object key would be written outside the restore destination."""
