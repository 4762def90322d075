"""A URL turned into an fsspec filesystem plus a root path, and file access below that root.

Two kinds of access: by relative path (`read_bytes`, `write_atomic`, ...: the archive's own
files, whose names are plain) and by object key (`list_files`, `read_object`, `write_object`:
source and restored objects, whose keys are kept verbatim, `a//b` and `dir/` included).
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

from recarchive.storage.counting import ByteCounter, CountingFile
from recarchive.storage.listing import StoredObject, iter_objects
from recarchive.storage.localkeys import LocalKeyError, local_key_problem
from recarchive.storage.objectstore import full_key, get_object, is_s3, put_object, split_root
from recarchive.storage.writes import create_exclusive, write_atomic


@dataclass
class Location:
    """A folder (or bucket prefix) in some filesystem; every path argument is relative to it.

    `read` counts every byte its reads return, so callers (restore, benchmarks, tests) can show
    that they fetched only what they needed.
    """

    fs: AbstractFileSystem
    root: str
    url: str = ""
    read: ByteCounter = field(default_factory=ByteCounter)

    def path(self, relative: str = "") -> str:
        relative = relative.strip("/")
        return posixpath.join(self.root, relative) if relative else self.root

    def child(self, relative: str) -> Location:
        """The sub-folder `relative`, sharing this location's filesystem and read counter."""
        return Location(self.fs, self.path(relative), f"{self.url.rstrip('/')}/{relative}",
                        self.read)

    def exists(self, relative: str) -> bool:
        return bool(self.fs.exists(self.path(relative)))

    def size(self, relative: str) -> int:
        return int(self.fs.size(self.path(relative)))

    def open_read(self, relative: str) -> BinaryIO:
        """A seekable file whose reads are counted; fsspec read-ahead is turned off where the
        filesystem allows it, so what is counted is what was fetched."""
        try:
            raw = self.fs.open(self.path(relative), "rb", cache_type="none")
        except TypeError:  # filesystems whose open() takes no cache options
            raw = self.fs.open(self.path(relative), "rb")
        return CountingFile(raw, self.read)  # type: ignore[return-value]

    def read_bytes(self, relative: str) -> bytes:
        data = self.fs.cat_file(self.path(relative))
        self.read.add(len(data))
        return bytes(data)

    def read_range(self, relative: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of a file."""
        data = self.fs.cat_file(self.path(relative), start=start, end=end)
        self.read.add(len(data))
        return bytes(data)

    def write_atomic(self, relative: str, data: bytes, durable: bool = True) -> None:
        write_atomic(self.fs, self.path(relative), data, durable)

    def create_exclusive(self, relative: str, data: bytes) -> None:
        create_exclusive(self.fs, self.path(relative), data)

    def remove(self, relative: str) -> None:
        path = self.path(relative)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def list_files(self, relative: str = "") -> Iterator[StoredObject]:
        """Objects below `relative`, keys relative to it and verbatim, as a stream: in S3 key
        order (UTF-8 bytes) on S3, depth-first sorted elsewhere. Nothing for a missing folder
        (a missing S3 bucket raises FileNotFoundError when the stream starts)."""
        base = self.path(relative)
        if is_s3(self.fs):
            return iter_objects(self.fs, base)
        if not self.fs.exists(base):
            return iter(())
        return iter_objects(self.fs, base)

    def read_object(self, item: StoredObject) -> bytes:
        """The exact bytes of a listed object (counted in `read`). On S3 a GET of its exact
        key; local files must be regular files (a FIFO would block, a folder link can't be
        read): anything else raises OSError naming the key."""
        if is_s3(self.fs):
            data = get_object(self.fs, item.path)
        else:
            if isinstance(self.fs, LocalFileSystem):
                _check_regular(item)
            data = bytes(self.fs.cat_file(item.path))
        self.read.add(len(data))
        return data

    def write_object(self, key: str, data: bytes, durable: bool = True) -> None:
        """Write an object at exactly `root + "/" + key`, replacing any there atomically.

        S3: one PUT of the exact key. Local folders: LocalKeyError for a key they can't hold
        (check with `local_key_problem` or plan with `plan_local_paths` first); `durable` as
        in `write_atomic`. Other filesystems: their own `pipe_file` on the joined path.
        """
        if is_s3(self.fs):
            bucket, prefix = split_root(self.root)
            put_object(self.fs, bucket, full_key(prefix, key), data)
            return
        if isinstance(self.fs, LocalFileSystem):
            problem = local_key_problem(key)
            if problem:
                raise LocalKeyError(f"object key {key!r} can't be a file under {self.root} "
                                    f"({problem}); give it a safe local name first "
                                    "(plan_local_paths, the CLI's --rename-unsafe)")
            write_atomic(self.fs, os.path.join(self.root, *key.split("/")), data, durable)
            return
        write_atomic(self.fs, f"{self.root.rstrip('/')}/{key}", data, durable)


def _check_regular(item: StoredObject) -> None:
    mode = os.stat(item.path).st_mode  # follows links: FileNotFoundError if dangling
    if not stat.S_ISREG(mode):
        raise OSError(f"object key {item.key!r} ({item.path}) is not a regular file "
                      "(a folder, a link to one, a FIFO or a device); not read")


def open_location(url: str, storage_options: dict[str, Any] | None = None) -> Location:
    """`url` (a local path, file://, s3://, memory://, anything fsspec knows) as a Location.

    `storage_options` go to the filesystem, e.g. `{"client_kwargs": {"endpoint_url": ...}}`
    for an S3-compatible server.
    """
    if not url:
        raise ValueError("empty storage URL")
    fs, root = url_to_fs(url, **(storage_options or {}))
    if isinstance(fs, LocalFileSystem):
        root = os.path.normpath(root)
    return Location(fs, root.rstrip("/") or "/", url)
