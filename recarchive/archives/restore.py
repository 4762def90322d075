"""Restore, verify and list a finished archive.

Restore fetches only the index parts whose key range can match, then per part only the row
groups the selected objects live in; each decoded shard is dropped as soon as no remaining
object needs it. Every object comes back as the archive's fidelity says (`rasters`): by
default its original bytes (a raster rebuilt from its pixels and container recipe, a blob or
recompressed JPEG as it was), each checked against its index `sha256_prefix` before it is
written. Every checksum on the way is checked: each decoded shard against its full raw sha256,
each raster's channels and shape against its block range.

A selective restore (`objects` or `shards`) of an archive whose index locates units (format
4, REC) reads a shard unit by unit where the selected objects' units take at most half of its
payload (`units.read_by_units`): its small columns and each unit's byte range, never its
payload; else the shard whole. Whole-archive restore and verify decode whole shards. An object
read by units is checked like any other (its rebuilt file against `sha256_prefix`), and where
that checks nothing (no recipe: fidelity "pixels") its blocks against the index's
`unit_sha256`.

Damage stops nothing but what it touches: a shard that cannot be decoded, an index file that
cannot be read or an object that does not match its digest is listed (by key, or by the key
range of a lost index) in `RestoreReport.failed`, and everything else is restored; the command
exits non-zero when anything failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recarchive.archives.containers import NotRebuildable, describe_recipe
from recarchive.archives.errors import ArchiveError, IntegrityError, UnsafeKeyError
from recarchive.archives.events import Advanced, Listener, PartEvent, Planned, ignore
from recarchive.archives.format import KIND_BLOB, KIND_RASTER, KIND_SKIPPED, object_digest
from recarchive.archives.rasters import object_bytes
from recarchive.archives.reader import ArchiveReader, damaged_unit
from recarchive.archives.records import IndexRow, index_rows
from recarchive.archives.safety import check_inside, restore_targets
from recarchive.archives.units import blocks_digest, read_by_units
from recarchive.codecs import CodecError
from recarchive.codecs.base import SHARDS_TOGETHER
from recarchive.storage import Location, open_location


@dataclass
class RestoreReport:
    """What a restore (or verify) did."""

    objects: int = 0
    kinds: Counter = field(default_factory=Counter)
    written_bytes: int = 0
    raw_pixel_bytes: int = 0
    shards_decoded: int = 0
    units_decoded: int = 0            # objects' units decoded alone (format 4)
    archive_bytes_read: int = 0
    model_bytes_read: int = 0         # model copies read (the archive's or a shared store's)
    byte_exact: int = 0               # objects whose bytes matched their source's digest
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)   # key (or range), reason
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "objects": self.objects, "kinds": dict(self.kinds),
            "written_bytes": self.written_bytes, "raw_pixel_bytes": self.raw_pixel_bytes,
            "shards_decoded": self.shards_decoded, "units_decoded": self.units_decoded,
            "byte_exact": self.byte_exact, "archive_bytes_read": self.archive_bytes_read,
            "model_bytes_read": self.model_bytes_read, "skipped": self.skipped,
            "failed": self.failed, "problems": self.problems, "notes": self.notes,
            "seconds": round(self.seconds, 3),
        }

    def fail(self, key: str, error: Exception | str) -> None:
        reason = str(error)
        self.failed.append({"key": key, "reason": reason})
        self.problems.append(reason if key in reason else f"{key}: {reason}")


DECODE_ERRORS = (IntegrityError, CodecError, ValueError, OSError)


class _PartDecoder:
    """Decoded shards of one part, each kept only while a pending object still needs it; a
    shard that failed to decode fails every object that needs it, without decoding again.
    With `units`, shards whose selected objects' units are a small share of them are read
    unit by unit instead (`unit_shards`)."""

    def __init__(self, reader: ArchiveReader, part: int, rows: list[IndexRow],
                 report: RestoreReport, listener: Listener = ignore,
                 units: bool = False) -> None:
        self.reader, self.part, self.report = reader, part, report
        self.listener = listener
        self.uses: Counter = Counter()
        self.cache: dict[int, Any] = {}
        self.broken: dict[int, Exception] = {}
        self.chains: dict[str, list[tuple[int, int, int]] | Exception] = {}
        for row in rows:
            if row.kind == KIND_RASTER and row.num_blocks == 0:  # coded whole
                self.uses[row.shard] += 1
            elif row.kind == KIND_RASTER:
                try:
                    chain = reader.shard_chain(part, row.shard, row.block_start,
                                               row.num_blocks)
                    if row.has_units:
                        reader.check_units(row, chain)
                except DECODE_ERRORS as error:
                    self.chains[row.key] = error
                    continue
                self.chains[row.key] = chain
            elif row.kind == KIND_BLOB:
                self.uses[row.shard] += 1
        self.unit_shards = self._plan_units(rows) if units else set()
        for chain in self.chains.values():
            if not isinstance(chain, Exception):
                self.uses.update(n for n, _, _ in chain if n not in self.unit_shards)
        self.pixel_shards = sorted({n for chain in self.chains.values()
                                    if not isinstance(chain, Exception)
                                    for n, _, _ in chain} - self.unit_shards)

    def _plan_units(self, rows: list[IndexRow]) -> set[int]:
        """The shards to read unit by unit: every selected object in them has units, and
        those take at most `UNIT_READ_SHARE` of the shard's payload."""
        unit_bytes: Counter = Counter()
        whole: set[int] = set()
        for row in rows:
            chain = self.chains.get(row.key)
            if chain is None or isinstance(chain, Exception):
                continue
            for k, (number, _, _) in enumerate(chain):
                if row.has_units:
                    unit_bytes[number] += (row.unit_lengths or [])[k]
                else:
                    whole.add(number)
        chosen = set()
        for number, size in unit_bytes.items():
            if number in whole:
                continue
            start, stop = self.reader.payload_range(self.part, number)
            if read_by_units(size, stop - start):
                chosen.add(number)
        return chosen

    def read_by_units(self, row: IndexRow) -> bool:
        """Whether some of the object's blocks come from its units alone."""
        chain = self.chains.get(row.key)
        return isinstance(chain, list) and any(n in self.unit_shards for n, _, _ in chain)

    def _get(self, number: int, what: str) -> Any:
        """Shard `number` as "pixels" (its blocks), "bytes" (a blob shard's objects) or
        "payload" (a JPEG-XL shard's streams, decoded one object at a time)."""
        if number in self.broken:
            raise self.broken[number]
        if number not in self.cache and what == "pixels":
            self._decode_pixels(number)
            if number in self.broken:
                raise self.broken[number]
        elif number not in self.cache:
            try:
                self.cache[number] = (self.reader.decode_blob(self.part, number)
                                      if what == "bytes"
                                      else self.reader.read_shard(self.part, number).payload)
            except DECODE_ERRORS as error:
                self.broken[number] = error
                raise
            self.report.shards_decoded += 1
        value = self.cache[number]
        self.uses[number] -= 1
        if self.uses[number] <= 0:
            del self.cache[number]
        return value

    def _decode_pixels(self, number: int) -> None:
        """Pixel shard `number` and the next ones pending objects still need, decoded
        together (at most `SHARDS_TOGETHER`: `ArchiveReader.decode_pixels_many`), into the
        cache, or into `broken` with their errors."""
        later = [n for n in self.pixel_shards if n > number and self.uses[n] > 0
                 and n not in self.cache and n not in self.broken]
        group = [number, *later[: SHARDS_TOGETHER - 1]]
        for n, blocks in zip(group, self.reader.decode_pixels_many(self.part, group),
                             strict=True):
            if isinstance(blocks, Exception):
                self.broken[n] = blocks
                continue
            self.cache[n] = blocks
            self.report.shards_decoded += 1
            self.listener(Advanced(blocks=len(blocks)))

    def pixels(self, row: IndexRow) -> np.ndarray:
        """The raster's pixels, cut from shards each checked against its raw sha256 when
        decoded; the object's channels and shape are checked here."""
        if row.num_blocks == 0:  # a raster coded whole: its own stream alone
            return self.reader.whole_raster(row, self._get(row.shard, "payload"))
        chain = self.chains[row.key]
        if isinstance(chain, Exception):
            raise chain
        pieces = []
        for k, (number, start, stop) in enumerate(chain):
            if number in self.unit_shards:
                pieces.append(self.reader.unit_blocks(row, k, number, stop - start))
                self.report.units_decoded += 1
            else:
                pieces.append(self._get(number, "pixels")[start:stop])
        blocks = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        if row.unit_sha256 is not None and blocks_digest(
                blocks, self.reader.object_digest_bytes) != row.unit_sha256:
            raise IntegrityError(self._digest_problem(row, chain))
        return self.reader.object_pixels(row, blocks)

    def _digest_problem(self, row: IndexRow, chain: list[tuple[int, int, int]]) -> str:
        """Why an object's blocks do not match its `unit_sha256`."""
        where = f"{self.reader.url}: object {row.key!r}"
        read = [self.reader.global_shard(self.part, n) for n, _, _ in chain
                if n in self.unit_shards]
        if read:
            return damaged_unit(f"{where}: its unit(s) in shard(s) "
                                f"{', '.join(map(str, read))}", self.reader.url, read[0],
                                "its blocks do not match their digest in the index")
        return (f"{where}: its blocks, decoded from whole shards that match their checksums, "
                "do not match their digest in the index (unit_sha256): the index is damaged")

    def blob(self, row: IndexRow) -> bytes:
        raw = self._get(row.shard, "bytes")
        start, length = row.blob_offset, row.blob_length
        data = raw[start:start + length]
        if len(data) != length:
            raise IntegrityError(f"{self.reader.url}: object {row.key!r}: its byte range "
                                 "runs past its shard")
        return data

    def object(self, row: IndexRow) -> tuple[bytes, bool]:
        """The object's restored bytes, and whether they are its original bytes (checked
        against its index digest, which must then match)."""
        if row.kind == KIND_RASTER:
            pixels = self.pixels(row)
            self.report.raw_pixel_bytes += pixels.size
            data = object_bytes(row, pixels, self.reader.fidelity)
            exact = row.recipe is not None
        else:
            data, exact = self.blob(row), True
        if exact and object_digest(data, self.reader.object_digest_bytes) != (
                row.sha256_prefix):
            hint = ""
            if row.kind == KIND_RASTER and row.recipe is not None:
                hint = _rebuild_hint(row.recipe, self.read_by_units(row))
            raise IntegrityError(f"{self.reader.url}: object {row.key!r}: restored bytes do "
                                 f"not match its sha256 prefix in the index{hint}")
        return data, exact


