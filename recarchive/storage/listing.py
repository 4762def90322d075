"""Streaming, deterministic listing of a filesystem tree.

Walks depth-first in sorted order, one directory listing at a time, so memory is bounded by the
largest single directory (fsspec's listing granularity), not by the bucket, and two listings of
an unchanged bucket yield the same sequence (archive resume depends on that).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

from fsspec.spec import AbstractFileSystem


@dataclass(frozen=True)
class StoredObject:
    """One file: its key relative to the listed root, its full path, its size in bytes, and
    a version tag from the listing (ETag, mtime or creation time; "" if the filesystem has
    none) so that a changed object can be told from an unchanged one without reading it."""

    key: str
    path: str
    size: int
    version: str = ""


def iter_objects(fs: AbstractFileSystem, root: str) -> Iterator[StoredObject]:
    """Every file below `root` (or `root` itself when it is a file), sorted by key."""
    root = root.rstrip("/") or "/"
    if fs.isfile(root):
        info = fs.info(root)
        yield StoredObject(posixpath.basename(root), root, int(info.get("size") or 0),
                           _version(info))
        return
    yield from _walk(fs, root, root)


def _walk(fs: AbstractFileSystem, root: str, folder: str) -> Iterator[StoredObject]:
    entries = fs.ls(folder, detail=True)
    # Listings are cached by some filesystems (s3fs): drop them so memory stays bounded.
    _forget(fs, folder)
    children = sorted(
        (_name(entry).rstrip("/"), entry.get("type"), entry.get("size"), _version(entry))
        for entry in entries
    )
    del entries
    for name, kind, size, version in children:
        if name == folder.rstrip("/") or not name:
            continue
        if kind == "directory":
            yield from _walk(fs, root, name)
        else:
            key = posixpath.relpath(name, root) if root != "/" else name.lstrip("/")
            yield StoredObject(key, name, int(size or 0), version)


def _version(entry: dict) -> str:
    for field in ("ETag", "etag", "mtime", "LastModified", "created", "generation"):
        if entry.get(field) is not None:
            return f"{field}={entry[field]}"
    return ""


def _name(entry: dict) -> str:
    return str(entry["name"])


def _forget(fs: AbstractFileSystem, folder: str) -> None:
    cache = getattr(fs, "dircache", None)
    if cache is not None:
        cache.pop(folder.rstrip("/"), None)
