"""Reading a finished archive: its manifest, index tables and individual shards.

Everything read is checked: index files and models against the manifest's sha256 (they are
read whole), index files also for their columns and digest-prefix lengths, shards by their
payload sha256 before decoding and raw sha256 after (the check that covers decoded pixels:
the index keeps no per-object pixel digest); data files are opened lazily and only the footer
and the row groups asked for are fetched.

Format 4: an object coded as units of its own is read unit by unit (`unit_blocks`): its
shard's small columns (codec, model, params; not the payload), then each unit's exact byte
range. A unit has no checksum of its own: the object it gives is checked by its caller
(`restore`), against its rebuilt file's `sha256_prefix` or, where there is none, the index's
`unit_sha256` of its blocks.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard

from recarchive.archives import jpegxl
from recarchive.archives.blocks import join_blocks
from recarchive.archives.errors import ArchiveError, ArchiveIncomplete, IntegrityError
from recarchive.archives.format import (
    BLOB_CODEC,
    FIDELITY_EXACT,
    JPEG_CODEC,
    JPEGXL_CODEC,
    KIND_RASTER,
    KIND_SKIPPED,
    MANIFEST,
    OBJECT_DIGEST_COLUMN,
    SHARD_BLOB,
    SHARD_PIXELS,
    check_index_schema,
    check_object_digest_bytes,
    parse_manifest,
    part_of_done_file,
)
from recarchive.archives.jpeg import JpegError, expand
from recarchive.archives.models import CodecCache
from recarchive.archives.records import (
    IndexRow,
    Manifest,
    PartEntry,
    PartRecord,
    ShardRow,
    index_rows,
)
from recarchive.archives.units import payload_chunk
from recarchive.codecs import BlockCodec, CodecError, EncodedShard
from recarchive.codecs.base import BLOCK_SIZE, decode_shards
from recarchive.models.shipped import shipped_bytes
from recarchive.storage import open_location

INDEX_CACHE_BYTES = 64 * 1024 * 1024
# what decoding a unit needs of its shard: every column but the payload and the checksums
HEAD_COLUMNS = ["kind", "codec", "model_sha256", "params", "channels", "num_blocks"]


@dataclass(frozen=True)
class ShardHead:
    """A shard without its payload and checksums: what decoding one of its units needs."""

    kind: str
    codec: str
    model_sha256: str | None
    params: dict[str, Any]
    channels: int
    num_blocks: int


@dataclass(frozen=True)
class ShardInfo:
    """One row group of a data file, from the Parquet footer alone."""

    kind: str
    channels: int
    num_blocks: int
    compressed_bytes: int


class ArchiveReader:
    """A finished archive at `url`; refuses incomplete, unknown-version or tampered ones."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.location = open_location(url, storage_options)
        self.storage_options = storage_options  # also for a shared model store
        self.url = url
        if not self.location.exists(MANIFEST):
            raise ArchiveIncomplete(
                f"{url}: no {MANIFEST}: not an archive, or an archive run that has not "
                "finished (rerun the same `recarchive archive` command to resume it)")
        where = f"{url}/{MANIFEST}"
        stored = parse_manifest(self.location.read_bytes(MANIFEST), where)
        self.object_digest_bytes = _digest_bytes(stored, where)
        try:
            self.manifest = Manifest.from_json(stored)
        except (KeyError, TypeError) as error:
            raise IntegrityError(f"{where}: not a complete manifest ({type(error).__name__}: "
                                 f"{error}); `recarchive repair` rebuilds it") from None
        self.version = self.manifest.format_version
        # format 1 restored every raster as a new PNG; format 2 records how it was kept
        self.fidelity = (self.manifest.fidelity or FIDELITY_EXACT) if self.version >= 2 \
            else "png"
        self.models_replaced: list[str] = []  # damaged copies replaced by shipped models
        self.model_bytes_read = 0  # model copies read (the archive's or a shared store's)
        self.files = {f["path"]: f for f in self.manifest.files}
        self.parts = self.manifest.parts
        self.shard_offsets = np.cumsum([0] + [p.shards for p in self.parts]).tolist()
        self.codecs = CodecCache(self._model)
        self._footers: dict[int, tuple[pq.ParquetFile, list[ShardInfo]]] = {}
        # index tables read and checked so far, kept while they fit: a restore plans every
        # selected key before it writes, then reads the same parts again
        self._indexes: dict[str, pa.Table] = {}
        self._index_bytes = 0
        self._handles: dict[int, Any] = {}
        self._starts: dict[int, dict[str, int]] = {}  # part -> whole rasters' stream starts
        self._heads: dict[tuple[int, int], ShardHead] = {}  # (part, row group) -> its head

    # --- files -----------------------------------------------------------------------------

    def read_checked(self, path: str) -> bytes:
        """A whole file named in the manifest, checked against its size and sha256."""
        entry = self.files.get(path)
        if entry is None:
            raise IntegrityError(f"{self.url}: {path} is not named in the manifest")
        try:
            data = self.location.read_bytes(path)
        except FileNotFoundError:
            raise IntegrityError(f"{self.url}: {path} named in the manifest is missing") from None
        if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise IntegrityError(f"{self.url}: {path} does not match its manifest checksum "
                                 f"(size {len(data)}, expected {entry['size']}): the file is "
                                 "damaged, truncated or was replaced")
        return data

    def done_records(self) -> list[PartRecord]:
        """The parts' done records the manifest names (bookkeeping), checked, in part order."""
        records = {}
        for entry in self.manifest.files:
            part = part_of_done_file(entry["path"]) if "/done/" in entry["path"] else None
            if entry["role"] == "bookkeeping" and part is not None:
                records[part] = PartRecord.from_json(
                    json.loads(self.read_checked(entry["path"])), entry["path"])
        return [records[part] for part in sorted(records)]

    def _model(self, sha256: str) -> bytes:
        """The archive's copy of a model (or the shared store's); where that copy is missing
        or damaged, the shipped model file with the same sha256 (the same bytes, by their
        hash)."""
        for model in self.manifest.models:
            if model["sha256"] == sha256:
                where = (f"{model['store']}/{model['path']}" if "store" in model
                         else model["path"])
                try:
                    data = (self._stored_model(model) if "store" in model
                            else self.read_checked(model["path"]))
                    self.model_bytes_read += len(data)
                    return data
                except IntegrityError as error:
                    shipped = shipped_bytes(sha256)
                    if shipped is None:
                        raise IntegrityError(f"{error}; no shipped model has sha256 {sha256} "
                                             "to replace it") from None
                    self.models_replaced.append(
                        f"{self.url}: {where} is damaged or missing; used the "
                        f"shipped model with the same sha256 {sha256[:16]}…")
                    return shipped
        raise IntegrityError(f"{self.url}: a shard needs model {sha256}, which the archive "
                             "does not contain")

    def _stored_model(self, model: dict[str, Any]) -> bytes:
        """A model from the shared store the manifest names, checked against its sha256."""
        where = f"{model['store']}/{model['path']}"
        try:
            data = open_location(model["store"], self.storage_options).read_bytes(model["path"])
        except (FileNotFoundError, OSError) as error:
            raise IntegrityError(f"{self.url}: model {where} in the model store cannot be "
                                 f"read ({type(error).__name__}: {error})") from None
        if hashlib.sha256(data).hexdigest() != model["sha256"]:
            raise IntegrityError(f"{self.url}: model {where} in the model store does not "
                                 f"hash to {model['sha256']}: it is damaged or was replaced")
        return data

    def check_models(self) -> list[str]:
        """Problems with the models the manifest names in a shared store (an archive's own
        copies are files of the manifest, checked with them)."""
        problems = []
        for model in self.manifest.models:
            if "store" in model:
                try:
                    self._stored_model(model)
                except IntegrityError as error:
                    problems.append(str(error))
        return problems

    # --- index -----------------------------------------------------------------------------

    def global_shard(self, part: int, row_group: int) -> int:
        return int(self.shard_offsets[part]) + row_group

    def index_parts(self, pattern: str | None = None) -> list[PartEntry]:
        """Parts whose key range can hold keys matching `pattern` (all parts if None)."""
        if not pattern:
            return list(self.parts)
        prefix = _literal_prefix(pattern)
        return [p for p in self.parts
                if p.max_key >= prefix and (not prefix or p.min_key < prefix + "\U0010ffff")]

    def index_table(self, part: PartEntry) -> pa.Table:
        """The part's index, checked (cached while the cached ones total under 64 MB)."""
        cached = self._indexes.get(part.index)
        if cached is not None:
            return cached
        table = self._read_index(part)
        if self._index_bytes + table.nbytes <= INDEX_CACHE_BYTES:
            self._indexes[part.index] = table
            self._index_bytes += table.nbytes
        return table

    def _read_index(self, part: PartEntry) -> pa.Table:
        data = self.read_checked(part.index)
        try:
            table = pq.read_table(io.BytesIO(data))
        except (pa.ArrowException, OSError) as error:
            raise IntegrityError(f"{self.url}: {part.index} is not a readable index: "
                                 f"{error}") from error
        where = f"{self.url}: {part.index}"
        check_index_schema(table.schema, where, self.version)
        if table.num_rows != part.objects:
            raise IntegrityError(f"{where} has {table.num_rows} rows, the manifest says "
                                 f"{part.objects}")
        prefix = table.column(OBJECT_DIGEST_COLUMN)
        try:
            wrong_length = pc.any(pc.not_equal(pc.binary_length(prefix),
                                               self.object_digest_bytes)).as_py()
        except pa.ArrowException as error:
            raise IntegrityError(f"{where}: {OBJECT_DIGEST_COLUMN} is not binary: "
                                 f"{error}") from error
        missing = pc.any(pc.and_(pc.is_null(prefix), pc.not_equal(
            table.column("kind"), KIND_SKIPPED))).as_py()
        if wrong_length or missing:
            raise IntegrityError(f"{where}: {OBJECT_DIGEST_COLUMN} values are not all "
                                 f"{self.object_digest_bytes} bytes (the manifest's "
                                 "object_digest_bytes)")
        return table

    def rows(self, pattern: str | None = None, shards: set[int] | None = None,
             parts: list[PartEntry] | None = None) -> Iterator[IndexRow]:
        """Index rows of objects whose key equals `pattern` or matches it (fnmatch;
        `*` also matches `/`) and whose first shard (global number) is in `shards`; only in
        `parts` (manifest entries) when given."""
        for part in self.index_parts(pattern) if parts is None else parts:
            first = int(self.shard_offsets[part.part])
            if shards is not None and not any(first <= s < first + part.shards
                                               for s in shards):
                continue  # none of the asked shards lies in this part: skip its index
            for row in index_rows(self.index_table(part)):
                if pattern and row.key != pattern and not fnmatch.fnmatchcase(
                        row.key, pattern):
                    continue
                if shards is not None and (
                        row.shard < 0 or self.global_shard(row.part, row.shard)
                        not in shards):
                    continue
                yield row

    # --- shards ----------------------------------------------------------------------------

    def shard_table(self, part: int) -> tuple[pq.ParquetFile, list[ShardInfo]]:
        """The part's data file (footer read, nothing else) and its shard list."""
        if part not in self._footers:
            path = self.parts[part].data
            entry = self.files[path]
            try:
                handle = self.location.open_read(path)
            except FileNotFoundError:
                raise IntegrityError(f"{self.url}: data file {path} is missing") from None
            try:
                parquet = pq.ParquetFile(handle, metadata=self._footer(part, entry["size"]))
            except (pa.ArrowException, OSError) as error:
                handle.close()
                raise IntegrityError(f"{self.url}: data file {path} is damaged or truncated: "
                                     f"{error}") from error
            except IntegrityError:
                handle.close()
                raise
            if handle.size() != entry["size"]:
                raise IntegrityError(f"{self.url}: data file {path} is {handle.size()} bytes, "
                                     f"the manifest says {entry['size']}")
            meta = parquet.metadata
            if meta.num_row_groups != self.parts[part].shards:
                raise IntegrityError(f"{self.url}: {path} has {meta.num_row_groups} shards, "
                                     f"the manifest says {self.parts[part].shards}")
            names = parquet.schema_arrow.names
            infos = []
            for number in range(meta.num_row_groups):
                group = meta.row_group(number)
                stats = [group.column(names.index(n)).statistics
                         for n in ("kind", "channels", "num_blocks")]
                if any(s is None or not s.has_min_max for s in stats):
                    raise IntegrityError(f"{self.url}: {path} shard {number} lacks its footer "
                                         "statistics")
                kind, channels, blocks = (s.min for s in stats)
                infos.append(ShardInfo(str(kind), int(channels), int(blocks),
                                       int(group.total_byte_size)))
            self._footers[part] = (parquet, infos)
            self._handles[part] = handle
        return self._footers[part]

    def _footer(self, part: int, size: int) -> pq.FileMetaData:
        """The data file's Parquet footer, fetched with one exact range read (its length is in
        the manifest) and parsed on its own."""
        length = int(self.parts[part].data_footer_bytes)
        if not 8 < length <= size - 4:
            raise IntegrityError(f"{self.url}: part {part}: footer length {length} is "
                                 "impossible for its data file")
        tail = self.location.read_range(self.parts[part].data, size - length, size)
        if len(tail) != length or tail[-4:] != b"PAR1":
            raise IntegrityError(f"{self.url}: {self.parts[part].data}: no Parquet footer "
                                 "where the manifest says (truncated or replaced)")
        return pq.read_metadata(io.BytesIO(b"PAR1" + tail))

    def release(self, part: int) -> None:
        """Close the part's data file (callers going part by part keep one open at a time)."""
        self._starts.pop(part, None)
        for key in [key for key in self._heads if key[0] == part]:
            del self._heads[key]
        entry = self._footers.pop(part, None)
        if entry is not None:
            entry[0].close()
            self._handles.pop(part).close()

    def read_shard(self, part: int, number: int) -> ShardRow:
        parquet, infos = self.shard_table(part)
        where = f"{self.url}: shard {self.global_shard(part, number)} (part {part} row group " \
                f"{number})"
        try:
            row = ShardRow(**parquet.read_row_group(number).to_pylist()[0])
        except (pa.ArrowException, OSError, IndexError, TypeError) as error:
            raise IntegrityError(f"{where}: unreadable: {error}") from error
        if hashlib.sha256(row.payload).digest() != row.payload_sha256:
            raise IntegrityError(f"{where}: payload checksum mismatch (damaged or tampered)")
        return row

    def decode_pixels(self, part: int, number: int) -> np.ndarray:
        """The shard's (N, 32, 32, C) blocks, checked against the shard's raw sha256."""
        decoded = self.decode_pixels_many(part, [number])[0]
        if isinstance(decoded, Exception):
            raise decoded
        return decoded

    def decode_pixels_many(self, part: int, numbers: list[int],
                           ) -> list[np.ndarray | Exception]:
        """Several pixel shards of a part, decoded together where their codec can
        (`decode_shards`), each checked against its raw sha256; a shard that cannot be read or
        decoded gives its error in its place (a group that fails is decoded shard by shard,
        so the error names the shard it belongs to)."""
        out: list[np.ndarray | Exception] = []
        rows: dict[int, ShardRow] = {}
        for number in numbers:
            where = f"{self.url}: shard {self.global_shard(part, number)}"
            try:
                row = self.read_shard(part, number)
                if row.kind != SHARD_PIXELS:
                    raise IntegrityError(f"{where}: expected a pixel shard, found {row.kind!r}")
                self.codecs.get(row.codec, row.model_sha256, where)
            except (ValueError, OSError) as error:  # unreadable, or its codec cannot be built
                out.append(error)
                continue
            rows[len(out)] = row
            out.append(IntegrityError(f"{where}: not decoded"))  # replaced below
        groups: dict[tuple[str, str | None], list[int]] = {}
        for slot, row in rows.items():
            groups.setdefault((row.codec, row.model_sha256), []).append(slot)
        for (name, model), slots in groups.items():
            codec = self.codecs.get(name, model, f"{self.url}: part {part}")
            shards = [EncodedShard(rows[i].payload, rows[i].num_blocks, rows[i].channels,
                                   rows[i].codec_params) for i in slots]
            try:
                decoded = decode_shards(codec, shards)
            except (CodecError, ValueError):
                decoded = [self._decoded_alone(codec, shard) for shard in shards]
            for slot, blocks in zip(slots, decoded, strict=True):
                out[slot] = self._checked_blocks(part, numbers[slot], rows[slot], blocks)
        return out

    @staticmethod
    def _decoded_alone(codec: BlockCodec, shard: EncodedShard) -> np.ndarray | Exception:
        try:
            return codec.decode(shard)
        except (CodecError, ValueError) as error:
            return error

    def _checked_blocks(self, part: int, number: int, row: ShardRow,
                        blocks: np.ndarray | Exception) -> np.ndarray | IntegrityError:
        """The decoded blocks if they are the shard's (its raw sha256), else the error."""
        where = f"{self.url}: shard {self.global_shard(part, number)}"
        if isinstance(blocks, Exception):
            return IntegrityError(f"{where}: codec {row.codec!r} cannot decode it: {blocks}")
        expected = (row.num_blocks, BLOCK_SIZE, BLOCK_SIZE, row.channels)
        if blocks.shape != expected or hashlib.sha256(
                np.ascontiguousarray(blocks).tobytes()).digest() != row.raw_sha256:
            return IntegrityError(f"{where}: decoded blocks do not match the shard's checksum")
        return blocks

    # --- units (format 4) ------------------------------------------------------------------

    def payload_range(self, part: int, number: int) -> tuple[int, int]:
        """(start, stop) of the shard's payload column chunk in its data file (footer only):
        where its units must lie."""
        parquet, _ = self.shard_table(part)
        try:
            return payload_chunk(parquet.metadata, number)
        except ArchiveError as error:
            raise IntegrityError(f"{self.url}: {self.parts[part].data}: {error}") from None

    def check_units(self, row: IndexRow, chain: list[tuple[int, int, int]]) -> None:
        """Refuse an index row whose units do not match its block chain or lie outside their
        shards' payloads (checked before anything is fetched)."""
        offsets, lengths = row.unit_offsets or [], row.unit_lengths or []
        if len(offsets) != len(chain) or len(lengths) != len(chain):
            raise IntegrityError(f"{self.url}: object {row.key!r}: the index names "
                                 f"{len(offsets)} units for its {len(chain)} shards")
        for (number, _, _), offset, length in zip(chain, offsets, lengths, strict=True):
            start, stop = self.payload_range(row.part, number)
            if length < 0 or not start <= offset <= offset + length <= stop:
                raise IntegrityError(
                    f"{self.url}: object {row.key!r}: its unit (bytes {offset}..+{length}) "
                    f"lies outside shard {self.global_shard(row.part, number)}'s payload "
                    f"({start}..{stop} of {self.parts[row.part].data}); the index is damaged")

    def shard_head(self, part: int, number: int) -> ShardHead:
        """The shard's small columns alone (codec, model, params...: a few hundred bytes
        fetched, never its payload), read once per part."""
        key = (part, number)
        if key not in self._heads:
            parquet, _ = self.shard_table(part)
            where = f"{self.url}: shard {self.global_shard(part, number)} (part {part} row " \
                    f"group {number})"
            try:
                values = parquet.read_row_group(number, columns=HEAD_COLUMNS).to_pylist()[0]
                values["params"] = json.loads(values["params"])
                self._heads[key] = ShardHead(**values)
            except (pa.ArrowException, OSError, IndexError, TypeError, ValueError) as error:
                raise IntegrityError(f"{where}: unreadable: {error}") from error
        return self._heads[key]

    def unit_blocks(self, row: IndexRow, unit: int, number: int, count: int) -> np.ndarray:
        """The object's blocks in one shard of its chain (`count` of them), from its unit's
        byte range alone. A unit has no checksum: the caller checks the object (see the
        module docstring); what goes wrong here is named with the object, shard and bytes."""
        offset, length = (row.unit_offsets or [])[unit], (row.unit_lengths or [])[unit]
        path = self.parts[row.part].data
        shard = self.global_shard(row.part, number)
        where = (f"{self.url}: object {row.key!r}: its unit in shard {shard} (bytes "
                 f"{offset}..{offset + length} of {path})")
        head = self.shard_head(row.part, number)
        if head.kind != SHARD_PIXELS:
            raise IntegrityError(f"{where}: expected a pixel shard, found {head.kind!r}")
        codec = self.codecs.get(head.codec, head.model_sha256, f"{self.url}: shard {shard}")
        decode_unit = getattr(codec, "decode_unit", None)
        if decode_unit is None:
            raise IntegrityError(f"{where}: codec {head.codec!r} does not decode units alone; "
                                 "the index is damaged")
        data = self.location.read_range(path, offset, offset + length)
        if len(data) != length:
            raise IntegrityError(f"{where}: {len(data)} bytes were read: the data file is "
                                 "truncated")
        try:
            blocks = decode_unit(data, count, head.channels, head.params)
        except (CodecError, ValueError) as error:
            raise IntegrityError(damaged_unit(where, self.url, shard, str(error))) from error
        if blocks.shape != (count, BLOCK_SIZE, BLOCK_SIZE, head.channels):
            raise IntegrityError(f"{where}: decoded to shape {blocks.shape}, expected "
                                 f"{(count, BLOCK_SIZE, BLOCK_SIZE, head.channels)}")
        return blocks

    def decode_blob(self, part: int, number: int) -> bytes:
        row = self.read_shard(part, number)
        where = f"{self.url}: shard {self.global_shard(part, number)}"
        if row.kind != SHARD_BLOB:
            raise IntegrityError(f"{where}: expected a blob shard, found {row.kind!r}")
        raw = self._unpack_blobs(row, where)
        if len(raw) != row.raw_size or hashlib.sha256(raw).digest() != row.raw_sha256:
            raise IntegrityError(f"{where}: decoded bytes do not match the shard's checksum")
        return raw

    @staticmethod
    def _unpack_blobs(row: ShardRow, where: str) -> bytes:
        """A blob shard's raw bytes (its objects back to back) from its payload."""
        if row.codec == JPEG_CODEC:
            params = row.codec_params
            methods, lengths = params.get("methods", []), params.get("lengths", [])
            if len(methods) != len(lengths) or sum(lengths) != len(row.payload):
                raise IntegrityError(f"{where}: JPEG stream lengths do not fit the payload")
            pieces, start = [], 0
            try:
                for method, length in zip(methods, lengths, strict=True):
                    pieces.append(expand(method, row.payload[start:start + length]))
                    start += length
            except JpegError as error:
                raise IntegrityError(f"{where}: {error}") from error
            return b"".join(pieces)
        if row.codec == JPEGXL_CODEC:
            raise IntegrityError(f"{where}: a JPEG-XL shard holds rasters decoded one by one "
                                 "(`ArchiveReader.whole_raster`), not bytes")
        if row.codec != BLOB_CODEC:
            raise IntegrityError(f"{where}: blob codec {row.codec!r} is not one this "
                                 "recarchive knows; use the release that wrote the archive")
        try:
            return zstandard.ZstdDecompressor().decompress(
                row.payload, max_output_size=row.raw_size)
        except zstandard.ZstdError as error:
            raise IntegrityError(f"{where}: zstd cannot decode it: {error}") from error

    def shard_chain(self, part: int, first: int, block_start: int,
                    num_blocks: int) -> list[tuple[int, int, int]]:
        """(row group, start, stop) block slices holding an object's blocks: its first shard,
        then the part's following shards of the same channel count."""
        _, infos = self.shard_table(part)
        if not 0 <= first < len(infos):
            raise IntegrityError(f"{self.url}: index names shard {first} of part {part}, which "
                                 "does not exist")
        channels = infos[first].channels
        chain, number, start, left = [], first, block_start, num_blocks
        while left > 0:
            if number >= len(infos):
                raise IntegrityError(f"{self.url}: part {part}: an object's blocks run past "
                                     "the last shard")
            info = infos[number]
            if info.kind == SHARD_PIXELS and info.channels == channels:
                take = min(left, info.num_blocks - start)
                if take <= 0:
                    raise IntegrityError(f"{self.url}: part {part} shard {number}: block "
                                         f"range starts at {start} of {info.num_blocks}")
                chain.append((number, start, start + take))
                left -= take
                start = 0
            number += 1
        return chain


    def whole_raster(self, row: IndexRow, payload: bytes) -> np.ndarray:
        """A raster coded whole: its stream (of its shard's payload, which was checked against
        its sha256 when read) decoded to its shape. The stream starts where the streams of the
        rows before it in the same shard end (the index keeps lengths only)."""
        start, length = self._stream_starts(row.part)[row.key], row.blob_length
        stream = payload[start:start + length]
        if len(stream) != length:
            raise IntegrityError(f"{self.url}: object {row.key!r}: its stream runs past "
                                 "its shard")
        try:
            return jpegxl.expand(stream, (row.height, row.width, row.channels))
        except jpegxl.JpegXLError as error:
            raise IntegrityError(f"{self.url}: object {row.key!r}: {error}") from error

    def _stream_starts(self, part: int) -> dict[str, int]:
        """key -> where its stream starts in its shard's payload, for the part's whole
        rasters (computed from the part's index once)."""
        if part not in self._starts:
            table = self.index_table(self.parts[part]).select(
                ["key", "kind", "num_blocks", "shard", "blob_length"]).to_pylist()
            ends: dict[int, int] = {}
            starts = {}
            for entry in table:
                if entry["kind"] == KIND_RASTER and entry["num_blocks"] == 0:
                    starts[entry["key"]] = ends.get(entry["shard"], 0)
                    ends[entry["shard"]] = starts[entry["key"]] + entry["blob_length"]
            self._starts[part] = starts
        return self._starts[part]

    def object_pixels(self, row: IndexRow, blocks: np.ndarray) -> np.ndarray:
        """An object's pixels from its blocks (cut from shards already checked against their
        raw sha256), with its channels and shape checked against the index."""
        if blocks.shape[3] != row.channels:
            raise IntegrityError(f"{self.url}: object {row.key!r}: shard has "
                                 f"{blocks.shape[3]} channels, index says {row.channels}")
        try:
            return join_blocks(blocks, row.height, row.width)
        except ValueError as error:
            raise IntegrityError(f"{self.url}: object {row.key!r}: {error}") from error


def damaged_unit(where: str, url: str, shard: int, problem: str) -> str:
    """The error of a unit that did not decode, or decoded to other pixels: it is damaged, and
    what to do about it."""
    return (f"{where} is damaged ({problem}); `recarchive verify {url}` checks shard {shard} "
            "and every other against its sha256 and lists what is damaged; put back the data "
            "file from a copy")


def open_archive(url: str, storage_options: dict[str, Any] | None = None) -> ArchiveReader:
    return ArchiveReader(url, storage_options)


def _digest_bytes(manifest: dict[str, Any], where: str) -> int:
    """The manifest's `object_digest_bytes` (length of every index `sha256_prefix`)."""
    if "object_digest_bytes" not in manifest:
        raise IntegrityError(f"{where}: no object_digest_bytes: the archive was written by an "
                             "earlier build of format 1 (full per-object digests); this "
                             "recarchive cannot read it")
    try:
        return check_object_digest_bytes(manifest["object_digest_bytes"], where)
    except ArchiveError as error:
        raise IntegrityError(str(error)) from None


def _literal_prefix(pattern: str) -> str:
    for position, char in enumerate(pattern):
        if char in "*?[":
            return pattern[:position]
    return pattern