def _rebuild_hint(recipe: bytes, from_units: bool = False) -> str:
    """Why a rebuilt file may differ though its pixels are exact: another deflate library.
    Pixels decoded from units alone were checked by nothing else: a damaged unit is as
    likely."""
    try:
        made_with = describe_recipe(recipe).get("zlib_version")
    except (ValueError, NotRebuildable):
        return " (its recipe is damaged)"
    unit = ("its pixels were decoded from its unit alone, which has no checksum of its own: "
            "the unit is damaged; `recarchive verify` checks its shard against its sha256 and "
            "lists what is damaged; put back the data file from a copy")
    if made_with and made_with != zlib.ZLIB_RUNTIME_VERSION:
        if from_units:
            return (f" (its PNG was compressed with zlib {made_with}, this machine has zlib "
                    f"{zlib.ZLIB_RUNTIME_VERSION}: restore on a machine with zlib {made_with}; "
                    f"or {unit})")
        return (f" (its PNG was compressed with zlib {made_with}, this machine has zlib "
                f"{zlib.ZLIB_RUNTIME_VERSION}: restore on a machine with zlib {made_with}; the "
                "pixels are intact, `--fidelity pixels` archives do not depend on zlib)")
    if from_units:
        return f" ({unit})"
    return " (the pixels decoded exactly; the recipe or the index is damaged)"


