"""Typed records of what the format stores: an index row (one object), a shard (one row
group of a part's data file), a part's done record and its counts, and the manifest. The
Parquet schemas in `format` are the rows' columns, and JSON the records' form; these classes
are how the code holds them, so a misspelt field fails where it is written, not as a missing
key three modules away.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from recarchive.archives.format import (
    INDEX_SCHEMA,
    KIND_BLOB,
    KIND_RASTER,
    SHARD_SCHEMA,
    canonical_json,
)


@dataclass(slots=True)
class IndexRow:
    """One object of an archive: where it is and how it comes back (`format.INDEX_SCHEMA`)."""

    key: str
    size: int
    kind: str                          # raster | blob | skipped
    part: int
    format: str = ""                   # what Pillow read ("PNG", "JPEG", ...), "" if none
    mode: str = ""                     # L LA RGB RGBA P for rasters
    height: int = 0
    width: int = 0
    channels: int = 0
    shard: int = -1                    # row group in the part's data file; -1: skipped
    block_start: int = 0               # first block within that shard (block rasters)
    num_blocks: int = 0                # 0 for a raster coded whole (JPEG-XL)
    blob_offset: int = 0               # byte range in a blob shard's raw bytes (blobs)
    blob_length: int = 0               # (whole rasters: the stream's length)
    sha256_prefix: bytes | None = None
    reason: str | None = None          # why kept as bytes, or why skipped
    icc: bytes | None = None
    exif: bytes | None = None
    palette: bytes | None = None
    meta: str | None = None            # JSON: PNG text, dpi, transparency, palette mode
    recipe: bytes | None = None        # container recipe (format 2+); None: pixels only
    # format 4: per shard of its chain, where its unit lies in the data file (absolute offset,
    # length), and where restore has no other check of the output, a digest of its blocks;
    # None for objects without units
    unit_offsets: list[int] | None = None
    unit_lengths: list[int] | None = None
    unit_sha256: bytes | None = None

    @property
    def is_raster(self) -> bool:
        return self.kind == KIND_RASTER

    @property
    def is_blob(self) -> bool:
        return self.kind == KIND_BLOB

    @property
    def is_whole_raster(self) -> bool:
        """A raster kept as one JPEG-XL stream rather than blocks."""
        return self.kind == KIND_RASTER and self.num_blocks == 0

    @property
    def has_units(self) -> bool:
        """Its blocks can be read unit by unit, each a byte range of the data file."""
        return self.unit_offsets is not None and self.unit_lengths is not None

    @property
    def dims(self) -> int:
        """Pixel dims of a raster (H*W*C), bytes of a blob, 0 for a skipped object."""
        if self.kind == KIND_RASTER:
            return self.height * self.width * self.channels
        return self.size if self.kind == KIND_BLOB else 0

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict (JSON-like outputs)."""
        return dataclasses.asdict(self)


def index_rows(table: pa.Table) -> list[IndexRow]:
    """The rows of an index table (a format-1 table lacks `recipe`, one before format 4 the
    unit columns: None)."""
    return [IndexRow(**row) for row in table.to_pylist()]


def rows_to_table(rows: Iterable[IndexRow], schema: pa.Schema = INDEX_SCHEMA) -> pa.Table:
    """The rows as an index table of `schema` (`INDEX_SCHEMA_UNITS` adds the unit columns)."""
    return pa.Table.from_pylist([row.as_dict() for row in rows], schema=schema)


@dataclass(frozen=True, slots=True)
class ShardRow:
    """One shard: a row group of a part's data file (`format.SHARD_SCHEMA`)."""

    kind: str                          # pixels | blob
    codec: str
    model_sha256: str | None
    params: str                        # JSON of the codec's EncodedShard.params
    channels: int
    num_blocks: int
    raw_size: int                      # bytes of raw blocks or of the objects back to back
    raw_sha256: bytes
    payload_sha256: bytes
    payload: bytes

    @property
    def codec_params(self) -> dict[str, Any]:
        return json.loads(self.params)

    def as_table(self) -> pa.Table:
        return pa.Table.from_pylist([dataclasses.asdict(self)], schema=SHARD_SCHEMA)



