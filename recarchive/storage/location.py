"""A URL turned into an fsspec filesystem plus a root path, and file access below that root."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

from recarchive.storage.counting import ByteCounter, CountingFile
from recarchive.storage.listing import StoredObject, iter_objects
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
        """Files below `relative`, keys relative to it, in sorted order, as a stream."""
        base = self.path(relative)
        if not self.fs.exists(base):
            return iter(())
        return iter_objects(self.fs, base)


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