def _by_part(rows: Iterator[IndexRow]) -> Iterator[tuple[int, list[IndexRow]]]:
    """Group index rows (which arrive part by part) into per-part lists."""
    current, batch = -1, []
    for row in rows:
        if row.part != current and batch:
            yield current, batch
            batch = []
        current = row.part
        batch.append(row)
    if batch:
        yield current, batch


def check_shards(reader: ArchiveReader, shards: set[int] | None) -> None:
    """Refuse shard numbers the archive does not have (a typo must not restore nothing)."""
    total = int(reader.shard_offsets[-1])
    wrong = sorted(s for s in shards or () if not 0 <= s < total)
    if wrong:
        raise ArchiveError(f"{reader.url}: shard(s) {', '.join(map(str, wrong[:5]))} do not "
                           f"exist: the archive has {total} shards, 0 to {total - 1} "
                           "(`recarchive ls` shows each object's shard)")


def _selected_keys(reader: ArchiveReader, objects: str | None,
                   shards: set[int] | None) -> tuple[list[str], int]:
    """Every selected key (read ahead: keys are checked as a set before anything is
    written) and their objects' bytes; index files that cannot be read are left to
    `selected_rows` to report."""
    keys, size = [], 0
    for part in reader.index_parts(objects):
        try:
            for row in reader.rows(objects, shards, parts=[part]):
                keys.append(row.key)
                size += row.size
        except IntegrityError:
            continue
    return keys, size