@dataclass
class PartStats:
    """Counts and byte totals of one part (summed over parts into the manifest)."""

    objects: int = 0
    rasters: int = 0
    blobs: int = 0
    skipped: int = 0
    source_bytes: int = 0
    raw_pixel_bytes: int = 0          # decoded pixels of rasters (H*W*C), before padding
    block_bytes: int = 0              # coded blocks, padding included
    pixel_payload_bytes: int = 0      # codec payloads of pixel shards
    blob_raw_bytes: int = 0
    blob_payload_bytes: int = 0       # zstd payloads of blob shards
    pixel_shards: int = 0
    blob_shards: int = 0              # zstd and JPEG shards
    byte_exact_rasters: int = 0       # rasters kept as pixels + recipe (restore the file)
    jpegs: int = 0                    # JPEGs recompressed losslessly (counted in blobs)
    jpeg_raw_bytes: int = 0           # their original bytes (counted in blob_raw_bytes)
    jpeg_payload_bytes: int = 0       # their recompressed bytes (counted in blob_payload_bytes)
    shards_recoded: int = 0           # pixel shards that failed their decode check
    whole_rasters: int = 0            # rasters coded whole by JPEG-XL (format 3; counted in
    whole_payload_bytes: int = 0      # rasters, their streams in pixel_payload_bytes)
    model_shards: int = 0             # pixel shards coded with a model (its copy is needed)
    unit_objects: int = 0             # rasters whose units the index locates (format 4)
    # `--codec auto`: rasters the model fits, those it coded, their share of its payloads, what
    # their JPEG-XL streams would have taken, and how many ended above their stream
    auto_candidates: int = 0
    auto_model_rasters: int = 0
    auto_model_bytes: int = 0
    auto_model_jpegxl_bytes: int = 0
    auto_model_above_jpegxl: int = 0

    def add(self, other: PartStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> PartStats:
        """Counts as stored (a count a newer release added and this one lacks is left out;
        one an older release lacked is 0)."""
        return cls(**{name: values[name] for name in cls.__dataclass_fields__ if name in values})


# a done record's own keys; every other key is an observer's findings, under its name
_PART_KEYS = ("part", "writer", "fingerprint", "objects", "min_key", "max_key", "shards",
              "data_footer_bytes", "files", "stats")


@dataclass
class PartRecord:
    """A part's done record (`runs/RUN/done/part-N-W.json`, written last: the part is built):
    which objects it holds (their fingerprint and key range), its files with their sizes and
    sha256, its counts, and what the part's observers found (`observed`, by observer name:
    the compression report's `"report"`)."""

    part: int
    fingerprint: str
    objects: int
    min_key: str
    max_key: str
    shards: int
    files: list[dict[str, Any]]        # {"role": data|index, "path", "size", "sha256"}
    stats: PartStats
    writer: str = ""                   # the build's writer id ("" in format-1 records)
    data_footer_bytes: int | None = None   # the data file's Parquet footer + 8 (format 2+)
    observed: dict[str, Any] = field(default_factory=dict)
    done_path: str | None = None       # where the record lies (not stored in it)

    def file(self, role: str) -> dict[str, Any]:
        """The entry of its data or index file."""
        return next(entry for entry in self.files if entry["role"] == role)

    @property
    def uses_model(self) -> bool:
        return self.stats.model_shards > 0

    def to_json(self) -> bytes:
        body = {name: getattr(self, name) for name in _PART_KEYS}
        body["stats"] = dataclasses.asdict(self.stats)
        return canonical_json({**body, **self.observed})

    @classmethod
    def from_json(cls, values: dict[str, Any], done_path: str | None = None) -> PartRecord:
        """A stored record (any release's); a KeyError or TypeError where it is not one."""
        return cls(part=int(values["part"]), fingerprint=values["fingerprint"],
                   objects=values["objects"], min_key=values["min_key"],
                   max_key=values["max_key"], shards=values["shards"],
                   files=list(values["files"]), stats=PartStats.from_json(values["stats"]),
                   writer=values.get("writer", ""),
                   data_footer_bytes=values.get("data_footer_bytes"),
                   observed={k: v for k, v in values.items() if k not in _PART_KEYS},
                   done_path=done_path)


@dataclass(frozen=True)
class PartEntry:
    """A part as the manifest names it: its key range and files (where readers start)."""

    part: int
    shards: int
    objects: int
    min_key: str
    max_key: str
    data: str                          # its data file's path
    index: str                         # its index file's path
    data_footer_bytes: int | None = None   # the data file's Parquet footer + 8 (format 2+)

    @classmethod
    def of(cls, record: PartRecord) -> PartEntry:
        return cls(record.part, record.shards, record.objects, record.min_key, record.max_key,
                   record.file("data")["path"], record.file("index")["path"],
                   record.data_footer_bytes)


# keys a manifest may lack: left out of its JSON when None
_OPTIONAL_MANIFEST_KEYS = ("fidelity", "archive_seconds", "local_unsafe_keys", "auto_model",
                           "manifest_sha256")


@dataclass
class Manifest:
    """An archive's manifest (`manifest.json`, committed last): what the archive holds and
    every file with its checksum. `as_dict` is its JSON form (what `recarchive.archive`
    returns); keys a later release adds are kept in `extra`, so nothing read is dropped."""

    format: str
    format_version: int
    run_id: str
    created_unix: float
    source: str
    settings: dict[str, Any]           # the ArchiveSettings the run was made with
    codec: str
    models: list[dict[str, Any]]       # {"codec", "sha256", "path"[, "store"]}
    fidelity: str | None               # None in format 1 (rasters came back as new PNGs)
    object_digest_bytes: int
    parts: list[PartEntry]
    totals: dict[str, Any]             # PartStats summed over the parts, as stored
    files: list[dict[str, Any]]        # {"role", "path", "size", "sha256"}
    archive_seconds: float | None = None
    local_unsafe_keys: dict[str, Any] | None = None   # keys a local folder cannot hold
    auto_model: dict[str, Any] | None = None          # `auto`'s decision on its model
    manifest_sha256: str | None = None                # its own checksum, once sealed
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stats(self) -> PartStats:
        return PartStats.from_json(self.totals)

    def as_dict(self) -> dict[str, Any]:
        body = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "extra"}
        body["parts"] = [dataclasses.asdict(part) for part in self.parts]
        for name in _OPTIONAL_MANIFEST_KEYS:
            if body[name] is None:
                del body[name]
        return {**body, **self.extra}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Manifest:
        """A parsed manifest (`format.parse_manifest` checked it); a KeyError or TypeError
        where a required key is missing."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in values.items() if k in names}
        known["parts"] = [PartEntry(**part) for part in values["parts"]]
        known.setdefault("fidelity", None)
        known.setdefault("models", [])
        return cls(**known, extra={k: v for k, v in values.items() if k not in names})
