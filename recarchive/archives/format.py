"""The archive layout on storage, its Parquet schemas and its manifest (format versions 1-4:
`FORMAT_VERSION` below says what each added; `docs/archive-format.md` is the user's view).

    ARCHIVE/
      manifest.json                          written last, exclusively; names every file below
      runs/RUN/run.json                      the run's settings (codec, shard size, source)
      runs/RUN/done/part-NNNNNN-W.json       one per part finished by writer W: its files and
                                             checksums
      runs/RUN/data/part-NNNNNN-W.parquet    shards, one per row group (`SHARD_SCHEMA`)
      runs/RUN/index/part-NNNNNN-W.parquet   one row per object of the part (`INDEX_SCHEMA`)
      runs/RUN/commits/W.json                a copy of the manifest writer W committed
                                             (what `repair` puts back when the root copy is
                                             damaged)
      runs/RUN/models/SHA256.bin             copies of the codec models the shards need (or,
                                             format 3, the manifest names a shared store)

Writer ids (W) make every file a writer creates its own: two writers of the same run (two
identical commands at once, or a resume while an old one still runs) never overwrite each
other's files; the manifest, created exclusively, names the files of the one that committed.
Format 1 archives named their files without W; they are read as they are.

A part is a run of consecutive objects of the sorted source listing; it is the unit of work and
of resume. Shard numbers in the CLI are global: parts in order, row groups in order.

The manifest holds, per part, its key range (min/max key: a key or glob prefix selects which
index parts to read), shard and object counts, and the byte length of the data file's Parquet
footer (read in one exact range request). The shard table (kind, channels, blocks per row
group) is read from the footer's column statistics, so no row group is touched to plan a read.

Objects as units (format 4, written only by archives that have such objects): a codec that
codes each object alone (REC) makes every object's blocks in a shard a unit of the payload
that decodes alone. Payloads are stored uncompressed, PLAIN, without a dictionary, so each
lies verbatim at the end of its column chunk; the writer finds it there (checked against its
sha256, `units.payload_offsets`) and the index records per object `unit_offsets` and
`unit_lengths` (`INDEX_SCHEMA_UNITS`): one absolute byte range of the data file per shard the
object's blocks lie in. Restoring one object then reads its shard's small columns
(`reader.HEAD_COLUMNS`: codec, model, params) and its units' ranges, never the payload.

Integrity is anchored at the shard and at the manifest, not per object:
- every shard keeps the full sha256 of its payload (checked before decoding) and of its raw
  blocks or bytes (`raw_sha256`, checked whenever the shard is decoded, by restore, verify and
  the report alike), so every decoded pixel is covered by a full sha256; a JPEG-XL shard of
  whole rasters (format 3) is decoded one stream at a time, each covered by the payload's
  sha256 and checked against its row's shape (and, byte-exact, its rebuilt file's prefix);
- the manifest pins every file, index files included, by size and full sha256, and seals
  itself;
- per object the index keeps only cheap structure (channels, shape, block range; checked when
  the object is cut out of its blocks) and `sha256_prefix`: the first `object_digest_bytes`
  bytes (8 by default, 8..32, 32 = the full digest; recorded in the manifest) of the sha256 of
  the object's original bytes. Every object restored byte for byte (blobs, recompressed JPEGs,
  rasters rebuilt from pixels and `recipe`) is checked against it; for rasters kept with
  fidelity "pixels" (and format 1 archives) it identifies the source file.
  There is no per-object digest of the decoded pixels: 64 bytes per object of full digests
  were 2.1 % of CIFAR-10's order0 payload (3.6 % of its Bit-Swap payload), and the shard
  checksum already covers the pixels;
- except for units (format 4): a unit read alone is covered by no shard checksum, so the
  object it gives is checked by its output: the rebuilt file against `sha256_prefix`, and
  where there is no recipe (fidelity "pixels") `unit_sha256`, a prefix (object_digest_bytes)
  of the sha256 of the object's decoded blocks, kept for those objects only.
The manifest's top-level `object_digest_bytes` (also in its `settings`) is the length of every
`sha256_prefix`; readers refuse a manifest without it, and an index file that lacks a column of
`INDEX_SCHEMA` (`check_index_schema`) or holds prefixes of another length. Index files are one
row group each, without column statistics or an embedded Arrow schema (`parts.py` says why);
data files written since 2026-12-02 carry none either (readers take Parquet's own types).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa

from recarchive.archives.errors import ArchiveError, FormatVersionError, IntegrityError

FORMAT_NAME = "recarchive-archive"
FORMAT_VERSION = 2
# 1: no recipes, rasters restored as re-encoded PNG; 3: format 2 that may name its models in a
# shared model store (`models[i]["store"]`) and hold whole rasters in JPEG-XL shards; 4: format
# 3 whose index records, per object coded as units of its own (REC), where its units lie in the
# data file (`INDEX_SCHEMA_UNITS`), written only by archives that have such objects
MODEL_STORE_VERSION = WHOLE_RASTER_VERSION = 3
UNITS_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
MANIFEST = "manifest.json"

# How rasters come back: "exact" (the original bytes: pixels plus a container recipe, else the
# bytes themselves) or "pixels" (identical pixels and metadata, the container re-encoded).
FIDELITY_EXACT = "exact"
FIDELITY_PIXELS = "pixels"
FIDELITIES = (FIDELITY_EXACT, FIDELITY_PIXELS)

KIND_RASTER = "raster"
KIND_BLOB = "blob"
KIND_SKIPPED = "skipped"
SHARD_PIXELS = "pixels"
SHARD_BLOB = "blob"
BLOB_CODEC = "zstd"
JPEG_CODEC = "jpeg-lossless"   # blob shard of JPEGs recompressed one by one (`archive.jpeg`)
# blob shard of whole rasters as JPEG-XL lossless streams (`archives.jpegxl`; format 3): raw is
# their pixels back to back, each the row's blob_offset/blob_length, num_blocks 0
JPEGXL_CODEC = "jpegxl-lossless"
AUTO_CODEC = "auto"  # per raster, the model (where it fits and costs less) or JPEG-XL
WHOLE_RASTER_CODECS = ("jpegxl", AUTO_CODEC)  # archive codecs that code rasters whole


def run_dir(run_id: str) -> str:
    return f"runs/{run_id}"


def part_name(part: int) -> str:
    return f"part-{part:06d}"


def _part_file(part: int, writer: str) -> str:
    return f"{part_name(part)}-{writer}" if writer else part_name(part)


def data_path(run_id: str, part: int, writer: str = "") -> str:
    return f"{run_dir(run_id)}/data/{_part_file(part, writer)}.parquet"


def index_path(run_id: str, part: int, writer: str = "") -> str:
    return f"{run_dir(run_id)}/index/{_part_file(part, writer)}.parquet"


def done_path(run_id: str, part: int, writer: str = "") -> str:
    return f"{run_dir(run_id)}/done/{_part_file(part, writer)}.json"


def done_folder(run_id: str) -> str:
    return f"{run_dir(run_id)}/done"


def part_of_done_file(name: str) -> int | None:
    """The part number a done record's file name is for (any writer), None if it is not one."""
    base = name.rsplit("/", 1)[-1]
    if not (base.startswith("part-") and base.endswith(".json")):
        return None
    digits = base[5:11]
    return int(digits) if digits.isdigit() and base[11:12] in ("-", ".") else None


