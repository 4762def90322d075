"""Object storage through fsspec: where archives and buckets live.

Knows nothing of archives: it opens URLs (with `storage_options`, e.g. an S3 endpoint), lists
objects as a stream with their exact keys, reads and writes objects by key, writes files
atomically or exclusively, reads byte ranges while counting what it read, and tells which keys
a local folder can hold (and safe local names for the others).
"""

from recarchive.storage.access import credentials_problem
from recarchive.storage.counting import ByteCounter, CountingFile
from recarchive.storage.listing import StoredObject, iter_objects
from recarchive.storage.localkeys import (
    LocalKeyAudit,
    LocalKeyError,
    LocalPlan,
    LocalRename,
    find_file_folder_conflicts,
    local_key_problem,
    plan_local_paths,
    rename_for_local,
)
from recarchive.storage.location import Location, open_location
from recarchive.storage.writes import create_exclusive, write_atomic

__all__ = [
    "credentials_problem",
    "ByteCounter",
    "CountingFile",
    "LocalKeyAudit",
    "LocalKeyError",
    "LocalPlan",
    "LocalRename",
    "Location",
    "StoredObject",
    "create_exclusive",
    "find_file_folder_conflicts",
    "iter_objects",
    "local_key_problem",
    "open_location",
    "plan_local_paths",
    "rename_for_local",
    "write_atomic",
]
