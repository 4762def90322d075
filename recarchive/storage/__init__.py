"""Object storage through fsspec: where archives and buckets live.

Knows nothing of archives: it opens URLs (with `storage_options`, e.g. an S3 endpoint), lists
objects as a stream, writes files atomically or exclusively, and reads byte ranges while
counting what it read.
"""

from recarchive.storage.counting import ByteCounter, CountingFile
from recarchive.storage.listing import StoredObject, iter_objects
from recarchive.storage.location import Location, open_location
from recarchive.storage.writes import create_exclusive, write_atomic

__all__ = [
    "ByteCounter",
    "CountingFile",
    "Location",
    "StoredObject",
    "create_exclusive",
    "iter_objects",
    "open_location",
    "write_atomic",
]
