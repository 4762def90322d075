"""Streaming, deterministic listing of a filesystem tree.

S3 (s3fs) is listed through the S3 API (`objectstore.iter_s3_objects`): every object under the
prefix with its exact key, in S3's UTF-8 byte order, one page at a time. Other filesystems
(local folders, memory://, gcs) are walked depth-first in sorted order, one directory listing at
a time, so memory is bounded by the largest single directory (fsspec's listing granularity), not
by the bucket. Either way two listings of an unchanged bucket yield the same sequence (archive
resume depends on that).

Local symlinks are never descended into (no loops, nothing listed twice): a link is listed as
one object with its target's size; a link to a folder, a dangling link or a link loop is listed
too (size 0 where the target can't be reached) and fails in `Location.read_object`, so the
archive records it as skipped instead of losing it silently.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator

from fsspec.spec import AbstractFileSystem

from recarchive.storage.objectstore import is_s3, iter_s3_objects
from recarchive.storage.stored import StoredObject

__all__ = ["StoredObject", "iter_objects"]


def iter_objects(fs: AbstractFileSystem, root: str) -> Iterator[StoredObject]:
    """Every file below `root` (or `root` itself when it is a file), keys relative to `root`:
    in S3 key order on S3, depth-first sorted elsewhere."""
    if is_s3(fs):
        yield from iter_s3_objects(fs, root)
        return
    root = root.rstrip("/") or "/"
    if fs.isfile(root):
        info = fs.info(root)
        yield StoredObject(posixpath.basename(root), root, int(info.get("size") or 0),
                           _version(info))
        return
    yield from _walk(fs, root, root)


def _walk(fs: AbstractFileSystem, root: str, folder: str) -> Iterator[StoredObject]:
    entries = fs.ls(folder, detail=True)
    # Listings are cached by some filesystems: drop them so memory stays bounded.
    _forget(fs, folder)
    children = sorted(
        (_name(entry).rstrip("/"), _is_folder(entry), entry.get("size"), _version(entry))
        for entry in entries
    )
    del entries
    for name, is_folder, size, version in children:
        if name == folder.rstrip("/") or not name:
            continue
        if is_folder:
            yield from _walk(fs, root, name)
        else:
            yield StoredObject(_relative(name, root), name, int(size or 0), version)


def _is_folder(entry: dict) -> bool:
    """A real folder; a symlink to one is not followed (it could lead back up the tree)."""
    return entry.get("type") == "directory" and not entry.get("islink")


def _relative(name: str, root: str) -> str:
    if root == "/":
        return name.lstrip("/")
    if name.startswith(root + "/"):
        return name[len(root) + 1:]
    return posixpath.relpath(name, root)


def _version(entry: dict) -> str:
    if entry.get("islink"):
        return _link_version(entry)
    for field in ("ETag", "etag", "mtime", "LastModified", "created", "generation"):
        if entry.get(field) is not None:
            return f"{field}={entry[field]}"
    return ""


def _link_version(entry: dict) -> str:
    """A local symlink's version is its target's mtime (the link's own would hide a changed
    target); "" when the target can't be reached."""
    try:
        return f"mtime={os.stat(_name(entry)).st_mtime}"
    except OSError:
        return ""


def _name(entry: dict) -> str:
    return str(entry["name"])


def _forget(fs: AbstractFileSystem, folder: str) -> None:
    cache = getattr(fs, "dircache", None)
    if cache is not None:
        cache.pop(folder.rstrip("/"), None)