def selected_rows(reader: ArchiveReader, report: RestoreReport, objects: str | None,
                  shards: set[int] | None) -> Iterator[tuple[int, list[IndexRow]]]:
    """The selected index rows part by part; a part whose index cannot be read is reported
    as failed (its key range and object count) and skipped."""
    for part in reader.index_parts(objects):
        try:
            rows = list(reader.rows(objects, shards, parts=[part]))
        except IntegrityError as error:
            report.fail(f"{part.min_key} … {part.max_key} ({part.objects} objects "
                        f"of part {part.part})", error)
            continue
        yield from _by_part(iter(rows))


def restore(archive_url: str, destination_url: str, *, shards: set[int] | None = None,
            objects: str | None = None, archive_options: dict[str, Any] | None = None,
            destination_options: dict[str, Any] | None = None,
            rename_unsafe: bool = False, listener: Listener = ignore) -> RestoreReport:
    """Restore the selected objects (all by default) of an archive into `destination_url`.

    `objects`: a key, or an fnmatch pattern on keys. `shards`: global shard numbers; selects
    the objects whose data begins in them (so disjoint shard sets restore disjoint objects).
    Keys go to object stores verbatim; a local folder refuses, by name, keys it cannot hold
    (`rename_unsafe`: writes them under safe names, listed in `notes`). Damaged shards or
    index files fail only the objects they hold (`RestoreReport.failed`). `listener` hears
    the work as it is done (`events`).
    """
    started = time.time()
    reader = ArchiveReader(archive_url, archive_options)
    check_shards(reader, shards)
    destination = open_location(destination_url, destination_options)
    report = RestoreReport()
    keys, size = _selected_keys(reader, objects, shards)
    listener(Planned(objects=len(keys), bytes=size))
    targets = restore_targets(destination, keys, rename_unsafe)
    report.notes.extend(f"{item.key!r} restored as {item.path!r} ({item.reason})"
                        for item in targets.renamed)
    with contextlib.suppress(OSError, NotImplementedError):  # a new bucket or folder
        destination.fs.makedirs(destination.root, exist_ok=True)
    for part, rows in selected_rows(reader, report, objects, shards):
        paths: dict[str, str | Exception] = {}
        for row in rows:
            key = row.key
            if key in targets.refused:
                paths[key] = UnsafeKeyError(targets.refused[key])
                continue
            try:
                check_inside(destination, key, targets.paths[key])
                paths[key] = targets.paths[key]
            except ArchiveError as error:
                paths[key] = error
        # a selection may read units; restoring everything reads whole shards
        decoder = _PartDecoder(reader, part, rows, report, listener,
                               units=objects is not None or shards is not None)
        for row in sorted(rows, key=lambda r: (r.shard, r.block_start, r.blob_offset)):
            _restore_one(row, paths[row.key], decoder, destination, report)
            listener(Advanced(objects=1, bytes=row.size))  # given back, skipped or failed
        reader.release(part)
        listener(PartEvent(part, False, len(rows)))
    report.notes.extend(reader.models_replaced)
    report.archive_bytes_read = reader.location.read.bytes
    report.model_bytes_read = reader.model_bytes_read
    report.seconds = time.time() - started
    return report