def commit_path(run_id: str, writer: str) -> str:
    return f"{run_dir(run_id)}/commits/{writer}.json"


def model_path(run_id: str, sha256: str) -> str:
    return f"{run_dir(run_id)}/models/{sha256}.bin"


def store_model_path(sha256: str) -> str:
    """A model's name in a shared, content-addressed model store (`--model-store`)."""
    return f"{sha256}.bin"


SHA = pa.binary(32)

# One row per row group: a shard of pixel blocks coded by a codec, or a zstd frame of
# concatenated fallback objects.
SHARD_SCHEMA = pa.schema([
    ("kind", pa.string()),
    ("codec", pa.string()),
    ("model_sha256", pa.string()),
    ("params", pa.string()),          # JSON, the codec's EncodedShard.params
    ("channels", pa.int8()),
    ("num_blocks", pa.int32()),
    ("raw_size", pa.int64()),         # bytes of raw blocks or of the concatenated objects
    ("raw_sha256", SHA),              # of the raw blocks (N, 32, 32, C) C-order, or raw bytes
    ("payload_sha256", SHA),
    ("payload", pa.large_binary()),
])
SHARD_STAT_COLUMNS = ["kind", "channels", "num_blocks"]  # in the footer: the shard table

INDEX_SCHEMA_V1 = pa.schema([
    ("key", pa.string()),
    ("size", pa.int64()),
    ("kind", pa.string()),            # raster | blob | skipped
    ("format", pa.string()),          # what Pillow read ("PNG", "JPEG", ...), "" if none
    ("mode", pa.string()),            # L LA RGB RGBA P for rasters
    ("height", pa.int32()),
    ("width", pa.int32()),
    ("channels", pa.int8()),
    ("part", pa.int32()),
    ("shard", pa.int32()),            # row group in the part's data file; -1 for skipped
    ("block_start", pa.int32()),      # first block within that shard (rasters)
    ("num_blocks", pa.int32()),       # blocks, continuing in the part's next shards of its
                                      # channel count
    ("blob_offset", pa.int64()),      # byte range within the blob shard (blobs)
    ("blob_length", pa.int64()),
    ("sha256_prefix", pa.binary()),   # first object_digest_bytes bytes of the sha256 of the
                                      # original object bytes; null for skipped objects
    ("reason", pa.string()),          # why kept as bytes, or why skipped
    ("icc", pa.large_binary()),
    ("exif", pa.large_binary()),
    ("palette", pa.binary()),         # P mode: palette bytes, see `meta.palette_mode`
    ("meta", pa.string()),            # JSON: PNG text, dpi, transparency, palette mode
])
# Format 2 adds the container recipe: with the pixels it rebuilds the original file byte for
# byte (`archive.containers`); null where the raster was kept as pixels only.
INDEX_SCHEMA = pa.schema(list(INDEX_SCHEMA_V1) + [pa.field("recipe", pa.large_binary())])
# Format 4 (archives of a codec that codes each object alone, `codes_objects_alone`) adds where
# each object's units lie, so one object is restored from its own bytes (`units`); null for
# objects without units (blobs, whole rasters, objects of a shard coded by another codec).
INDEX_SCHEMA_UNITS = pa.schema(list(INDEX_SCHEMA) + [
    # per shard of the object's chain, in order: its unit's first byte in the part's data file
    # (absolute, a range request's start) and its length
    pa.field("unit_offsets", pa.list_(pa.int64())),
    pa.field("unit_lengths", pa.list_(pa.int64())),
    # first object_digest_bytes of the sha256 of the object's decoded blocks (N, 32, 32, C),
    # C-order, all its units in order: only where restore cannot check the output against
    # sha256_prefix (rasters kept without a recipe: fidelity "pixels"); null elsewhere
    pa.field("unit_sha256", pa.binary()),
])
UNIT_COLUMNS = ("unit_offsets", "unit_lengths", "unit_sha256")
OBJECT_DIGEST_COLUMN = "sha256_prefix"
OBJECT_DIGEST_MIN_BYTES = 8
OBJECT_DIGEST_MAX_BYTES = 32  # the full sha256
DEFAULT_OBJECT_DIGEST_BYTES = 8


