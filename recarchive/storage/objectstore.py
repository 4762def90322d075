"""S3 objects by their exact keys, through s3fs's own botocore client.

fsspec treats object keys as paths: its directory-style listing hides `a//b`, turns a non-empty
object `dir/` into a folder, and path joins fold `a/./b` or `a/../b` onto other keys. Object
stores have no such semantics, so on S3 this module lists with `list_objects_v2` (no delimiter:
every object under the prefix, paginated, in S3's UTF-8 byte order) and reads and writes with
`get_object` / `put_object` by the exact key.

It goes through `S3FileSystem.call_s3(method, **kwargs)`, the synchronous public wrapper s3fs
has had since 0.5: it uses the filesystem's session, endpoint and credentials, adds its request
defaults (`s3_additional_kwargs`, requester-pays), retries throttling and maps S3 errors to
`OSError`s (`FileNotFoundError` for a missing key or bucket). Response bodies are aiobotocore
streams, read on the filesystem's event loop with `fsspec.asyn.sync`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

from fsspec.asyn import sync
from fsspec.spec import AbstractFileSystem

from recarchive.storage.stored import StoredObject

MAX_PUT_BYTES = 5 * 1024**3  # S3's limit for one PUT


def is_s3(fs: AbstractFileSystem) -> bool:
    """True for s3fs filesystems (and subclasses), which get the exact-key paths below."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    return "s3" in protocols and callable(getattr(fs, "call_s3", None))


def split_root(root: str) -> tuple[str, str]:
    """`bucket/prefix` (a Location root) as (bucket, prefix), the prefix without end slashes."""
    bucket, _, prefix = root.strip("/").partition("/")
    return bucket, prefix.rstrip("/")


def full_key(prefix: str, key: str) -> str:
    """The bucket key of `key` below `prefix`: `prefix + "/" + key`, with nothing normalized."""
    return f"{prefix}/{key}" if prefix else key


def iter_s3_objects(fs: Any, root: str) -> Iterator[StoredObject]:
    """Every object below `root` (`bucket/prefix`), keys relative to the prefix, verbatim.

    Keys ending in `/` (folder markers, empty or not) are objects like any other and are
    listed. The marker of the listed prefix itself (key `prefix/`) is the folder being listed,
    not an object under it, and is left out. When nothing lies below the prefix but an object
    is named exactly `prefix`, that one object is listed (a single-file root).
    """
    bucket, prefix = split_root(root)
    start = f"{prefix}/" if prefix else ""
    listed = False
    for entry in _pages(fs, bucket, start):
        listed = True
        relative = entry["Key"][len(start):]
        if relative:
            yield _stored(bucket, entry["Key"], relative, entry)
    if not listed and prefix:
        yield from _single_object(fs, bucket, prefix)


def _pages(fs: Any, bucket: str, start: str) -> Iterator[dict[str, Any]]:
    """The `Contents` entries of a paginated `list_objects_v2`, one page held at a time."""
    token: str | None = None
    while True:
        extra = {"ContinuationToken": token} if token else {}
        page = fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=start, **extra)
        yield from page.get("Contents", [])
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return


def _single_object(fs: Any, bucket: str, key: str) -> Iterator[StoredObject]:
    try:
        head = fs.call_s3("head_object", Bucket=bucket, Key=key)
    except FileNotFoundError:
        return
    yield _stored(bucket, key, posixpath.basename(key),
                  {"Size": head.get("ContentLength"), "ETag": head.get("ETag")})


def _stored(bucket: str, key: str, relative: str, entry: dict[str, Any]) -> StoredObject:
    # same version tag format as fsspec's s3fs listing, so resumed runs see unchanged objects
    etag = entry.get("ETag")
    return StoredObject(relative, f"{bucket}/{key}", int(entry.get("Size") or 0),
                        f"ETag={etag}" if etag is not None else "")


def get_object(fs: Any, path: str) -> bytes:
    """The bytes of the object at `path` (`bucket/key`, the key exact)."""
    bucket, _, key = path.partition("/")
    response = fs.call_s3("get_object", Bucket=bucket, Key=key)
    body = response["Body"]
    try:
        return bytes(sync(fs.loop, body.read))
    finally:
        body.close()


def put_object(fs: Any, bucket: str, key: str, data: bytes) -> None:
    """One PUT of `data` at exactly `key` (atomic: readers see the old object or the new)."""
    if len(data) >= MAX_PUT_BYTES:
        raise ValueError(f"object key {key!r}: {len(data)} bytes is over S3's 5 GiB limit for "
                         "one PUT; write it with a multipart upload (s3fs pipe_file) instead")
    fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data)
    # s3fs caches listings: drop what it may hold for this key's folders
    fs.invalidate_cache(f"{bucket}/{key}")
