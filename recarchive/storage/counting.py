"""Byte counting around file objects, to prove that partial reads stay partial."""

from __future__ import annotations

import threading
from typing import Any, BinaryIO


class ByteCounter:
    """A thread-safe running total of bytes read, and of read calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes = 0
        self.calls = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.bytes += n
            self.calls += 1

    def reset(self) -> None:
        with self._lock:
            self.bytes = 0
            self.calls = 0


class CountingFile:
    """A read-only file proxy that adds every byte `read`/`readinto` returns to a counter.

    pyarrow accepts it as a Python file (read, seek, tell, size), so Parquet readers built on
    it report exactly the footer and column-chunk bytes they fetched.
    """

    def __init__(self, raw: BinaryIO, counter: ByteCounter) -> None:
        self._raw = raw
        self._counter = counter
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._counter.add(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def size(self) -> int:
        here = self._raw.tell()
        end = self._raw.seek(0, 2)
        self._raw.seek(here)
        return end

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
        self._raw.close()

    def __enter__(self) -> CountingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