def check_object_digest_bytes(value: object, where: str) -> int:
    """`object_digest_bytes` as an int in 8..32, or an error saying what is allowed."""
    if (isinstance(value, bool) or not isinstance(value, int)
            or not OBJECT_DIGEST_MIN_BYTES <= value <= OBJECT_DIGEST_MAX_BYTES):
        raise ArchiveError(f"{where}: object_digest_bytes must be an integer from "
                           f"{OBJECT_DIGEST_MIN_BYTES} to {OBJECT_DIGEST_MAX_BYTES} (bytes of "
                           f"each object's sha256 kept in the index; {OBJECT_DIGEST_MAX_BYTES} = "
                           f"the full digest), got {value!r}")
    return value


def object_digest(data: bytes | memoryview, digest_bytes: int) -> bytes:
    """What `sha256_prefix` holds for an object with these original bytes."""
    return hashlib.sha256(data).digest()[:digest_bytes]


def index_schema(version: int) -> pa.Schema:
    """The index columns an archive of this format version holds (at least)."""
    return (INDEX_SCHEMA_V1 if version == 1 else INDEX_SCHEMA_UNITS if version >= UNITS_VERSION
            else INDEX_SCHEMA)


def check_index_schema(schema: pa.Schema, where: str, version: int = FORMAT_VERSION) -> None:
    """Refuse an index file that lacks a column of its format's index schema (e.g. one written
    before `sha256_prefix` replaced the full per-object digests)."""
    expected = index_schema(version)
    missing = [name for name in expected.names if name not in schema.names]
    if missing:
        raise IntegrityError(
            f"{where}: index lacks the column(s) {', '.join(missing)} of archive format "
            f"{version} (written by another build of recarchive, or damaged); this "
            "recarchive cannot read it")


def sha256_hex(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def seal_manifest(manifest: dict[str, Any]) -> bytes:
    """The manifest's bytes, with a checksum over everything else so truncation or edits of
    the manifest itself are caught."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    sealed = dict(body, manifest_sha256=sha256_hex(canonical_json(body)))
    # compact, as every record the archive stores: it is overhead (`jq` shows it indented)
    return json.dumps(sealed, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    """Check a manifest's format name, version and own checksum; return it."""
    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise IntegrityError(f"{where}: manifest is not valid JSON ({error}); it is damaged "
                             "or truncated (`recarchive repair` rebuilds it from the parts' "
                             "records)") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise IntegrityError(f"{where}: not a recarchive manifest (no format "
                             f"{FORMAT_NAME!r})")
    version = manifest.get("format_version")
    if version not in READABLE_VERSIONS:
        raise FormatVersionError(
            f"{where}: archive format version {version!r} is not supported by this recarchive "
            f"(it reads versions {', '.join(map(str, READABLE_VERSIONS))}); use the "
            "recarchive release that wrote it")
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    if manifest.get("manifest_sha256") != sha256_hex(canonical_json(body)):
        raise IntegrityError(f"{where}: manifest checksum does not match its contents; the "
                             "manifest was edited or damaged (`recarchive repair` rebuilds it "
                             "from the parts' records)")
    return manifest
