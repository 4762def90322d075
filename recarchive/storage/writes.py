"""Atomic and exclusive writes: what keeps half-written archives invisible.

- `write_atomic`: readers see the old file or the whole new one. Local files go through a
  temporary file and `os.replace`; object stores (S3, memory) make a single PUT atomic by nature.
- `create_exclusive`: writes only if the file does not exist yet, else `FileExistsError`.
  Local files: temporary file + `os.link`, which fails atomically if the target exists (where
  hard links are not supported, `O_EXCL` creation: still exclusive, but a reader may briefly
  see a partial file, which manifest parsing rejects as damaged).
  S3 (s3fs): a conditional PUT with `If-None-Match: *` (s3fs `pipe_file(mode="create")`), which
  the server enforces (an S3-compatible server that ignores the header degrades to the
  `exists` check below). Other filesystems: fsspec's `mode="create"`, which for filesystems
  without a conditional write is a best-effort `exists` check followed by a write; two writers
  racing within that gap could both succeed. Use it where only one writer runs per archive.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile

from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem


def _is_local(fs: AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def _local_temp(path: str, data: bytes, durable: bool = True) -> str:
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=folder)
    try:
        # mkstemp makes 0600 files; a written file gets what the umask gives, like any other
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            if durable:
                os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return temp


def _umask() -> int:
    """The process umask (read by setting it and setting it back: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(fs: AbstractFileSystem, path: str, data: bytes, durable: bool = True) -> None:
    """Write `data` to `path` so that no reader ever sees part of it.

    `durable` (local files): fsync before the rename, so a file that exists after a crash is
    complete; restores of many small objects pass False (atomic, not crash-durable).
    """
    if _is_local(fs):
        temp = _local_temp(path, data, durable)
        try:
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        return
    parent = posixpath.dirname(path)
    if parent:
        with contextlib.suppress(OSError, NotImplementedError):
            fs.makedirs(parent, exist_ok=True)
    fs.pipe_file(path, data)


def _create_excl(path: str, data: bytes) -> None:
    """Exclusive but not atomic to readers (they may see the file while it is written)."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(handle, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def create_exclusive(fs: AbstractFileSystem, path: str, data: bytes) -> None:
    """Write `data` to `path` only if nothing is there; `FileExistsError` otherwise."""
    if _is_local(fs):
        temp = _local_temp(path, data)
        try:
            os.link(temp, path)  # atomic, and fails if `path` exists
        except FileExistsError:
            raise
        except OSError:  # no hard links here (some network/FUSE mounts): O_EXCL instead
            _create_excl(path, data)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        return
    parent = posixpath.dirname(path)
    if parent:
        with contextlib.suppress(OSError, NotImplementedError):
            fs.makedirs(parent, exist_ok=True)
    if fs.exists(path):
        raise FileExistsError(path)
    fs.pipe_file(path, data, mode="create")
