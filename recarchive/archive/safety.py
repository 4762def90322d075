"""Object keys as destination paths, refusing any that would land outside the destination."""

from __future__ import annotations

import os
import posixpath

from fsspec.implementations.local import LocalFileSystem

from recarchive.archive.errors import UnsafeKeyError
from recarchive.storage import Location


def safe_relative_path(key: str) -> str:
    """`key` as a relative POSIX path inside the destination, or UnsafeKeyError naming it.

    Refused: empty keys, absolute paths, drive letters, backslashes, NUL, and any `.`/`..`
    component, since a key like `../../etc/passwd` would otherwise write outside DST.
    """
    problem = ""
    if not key or "\0" in key:
        problem = "empty or contains NUL"
    elif key.startswith("/") or "\\" in key or (len(key) > 1 and key[1] == ":"):
        problem = "absolute path, drive letter or backslash"
    else:
        parts = key.split("/")
        if any(part in ("", ".", "..") for part in parts):
            problem = "empty, '.' or '..' path component"
    if problem:
        raise UnsafeKeyError(f"object key {key!r} would escape the restore destination "
                             f"({problem}); refused")
    normal = posixpath.normpath(key)
    if normal.startswith("../") or normal == ".." or normal.startswith("/"):
        raise UnsafeKeyError(f"object key {key!r} would escape the restore destination")
    return normal


def check_inside(destination: Location, key: str, relative: str) -> None:
    """On local destinations, refuse a path that resolves outside the destination through a
    symlink already there (e.g. DST/a -> /etc and key a/passwd)."""
    if not isinstance(destination.fs, LocalFileSystem):
        return
    root = os.path.realpath(destination.root)
    target = os.path.realpath(os.path.join(root, relative))
    if target != root and not target.startswith(root.rstrip(os.sep) + os.sep):
        raise UnsafeKeyError(f"object key {key!r} would be written to {target}, outside the "
                             f"restore destination {root} (through a symlink); refused")