def _restore_one(row: IndexRow, target: str | Exception, decoder: _PartDecoder,
                 destination: Location, report: RestoreReport) -> None:
    """Give back one object (or record why not)."""
    report.objects += 1
    report.kinds[row.kind] += 1
    if row.kind == KIND_SKIPPED:
        report.skipped.append({"key": row.key, "reason": row.reason or ""})
        return
    if isinstance(target, Exception):
        report.fail(row.key, target)
        return
    try:
        data, exact = decoder.object(row)
    except DECODE_ERRORS as error:
        report.fail(row.key, error)
        return
    destination.write_object(target, data, durable=False)
    report.written_bytes += len(data)
    report.byte_exact += exact


def verify(archive_url: str, archive_options: dict[str, Any] | None = None,
           listener: Listener = ignore) -> RestoreReport:
    """Check every file against the manifest, decode every shard, rebuild every object and
    check it against its digest; `listener` hears the work as it is done (`events`).

    Problems are collected (each naming its file, shard or object), not raised, so one run
    lists all the damage; `report.problems` is empty for a sound archive.
    """
    started = time.time()
    reader = ArchiveReader(archive_url, archive_options)
    report = RestoreReport()
    totals = reader.manifest.totals
    listener(Planned(objects=totals["objects"], bytes=totals["source_bytes"]))
    for entry in reader.manifest.files:
        problem = _check_file(reader, entry)
        if problem:
            report.problems.append(problem)
    report.problems.extend(reader.check_models())
    counted: Counter = Counter()
    for part in reader.parts:
        try:
            rows = index_rows(reader.index_table(part))
        except IntegrityError as error:
            report.fail(f"{part.min_key} … {part.max_key} ({part.objects} objects "
                        f"of part {part.part})", error)
            continue
        decoder = _PartDecoder(reader, part.part, rows, report, listener)
        for row in rows:
            counted[row.kind] += 1
            _check_one(row, decoder, report)
            listener(Advanced(objects=1, bytes=row.size))
        reader.release(part.part)
        listener(PartEvent(part.part, False, len(rows)))
    expected = {KIND_RASTER: totals["rasters"], KIND_BLOB: totals["blobs"],
                KIND_SKIPPED: totals["skipped"]}
    for kind, number in expected.items():
        if counted[kind] != number:
            report.problems.append(f"{archive_url}: index has {counted[kind]} {kind} objects, "
                                   f"the manifest says {number}")
    report.notes.extend(reader.models_replaced)
    report.archive_bytes_read = reader.location.read.bytes
    report.model_bytes_read = reader.model_bytes_read
    report.seconds = time.time() - started
    return report


def _check_one(row: IndexRow, decoder: _PartDecoder, report: RestoreReport) -> None:
    """Rebuild one object and check it against its digest (or record why it failed)."""
    report.objects += 1
    report.kinds[row.kind] += 1
    if row.kind == KIND_SKIPPED:
        report.skipped.append({"key": row.key, "reason": row.reason or ""})
        return
    try:
        _, exact = decoder.object(row)
        report.byte_exact += exact
    except DECODE_ERRORS as error:
        report.fail(row.key, error)


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
            "key": row.key, "kind": row.kind, "size": row.size,
            "format": row.format, "mode": row.mode,
            "shape": [row.height, row.width, row.channels]
            if row.kind == KIND_RASTER else None,
            "shard": reader.global_shard(row.part, row.shard) if row.shard >= 0
            else None,
            "blocks": row.num_blocks if row.kind == KIND_RASTER else None,
            "reason": row.reason,
        }
