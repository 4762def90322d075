"""The record every listing yields, kept apart so listing and object-store code can share it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoredObject:
    """One file: its key relative to the listed root, its full path, its size in bytes, and
    a version tag from the listing (ETag, mtime or creation time; "" if the filesystem has
    none) so that a changed object can be told from an unchanged one without reading it.

    The key is verbatim (`a//b`, `a/./b` and `dir/` stay as they are on object stores); read
    the object with `Location.read_object`, which uses `path` exactly."""

    key: str
    path: str
    size: int
    version: str = ""
