"""Restore, verify and list a finished archive.

Restore fetches only the index parts whose key range can match, then per part only the row
groups the selected objects live in; each decoded shard is dropped as soon as no remaining
object needs it. Rasters come back as PNG (same key, same mode, pixels, palette and kept
metadata); blobs byte-identical. Every checksum on the way is checked: each decoded shard
against its full raw sha256 (this is what covers a raster's pixels; the index keeps no
per-object pixel digest), each raster's channels and shape against its block range, and each
blob's bytes against its index `sha256_prefix` (its blob shard's full raw sha256 is checked
too).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recarchive.archive.errors import IntegrityError
from recarchive.archive.format import KIND_BLOB, KIND_RASTER, KIND_SKIPPED, object_digest
from recarchive.archive.rasters import encode_png
from recarchive.archive.reader import ArchiveReader
from recarchive.archive.safety import check_inside, safe_relative_path
from recarchive.storage import open_location


@dataclass
class RestoreReport:
    """What a restore (or verify) did."""

    objects: int = 0
    kinds: Counter = field(default_factory=Counter)
    written_bytes: int = 0
    raw_pixel_bytes: int = 0
    shards_decoded: int = 0
    archive_bytes_read: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "objects": self.objects, "kinds": dict(self.kinds),
            "written_bytes": self.written_bytes, "raw_pixel_bytes": self.raw_pixel_bytes,
            "shards_decoded": self.shards_decoded,
            "archive_bytes_read": self.archive_bytes_read, "skipped": self.skipped,
            "problems": self.problems, "seconds": round(self.seconds, 3),
        }


class _PartDecoder:
    """Decoded shards of one part, each kept only while a pending object still needs it."""

    def __init__(self, reader: ArchiveReader, part: int, rows: list[dict[str, Any]],
                 report: RestoreReport) -> None:
        self.reader, self.part, self.report = reader, part, report
        self.uses: Counter = Counter()
        self.cache: dict[int, Any] = {}
        self.chains: dict[str, list[tuple[int, int, int]]] = {}
        for row in rows:
            if row["kind"] == KIND_RASTER:
                chain = reader.shard_chain(part, row["shard"], row["block_start"],
                                           row["num_blocks"])
                self.chains[row["key"]] = chain
                self.uses.update(number for number, _, _ in chain)
            elif row["kind"] == KIND_BLOB:
                self.uses[row["shard"]] += 1

    def _get(self, number: int, blob: bool) -> Any:
        if number not in self.cache:
            self.cache[number] = (self.reader.decode_blob(self.part, number) if blob
                                  else self.reader.decode_pixels(self.part, number))
            self.report.shards_decoded += 1
        value = self.cache[number]
        self.uses[number] -= 1
        if self.uses[number] <= 0:
            del self.cache[number]
        return value

    def pixels(self, row: dict[str, Any]) -> np.ndarray:
        """The raster's pixels, cut from shards each checked against its raw sha256 when
        decoded; the object's channels and shape are checked here."""
        pieces = [self._get(number, False)[start:stop]
                  for number, start, stop in self.chains[row["key"]]]
        blocks = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        return self.reader.object_pixels(row, blocks)

    def blob(self, row: dict[str, Any]) -> bytes:
        raw = self._get(row["shard"], True)
        start, length = row["blob_offset"], row["blob_length"]
        data = raw[start:start + length]
        prefix = row["sha256_prefix"]
        if len(data) != length or prefix is None or (
                object_digest(data, self.reader.object_digest_bytes) != prefix):
            raise IntegrityError(f"{self.reader.url}: object {row['key']!r}: restored bytes do "
                                 "not match its sha256 prefix in the index")
        return data


def _by_part(rows: Iterator[dict[str, Any]]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Group index rows (which arrive part by part) into per-part lists."""
    current, batch = -1, []
    for row in rows:
        if row["part"] != current and batch:
            yield current, batch
            batch = []
        current = row["part"]
        batch.append(row)
    if batch:
        yield current, batch


def restore(archive_url: str, destination_url: str, *, shards: set[int] | None = None,
            objects: str | None = None, archive_options: dict[str, Any] | None = None,
            destination_options: dict[str, Any] | None = None) -> RestoreReport:
    """Restore the selected objects (all by default) of an archive into `destination_url`.

    `objects`: fnmatch pattern on keys. `shards`: global shard numbers; selects the objects
    whose data begins in them (so disjoint shard sets restore disjoint objects).
    """
    started = time.time()
    reader = ArchiveReader(archive_url, archive_options)
    destination = open_location(destination_url, destination_options)
    report = RestoreReport()
    for part, rows in _by_part(reader.rows(objects, shards)):
        paths = {row["key"]: safe_relative_path(row["key"]) for row in rows}
        for key, relative in paths.items():
            check_inside(destination, key, relative)
        decoder = _PartDecoder(reader, part, rows, report)
        for row in sorted(rows, key=lambda r: (r["shard"], r["block_start"], r["blob_offset"])):
            report.objects += 1
            report.kinds[row["kind"]] += 1
            if row["kind"] == KIND_SKIPPED:
                report.skipped.append({"key": row["key"], "reason": row["reason"] or ""})
                continue
            if row["kind"] == KIND_RASTER:
                pixels = decoder.pixels(row)
                report.raw_pixel_bytes += pixels.size
                data = encode_png(pixels, row["mode"], palette=row["palette"], icc=row["icc"],
                                  exif=row["exif"], meta_json=row["meta"])
            else:
                data = decoder.blob(row)
            destination.write_atomic(paths[row["key"]], data, durable=False)
            report.written_bytes += len(data)
        reader.release(part)
    report.archive_bytes_read = reader.location.read.bytes
    report.seconds = time.time() - started
    return report


def verify(archive_url: str, archive_options: dict[str, Any] | None = None) -> RestoreReport:
    """Check every file against the manifest, decode every shard, check every object.

    Problems are collected (each naming its file, shard or object), not raised, so one run
    lists all the damage; `report.problems` is empty for a sound archive.
    """
    started = time.time()
    reader = ArchiveReader(archive_url, archive_options)
    report = RestoreReport()
    for entry in reader.manifest["files"]:
        problem = _check_file(reader, entry)
        if problem:
            report.problems.append(problem)
    counted = Counter()
    for part in reader.parts:
        try:
            rows = reader.index_table(part).to_pylist()
            decoder = _PartDecoder(reader, part["part"], rows, report)
        except IntegrityError as error:
            report.problems.append(str(error))
            continue
        for row in rows:
            report.objects += 1
            report.kinds[row["kind"]] += 1
            counted[row["kind"]] += 1
            try:
                safe_relative_path(row["key"])
                if row["kind"] == KIND_RASTER:
                    report.raw_pixel_bytes += decoder.pixels(row).size
                elif row["kind"] == KIND_BLOB:
                    decoder.blob(row)
                else:
                    report.skipped.append({"key": row["key"], "reason": row["reason"] or ""})
            except (IntegrityError, ValueError) as error:
                report.problems.append(str(error))
        reader.release(part["part"])
    totals = reader.manifest["totals"]
    expected = {KIND_RASTER: totals["rasters"], KIND_BLOB: totals["blobs"],
                KIND_SKIPPED: totals["skipped"]}
    for kind, number in expected.items():
        if counted[kind] != number:
            report.problems.append(f"{archive_url}: index has {counted[kind]} {kind} objects, "
                                   f"the manifest says {number}")
    report.archive_bytes_read = reader.location.read.bytes
    report.seconds = time.time() - started
    return report


def _check_file(reader: ArchiveReader, entry: dict[str, Any]) -> str:
    digest, size = hashlib.sha256(), 0
    try:
        with reader.location.open_read(entry["path"]) as handle:
            while chunk := handle.read(4 << 20):
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        return f"{reader.url}: {entry['path']} named in the manifest is missing"
    if size != entry["size"] or digest.hexdigest() != entry["sha256"]:
        return (f"{reader.url}: {entry['path']} does not match its manifest checksum (size "
                f"{size}, expected {entry['size']})")
    return ""


def list_objects(archive_url: str, pattern: str | None = None,
                 archive_options: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """One dict per object (key, kind, size, mode, shape, global shard, reason)."""
    reader = ArchiveReader(archive_url, archive_options)
    for row in reader.rows(pattern):
        yield {
            "key": row["key"], "kind": row["kind"], "size": row["size"],
            "format": row["format"], "mode": row["mode"],
            "shape": [row["height"], row["width"], row["channels"]]
            if row["kind"] == KIND_RASTER else None,
            "shard": reader.global_shard(row["part"], row["shard"]) if row["shard"] >= 0
            else None,
            "blocks": row["num_blocks"] if row["kind"] == KIND_RASTER else None,
            "reason": row["reason"],
        }
